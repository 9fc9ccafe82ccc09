"""The three aggregations give identical results inside DuckDB (embedded) and inside a real
PostgreSQL server started by the tests (``postgres_url`` in conftest)."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
import sqlalchemy as sa

from connectors import open_source
from roi.data import load_dataset

pytestmark = pytest.mark.postgres


def _to_postgres(url: str, frames: dict[str, pd.DataFrame], *, typed: bool) -> str:
    """Write the tables into a fresh schema; ``typed`` stores dates and numbers as such."""
    schema = f"s_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    for name, frame in frames.items():
        frame = frame.copy()
        if typed:
            frame = _typed(name, frame)
        frame.to_sql(name, engine, schema=schema, index=False)
    engine.dispose()
    return schema


def _typed(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    from roi.data.schema import TABLES

    if name not in TABLES:
        return frame
    spec = TABLES[name]
    for column in frame.columns:
        kind = spec.kind(column)
        if kind == "date":
            frame[column] = pd.to_datetime(frame[column].replace("", None).str[:10]).dt.date
        elif kind == "number":
            frame[column] = pd.to_numeric(frame[column])
    return frame


def _normalise(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    frame = frame.sort_values(keys).reset_index(drop=True)
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].where(frame[column].notna(), None)
    return frame


def _assert_same(duck, pg):
    pd.testing.assert_frame_equal(
        _normalise(duck.customer_month_panel(), ["customer_id", "month_index"]),
        _normalise(pg.customer_month_panel(), ["customer_id", "month_index"]),
        check_dtype=False)
    pd.testing.assert_frame_equal(
        _normalise(duck.survival_table(), ["customer_id", "start"]),
        _normalise(pg.survival_table(), ["customer_id", "start"]), check_dtype=False)
    duck_weekly, pg_weekly = duck.weekly_series().to_frame(), pg.weekly_series().to_frame()
    pd.testing.assert_frame_equal(duck_weekly, pg_weekly, check_dtype=False)
    report_keys = ("customers", "orders", "members", "start", "end", "excluded", "identity",
                   "churn", "members_before_customer", "communities", "channels", "covariates",
                   "row_accounting", "first_seen_from_orders", "notes")
    assert {k: duck.report[k] for k in report_keys} == {k: pg.report[k] for k in report_keys}


@pytest.mark.parametrize("typed", [False, True], ids=["text-columns", "typed-columns"])
def test_tiny_tables_identical(postgres_url, tiny, typed):
    schema = _to_postgres(postgres_url, tiny, typed=typed)
    duck = load_dataset(open_source(tiny))
    pg = load_dataset(open_source(postgres_url, schema=schema))
    assert not pg.source.embedded and pg.source.engine.dialect.name == "postgresql"
    _assert_same(duck, pg)


def test_sample_world_identical(postgres_url):
    from tests.conftest import SAMPLE

    frames = {p.stem: pd.read_csv(p, dtype=str, keep_default_na=False)
              for p in SAMPLE.glob("*.csv")}
    schema = _to_postgres(postgres_url, frames, typed=True)
    duck = load_dataset(open_source(SAMPLE))
    pg = load_dataset(open_source(postgres_url, schema=schema))
    assert duck.report["customers"] > 1000
    _assert_same(duck, pg)


def test_mapped_selects(postgres_url, tiny):
    """A warehouse with its own names: canonical tables given as SELECTs."""
    renamed = dict(tiny)
    renamed["orders"] = tiny["orders"].rename(columns={"customer_id": "buyer",
                                                       "order_date": "day", "revenue": "amount"})
    schema = _to_postgres(postgres_url, {"sales": renamed.pop("orders"), **renamed}, typed=True)
    mapping = {"orders": f'SELECT order_id, buyer AS customer_id, day AS order_date, '
                         f'amount AS revenue, currency FROM "{schema}".sales'}
    pg = load_dataset(open_source(postgres_url, schema=schema, tables=mapping))
    duck = load_dataset(open_source(tiny))
    _assert_same(duck, pg)


def test_awkward_rows_identical(postgres_url, tiny):
    """Issue 14's rules in both engines: a re-exported order and member row, a refund sharing
    its sale's order_id, an order before first_seen, two cost rows on one date, a community
    spelled in another case, a join after churn, spend in a partial edge week."""
    orders, members = tiny["orders"], tiny["members"]
    tiny["orders"] = pd.concat([orders, orders.iloc[[1]], orders.iloc[[1]].assign(
        revenue="-20", order_date="2024-04-02"), pd.DataFrame({
            "order_id": ["o8"], "customer_id": ["C"], "order_date": ["2024-02-03"],
            "revenue": ["9"], "currency": ["USD"]})], ignore_index=True)
    tiny["members"] = pd.concat([members, members.iloc[[0]], pd.DataFrame({
        "community": ["Discord"], "joined_at": ["2024-03-25"], "customer_id": ["B"],
        "email": [None], "member_id": ["m5"], "left_at": [None]})], ignore_index=True)
    tiny["community_costs"] = pd.concat([tiny["community_costs"], tiny["community_costs"]
                                         .iloc[[1]].assign(cost="10")], ignore_index=True)
    tiny["ad_spend"] = pd.concat([tiny["ad_spend"], pd.DataFrame({
        "date": ["2024-01-13"], "channel": ["search"], "spend": ["7"]})], ignore_index=True)
    schema = _to_postgres(postgres_url, tiny, typed=True)
    duck = load_dataset(open_source(tiny))
    pg = load_dataset(open_source(postgres_url, schema=schema))
    assert duck.report["excluded"]["orders_duplicate_row"] == 1
    assert duck.report["excluded"]["members_joined_after_churn"] == 1
    assert duck.report["first_seen_from_orders"] == 1
    _assert_same(duck, pg)
