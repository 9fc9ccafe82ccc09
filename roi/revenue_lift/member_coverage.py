"""From the member-months an additive estimator covers to all member-months (the contract's ATT).

The additive estimators compare members with their own revenue before joining: the staggered
DiD needs a whole month as a customer just before the join month (its base period), regression
adjustment and AIPW at least ``min_history`` whole months in the ``lookback`` window. Members who
joined within a month of their first purchase have none, so those estimators estimate the ATT
over the *covered* member-months only. The uncovered members are not a random part: the most
engaged customers join fastest, spend more, and (when the lift scales with a customer's level,
as it does when revenue is multiplicative) gain more. Measured on the test bed's worlds
(``roi/testbed.py``, 10,000 customers): 38% of member-months uncovered, their revenue 34% above
the covered ones', and the additive estimates 8-10% below the all-member-month truth.

Rule (documented in the contract §4): the uncovered member-months are credited the covered
members' lift *in proportion to their revenue*, i.e. the same relative lift (the assumption the
ratio estimators make everywhere; here only for the part the data cannot identify). Per scope
(overall, or one community) with ``C`` the covered and ``A`` all member-months::

    ATT_A = ATT_C * mean_A(revenue) / mean_C(revenue)

and the interval is scaled by the same factor (its sampling error, a ratio of means over
thousands of member-months, is small beside the ATT's). The factor and the covered share are in
``diagnostics.checks["member_coverage"]`` and a warning says how much was extrapolated.

Examples
--------
>>> import pandas as pd
>>> rows = pd.DataFrame({"customer_id": [1, 1, 1, 2, 2], "month_index": [1, 2, 3, 2, 3],
...                      "join_month_index": [2, 2, 2, 2, 2], "revenue": [1., 2., 2., 4., 4.],
...                      "community": ["a"] * 5})
>>> base_period_covered(rows).tolist()
[True, True, True, False, False]
>>> round(coverage_factor(rows, base_period_covered(rows)), 3)
1.5
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from roi.results import EffectResult

UNIT, TIME, GROUP, OUTCOME = "customer_id", "month_index", "join_month_index", "revenue"


def _members(active: pd.DataFrame, first_month: int = 0) -> np.ndarray:
    group = pd.to_numeric(active[GROUP], errors="coerce").to_numpy(float)
    return np.isfinite(group) & (active[TIME].to_numpy(float) >= group + first_month)


def base_period_covered(active: pd.DataFrame, *, anticipation: int = 0) -> np.ndarray:
    """Per row: its customer has a whole month at the DiD's base period (the month before
    joining, ``anticipation`` months earlier still)."""
    group = pd.to_numeric(active[GROUP], errors="coerce").to_numpy(float)
    base = active[TIME].to_numpy(float) == group - 1 - anticipation
    covered = pd.Index(active.loc[base, UNIT].unique())
    return active[UNIT].isin(covered).to_numpy(bool)


def history_covered(active: pd.DataFrame, *, lookback: int = 12,
                    min_history: int = 1) -> np.ndarray:
    """Per row: its customer has ``min_history`` whole months in ``[g - lookback, g - 1]`` (the
    regression adjustment's and AIPW's history)."""
    group = pd.to_numeric(active[GROUP], errors="coerce").to_numpy(float)
    time = active[TIME].to_numpy(float)
    in_window = (time < group) & (time >= group - lookback)
    counts = active.loc[in_window].groupby(UNIT, observed=True).size()
    covered = pd.Index(counts[counts >= min_history].index)
    return active[UNIT].isin(covered).to_numpy(bool)


COVERAGE_SUMS = ("member_months", "revenue", "covered_months", "covered_revenue")
"""Columns of :func:`coverage_sums` beside ``community``."""


def coverage_sums(active: pd.DataFrame, covered: np.ndarray, *, community: str = "community",
                  first_month: int = 0) -> pd.DataFrame:
    """Member-months from ``first_month`` months after joining and their revenue, all and
    covered, per community (one row per community, ``None`` for members without one): all
    that :func:`extend_with_sums` reads. The same sums come from one ``GROUP BY`` in the
    database (:mod:`roi.revenue_lift.aggregates_sql`)."""
    member = _members(active, first_month)
    revenue = np.where(member, active[OUTCOME].to_numpy(float), 0.0)
    mine = member & np.asarray(covered, dtype=bool)
    names = active[community].astype(object).where(active[community].notna(), "")
    frame = pd.DataFrame({"community": names.astype(str).to_numpy(),
                          "member_months": member.astype(np.int64), "revenue": revenue,
                          "covered_months": mine.astype(np.int64),
                          "covered_revenue": np.where(mine, revenue, 0.0)})
    sums = frame.groupby("community", sort=True)[list(COVERAGE_SUMS)].sum().reset_index()
    sums["community"] = sums["community"].replace("", None)
    return sums


def coverage_factor(active: pd.DataFrame, covered: np.ndarray, *,
                    first_month: int = 0) -> float:
    """``mean_A(revenue) / mean_C(revenue)`` over member-months from ``first_month`` months
    after joining (1.0 when all are covered or the covered revenue is not positive)."""
    sums = coverage_sums(active.assign(_all=""), covered, community="_all",
                         first_month=first_month)
    return _factor(sums[list(COVERAGE_SUMS)].sum())


def _factor(sums: pd.Series) -> float:
    if sums["covered_months"] == 0 or sums["covered_months"] == sums["member_months"]:
        return 1.0
    covered_mean = sums["covered_revenue"] / sums["covered_months"]
    all_mean = sums["revenue"] / sums["member_months"]
    return float(all_mean / covered_mean) if covered_mean > 0 else 1.0


def extend_to_all_member_months(result: EffectResult, active: pd.DataFrame,
                                covered: np.ndarray, *, community: str = "community",
                                first_month: int = 0) -> EffectResult:
    """A copy of ``result`` whose estimate, interval and per-community entries are scaled from
    the covered member-months to all member-months (rule in the module docstring);
    ``first_month`` 1 for an estimate that leaves the join month out."""
    if result.refused or result.estimate is None or not np.isfinite(result.estimate):
        return result
    return extend_with_sums(result, coverage_sums(active, covered, community=community,
                                                  first_month=first_month))


def extend_with_sums(result: EffectResult, sums: pd.DataFrame) -> EffectResult:
    """:func:`extend_to_all_member_months` from :func:`coverage_sums` (computed in memory or in
    the database): overall over every row of ``sums``, per community over its row."""
    if result.refused or result.estimate is None or not np.isfinite(result.estimate):
        return result
    overall = sums[list(COVERAGE_SUMS)].sum()
    share = float(overall["covered_months"] / max(overall["member_months"], 1))
    named = sums.set_index(sums["community"].astype(object).where(sums["community"].notna(),
                                                                  None))
    by_group = {}
    for name in result.by_group:
        rows = named.loc[[name]] if name in named.index else named.iloc[:0]
        by_group[name] = _factor(rows[list(COVERAGE_SUMS)].sum())
    return scaled_by_coverage(result, factor=_factor(overall), share=share,
                              by_group_factors=by_group)


def scaled_by_coverage(result: EffectResult, *, factor: float, share: float,
                       by_group_factors: dict[str, float] | None = None) -> EffectResult:
    """A copy of ``result`` scaled from the covered member-months to all (``factor``; per
    community ``by_group_factors``), with the ``member_coverage`` check and, when members are
    left uncovered (``share`` < 1), the warning that says so. The one implementation of the
    rule's last step, for the revenue block and the engagement tiers alike."""
    if result.refused or result.estimate is None or not np.isfinite(result.estimate):
        return result
    out = copy.copy(result)
    out.diagnostics = copy.deepcopy(result.diagnostics)
    out.by_group = {}
    out.estimate, out.low, out.high = (v * factor for v in (result.estimate, result.low,
                                                              result.high))
    if np.isfinite(out.diagnostics.checks.get("se") or np.nan):   # regression, AIPW
        out.diagnostics.checks["se"] = out.diagnostics.checks["se"] * factor
    factors = by_group_factors or {}
    for name, entry in result.by_group.items():
        out.by_group[name] = _scaled(entry, factors[name])
    out.diagnostics.checks["member_coverage"] = {"covered_share": share, "factor": factor,
                                                 "by_community": dict(factors)}
    if share < 1.0:
        out.diagnostics.warn(
            f"{result.method}: {1 - share:.0%} of member-months belong to members without a "
            "pre-join month (they joined within a month of their first purchase); they are "
            "credited the covered members' lift in proportion to their revenue (factor "
            f"{factor:.3f}).")
    return out


def _scaled(entry: dict[str, Any], factor: float) -> dict[str, Any]:
    scaled = dict(entry)
    for key in ("estimate", "low", "high"):
        if isinstance(scaled.get(key), int | float) and np.isfinite(scaled[key]):
            scaled[key] = scaled[key] * factor
    return scaled
