"""One self-contained HTML report from a results dict (the parsed ``results.json``).

The report reads nothing but the results: no models, no data. Every number shown is escaped text;
charts are embedded as base64 PNG; there are no external styles, scripts or fonts. Numbers that
come straight from the results carry ``data-key`` (their dotted path in ``results.json``) and
``data-value`` (the exact value), so tests and other tools can compare what is displayed with
what was estimated. Sections that a run did not produce say "not estimated in this run"; results
that did not converge are labelled "NOT CONVERGED - do not rely on it" wherever they appear.

Examples
--------
>>> import tempfile, pathlib
>>> from roi.reports.html import write_html
>>> results = {"schema_version": 1, "community_revenue_lift": {"preferred": "did",
...     "estimates": {"did": {"estimate": 42.5, "low": 5.7, "high": 79.3, "interval": "95% CI"}}}}
>>> path = write_html(results, pathlib.Path(tempfile.mkdtemp()) / "report.html")
>>> "$42" in path.read_text()
True
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roi.outputs import write_atomic
from roi.reports import plots

NOT_CONVERGED = "NOT CONVERGED - do not rely on it"
NOT_ESTIMATED = "not estimated in this run"
REVENUE = "community_revenue_lift"
RETENTION = "community_retention_lift"

METHOD_LABELS = {
    "naive": "naive comparison (ever-members vs never-members)",
    "did": "difference-in-differences",
    "cox_time_varying": "Cox model with membership as a time-varying state",
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
    ("Intervals", "95% CI: frequentist confidence interval; 94% HDI: Bayesian "
                  "highest-density interval."),
]


# --------------------------------------------------------------------------- reading results


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
        candidates += ["paid_media", "mmm", "media_mix"]
    diagnostics = mapping(results.get("diagnostics"))
    for key in candidates:
        if isinstance(diagnostics.get(key), dict):
            return diagnostics[key]
    return None


def is_converged(results: dict, section: str, method: str, entry: Any) -> bool:
    """False when the estimate or its model's diagnostics say ``converged: false``."""
    if isinstance(entry, dict) and entry.get("converged") is False:
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
    """Names of every model or estimate that did not converge, for the top banner."""
    diagnostics = mapping(results.get("diagnostics"))
    names = [name for name, diag in diagnostics.items()
             if isinstance(diag, dict) and diag.get("converged") is False]
    for section in (REVENUE, RETENTION):
        for method, entry in mapping(get(results, section, "estimates")).items():
            if isinstance(entry, dict) and entry.get("converged") is False:
                names.append(f"{section}.{method}")
    for channel, entry in mapping(get(results, "paid_media", "channels")).items():
        for field in ("roas", "marginal_roas"):
            if isinstance(get(entry, field), dict) and entry[field].get("converged") is False:
                names.append(f"paid_media.{channel}.{field}")
    for row in sequence(results.get("comparison")):
        if isinstance(row, dict) and row.get("converged") is False:
            names.append(f"comparison.{row.get('name')}")
    return list(dict.fromkeys(names))


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


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def render(fragments: list[Fragment]) -> str:
    return "".join(f.html() if isinstance(f, Shown) else esc(f) for f in fragments)


def plain(fragments: list[Fragment]) -> str:
    """The same sentence as plain text (for the Excel summary)."""
    return "".join(f.plain() if isinstance(f, Shown) else f for f in fragments)


# --------------------------------------------------------------------------- summary sentences


def _money_shown(key: str, value: float | None, currency: str, decimals: int, *,
                 converged: bool = True, css: str = "headline") -> Shown:
    return Shown(key, value, money(value, currency, decimals), converged, css)


def revenue_summary(results: dict, currency: str = "$") -> list[Fragment]:
    """"Each community member-month adds $42 (95% CI $6 to $79) by ...", or why it cannot."""
    section = get(results, REVENUE)
    estimates = mapping(get(section, "estimates"))
    preferred = preferred_method(results, REVENUE)
    entry = estimates.get(preferred) if preferred != "naive" else None
    naive = number(get(estimates, "naive", "estimate"))
    if not isinstance(entry, dict):
        if naive is None:
            return [f"Community revenue lift: {NOT_ESTIMATED}."]
        key = f"{REVENUE}.estimates.naive.estimate"
        return ["No causal revenue estimate in this run; the dashboard (naive) comparison says ",
                _money_shown(key, naive, currency, headline_decimals(naive)),
                " per member-month, which mixes the community's effect with who chooses to join."]
    base = f"{REVENUE}.estimates.{preferred}"
    value = number(entry.get("estimate"))
    ok = is_converged(results, REVENUE, preferred, entry)
    decimals = headline_decimals(value)
    parts: list[Fragment] = [
        "Each community member-month adds " if ok else
        f"The preferred method ({method_label(preferred)}) did not converge; it would say each "
        "member-month adds ",
        _money_shown(f"{base}.estimate", value, currency, decimals, converged=ok),
        f" ({entry.get('interval', 'interval')} ",
        _money_shown(f"{base}.low", number(entry.get("low")), currency, decimals),
        " to ", _money_shown(f"{base}.high", number(entry.get("high")), currency, decimals), ")",
        f" by the preferred method ({method_label(preferred)})" if ok else "",
    ]
    parts += _naive_revenue_clause(naive, value if ok else None, currency, decimals)
    parts += _revenue_caveats(section, entry, ok, currency)
    return parts


def _naive_revenue_clause(naive: float | None, value: float | None, currency: str,
                          decimals: int) -> list[Fragment]:
    if naive is None:
        return ["."]
    shown = _money_shown(f"{REVENUE}.estimates.naive.estimate", naive, currency, decimals)
    if value is not None and naive > value and naive > 0:
        share = "mostly" if naive - value > 0.5 * naive else "partly"
        return ["; the dashboard comparison says ", shown,
                f", which {share} reflects that the best customers join."]
    return ["; the dashboard (naive) comparison says ", shown, "."]


def _revenue_caveats(section: Any, entry: dict, ok: bool, currency: str) -> list[Fragment]:
    low, high, value = (number(entry.get(k)) for k in ("low", "high", "estimate"))
    out: list[Fragment] = []
    if ok and low is not None and high is not None and low <= 0 <= high:
        out.append(" The interval includes zero: the data cannot rule out no effect.")
    months = number(get(section, "member_months"))
    if ok and months and value is not None and low is not None and high is not None:
        key = f"{REVENUE}.member_months"
        out += [" Over ", Shown(key, months, f"{months:,.0f}"),
                f" member-months that is about {money(value * months, currency, 0)} of extra "
                f"revenue ({money(low * months, currency, 0)} to "
                f"{money(high * months, currency, 0)})."]
    return out


def _churn_change(ratio: float) -> str:
    change = (1.0 - ratio) * 100
    return f"{abs(change):.0f}% {'less' if change >= 0 else 'more'}"


def retention_summary(results: dict) -> list[Fragment]:
    """"Members churn 28% less (hazard ratio 0.72, 95% CI 0.62-0.84); a naive ..."."""
    estimates = mapping(get(results, RETENTION, "estimates"))
    preferred = preferred_method(results, RETENTION)
    entry = estimates.get(preferred) if preferred != "naive" else None
    naive = number(get(estimates, "naive", "hazard_ratio"))
    naive_key = f"{RETENTION}.estimates.naive.hazard_ratio"
    if not isinstance(entry, dict) or number(entry.get("hazard_ratio")) is None:
        if naive is None:
            return [f"Community retention lift: {NOT_ESTIMATED}."]
        return ["No causal retention estimate in this run; a naive comparison says members "
                f"churn {_churn_change(naive)} (hazard ratio ",
                Shown(naive_key, naive, fixed(naive), css="headline"),
                "), which overstates the effect because customers must survive to join."]
    base = f"{RETENTION}.estimates.{preferred}"
    ratio = number(entry["hazard_ratio"])
    ok = is_converged(results, RETENTION, preferred, entry)
    parts: list[Fragment] = [
        f"Members churn {_churn_change(ratio)}" if ok else
        f"The preferred retention model ({method_label(preferred)}) did not converge; it would "
        f"say members churn {_churn_change(ratio)}",
        " (hazard ratio ", Shown(f"{base}.hazard_ratio", ratio, fixed(ratio), ok, "headline"),
        f", {entry.get('interval', 'interval')} ",
        Shown(f"{base}.low", number(entry.get("low")), fixed(entry.get("low")), css="headline"),
        "-",
        Shown(f"{base}.high", number(entry.get("high")), fixed(entry.get("high")),
              css="headline"),
        f") by the preferred method ({method_label(preferred)})" if ok else ")",
    ]
    if naive is None:
        return [*parts, "."]
    why = (" because customers must survive to join"
           if naive > 0 and ratio > 0 and abs(math.log(naive)) > abs(math.log(ratio)) else "")
    return [*parts, f"; a naive comparison says {_churn_change(naive)} (hazard ratio ",
            Shown(naive_key, naive, fixed(naive), css="headline"), f"){why}."]


def paid_media_summary(results: dict, currency: str = "$") -> list[Fragment]:
    channels = get(results, "paid_media", "channels")
    if not isinstance(channels, dict) or not channels:
        return [f"Paid media: {NOT_ESTIMATED}."]
    spend = [number(get(c, "spend")) for c in channels.values()]
    total = sum(s for s in spend if s is not None)
    parts: list[Fragment] = [f"Paid media: {money(total, currency, 0)} spent on "
                             f"{len(channels)} channel{'s' if len(channels) != 1 else ''}"]
    with_roas = [(name, c["roas"]) for name, c in channels.items()
                 if isinstance(get(c, "roas"), dict) and number(c["roas"].get("estimate"))
                 is not None]
    if not with_roas:
        return [*parts, f"; return on ad spend (ROAS) {NOT_ESTIMATED}."]
    parts.append("; each dollar returns ")
    ranked = sorted(((not is_converged(results, "paid_media", name, roas), -roas["estimate"],
                      name, roas) for name, roas in with_roas), key=lambda r: r[:2])
    for index, (bad, _, name, roas) in enumerate(ranked):
        ok = not bad
        key = f"paid_media.channels.{name}.roas.estimate"
        parts += ["; " if index else "", Shown(key, roas["estimate"],
                                               money(roas["estimate"], currency), ok, "headline"),
                  f" on {name} ({roas.get('interval', 'interval')} "
                  f"{money(roas.get('low'), currency)} to {money(roas.get('high'), currency)})"]
    return [*parts, "."]


def comparison_summary(results: dict, currency: str = "$") -> list[Fragment]:
    rows = [(index, row) for index, row in enumerate(sequence(results.get("comparison")))
            if number(get(row, "revenue_per_dollar", "estimate")) is not None]
    if not rows:
        return [f"Community against paid media, revenue per dollar: {NOT_ESTIMATED} (it needs "
                "both community costs with lift and paid-media ROAS)."]
    rows.sort(key=lambda item: (item[1].get("converged") is False or
                                item[1]["revenue_per_dollar"].get("converged") is False,
                                -item[1]["revenue_per_dollar"]["estimate"]))
    parts: list[Fragment] = ["Revenue per dollar spent: "]
    for position, (index, row) in enumerate(rows):
        rpd = row["revenue_per_dollar"]
        ok = row.get("converged") is not False and rpd.get("converged") is not False
        parts += ["; " if position else "", f"{row.get('name')} ({row.get('kind', '?')}) ",
                  Shown(f"comparison.{index}.revenue_per_dollar.estimate", number(
                      rpd["estimate"]), money(rpd["estimate"], currency), ok, "headline"),
                  f" ({money(rpd.get('low'), currency)} to {money(rpd.get('high'), currency)})"]
    return [*parts, "."]


def summary_sentences(results: dict, currency: str = "$") -> list[list[Fragment]]:
    """The plain-language summary, one sentence (list of fragments) per topic."""
    return [revenue_summary(results, currency), retention_summary(results),
            paid_media_summary(results, currency), comparison_summary(results, currency)]


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
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"r" if i >= numeric_from and isinstance(c, Shown) else "l"}">'
            f"{cell_html(c)}</td>" for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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


def _shown(key: str, value: Any, fmt) -> Shown:
    return Shown(key, number(value), fmt(value))


def _estimate_cells(key: str, entry: dict, fmt) -> list[Cell]:
    field, value = value_of(entry)
    return [Shown(f"{key}.{field}", value, fmt(value)),
            _shown(f"{key}.low", entry.get("low"), fmt),
            _shown(f"{key}.high", entry.get("high"), fmt), entry.get("interval", "")]


def _method_note(method: str, preferred: Any) -> str:
    if method == preferred:
        return "preferred"
    return "for contrast: biased" if method == "naive" else ""


def estimate_rows(results: dict, section: str, fmt, gap_fmt) -> list[list[Cell]]:
    """Every estimator side by side, with its distance from the naive number."""
    estimates = mapping(get(results, section, "estimates"))
    preferred = preferred_method(results, section)
    _, naive = value_of(estimates.get("naive"))
    rows: list[list[Cell]] = []
    for method, entry in estimates.items():
        if not isinstance(entry, dict):
            rows.append([method_label(method), "n/a", "", "", "", "", status(True, NOT_ESTIMATED)])
            continue
        _, value = value_of(entry)
        ok = is_converged(results, section, method, entry)
        gap = "" if method == "naive" or value is None or naive is None else gap_fmt(value, naive)
        rows.append([method_label(method),
                     *_estimate_cells(f"{section}.estimates.{method}", entry, fmt),
                     gap, status(ok, _method_note(method, preferred))])
    return rows


def group_entries(results: dict, section: str) -> list[tuple[str, str, str, dict, bool]]:
    """``(community, method, key, entry, converged)`` for each per-community estimate.

    ``by_community`` holds one estimate per community (from the preferred method); a nested
    ``{community: {method: estimate}}`` form is read too.
    """
    preferred = preferred_method(results, section) or "preferred"
    out = []
    for group, entry in mapping(get(results, section, "by_community")).items():
        if not isinstance(entry, dict):
            continue
        base = f"{section}.by_community.{group}"
        if value_of(entry)[1] is None and any(isinstance(v, dict) for v in entry.values()):
            pairs = [(m, f"{base}.{m}", e) for m, e in entry.items() if isinstance(e, dict)]
        else:
            pairs = [(preferred, base, entry)]
        for method, key, item in pairs:
            out.append((group, method, key, item, is_converged(results, section, method, item)))
    return out


def group_rows(results: dict, section: str, fmt) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for group, method, key, item, ok in group_entries(results, section):
        counts = ", ".join(f"{k.replace('_', ' ')} {item[k]:,}" for k in ("n_treated", "events")
                           if isinstance(item.get(k), int))
        rows.append([group, method_label(method), *_estimate_cells(key, item, fmt), counts,
                     status(ok)])
    return rows


SHORT_LABELS = {"naive": "naive (dashboard)", "did": "diff-in-diff",
                "cox_time_varying": "Cox, time-varying"}


def short_label(method: str) -> str:
    return SHORT_LABELS.get(method, method.replace("_", " "))


def chart_rows(results: dict, section: str) -> list[plots.Row]:
    rows: list[plots.Row] = []
    for method, entry in mapping(get(results, section, "estimates")).items():
        if isinstance(entry, dict):
            rows.append((short_label(method), value_of(entry)[1], number(entry.get("low")),
                         number(entry.get("high")), is_converged(results, section, method, entry)))
    for group, method, _, item, ok in group_entries(results, section):
        rows.append((f"{group}: {short_label(method)}", value_of(item)[1],
                     number(item.get("low")), number(item.get("high")), ok))
    return rows


# --------------------------------------------------------------------------- sections


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def revenue_section(results: dict, currency: str) -> str:
    lift = get(results, REVENUE)
    if not isinstance(get(lift, "estimates"), dict) or not lift["estimates"]:
        return section("revenue", "Community revenue lift", missing("Community revenue lift"))
    fmt = lambda v: money(v, currency)  # noqa: E731
    gap = lambda v, n: f"{money(v - n, currency)} vs naive"  # noqa: E731
    months = number(lift.get("member_months"))
    intro = ("<p>Extra revenue per member-month (" + esc(currency) + " per member-month), each "
             "method beside the naive comparison that dashboards show.")
    if months is not None:
        intro += f" Member-months in the window: {_shown(f'{REVENUE}.member_months', months, lambda v: f'{v:,.0f}').html()}."
    body = intro + "</p>" + table(
        ["Method", "Estimate", "Low", "High", "Interval", "Difference", "Status"],
        estimate_rows(results, REVENUE, fmt, gap))
    groups = group_rows(results, REVENUE, fmt)
    body += "<h3>Per community</h3>" + (table(
        ["Community", "Method", "Estimate", "Low", "High", "Interval", "Counts", "Status"],
        groups, numeric_from=2) if groups else missing("Per-community revenue lift"))
    body += figure(plots.interval_chart(chart_rows(results, REVENUE), reference=0.0,
                                        xlabel=f"{currency} per member-month",
                                        title="Revenue lift per member-month"),
                   "Revenue lift per member-month with intervals")
    return section("revenue", "Community revenue lift", body)


def retention_section(results: dict) -> str:
    if not isinstance(get(results, RETENTION, "estimates"), dict) or \
            not results[RETENTION]["estimates"]:
        return section("retention", "Retention", missing("Community retention lift"))
    gap = lambda v, n: f"churn {_churn_change(v)} vs {_churn_change(n)} naive"  # noqa: E731
    body = ("<p>Hazard ratio of churn, members against non-members: below 1 means members churn "
            "less (0.72 = 28% less in any month).</p>" + table(
                ["Method", "Hazard ratio", "Low", "High", "Interval", "Churn", "Status"],
                estimate_rows(results, RETENTION, fixed, gap)))
    groups = group_rows(results, RETENTION, fixed)
    body += "<h3>Per community</h3>" + (table(
        ["Community", "Method", "Hazard ratio", "Low", "High", "Interval", "Counts", "Status"],
        groups, numeric_from=2) if groups else missing("Per-community retention lift"))
    body += figure(plots.interval_chart(chart_rows(results, RETENTION), reference=1.0, log=True,
                                        xlabel="hazard ratio of churn (log scale; 1 = no effect)",
                                        title="Churn hazard ratio, members vs non-members"),
                   "Churn hazard ratios with intervals")
    return section("retention", "Retention", body)


def _roas_cells(results: dict, name: str, field: str, entry: Any) -> tuple[list[Cell], bool]:
    if not isinstance(entry, dict):
        return ["not estimated", "", "", ""], True
    key = f"paid_media.channels.{name}.{field}"
    return _estimate_cells(key, entry, fixed), is_converged(results, "paid_media", name, entry)


def paid_media_section(results: dict, currency: str) -> str:
    channels = get(results, "paid_media", "channels")
    if not isinstance(channels, dict) or not channels:
        return section("paid-media", "Paid media", missing("Paid media"))
    rows: list[list[Cell]] = []
    chart: list[plots.Row] = []
    for name, entry in channels.items():
        roas, ok_roas = _roas_cells(results, name, "roas", get(entry, "roas"))
        marginal, ok_marginal = _roas_cells(results, name, "marginal_roas",
                                            get(entry, "marginal_roas"))
        spend = _shown(f"paid_media.channels.{name}.spend", get(entry, "spend"),
                       lambda v: money(v, currency))
        rows.append([name, spend, *roas, *marginal[:3], status(ok_roas and ok_marginal)])
        if isinstance(get(entry, "roas"), dict):
            chart.append((name, number(entry["roas"].get("estimate")),
                          number(entry["roas"].get("low")), number(entry["roas"].get("high")),
                          ok_roas))
    body = ("<p>Spend in the analysis window and return on ad spend (revenue caused per "
            f"{esc(currency)}1 of spend). Not estimated means the media-mix model did not run."
            "</p>" + table(["Channel", "Spend", "ROAS", "Low", "High", "Interval",
                            "Marginal ROAS", "Low", "High", "Status"], rows))
    body += figure(plots.bar_chart([(n, number(get(c, "spend"))) for n, c in channels.items()],
                                   xlabel=f"spend ({currency})", title="Spend per channel"),
                   "Spend per channel")
    body += figure(plots.interval_chart(chart, reference=1.0, xlabel="ROAS (1 = break-even)",
                                        title="ROAS per channel"), "ROAS per channel")
    return section("paid-media", "Paid media", body)


def comparison_section(results: dict, currency: str) -> str:
    rows_in = [r for r in sequence(results.get("comparison")) if isinstance(r, dict)]
    if not rows_in:
        return section("comparison", "Community against paid media",
                       missing("Comparison of revenue per dollar"))
    fmt = lambda v: money(v, currency)  # noqa: E731
    rows: list[list[Cell]] = []
    chart: list[plots.Row] = []
    for index, row in enumerate(results["comparison"]):
        if not isinstance(row, dict):
            continue
        base = f"comparison.{index}"
        inc = row.get("incremental_revenue") if isinstance(row.get("incremental_revenue"),
                                                           dict) else {}
        rpd = row.get("revenue_per_dollar") if isinstance(row.get("revenue_per_dollar"),
                                                          dict) else {}
        ok = row.get("converged") is not False and rpd.get("converged") is not False \
            and inc.get("converged") is not False
        rows.append([row.get("name", ""), row.get("kind", ""),
                     _shown(f"{base}.cost", row.get("cost"), fmt),
                     *_estimate_cells(f"{base}.incremental_revenue", inc, fmt)[:3],
                     *_estimate_cells(f"{base}.revenue_per_dollar", rpd, fmt)[:3], status(ok)])
        chart.append((f"{row.get('name', '')} ({row.get('kind', '')})",
                      number(rpd.get("estimate")), number(rpd.get("low")),
                      number(rpd.get("high")), ok))
    body = ("<p>Incremental revenue per dollar spent, for paid channels and communities alike "
            "(community: revenue lift plus retention revenue, divided by community cost).</p>"
            + table(["Name", "Kind", "Cost", "Incremental revenue", "Low", "High",
                     "Revenue per $", "Low", "High", "Status"], rows, numeric_from=2))
    body += figure(plots.interval_chart(chart, reference=1.0, xlabel="revenue per dollar",
                                        title="Revenue per dollar"), "Revenue per dollar")
    return section("comparison", "Community against paid media", body)


def budget_section(results: dict) -> str:
    scenarios = results.get("budget_scenarios")
    if isinstance(scenarios, dict):
        items = [(str(k), {"scenario": k, **v} if isinstance(v, dict) else {"scenario": k,
                                                                            "value": v})
                 for k, v in scenarios.items()]
    elif isinstance(scenarios, list):
        items = [(str(i), row) for i, row in enumerate(scenarios) if isinstance(row, dict)]
    else:
        items = []
    if not items:
        return section("budget", "Budget scenarios", missing("Budget scenarios"))
    columns = list(dict.fromkeys(k for _, row in items for k in row))
    rows: list[list[Cell]] = [
        [_shown(f"budget_scenarios.{i}.{c}", row.get(c), fixed)
         if number(row.get(c)) is not None else flat_text(row.get(c)) for c in columns]
        for i, row in items]
    return section("budget", "Budget scenarios", table(columns, rows))


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


def diagnostics_section(results: dict) -> str:
    diagnostics = results.get("diagnostics")
    if not isinstance(diagnostics, dict) or not diagnostics:
        return section("diagnostics", "Diagnostics", missing("Diagnostics"))
    parts = ["<p>Every warning a model raised, whether it converged, and the checks behind "
             "them. Read these before relying on a number.</p>"]
    for model, diag in diagnostics.items():
        if not isinstance(diag, dict):
            continue
        ok = diag.get("converged") is not False
        badge = ('<span class="ok">converged</span>' if ok else
                 f'<span class="not-converged">{esc(NOT_CONVERGED)}</span>')
        warnings = as_list(diag.get("warnings"))
        items = "".join(f'<li class="warning">{esc(w)}</li>' for w in warnings)
        parts.append(f'<div class="model"><h3>{esc(model)} {badge}</h3>'
                     + (f"<ul>{items}</ul>" if items else '<p class="note">No warnings.</p>'))
        checks = flatten(mapping(diag.get("checks")))
        if checks:
            parts.append('<div class="checks">'
                         + key_value_table(checks, f"diagnostics.{model}.checks") + "</div>")
        parts.append("</div>")
    return section("diagnostics", "Diagnostics", "".join(parts))


def data_section(results: dict) -> str:
    data = results.get("data")
    if not isinstance(data, dict) or not data:
        return section("data", "Data quality", missing("Data summary"))
    window = f"{data.get('start', '?')} to {data.get('end', '?')}"
    churn = data.get("churn") if isinstance(data.get("churn"), dict) else {}
    rule = {"column": "churned_at column in the customers table",
            "inactivity": "inactivity rule (no order for "
                          f"{get(results, 'config', 'inactivity_days') or '?'} days)"}
    intro = (f"<p>Analysis window {esc(window)}. Churn taken from the "
             f"{esc(rule.get(str(churn.get('rule')), churn.get('rule') or 'unrecorded rule'))}.")
    link_rate = number(get(data, "identity", "link_rate"))
    if link_rate is not None:
        intro += (" Member rows linked to a customer: "
                  + Shown("data.identity.link_rate", link_rate, f"{link_rate:.1%}").html() + ".")
    excluded = mapping(get(data, "excluded"))
    intro += (" Rows excluded: " + ", ".join(f"{esc(k.replace('_', ' '))} {esc(flat_text(v))}"
                                             for k, v in excluded.items()) + "."
              if excluded else " No rows excluded.")
    notes = "".join(f"<li>{esc(n)}</li>" for n in as_list(data.get("notes")))
    body = intro + "</p>" + (f"<ul>{notes}</ul>" if notes else "")
    return section("data", "Data quality", body + key_value_table(flatten(data), "data"))


def assumptions_section(results: dict) -> str:
    items = "".join(f"<dt>{esc(term)}</dt><dd>{esc(text)}</dd>" for term, text in ESTIMANDS)
    methods = [m for sec in (REVENUE, RETENTION)
               for m in mapping(get(results, sec, "estimates"))]
    notes = "".join(f"<dt>{esc(method_label(m))}</dt><dd>{esc(METHOD_NOTES[m])}</dd>"
                    for m in dict.fromkeys(methods) if m in METHOD_NOTES)
    body = f"<h3>Definitions</h3><dl>{items}</dl>"
    body += f"<h3>Methods used</h3><dl>{notes}</dl>" if notes else ""
    run = [("schema_version", results.get("schema_version")),
           ("generated_at", results.get("generated_at"))]
    run += flatten(mapping(results.get("config")), "config")
    run += flatten(mapping(results.get("environment")), "environment")
    body += "<h3>Run settings and versions</h3>" + key_value_table(
        [(k, v) for k, v in run if v is not None], grouping=False)
    return section("assumptions", "Assumptions and method notes", body)


# --------------------------------------------------------------------------- page

CSS = """
@page { size: A4; margin: 14mm 12mm; }
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 10.5pt;
       color: #1b1b1b; max-width: 60em; margin: 1.5em auto; padding: 0 1em; line-height: 1.4; }
h1 { font-size: 18pt; margin-bottom: 0.2em; }
h2 { font-size: 13.5pt; border-bottom: 2px solid #1f5f99; padding-bottom: 2px; margin-top: 1.6em; }
h3 { font-size: 11pt; margin: 1em 0 0.3em; }
.meta { color: #555; font-size: 9pt; }
.banner { background: #c0392b; color: #fff; padding: 0.6em 0.9em; font-weight: bold;
          border-radius: 4px; margin: 0.8em 0; }
.caution { background: #fff4d6; border-left: 5px solid #e0a100; padding: 0.5em 0.8em; }
.summary { background: #f2f6fa; border-left: 5px solid #1f5f99; padding: 0.4em 1em; }
.summary p { margin: 0.5em 0; font-size: 11.5pt; }
.headline { font-weight: bold; }
.not-converged { color: #fff; background: #c0392b; font-weight: bold; padding: 0 0.3em;
                 border-radius: 3px; white-space: nowrap; }
.ok { color: #1e7d32; font-size: 9pt; font-weight: normal; }
.missing { color: #555; font-style: italic; }
.note { color: #555; }
.warning { color: #7a4a00; }
table { border-collapse: collapse; margin: 0.4em 0 0.8em; font-size: 9pt; }
th, td { border-bottom: 1px solid #ddd; padding: 2px 7px; vertical-align: top; }
th { background: #eef2f6; text-align: left; }
td.r { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr, figure, .summary, .banner { break-inside: avoid; }
.checks table { font-size: 8pt; }
figure { margin: 0.4em 0; }
figure img { max-width: 100%; height: auto; }
dt { font-weight: bold; margin-top: 0.4em; }
dd { margin-left: 1.2em; }
nav { font-size: 9pt; }
"""

SECTIONS = [("summary", "Summary"), ("comparison", "Community against paid media"),
            ("revenue", "Revenue lift"), ("retention", "Retention"),
            ("paid-media", "Paid media"), ("budget", "Budget scenarios"),
            ("diagnostics", "Diagnostics"), ("data", "Data quality"),
            ("assumptions", "Assumptions")]


def banners(results: dict) -> str:
    out = ""
    bad = unconverged_models(results)
    if bad:
        out += (f'<div class="banner" id="not-converged-banner">{esc(NOT_CONVERGED)}: '
                f"{esc(', '.join(bad))} did not converge. Numbers from them are labelled and must "
                "not be used for decisions.</div>")
    diagnostics = mapping(results.get("diagnostics"))
    count = sum(len(as_list(d.get("warnings"))) for d in diagnostics.values() if isinstance(d, dict))
    if count:
        out += (f'<p class="caution">{count} diagnostic warning{"s" if count != 1 else ""}: '
                'see <a href="#diagnostics">Diagnostics</a>.</p>')
    return out


def summary_section(results: dict, currency: str) -> str:
    sentences = "".join(f'<p class="sentence">{render(s)}</p>'
                        for s in summary_sentences(results, currency))
    return section("summary", "Summary", f'<div class="summary">{sentences}</div>')


def render_html(results: dict, *, currency: str = "$") -> str:
    """The whole report as one HTML string (see :func:`write_html`)."""
    data = results.get("data") if isinstance(results.get("data"), dict) else {}
    meta = (f"Window {data.get('start', '?')} to {data.get('end', '?')}; source "
            f"{data.get('source', 'not recorded')}; generated {results.get('generated_at', '?')}; "
            f"results schema {results.get('schema_version', '?')}.")
    nav = " | ".join(f'<a href="#{a}">{esc(t)}</a>' for a, t in SECTIONS)
    body = [banners(results), f"<nav>{nav}</nav>", summary_section(results, currency),
            comparison_section(results, currency), revenue_section(results, currency),
            retention_section(results), paid_media_section(results, currency),
            budget_section(results), diagnostics_section(results), data_section(results),
            assumptions_section(results)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Community ROI report</title>"
            f"<style>{CSS}</style></head><body><h1>What the community earns compared with "
            f'paid ads</h1><p class="meta">{esc(meta)}</p>' + "".join(body)
            + "</body></html>\n")


def write_html(results: dict, path: str | Path, *, currency: str = "$") -> Path:
    """Write the self-contained HTML report atomically.

    Parameters
    ----------
    results : dict
        The parsed ``results.json``; missing or null sections are reported as not estimated.
    path : str or Path
        Where to write (parent folders are created).
    currency : str
        Symbol printed before money amounts.

    Returns
    -------
    Path
        ``path``.
    """
    return write_atomic(Path(path), render_html(results, currency=currency))
