"""The Bayesian survival model's person-period cells from ``GROUP BY`` queries inside the
database, and the covariate patterns both Bayesian models key their cells by.

:func:`person_period_cells_sql` returns the table
:func:`roi.retention.bayes_survival.person_period_cells` builds in memory (piece x member x
community x covariate pattern -> churn ``events`` and at-risk ``exposure`` days) from any
start-stop table the database holds, e.g. the data layer's
(:func:`roi.data.survival.survival_select`): what comes back grows with pieces x patterns x
communities, not with customers. Up to three kinds of statement run:

* the piece boundaries (``intervals_days="events"``): a histogram of the event times (one row per
  distinct churn day), from which :func:`numpy_quantiles` gives ``np.quantile``'s linear
  quantiles bit for bit, then :func:`~roi.retention.bayes_survival.event_quantile_bounds`'s
  rounding;
* per numeric covariate, a histogram of its values (one row per distinct value) for the quantile
  bins of :func:`~roi.retention.bayes_survival.pattern_columns` (same edges, same labels ``q1``
  ... or ``f"{v:g}"`` for a covariate with few values);
* the cells: every row joined to the pieces it overlaps (``lo < stop`` and ``hi > start``; the
  last piece is open), exposure ``min(stop, hi) - max(start, lo)``, its event in the piece that
  holds ``stop``, summed per key.

Sums are exact (DECIMAL, :func:`roi.data.dialect.exact_sum`), so a rerun or another engine
returns the same numbers; they equal the in-memory float sums to about 1e-15 relative. Cells come
in key order (member, community, covariate labels, piece; :func:`sorted_cells`), where the
in-memory table follows the first appearance of each key in the rows: the same cells, sorted.

Measured (``benchmarks/cells_sql.py``, 2026-12-04; the 1,000,000-customer world over Parquet in
DuckDB; every covariate of the dataset as the run passes them: segment, region,
acquisition_channel, plan and the numeric employees in 5 quantile bins; 12 pieces at event-time
quantiles; each mode in its own process on 2 shared cores at load 8-11): 11,263 cells either way,
keys, bounds, edges and counts equal, sums equal. From the database (three statements: event-time
histogram, employees histogram, cells) 3.1 CPU s (3.3 s wall), no memory above the data layer's
validation peak (1.33 GiB); the start-stop table fetched and split in pandas 8.2 CPU s (10.9 s
wall), peak 1.52 GiB. The start-stop table has one or two rows per customer (1,367,342 rows,
304,743 events here), so the saving is smaller than for the 13M-row panel
(``roi.revenue_lift.cells_sql``).

Examples
--------
>>> import pandas as pd
>>> from roi.data.source import embedded_engine
>>> table = pd.DataFrame({"customer_id": [1, 1, 2, 3], "start": [0, 40, 0, 0],
...                       "stop": [40, 120, 70, 200], "event": [0, 1, 1, 0],
...                       "member": [0, 1, 0, 0], "community": ["a", "a", None, None]})
>>> engine = embedded_engine()
>>> with engine.begin() as connection:
...     _ = table.to_sql("start_stop", connection, index=False)
>>> rows = sa.table("start_stop", *(sa.column(c) for c in table.columns))
>>> cells = person_period_cells_sql(engine, rows, intervals_days=(0, 60),
...                                 community="community")
>>> int(cells["events"].sum()), float(cells["exposure"].sum())
(2, 390.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa

from roi.data.dialect import exact_sum
from roi.data.source import fetch_frame
from roi.data.sql_parts import count_distinct
from roi.retention.bayes_survival import NON_MEMBER, sorted_cells

MISSING = "(missing)"
# The open last piece's upper end: finite (BigQuery's LEAST of a NULL is NULL, and not every
# engine takes an infinite literal) and far above any number of days.
OPEN_END = 1.0e300


def numpy_quantiles(values: np.ndarray, counts: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """``np.quantile(np.repeat(values, counts), probs)`` (the default, linear method) from a
    histogram, without the repeated array: the same two order statistics and numpy's own
    interpolation (``_lerp``), so the result is equal bit for bit.

    Examples
    --------
    >>> sample = np.array([3.0, 1.0, 1.0, 7.5, 2.0])
    >>> values, counts = np.unique(sample, return_counts=True)
    >>> probs = np.array([0.2, 0.5, 0.9])
    >>> bool(np.array_equal(numpy_quantiles(values, counts, probs), np.quantile(sample, probs)))
    True
    """
    order = np.argsort(values)
    values = np.asarray(values, dtype=float)[order]
    upto = np.cumsum(np.asarray(counts, dtype=np.int64)[order])
    n = int(upto[-1])
    virtual = (n - 1) * np.asarray(probs, dtype=float)
    previous = np.floor(virtual)
    gamma = virtual - previous
    low = np.clip(previous, 0, n - 1).astype(np.int64)
    high = np.clip(previous + 1, 0, n - 1).astype(np.int64)
    a = values[np.searchsorted(upto, low, side="right")]
    b = values[np.searchsorted(upto, high, side="right")]
    diff = b - a
    # numpy's _lerp: a + diff * t, or b - diff * (1 - t) from t = 0.5 on
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


Histogram = tuple[np.ndarray, np.ndarray, int]
"""Distinct values (sorted), their counts, and the number of empty values."""


def value_histogram(engine: sa.Engine, rows: sa.FromClause, column: sa.ColumnElement, *,
                    where: sa.ColumnElement | None = None) -> Histogram:
    """Distinct values of ``column`` (as doubles) in ``rows``, their counts, and the number of
    empty values: one row per distinct value comes back."""
    value = sa.cast(column, sa.Double).label("value")
    inner = sa.select(value).select_from(rows)
    inner = (inner.where(where) if where is not None else inner).subquery("histogram_rows")
    found = fetch_frame(engine, sa.select(inner.c.value, sa.func.count().label("n"))
                        .group_by(inner.c.value))
    empty = found["value"].isna()
    n_empty = int(found.loc[empty, "n"].sum())
    found = found[~empty].sort_values("value")
    return found["value"].to_numpy(float), found["n"].to_numpy(np.int64), n_empty


def added_histograms(parts: Sequence[Histogram]) -> Histogram:
    """The histogram of the union of disjoint sets of rows, from each set's."""
    values = np.concatenate([p[0] for p in parts])
    counts = np.concatenate([p[1] for p in parts])
    distinct, at = np.unique(values, return_inverse=True)
    summed = np.zeros(len(distinct), dtype=np.int64)
    np.add.at(summed, at, counts)
    return distinct, summed, sum(int(p[2]) for p in parts)


def event_quantile_bounds_sql(engine: sa.Engine, table: sa.FromClause, *, stop: str = "stop",
                              event: str = "event", pieces: int = 12) -> tuple[float, ...]:
    """:func:`roi.retention.bayes_survival.event_quantile_bounds` from a histogram of the event
    times computed in the database (one row per distinct churn day)."""
    values, counts, _ = value_histogram(engine, table, table.c[stop],
                                        where=sa.cast(table.c[event], sa.Integer) != 0)
    if values.size == 0 or pieces < 2:
        return (0.0,)
    inner = np.linspace(0, 1, pieces + 1)[1:-1]
    cuts = np.unique(np.round(numpy_quantiles(values, counts, inner), 1))
    return (0.0, *[float(c) for c in cuts if c > 0])


def covariate_kind(column: sa.ColumnElement, kind: str | None = None) -> str:
    """``numeric``, ``boolean`` or ``categorical``: ``kind`` when given (``Dataset.covariates``
    says ``numeric`` or ``categorical``), else from the column's SQL type."""
    if kind is not None:
        if kind not in ("numeric", "categorical", "boolean"):
            raise ValueError(f"covariate kind must be 'numeric' or 'categorical', not {kind!r}")
        return kind
    if isinstance(column.type, sa.Boolean):
        return "boolean"
    if isinstance(column.type, sa.Integer | sa.Numeric | sa.Float):
        return "numeric"
    return "categorical"


def pattern_labels(engine: sa.Engine, rows: sa.FromClause, *, covariates: Sequence[str],
                   kinds: Mapping[str, str] | None = None, numeric_bins: int = 5,
                   edges: Mapping[str, Sequence[float]] | None = None,
                   histograms: Mapping[str, Histogram] | None = None,
                   ) -> tuple[list[sa.ColumnElement], dict[str, list[float]], dict[str, str]]:
    """:func:`roi.retention.bayes_survival.pattern_columns` as SQL: one text expression per
    covariate (labelled with its name), the numeric edges used, and each covariate's kind.

    Numeric covariates are cut at the quantile edges of ``rows`` (computed from a histogram,
    equal to numpy's) with labels ``q1`` ...; one with at most ``numeric_bins`` distinct values
    keeps each value as its level (``f"{v:g}"``); a missing numeric value raises, as in memory.
    Other covariates are their text, ``(missing)`` when empty; booleans ``True``/``False``.
    ``histograms``: a numeric covariate's :func:`value_histogram` when known (e.g. the whole
    table's, added over parts of it with :func:`added_histograms`, so that every part gets the
    same labels); otherwise it is read from ``rows``.
    """
    edges = {name: [float(v) for v in cut] for name, cut in (edges or {}).items()}
    labels, kind_of = [], {}
    for name in covariates:
        column = rows.c[name]
        kind = kind_of[name] = covariate_kind(column, (kinds or {}).get(name))
        if kind == "numeric":
            known = (histograms or {}).get(name)
            histogram = known if known is not None else value_histogram(engine, rows,
                                                                        rows.c[name])
            labels.append(_numeric_label(rows, name, histogram, edges=edges,
                                         numeric_bins=numeric_bins).label(name))
        elif kind == "boolean":
            labels.append(sa.case((column.is_(True), "True"), (column.is_(False), "False"),
                                  else_=MISSING).label(name))
        else:
            labels.append(sa.func.coalesce(sa.cast(column, sa.String), MISSING).label(name))
    return labels, edges, kind_of


def _numeric_label(rows: sa.FromClause, name: str, histogram: Histogram, *,
                   edges: dict[str, list[float]], numeric_bins: int) -> sa.ColumnElement:
    """The bin label of a numeric covariate; fills ``edges[name]`` when it cuts at quantiles."""
    value = sa.cast(rows.c[name], sa.Double)
    distinct, counts, empty = histogram
    if empty:
        raise ValueError(f"survival table: {empty} missing value(s) in numeric covariate "
                         f"{name!r}")
    if name not in edges and len(distinct) <= numeric_bins:
        # few values (a 0/1 flag): each its own level, as pattern_columns does
        return sa.case(*[(value == float(v), f"{v:g}") for v in distinct], else_=MISSING)
    if name not in edges:
        inner = np.linspace(0, 1, numeric_bins + 1)[1:-1]
        edges[name] = np.unique(numpy_quantiles(distinct, counts, inner)).tolist()
    cuts = edges[name]
    if not cuts:
        return sa.literal("q1")
    # searchsorted(edges, v, side="right"): a value equal to an edge goes to the upper bin
    return sa.case(*[(value < cut, f"q{i + 1}") for i, cut in enumerate(cuts)],
                   else_=f"q{len(cuts) + 1}")


def person_period_cells_sql(engine: sa.Engine, table: sa.FromClause, *,
                            intervals_days: Sequence[float] | str = "events", pieces: int = 12,
                            covariates: Sequence[str] = (),
                            kinds: Mapping[str, str] | None = None,
                            community: str | None = None, start: str = "start",
                            stop: str = "stop", event: str = "event", member: str = "member",
                            numeric_bins: int = 5,
                            edges: Mapping[str, Sequence[float]] | None = None) -> pd.DataFrame:
    """:func:`roi.retention.bayes_survival.person_period_cells` computed in the database; see
    the module docstring.

    ``intervals_days="events"`` cuts ``pieces`` pieces at event-time quantiles (what
    :class:`~roi.retention.bayes_survival.BayesianPiecewiseSurvival` does by default). The
    boundaries used are in ``cells.attrs["intervals_days"]``, the numeric bin edges in
    ``cells.attrs["edges"]``. Rows must have ``stop > start`` (the data layer's table does).
    """
    rows = table.alias("survival_rows") if not isinstance(table, sa.Alias) else table
    if isinstance(intervals_days, str):
        if intervals_days != "events":
            raise ValueError(f"intervals_days must be day boundaries or 'events', not "
                             f"{intervals_days!r}")
        bounds = np.asarray(event_quantile_bounds_sql(engine, rows, stop=stop, event=event,
                                                      pieces=pieces))
    else:
        bounds = np.asarray(intervals_days, dtype=float)
    if bounds[0] != 0 or np.any(np.diff(bounds) <= 0):
        raise ValueError("intervals_days must start at 0 and increase")
    labels, used, kind_of = pattern_labels(engine, rows, covariates=covariates, kinds=kinds,
                                           numeric_bins=numeric_bins, edges=edges)
    found = fetch_frame(engine, _cells_select(rows, bounds, labels, community=community,
                                              start=start, stop=stop, event=event,
                                              member=member))
    cells = _tidy_cells(found, covariates=covariates, kinds=kind_of)
    cells.attrs["edges"] = {name: [float(v) for v in cut] for name, cut in used.items()}
    cells.attrs["intervals_days"] = tuple(float(b) for b in bounds)
    return cells


def _cells_select(rows: sa.FromClause, bounds: np.ndarray, labels: list[sa.ColumnElement], *,
                  community: str | None, start: str, stop: str, event: str,
                  member: str) -> sa.Select:
    is_member = sa.cast(rows.c[member], sa.Integer)
    name = (sa.func.coalesce(sa.cast(rows.c[community], sa.String), "(unknown)") if community
            else sa.literal("(all)"))
    keyed = sa.select(
        is_member.label("member"),
        sa.case((is_member == 1, name), else_=NON_MEMBER).label("community"), *labels,
        sa.cast(rows.c[start], sa.Double).label("t_start"),
        sa.cast(rows.c[stop], sa.Double).label("t_stop"),
        sa.cast(rows.c[event], sa.Integer).label("t_event"),
    ).subquery("keyed_rows")
    ends = [*bounds[1:].tolist(), OPEN_END]
    pieces = sa.values(sa.column("piece", sa.Integer), sa.column("lo", sa.Double),
                       sa.column("hi", sa.Double), name="pieces").data(
        [(k, float(lo), float(hi)) for k, (lo, hi) in enumerate(zip(bounds, ends, strict=True))])
    overlap = sa.and_(pieces.c.lo < keyed.c.t_stop, pieces.c.hi > keyed.c.t_start)
    days = sa.func.greatest(0.0, sa.func.least(keyed.c.t_stop, pieces.c.hi)
                            - sa.func.greatest(keyed.c.t_start, pieces.c.lo))
    # the piece that holds stop (lo < stop <= hi) takes the row's event
    churn = sa.case((keyed.c.t_stop <= pieces.c.hi, keyed.c.t_event), else_=0)
    keys = [pieces.c.piece, keyed.c.member, keyed.c.community,
            *(keyed.c[label.name] for label in labels)]
    return (sa.select(*keys, sa.func.sum(churn).label("events"),
                      exact_sum(days).label("exposure"))
            .select_from(keyed.join(pieces, overlap)).group_by(*keys))


def _tidy_cells(found: pd.DataFrame, *, covariates: Sequence[str],
                kinds: Mapping[str, str]) -> pd.DataFrame:
    """The in-memory table's dtypes: int64 piece and member, categoricals of the labels present
    (object categories for the community and numeric bins, string ones otherwise), float sums."""
    cells = pd.DataFrame({"piece": found["piece"].to_numpy(np.int64),
                          "member": found["member"].to_numpy(np.int64),
                          "community": _categorical(found["community"], dtype="object")})
    for name in covariates:
        cells[name] = _categorical(found[name],
                                   dtype="object" if kinds[name] == "numeric" else "string")
    cells["events"] = found["events"].to_numpy(float)
    cells["exposure"] = found["exposure"].to_numpy(float)
    return sorted_cells(cells[cells["exposure"] > 0], covariates=covariates)


def _categorical(values: pd.Series, *, dtype: str) -> pd.Categorical:
    text = values.astype(object).to_numpy()
    return pd.Categorical(text, categories=pd.Index(sorted(set(text)), dtype=dtype))


def member_exposure_sql(engine: sa.Engine, table: sa.FromClause, *,
                        id_col: str = "customer_id", start: str = "start", stop: str = "stop",
                        member: str = "member") -> tuple[int, int]:
    """Customers with member time and their member days at risk: the ``n_treated`` and
    ``n_obs`` of ``BayesianPiecewiseSurvival``'s result, which the cells do not hold."""
    rows = table.alias("member_rows") if not isinstance(table, sa.Alias) else table
    exposed = sa.cast(rows.c[member], sa.Integer) != 0
    days = sa.select(sa.func.sum(rows.c[stop] - rows.c[start]).label("days")).where(exposed)
    customers = fetch_frame(engine, count_distinct(rows.c[id_col], where=exposed))
    found = fetch_frame(engine, days)
    return int(customers.iloc[0, 0]), int(found.iloc[0, 0] or 0)
