"""What comes back from the database: aggregates only, never row-level orders.

A query log built from SQLAlchemy's ``before_cursor_execute`` / ``after_cursor_execute`` events
records every statement of a full load plus the three aggregations and how many rows each
returned to Python (the cursor's row count; for DuckDB, whose DB-API cursor does not count, the
statement is counted again in SQL). On a world with far more orders (and activity and ad-spend
rows) than customer-months, no statement returns more rows than the aggregation cells, all of
them together return fewer rows than there are orders, and every statement over the orders
table aggregates it (or is a five-row example query of a validation rule).

Row-level per-customer results are acceptable aggregates: the panel (customer x month) and the
survival start-stop table (at most two rows per customer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from connectors import open_source
from roi.data import load_dataset

N_CUSTOMERS, ORDERS_EACH, MONTHS = 100, 100, 24
START = pd.Timestamp("2023-01-01")


def orders_heavy_world() -> dict[str, pd.DataFrame]:
    """100 customers with 100 orders each over two years; busy activity and ad spend."""
    rng = np.random.default_rng(5)
    ids = [f"C{i:03d}" for i in range(N_CUSTOMERS)]
    first_seen = START + pd.to_timedelta(rng.integers(0, 60, N_CUSTOMERS), unit="D")
    customers = pd.DataFrame({"customer_id": ids, "first_seen": first_seen.strftime("%Y-%m-%d"),
                              "segment": rng.choice(["smb", "mid"], N_CUSTOMERS)})
    days = rng.integers(60, 730, N_CUSTOMERS * ORDERS_EACH)
    orders = pd.DataFrame({"order_id": [f"o{i}" for i in range(len(days))],
                           "customer_id": np.repeat(ids, ORDERS_EACH),
                           "order_date": (START + pd.to_timedelta(days, unit="D"))
                           .strftime("%Y-%m-%d"),
                           "revenue": rng.gamma(2.0, 20.0, len(days)).round(2)})
    joined = rng.choice(N_CUSTOMERS, 40, replace=False)
    members = pd.DataFrame({"community": rng.choice(["discord", "forum"], 40),
                            "customer_id": [ids[i] for i in joined],
                            "joined_at": (START + pd.to_timedelta(rng.integers(90, 500, 40),
                                                                  unit="D")).strftime("%Y-%m-%d")})
    activity = pd.DataFrame({"community": "discord",
                             "customer_id": rng.choice(members["customer_id"], 10_000),
                             "date": (START + pd.to_timedelta(rng.integers(90, 730, 10_000),
                                                              unit="D")).strftime("%Y-%m-%d")})
    dates = pd.date_range(START, periods=730, freq="D").strftime("%Y-%m-%d")
    ad_spend = pd.DataFrame([(d, channel, f"{channel}-{k}", float(rng.gamma(2, 10)))
                             for d in dates for channel in ("search", "social") for k in range(4)],
                            columns=["date", "channel", "campaign", "spend"])
    return {"customers": customers, "orders": orders, "members": members,
            "activity": activity, "ad_spend": ad_spend}


@dataclass
class QueryLog:
    """Statements and the rows each returned (-1: the driver did not say)."""

    engine: sa.Engine
    entries: list[tuple[str, tuple, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        sa.event.listen(self.engine, "after_cursor_execute", self._record)

    def _record(self, connection, cursor, statement, parameters, context, executemany) -> None:
        rows = getattr(cursor, "rowcount", -1)
        self.entries.append((statement, tuple(parameters or ()), -1 if rows is None else rows))

    def returned(self) -> list[tuple[str, int]]:
        """Row-returning statements with their row counts (counted again where unknown)."""
        out = []
        for statement, parameters, rows in self.entries:
            if not re.match(r"\s*(SELECT|WITH)\b", statement, re.IGNORECASE):
                continue
            if rows < 0:
                rows = self._count(statement, parameters)
            out.append((statement, rows))
        return out

    def _count(self, statement: str, parameters: tuple) -> int:
        with self.engine.connect() as connection:
            cursor = connection.connection.driver_connection.execute(
                f"SELECT count(*) FROM ({statement}) AS counted", list(parameters))
            return int(cursor.fetchone()[0])


def _load_and_aggregate(spec, *, tables=None, schema=None) -> tuple[QueryLog, dict]:
    source = open_source(spec, tables=tables, schema=schema)
    log = QueryLog(source.engine)
    dataset = load_dataset(source)
    shapes = {"panel": len(dataset.customer_month_panel()),
              "survival": len(dataset.survival_table()),
              "weekly": len(dataset.weekly_series().totals)}
    return log, {**shapes, "report": dataset.report}


ORDERS_TABLE = re.compile(r'\b(raw_orders|roi_orders\w*|"?orders"?)\b(?!_)', re.IGNORECASE)
# roi_monthly_revenue: the orders' sums per customer and month, stored once by load_dataset
AGGREGATED = re.compile(r"\b(count|sum|max|min|avg)\s*\(|\bGROUP BY\b|\bLIMIT\s+(0|5|1)\b"
                        r"|\bJOIN roi_monthly_revenue\b", re.IGNORECASE)


def _assert_aggregates_only(log: QueryLog, shapes: dict) -> None:
    world = orders_heavy_world()
    n_orders = len(world["orders"])
    cells = max(N_CUSTOMERS * MONTHS, 2 * N_CUSTOMERS, 110 * 4)
    returned = log.returned()
    assert len(returned) > 20, "the query log missed statements"
    assert shapes["panel"] <= N_CUSTOMERS * MONTHS and shapes["survival"] <= 2 * N_CUSTOMERS
    assert shapes["report"]["orders"] == n_orders
    biggest = max(returned, key=lambda item: item[1])
    assert biggest[1] <= cells, f"{biggest[1]} rows returned by: {biggest[0][:300]}"
    # The panel is the largest result by design; it is returned once, not per method.
    assert sum(rows for _, rows in returned) < n_orders // 2
    for statement, rows in returned:
        if ORDERS_TABLE.search(statement) and rows > 5:
            assert AGGREGATED.search(statement), f"orders not aggregated: {statement[:300]}"
    panel_queries = [rows for _, rows in returned if rows == shapes["panel"]]
    assert len(panel_queries) == 1


@pytest.fixture(scope="module")
def heavy_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("orders-heavy")
    for name, frame in orders_heavy_world().items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def test_embedded_duckdb_from_files_returns_aggregates_only(heavy_folder):
    _assert_aggregates_only(*_load_and_aggregate(heavy_folder))


def test_duckdb_database_file_returns_aggregates_only(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    connection = duckdb.connect(str(path))
    for name, frame in orders_heavy_world().items():
        connection.register("frame", frame)
        connection.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
        connection.unregister("frame")
    connection.close()
    _assert_aggregates_only(*_load_and_aggregate(f"duckdb:///{path}"))


@pytest.mark.postgres
def test_postgres_returns_aggregates_only(postgres_url):
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text('DROP SCHEMA IF EXISTS "orders_heavy" CASCADE'))
        connection.execute(sa.text('CREATE SCHEMA "orders_heavy"'))
    for name, frame in orders_heavy_world().items():
        frame.to_sql(name, engine, schema="orders_heavy", index=False)
    engine.dispose()
    tables = {"orders": "SELECT order_id, customer_id, order_date, revenue "
                        "FROM orders_heavy.orders"}
    source_log, shapes = _load_and_aggregate(postgres_url, tables=tables, schema="orders_heavy")
    _assert_aggregates_only(source_log, shapes)
    assert all(rows >= 0 for _, _, rows in source_log.entries), "psycopg reports row counts"
