"""Reading a results dict and formatting what the reports show (shared by HTML and Excel).

Numbers taken from the results are wrapped in :class:`Shown` (dotted results path, exact value,
displayed text), so every number a report shows can be traced back to ``results.json``.

Examples
--------
>>> money(42.5, "$", 0)
'$42'
>>> get({"a": {"b": 1}}, "a", "b")
1
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from typing import Any

from roi import redaction

NOT_CONVERGED = "NOT CONVERGED - do not rely on it"
NOT_ESTIMATED = "not estimated in this run"
REVENUE = "community_revenue_lift"
RETENTION = "community_retention_lift"

METHOD_LABELS = {
    "naive": "naive comparison (ever-members vs never-members)",
    "did": "difference-in-differences",
    "cox_time_varying": "Cox model with membership as a time-varying state",
    "piecewise_exponential": "piecewise-exponential hazard model on person-period cells",
    "bayes": "Bayesian model",
    "mmm": "Bayesian media-mix model",
}
METHOD_NOTES = {
    "naive": "Plain comparison of ever-members with never-members, as community dashboards "
             "report it. It mixes the community's effect with who chooses to join (the best "
             "customers join) and, for churn, with immortal time (customers must survive to "
             "join). Always shown for contrast, never preferred.",
    "did": "Staggered difference-in-differences (Callaway and Sant'Anna): each join cohort is "
           "compared with itself before joining and with customers who have not joined, month "
           "by month, then averaged over member-months. Assumes members would have followed the "
           "same revenue trend as non-members had they not joined (parallel trends; see the "
           "pre-trend check in Diagnostics). Customers who were members from the first month "
           "have no before-period and are left out.",
    "cox_time_varying": "Cox proportional-hazards model in which membership is a state that "
                        "starts on the join date, adjusted for the covariates listed under Data "
                        "quality. Time before joining counts as non-member time, which removes "
                        "the immortal-time bias of the naive comparison. Assumes proportional "
                        "hazards (see the ph_p checks in Diagnostics).",
}
METHOD_NOTES.update({
    "did_join_month_adjusted": "Difference-in-differences without the join month: shown when "
                               "customers join right after buying (the event study spikes in "
                               "the join month). Averages the lift from the month after "
                               "joining and keeps the month before joining out of the "
                               "baseline, so the purchase that caused the joining is not "
                               "counted as the community's effect.",
    "did_multiplicative": "Staggered difference-in-differences on the ratio scale: members' "
                          "revenue is assumed to have moved in proportion to non-members' "
                          "(parallel trends in logs), which suits revenue that scales with a "
                          "customer's size. Reported in currency per member-month; uses revenue "
                          "not attributed to a paid channel.",
    "regression": "Regression adjustment: each member-month is compared with the revenue "
                  "predicted from the customer's own revenue before joining and the covariates, "
                  "fitted on non-members. Covers only members with pre-join history.",
    "aipw": "Augmented inverse-probability weighting (doubly robust): the regression prediction "
            "corrected by weighting non-members to look like members on the chance of joining; "
            "right if either the outcome model or the joining model is right. Needs overlap "
            "(comparable non-members for every member; see Diagnostics).",
    "bayesian": "Hierarchical Bayesian model of revenue on customer-month cells with the "
                "community's effect as a ratio, partially pooled across communities; reported "
                "with a 94% HDI. It has no pre-trend test of its own.",
    "piecewise_exponential": "Piecewise-exponential hazard model (a Poisson regression of "
                             "churns on days at risk): the same hazard ratio as the Cox model, "
                             "membership a state from the join date, with the churn hazard "
                             "constant within 12 intervals of customer age, fitted by maximum "
                             "likelihood on person-period cells summed in the database over "
                             "every customer; 95% CI. Preferred when the Cox model had to read a "
                             "random sample of customers.",
    "bayesian survival": "Bayesian piecewise-exponential survival model: churn hazard in "
                         "intervals of customer age, membership as a time-varying state, "
                         "communities partially pooled; 94% HDI.",
    "mmm": "Bayesian media-mix model: weekly revenue explained by a baseline, each paid "
           "channel's spend after adstock (carry-over) and saturation (diminishing returns), and "
           "the communities' activity; ROAS and response curves come from its posterior draws "
           "(94% HDI), calibrated by lift tests when given.",
    "regression baseline": "Least-squares regression of weekly revenue on spend per channel, "
                           "each channel's carry-over and saturation picked from a grid: shown "
                           "for contrast with the media-mix model. Its 95% CI ignores the "
                           "uncertainty of that pick and is too narrow (on simulated worlds it "
                           "missed the true ROAS for about 2 channels in 5).",
    "E-value": "How strongly a hidden factor would have to be associated with both joining and "
               "churn (as a risk ratio, each) to explain the hazard ratio away (VanderWeele and "
               "Ding 2017). Larger means sturdier.",
    "robustness value": "The share of the remaining variation of both membership and revenue a "
                        "hidden confounder would have to explain to bring the AIPW or "
                        "regression lift to zero (Cinelli and Hazlett 2020). Larger means "
                        "sturdier. Benchmarked: what a hidden factor k times as strong as an "
                        "observed covariate (or as the customer's pre-join revenue) in "
                        "explaining joining and the change in revenue after it would leave of "
                        "the lift.",
    "relative-magnitudes breakdown": "How far members' revenue trend may drift from "
                                     "non-members' after joining, as a multiple of the largest "
                                     "drift seen before joining, before the DiD lift's interval "
                                     "includes zero (Rambachan and Roth 2023).",
})
INTERVALS = ("Intervals", "Every interval is labelled by kind: \"95% CI\" is a frequentist 95% "
             "confidence interval (DiD, regression, AIPW, Cox, naive); \"94% HDI\" is the "
             "Bayesian 94% highest-density interval of the posterior (Bayesian lift and survival "
             "models, media-mix model, budget scenarios). \"95% CI (combined)\" is the 95% "
             "interval of a community's revenue, the sum of its revenue-lift part and its "
             "retention part: each part's interval (CI or HDI) is read as a normal distribution "
             "and the parts are taken as independent, so it is approximate. All give the range "
             "of plausible values; an interval that includes 0 (or 1 for a hazard ratio) cannot "
             "rule out no effect.")

ESTIMANDS = [
    ("Member-month", "a complete calendar month, at or after the month the customer joined, in "
                     "which the customer was a customer for the whole month."),
    ("Community revenue lift", "average over member-months of actual revenue minus the revenue "
                               "the same customer would have had without membership."),
    ("Retention lift", "hazard ratio of churn, members vs non-members; 0.72 means members churn "
                       "28% less in any given month."),
    ("ROAS", "revenue a channel caused within the window divided by its spend; marginal ROAS "
             "is the same for the next unit of spend."),
    ("Revenue per dollar", "incremental revenue divided by cost, for paid channels and "
                           "communities alike, so they can be compared directly."),
    INTERVALS,
]


# --------------------------------------------------------------------------- reading results


def glossary_methods(results: dict) -> list[str]:
    """The keys of :data:`METHOD_NOTES` for every method and measure this run shows."""
    shown = [m for m in mapping(get(results, REVENUE, "estimates"))]
    retention = mapping(get(results, RETENTION, "estimates"))
    shown += [("bayesian survival" if m == "bayesian" else m) for m in retention]
    paid = mapping(results.get("paid_media"))
    if any(isinstance(get(c, "roas"), dict) for c in mapping(paid.get("channels")).values()):
        shown.append("mmm")
    if mapping(get(paid, "regression_baseline", "channels")):
        shown.append("regression baseline")
    revenue_sensitivity = mapping(get(results, REVENUE, "sensitivity"))
    if revenue_sensitivity.get("summary"):
        shown.append("relative-magnitudes breakdown")
    if get(revenue_sensitivity, "robustness_value", "summary"):
        shown.append("robustness value")
    if get(results, RETENTION, "sensitivity", "summary"):
        shown.append("E-value")
    return [m for m in dict.fromkeys(shown) if m in METHOD_NOTES]


def get(results: Any, *path: str) -> Any:
    """``results[path[0]][path[1]]...`` or None when any level is missing or not a dict."""
    for key in path:
        if not isinstance(results, dict):
            return None
        results = results.get(key)
    return results


def number(value: Any) -> float | None:
    """A finite float, or None for missing, null, text and NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def value_of(entry: Any) -> tuple[str, float | None]:
    """The value field of an estimate (``estimate`` or ``hazard_ratio``) and its value."""
    for field in ("estimate", "hazard_ratio"):
        if isinstance(entry, dict) and field in entry:
            return field, number(entry[field])
    return "estimate", None


def preferred_method(results: dict, section: str) -> str | None:
    """The ``preferred`` method name of a section, or None when absent or malformed."""
    preferred = get(results, section, "preferred")
    return preferred if isinstance(preferred, str) and preferred else None


def method_label(method: str | None) -> str:
    if not method:
        return "unknown method"
    return METHOD_LABELS.get(method, method.replace("_", " "))


def diagnostics_entry(results: dict, section: str, method: str) -> dict | None:
    """The diagnostics block of the model behind one estimate, if the run recorded one."""
    prefix = {REVENUE: "revenue", RETENTION: "retention", "paid_media": "paid_media"}
    candidates = [f"{prefix.get(section, section)}_{method}", method]
    if section == "paid_media":
        candidates += ["paid_media_mmm", "paid_media", "mmm", "media_mix"]
    diagnostics = mapping(results.get("diagnostics"))
    for key in candidates:
        if isinstance(diagnostics.get(key), dict):
            return diagnostics[key]
    return None


def is_converged(results: dict, section: str, method: str, entry: Any) -> bool:
    """False when the estimate or its model's diagnostics say ``converged: false``."""
    if isinstance(entry, dict) and entry.get("converged") is False:
        return False
    if section == "paid_media" and get(results, "paid_media", "converged") is False:
        return False
    diag = diagnostics_entry(results, section, method)
    return not (diag is not None and diag.get("converged") is False)


def mapping(value: Any) -> dict:
    """``value`` if it is a dict, else an empty dict (null or malformed sections)."""
    return value if isinstance(value, dict) else {}


def sequence(value: Any) -> list:
    return value if isinstance(value, list) else []


def as_list(value: Any) -> list:
    """Warnings and notes as a list, whether the run wrote a list, one string or nothing."""
    if value is None:
        return []
    return [value] if isinstance(value, str) or not isinstance(value, list) else value


def unconverged_models(results: dict) -> list[str]:
    """Names of every model or estimate that did not converge, for the top banner; an estimate
    is named only when its model's diagnostics do not already say so."""
    diagnostics = mapping(results.get("diagnostics"))
    names = [name for name, diag in diagnostics.items()
             if isinstance(diag, dict) and diag.get("converged") is False]
    prefix = {REVENUE: "revenue", RETENTION: "retention"}
    for section in (REVENUE, RETENTION):
        for method, entry in mapping(get(results, section, "estimates")).items():
            if get(entry, "converged") is False and f"{prefix[section]}_{method}" not in names:
                names.append(f"{section}.{method}")
    names += _unconverged_media(results, names)
    for row in sequence(results.get("comparison")):
        if isinstance(row, dict) and row.get("converged") is False:
            names.append(f"comparison.{row.get('name')}")
    return list(dict.fromkeys(names))


def _unconverged_media(results: dict, named: list[str]) -> list[str]:
    channels = mapping(get(results, "paid_media", "channels"))
    if any(n in named for n in ("paid_media_mmm", "paid_media", "mmm", "media_mix")):
        return []
    if get(results, "paid_media", "converged") is False:
        estimated = any(isinstance(get(c, "roas"), dict) for c in channels.values())
        return ["paid_media"] if estimated else []
    return [f"paid_media.{channel}.{field}" for channel, entry in channels.items()
            for field in ("roas", "marginal_roas") if get(entry, field, "converged") is False]


# --------------------------------------------------------------------------- formatting


def money(value: Any, currency: str = "$", decimals: int = 2) -> str:
    value = number(value)
    if value is None:
        return "n/a"
    sign = "-" if value < 0 else ""
    return f"{sign}{currency}{abs(value):,.{decimals}f}"


def fixed(value: Any, decimals: int = 2) -> str:
    value = number(value)
    return "n/a" if value is None else f"{value:,.{decimals}f}"


def headline_decimals(value: float | None) -> int:
    """Whole units for figures of 10 or more, cents below (a $4.25 lift must not read $4)."""
    return 0 if value is not None and abs(value) >= 10 else 2


@dataclass(frozen=True)
class Shown:
    """A number taken from the results, with its path and how it is displayed."""

    key: str
    value: float | None
    text: str
    converged: bool = True
    css: str = "num"

    def html(self) -> str:
        value = "" if self.value is None else repr(self.value)
        span = (f'<span class="{self.css}" data-key="{esc(self.key)}" '
                f'data-value="{esc(value)}">{esc(self.text)}</span>')
        if not self.converged:
            span += f' <span class="not-converged">{esc(NOT_CONVERGED)}</span>'
        return span

    def plain(self) -> str:
        return self.text if self.converged else f"{self.text} ({NOT_CONVERGED})"


Fragment = str | Shown


# One masking rule for every output (roi/redaction.py): connection secrets and e-mails.
redact = redaction.redact


def esc(text: Any) -> str:
    return html.escape(redact(str(text)), quote=True)


def render(fragments: list[Fragment]) -> str:
    return "".join(f.html() if isinstance(f, Shown) else esc(f) for f in fragments)


def plain(fragments: list[Fragment]) -> str:
    """The same sentence as plain text (for the Excel summary)."""
    return "".join(f.plain() if isinstance(f, Shown) else f for f in fragments)


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True)
class Raw:
    """Markup built here from escaped parts (status labels)."""

    markup: str


Cell = str | Shown | Raw | None


def cell_html(cell: Cell) -> str:
    if isinstance(cell, Shown):
        return cell.html()
    if isinstance(cell, Raw):
        return cell.markup
    return esc("" if cell is None else cell)


def table(headers: list[str], rows: list[list[Cell]], *, numeric_from: int = 1) -> str:
    """A table laid out by the ``table`` macro of ``templates/layout.html.j2``: numbers from
    the results right-aligned from column ``numeric_from``, everything escaped here."""
    from markupsafe import Markup

    cells = [[("r" if i >= numeric_from and isinstance(c, Shown) else "l", Markup(cell_html(c)))
              for i, c in enumerate(row)] for row in rows]
    return str(_layout().table([Markup(esc(h)) for h in headers], cells,
                               len(rows) <= SMALL_TABLE_ROWS))


def _layout():
    """The macros of ``templates/layout.html.j2`` (the report's Jinja2 environment)."""
    from roi.reports.html import templates

    return templates().get_template("layout.html.j2").module


SMALL_TABLE_ROWS = 15


def status(ok: bool, note: str = "") -> Raw:
    if not ok:
        return Raw(f'<span class="not-converged">{esc(NOT_CONVERGED)}</span>')
    return Raw(f'<span class="note">{esc(note)}</span>' if note else "")


def missing(what: str) -> str:
    return f'<p class="missing">{esc(what)}: {esc(NOT_ESTIMATED)}.</p>'


def figure(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}"></figure>'


def shown(key: str, value: Any, fmt) -> Shown:
    return Shown(key, number(value), fmt(value))


def estimate_cells(key: str, entry: dict, fmt) -> list[Cell]:
    field, value = value_of(entry)
    return [Shown(f"{key}.{field}", value, fmt(value)),
            shown(f"{key}.low", entry.get("low"), fmt),
            shown(f"{key}.high", entry.get("high"), fmt), entry.get("interval", "")]




def section(anchor: str, title: str, body: str) -> str:
    """A report section (``section`` macro of ``templates/layout.html.j2``); ``body`` is
    finished markup."""
    from markupsafe import Markup

    return str(_layout().section(Markup(esc(anchor)), Markup(esc(title)), Markup(body)))



def flat_text(value: Any) -> str:
    """One readable string for a scalar or a list of scalars."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{value:,.0f}"
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        return ", ".join(flat_text(v) for v in value) if value else "none"
    return str(value)


def flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` -> ``[("a.b", 1)]``; lists stay whole (shown joined)."""
    if isinstance(value, dict):
        if not value:
            return [(prefix, "none")] if prefix else []
        out = []
        for key, item in value.items():
            out += flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return out
    return [(prefix, value)]


def key_value_table(pairs: list[tuple[str, Any]], key_prefix: str | None = None, *,
                    grouping: bool = True) -> str:
    """Two columns; numbers keyed to their results path when ``key_prefix`` is given."""
    rows: list[list[Cell]] = []
    for name, value in pairs:
        if not grouping and isinstance(value, int | float) and not isinstance(value, bool):
            rows.append([name, str(value)])
        elif key_prefix is not None and name.endswith("rate") and number(value) is not None:
            rows.append([name, Shown(f"{key_prefix}.{name}", number(value), f"{value:.1%}")])
        elif key_prefix is not None and number(value) is not None:
            rows.append([name, Shown(f"{key_prefix}.{name}", number(value), flat_text(value))])
        else:
            rows.append([name, flat_text(value)])
    return table(["Item", "Value"], rows)


