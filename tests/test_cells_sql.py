"""The Bayesian models' cells from ``GROUP BY`` queries in the database (issue 19).

* ``revenue_cells_sql`` over the data layer's panel statement equals ``revenue_cells`` of the
  panel in memory with the run's arguments (organic revenue, segment and plan, community):
  keys, labels, dtypes, order and counts exactly, sums to 1e-9 relative; also with a numeric
  covariate (quantile bins) and on a hand-made panel with every never-member coding.
  The same from each customer's first and last month as columns of the panel (no window
  function), and summed over slices of customers (at the whole panel's quantile bins).
* ``person_period_cells_sql`` over the data layer's start-stop statement equals
  ``person_period_cells`` (in key order) with the pieces at event-time quantiles, the bounds and
  the numeric bin edges included.
* The same statements inside PostgreSQL equal DuckDB's, as do the DiD's aggregates
  (``did_aggregates``, ``naive_gap_sums``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from roi.retention.bayes_survival import (
    DEFAULT_INTERVALS,
    event_quantile_bounds,
    pattern_columns,
    person_period_cells,
)
from roi.retention.cells_sql import numpy_quantiles, person_period_cells_sql, sorted_cells
from roi.revenue_lift.bayes_revenue import revenue_cells
from roi.revenue_lift.cells_sql import revenue_cells_sql
from tests.conftest import SAMPLE

REVENUE = {"unit": "customer_id", "time": "month_index", "group": "join_month_index",
           "outcome": "organic_revenue", "community": "community", "active": "active"}
RUN_COVARIATES = ["segment", "plan"]        # what roi.revenue_lift.block passes
REVENUE_SUMS = ["total", "total_sq"]
SURVIVAL_SUMS = ["events", "exposure"]


def _load(source):
    from connectors import open_source
    from roi.data import load_dataset

    return load_dataset(open_source(source))


@pytest.fixture(scope="module")
def sample():
    return _load(str(SAMPLE))


@pytest.fixture(scope="module")
def world():
    """A small simulated world (another calendar, other communities' sizes)."""
    from roi.simulate import simulate_world

    return _load(simulate_world(n_customers=800, seed=5).tables)


def _panel(dataset) -> sa.Subquery:
    from roi.data.panel import panel_select

    return panel_select(dataset).order_by(None).subquery("panel")


def _survival(dataset) -> sa.Subquery:
    from roi.data.survival import survival_select

    return survival_select(dataset).order_by(None).subquery("survival")


def assert_cells_equal(database: pd.DataFrame, memory: pd.DataFrame, *, sums: list[str]):
    """Keys, labels, dtypes, order and counts exactly; sums to 1e-9 relative."""
    keys = [c for c in memory.columns if c not in sums]
    assert list(database.columns) == list(memory.columns)
    pd.testing.assert_frame_equal(database[keys], memory[keys], check_exact=True)
    pd.testing.assert_frame_equal(database[sums], memory[sums], check_exact=False, rtol=1e-9,
                                  atol=0)


@pytest.mark.parametrize("covariates", [RUN_COVARIATES, ["segment", "employees"]],
                         ids=["run", "numeric"])
@pytest.mark.parametrize("name", ["sample", "world"])
def test_revenue_cells_from_the_database_equal_the_in_memory_cells(request, name, covariates):
    dataset = request.getfixturevalue(name)
    memory = revenue_cells(dataset.customer_month_panel(), covariates=covariates, **REVENUE)
    database = revenue_cells_sql(dataset.engine, _panel(dataset), covariates=covariates,
                                 kinds=dataset.covariates, **REVENUE)
    assert database["member"].any() and (~database["member"]).any()
    assert database["n"].sum() > 5_000
    assert_cells_equal(database, memory, sums=REVENUE_SUMS)


@pytest.mark.parametrize("intervals", ["events", DEFAULT_INTERVALS], ids=["events", "fixed"])
@pytest.mark.parametrize("name", ["sample", "world"])
def test_survival_cells_from_the_database_equal_the_in_memory_cells(request, name, intervals):
    dataset = request.getfixturevalue(name)
    table = dataset.survival_table()
    covariates = list(dataset.covariates)   # what roi.retention.block passes
    assert "numeric" in dataset.covariates.values()
    bounds = (event_quantile_bounds(table["stop"], table["event"], pieces=12)
              if intervals == "events" else intervals)
    memory = person_period_cells(table, intervals_days=bounds, covariates=covariates,
                                 community="community")
    database = person_period_cells_sql(dataset.engine, _survival(dataset),
                                       intervals_days=intervals, covariates=covariates,
                                       kinds=dataset.covariates, community="community")
    assert database.attrs["intervals_days"] == tuple(float(b) for b in bounds)
    assert database.attrs["edges"] == memory.attrs["edges"] and memory.attrs["edges"]
    assert int(database["events"].sum()) == int(table["event"].sum())
    assert_cells_equal(database, sorted_cells(memory, covariates=covariates),
                       sums=SURVIVAL_SUMS)


def test_numpy_quantiles_equal_numpy_bit_for_bit():
    rng = np.random.default_rng(3)
    probs = np.concatenate([np.linspace(0, 1, 13), rng.random(20)])
    for size in (1, 2, 7, 100, 5000):
        sample = np.round(rng.lognormal(3, 1.5, size), int(rng.integers(0, 3)))
        values, counts = np.unique(sample, return_counts=True)
        np.testing.assert_array_equal(numpy_quantiles(values, counts, probs),
                                      np.quantile(sample, probs))


@pytest.fixture(scope="module")
def awkward(sample):
    """A hand-made panel in the sample's DuckDB: never-members coded NULL, 0, negative and after
    the last period; a member without community; missing, boolean and 0/1 covariates; a unit
    whose first row is not active."""
    frame = pd.DataFrame({
        "id": np.repeat([1, 2, 3, 4, 5, 6], 4), "t": np.tile([10, 11, 12, 13], 6),
        "g": np.repeat([11.0, np.nan, 0.0, -3.0, 99.0, 12.0], 4),
        "y": np.arange(24, dtype=float) * 1.5 - 4,
        "community": np.repeat(["a", None, "b", "a", "b", None], 4),
        "active": np.tile([False, True, True, True], 6),
        "plan": np.repeat(["x", "y", None, "x", "y", "y"], 4),
        "flag": np.repeat([True, False, True, True, False, False], 4),
        "trial": np.repeat([0.0, 1.0, 1.0, 0.0, 0.0, 1.0], 4)})
    with sample.engine.begin() as connection:
        frame.to_sql("awkward_panel", connection, index=False)
    frame["plan"] = frame["plan"].astype("category")
    return frame, sa.table("awkward_panel", *(sa.column(c) for c in frame.columns))


@pytest.mark.parametrize("community", ["community", None])
def test_revenue_cells_follow_the_in_memory_rules_on_awkward_rows(sample, awkward, community):
    frame, table = awkward
    columns = {"unit": "id", "time": "t", "group": "g", "outcome": "y", "community": community,
               "covariates": ["plan", "flag", "trial"]}
    memory = revenue_cells(frame, **columns)
    database = revenue_cells_sql(sample.engine, table, kinds={"plan": "categorical",
                                                              "flag": "boolean",
                                                              "trial": "numeric"},
                                 time_dtype="int64", **columns)
    assert sorted(set(memory["cohort"].dropna())) == [11.0, 12.0]
    assert set(memory["plan"]) == {"x", "y", "(missing)"} and set(memory["trial"]) == {"0", "1"}
    assert_cells_equal(database, memory, sums=REVENUE_SUMS)


def test_revenue_cells_from_first_and_last_columns_equal_the_window_path(request):
    """The data layer's panel with each customer's clipped first and last month as columns
    (``bayes_panel``, no window over the whole panel) gives the cells of the window path and of
    the panel in memory; also with a numeric covariate."""
    from roi.revenue_lift.block import bayes_panel

    for name in ("sample", "world"):
        dataset = request.getfixturevalue(name)
        frame = dataset.customer_month_panel()
        for covariates in (RUN_COVARIATES, ["segment", "employees"]):
            columns = {"covariates": covariates, "kinds": dataset.covariates, **REVENUE}
            spans = revenue_cells_sql(dataset.engine, bayes_panel(dataset), first="first_month",
                                      last="last_month", **columns)
            window = revenue_cells_sql(dataset.engine, _panel(dataset), **columns)
            pd.testing.assert_frame_equal(spans, window, check_exact=False, rtol=1e-12, atol=0)
            assert_cells_equal(spans, revenue_cells(frame, covariates=covariates, **REVENUE),
                               sums=REVENUE_SUMS)
    with pytest.raises(ValueError, match="both"):
        revenue_cells_sql(dataset.engine, _panel(dataset), first="first_month_index", **REVENUE)


def test_revenue_cells_of_slices_of_customers_add_up_to_the_whole(sample, monkeypatch):
    """Above ``ROWS_PER_SLICE`` rows the cells are summed over slices of customers: every
    slice cut at the whole panel's quantile bins (a slice's own bins would differ), the cells
    and the member count those of the whole panel in memory."""
    from roi.config import RunConfig
    from roi.data.sample import customer_slices
    from roi.revenue_lift import aggregates_sql
    from roi.revenue_lift.block import BAYES_COLUMNS, bayes_panel, bayesian_cells_in_database

    frame = sample.customer_month_panel()
    slices = customer_slices(sample, max_panel_rows=len(frame) // 4)
    assert len(slices) >= 4
    panels = [bayes_panel(part) for part in slices]
    columns = {"covariates": ["segment", "employees"], "kinds": sample.covariates, **REVENUE}
    sliced = revenue_cells_sql(sample.engine, panels, first="first_month", last="last_month",
                               **columns)
    memory = revenue_cells(frame, covariates=["segment", "employees"], **REVENUE)
    assert memory["employees"].nunique() == 3
    assert_cells_equal(sliced, memory, sums=REVENUE_SUMS)

    sampler = RunConfig().sampler.for_model("revenue")
    whole = bayesian_cells_in_database(sample, sampler=sampler)
    monkeypatch.setattr(aggregates_sql, "ROWS_PER_SLICE", len(frame) // 4)
    parts = bayesian_cells_in_database(sample, sampler=sampler)
    member = frame["active"] & frame["member"]
    assert parts.n_treated == whole.n_treated == frame.loc[member, "customer_id"].nunique() > 100
    assert_cells_equal(parts.cells, whole.cells, sums=REVENUE_SUMS)
    assert_cells_equal(parts.cells, revenue_cells(frame, covariates=RUN_COVARIATES,
                                                  **BAYES_COLUMNS), sums=REVENUE_SUMS)


def test_parts_of_a_panel_take_the_whole_panels_bins(sample, awkward):
    """Each part has at most ``numeric_bins`` values of ``size`` (alone it would keep each
    value as its level), the whole panel more: every part is cut at the whole's quantiles."""
    frame, _ = awkward
    frame = frame.assign(size=frame["id"] * 10.0)
    with sample.engine.begin() as connection:
        frame.to_sql("awkward_parts", connection, index=False)
    table = sa.table("awkward_parts", *(sa.column(c) for c in frame.columns))
    parts = [sa.select(table).where(sa.or_(table.c.id == a, table.c.id == b))
             .subquery(f"part_{k}") for k, (a, b) in enumerate(((1, 4), (2, 5), (3, 6)))]
    columns = {"unit": "id", "time": "t", "group": "g", "outcome": "y",
               "covariates": ["plan", "size"]}
    memory = revenue_cells(frame, **columns)
    database = revenue_cells_sql(sample.engine, parts, kinds={"plan": "categorical",
                                                              "size": "numeric"},
                                 time_dtype="int64", **columns)
    assert set(memory["size"]) == {"q1", "q2", "q3"}
    assert_cells_equal(database, memory, sums=REVENUE_SUMS)


def test_numeric_covariate_with_missing_values_is_refused_as_in_memory(sample, awkward):
    frame, _ = awkward
    frame = frame.assign(size=np.where(frame["id"] == 2, np.nan, frame["id"] * 10.0))
    with sample.engine.begin() as connection:
        frame.to_sql("awkward_sizes", connection, index=False)
    table = sa.table("awkward_sizes", *(sa.column(c) for c in frame.columns))
    with pytest.raises(ValueError, match="missing value") as memory:
        pattern_columns(frame[frame["active"]], covariates=["size"])
    with pytest.raises(ValueError, match="missing value") as database:
        revenue_cells_sql(sample.engine, table, unit="id", time="t", group="g", outcome="y",
                          covariates=["size"], kinds={"size": "numeric"})
    assert str(database.value) == str(memory.value)


# --------------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def pg_sample(postgres_url):
    from tests.conftest import load_world_into_postgres

    return _load(load_world_into_postgres(postgres_url, SAMPLE, "cells_sample"))


@pytest.mark.postgres
def test_postgres_cells_equal_duckdb(sample, pg_sample):
    assert pg_sample.engine.dialect.name == "postgresql"
    covariates = list(sample.covariates)
    (duck_revenue, duck_survival), (pg_revenue, pg_survival) = [
        (revenue_cells_sql(dataset.engine, _panel(dataset), covariates=RUN_COVARIATES,
                           kinds=dataset.covariates, **REVENUE),
         person_period_cells_sql(dataset.engine, _survival(dataset), covariates=covariates,
                                 kinds=dataset.covariates, community="community"))
        for dataset in (sample, pg_sample)]
    assert_cells_equal(pg_revenue, duck_revenue, sums=REVENUE_SUMS)
    assert_cells_equal(pg_survival, duck_survival, sums=SURVIVAL_SUMS)
    assert pg_survival.attrs == duck_survival.attrs


@pytest.mark.postgres
def test_postgres_did_aggregates_equal_duckdb(sample, pg_sample):
    """The DiD and the naive gap from sums computed inside PostgreSQL equal DuckDB's."""
    from roi.revenue_lift.did import StaggeredDiD
    from roi.revenue_lift.did_sql import did_aggregates, naive_gap_sums

    fits, gaps = [], []
    for dataset in (sample, pg_sample):
        panel = _panel(dataset)
        active = sa.select(panel).where(panel.c.active).subquery("active")
        sums = did_aggregates(dataset.engine, active, unit="customer_id", time="month_index",
                              group="join_month_index", outcome="revenue")
        fits.append(StaggeredDiD(control_group="never_treated", weights="member_months")
                    .fit_aggregates(sums))
        gaps.append(naive_gap_sums(dataset.engine, active, unit="customer_id",
                                   outcome="revenue", join_time="join_month_index",
                                   community="community"))
    duck, pg = fits
    assert duck.result_.estimate > 0
    pd.testing.assert_frame_equal(pg.summary(), duck.summary(), rtol=1e-9)
    pd.testing.assert_frame_equal(pg.dynamic_, duck.dynamic_, rtol=1e-9, check_dtype=False)
    pd.testing.assert_frame_equal(gaps[1], gaps[0], rtol=1e-9, check_dtype=False)


def test_member_counts_from_the_database_equal_the_in_memory_counts(sample):
    """What the results need beyond the cells: member customers (both models) and member days
    at risk (survival), as the in-memory fits count them."""
    from roi.retention.cells_sql import member_exposure_sql
    from roi.revenue_lift.cells_sql import member_units_sql

    panel = sample.customer_month_panel()
    member = panel["active"] & panel["member"]
    assert member_units_sql(sample.engine, _panel(sample), unit="customer_id",
                            time="month_index", group="join_month_index") == \
        panel.loc[member, "customer_id"].nunique() > 100
    table = sample.survival_table()
    exposed = table["member"].astype(bool)
    assert member_exposure_sql(sample.engine, _survival(sample)) == (
        table.loc[exposed, "customer_id"].nunique(),
        int((table["stop"] - table["start"])[exposed].sum()))
