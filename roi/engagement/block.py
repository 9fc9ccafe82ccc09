"""The ``community_engagement`` block of ``results.json`` (issue 20): tiers, programmes and
community-led acquisition, each with the rule used. ``roi/run.py`` only calls
:func:`community_engagement_block` (before the database is released: it reads ``activity``,
``programs`` and ``customers.referred_by`` there).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from roi.engagement.tiers import TierRule


def community_engagement_block(dataset, *, panel: pd.DataFrame, survival: pd.DataFrame,
                               rule: TierRule | None = None) -> dict[str, Any]:
    """``{"tiers", "programs", "acquisition"}``; a part that cannot be estimated says why."""
    from roi.revenue_lift.block import member_months_by_community

    rule = rule or TierRule()
    return {"tiers": tiers_block(dataset, panel=panel, survival=survival, rule=rule),
            "programs": programs_block(dataset, panel=panel),
            "acquisition": acquisition_block(dataset, panel=panel,
                                             member_months=member_months_by_community(panel))}


def tiers_block(dataset, *, panel: pd.DataFrame, survival: pd.DataFrame,
                rule: TierRule) -> dict[str, Any]:
    from roi.engagement.tiers import TierLift, TierRetention, member_tiers

    tiers = member_tiers(dataset, rule)
    block: dict[str, Any] = {"rule": rule.to_contract(tiers["activity"]), "by_tier": {}}
    if tiers.empty or "activity" not in dataset.tables:
        block["refused"] = "no members or no activity table: tiers cannot be formed"
        return block
    lift = TierLift(window_days=rule.window_days, scale="additive").fit(panel, tiers,
                                                                         outcome="revenue")
    retention = TierRetention(window_days=rule.window_days).fit(
        survival, tiers, covariates=list(dataset.covariates))
    by_kind = tiers.filter(like="kind:").groupby(tiers["tier"], observed=False).mean()
    revenue = {}
    for name, result in lift.results_.items():
        months = lift.member_months_[name]
        members = int((tiers["tier"] == name).sum())
        entry = {"members": members, "member_months": months,
                 "lift_per_member_month": tier_lift_entry(result, members=members),
                 "member_coverage": _coverage(result),
                 "hazard_ratio": retention.results_.get(name),
                 "mean_window_activity_by_kind": {k.split(":", 1)[1]: float(v) for k, v in
                                                  by_kind.loc[name].items()}
                 if name in by_kind.index else {}}
        if "refused" not in entry["lift_per_member_month"]:
            revenue[name] = result.estimate * months
        block["by_tier"][name] = entry
    total = sum(revenue.values())
    for name, entry in block["by_tier"].items():
        entry["lift_revenue"] = revenue.get(name)
        entry["share_of_incremental_revenue"] = (revenue[name] / total
                                                 if name in revenue and total > 0 else None)
    block["in_window_hazard_ratio"] = retention.results_.get("in window")
    block["method"] = {"revenue": "staggered DiD per tier against never-members (additive, "
                                  "member-month weights, revenue), from the members it "
                                  "covers to all member-months by the run's proportional rule",
                       "retention": "time-varying Cox, one membership term per tier state, "
                                    "covariates as the run's",
                       "share": "tier's lift x its member-months after the window, over the "
                                "sum of positive and negative tier lifts"}
    return block


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


def programs_block(dataset, *, panel: pd.DataFrame) -> dict[str, Any]:
    from roi.engagement.programs import (
        ProgramLift,
        program_costs,
        program_entries,
        program_entry,
    )

    rule = ("staggered DiD per programme among members (member-months after the join month), "
            "cohort = month of entry, controls = members not (yet) in it; entering is "
            "absorbing (ended_at does not end the effect); cost = community_costs rows whose "
            "category names the programme")
    if "programs" not in dataset.tables:
        return {"rule": rule, "by_program": {}, "refused": "no programs table"}
    entries = program_entries(dataset)
    fit = ProgramLift().fit(panel, entries)
    costs = program_costs(dataset, list(fit.results_))
    counts = entries.groupby("program").size()
    return {"rule": rule, "by_program": {
        name: program_entry(result, members=int(counts.get(name, 0)),
                            member_months=fit.member_months_[name], cost=costs.get(name))
        for name, result in fit.results_.items()}}


def acquisition_block(dataset, *, panel: pd.DataFrame,
                      member_months: dict[str, int]) -> dict[str, Any]:
    from roi.engagement.acquisition import prospects, referrals

    found = referrals(dataset, panel, member_months_by_community=member_months)
    return {"rule": "prospects: attributed, not causal; referrals: descriptive counts and a "
                    "causal DiD on referrals made per customer-month",
            "prospects": prospects(dataset, panel),
            "referrals": found if found is not None else {
                "refused": "no customers.referred_by column"}}
