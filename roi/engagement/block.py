"""The ``community_engagement`` block of ``results.json`` (issue 20): tiers, programmes and
community-led acquisition, each with the rule used. ``roi/run.py`` only calls
:func:`community_engagement_block` (before the database is released: it reads ``activity``,
``programs`` and ``customers.referred_by`` there).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import sqlalchemy as sa

from roi.engagement.tiers import TierRule


def community_engagement_block(dataset, *, panel: pd.DataFrame, survival: pd.DataFrame,
                               rule: TierRule | None = None, sample=None,
                               in_database: bool | None = None) -> dict[str, Any]:
    """``{"tiers", "programs", "acquisition"}``; a part that cannot be estimated says why.

    Parameters
    ----------
    dataset : Dataset
        Every customer (its SQL is read for counts, cut points and the database fits).
    panel, survival : DataFrame
        The customer-month panel and start-stop table; with ``sample``, of the sample's
        customers only (``sampled_dataset(dataset, sample)``).
    sample : roi.data.sample.CustomerSample, optional
        Set when ``panel`` and ``survival`` hold a sample: members, member-months, cut points,
        tier and programme DiDs, the coverage rule and the prospects and referral counts are
        then computed on all customers in the database; the tier hazard ratios and the
        referral rates and DiD on the sample carry ``sample.sentence()`` in their warnings.
    in_database : bool, optional
        Tier and programme DiDs from database aggregates
        (:func:`roi.revenue_lift.did_sql.did_aggregates`) rather than from ``panel``; the
        default is True exactly when ``sample`` is set (the numbers are the same on all
        customers: ``tests/test_engagement_scale.py``).
    """
    from roi.revenue_lift.block import member_months_by_community

    rule = rule or TierRule()
    in_database = sample is not None if in_database is None else bool(in_database)
    if sample is not None and not in_database:
        raise ValueError("community_engagement_block: with a sample, the DiDs must come "
                         "from the database (in_database=True): the panel is not all customers")
    member_months = (member_months_in_database(dataset) if sample is not None
                     else member_months_by_community(panel))
    return {"tiers": tiers_block(dataset, panel=panel, survival=survival, rule=rule,
                                 sample=sample, in_database=in_database),
            "programs": programs_block(dataset, panel=panel, in_database=in_database,
                                       sample=sample),
            "acquisition": acquisition_block(dataset, panel=panel, member_months=member_months,
                                             sample=sample)}


def member_months_in_database(dataset) -> dict[str, int]:
    """:func:`roi.revenue_lift.block.member_months_by_community` over every customer, from one
    ``GROUP BY`` on the panel's statement."""
    from roi.data.panel import panel_select
    from roi.data.source import execute_scalar_rows

    panel = panel_select(dataset).order_by(None).subquery("member_month_panel")
    rows = execute_scalar_rows(dataset.engine, sa.select(panel.c.community, sa.func.count())
                               .where(panel.c.member, panel.c.active)
                               .group_by(panel.c.community))
    return {str(k): int(v) for k, v in sorted(rows, key=lambda r: str(r[0])) if v > 0}


def tiers_block(dataset, *, panel: pd.DataFrame, survival: pd.DataFrame,
                rule: TierRule, sample=None, in_database: bool = False) -> dict[str, Any]:
    """Tiers over every member of ``dataset`` (cut points, members, activity by kind in SQL);
    the revenue DiDs from ``panel`` or the database; the hazard ratios from ``survival``
    (the sample's when ``sample`` is set, and then labelled)."""
    from roi.data.sample import sampled_dataset
    from roi.engagement.tiers import (
        TierLift,
        TierRetention,
        member_tiers,
        stored_tier_table,
        tier_cut_points,
        tier_summary,
    )

    cuts = tier_cut_points(dataset, rule)
    # The rows' customers' tiers (the sample's when sampled), cut at all members' cut points
    tiers = member_tiers(sampled_dataset(dataset, sample), rule, cuts=cuts)
    block: dict[str, Any] = {"rule": rule.to_contract(cuts=cuts), "by_tier": {}}
    lift = TierLift(window_days=rule.window_days, scale="additive")
    with stored_tier_table(dataset, rule, cuts) as tier_rows:
        # Members and activity by kind over all members: from these tiers when they are all
        # members, else two GROUP BYs (equal: tests/test_engagement_scale.py)
        members, by_kind = (tier_summary(dataset, rule, cuts, tiers=tier_rows)
                            if sample is not None else _summary_of(tiers, rule))
        if not sum(members.values()) or "activity" not in dataset.tables:
            block["refused"] = "no members or no activity table: tiers cannot be formed"
            return block
        if in_database:
            lift.fit_database(dataset, tier_rows, list(rule.names), outcome="revenue")
        else:
            lift.fit(panel, tiers, outcome="revenue")
    retention = TierRetention(window_days=rule.window_days).fit(
        survival, tiers, covariates=list(dataset.covariates))
    hazards = {name: _on_sample(found, sample) for name, found in retention.results_.items()}
    revenue = {}
    for name, result in lift.results_.items():
        months = lift.member_months_[name]
        entry = {"members": members[name], "member_months": months,
                 "lift_per_member_month": tier_lift_entry(result, members=members[name]),
                 "member_coverage": _coverage(result),
                 "hazard_ratio": hazards.get(name),
                 "mean_window_activity_by_kind": by_kind.get(name, {})}
        if "refused" not in entry["lift_per_member_month"]:
            revenue[name] = result.estimate * months
        block["by_tier"][name] = entry
    total = sum(revenue.values())
    for name, entry in block["by_tier"].items():
        entry["lift_revenue"] = revenue.get(name)
        entry["share_of_incremental_revenue"] = (revenue[name] / total
                                                 if name in revenue and total > 0 else None)
    block["in_window_hazard_ratio"] = hazards.get("in window")
    block["method"] = {"revenue": "staggered DiD per tier against never-members (additive, "
                                  "member-month weights, revenue), from the members it "
                                  "covers to all member-months by the run's proportional rule",
                       "retention": "time-varying Cox, one membership term per tier state, "
                                    "covariates as the run's",
                       "share": "tier's lift x its member-months after the window, over the "
                                "sum of positive and negative tier lifts"}
    return block


def _summary_of(tiers: pd.DataFrame, rule: TierRule
                ) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
    """:func:`roi.engagement.tiers.tier_summary` from every member's row in memory."""
    counts = tiers["tier"].value_counts()
    means = tiers.filter(like="kind:").groupby(tiers["tier"], observed=False).mean()
    return ({name: int(counts.get(name, 0)) for name in rule.names},
            {name: {k.split(":", 1)[1]: float(v) for k, v in means.loc[name].items()}
             if name in means.index else {} for name in rule.names})


def _on_sample(found: dict[str, Any] | None, sample) -> dict[str, Any] | None:
    """A hazard-ratio entry with the sample's sentence in its warnings (unchanged without)."""
    if found is None or sample is None:
        return found
    return {**found, "warnings": [*found.get("warnings", []), sample.sentence()]}


def tier_lift_entry(result, *, members: int) -> dict[str, Any]:
    """A tier's ``lift_per_member_month``: the contract with warnings; a DiD with no finite
    estimate (e.g. 3 superfans, none seen both before and after joining) is refused with the
    reason, so one tier's NaN neither hides in a null nor empties every tier's share."""
    entry = {**result.to_contract(), "warnings": list(result.diagnostics.warnings)}
    if "refused" not in entry and not math.isfinite(result.estimate):
        entry["refused"] = (f"not estimable: none of the tier's {members} members is observed "
                            "both before and after joining beside never-members of its cohort")
    return entry


def _coverage(result) -> dict[str, float] | None:
    """Share of the member-months the DiD covers and the proportional rule's factor."""
    found = result.diagnostics.checks.get("member_coverage")
    return None if found is None else {"covered_share": found["covered_share"],
                                       "factor": found["factor"]}


def programs_block(dataset, *, panel: pd.DataFrame, in_database: bool = False,
                   sample=None) -> dict[str, Any]:
    """Programme DiDs from ``panel`` or (``in_database``) from database aggregates over every
    customer; members per programme always over every customer. A programme every member
    entered has no never-entrant controls: that fit stays in memory, on ``panel`` (the
    sample's, labelled, when ``sample`` is set)."""
    from roi.engagement.programs import (
        ProgramLift,
        fit_programs_in_database,
        program_costs,
        program_entries,
        program_entry,
        program_members,
    )

    rule = ("staggered DiD per programme among members (member-months after the join month), "
            "cohort = month of entry, controls = members not (yet) in it; entering is "
            "absorbing (ended_at does not end the effect); cost = community_costs rows whose "
            "category names the programme")
    if "programs" not in dataset.tables:
        return {"rule": rule, "by_program": {}, "refused": "no programs table"}
    counts = program_members(dataset)
    fit = (fit_programs_in_database(ProgramLift(), dataset, sorted(counts))
           if in_database else None)
    if fit is None:   # in memory (or a programme without members outside it: see the fit)
        fit = ProgramLift().fit(panel, program_entries(dataset))
        for result in fit.results_.values():
            if sample is not None:
                result.diagnostics.warn(sample.sentence())
    costs = program_costs(dataset, list(fit.results_))
    return {"rule": rule, "by_program": {
        name: program_entry(result, members=int(counts.get(name, 0)),
                            member_months=fit.member_months_[name], cost=costs.get(name))
        for name, result in fit.results_.items()}}


def acquisition_block(dataset, *, panel: pd.DataFrame, member_months: dict[str, int],
                      sample=None) -> dict[str, Any]:
    from roi.engagement.acquisition import prospects, referrals

    found = referrals(dataset, panel, member_months_by_community=member_months, sample=sample)
    return {"rule": "prospects: attributed, not causal; referrals: descriptive counts and a "
                    "causal DiD on referrals made per customer-month",
            "prospects": prospects(dataset),
            "referrals": found if found is not None else {
                "refused": "no customers.referred_by column"}}
