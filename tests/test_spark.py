"""Apache Spark as an engine (issue 19): the data layer's statements compiled for Spark SQL
(``roi.data.spark``) give DuckDB's results, and ``roi run --engine spark`` gives DuckDB's
``results.json``.

One local Spark session (``local[2]``, two shuffle partitions, no UI) serves the module: JVM
start-up takes 10-40 s, so the tests share it (``roi run`` in this process reuses it too).
"""

from __future__ import annotations

import json
import math
import os
import shutil

import pandas as pd
import pytest

from connectors import open_source
from connectors.spark import from_folder_spark
from roi.data import load_dataset
from roi.data.errors import DataValidationError
from tests.conftest import SAMPLE, run_cli
from tests.test_postgres import _assert_same

try:
    import pyspark  # noqa: F401
except ImportError:
    if os.environ.get("ROI_REQUIRE_SPARK"):   # CI (.ci/run): the Spark tests must run
        raise
    pytest.skip("the 'spark' extra is not installed", allow_module_level=True)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def spark():
    from roi.data.spark import local_session

    if shutil.which("java") is None:
        if os.environ.get("ROI_REQUIRE_SPARK"):
            pytest.fail("ROI_REQUIRE_SPARK is set but there is no Java runtime")
        pytest.skip("no Java runtime (Spark needs Java 17 or 21)")
    session = local_session("local[2]", config={"spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()


def _write(folder, frames: dict[str, pd.DataFrame]):
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def sample_datasets(spark):
    """The sample loaded by DuckDB and by Spark (validation and typing run once each)."""
    return load_dataset(open_source(SAMPLE)), load_dataset(from_folder_spark(SAMPLE,
                                                                             session=spark))


def test_sample_data_layer_equals_duckdb(sample_datasets):
    """Panel, weekly series, survival table and the whole data report (counts, exclusions,
    row accounting, link rate) of the sample: Spark SQL equals DuckDB."""
    duck, on_spark = sample_datasets
    assert on_spark.engine.dialect.name == "spark"
    assert duck.report["customers"] > 1000
    _assert_same(duck, on_spark)


def test_customer_sample_equals_duckdb(sample_datasets):
    """Above the row budget the run samples customers by the SHA-256 of their id: Spark picks
    exactly DuckDB's customers (same plan, same survival rows' ids)."""
    from roi.data.sample import plan_customer_sample, sampled_dataset

    plans = [plan_customer_sample(d, max_panel_rows=12_000) for d in sample_datasets]
    assert plans[0] == plans[1]
    ids = [set(sampled_dataset(d, p).survival_table()["customer_id"])
           for d, p in zip(sample_datasets, plans, strict=True)]
    assert ids[0] == ids[1] and len(ids[0]) == plans[0].customers


def test_did_from_sums_equals_duckdb(sample_datasets):
    """README's scale snippet on Spark: the staggered DiD from cohort sums computed inside
    Spark equals the one from DuckDB's sums (1e-9 relative)."""
    import sqlalchemy as sa

    from roi.data.panel import panel_select
    from roi.revenue_lift.did import StaggeredDiD
    from roi.revenue_lift.did_sql import did_aggregates

    summaries = []
    for dataset in sample_datasets:
        panel = panel_select(dataset).order_by(None).subquery("panel")
        active = sa.select(panel).where(panel.c.active).subquery("active")
        sums = did_aggregates(dataset.engine, active, unit="customer_id", time="month_index",
                              group="join_month_index", outcome="revenue")
        summaries.append(StaggeredDiD(control_group="never_treated", weights="member_months")
                         .fit_aggregates(sums).summary())
    assert summaries[0].loc["simple", "att"] > 0
    pd.testing.assert_frame_equal(summaries[0], summaries[1], rtol=1e-9)


def test_bayesian_cells_equal_duckdb(sample_datasets):
    """The Bayesian models' cells computed inside Spark (roi.revenue_lift.cells_sql,
    roi.retention.cells_sql) equal DuckDB's: keys exactly, sums to 1e-9 relative."""
    from roi.data.panel import panel_select
    from roi.data.survival import survival_select
    from roi.retention.cells_sql import person_period_cells_sql
    from roi.revenue_lift.cells_sql import revenue_cells_sql
    from tests.test_cells_sql import REVENUE, RUN_COVARIATES, assert_cells_equal

    cells = []
    for dataset in sample_datasets:
        panel = panel_select(dataset).order_by(None).subquery("panel")
        rows = survival_select(dataset).order_by(None).subquery("survival")
        cells.append((revenue_cells_sql(dataset.engine, panel, covariates=RUN_COVARIATES,
                                        kinds=dataset.covariates, **REVENUE),
                      person_period_cells_sql(dataset.engine, rows,
                                              covariates=list(dataset.covariates),
                                              kinds=dataset.covariates, community="community")))
    (duck_revenue, duck_survival), (spark_revenue, spark_survival) = cells
    assert_cells_equal(spark_revenue, duck_revenue, sums=["total", "total_sq"])
    assert_cells_equal(spark_survival, duck_survival, sums=["events", "exposure"])
    assert spark_survival.attrs == duck_survival.attrs


def test_awkward_rows_equal_duckdb(spark, tiny, tmp_path):
    """Issue 14's rules (re-exported rows, a refund sharing its order_id, an order before
    first_seen, a community in another case, a join after churn, a raw e-mail linking a member)
    counted the same in Spark; Parquet with native types read as CSV text is."""
    orders, members = tiny["orders"], tiny["members"]
    tiny["orders"] = pd.concat([orders, orders.iloc[[1]], orders.iloc[[1]].assign(
        revenue="-20", order_date="2024-04-02"), pd.DataFrame({
            "order_id": ["o8"], "customer_id": ["C"], "order_date": ["2024-02-03"],
            "revenue": ["9"], "currency": ["USD"]})], ignore_index=True)
    tiny["members"] = pd.concat([members, members.iloc[[0]], pd.DataFrame({
        "community": ["Discord"], "joined_at": ["2024-03-25"], "customer_id": ["B"],
        "email": [None], "member_id": ["m5"], "left_at": [None]})], ignore_index=True)
    folder = _write(tmp_path / "csv", tiny)
    typed = tmp_path / "parquet"
    typed.mkdir()
    for name, frame in tiny.items():
        frame = frame.copy()
        if name == "orders":
            frame["revenue"] = pd.to_numeric(frame["revenue"])
            frame["order_date"] = pd.to_datetime(frame["order_date"].str[:10]).dt.date
        frame.to_parquet(typed / f"{name}.parquet", index=False)
    duck = load_dataset(open_source(folder))
    assert duck.report["excluded"]["orders_duplicate_row"] == 1
    assert duck.report["excluded"]["members_joined_after_churn"] == 1
    _assert_same(duck, load_dataset(from_folder_spark(folder, session=spark)))
    _assert_same(load_dataset(open_source(typed)),
                 load_dataset(from_folder_spark(typed, session=spark)))


def test_validation_problems_equal_duckdb(spark, tiny, tmp_path):
    """Broken rules give the same problems (table, column, rule, row count) in both engines:
    unparsable and impossible dates, a date with text after it, non-numbers, 1e999, an
    unknown customer."""
    tiny["orders"] = pd.concat([tiny["orders"], pd.DataFrame({
        "order_id": ["b1", "b2", "b3", "b4", "b5", "b6"],
        "customer_id": ["A", "A", "A", "A", "A", "ZZ"],
        "order_date": ["2024-02-30", "2023-01-083", "soon", "2024-02-01", "2024-02-01",
                       "2024-02-01"],
        "revenue": ["5", "5", "5", "n/a", "1e999", "3"], "currency": ["USD"] * 6})],
        ignore_index=True)
    folder = _write(tmp_path / "broken", tiny)

    def problems(source):
        with pytest.raises(DataValidationError) as caught:
            load_dataset(source)
        return sorted((p.table, p.column, p.rule, p.n_rows) for p in caught.value.problems)

    duck = problems(open_source(folder))
    assert ("orders", "order_date", ) == duck[0][:2] and sum(p[3] for p in duck) >= 5
    assert problems(from_folder_spark(folder, session=spark)) == duck


def _differences(left, right, path="", *, rtol: float) -> list[str]:
    """Paths where two JSON documents differ (numbers beyond ``rtol``, or 1e-9 near zero)."""
    if isinstance(left, dict) and isinstance(right, dict):
        found = [f"{path}/{k}: only on one side" for k in set(left) ^ set(right)]
        for key in set(left) & set(right):
            found += _differences(left[key], right[key], f"{path}/{key}", rtol=rtol)
        return found
    if isinstance(left, list) and isinstance(right, list):
        if len(left) != len(right):
            return [f"{path}: {len(left)} vs {len(right)} items"]
        return [d for i, (a, b) in enumerate(zip(left, right, strict=True))
                for d in _differences(a, b, f"{path}[{i}]", rtol=rtol)]
    numbers = (int, float)
    if isinstance(left, numbers) and isinstance(right, numbers) \
            and not isinstance(left, bool) and not isinstance(right, bool):
        if math.isclose(left, right, rel_tol=rtol, abs_tol=1e-9) or (left != left and
                                                                   right != right):
            return []
        return [f"{path}: {left} vs {right}"]
    return [] if left == right else [f"{path}: {left!r} vs {right!r}"]


# Keys that say when and where a run ran, not what it found: the time stamp, the package
# versions, and the source's description ("folder ... (Spark)").
RUN_FACTS = ("/generated_at", "/environment", "/data/source")


def test_roi_run_engine_spark_equals_duckdb(spark, small_world, small_world_run, tmp_path):
    """``roi run --engine spark`` of the small world (600 customers, CSV, a member linked by a
    raw e-mail only) writes DuckDB's results.json: the same data block exactly and every
    estimate within 1e-6 relative (the models see identical frames; what may differ is the
    last bits of sums done in another order)."""
    duck_out, _, _ = small_world_run
    out = tmp_path / "spark-run"
    code, stdout, stderr = run_cli(["run", "--engine", "spark", str(small_world / "data"),
                                    "--out", str(out), "--config",
                                    str(small_world / "roi.toml"), "--no-pdf"])
    assert code == 0, stderr[-3000:]
    duck = json.loads((duck_out / "results.json").read_text())
    on_spark = json.loads((out / "results.json").read_text())
    assert duck["data"]["customers"] == on_spark["data"]["customers"] == 600
    differences = _differences(duck, on_spark, rtol=1e-6)
    assert [d for d in differences if not d.startswith(RUN_FACTS)] == []
    assert duck["data"] == {**on_spark["data"], "source": duck["data"]["source"]}


def test_spark_url_equals_duckdb(spark, tiny):
    """``spark://`` as a source URL (what ``spark+connect://host:15002`` does on a cluster):
    tables found by canonical name in the session's catalog and reflected; results equal
    DuckDB's."""
    for name, frame in tiny.items():
        spark.createDataFrame(frame.astype(object).where(frame.notna(), None)) \
            .createOrReplaceTempView(name)
    on_spark = load_dataset(open_source("spark://"))
    assert sorted(on_spark.source.tables) == sorted(tiny)
    assert on_spark.source.description == "spark://"
    _assert_same(load_dataset(open_source(tiny)), on_spark)


def test_a_driver_out_of_memory_says_what_to_change():
    """Spark's first line of a lost task result is only "An error occurred while calling
    o949.getResult"; the error names the setting that fixes it (seen on a 1M-customer run with
    2g of driver memory), and other failures keep their first line alone."""
    from roi.data.spark import LOCAL_CONFIG, _session_error

    lost = RuntimeError("An error occurred while calling o949.getResult.\n: org.apache.spark."
                        "SparkException: ... TaskResultLost (result lost from block manager)")
    message = str(_session_error(lost))
    assert message.startswith("An error occurred while calling o949.getResult.")
    assert "ROI_SPARK_DRIVER_MEMORY" in message and "max_panel_rows" in message
    assert LOCAL_CONFIG["spark.driver.memory"] in message
    other = str(_session_error(RuntimeError("[TABLE_OR_VIEW_NOT_FOUND] x\ntrace")))
    assert other == "[TABLE_OR_VIEW_NOT_FOUND] x"
