"""The revenue-lift block's naive gap and DiDs from sums computed in the database (issue 19).

``revenue_lift_estimates(None, aggregates=revenue_aggregates_in_database(dataset))`` equals
``revenue_lift_estimates(panel)`` number for number (1e-8 relative): estimates, intervals,
per-community entries, every table (group-time cells, event studies and their covariance,
per-community event studies, sensitivity, the join-month block), the coverage diagnostics, the
warnings; on the sample data, on a small world where customers join after a purchase (the
join-month-adjusted DiD and its per-community fits run), and on a hand-made panel whose
DiDs refuse. The member-month counts the run multiplies by are equal too, and what leaves the
database does not grow with customers. (PostgreSQL: written, skipped; see its reason.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from roi.results import EffectResult
from roi.revenue_lift.aggregates_sql import revenue_aggregates, revenue_aggregates_in_database
from roi.revenue_lift.block import (
    JOIN_ADJUSTED,
    member_months,
    member_months_by_community,
    revenue_lift_estimates,
)
from tests.conftest import SAMPLE

RTOL, ATOL = 1e-8, 1e-10
TRIGGERED = dict(join_after_purchase=1.0, join_purchase_lag_days=0, tau=(0.4, 0.4),
                 season_amplitude=0.0, order_value_shape=8.0, orders_per_month=2.0,
                 ramp_rate=0.0, join_engagement_log_odds=0.5)


def _load(source):
    from connectors import open_source
    from roi.data import load_dataset

    return load_dataset(open_source(source))


def largest_difference(left, right, path: str = "") -> float:
    """The largest relative difference between two results (EffectResult, dicts, tables,
    numbers) over every number they hold; raises AssertionError on any other difference
    (keys, strings, shapes, counts)."""
    if isinstance(left, EffectResult):
        assert isinstance(right, EffectResult), path
        fields = ("method", "estimand", "estimate", "low", "high", "interval", "scale",
                  "n_treated", "n_obs", "refused", "by_group", "tables")
        worst = max(largest_difference(getattr(left, f), getattr(right, f), f"{path}.{f}")
                    for f in fields)
        diagnostics = (left.diagnostics, right.diagnostics)
        assert diagnostics[0].converged == diagnostics[1].converged, path
        assert diagnostics[0].warnings == diagnostics[1].warnings, path
        return max(worst, largest_difference(diagnostics[0].checks, diagnostics[1].checks,
                                             f"{path}.checks"))
    if isinstance(left, dict):
        assert isinstance(right, dict) and set(left) == set(right), (path, left, right)
        return max([largest_difference(left[k], right[k], f"{path}[{k!r}]") for k in left],
                   default=0.0)
    if isinstance(left, pd.DataFrame):
        assert list(left.columns) == list(right.columns) and len(left) == len(right), path
        pd.testing.assert_frame_equal(left.reset_index(drop=True), right.reset_index(drop=True),
                                      rtol=RTOL, atol=ATOL, check_dtype=False, obj=path)
        if not len(left):
            return 0.0
        numbers = [c for c in left.columns if pd.api.types.is_numeric_dtype(left[c])]
        return max([_relative(left[c].to_numpy(float), right[c].to_numpy(float))
                    for c in numbers], default=0.0)
    if isinstance(left, list | tuple):
        assert len(left) == len(right), path
        return max([largest_difference(a, b, f"{path}[{i}]")
                    for i, (a, b) in enumerate(zip(left, right, strict=True))], default=0.0)
    if isinstance(left, float | np.floating) and not isinstance(left, bool):
        assert np.isclose(left, right, rtol=RTOL, atol=ATOL, equal_nan=True), (path, left,
                                                                                 right)
        return _relative(np.array([left]), np.array([right], dtype=float))
    assert left == right or (left is None and right is None), (path, left, right)
    return 0.0


def _relative(left: np.ndarray, right: np.ndarray) -> float:
    both = np.isfinite(left) & np.isfinite(right)
    assert (np.isnan(left) == np.isnan(right)).all()
    scale = np.maximum(np.abs(left[both]), np.abs(right[both]))
    gap = np.abs(left[both] - right[both])
    return float(np.max(np.where(scale > 0, gap / np.where(scale > 0, scale, 1), 0.0),
                        initial=0.0))


@pytest.fixture(scope="module")
def sample():
    return _load(str(SAMPLE))


@pytest.fixture(scope="module")
def sample_fits(sample):
    aggregates = revenue_aggregates_in_database(sample)
    panel = sample.customer_month_panel()
    return panel, aggregates, revenue_lift_estimates(panel), revenue_lift_estimates(
        None, aggregates=aggregates)


def test_sample_block_from_aggregates_equals_the_panel_path(sample_fits):
    panel, aggregates, memory, database = sample_fits
    assert set(database) == set(memory) == {"naive", "did", "did_multiplicative"}
    assert largest_difference(database, memory) < RTOL
    did = database["did"]
    assert set(did.by_group) == {"discord", "forum"}
    assert set(did.tables) >= {"dynamic_by_community", "sensitivity_by_community",
                               "join_month_adjusted", "dynamic", "group_time"}
    assert did.diagnostics.checks["member_coverage"]["covered_share"] < 1.0
    assert database["did_multiplicative"].tables["lift_by_event"].shape[0] > 3


def test_pivot_in_passes_equals_one_pass(sample, sample_fits, monkeypatch):
    """Above ``ROWS_PER_PASS`` rows the embedded DuckDB pivots disjoint sets of customers (by a
    hash of the id) and adds their sums: the block's numbers are those of one pass."""
    from roi.revenue_lift import did_sql

    panel, aggregates, memory, _ = sample_fits
    monkeypatch.setattr(did_sql, "ROWS_PER_PASS", len(panel) // 7)
    passes = revenue_aggregates_in_database(sample)
    for outcome, frame in aggregates.did_frames.items():
        assert len(passes.did_frames[outcome]) == len(frame)
    assert largest_difference(revenue_lift_estimates(None, aggregates=passes), memory) < RTOL


def test_customer_slices_add_up_to_the_whole(sample, sample_fits, monkeypatch):
    """Above ``ROWS_PER_SLICE`` panel rows the embedded DuckDB sums disjoint ranges of
    customers (each joined with its own monthly revenue) and adds them up: every sum, and the
    block's numbers, are the whole panel's."""
    from roi.data.sample import customer_slices
    from roi.revenue_lift import aggregates_sql

    panel, aggregates, memory, _ = sample_fits
    slices = customer_slices(sample, max_panel_rows=len(panel) // 5)
    sizes = [len(part.customer_month_panel()) for part in slices]
    assert len(slices) >= 5 and sum(sizes) == len(panel) and min(sizes) > 0
    monkeypatch.setattr(aggregates_sql, "ROWS_PER_SLICE", len(panel) // 5)
    sliced = revenue_aggregates_in_database(sample)
    assert sliced.rows_fetched > aggregates.rows_fetched
    for name in ("scope_months", "events", "event_units", "naive", "coverage_table"):
        largest_difference(getattr(sliced, name), getattr(aggregates, name), name)
    for outcome, frame in aggregates.did_frames.items():   # a period no unit saw: 0, not NaN
        sums = {c: 0.0 for c in frame.columns if c[0] in "tc" and c[1:2].isdigit()}
        largest_difference(sliced.did_frames[outcome], frame.fillna(sums), outcome)
    assert largest_difference(revenue_lift_estimates(None, aggregates=sliced), memory) < RTOL


def test_member_month_counts_from_aggregates(sample_fits):
    panel, aggregates, *_ = sample_fits
    assert member_months(aggregates=aggregates) == member_months(panel) > 10_000
    assert (member_months_by_community(aggregates=aggregates)
            == member_months_by_community(panel))


def test_what_leaves_the_database_grows_with_patterns_not_customers(sample_fits):
    """Per community x join month x first and last month: bounded by the calendar (at
    1,000,000 customers about 7,000 rows came back, benchmarks/revenue_aggregates.py)."""
    panel, aggregates, *_ = sample_fits
    months, scopes = panel["month_index"].nunique(), panel["community"].nunique() + 1
    cohorts = panel["join_month_index"].nunique() + 1
    for frame in aggregates.did_frames.values():
        assert len(frame) <= scopes * cohorts * months * (months + 1) / 2
    assert len(aggregates.events) <= scopes * cohorts * months
    assert len(aggregates.naive) == scopes            # never-members and each community
    assert len(aggregates.coverage_table) <= scopes * 2**3 * 2   # x 3 coverage flags x 2


def test_join_month_adjusted_path_from_aggregates():
    """Customers join on the day of an order: the join-month-adjusted DiD is fitted per
    community too, and every number equals the panel path's."""
    from roi.simulate import simulate_world

    world = simulate_world(n_customers=2000, months=12, seed=11, **TRIGGERED)
    dataset = _load(dict(world.tables))
    memory = revenue_lift_estimates(dataset.customer_month_panel())
    database = revenue_lift_estimates(None,
                                      aggregates=revenue_aggregates_in_database(dataset))
    assert JOIN_ADJUSTED in memory and set(memory[JOIN_ADJUSTED].by_group) == {"discord",
                                                                                 "forum"}
    assert memory[JOIN_ADJUSTED].tables["dynamic_by_community"]
    assert largest_difference(database, memory) < RTOL


def test_refusals_from_aggregates_equal_the_panel_path():
    """Every member of "early" joined in the first month (no pre-period: its DiDs refuse);
    "late" can be compared; the ratio DiD's refusal for paid attribution is the same."""
    from roi.data.attribution import RevenueAttribution
    from roi.data.source import embedded_engine

    rng = np.random.default_rng(3)
    rows = []
    for unit in range(60):
        community, join = (None, None) if unit < 30 else (
            ("early", 1) if unit < 45 else ("late", 3))
        for month in range(1, 6):
            rows.append((unit, month, join, community, float(rng.gamma(2.0, 10.0))))
    panel = pd.DataFrame(rows, columns=["customer_id", "month_index", "join_month_index",
                                        "community", "revenue"])
    panel["join_month_index"] = panel["join_month_index"].astype("Int32")
    panel["organic_revenue"] = panel["revenue"] * 0.8
    panel["active"] = True
    panel["member"] = (panel["month_index"] >= panel["join_month_index"]).fillna(False)
    engine = embedded_engine()
    with engine.begin() as connection:
        panel.to_sql("hand_panel", connection, index=False)
    table = sa.table("hand_panel", *(sa.column(c) for c in panel.columns))
    aggregates = revenue_aggregates(engine, table)
    memory, database = revenue_lift_estimates(panel), revenue_lift_estimates(
        None, aggregates=aggregates)
    assert "refused" in memory["did"].by_group["early"]
    assert memory["did"].by_group["late"]["estimate"] is not None
    assert largest_difference(database, memory) < RTOL
    paid = RevenueAttribution(spend=1000.0, has_channel=False, attributed_orders=0)
    refused = [revenue_lift_estimates(panel, attribution=paid),
               revenue_lift_estimates(None, aggregates=aggregates, attribution=paid)]
    assert refused[0]["did_multiplicative"].refused
    assert largest_difference(refused[1], refused[0]) < RTOL


def test_all_members_joined_before_the_window_refuses_alike():
    from roi.data.source import embedded_engine

    panel = pd.DataFrame({"customer_id": [1, 1, 2, 2], "month_index": [1, 2, 1, 2],
                          "join_month_index": pd.array([1, 1, None, None], dtype="Int32"),
                          "community": ["forum", "forum", None, None],
                          "revenue": [3.0, 4.0, 1.0, 2.0], "organic_revenue": [3., 4., 1., 2.],
                          "active": True, "member": [True, True, False, False]})
    engine = embedded_engine()
    with engine.begin() as connection:
        panel.to_sql("early_panel", connection, index=False)
    table = sa.table("early_panel", *(sa.column(c) for c in panel.columns))
    memory = revenue_lift_estimates(panel)
    database = revenue_lift_estimates(None, aggregates=revenue_aggregates(engine, table))
    assert memory["did"].refused and memory["did_multiplicative"].refused
    assert largest_difference(database, memory) < RTOL


# --------------------------------------------------------------------------------- PostgreSQL


@pytest.mark.postgres
def test_postgres_aggregates_equal_duckdb(sample_fits, postgres_url):
    from tests.conftest import load_world_into_postgres

    pg = _load(load_world_into_postgres(postgres_url, SAMPLE, "revenue_aggregates_sample"))
    assert pg.engine.dialect.name == "postgresql"
    *_, duck = sample_fits
    assert largest_difference(revenue_lift_estimates(
        None, aggregates=revenue_aggregates_in_database(pg)), duck) < 1e-8
