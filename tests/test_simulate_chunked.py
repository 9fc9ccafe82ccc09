"""The chunked simulator (roi.simulate_chunked): same model as the one-piece world, tables
appended as Parquet row groups, truth summed over chunks."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pyarrow.parquet as pq
import pytest

import roi.simulate_chunked
from roi.data.schema import TABLES as SCHEMA_TABLES
from roi.simulate import TABLE_NAMES, main, simulate_world
from roi.simulate_chunked import write_world_chunked

N = 12_000


@pytest.fixture(scope="module")
def chunked(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chunked")
    truth = write_world_chunked(folder, n_customers=N, seed=5, chunk_customers=5_000)
    return folder, truth


def test_doctests():
    assert doctest.testmod(roi.simulate_chunked).failed == 0


def test_tables_are_whole_and_numbered_over_the_world(chunked):
    folder, truth = chunked
    tables = {name: pq.read_table(folder / f"{name}.parquet") for name in TABLE_NAMES}
    assert {name: table.num_rows for name, table in tables.items()} == truth["counts"]
    assert truth["chunks"]["n"] == 3 and tables["customers"].num_rows == N
    for name, table in tables.items():   # every canonical column, in each part
        assert set(SCHEMA_TABLES[name].required) <= set(table.column_names), name
    for name, key in (("customers", "customer_id"), ("orders", "order_id"),
                      ("members", "member_id")):
        column = tables[name].column(key).to_pandas()
        assert column.notna().all() and column.is_unique, name
    known = set(tables["customers"].column("customer_id").to_pylist())
    buyers = set(tables["orders"].column("customer_id").to_pylist())
    assert buyers <= known


def test_truth_has_the_one_piece_keys_and_agrees_in_distribution(chunked):
    _, truth = chunked
    one = simulate_world(n_customers=N, seed=5).truth
    assert set(one) <= set(truth)
    # Same model, other draws: shares and means agree within sampling noise (revenue is
    # heavy-tailed: over 10 seeds the one-piece ATT's relative SD is 1.5% at 12k customers).
    share = one["ever_member_share"]
    assert abs(truth["ever_member_share"] - share) < 4 * np.sqrt(share * (1 - share) / N)
    assert truth["att_per_member_month"] == pytest.approx(one["att_per_member_month"], rel=0.08)
    assert truth["naive_gap_per_month"] == pytest.approx(one["naive_gap_per_month"], rel=0.1)
    assert truth["paid_share_of_revenue"] == pytest.approx(0.2)
    for name in ("customers", "orders", "members", "activity"):
        assert truth["counts"][name] == pytest.approx(one["counts"][name], rel=0.05), name


def test_realised_revenue_matches_expected(chunked):
    """Orders (organic, refunds and media) add up to the expected revenue the truth implies."""
    folder, truth = chunked
    revenue = pq.read_table(folder / "orders.parquet", columns=["revenue"]).column(0)
    media = sum(channel["expected_revenue"] for channel in truth["media_params"].values())
    expected = media / truth["paid_share_of_revenue"]
    assert float(revenue.to_numpy().sum()) == pytest.approx(expected, rel=0.02)


def test_command_line_writes_chunks(tmp_path):
    assert main(["--out", str(tmp_path), "--customers", "900", "--months", "6", "--seed", "2",
                 "--format", "parquet", "--chunk-customers", "400"]) == 0
    truth = json.loads((tmp_path / "truth.json").read_text())
    assert truth["chunks"]["n"] == 3 and truth["counts"]["customers"] == 900
    with pytest.raises(SystemExit):   # chunks are Parquet only
        main(["--out", str(tmp_path), "--customers", "900", "--chunk-customers", "400"])


def test_refuses_what_needs_every_customer_at_once(tmp_path):
    with pytest.raises(ValueError, match="experiment_share"):
        write_world_chunked(tmp_path, n_customers=100, experiment_share=0.2)
