"""Caveats that travel with the number they bear on (issue 15).

Every report shows an estimate with the caveats of *that* estimate beside it: the model's own
warnings (a pre-trend test that rejects, units left out, thin coverage, poor overlap), a refusal
with its reason, and the sensitivity sentence computed for that method. The top banner is kept
for what touches the bottom line only: the preferred revenue-lift method, the preferred hazard
ratio and the comparison rows (paid channels come from the media-mix model). Problems of models
that the bottom line does not use are said in their own sections.

Examples
--------
>>> results = {"community_revenue_lift": {"preferred": "did", "estimates": {"bayesian": {
...     "estimate": None, "refused": "no attribution"}}}}
>>> estimate_caveats(results, "community_revenue_lift", "bayesian")
['refused: no attribution']
"""

from __future__ import annotations

from typing import Any

from roi.bottom_line import pretrend_caveats
from roi.reports.base import (
    NOT_CONVERGED,
    RETENTION,
    REVENUE,
    as_list,
    diagnostics_entry,
    get,
    is_converged,
    mapping,
    preferred_method,
    sequence,
)
from roi.reports.media import comparison_rows, media_converged


def refusal(entry: Any) -> str | None:
    """The reason an estimator was refused (``refused`` in its entry), or None."""
    reason = get(entry, "refused")
    return str(reason) if reason else None


def sensitivity_summaries(results: dict, section: str, method: str) -> list[str]:
    """The sensitivity sentences computed for ``method`` (issue 17): relative magnitudes of the
    DiD, the robustness value of AIPW/regression, the E-value of the hazard ratio."""
    block = mapping(get(results, section, "sensitivity"))
    out = []
    owner = block.get("estimator") or block.get("method")
    if section == REVENUE and block.get("estimator") is None:
        owner = "did"   # relative magnitudes are computed for the additive DiD
    if owner == method and isinstance(block.get("summary"), str):
        out.append(f"sensitivity: {block['summary']}")
    robustness = mapping(block.get("robustness_value"))
    if robustness.get("method") == method and isinstance(robustness.get("summary"), str):
        out.append(f"sensitivity: {robustness['summary']}")
    return out


def _overlap(diag: dict | None) -> list[str]:
    overlap = mapping(get(diag, "checks", "overlap"))
    if overlap.get("passed") is False:
        return ["poor overlap: some members have no comparable non-members (propensity scores "
                "near 0 or 1), so the adjustment extrapolates"]
    return []


def estimate_caveats(results: dict, section: str, method: str) -> list[str]:
    """Every caveat bearing on the overall estimate of ``method`` in ``section``."""
    entry = get(results, section, "estimates", method)
    reason = refusal(entry)
    if reason:
        return [f"refused: {reason}"]
    diag = diagnostics_entry(results, section, method)
    warnings = [str(w) for w in as_list(get(diag, "warnings"))]
    if not any("overlap" in w.lower() for w in warnings):
        warnings += _overlap(diag)
    return warnings + sensitivity_summaries(results, section, method)


def community_caveats(results: dict, section: str, community: str) -> list[str]:
    """Caveats of one community's estimate: its refusal, its own sensitivity sentence."""
    entry = get(results, section, "by_community", community)
    reason = refusal(entry)
    if reason:
        return [f"refused: {reason}"]
    own = get(results, section, "sensitivity", "by_community", community, "summary")
    return [f"sensitivity: {own}"] if isinstance(own, str) and own else []


def headline_caveats(results: dict, section: str) -> list[str]:
    """The caveats of the preferred estimate of a section (shown beside the summary's number)."""
    method = preferred_method(results, section)
    if method is None or not isinstance(get(results, section, "estimates", method), dict):
        return []
    return estimate_caveats(results, section, method)


def bottom_line_alarms(results: dict) -> tuple[list[str], list[str]]:
    """``(not converged, cautions)`` for the top banner: only what touches the bottom line."""
    bad, cautions = [], []
    for section, label in ((REVENUE, "revenue lift"), (RETENTION, "churn hazard ratio")):
        method = preferred_method(results, section)
        entry = get(results, section, "estimates", method) if method else None
        if not isinstance(entry, dict) or refusal(entry):
            continue
        if not is_converged(results, section, method, entry):
            bad.append(f"the preferred {label} ({method})")
    revenue = preferred_method(results, REVENUE)
    if revenue and isinstance(get(results, REVENUE, "estimates", revenue), dict):
        cautions += [f"Revenue lift ({revenue}, used in the bottom line): {c}"
                     for c in pretrend_caveats(results, revenue)]
    if not media_converged(results) and any(
            isinstance(get(c, "roas"), dict)
            for c in mapping(get(results, "paid_media", "channels")).values()):
        bad.append("the media-mix model behind the paid channels' ROAS")
    bad += [f"comparison row {row.get('name')}" for _, row, ok in comparison_rows(results)
            if not ok and row.get("kind") != "paid"]
    return list(dict.fromkeys(bad)), cautions


def other_problems(results: dict) -> list[str]:
    """Models that failed or were refused but feed no number of the bottom line (said in their
    own sections and in Diagnostics, never in the top banner)."""
    used = {f"revenue_{preferred_method(results, REVENUE)}",
            f"retention_{preferred_method(results, RETENTION)}", "paid_media_mmm"}
    out = []
    for name, diag in mapping(results.get("diagnostics")).items():
        if not isinstance(diag, dict) or name in used or diag.get("converged") is not False:
            continue
        refused = get(diag, "checks", "refused")
        out.append(f"{name}: refused ({refused})" if refused else f"{name}: {NOT_CONVERGED}")
    return out


def joined(caveats: list[str]) -> str:
    """Caveats as one cell of text."""
    return "; ".join(dict.fromkeys(c.strip().rstrip(".") for c in sequence(caveats) if c))
