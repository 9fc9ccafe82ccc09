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

from roi.reports.base import esc, get, money, number, section, shown, table

EXPERIMENTS = "community_experiment.experiments"


def experiment_and_join_month(results: dict, currency: str = "$") -> str:
    """The "Experiment and join month" section, or "" when there is nothing to say."""
    parts = [_experiments(results, currency), _join_month(results, currency)]
    body = "".join(p for p in parts if p)
    return section("experiment", "Randomized experiment and join month", body) if body else ""


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
    intro = ("<h3>Randomized invitation experiment</h3><p>Customers were invited at random "
             "or held out. The CACE is the revenue a member-month adds for customers who "
             "joined because they were invited (months after churn count as zero, so kept "
             "customers count too); beside it the observational lift of the same community. "
             "Where an experiment has a first-stage F of 10 or more, the comparison and the "
             "budget use its CACE for that community.</p>")
    return intro + table(["Experiment", "CACE", "95% CI", "Observational", "Interval",
                          "Agreement", "First-stage F", "Warnings"], rows)


def _join_month(results: dict, currency: str) -> str:
    block = get(results, "community_revenue_lift", "join_month_adjusted")
    if not isinstance(block, dict) or not block.get("detected"):
        return ""
    fmt = lambda v: money(v, currency)  # noqa: E731
    key = "community_revenue_lift.join_month_adjusted"
    return ("<h3>Joining after a purchase</h3><p>The event study spikes in the join month: "
            "customers join after buying, so the join month's revenue caused the joining. "
            "The bottom line uses the lift from the month after joining, "
            f"{shown(key + '.estimate', block.get('estimate'), fmt).html()} per member-month "
            f"({esc(fmt(block.get('low')))} to {esc(fmt(block.get('high')))}), instead of "
            f"{shown(key + '.unadjusted', block.get('unadjusted'), fmt).html()}. "
            f"{esc(block.get('rule', ''))}</p>")
