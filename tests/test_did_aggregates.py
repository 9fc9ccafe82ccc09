"""The staggered DiD from sufficient statistics (issue 19).

* The sums per observation group (roi.revenue_lift._did_stats) give the influence cross-products
  of the explicit-row algebra (roi.revenue_lift._did_influence.influence_moments, kept as the
  independent reference) on panels with and without gaps.
* The same sums from one GROUP BY inside the database (roi.revenue_lift.did_sql), over the data
  layer's own panel statement, give the in-memory fit's every table to 1e-8 relative.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from roi.revenue_lift._did_aggregate import cell_forms
from roi.revenue_lift._did_cells import (
    cohort_cross_moments,
    control_mask,
    estimate_cells,
    group_time_cells,
)
from roi.revenue_lift._did_influence import influence_moments
from roi.revenue_lift._did_panel import NEVER, wide_panel
from roi.revenue_lift._did_stats import cross_moments, moments_from_stats, pattern_stats
from roi.revenue_lift.did import StaggeredDiD
from roi.revenue_lift.did_sql import did_aggregates

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
COLUMNS = {"unit": "customer_id", "time": "month_index", "group": "join_month_index",
           "outcome": "revenue"}


@pytest.fixture(scope="module")
def dataset():
    from connectors import open_source
    from roi.data import load_dataset

    return load_dataset(open_source(str(SAMPLE)))


@pytest.fixture(scope="module")
def active(dataset) -> pd.DataFrame:
    panel = dataset.customer_month_panel()
    return panel[panel["active"]]


def _gappy(active: pd.DataFrame) -> pd.DataFrame:
    """The sample's first 12 months with 3% of rows removed at random: observation patterns
    with gaps, which take the per-group path (cost groups x cells^2: 12 months keep it fast)."""
    rng = np.random.default_rng(4)
    first = active[active["month_index"] < active["month_index"].min() + 12]
    return first[rng.random(len(first)) > 0.03]


@pytest.mark.parametrize("scale", ["additive", "multiplicative"])
@pytest.mark.parametrize("gaps", [False, True])
def test_group_sums_give_the_explicit_row_moments(active, scale, gaps):
    rows = _gappy(active) if gaps else active
    panel = wide_panel(rows, anticipation=0, drop_last_cohort=False, **COLUMNS)
    codes = np.unique(panel.cohort)
    index = np.searchsorted(codes, panel.cohort)
    cells = group_time_cells(cohorts=codes[codes != NEVER], n_periods=len(panel.periods),
                             base_period="varying", anticipation=0)
    stats = pattern_stats(panel.outcome, index, n_cohorts=len(codes))
    sums, counts = cross_moments(stats)
    old_sums, old_counts = cohort_cross_moments(panel.outcome, index, len(codes))
    np.testing.assert_array_equal(counts, old_counts)
    np.testing.assert_allclose(sums, old_sums, rtol=1e-12, atol=1e-9)
    estimates = estimate_cells(
        cells, sums=sums, counts=counts, scale=scale, n_units=panel.n_units,
        controls=control_mask(cells, cohort_codes=codes, control_group="not_yet_treated",
                              anticipation=0),
        treated_index=np.searchsorted(codes, cells.cohort))
    new = moments_from_stats(stats, cells, estimates)
    old = influence_moments(panel.outcome, index, cells, estimates)
    scale_of = {name: np.abs(getattr(old, name)).max() for name in ("gram", "by_cell")}
    for name, size in scale_of.items():
        np.testing.assert_allclose(getattr(new, name), getattr(old, name), rtol=0,
                                   atol=1e-10 * size, err_msg=name)
    np.testing.assert_array_equal(new.overlap, old.overlap)
    forms = cell_forms(estimates)
    np.testing.assert_allclose(new.standard_errors(forms), old.standard_errors(forms),
                               rtol=1e-9)
    assert new.standard_errors(forms)[np.isfinite(estimates.att)].size > 100


def _tables(model: StaggeredDiD) -> dict[str, pd.DataFrame]:
    return {"overall": model.overall_, "dynamic": model.dynamic_, "group": model.group_,
            "group_time": model.group_time_}


@pytest.mark.parametrize("settings", [
    {"control_group": "never_treated", "weights": "member_months"},
    {"control_group": "not_yet_treated", "scale": "multiplicative"},
])
def test_group_by_in_the_database_gives_the_in_memory_fit(dataset, active, settings):
    from roi.data.panel import panel_select

    memory = StaggeredDiD(**settings).fit(active, **COLUMNS)
    statement = panel_select(dataset).order_by(None).subquery("panel")
    rows = sa.select(statement).where(statement.c.active).subquery("active")
    database = StaggeredDiD(**settings).fit_aggregates(
        did_aggregates(dataset.engine, rows, **COLUMNS), group="join_month_index")
    assert database.result_.estimate == pytest.approx(memory.result_.estimate, rel=1e-8)
    assert database.result_.n_treated == memory.result_.n_treated
    for name, table in _tables(memory).items():
        pd.testing.assert_frame_equal(_tables(database)[name], table, rtol=1e-8,
                                      check_dtype=False, obj=name)
    assert (database.result_.diagnostics.checks["dropped"]
            == memory.result_.diagnostics.checks["dropped"])


def test_database_path_refuses_what_the_panel_refuses(dataset):
    frame = pd.DataFrame({"id": [1, 1, 2], "t": [1, 1, 1], "g": [0, 0, 0], "y": [1.0, 2.0, 3.0]})
    with dataset.engine.begin() as connection:
        frame.to_sql("repeated_rows", connection, index=False)
    table = sa.table("repeated_rows", *(sa.column(c) for c in frame.columns))
    with pytest.raises(ValueError, match=r"\(id, t\) pairs appear more than once"):
        did_aggregates(dataset.engine, table, unit="id", time="t", group="g", outcome="y")


def test_naive_gap_from_the_database_equals_the_in_memory_gap(dataset, active):
    from roi.data.panel import panel_select
    from roi.revenue_lift.did_sql import naive_gap_sums
    from roi.revenue_lift.naive_revenue import NaiveRevenueGap

    memory = NaiveRevenueGap().fit(active, group="community").result_
    statement = panel_select(dataset).order_by(None).subquery("panel")
    rows = sa.select(statement).where(statement.c.active).subquery("active")
    sums = naive_gap_sums(dataset.engine, rows, unit="customer_id", outcome="revenue",
                          join_time="join_month_index", community="community")
    assert len(sums) == 3   # never-members, discord, forum: what leaves the database
    database = NaiveRevenueGap().fit_sums(sums).result_
    for field in ("estimate", "low", "high"):
        assert getattr(database, field) == pytest.approx(getattr(memory, field), rel=1e-10)
    assert (database.n_treated, database.n_obs) == (memory.n_treated, memory.n_obs)
    assert set(database.by_group) == set(memory.by_group) == {"discord", "forum"}
    for name, block in memory.by_group.items():
        assert database.by_group[name]["estimate"] == pytest.approx(block["estimate"], rel=1e-10)
        assert database.by_group[name]["low"] == pytest.approx(block["low"], rel=1e-10)


def test_retention_curves_from_the_database_equal_the_in_memory_curves(dataset):
    from roi.data.survival import survival_select
    from roi.retention.survival_curves import RetentionCurves
    from roi.retention.survival_sql import retention_counts

    memory = RetentionCurves().fit(dataset.survival_table(), community="community")
    table = survival_select(dataset).order_by(None).subquery("survival")
    counts = retention_counts(dataset.engine, table, community="community")
    database = RetentionCurves().fit_counts(counts)
    assert len(counts) < 20_000   # per landmark, group and day: not per customer
    for name in ("retention_", "difference_", "curves_"):
        pd.testing.assert_frame_equal(getattr(database, name), getattr(memory, name),
                                      rtol=1e-10, check_dtype=False, obj=name)
