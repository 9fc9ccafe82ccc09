"""The Diagnostics section as readable tables with plain names (issue 15).

A model's ``checks`` are nested dicts written for machines
(``balance.smd.acquisition_channel_referral.smd_before``). Here the tables a reader knows get
their own shape (covariate balance: one row per covariate, before and after weighting;
propensity quantiles: members against non-members; proportional-hazards p-values: one row per
term) and every other check is one row whose name is spelt out ("pre-trend test (event time):
p-value"). Numbers stay keyed to their results path.

Examples
--------
>>> plain_name("pretrend_event.p_value")
'pre-trend test (event time): p-value'
"""

from __future__ import annotations

from typing import Any

from roi.reports.base import (
    NOT_CONVERGED,
    Cell,
    Shown,
    as_list,
    esc,
    flat_text,
    flatten,
    get,
    mapping,
    method_label,
    missing,
    number,
    section,
    table,
)

WORDS = {
    "pretrend": "pre-trend test (all leads)", "pretrend_event": "pre-trend test (event time)",
    "p_value": "p-value", "df": "degrees of freedom", "statistic": "test statistic",
    "n_units": "customers", "n_periods": "months", "n_cells": "cohort-month cells",
    "se": "standard error", "smd_before": "SMD before weighting",
    "smd_after": "SMD after weighting", "max_abs_smd_after": "largest |SMD| after weighting",
    "r_hat_max": "largest R-hat", "ess_bulk_min": "smallest bulk ESS",
    "ess_tail_min": "smallest tail ESS", "divergences": "divergent transitions",
    "share_covered": "share covered", "ph_p": "proportional-hazards p-value",
    "leads_left_out": "leads left out", "control_effective_share": "effective share of controls",
    "treated_share_trimmed": "share of members trimmed", "refused": "refused because",
}
PREFIXES = {"revenue_": "Revenue lift", "retention_": "Retention", "paid_media": "Paid media"}


def plain_name(path: str) -> str:
    """``a.b_c`` -> "a: b c" with the known words spelt out."""
    return ": ".join(WORDS.get(part, part.replace("_", " ")) for part in path.split("."))


def model_title(name: str) -> str:
    """``revenue_did`` -> "Revenue lift: difference-in-differences"."""
    for prefix, topic in PREFIXES.items():
        if name.startswith(prefix):
            method = name.removeprefix(prefix).strip("_") or "model"
            if topic == "Retention" and method == "bayesian":
                method = "bayesian survival"
            return f"{topic}: {method_label(method)}"
    return name.replace("_", " ").capitalize()


def _cell(key: str, value: Any) -> Cell:
    if number(value) is None:
        return flat_text(value)
    text = f"{value:.1%}" if key.endswith(("share", "rate", "share_covered")) else \
        flat_text(value)
    return Shown(key, number(value), text)


def _balance(checks: dict, base: str) -> str:
    smd = mapping(get(checks, "balance", "smd"))
    rows = [[name.replace("_", " "), _cell(f"{base}.balance.smd.{name}.smd_before",
                                           get(v, "smd_before")),
             _cell(f"{base}.balance.smd.{name}.smd_after", get(v, "smd_after"))]
            for name, v in smd.items() if isinstance(v, dict)]
    if not rows:
        return ""
    threshold = get(checks, "balance", "threshold")
    return (f"<h4>Covariate balance (standardised mean difference; below {esc(threshold)} is "
            "balanced)</h4>" + table(["Covariate", "Before weighting", "After weighting"],
                                     rows))


def _quantiles(checks: dict, base: str) -> str:
    quantiles = mapping(get(checks, "overlap", "quantiles"))
    groups = [g for g in ("treated", "control") if isinstance(quantiles.get(g), dict)]
    if not groups:
        return ""
    levels = list(quantiles[groups[0]])
    rows = [[f"{float(q):.0%}" if number(_float(q)) is not None else q,
             *[_cell(f"{base}.overlap.quantiles.{g}.{q}", get(quantiles, g, q))
               for g in groups]] for q in levels]
    names = {"treated": "Members", "control": "Non-members"}
    return ("<h4>Overlap: propensity score quantiles</h4>"
            + table(["Quantile", *[names[g] for g in groups]], rows))


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _ph(checks: dict, base: str) -> str:
    rows = [[term, _cell(f"{base}.ph_p.{term}", p)] for term, p in mapping(checks.get("ph_p"))
            .items()]
    return ("<h4>Proportional hazards (small p-values question the assumption)</h4>"
            + table(["Term", "p-value"], rows)) if rows else ""


SHAPED = ("balance.smd.", "overlap.quantiles.", "ph_p.")


def checks_html(checks: dict, base: str) -> str:
    """The shaped tables, then one plain-named row per remaining check."""
    rows = [[plain_name(name), _cell(f"{base}.{name}", value)]
            for name, value in flatten(checks) if not name.startswith(SHAPED)]
    out = table(["Check", "Value"], rows) if rows else ""
    return out + _balance(checks, base) + _quantiles(checks, base) + _ph(checks, base)


def _badge(diag: dict) -> str:
    """"refused", "not converged" or "converged" (diagnostics.html.j2 draws the badge)."""
    if get(diag, "checks", "refused"):
        return "refused"
    if diag.get("converged") is False:
        return "not converged"
    return "converged"


def diagnostics_section(results: dict, *, other_problems: list[str]) -> str:
    """Every model: plain title, badge, warnings, checks as tables (diagnostics.html.j2)."""
    from markupsafe import Markup

    from roi.reports.html import templates

    diagnostics = results.get("diagnostics")
    if not isinstance(diagnostics, dict) or not diagnostics:
        return section("diagnostics", "Diagnostics", missing("Diagnostics"))
    models = [{"title": model_title(model), "name": model, "badge": _badge(diag),
               "warnings": [str(w) for w in as_list(diag.get("warnings"))],
               "checks": Markup(checks_html(mapping(diag.get("checks")),
                                            f"diagnostics.{model}.checks"))}
              for model, diag in diagnostics.items() if isinstance(diag, dict)]
    return templates().get_template("diagnostics.html.j2").render(
        models=models, other_problems="; ".join(other_problems),
        not_converged=NOT_CONVERGED)
