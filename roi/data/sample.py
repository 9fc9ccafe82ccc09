"""A random sample of customers for the estimators that read customer rows, when the
customer-month panel exceeds the run's row budget (issue 19).

Most of the run computes from sums the database returns (the DiDs, the naive gap, the Bayesian
cells, the retention curves and the piecewise-exponential hazard), whatever the number of
customers. Regression adjustment, AIPW, the Cox models, the engagement tiers, the invitation
experiments and the retention value still read one row per customer and month (or per
start-stop interval). Above ``max_panel_rows`` those rows are read for a random sample of
customers only, sized to the budget, and every estimate computed on it says so beside its number
(:meth:`CustomerSample.sentence`); its interval is the sample's, wider than the population's.

The sample is a function of the customer id alone (the first four hex digits of its SHA-256
below a threshold), so it is the same on every engine and every run: DuckDB, PostgreSQL and
Spark select the same customers.

Examples
--------
>>> sample = CustomerSample(threshold=6554, customers=99_870, population=1_000_000,
...                         panel_rows=13_100_000, budget=1_310_000)
>>> round(sample.fraction, 4)
0.1
>>> sample.sentence()[:60]
'computed on a random 10.0% of customers (99,870 of 1,000,000'
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa

from roi.data import dialect
from roi.data.panel import MONTHLY
from roi.data.source import execute_scalar_rows

HASH_DIGITS = 4
HASH_RANGE = 16 ** HASH_DIGITS   # thresholds are whole numbers in [1, 65536]
DEFAULT_MAX_PANEL_ROWS = 5_000_000
"""About 385,000 customers of 13 months: with the database capped at 1 GB (ROI_DUCKDB_MEMORY),
a run stays under 4 GiB whatever the number of customers. Raise it where memory allows (a
13M-row panel, 1M customers read whole, peaked at 5.5 GiB)."""


@dataclass(frozen=True)
class CustomerSample:
    """Which customers' rows the row-reading estimators read.

    Attributes
    ----------
    threshold : int
        Customers whose id's SHA-256 starts with four hex digits below this (of 65,536).
    customers, population : int
        Customers in the sample and in the analysis window.
    panel_rows, budget : int
        The population's customer-month rows and the run's ``max_panel_rows``.
    """

    threshold: int
    customers: int
    population: int
    panel_rows: int
    budget: int

    @property
    def fraction(self) -> float:
        return self.threshold / HASH_RANGE

    def sentence(self) -> str:
        """What a reader needs beside a number computed on the sample."""
        return (f"computed on a random {self.fraction:.1%} of customers ({self.customers:,} of "
                f"{self.population:,}), because the customer-month panel ({self.panel_rows:,} "
                f"rows) exceeds the run's row budget ({self.budget:,}; [scale] max_panel_rows); "
                "its interval is the sample's, wider than all customers' would be")

    def to_contract(self) -> dict[str, float | int]:
        return {"fraction": self.fraction, "customers": self.customers,
                "population": self.population, "panel_rows": self.panel_rows,
                "max_panel_rows": self.budget}


def plan_customer_sample(dataset, *, max_panel_rows: int = DEFAULT_MAX_PANEL_ROWS
                         ) -> CustomerSample | None:
    """``None`` when the panel fits the budget; else the sample that does (one count query for
    the panel's size, one for the sample's)."""
    if max_panel_rows <= 0:
        raise ValueError(f"max_panel_rows must be positive, got {max_panel_rows}")
    life = dataset.tables["life"]
    statement = sa.select(sa.func.count(), _panel_rows(life))
    population, rows = (int(v) for v in execute_scalar_rows(dataset.engine, statement)[0])
    if rows <= max_panel_rows:
        return None
    threshold = max(1, math.floor(HASH_RANGE * max_panel_rows / rows))
    in_sample = sa.select(sa.func.count()).select_from(_sampled_life(dataset, threshold))
    customers = int(execute_scalar_rows(dataset.engine, in_sample)[0][0])
    return CustomerSample(threshold=threshold, customers=customers, population=population,
                          panel_rows=rows, budget=max_panel_rows)


def _panel_rows(life: sa.FromClause) -> sa.ColumnElement:
    """The customer-month panel's rows: each customer's months in the window, summed."""
    months = life.c.end_month_index - life.c.first_month_index + 1
    return sa.func.coalesce(sa.func.sum(sa.case((months > 0, months), else_=0)), 0)


def sampled_dataset(dataset, sample: CustomerSample | None):
    """``dataset`` whose ``life`` table holds the sample's customers only (the panel, the
    survival table and everything built on ``life`` follow); ``dataset`` itself for ``None``."""
    if sample is None:
        return dataset
    return _with_life(dataset, _sampled_life(dataset, sample.threshold))


def customer_slices(dataset, *, max_panel_rows: int) -> list:
    """``dataset`` cut into disjoint ranges of its customers' ``customer_key``, each of about
    ``max_panel_rows`` customer-month rows, on the embedded DuckDB; ``[dataset]`` when the panel
    fits or elsewhere (a warehouse manages its own memory).

    Sums over customers (:mod:`roi.revenue_lift.aggregates_sql`) are the sums of their slices'.
    A slice's panel joins only its own customers' monthly revenue, so its hash tables stay in
    DuckDB's memory cap: at 10M customers the whole panel's join (130M rows against 57M
    customer-months of revenue) spilled to disk in every statement that read it.
    """
    if not embedded_duckdb(dataset):
        return [dataset]
    life = dataset.tables["life"]
    statement = sa.select(_panel_rows(life), sa.func.coalesce(sa.func.max(life.c.customer_key), 0))
    rows, top = (int(v) for v in execute_scalar_rows(dataset.engine, statement)[0])
    count = -(-rows // max_panel_rows)
    if count <= 1:
        return [dataset]
    bounds = np.linspace(0, top, count + 1).round().astype(int)
    return [_keys_between(dataset, int(low), int(high), name=f"slice_{k}")
            for k, (low, high) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))]


def embedded_duckdb(dataset) -> bool:
    """Whether ``dataset`` lives in the run's own DuckDB (a folder of files, a DataFrame),
    where the toolkit may store temporary tables: the monthly revenue is stored there only
    (a warehouse, even a DuckDB file, is only read)."""
    return dialect.is_duckdb(dataset.engine) and MONTHLY in dataset.tables


def _keys_between(dataset, low: int, high: int, *, name: str):
    """``dataset`` with the customers whose ``customer_key`` is in ``(low, high]``."""
    life = dataset.tables["life"]
    kept = sa.select(life).where(life.c.customer_key > low, life.c.customer_key <= high)
    return _with_life(dataset, kept.subquery(f"life_{name}"))


def _with_life(dataset, life: sa.FromClause):
    """``dataset`` whose ``life`` is ``life`` (a subset of its customers), and whose stored
    monthly revenue, when there is one, is that of those customers only: the panel's join then
    builds its hash table on their rows, not on every customer's."""
    tables = {**dataset.tables, "life": life}
    monthly = dataset.tables.get(MONTHLY)
    if monthly is not None:
        mine = sa.select(life.c.customer_key)
        tables[MONTHLY] = (sa.select(monthly).where(monthly.c.customer_key.in_(mine))
                           .subquery(f"{MONTHLY}_{life.name}"))
    return dataclasses.replace(dataset, tables=tables)


def _sampled_life(dataset, threshold: int) -> sa.Subquery:
    life = dataset.tables["life"]
    digest = dialect.sha256_hex(dialect.as_text(life.c.customer_id),
                                duckdb=dialect.is_duckdb(dataset.engine))
    # Lower-case hex of a fixed length: comparing the strings compares the numbers
    head = sa.func.substr(digest, 1, HASH_DIGITS)
    bound = f"{threshold:0{HASH_DIGITS}x}" if threshold < HASH_RANGE else "g"
    return sa.select(life).where(head < bound).subquery("life_sample")
