"""The Bayesian revenue model's cells from one ``GROUP BY`` inside the database.

:func:`revenue_cells_sql` returns the table :func:`roi.revenue_lift.bayes_revenue.revenue_cells`
builds from the customer-month panel in memory (active customer-months summed per join cohort x
first-seen month x last-seen month x community x covariate pattern x calendar month, with ``n``,
``total`` and ``total_sq``), from any long panel the database holds, e.g. the data layer's
(:func:`roi.data.panel.panel_select`, as :func:`roi.revenue_lift.did_sql.did_aggregates` reads
it): same columns, dtypes, labels and order. What comes back grows with the calendar, the
cohorts and the patterns, not with customers.

One statement runs (one more per numeric covariate, rare: a histogram of its values over the
active rows for the quantile bins, see :func:`roi.retention.cells_sql.pattern_labels`): each
unit's first and last period, as columns of the panel when the caller knows them (``first=``,
``last=``: the data layer's panel, :func:`roi.revenue_lift.block.bayes_panel`), else as window
functions (``MIN``/``MAX ... OVER (PARTITION BY unit)``, a sort of the whole panel), then the
active rows grouped by the raw join period, those two, the community, the covariate labels and
the period. Over parts of the panel holding disjoint units (slices of customers,
:func:`roi.data.sample.customer_slices`) one statement runs per part, every part cut at the whole
panel's bins (the parts' histograms added up), and the groups are added up. The never-member rule
(:func:`roi.revenue_lift.panel_input.never_treated`: empty, 0 or negative, or after the last
period) and the community labels (``(never)``, ``(unknown)``) apply to the returned groups in
pandas, merging the groups that become the same cell; the last period is the largest unit's last
period returned, and only when a join period lies beyond it is the panel's maximum period asked
for (one more scan). Sums are exact (DECIMAL, :func:`roi.data.dialect.exact_sum`): a rerun or
another engine gives the same numbers, equal to the in-memory float sums to about 1e-15.

Measured (``benchmarks/cells_sql.py``, 2026-12-04; the 1,000,000-customer world over Parquet in
DuckDB, the run's arguments: ``organic_revenue``, segment and plan, community; each mode in its own
process on 2 cores shared with other sessions at load 8-11, so CPU seconds, which count DuckDB's
threads, show the work better than wall seconds): 216,584 cells either way, keys and counts equal,
sums to 1e-14 relative. Building them from the database took 21.7 CPU s (82 s wall) and the
process peaked at 1.50 GiB, of which 1.34 GiB was already reached by the data layer's validation;
fetching the 13.1M-row panel and summing it in pandas took 46.0 CPU s (192 s wall) and peaked at
5.43 GiB.

Measured again (2026-12-05, ``bayesian_cells_in_database`` against the window path in one
process, 2 cores; cells and member count equal, sums to 1e-12): at 10,000,000 customers the
window path took 168 s (cells) + 14 s (members); the first and last month as columns 34 + 14 s;
in 11 slices of customers 30 + 11 s (45 s). At 1,000,000: 10.2 + 1.5 s; 5.7 + 1.1 s; 2 slices
4.4 + 1.6 s.

Examples
--------
>>> import pandas as pd
>>> from roi.data.source import embedded_engine
>>> rows = pd.DataFrame({"id": [1, 1, 1, 2, 2, 2], "t": [1, 2, 3, 1, 2, 3],
...                      "g": [2, 2, 2, None, None, None], "y": [10., 12., 14., 5., 6., 7.],
...                      "community": ["a", "a", "a", None, None, None],
...                      "active": [True] * 6})
>>> engine = embedded_engine()
>>> with engine.begin() as connection:
...     _ = rows.to_sql("panel", connection, index=False)
>>> panel = sa.table("panel", *(sa.column(c) for c in rows.columns))
>>> cells = revenue_cells_sql(engine, panel, unit="id", time="t", group="g", outcome="y")
>>> cells[["cohort", "time", "member", "n", "total"]].values.tolist()[:2]
[[2.0, 1, False, 1, 10.0], [2.0, 2, True, 1, 12.0]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa

from roi.data.dialect import exact_sum
from roi.data.source import fetch_frame
from roi.data.sql_parts import count_distinct
from roi.retention.cells_sql import (
    Histogram,
    added_histograms,
    covariate_kind,
    pattern_labels,
    value_histogram,
)
from roi.revenue_lift.bayes_revenue import ALL, NEVER
from roi.revenue_lift.panel_input import first_treated_numbers

SUMS = ("n", "total", "total_sq")
INTERNAL = ("g", "first", "last", "community", "time", "value", "is_active")


def revenue_cells_sql(engine: sa.Engine, panel: sa.FromClause | Sequence[sa.FromClause], *,
                      unit: str, time: str, group: str, outcome: str,
                      community: str | None = "community", active: str | None = "active",
                      covariates: Sequence[str] = (), kinds: Mapping[str, str] | None = None,
                      numeric_bins: int = 3, first: str | None = None, last: str | None = None,
                      time_dtype: str = "int32") -> pd.DataFrame:
    """:func:`roi.revenue_lift.bayes_revenue.revenue_cells` computed in the database.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        Where ``panel`` lives.
    panel : sqlalchemy FromClause, or a sequence of them
        The whole long panel (one row per unit and period, active or not: a unit's first row is
        its first-seen period), e.g. ``panel_select(dataset).order_by(None).subquery()``; or
        parts of it holding disjoint sets of units (slices of customers), whose cells are
        added up: the whole panel's cells, the numeric covariates' bins those of the whole.
    unit, time, group, outcome, community, active, covariates, numeric_bins :
        As :func:`~roi.revenue_lift.bayes_revenue.revenue_cells` takes them (``time`` an
        integer period, ``group`` the join period on its grid).
    kinds : mapping, optional
        ``numeric`` or ``categorical`` per covariate (``Dataset.covariates``); by default from
        the column's SQL type (numbers numeric, text categorical), which is what the panel's
        pandas dtypes decide in memory.
    first, last : str, optional
        Columns holding each unit's first and last period in the panel, when the caller knows
        them (the data layer's panel has one row per month of a customer's clipped life): no
        window function over the whole panel then. By default they are computed
        (``MIN``/``MAX(time) OVER (PARTITION BY unit)``).
    time_dtype : str
        The dtype ``first``, ``last`` and ``time`` come back in: the pandas panel's, which the
        in-memory cells keep (the data layer's ``month_index`` is int32).

    Returns
    -------
    DataFrame
        ``cohort, first, last, community, <covariates>, time, n, total, total_sq, member,
        event_time``, sorted by the keys: ``revenue_cells(panel_frame, ...)``'s table.
    """
    covariates = list(dict.fromkeys(covariates))
    clash = sorted(set(covariates) & ({unit, time, group, outcome, community, active}
                                      | set(INTERNAL)))
    if clash:
        raise ValueError(f"revenue cells: covariate(s) {clash} clash with the panel's key "
                         f"columns or the query's own names {INTERNAL}")
    if (first is None) != (last is None):
        raise ValueError("revenue cells: give both the first and the last period columns, or "
                         "neither")
    parts = [panel] if isinstance(panel, sa.FromClause) else list(panel)
    parts = [p if isinstance(p, sa.Alias) else p.alias(f"cells_panel_{k}")
             for k, p in enumerate(parts)]
    keyed = [_active_rows(p, unit=unit, time=time, group=group, outcome=outcome,
                          community=community, active=active, covariates=covariates,
                          span=(first, last)) for p in parts]
    histograms = _whole_histograms(engine, keyed, covariates=covariates, kinds=kinds)
    frames = [fetch_frame(engine, _group_sums(engine, k, community=community,
                                              covariates=covariates, kinds=kinds,
                                              numeric_bins=numeric_bins, histograms=histograms))
              for k in keyed]
    # a part without active rows has no dtypes to lend the others
    found = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    # _cells merges the groups of the same cell, which also adds the parts' sums
    last_period = _last_period(engine, parts, found, time=time)
    return _cells(found, last_period=last_period, community=community is not None,
                  covariates=covariates, time_dtype=time_dtype)


def _whole_histograms(engine: sa.Engine, keyed: Sequence[sa.Subquery], *,
                      covariates: Sequence[str],
                      kinds: Mapping[str, str] | None) -> dict[str, Histogram] | None:
    """The numeric covariates' histograms over every part's active rows, added up, so that
    each part is cut at the whole panel's bins; None (each read by pattern_labels) for one."""
    if len(keyed) == 1:
        return None
    numeric = [c for c in covariates
               if covariate_kind(keyed[0].c[c], (kinds or {}).get(c)) == "numeric"]
    return {c: added_histograms([value_histogram(engine, k, k.c[c]) for k in keyed])
            for c in numeric}


def _group_sums(engine: sa.Engine, keyed: sa.Subquery, *, community: str | None,
                covariates: Sequence[str], kinds: Mapping[str, str] | None, numeric_bins: int,
                histograms: Mapping[str, Histogram] | None) -> sa.Select:
    """The active rows' ``n``, ``total`` and ``total_sq`` per raw key (join period, first and
    last period, community, covariate labels, period)."""
    labels, _, _ = pattern_labels(engine, keyed, covariates=covariates, kinds=kinds,
                                  numeric_bins=numeric_bins, histograms=histograms)
    side = [sa.cast(keyed.c.community, sa.String).label("community")] if community else []
    labelled = sa.select(keyed.c.g, keyed.c.first, keyed.c.last, *side, *labels, keyed.c.time,
                         keyed.c.value).subquery("labelled_rows")
    keys = [labelled.c[c.name] for c in (labelled.c.g, labelled.c.first, labelled.c.last,
                                          *side, *labels, labelled.c.time)]
    value = labelled.c.value
    return (sa.select(*keys, sa.func.count().label("n"), exact_sum(value).label("total"),
                      exact_sum(value * value).label("total_sq"))
            .group_by(*keys))


def _active_rows(rows: sa.FromClause, *, unit: str, time: str, group: str, outcome: str,
                 community: str | None, active: str | None, covariates: Sequence[str],
                 span: tuple[str | None, str | None]) -> sa.Subquery:
    """Active rows with their unit's first and last period over the whole panel: the ``span``
    columns when given, else window functions (a sort of the whole panel by unit)."""
    if span[0] is not None:
        first, last = rows.c[span[0]], rows.c[span[1]]
    else:
        over = {"partition_by": rows.c[unit]}
        first = sa.func.min(rows.c[time]).over(**over)
        last = sa.func.max(rows.c[time]).over(**over)
    spans = sa.select(
        rows.c[group].label("g"), first.label("first"), last.label("last"),
        *([rows.c[community].label("community")] if community else []),
        *(rows.c[c] for c in covariates),
        rows.c[time].label("time"), sa.cast(rows.c[outcome], sa.Double).label("value"),
        *([rows.c[active].label("is_active")] if active else []),
    ).subquery("unit_spans")
    wanted = [c for c in spans.c if c.key != "is_active"]
    select = sa.select(*wanted)
    return (select.where(spans.c.is_active.is_(True)) if active else select).subquery(
        "active_rows")


def _last_period(engine: sa.Engine, parts: Sequence[sa.FromClause], found: pd.DataFrame, *,
                 time: str) -> float:
    """The panel's last period: the largest last period of the returned units, unless a join
    period lies beyond it (then the panel's own maximum, over its ``parts``, decides whether it
    is 'after the last period', one more scan of each)."""
    seen = float(found["last"].max()) if len(found) else np.nan
    joins = pd.to_numeric(found["g"], errors="coerce")
    if len(found) and not (joins > seen).any():
        return seen
    latest = [fetch_frame(engine, sa.select(sa.func.max(p.c[time]).label("t"))).iloc[0, 0]
              for p in parts]
    return float(pd.Series(latest, dtype=float).max())


def _cells(found: pd.DataFrame, *, last_period: float, community: bool,
           covariates: Sequence[str], time_dtype: str) -> pd.DataFrame:
    """The in-memory rules on the returned groups; groups that become one cell are merged."""
    cohort = first_treated_numbers(found["g"], periods=np.array([last_period]))
    cohort = np.where(cohort > 0, cohort, np.nan)
    member = ~np.isnan(cohort)
    if community:
        names = found["community"].astype(object).where(found["community"].notna(),
                                                         "(unknown)")
        labels = np.where(member, names.to_numpy(object), NEVER)
    else:
        labels = np.full(len(found), ALL, dtype=object)
    keys = pd.DataFrame({"cohort": cohort, "first": found["first"].astype(time_dtype).to_numpy(),
                         "last": found["last"].astype(time_dtype).to_numpy(),
                         "community": labels})
    for name in covariates:
        keys[name] = found[name].astype(object).to_numpy()
    keys["time"] = found["time"].astype(time_dtype).to_numpy()
    sums = found[list(SUMS)].astype({"n": np.int64, "total": float, "total_sq": float})
    cells = (pd.concat([keys, sums.set_index(keys.index)], axis=1)
             .groupby(list(keys.columns), dropna=False, sort=True)[list(SUMS)].sum()
             .reset_index())
    cells["community"] = cells["community"].astype("string")
    for name in covariates:
        cells[name] = cells[name].astype(str)
    cells["member"] = (cells["time"] >= cells["cohort"]).to_numpy(dtype=bool)
    cells["event_time"] = cells["time"] - cells["cohort"]
    return cells



def member_units_sql(engine: sa.Engine, panel: sa.FromClause, *, unit: str, time: str,
                     group: str, active: str | None = "active") -> int:
    """Units with at least one (active) member period: ``BayesianHierarchicalLift``'s
    ``n_treated``, the one number of its result the cells do not hold. A join period after the
    last period cannot be reached by any row, so ``time >= group > 0`` is the member rule.
    """
    rows = panel.alias("member_panel") if not isinstance(panel, sa.Alias) else panel
    joined = rows.c[group]
    member = sa.and_(joined.is_not(None), joined > 0, rows.c[time] >= joined)
    if active:
        member = sa.and_(member, rows.c[active].is_(True))
    statement = count_distinct(rows.c[unit], where=member)
    return int(fetch_frame(engine, statement).iloc[0, 0])
