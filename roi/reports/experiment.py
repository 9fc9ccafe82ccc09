"""Report fragments of issue 17: the randomized invitation experiment beside the observational
lift, and the join-month check (which lift the bottom line uses and why).

Self-contained (reads ``results`` only), placed after the revenue-lift section by
:func:`roi.reports.html.render_html`; an empty string when the run has neither.

Examples
--------
>>> experiment_and_join_month({"community_revenue_lift": {}})
''
"""

from __future__ import annotations

from markupsafe import Markup

from roi.reports.base import get, money, number, shown, table

EXPERIMENTS = "community_experiment.experiments"


def experiment_and_join_month(results: dict, currency: str = "$") -> str:
    """The "Experiment and join month" section (experiment.html.j2), or "" when there is
    nothing to say."""
    from roi.reports.html import templates

    experiments, join_month = _experiments(results, currency), _join_month(results, currency)
    if not experiments and not join_month:
        return ""
    return templates().get_template("experiment.html.j2").render(
        experiments=Markup(experiments) if experiments else None, join_month=join_month)


def _experiments(results: dict, currency: str) -> str:
    experiments = get(results, "community_experiment", "experiments")
    if not isinstance(experiments, list) or not experiments:
        return ""
    fmt = lambda v: money(v, currency)  # noqa: E731
    rows = []
    for i, entry in enumerate(experiments):
        key = f"{EXPERIMENTS}.{i}"
        cace = entry.get("cace_per_member_month") or {}
        observed = entry.get("observational") or {}
        agree = (entry.get("agreement") or {}).get("agree")
        verdict = {True: "agree", False: "disagree", None: "cannot compare"}[agree]
        f = number(entry.get("first_stage_f"))
        rows.append([f"{entry.get('name')} ({entry.get('community') or 'any community'})",
                     shown(f"{key}.cace_per_member_month.estimate", cace.get("estimate"), fmt),
                     f"{fmt(cace.get('low'))} to {fmt(cace.get('high'))}",
                     shown(f"{key}.observational.estimate", observed.get("estimate"), fmt),
                     f"{fmt(observed.get('low'))} to {fmt(observed.get('high'))}",
                     verdict, "n/a" if f is None else f"{f:,.1f}",
                     "; ".join(str(w) for w in entry.get("warnings") or [])])
    return table(["Experiment", "CACE", "95% CI", "Observational", "Interval",
                          "Agreement", "First-stage F", "Warnings"], rows)


def _join_month(results: dict, currency: str) -> dict | None:
    """The join-month adjusted lift's keyed numbers and rule, or None when not detected."""
    block = get(results, "community_revenue_lift", "join_month_adjusted")
    if not isinstance(block, dict) or not block.get("detected"):
        return None
    fmt = lambda v: money(v, currency)  # noqa: E731
    key = "community_revenue_lift.join_month_adjusted"
    return {"estimate": Markup(shown(key + ".estimate", block.get("estimate"), fmt).html()),
            "low": fmt(block.get("low")), "high": fmt(block.get("high")),
            "unadjusted": Markup(shown(key + ".unadjusted", block.get("unadjusted"),
                                       fmt).html()),
            "rule": str(block.get("rule", ""))}
