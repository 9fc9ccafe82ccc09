"""The staggered DiD's (and the naive gap's) sufficient statistics from ``GROUP BY`` queries
inside the database.

:func:`did_aggregates` turns any long panel the database holds (a SQLAlchemy selectable with one
row per unit and period) into the :class:`~roi.revenue_lift._did_stats.DiDAggregates` that
:meth:`StaggeredDiD.fit_aggregates <roi.revenue_lift.did.StaggeredDiD.fit_aggregates>` reads:
per first-treated value and set of observed periods, the count of units, the sum of the outcome
per period and the sum of products of the outcome in two periods. What comes back grows with
cohorts x observation patterns x periods squared (a few thousand rows for customers, who enter
and churn once), not with units; the fit is then the in-memory fit's, number for number.

Two statements run: the distinct periods (to pivot on), then the aggregate, a pivot per unit
(``MAX(CASE WHEN time = p THEN outcome END)``) grouped by the first-treated value and which
periods are observed. The rules of :func:`roi.revenue_lift._did_panel.wide_panel` (never-treated
coding, units treated from the first period, units with fewer than two observed periods, rows
without an outcome, one row per unit and period, a constant first-treated value) apply to the
returned groups, with the same counts in ``dropped``.

Examples
--------
>>> import pandas as pd
>>> from roi.data.source import embedded_engine
>>> from roi.revenue_lift.did import StaggeredDiD
>>> long = pd.DataFrame({"id": [1, 1, 1, 2, 2, 2, 3, 3, 3], "t": [1, 2, 3] * 3,
...                      "g": [3, 3, 3, 0, 0, 0, 0, 0, 0],
...                      "y": [1.0, 2.0, 5.0, 1.0, 2.0, 3.0, 2.0, 2.5, 3.5]})
>>> engine = embedded_engine()
>>> with engine.begin() as connection:
...     _ = long.to_sql("panel", connection, index=False)
>>> table = sa.table("panel", *(sa.column(c) for c in long.columns))
>>> aggregates = did_aggregates(engine, table, unit="id", time="t", group="g", outcome="y")
>>> StaggeredDiD().fit_aggregates(aggregates).result_.estimate
2.0
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import sqlalchemy as sa

from roi.data.dialect import exact_sum
from roi.data.source import fetch_frame
from roi.revenue_lift._did_panel import NEVER
from roi.revenue_lift._did_stats import DiDAggregates, PatternStats
from roi.revenue_lift.panel_input import never_treated


def did_aggregates(engine: sa.Engine, panel: sa.FromClause, *, unit: str, time: str,
                   group: str, outcome: str, anticipation: int = 0) -> DiDAggregates:
    """Sums per first-treated value and observation pattern, computed in the database.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        Where ``panel`` lives.
    panel : sqlalchemy FromClause
        Long panel: one row per unit and period.
    unit, time, group, outcome : str
        Its columns, as :meth:`roi.revenue_lift.did.StaggeredDiD.fit` takes them.
    anticipation : int
        As the estimator's: cohorts at or before this period position have no pre-period.

    Raises
    ------
    ValueError
        Empty ``time`` or ``unit`` values, repeated (unit, time) rows, a first-treated value that
        changes within a unit: the messages of the in-memory fit.
    """
    frame, periods = did_aggregate_frame(engine, panel, unit=unit, time=time, group=group,
                                         outcome=outcome)
    return _to_aggregates(frame, periods, anticipation=anticipation)


def did_aggregate_frame(engine: sa.Engine, panel: sa.FromClause, *, unit: str, time: str,
                        group: str, outcome: str,
                        by: str | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """The sums :func:`did_aggregates` reads, as returned (one row per first-treated value and
    observed periods, and per value of ``by``, a column constant within a unit such as the
    community), with the distinct periods. :func:`scope_aggregates` turns any set of its rows
    (one community and the never-members) into :class:`DiDAggregates` without another query.
    """
    rows = panel.alias("did_panel") if not isinstance(panel, sa.Alias) else panel
    periods, n_rows = _periods(engine, rows, unit=unit, time=time)
    frame = _pivot_in_passes(engine, rows, periods, n_rows=n_rows, unit=unit, time=time,
                             group=group, outcome=outcome, by=by)
    _check(frame, unit=unit, time=time, group=group)
    return frame, periods


def did_aggregate_frames(engine: sa.Engine, panel: sa.FromClause, *, unit: str, time: str,
                         group: str, outcomes: tuple[str, ...], by: str | None = None
                         ) -> tuple[dict[str, pd.DataFrame], np.ndarray]:
    """:func:`did_aggregate_frame` of several outcomes from one pass over ``panel`` (one
    pivot per unit for all of them): outcome -> its frame, and the periods."""
    rows = panel.alias("did_panel") if not isinstance(panel, sa.Alias) else panel
    periods, n_rows = _periods(engine, rows, unit=unit, time=time)
    wide = _pivot_in_passes(engine, rows, periods, n_rows=n_rows, unit=unit, time=time,
                            group=group, outcome=tuple(outcomes), by=by)
    shared = [c for c in ("by", "g", "n", "repeated", "changing") if c in wide.columns]
    frames = {}
    for k, name in enumerate(outcomes):
        own = [c for c in wide.columns if c.startswith(f"o{k}_")]
        frame = wide[[*shared, *own]].rename(columns={c: c[len(f"o{k}_"):] for c in own})
        _check(frame, unit=unit, time=time, group=group)
        frames[name] = frame
    return frames, periods


def scope_aggregates(frame: pd.DataFrame, periods: np.ndarray, *, keep: np.ndarray,
                     scope_periods: np.ndarray, anticipation: int = 0) -> DiDAggregates:
    """:class:`DiDAggregates` of the units in ``frame``'s rows ``keep`` (of
    :func:`did_aggregate_frame`), on the periods those units' rows have (``scope_periods``, a
    subset of ``periods``): what :func:`did_aggregates` returns for a panel of those rows only.
    """
    index = np.searchsorted(periods, scope_periods)
    part = frame.loc[np.asarray(keep, dtype=bool)]
    columns = {"g": part["g"].to_numpy()}
    for new, old in enumerate(index):
        columns[f"s{new}"] = part[f"s{old}"].to_numpy()
    for name in ("n", "repeated", "changing", "missing"):
        columns[name] = part[name].to_numpy(dtype=float)
    for new, old in enumerate(index):
        columns[f"t{new}"] = part[f"t{old}"].to_numpy(dtype=float, na_value=0.0)
    for i, old_i in enumerate(index):
        for j in range(i, len(index)):
            columns[f"c{i}_{j}"] = part[f"c{old_i}_{index[j]}"].to_numpy(dtype=float,
                                                                          na_value=0.0)
    restricted = pd.DataFrame(columns)
    restricted["g"] = part["g"].reset_index(drop=True)   # keep the nullable dtype
    keys = ["g", *(f"s{i}" for i in range(len(index)))]
    # Units of several communities can share a pattern: one group each, as in memory
    merged = restricted.groupby(keys, dropna=False, sort=False).sum().reset_index()
    merged["n"] = merged["n"].astype(np.int64)
    return _to_aggregates(merged, np.asarray(scope_periods), anticipation=anticipation)


ROWS_PER_PASS = 12_000_000
"""Panel rows one pivot statement reads in the embedded DuckDB. Its hash aggregate keeps about
a hundred states per unit (a maximum per period and outcome) and ran out of its memory cap (1 GB)
on 130M rows of 10M customers; rows of up to a million customers pass. Units are split into
passes by a hash of their id; each pass's sums per group add up to the whole's."""


def _pivot_in_passes(engine: sa.Engine, rows: sa.FromClause, periods: np.ndarray, *,
                     n_rows: int, unit: str, time: str, group: str,
                     outcome: str | tuple[str, ...], by: str | None,
                     rows_per_pass: int | None = None) -> pd.DataFrame:
    """:func:`_aggregate_select`'s frame, in passes over disjoint sets of units on DuckDB when
    the panel has more than ``rows_per_pass`` rows (warehouses manage their own memory)."""
    from roi.data.dialect import is_duckdb

    limit = rows_per_pass or ROWS_PER_PASS
    passes = -(-n_rows // limit) if is_duckdb(engine) else 1
    if passes <= 1:
        return _in_key_order(fetch_frame(engine, _aggregate_select(
            rows, periods, unit=unit, time=time, group=group, outcome=outcome, by=by)))
    bucket = sa.func.hash(rows.c[unit]) % passes
    parts = []
    for k in range(passes):
        part = sa.select(rows).where(bucket == k).subquery(f"did_pass_{k}")
        parts.append(fetch_frame(engine, _aggregate_select(part, periods, unit=unit, time=time,
                                                           group=group, outcome=outcome,
                                                           by=by)))
    return sum_frames(parts)


def on_periods(frame: pd.DataFrame, periods: np.ndarray, wider: np.ndarray) -> pd.DataFrame:
    """A pivot frame of :func:`did_aggregate_frame` on ``periods`` as it reads on ``wider``
    (a superset, e.g. every slice's periods): a period none of its units had is unobserved
    (``s`` 0) with sums 0. Frames of disjoint units on the same periods then add up
    (:func:`sum_frames`)."""
    if np.array_equal(periods, wider):
        return frame
    at = {int(k): i for i, k in enumerate(np.searchsorted(wider, periods))}
    zeros = np.zeros(len(frame))
    column = {}
    for k in range(len(wider)):
        column[f"s{k}"] = frame[f"s{at[k]}"] if k in at else zeros.astype(np.int64)
        column[f"t{k}"] = frame[f"t{at[k]}"] if k in at else zeros
        for j in range(k, len(wider)):
            both = k in at and j in at
            column[f"c{k}_{j}"] = frame[f"c{at[k]}_{at[j]}"] if both else zeros
    kept = frame[[c for c in frame.columns if not re.fullmatch(r"[stc]\d+(_\d+)?", c)]]
    return pd.concat([kept, pd.DataFrame(column, index=frame.index)], axis=1)


def sum_frames(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Pivot frames of disjoint sets of units (passes, slices; on the same periods) added up
    per group: ``by``, ``g`` and the observed-period flags (``s<i>``, ``o<k>_s<i>``) are the
    keys, every other column a sum."""
    frame = pd.concat([_in_key_order(part) for part in parts], ignore_index=True)
    summed = frame.groupby(_keys(frame), dropna=False, sort=False).sum().reset_index()
    return _in_key_order(summed[list(frame.columns)])


def _keys(frame: pd.DataFrame) -> list[str]:
    """A pivot frame's group columns: ``by``, ``g`` and the observed-period flags."""
    return [c for c in frame.columns if c in ("by", "g") or re.search(r"(^|_)s\d+$", c)]


def in_key_order(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``frame`` sorted by ``keys`` (unique per row): a GROUP BY returns its groups in an order
    that changes between runs (parallel threads), and the sums made of them downstream would
    change in their last bits; in a fixed order the same data gives the same results.json."""
    return frame.sort_values(keys, kind="stable", na_position="first").reset_index(drop=True)


def _in_key_order(frame: pd.DataFrame) -> pd.DataFrame:
    return in_key_order(frame, _keys(frame))


def _periods(engine: sa.Engine, rows: sa.FromClause, *, unit: str,
             time: str) -> tuple[np.ndarray, int]:
    statement = sa.select(rows.c[time], sa.func.count().label("n"),
                          sa.func.sum(sa.case((rows.c[unit].is_(None), 1), else_=0))
                          .label("no_unit")).group_by(rows.c[time])
    found = fetch_frame(engine, statement)
    if found[time].isna().any():
        n = int(found.loc[found[time].isna(), "n"].sum())
        raise ValueError(f"StaggeredDiD: column {time!r} has {n} empty values")
    if found["no_unit"].sum():
        raise ValueError(f"StaggeredDiD: column {unit!r} has {int(found['no_unit'].sum())} "
                         "empty values")
    return np.sort(found[time].to_numpy()), int(found["n"].sum())


def _aggregate_select(rows: sa.FromClause, periods: np.ndarray, *, unit: str, time: str,
                      group: str, outcome: str | tuple[str, ...],
                      by: str | None = None) -> sa.Select:
    """Per unit a pivot of the outcome over the periods; per (group, observed periods) the
    count, sums and sums of products (and per ``by``, constant within a unit, when given).
    Several outcomes (a tuple) are pivoted in the same pass, their columns prefixed ``o0_``,
    ``o1_``...; one (a string) keeps the plain names."""
    outcomes = (outcome,) if isinstance(outcome, str) else tuple(outcome)
    prefixes = [""] if isinstance(outcome, str) else [f"o{k}_" for k in range(len(outcomes))]
    pivot, counts = [], []
    for name, p in zip(outcomes, prefixes, strict=True):
        value = sa.cast(rows.c[name], sa.Double)
        pivot += [sa.func.max(sa.case((rows.c[time] == _plain(t), value), else_=None))
                  .label(f"{p}y{i}") for i, t in enumerate(periods)]
        counts.append(sa.func.count(rows.c[name]).label(f"{p}n_outcomes"))
    per_unit = (sa.select(rows.c[unit], sa.func.min(rows.c[group]).label("g"),
                          sa.func.max(rows.c[group]).label("g_max"),
                          sa.func.count(rows.c[group]).label("g_n"),
                          sa.func.count().label("n_rows"),
                          _distinct_periods(rows.c[time], periods).label("n_times"), *counts,
                          *([sa.func.min(rows.c[by]).label("by")] if by else []), *pivot)
                .group_by(rows.c[unit]).subquery("per_unit"))
    side = [per_unit.c.by] if by else []
    seen, sums, products, missing = [], [], [], []
    for p in prefixes:
        y = [per_unit.c[f"{p}y{i}"] for i in range(len(periods))]
        seen += [sa.case((column.is_(None), 0), else_=1).label(f"{p}s{i}")
                 for i, column in enumerate(y)]
        sums += [exact_sum(column).label(f"{p}t{i}") for i, column in enumerate(y)]
        products += [exact_sum(y[i] * y[j]).label(f"{p}c{i}_{j}")
                     for i in range(len(y)) for j in range(i, len(y))]
        missing.append(sa.func.sum(per_unit.c.n_rows - per_unit.c[f"{p}n_outcomes"])
                       .label(f"{p}missing"))
    changes = sa.case((sa.or_(per_unit.c.g != per_unit.c.g_max,
                              sa.and_(per_unit.c.g_n > 0, per_unit.c.g_n < per_unit.c.n_rows)),
                       1), else_=0)
    return (sa.select(*side, per_unit.c.g, *seen, sa.func.count().label("n"),
                      sa.func.sum(per_unit.c.n_rows - per_unit.c.n_times).label("repeated"),
                      sa.func.sum(changes).label("changing"), *missing, *sums, *products)
            .group_by(*side, per_unit.c.g, *seen))


def _distinct_periods(time: sa.ColumnElement, periods: np.ndarray) -> sa.ColumnElement:
    """A unit's number of distinct periods as a sum of per-period indicators: what
    ``COUNT(DISTINCT time)`` counts (every time is one of ``periods``), with plain ``MAX``
    states, which DuckDB spills to disk (a DISTINCT aggregate cannot, and ran out of memory
    grouping 130M rows by 10M customers)."""
    terms = [sa.func.max(sa.case((time == _plain(t), 1), else_=0)) for t in periods]
    total = terms[0] if terms else sa.literal(0)
    for term in terms[1:]:
        total = total + term
    return total


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _check(frame: pd.DataFrame, *, unit: str, time: str, group: str) -> None:
    if frame["repeated"].sum():
        raise ValueError(f"StaggeredDiD: ({unit}, {time}) pairs appear more than once "
                         f"({int(frame['repeated'].sum())} extra rows); the panel needs one row "
                         "per unit and period")
    if frame["changing"].sum():
        raise ValueError(f"StaggeredDiD: column {group!r} (first treated period) changes "
                         f"within {int(frame['changing'].sum())} units; it must be constant")


def _to_aggregates(frame: pd.DataFrame, periods: np.ndarray, *,
                   anticipation: int) -> DiDAggregates:
    """The wide panel's rules on the returned groups, then :class:`DiDAggregates`."""
    n_periods = len(periods)
    seen = frame[[f"s{i}" for i in range(n_periods)]].to_numpy().astype(bool)
    n = frame["n"].to_numpy().astype(np.int64)
    raw = frame["g"]
    never = never_treated(raw, periods=periods)
    filled = raw.astype(object).where(~never, periods[0]).to_numpy()
    filled = filled.astype(periods.dtype) if periods.dtype.kind in "iufM" else filled
    cohort = np.where(never, NEVER, np.searchsorted(periods, filled, side="left"))
    at_start = (cohort != NEVER) & (cohort <= anticipation)
    too_few = seen.sum(axis=1) < 2
    keep = ~at_start & ~too_few
    dropped = {"rows_without_outcome": int(frame["missing"].sum()),
               "units_treated_from_first_period": int(n[at_start].sum()),
               "units_with_fewer_than_two_periods": int(n[too_few & ~at_start].sum())}
    codes = np.unique(cohort[keep])
    total = frame[[f"t{i}" for i in range(n_periods)]].to_numpy(dtype=float, na_value=0.0)
    cross = np.zeros((len(frame), n_periods, n_periods))
    for i in range(n_periods):
        for j in range(i, n_periods):
            cross[:, i, j] = cross[:, j, i] = frame[f"c{i}_{j}"].to_numpy(dtype=float,
                                                                         na_value=0.0)
    stats = PatternStats(cohort=np.searchsorted(codes, cohort[keep]), seen=seen[keep],
                         n=n[keep], total=total[keep], cross=cross[keep],
                         n_cohorts=len(codes))
    labels = {}
    for code in codes[codes != NEVER]:   # the smallest value the user gave for the cohort
        labels[int(code)] = raw[keep & (cohort == code)].min()
    return DiDAggregates(stats, codes, periods, labels, dropped)


def naive_gap_sums(engine: sa.Engine, panel: sa.FromClause, *, unit: str, outcome: str,
                   join_time: str, community: str | None = None,
                   periods: np.ndarray | None = None) -> pd.DataFrame:
    """:func:`roi.revenue_lift.naive_revenue.gap_sums` from one ``GROUP BY`` in the database
    (per unit, then per first-joined value and community), for
    :meth:`NaiveRevenueGap.fit_sums <roi.revenue_lift.naive_revenue.NaiveRevenueGap.fit_sums>`.

    ``periods`` applies the never-member rule's "after the last period" (as ``time=`` does in
    ``fit``). Rows without an outcome raise (in memory they would make the gap NaN).
    """
    from roi.revenue_lift.naive_revenue import SUMS

    rows = panel.alias("gap_panel") if not isinstance(panel, sa.Alias) else panel
    side = [rows.c[community]] if community else []
    per_unit = (sa.select(rows.c[unit], sa.func.min(rows.c[join_time]).label("joined"),
                          *[sa.func.min(c).label("community") for c in side],
                          sa.func.count().label("m"),
                          sa.func.count(rows.c[outcome]).label("m_outcome"),
                          exact_sum(rows.c[outcome]).label("s"))
                .group_by(rows.c[unit]).subquery("gap_units"))
    keys = [per_unit.c.joined, *([per_unit.c.community] if community else [])]
    m = sa.cast(per_unit.c.m, sa.Double)
    statement = (sa.select(*keys, sa.func.count().label("units"), sa.func.sum(m).label("rows"),
                           sa.func.sum(per_unit.c.m - per_unit.c.m_outcome).label("missing"),
                           exact_sum(per_unit.c.s).label("total"),
                           exact_sum(per_unit.c.s * per_unit.c.s).label("unit_total_sq"),
                           exact_sum(per_unit.c.s * m).label("unit_total_rows"),
                           sa.func.sum(m * m).label("unit_rows_sq"))
                 .group_by(*keys))
    found = in_key_order(fetch_frame(engine, statement), [k.name for k in keys])
    if found["missing"].sum():
        raise ValueError(f"NaiveRevenueGap: column {outcome!r} is empty on "
                         f"{int(found['missing'].sum())} rows")
    ever = ~never_treated(found["joined"], periods=periods)
    labels = found["community"] if community else pd.Series([None] * len(found))
    named = pd.Series(np.where(ever, labels.astype(object), None), dtype=object)
    found = found.assign(ever=ever, community=named)
    sums = found.groupby(["ever", found["community"].fillna("")], sort=True)[list(SUMS)].sum()
    sums = sums.reset_index()
    sums["community"] = sums["community"].replace("", None)
    return sums[["ever", "community", *SUMS]]
