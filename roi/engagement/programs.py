"""Programmes (issue 20, part 2): the effect of entering a programme (ambassadors, levels,
perks) among members, and the revenue per programme dollar.

Entries come from the optional ``programs`` table, linked to customers as members are
(:func:`roi.data.dataset._linked_programs`); only rows of analysed members that started inside
the window are used (``data.row_accounting.programs``). A member's entry is the first
``started_at`` of that programme, moved to the membership start when earlier. Entering is
absorbing: ``ended_at`` does not end the effect (the estimand is the effect of having entered,
as membership's is).

Design: per programme, the staggered DiD of :class:`roi.revenue_lift.did.StaggeredDiD` on
member-months only (from the month after the join month: the join month is partial and the
membership effect is still building), cohorts = month of entry, controls = members not (yet)
in the programme (``not_yet_treated``), member-month weights, additive. The event study's
leads are the pre-trend check; the relative-magnitudes sensitivity is
:func:`roi.sensitivity.results.parallel_trends_block`. Programme members choose (or are
chosen for) the programme: the DiD removes stable differences, not a programme given to
members whose revenue was about to rise.

Revenue per programme dollar = ATT x the programme's member-months from entry on (all of them,
the proportional rule) / the programme's cost: ``community_costs`` rows whose ``category``
equals the programme's name (case-insensitive).

Examples
--------
>>> import pandas as pd
>>> entries = pd.DataFrame({"customer_id": ["a"], "program": ["vip"],
...                         "entry_month_index": [24290]})
>>> sorted(program_groups(entries, "vip").items())
[('a', 24290)]
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from roi.results import EffectResult


def program_entries(dataset) -> pd.DataFrame:
    """Per member and programme: ``customer_id``, ``program``, ``entered`` (first start,
    not before the membership start), ``entry_month_index``; one SQL statement."""
    from roi.data.source import fetch_frame

    frame = fetch_frame(dataset.engine, program_entries_select(dataset))
    frame["entry_month_index"] = frame["entry_month_index"].astype("int64")
    return frame


def program_members(dataset) -> dict[str, int]:
    """Members who entered each programme (one ``GROUP BY``; every customer of ``dataset``)."""
    from roi.data.source import execute_scalar_rows

    entries = program_entries_select(dataset).subquery("program_entries")
    rows = execute_scalar_rows(dataset.engine, sa.select(entries.c.program, sa.func.count())
                               .group_by(entries.c.program))
    return {str(name): int(n) for name, n in rows}


def program_entries_select(dataset) -> sa.Select:
    """:func:`program_entries`'s statement (to fetch, or to join inside the database)."""
    from roi.data import sql_parts

    programs, life = dataset.tables["programs"], dataset.tables["life"]
    entered = sa.func.greatest(sa.func.min(programs.c.started_at), life.c.member_start)
    query = (sa.select(programs.c.customer_id, programs.c.program, entered.label("entered"),
                       sql_parts.month_of(entered).label("entry_month_index"))
             .select_from(programs.join(life, programs.c.customer_id == life.c.customer_id))
             .where(life.c.member_start.is_not(None),
                    programs.c.started_at >= sa.literal(dataset.start, sa.Date),
                    programs.c.started_at <= sa.literal(dataset.end, sa.Date))
             .group_by(programs.c.customer_id, programs.c.program, life.c.member_start))
    return query


def program_costs(dataset, names: list[str]) -> dict[str, float]:
    """Total ``community_costs.cost`` per programme (rows whose ``category`` names it)."""
    from roi.data.source import execute_scalar_rows

    costs = dataset.tables.get("community_costs")
    if costs is None or "category" not in costs.c or not names:
        return {}
    key = sa.func.lower(costs.c.category)
    rows = execute_scalar_rows(dataset.engine, sa.select(key, sa.func.sum(costs.c.cost))
                               .where(key.in_([n.lower() for n in names])).group_by(key))
    found = {str(k): float(v) for k, v in rows}
    return {n: found[n.lower()] for n in names if n.lower() in found}


def program_groups(entries: pd.DataFrame, program: str) -> dict[str, int]:
    """Customer -> entry month index of one programme."""
    mine = entries[entries["program"] == program]
    return dict(zip(mine["customer_id"], mine["entry_month_index"], strict=True))


class ProgramLift:
    """Per programme, the staggered DiD of entering it among members (module docstring).

    Attributes
    ----------
    results_ : dict of str to EffectResult
        Per programme (method ``did``; ``tables["dynamic"]`` the event study).
    member_months_ : dict of str to int
        Per programme, whole member-months from entry on.
    """

    def fit(self, panel: pd.DataFrame, entries: pd.DataFrame, *,
            outcome: str = "revenue") -> ProgramLift:
        from roi.engagement.tiers import all_member_months
        from roi.results import refused_effect
        from roi.revenue_lift.did import StaggeredDiD

        columns = ["customer_id", "month_index", "join_month_index", outcome]
        member = panel["active"] & panel["join_month_index"].notna()
        rows = panel.loc[member, columns]
        rows = rows.loc[rows["month_index"] > rows["join_month_index"]].copy()
        self.results_, self.member_months_ = {}, {}
        for program in sorted(entries["program"].unique()):
            groups = program_groups(entries, program)
            rows["group"] = rows["customer_id"].map(groups).astype("Float64")
            self.member_months_[program] = int((rows["month_index"] >= rows["group"])
                                               .fillna(False).sum())
            model = StaggeredDiD(control_group="not_yet_treated", weights="member_months")
            fitted = model.fit(rows.assign(group=rows["group"].fillna(0).astype("int64")),
                               unit="customer_id", time="month_index", group="group",
                               outcome=outcome).result_
            if fitted.refused:   # the DiD's refusal, under this block's estimand
                fitted = refused_effect(method="did", estimand="program_revenue_lift",
                                        reason=fitted.refused, interval="95% CI",
                                        scale="currency per member-month")
            # Entrants without a member-month before entry are credited the covered
            # entrants' lift in proportion to their revenue (the run's rule).
            self.results_[program] = all_member_months(
                fitted, rows.assign(join_month_index=rows["group"]), outcome=outcome)
        return self


def fit_programs_in_database(lift: ProgramLift, dataset, names: list[str], *,
                             outcome: str = "revenue") -> ProgramLift | None:
    """:meth:`ProgramLift.fit` from sums the database returns over every customer of
    ``dataset`` (equal to it on the whole panel): per programme one
    :func:`roi.revenue_lift.did_sql.did_aggregates` over members' active months after the join
    month, group = the programme's entry month (0 for members not in it), and one ``GROUP BY``
    for the proportional rule. ``None`` when a programme has no member outside it (the
    in-memory fit then makes the last cohort the control, which the sums do not)."""
    from roi.engagement.tiers import coverage_rule, coverage_sums, scaled_to_all_member_months
    from roi.results import refused_effect
    from roi.revenue_lift._did_panel import NEVER
    from roi.revenue_lift.did import StaggeredDiD
    from roi.revenue_lift.did_sql import did_aggregates
    from roi.revenue_lift.panel_input import panel_scale

    entries = program_entries_select(dataset).subquery("program_entries")
    rows = member_rows_select(dataset, outcome=outcome)
    entrants = (sa.select(rows, entries.c.program, entries.c.entry_month_index)
                .select_from(rows.join(entries, entries.c.customer_id == rows.c.customer_id))
                .subquery("program_rows"))
    coverage = coverage_sums(dataset.engine, entrants, key="program", outcome=outcome,
                             group="entry_month_index")
    lift.results_, lift.member_months_ = {}, {}
    for program in names:
        mine = (sa.select(entries.c.customer_id, entries.c.entry_month_index)
                .where(entries.c.program == program).subquery("one_program"))
        group = sa.func.coalesce(mine.c.entry_month_index, 0).label("group")
        data = (sa.select(rows.c.customer_id, rows.c.month_index, rows.c[outcome], group)
                .select_from(rows.outerjoin(mine, mine.c.customer_id == rows.c.customer_id))
                .subquery("program_did"))
        aggregates = did_aggregates(dataset.engine, data, unit="customer_id",
                                    time="month_index", group="group", outcome=outcome)
        if NEVER not in aggregates.cohort_codes:
            return None
        model = StaggeredDiD(control_group="not_yet_treated", weights="member_months")
        fitted = model.fit_aggregates(aggregates, group="group").result_
        fitted.scale = panel_scale(unit="customer_id", time="month_index", outcome=outcome)
        if fitted.refused:   # as in ProgramLift.fit
            fitted = refused_effect(method="did", estimand="program_revenue_lift",
                                    reason=fitted.refused, interval="95% CI",
                                    scale="currency per member-month")
        sums = coverage.get(program, {})
        lift.member_months_[program] = int(sums.get("member_months", 0))
        lift.results_[program] = scaled_to_all_member_months(fitted, **coverage_rule(sums))
    return lift


def member_rows_select(dataset, *, outcome: str) -> sa.Subquery:
    """The panel's active member rows after the join month (what :meth:`ProgramLift.fit`
    compares), in SQL over every customer of ``dataset``."""
    from roi.data.panel import panel_select

    panel = panel_select(dataset).order_by(None).subquery("program_panel")
    joined = panel.c.join_month_index
    return (sa.select(panel.c.customer_id, panel.c.month_index, panel.c[outcome])
            .where(panel.c.active, joined.is_not(None), panel.c.month_index > joined)
            .subquery("member_rows"))


def program_entry(result: EffectResult, *, members: int, member_months: int,
                  cost: float | None) -> dict[str, Any]:
    """One programme's entry of ``community_engagement.programs``."""
    from roi.sensitivity.results import parallel_trends_block

    coverage = result.diagnostics.checks.get("member_coverage")
    entry: dict[str, Any] = {"members": members, "member_months": member_months,
                             "lift_per_member_month": _entry(result), "cost": cost,
                             "member_coverage": None if coverage is None else {
                                 k: coverage[k] for k in ("covered_share", "factor")},
                             "lift_revenue": None, "revenue_per_dollar": None}
    if result.refused:
        return entry
    revenue = {k: entry["lift_per_member_month"][k] * member_months
               for k in ("estimate", "low", "high")}
    entry["lift_revenue"] = {**revenue, "interval": result.interval}
    if cost and cost > 0:
        entry["revenue_per_dollar"] = {k: v / cost for k, v in revenue.items()} | {
            "interval": result.interval}
    checks = result.diagnostics.checks
    entry["pretrend"] = checks.get("pretrend_event")
    entry["sensitivity"] = (parallel_trends_block(result) if result.diagnostics.converged
                            else None)
    return entry


def _entry(result: EffectResult) -> dict[str, Any]:
    out = result.to_contract()
    out["warnings"] = list(result.diagnostics.warnings)
    return out
