"""Every sum the revenue-lift block's naive gap and DiDs read, from ``GROUP BY`` queries inside
the database (issue 19), so that a run never fetches the customer-month panel for them.

:func:`revenue_aggregates_in_database` runs over the data layer's panel statement
(:func:`roi.data.panel.panel_select`), on its active rows as the in-memory path does:

* the staggered DiD's sums per first-treated month x observed months x community, for revenue
  (additive DiD) and organic revenue (ratio DiD) (:func:`roi.revenue_lift.did_sql.did_aggregate_frame`);
  any community's panel (its members and the never-members), or the whole one, and either
  anticipation, is a selection of these rows (:meth:`RevenueAggregates.did`);
* the ratio DiD's member-months and organic revenue per community x join month x month, and
  its member counts (:meth:`RevenueAggregates.member_events`);
* the naive gap's sums (:func:`roi.revenue_lift.did_sql.naive_gap_sums`);
* the coverage sums (member-months and revenue, all and covered by a base month before joining,
  by the one before it, and by ``min_history`` months in ``lookback``) per community
  (:meth:`RevenueAggregates.coverage`), which also give the member-month counts.

What comes back grows with cohorts x observation patterns x months (x communities), not with
customers: at 1,000,000 customers a few thousand rows. The fits are the in-memory fits, number
for number (``tests/test_revenue_aggregates.py``), read through
:func:`roi.revenue_lift.block.revenue_lift_estimates` with ``aggregates=``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import sqlalchemy as sa

from roi.data.dialect import exact_sum
from roi.data.source import fetch_frame, temporary_table
from roi.data.sql_parts import count_distinct
from roi.revenue_lift._did_stats import DiDAggregates
from roi.revenue_lift.did_multiplicative import MemberEventSums
from roi.revenue_lift.did_sql import (
    did_aggregate_frames,
    in_key_order,
    naive_gap_sums,
    on_periods,
    scope_aggregates,
    sum_frames,
)
from roi.revenue_lift.member_coverage import COVERAGE_SUMS
from roi.revenue_lift.panel_input import never_treated

UNIT, TIME, GROUP, COMMUNITY = "customer_id", "month_index", "join_month_index", "community"
OUTCOMES = ("revenue", "organic_revenue")
RULES = ("base", "base_before", "history")
"""Coverage rules: a whole month at ``g - 1`` (the DiD's base), at ``g - 2`` (the base with
anticipation 1), ``min_history`` months in ``[g - lookback, g - 1]`` (regression adjustment and
AIPW)."""


@dataclass
class RevenueAggregates:
    """The sums of :func:`revenue_aggregates_in_database` (see the module notes).

    Attributes
    ----------
    did_frames : dict
        Outcome -> :func:`roi.revenue_lift.did_sql.did_aggregate_frame`'s rows, ``by`` the
        community (both outcomes from one query, :func:`~roi.revenue_lift.did_sql.did_aggregate_frames`).
    periods : ndarray
        The months of the active rows.
    scope_months : DataFrame
        ``community`` (None for customers without one) x ``month_index`` present.
    events : DataFrame
        Member-months (``time >= join``) per ``community``, ``join``, ``time``: ``n`` and
        ``total`` (organic revenue).
    event_units : DataFrame
        Members with such a month per ``community`` and ``join``: ``units``.
    naive : DataFrame
        :func:`roi.revenue_lift.did_sql.naive_gap_sums` of revenue by community.
    coverage_table : DataFrame
        Per ``community``, the three coverage flags of :data:`RULES` and ``first_month`` (0 or
        1): the sums of :data:`roi.revenue_lift.member_coverage.COVERAGE_SUMS` (before the
        covered split: ``member_months`` and ``revenue``).
    rows_fetched : int
        Rows the queries returned.
    """

    did_frames: dict[str, pd.DataFrame]
    periods: np.ndarray
    scope_months: pd.DataFrame
    events: pd.DataFrame
    event_units: pd.DataFrame
    naive: pd.DataFrame
    coverage_table: pd.DataFrame
    rows_fetched: int = 0
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def communities(self) -> list[str]:
        """The communities of members and non-members' rows, sorted (as the block's loop)."""
        names = self.scope_months[COMMUNITY].dropna().unique()
        return sorted(str(n) for n in names)

    def _in_scope(self, values: pd.Series, community: str | None) -> np.ndarray:
        """Rows of customers without a community, and of ``community`` (all when None)."""
        if community is None:
            return np.ones(len(values), dtype=bool)
        named = values.astype(object)
        return (named.isna() | (named == community)).to_numpy(dtype=bool)

    def scope_periods(self, community: str | None) -> np.ndarray:
        keep = self._in_scope(self.scope_months[COMMUNITY], community)
        return np.sort(self.scope_months.loc[keep, TIME].unique())

    def did(self, *, outcome: str, community: str | None = None,
            anticipation: int = 0) -> DiDAggregates:
        """The DiD's aggregates of the panel of ``community``'s rows and those of customers
        without a community (never-members), or of every row (None)."""
        key = (outcome, community, anticipation)
        if key not in self._cache:
            frame = self.did_frames[outcome]
            self._cache[key] = scope_aggregates(
                frame, self.periods, keep=self._in_scope(frame["by"], community),
                scope_periods=self.scope_periods(community), anticipation=anticipation)
        return self._cache[key]

    def member_events(self, community: str | None = None) -> MemberEventSums:
        """The ratio DiD's member-months by months since joining, in the same scope."""
        periods = self.scope_periods(community)
        rows = self.events[self._in_scope(self.events[COMMUNITY], community)]
        rows = rows[~never_treated(rows["join"], periods=periods)]
        start = np.searchsorted(periods, rows["join"].to_numpy(dtype=float), side="left")
        e = np.searchsorted(periods, rows["time"].to_numpy(dtype=float)) - start
        table = (pd.DataFrame({"e": e.astype(np.int64), "member_months": rows["n"].to_numpy(),
                               "revenue": rows["total"].to_numpy(dtype=float)})
                 .groupby("e", sort=True).sum().reset_index())
        table["member_months"] = table["member_months"].astype(np.int64)
        units = self.event_units[self._in_scope(self.event_units[COMMUNITY], community)]
        units = units[~never_treated(units["join"], periods=periods)]
        return MemberEventSums(table=table, n_units=int(units["units"].sum()))

    def coverage(self, rule: str, *, first_month: int = 0) -> pd.DataFrame:
        """:func:`roi.revenue_lift.member_coverage.coverage_sums` for coverage ``rule`` (one of
        :data:`RULES`), from ``first_month`` months after joining."""
        table = self.coverage_table[self.coverage_table["first_month"] == first_month]
        covered = table[rule].astype(bool).to_numpy()
        frame = pd.DataFrame({
            "community": table[COMMUNITY].astype(object).fillna(""),
            "member_months": table["member_months"].to_numpy(dtype=np.int64),
            "revenue": table["revenue"].to_numpy(dtype=float),
            "covered_months": np.where(covered, table["member_months"], 0).astype(np.int64),
            "covered_revenue": np.where(covered, table["revenue"], 0.0)})
        sums = frame.groupby("community", sort=True)[list(COVERAGE_SUMS)].sum().reset_index()
        sums["community"] = sums["community"].replace("", None)
        return sums

    def member_months(self) -> int:
        """Active member-months, ``(panel["member"] & panel["active"]).sum()``."""
        return int(self.coverage("base")["member_months"].sum())

    def member_months_by_community(self) -> dict[str, int]:
        """:func:`roi.revenue_lift.block.member_months_by_community` of the panel."""
        sums = self.coverage("base").dropna(subset=["community"])
        return {str(k): int(v) for k, v in zip(sums["community"], sums["member_months"],
                                                strict=True) if v > 0}


def active_panel(dataset, *, by_key: bool = False) -> sa.Subquery:
    """The data layer's panel statement, its active rows and the columns the fits read;
    ``by_key``: the integer ``customer_key`` stands in the ``customer_id`` column (what the
    sums group by; nothing here returns an id)."""
    from roi.data.panel import panel_select

    panel = panel_select(dataset, with_key=by_key).order_by(None)
    if dataset.engine.dialect.name == "postgresql":
        # A fence (OFFSET 0 is never pulled up): on tables without statistics PostgreSQL
        # estimates the filtered panel at a row or two and plans its revenue join as a nested
        # loop over every (customer, month) pair (> 2 min on 3,000 customers); planned alone
        # the panel gets hash joins (roi.engagement.tiers.after_window_select does the same)
        panel = panel.offset(0)
    panel = panel.subquery("panel")
    unit = panel.c.customer_key.label(UNIT) if by_key else panel.c[UNIT]
    return (sa.select(unit, *(panel.c[c] for c in (TIME, GROUP, COMMUNITY, *OUTCOMES)))
            .where(panel.c.active).subquery("active_panel"))


def revenue_aggregates_in_database(dataset, *, lookback: int = 12,
                                   min_history: int = 1) -> RevenueAggregates:
    """Every sum the block's naive gap, DiDs, join-month adjustment and coverage read, from
    ``GROUP BY`` queries over ``dataset``'s panel inside its database (module notes).

    ``lookback`` and ``min_history``: the history rule of regression adjustment and AIPW
    (:func:`roi.revenue_lift.member_coverage.history_covered`'s defaults).
    """
    from roi.data.sample import customer_slices

    slices = customer_slices(dataset, max_panel_rows=ROWS_PER_SLICE)
    if len(slices) == 1:
        return revenue_aggregates(dataset.engine, active_panel(dataset), lookback=lookback,
                                  min_history=min_history)
    # Every sum is over customers: each slice's (its own customers, a join that fits the
    # database's memory) add up to the whole's. A slice's active rows are stored once and read
    # by every statement (each would run the join again)
    parts = []
    for part in slices:
        with temporary_table(dataset.engine, sa.select(active_panel(part, by_key=True)),
                             name="roi_slice_panel") as table:
            parts.append(revenue_aggregates(dataset.engine, table, lookback=lookback,
                                            min_history=min_history))
    return combined(parts)


ROWS_PER_SLICE = 12_000_000
"""Customer-month rows per slice of customers on the embedded DuckDB
(:func:`roi.data.sample.customer_slices`): a million customers' panel and their monthly revenue
join and pivot within its 1 GB memory cap."""


def revenue_aggregates(engine: sa.Engine, rows: sa.FromClause, *, lookback: int = 12,
                       min_history: int = 1) -> RevenueAggregates:
    """:func:`revenue_aggregates_in_database` over any selectable ``rows`` with the active
    panel's columns (:func:`active_panel`: customer_id, month_index, join_month_index,
    community, revenue, organic_revenue), e.g. a table of a hand-made panel."""
    rows = rows if isinstance(rows, sa.Alias) else rows.alias("active_panel")
    # Both outcomes from one pivot per customer (the costliest pass over the panel)
    frames, periods = did_aggregate_frames(engine, rows, unit=UNIT, time=TIME, group=GROUP,
                                           outcomes=OUTCOMES, by=COMMUNITY)
    months = in_key_order(fetch_frame(engine, sa.select(rows.c[COMMUNITY], rows.c[TIME])
                                      .distinct()), [COMMUNITY, TIME])
    events, event_units = _member_events(engine, rows)
    naive = naive_gap_sums(engine, rows, unit=UNIT, outcome="revenue", join_time=GROUP,
                           community=COMMUNITY)
    coverage = _coverage(engine, rows, lookback=lookback, min_history=min_history)
    fetched = len(frames[OUTCOMES[0]]) + sum(len(f) for f in (months, events, event_units, naive,
                                   coverage)) + len(periods)
    return RevenueAggregates(did_frames=frames, periods=periods, scope_months=months,
                             events=events, event_units=event_units, naive=naive,
                             coverage_table=coverage, rows_fetched=fetched)


def combined(parts: list[RevenueAggregates]) -> RevenueAggregates:
    """The sums of disjoint sets of customers (slices) added up, their pivots on every
    slice's months: the :class:`RevenueAggregates` of all of them."""
    def added(frames: list[pd.DataFrame], keys: list[str]) -> pd.DataFrame:
        summed = (pd.concat(frames, ignore_index=True)
                  .groupby(keys, dropna=False, sort=False).sum().reset_index())
        return in_key_order(summed[list(frames[0].columns)], keys)

    first = parts[0]
    periods = np.unique(np.concatenate([p.periods for p in parts]))
    naive_keys = ["ever", COMMUNITY]
    naive = added([p.naive.assign(community=p.naive[COMMUNITY].fillna("")) for p in parts],
                  naive_keys)
    naive[COMMUNITY] = naive[COMMUNITY].replace("", None)
    months = in_key_order(pd.concat([p.scope_months for p in parts], ignore_index=True)
                          .drop_duplicates(), [COMMUNITY, TIME])
    return RevenueAggregates(
        did_frames={name: sum_frames([on_periods(p.did_frames[name], p.periods, periods)
                                      for p in parts])
                    for name in first.did_frames},
        periods=periods, scope_months=months,
        events=added([p.events for p in parts], [COMMUNITY, "join", "time"]),
        event_units=added([p.event_units for p in parts], [COMMUNITY, "join"]),
        naive=naive,
        coverage_table=added([p.coverage_table for p in parts],
                             ["first_month", COMMUNITY, *RULES]),
        rows_fetched=sum(p.rows_fetched for p in parts))


def _member_events(engine: sa.Engine, rows: sa.FromClause) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Member-months (``time >= join``, an outcome) per community, join and month; members."""
    member = sa.and_(rows.c[GROUP].is_not(None), rows.c[TIME] >= rows.c[GROUP],
                     rows.c.organic_revenue.is_not(None))
    keys = [rows.c[COMMUNITY], rows.c[GROUP].label("join")]
    events = fetch_frame(engine, sa.select(*keys, rows.c[TIME].label("time"),
                                           sa.func.count().label("n"),
                                           exact_sum(rows.c.organic_revenue).label("total"))
                         .where(member).group_by(*keys, rows.c[TIME]))
    units = fetch_frame(engine, count_distinct(rows.c[UNIT], keys=keys, where=member,
                                               label="units"))
    # In a fixed order: the sums made of these rows are then the same on every rerun
    return (in_key_order(events, [COMMUNITY, "join", "time"]),
            in_key_order(units, [COMMUNITY, "join"]))


def _coverage(engine: sa.Engine, rows: sa.FromClause, *, lookback: int,
              min_history: int) -> pd.DataFrame:
    """Per community and coverage flags: member-months and revenue from the join month and
    from the month after (:func:`roi.revenue_lift.member_coverage._members`'s rule: a join
    month, and ``time >= join + first_month``)."""
    t, g, revenue = rows.c[TIME], rows.c[GROUP], sa.cast(rows.c.revenue, sa.Double)

    def flag(condition) -> sa.ColumnElement:
        return sa.func.max(sa.case((sa.and_(g.is_not(None), condition), 1), else_=0))

    def member(first: int):
        return sa.and_(g.is_not(None), t >= g + first)

    history = sa.func.sum(sa.case((sa.and_(g.is_not(None), t < g, t >= g - lookback), 1),
                                  else_=0))
    per_unit = (sa.select(sa.func.min(rows.c[COMMUNITY]).label(COMMUNITY),
                          flag(t == g - 1).label("base"), flag(t == g - 2).label("base_before"),
                          sa.case((history >= min_history, 1), else_=0).label("history"),
                          *[part for first in (0, 1) for part in (
                              sa.func.sum(sa.case((member(first), 1), else_=0))
                              .label(f"m{first}"),
                              exact_sum(sa.case((member(first), revenue), else_=0.0))
                              .label(f"r{first}"))])
                .group_by(rows.c[UNIT]).subquery("coverage_units"))
    keys = [per_unit.c[c] for c in (COMMUNITY, *RULES)]
    sums = [(exact_sum if c[0] == "r" else sa.func.sum)(per_unit.c[c]).label(c)
            for c in ("m0", "r0", "m1", "r1")]
    found = in_key_order(fetch_frame(engine, sa.select(*keys, *sums).group_by(*keys)),
                         [COMMUNITY, *RULES])
    parts = [found[[COMMUNITY, *RULES]].assign(first_month=first,
                                               member_months=found[f"m{first}"],
                                               revenue=found[f"r{first}"])
             for first in (0, 1)]
    return pd.concat(parts, ignore_index=True)
