"""Engagement depth (issue 20, part 1): tiers from early activity, their revenue lift and
retention.

A member's tier is fixed by the activity ``count`` summed over its ``activity`` rows dated in
the window right after membership starts (``[member_start, member_start + window_days)``,
default 30 days; optionally one ``kind`` only), cut at thresholds (default: no action =
lurker, 1-9 = participant, 10+ = superfan) or at quantiles among members. Because the tier is
fixed by early behaviour, later revenue can be compared across tiers without conditioning on
what membership itself changes later. **Tiers are chosen by members, not assigned**: a tier's
lift is the effect of membership for the members who behave that way, not the effect of making
a member more active.

The months inside the window. A member's tier is only known when the window closes, so its
member-months before that (the join month, and the next when the window runs into it) are left
out of the tier's effect: those rows of the member are removed from the DiD panel (its months
before joining stay, as does every never-member), and the effect counts from the first month
that begins on or after the window's end. In the retention model the member's time in the
window is its own state (``in window``), and the tier's hazard ratio covers time after the
window only (a landmark at the window's end: members who churn inside the window have no tier
there).

Estimators: per tier the staggered DiD of :class:`roi.revenue_lift.did.StaggeredDiD` against
never-members, member-month weights; ratio form on organic revenue by default (tiers differ in
revenue level, and an additive DiD would read the season's larger swing of high spenders as
effect). Hazard ratios: :class:`roi.retention.cox_time_varying.CoxTimeVarying` with one
membership term per tier state.

Examples
--------
>>> import pandas as pd
>>> rule = TierRule()
>>> rule.assign(pd.Series([0.0, 3.0, 12.0])).tolist()
['lurker', 'participant', 'superfan']
>>> TierRule(quantiles=(0.5,), names=("low", "high")).assign(pd.Series([1.0, 2, 3, 4])).tolist()
['low', 'low', 'high', 'high']
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from roi.data.dialect import exact_sum
from roi.results import EffectResult

WINDOW_STATE = "in window"
"""Label of a member's time inside the tier window in the retention model."""


@dataclass(frozen=True)
class TierRule:
    """How members are put into tiers.

    Parameters
    ----------
    window_days : int
        Days after the membership start whose activity fixes the tier.
    names : tuple of str
        Tier names, lowest first.
    thresholds : tuple of float, optional
        Activity counts that start the 2nd, 3rd... tier (one fewer than ``names``).
    quantiles : tuple of float, optional
        Instead of thresholds: quantiles of members' window activity that start each higher
        tier (cut points computed on the data, reported in ``to_contract``).
    kind : str, optional
        Count only activity of this ``kind``.
    """

    window_days: int = 30
    names: tuple[str, ...] = ("lurker", "participant", "superfan")
    thresholds: tuple[float, ...] | None = (1.0, 10.0)
    quantiles: tuple[float, ...] | None = None
    kind: str | None = None

    def __post_init__(self) -> None:
        if self.window_days < 1:
            raise ValueError(f"tier window_days must be >= 1, got {self.window_days}")
        cuts = self.quantiles if self.quantiles is not None else self.thresholds
        if cuts is None or len(cuts) != len(self.names) - 1:
            raise ValueError(f"tiers: {len(self.names)} names need {len(self.names) - 1} "
                             f"thresholds or quantiles, got {cuts!r}")
        if list(cuts) != sorted(cuts):
            raise ValueError(f"tiers: cut points must increase, got {cuts!r}")

    def settings(self) -> dict[str, Any]:
        """The rule as configured (``results.json`` ``config.tiers``)."""
        return {"window_days": self.window_days, "names": list(self.names),
                "thresholds": None if self.thresholds is None else list(self.thresholds),
                "quantiles": None if self.quantiles is None else list(self.quantiles),
                "kind": self.kind}

    def cut_points(self, counts: pd.Series) -> list[float]:
        """Activity counts starting each higher tier (quantiles evaluated on ``counts``)."""
        if self.quantiles is None:
            return [float(t) for t in self.thresholds or ()]
        return [float(np.quantile(counts.to_numpy(float), q)) if len(counts) else 0.0
                for q in self.quantiles]

    def assign(self, counts: pd.Series, *, cuts: list[float] | None = None) -> pd.Series:
        """Tier name per member from its window activity count; a count equal to a cut point
        belongs to the higher tier (with quantiles: strictly above the cut point). ``cuts``:
        cut points computed elsewhere (quantiles over all members when these are a sample)."""
        cuts = np.asarray(self.cut_points(counts) if cuts is None else cuts, float)
        side = "left" if self.quantiles is not None else "right"
        codes = np.searchsorted(cuts, counts.to_numpy(float), side=side)
        return pd.Series(pd.Categorical.from_codes(codes, categories=list(self.names)),
                         index=counts.index)

    def to_contract(self, counts: pd.Series | None = None, *,
                    cuts: list[float] | None = None) -> dict[str, Any]:
        rule = ("quantiles of members' window activity" if self.quantiles is not None
                else "activity thresholds")
        if cuts is None:
            cuts = self.cut_points(counts if counts is not None else pd.Series(dtype=float))
        edges = zip([None, *cuts], [*cuts, None], strict=True)
        if self.quantiles is None:   # a count equal to a cut point is in the higher tier
            bounds = [f"{lo or 0.0:g} <= count" + ("" if hi is None else f" < {hi:g}")
                      for lo, hi in edges]
        else:                        # quantiles: strictly above a cut point is higher
            bounds = [" < ".join(part for part in (
                "" if lo is None else f"{lo:g}", "count") if part)
                + ("" if hi is None else f" <= {hi:g}") for lo, hi in edges]
        return {"window_days": self.window_days, "kind": self.kind, "by": rule,
                "quantiles": list(self.quantiles) if self.quantiles is not None else None,
                "cut_points": cuts, "tiers": dict(zip(self.names, bounds, strict=True)),
                "rule": (f"sum of activity count{'' if self.kind is None else ' of kind ' + repr(self.kind)} "
                         f"dated in the first {self.window_days} days of membership "
                         "(from max(joined_at, first_seen)); tiers are chosen by members, "
                         "not assigned"),
                "months_in_window": "left out of the tier's effect: a member's rows from "
                                    "its join month until the first month that begins on or "
                                    "after the window's end are removed from the DiD panel; "
                                    "the hazard ratio covers time after the window"}


def window_activity(dataset, rule: TierRule) -> pd.DataFrame:
    """Per linked member (first membership): ``customer_id``, ``member_start`` and the
    activity count in the tier window, in total and per ``kind`` (``kind:<name>`` columns);
    one SQL statement in the source database."""
    from roi.data import dialect
    from roi.data.source import fetch_frame

    life = dataset.tables["life"]
    members = (sa.select(life.c.customer_id, life.c.member_start)
               .where(life.c.member_start.is_not(None)).subquery("tier_members"))
    activity = dataset.tables.get("activity")
    if activity is None:
        frame = fetch_frame(dataset.engine, sa.select(members.c.customer_id,
                                                      members.c.member_start))
        frame["activity"] = 0.0
        return frame
    days = dialect.day_diff(activity.c.date, members.c.member_start)
    inside = sa.and_(activity.c.customer_id == members.c.customer_id, days >= 0,
                     days < rule.window_days)
    kind = sa.func.coalesce(activity.c.kind, "(none)")
    query = (sa.select(members.c.customer_id, members.c.member_start, kind.label("kind"),
                       sa.func.sum(activity.c["count"]).label("count"))
             .select_from(members.outerjoin(activity, inside))
             .group_by(members.c.customer_id, members.c.member_start, kind))
    long = fetch_frame(dataset.engine, query)
    long["count"] = long["count"].astype(float).fillna(0.0)
    wide = long.pivot_table(index=["customer_id", "member_start"], columns="kind",
                            values="count", aggfunc="sum", fill_value=0.0, observed=True)
    wide.columns = [f"kind:{c}" for c in wide.columns]
    wide = wide.drop(columns=[c for c in wide.columns if not wide[c].any()])
    chosen = (wide.sum(axis=1) if rule.kind is None
              else wide.get(f"kind:{rule.kind}", pd.Series(0.0, index=wide.index)))
    wide.insert(0, "activity", chosen)
    frame = wide.reset_index()
    frame["member_start"] = pd.to_datetime(frame["member_start"])
    return frame


def member_tiers(dataset, rule: TierRule, *, cuts: list[float] | None = None) -> pd.DataFrame:
    """:func:`window_activity` with a ``tier`` column; ``cuts`` (e.g. quantiles computed on all
    members by :func:`tier_cut_points`) instead of cut points computed on these members."""
    frame = window_activity(dataset, rule)
    frame["tier"] = rule.assign(frame["activity"], cuts=cuts)   # categorical, rule order
    return frame


def window_totals(dataset, rule: TierRule) -> sa.Subquery:
    """Per linked member, in SQL: ``customer_id``, ``member_start`` and ``activity`` (the
    rule's count in the tier window): the total :func:`window_activity` computes, as a
    subquery the tier assignment and the DiDs join to (nothing fetched)."""
    from roi.data import dialect

    life = dataset.tables["life"]
    members = (sa.select(life.c.customer_id, life.c.member_start)
               .where(life.c.member_start.is_not(None)).subquery("tier_members"))
    activity = dataset.tables.get("activity")
    if activity is None:
        return sa.select(members.c.customer_id, members.c.member_start,
                         sa.literal(0.0, sa.Double).label("activity")).subquery("tier_window")
    days = dialect.day_diff(activity.c.date, members.c.member_start)
    inside = [activity.c.customer_id == members.c.customer_id, days >= 0,
              days < rule.window_days]
    if rule.kind is not None:
        inside.append(sa.func.coalesce(activity.c.kind, "(none)") == rule.kind)
    total = sa.func.coalesce(sa.func.sum(sa.cast(activity.c["count"], sa.Double)), 0.0)
    return (sa.select(members.c.customer_id, members.c.member_start, total.label("activity"))
            .select_from(members.outerjoin(activity, sa.and_(*inside)))
            .group_by(members.c.customer_id, members.c.member_start).subquery("tier_window"))


def tier_cut_points(dataset, rule: TierRule) -> list[float]:
    """The rule's cut points over all members: thresholds as given; quantiles from the
    database's frequency table of window totals (one row per distinct total, not per member),
    equal to ``numpy.quantile`` over the members' totals."""
    from roi.data.source import fetch_frame

    if rule.quantiles is None:
        return rule.cut_points(pd.Series(dtype=float))
    totals = window_totals(dataset, rule)
    found = fetch_frame(dataset.engine, sa.select(totals.c.activity, sa.func.count().label("n"))
                        .group_by(totals.c.activity))
    return quantiles_from_counts(found["activity"].to_numpy(float),
                                 found["n"].to_numpy(np.int64), rule.quantiles)


def quantiles_from_counts(values: np.ndarray, counts: np.ndarray,
                          quantiles: tuple[float, ...]) -> list[float]:
    """``numpy.quantile(np.repeat(values, counts), q)`` (linear method) without the repeat.

    Examples
    --------
    >>> quantiles_from_counts(np.array([3.0, 1.0]), np.array([1, 3]), (0.5, 0.9))
    [1.0, 2.4000000000000004]
    """
    order = np.argsort(values, kind="stable")
    values, ends = values[order], np.cumsum(counts[order])
    n = int(ends[-1]) if len(ends) else 0
    if n == 0:
        return [0.0 for _ in quantiles]
    out = []
    for q in quantiles:
        index = n * q + (1 + q * (1 - 1 - 1)) - 1   # numpy's virtual index (alpha = beta = 1)
        below = min(max(int(np.floor(index)), 0), n - 1)
        a = values[np.searchsorted(ends, below, side="right")]
        b = values[np.searchsorted(ends, min(below + 1, n - 1), side="right")]
        t = index - np.floor(index)
        out.append(float(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t))
    return out


def tier_code(value: sa.ColumnElement, rule: TierRule, cuts: list[float]) -> sa.ColumnElement:
    """The tier's position in ``rule.names`` as SQL (:meth:`TierRule.assign`'s rule: a count
    equal to a threshold is in the higher tier; with quantiles, strictly above)."""
    if not cuts:
        return sa.literal(0, sa.Integer)
    parts = [sa.case(((value > cut) if rule.quantiles is not None else (value >= cut), 1),
                     else_=0) for cut in cuts]
    code = parts[0]
    for part in parts[1:]:
        code = code + part
    return code


def tier_table(dataset, rule: TierRule, cuts: list[float]) -> sa.Subquery:
    """Per linked member in SQL: ``customer_id``, ``member_start``, ``activity``, ``tier``
    (position in ``rule.names``)."""
    totals = window_totals(dataset, rule)
    return sa.select(totals.c.customer_id, totals.c.member_start, totals.c.activity,
                     tier_code(totals.c.activity, rule, cuts).label("tier")).subquery("tiers")


@contextmanager
def stored_tier_table(dataset, rule: TierRule, cuts: list[float]) -> Iterator[sa.FromClause]:
    """:func:`tier_table`, stored once in a temporary table of the embedded DuckDB for the
    statements that read it (each would otherwise sum the activity table again: 10-20 s at 10M
    customers); the subquery itself elsewhere."""
    from roi.data.sample import embedded_duckdb
    from roi.data.source import temporary_table

    tiers = tier_table(dataset, rule, cuts)
    if not embedded_duckdb(dataset):
        yield tiers
        return
    with temporary_table(dataset.engine, sa.select(tiers), name="roi_tier_table") as table:
        yield table.alias("tiers")


def tier_summary(dataset, rule: TierRule, cuts: list[float], *,
                 tiers: sa.FromClause | None = None
                 ) -> tuple[dict[str, int], dict[str, dict[str, float]]]:
    """Members per tier and their mean window activity per ``kind``, over all members, from two
    ``GROUP BY`` statements (what ``member_tiers(...).groupby("tier")`` gives in memory);
    ``tiers``: :func:`tier_table`'s rows when already at hand (:func:`stored_tier_table`)."""
    from roi.data import dialect
    from roi.data.source import fetch_frame

    tiers = tier_table(dataset, rule, cuts) if tiers is None else tiers
    found = fetch_frame(dataset.engine, sa.select(tiers.c.tier, sa.func.count().label("n"))
                        .group_by(tiers.c.tier))
    sizes = dict(zip(found["tier"].astype(int), found["n"].astype(int), strict=True))
    members = {name: sizes.get(i, 0) for i, name in enumerate(rule.names)}
    activity = dataset.tables.get("activity")
    if activity is None:
        return members, {name: {} for name in rule.names}
    days = dialect.day_diff(activity.c.date, tiers.c.member_start)
    kind = sa.func.coalesce(activity.c.kind, "(none)")
    per_member = (sa.select(tiers.c.tier, kind.label("kind"),
                            sa.func.sum(sa.cast(activity.c["count"], sa.Double)).label("total"))
                  .select_from(tiers.join(activity, sa.and_(
                      activity.c.customer_id == tiers.c.customer_id, days >= 0,
                      days < rule.window_days)))
                  .group_by(tiers.c.customer_id, tiers.c.tier, kind).subquery("member_kinds"))
    total = sa.func.coalesce(per_member.c.total, 0.0)
    by_kind = fetch_frame(dataset.engine, sa.select(
        per_member.c.tier, per_member.c.kind, sa.func.sum(total).label("total"),
        sa.func.sum(sa.case((total != 0, 1), else_=0)).label("nonzero"))
        .group_by(per_member.c.tier, per_member.c.kind))
    kept = sorted(by_kind.loc[by_kind["nonzero"] > 0, "kind"].astype(str).unique())
    sums = {(int(t), str(k)): float(v) for t, k, v in
            zip(by_kind["tier"], by_kind["kind"], by_kind["total"], strict=True)}
    means = {name: {k: (sums.get((i, k), 0.0) / members[name] if members[name] else np.nan)
                    for k in kept} for i, name in enumerate(rule.names)}
    return members, means


class TierLift:
    """Revenue lift per member-month of each tier: staggered DiD against never-members.

    Parameters
    ----------
    window_days : int
        The tier window; the member's months before it closes are left out (module docstring).
    scale : {"multiplicative", "additive"}
        The DiD's parallel-trends scale; both report currency per member-month.

    Attributes
    ----------
    results_ : dict of str to EffectResult
        Per tier (method ``did``), ``by_group`` empty; ``n_obs`` member-months in the DiD.
    member_months_ : dict of str to int
        Per tier, whole member-months after the window (all of them, covered or not).
    """

    def __init__(self, *, window_days: int = 30, scale: str = "multiplicative") -> None:
        self.window_days, self.scale = int(window_days), scale

    def fit(self, panel: pd.DataFrame, tiers: pd.DataFrame, *,
            outcome: str = "organic_revenue") -> TierLift:
        """``panel``: the customer-month panel (``customer_id``, ``month``, ``month_index``,
        ``join_month_index``, ``active``, ``outcome``); ``tiers``: ``customer_id``,
        ``member_start``, ``tier``. Returns ``self``."""
        from roi.revenue_lift.did import StaggeredDiD

        rows = after_window(panel, tiers, window_days=self.window_days, outcome=outcome)
        member = rows["join_month_index"].notna()
        after = member & (rows["month_index"] >= rows["join_month_index"])
        self.results_, self.member_months_ = {}, {}
        for name in tier_names(tiers["tier"]):
            mine = rows["tier"] == name
            self.member_months_[str(name)] = int((mine & after).sum())
            data = rows.loc[~member | mine]
            model = StaggeredDiD(control_group="never_treated", weights="member_months",
                                 scale=self.scale)
            # A tier the DiD cannot compare comes back refused with its reason (no raise)
            fitted = model.fit(data, unit="customer_id", time="month_index",
                               group="join_month_index", outcome=outcome).result_
            self.results_[str(name)] = all_member_months(fitted, data, outcome=outcome)
        return self

    def fit_database(self, dataset, tiers: sa.FromClause, names: list[str], *,
                     outcome: str = "organic_revenue") -> TierLift:
        """:meth:`fit` from sums the database returns, over every customer of ``dataset``:
        ``tiers`` is :func:`tier_table` (tier = position in ``names``; stored once by
        :func:`stored_tier_table` on the embedded DuckDB, where each slice reads it). One
        :func:`roi.revenue_lift.did_sql.did_aggregate_frame` by tier over the panel's active
        rows (months in the window left out); per tier the never-members' and its members'
        groups (:func:`~roi.revenue_lift.did_sql.scope_aggregates`), then
        :meth:`StaggeredDiD.fit_aggregates`; the proportional rule's member-month sums from one
        more ``GROUP BY``. Equal to :meth:`fit` on the whole panel. Returns ``self``."""
        from roi.revenue_lift.did import StaggeredDiD
        from roi.revenue_lift.did_sql import scope_aggregates
        from roi.revenue_lift.panel_input import panel_scale

        coverage, frame, periods, months = _tier_sums(dataset, tiers, outcome=outcome,
                                                      window_days=self.window_days)
        self.results_, self.member_months_ = {}, {}
        for code, name in enumerate(names):
            sums = coverage.get(code, {})
            self.member_months_[name] = int(sums.get("member_months", 0))
            keep = (frame["by"].isna() | (frame["by"] == code)).to_numpy(bool)
            scope = (months["tier"].isna() | (months["tier"] == code)).to_numpy(bool)
            aggregates = scope_aggregates(frame, periods, keep=keep, scope_periods=np.sort(
                months.loc[scope, "month_index"].unique()))
            model = StaggeredDiD(control_group="never_treated", weights="member_months",
                                 scale=self.scale)
            fitted = model.fit_aggregates(aggregates, group="join_month_index").result_
            fitted.scale = panel_scale(unit="customer_id", time="month_index", outcome=outcome)
            self.results_[name] = scaled_to_all_member_months(fitted, **coverage_rule(sums))
        return self

    def summary(self) -> pd.DataFrame:
        return pd.DataFrame([{"tier": k, "estimate": r.estimate, "low": r.low, "high": r.high,
                              "member_months": self.member_months_[k], "refused": r.refused}
                             for k, r in self.results_.items()]).set_index("tier")


def all_member_months(result: EffectResult, rows: pd.DataFrame, *,
                      outcome: str) -> EffectResult:
    """The DiD from the members it covers (a whole month before joining) to all of the tier's
    member-months, by the run's proportional rule
    (:func:`roi.revenue_lift.member_coverage.extend_to_all_member_months`): the members who
    join in their first month are the most engaged and spend more."""
    from roi.revenue_lift.member_coverage import base_period_covered, coverage_factor

    if result.refused or result.estimate is None or not np.isfinite(result.estimate):
        return result
    frame = rows.rename(columns={outcome: "revenue"}) if outcome != "revenue" else rows
    covered = base_period_covered(frame)
    group = pd.to_numeric(frame["join_month_index"], errors="coerce").to_numpy(float)
    member = np.isfinite(group) & (frame["month_index"].to_numpy(float) >= group)
    share = float((member & covered).sum() / max(member.sum(), 1))
    return scaled_to_all_member_months(result, factor=coverage_factor(frame, covered),
                                       share=share)


def _tier_sums(dataset, tiers: sa.FromClause, *, outcome: str, window_days: int
               ) -> tuple[dict, pd.DataFrame, np.ndarray, pd.DataFrame]:
    """:meth:`TierLift.fit_database`'s sums: the coverage sums by tier, one DiD pivot frame
    for every tier (``by`` the tier, NULL for never-members) and its periods, the months each
    tier's rows have. Summed over slices of the customers on the embedded DuckDB
    (:func:`roi.data.sample.customer_slices`: each slice's panel joins its own revenue, and
    its rows are stored once for the three statements)."""
    from roi.data.sample import customer_slices
    from roi.revenue_lift.aggregates_sql import ROWS_PER_SLICE

    slices = customer_slices(dataset, max_panel_rows=ROWS_PER_SLICE)
    if len(slices) == 1:
        return _tier_slice_sums(dataset.engine, after_window_select(
            dataset, tiers, window_days=window_days, outcome=outcome), outcome=outcome)
    from roi.data.source import temporary_table
    from roi.revenue_lift.did_sql import in_key_order, on_periods, sum_frames

    parts = []
    for part in slices:   # per slice its rows after the tier window, stored once
        rows = after_window_select(part, tiers, window_days=window_days, outcome=outcome)
        with temporary_table(dataset.engine, sa.select(rows), name="roi_slice_tiers") as table:
            parts.append(_tier_slice_sums(dataset.engine, table.alias("after_window"),
                                          outcome=outcome))
    coverage: dict[Any, dict[str, float]] = {}
    for sums_by_tier, *_ in parts:
        for key, sums in sums_by_tier.items():
            mine = coverage.setdefault(key, dict.fromkeys(sums, 0.0))
            for name, value in sums.items():
                mine[name] += value
    periods = np.unique(np.concatenate([p[2] for p in parts]))
    frame = sum_frames([on_periods(p[1], p[2], periods) for p in parts])
    months = in_key_order(pd.concat([p[3] for p in parts], ignore_index=True)
                          .drop_duplicates(), ["tier", "month_index"])
    return dict(sorted(coverage.items())), frame, periods, months


def _tier_slice_sums(engine, rows: sa.FromClause, *, outcome: str
                     ) -> tuple[dict, pd.DataFrame, np.ndarray, pd.DataFrame]:
    """:func:`_tier_sums` of the rows of :func:`after_window_select` (or a slice's)."""
    from roi.data.source import fetch_frame
    from roi.revenue_lift.did_sql import did_aggregate_frame

    coverage = coverage_sums(engine, rows, key="tier", outcome=outcome)
    frame, periods = did_aggregate_frame(engine, rows, unit="customer_id", time="month_index",
                                         group="join_month_index", outcome=outcome, by="tier")
    months = fetch_frame(engine, sa.select(rows.c.tier, rows.c.month_index).distinct())
    return coverage, frame, periods, months


def after_window_select(dataset, tiers: sa.FromClause, *, window_days: int,
                        outcome: str) -> sa.Subquery:
    """:func:`after_window` in SQL over the whole panel (``panel_select``): active rows with
    ``customer_id``, ``month_index``, ``join_month_index``, the outcome and ``tier``; a member's
    rows from its join month until its tier window has closed are left out."""
    from roi.data import dialect
    from roi.data.panel import panel_select

    panel = panel_select(dataset).order_by(None)
    if dataset.engine.dialect.name == "postgresql":
        # A fence (OFFSET 0 is never pulled up): without it, on tables without statistics
        # PostgreSQL estimates the panel joined to the tiers at one row and plans its revenue
        # join as a nested loop over every (customer, month) pair (> 15 min on 3,000
        # customers); planned alone the panel gets hash joins (seconds)
        panel = panel.offset(0)
    panel = panel.subquery("tier_panel")
    joined = panel.c.join_month_index
    inside = sa.and_(joined.is_not(None), panel.c.month_index >= joined,
                     dialect.day_diff(panel.c.month, tiers.c.member_start) < window_days)
    return (sa.select(panel.c.customer_id, panel.c.month_index, joined, panel.c[outcome],
                      tiers.c.tier)
            .select_from(panel.outerjoin(tiers, tiers.c.customer_id == panel.c.customer_id))
            .where(panel.c.active, sa.not_(inside)).subquery("after_window"))


def coverage_sums(engine, rows: sa.FromClause, *, key: str, outcome: str,
                  group: str = "join_month_index") -> dict[Any, dict[str, float]]:
    """Per value of ``key`` among treated rows (``group`` not null): member-months from
    ``group`` on and their outcome, in total and for the customers with a row in the month
    before ``group`` (the DiD's base period): what
    :func:`roi.revenue_lift.member_coverage.extend_to_all_member_months` reads from rows.
    Raises when treated rows have no ``key`` (a member without a tier)."""
    from roi.data.source import fetch_frame

    value = rows.c[outcome]
    after = rows.c.month_index >= rows.c[group]
    per_unit = (sa.select(rows.c[key].label("key"),
                          sa.func.max(sa.case((rows.c.month_index == rows.c[group] - 1, 1),
                                              else_=0)).label("covered"),
                          sa.func.sum(sa.case((after, 1), else_=0)).label("months"),
                          exact_sum(sa.case((after, sa.cast(value, sa.Double)), else_=0.0))
                          .label("total"))
                .where(rows.c[group].is_not(None))
                .group_by(rows.c.customer_id, rows.c[key]).subquery("coverage_units"))
    found = fetch_frame(engine, sa.select(per_unit.c.key, per_unit.c.covered,
                                          sa.func.sum(per_unit.c.months).label("months"),
                                          exact_sum(per_unit.c.total).label("total"))
                        .group_by(per_unit.c.key, per_unit.c.covered))
    from roi.revenue_lift.did_sql import in_key_order

    found = in_key_order(found, ["key", "covered"])   # the same sums on every rerun
    if found["key"].isna().any():
        raise ValueError(f"{int(found.loc[found['key'].isna(), 'months'].sum())} member rows "
                         f"of the panel have no {key}")
    out: dict[Any, dict[str, float]] = {}
    for k, part in found.groupby("key"):
        covered = part["covered"].astype(int) == 1
        out[k.item() if isinstance(k, np.generic) else k] = {"member_months": float(part["months"].sum()),
                       "total": float(part["total"].sum()),
                       "covered_months": float(part.loc[covered, "months"].sum()),
                       "covered_total": float(part.loc[covered, "total"].sum())}
    return out


def coverage_rule(sums: dict[str, float]) -> dict[str, float]:
    """``factor`` and ``share`` of the proportional rule from :func:`coverage_sums`'s entry
    (:func:`roi.revenue_lift.member_coverage.coverage_factor`'s cases)."""
    months, covered = sums.get("member_months", 0.0), sums.get("covered_months", 0.0)
    factor = 1.0
    if covered > 0 and covered != months:
        covered_mean = sums["covered_total"] / covered
        factor = (sums["total"] / months) / covered_mean if covered_mean > 0 else 1.0
    return {"factor": float(factor), "share": float(covered / max(months, 1))}


def scaled_to_all_member_months(result: EffectResult, *, factor: float,
                                share: float) -> EffectResult:
    """:func:`roi.revenue_lift.member_coverage.extend_to_all_member_months` for a result
    without per-community entries (the tier and programme DiDs), from the factor and covered
    share computed in memory or in the database."""
    from roi.revenue_lift.member_coverage import scaled_by_coverage

    return scaled_by_coverage(result, factor=factor, share=share)


def tier_names(tier: pd.Series) -> list[str]:
    """The tiers in their rule's order (every tier of a categorical, even an empty one)."""
    if isinstance(tier.dtype, pd.CategoricalDtype):
        return [str(c) for c in tier.cat.categories]
    return sorted(str(t) for t in tier.dropna().unique())


def after_window(panel: pd.DataFrame, tiers: pd.DataFrame, *, window_days: int,
                 outcome: str) -> pd.DataFrame:
    """Active panel rows with each member's tier; a member's rows from its join month up to
    the month that begins on or after the end of its tier window are removed."""
    columns = ["customer_id", "month", "month_index", "join_month_index", outcome]
    rows = panel.loc[panel["active"], columns].copy()
    keyed = tiers.set_index("customer_id")
    ends = keyed["member_start"] + pd.Timedelta(days=window_days)
    rows["tier"] = rows["customer_id"].map(keyed["tier"].astype(object))
    window_end = rows["customer_id"].map(ends)
    inside = (rows["join_month_index"].notna()
              & (rows["month_index"] >= rows["join_month_index"])
              & (rows["month"] < window_end))
    unknown = rows["join_month_index"].notna() & rows["tier"].isna()
    if unknown.any():
        raise ValueError(f"tiers: {int(unknown.sum())} member rows of the panel have no tier "
                         f"(e.g. customer_id {rows.loc[unknown, 'customer_id'].iloc[0]!r})")
    return rows.loc[~inside]


class TierRetention:
    """Churn hazard ratio of each tier against non-members (time-varying Cox), with the
    member's time inside the window as its own state.

    Attributes
    ----------
    results_ : dict of str to EffectResult-like dicts
        Per tier: ``hazard_ratio``, ``low``, ``high``, ``interval``, ``n_treated``, ``events``.
    model_ : CoxTimeVarying
    """

    def __init__(self, *, window_days: int = 30) -> None:
        self.window_days = int(window_days)

    def fit(self, survival: pd.DataFrame, tiers: pd.DataFrame, *,
            covariates: list[str] | tuple[str, ...] = ()) -> TierRetention:
        from roi.retention.cox_time_varying import CoxTimeVarying

        table = split_at_window(survival, tiers, window_days=self.window_days)
        self.model_ = CoxTimeVarying().fit(table, covariates=list(covariates),
                                           community="tier_state")
        self.result_: EffectResult = self.model_.result_
        self.results_ = dict(self.result_.by_group)
        return self


def split_at_window(survival: pd.DataFrame, tiers: pd.DataFrame, *,
                    window_days: int) -> pd.DataFrame:
    """The start-stop table with member rows split at ``join_day + window_days``:
    ``tier_state`` is :data:`WINDOW_STATE` before, the member's tier after (None for
    non-member rows); the churn event stays on the later part."""
    table = survival.copy()
    tier = table["customer_id"].map(tiers.set_index("customer_id")["tier"].astype(object))
    end = table["join_day"].astype("Float64").to_numpy(float, na_value=np.nan) + window_days
    member = table["member"].to_numpy() == 1
    start, stop = table["start"].to_numpy(float), table["stop"].to_numpy(float)
    split = member & (start < end) & (end < stop)
    before = table.loc[split].copy()
    before["stop"], before["event"] = end[split].astype(np.int64), 0
    before["tier_state"] = WINDOW_STATE
    state = np.where(member & (start >= end), tier.to_numpy(object),
                     np.where(member, WINDOW_STATE, None))
    table["tier_state"] = state
    table.loc[split, "start"] = end[split].astype(np.int64)
    table.loc[split, "tier_state"] = tier[split].to_numpy(object)
    out = pd.concat([table, before], ignore_index=True)
    return out.sort_values(["customer_id", "start"], ignore_index=True)
