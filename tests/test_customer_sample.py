"""The run's customer sample above the row budget (issue 19, ``roi.data.sample``).

* Under the budget there is no sample; above it the sample's panel holds every row of the
  sampled customers and none of the others', sized to the budget within sampling error.
* The sample is a function of the customer id: PostgreSQL (and Spark, in ``test_spark.py``)
  select exactly DuckDB's customers.
* The retention value computed on a sample is scaled up to every customer by N / n.
* The landmark curves from the database's counts equal those from the start-stop table.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from roi.data.sample import CustomerSample, plan_customer_sample, sampled_dataset
from tests.conftest import SAMPLE


def _load(source):
    from connectors import open_source
    from roi.data import load_dataset

    return load_dataset(open_source(source))


@pytest.fixture(scope="module")
def sample_data():
    return _load(str(SAMPLE))


def test_no_sample_under_the_budget(sample_data):
    assert plan_customer_sample(sample_data, max_panel_rows=10**9) is None
    assert sampled_dataset(sample_data, None) is sample_data


def test_the_sample_holds_whole_customers_sized_to_the_budget(sample_data):
    full = sample_data.customer_month_panel()
    plan = plan_customer_sample(sample_data, max_panel_rows=len(full) // 4)
    assert plan is not None and plan.panel_rows == len(full)
    assert plan.population == full["customer_id"].nunique()
    panel = sampled_dataset(sample_data, plan).customer_month_panel()
    ids = set(panel["customer_id"])
    assert len(ids) == plan.customers
    # Every row of a sampled customer, none of the others'
    whole = full[full["customer_id"].isin(ids)]
    assert len(whole) == len(panel)
    assert math.isclose(whole["revenue"].sum(), panel["revenue"].sum(), rel_tol=1e-12)
    # A quarter of the customers, within four binomial standard deviations
    p = plan.fraction
    sd = math.sqrt(plan.population * p * (1 - p))
    assert abs(plan.customers - plan.population * p) < 4 * sd
    assert 0.24 < p <= 0.25
    survival = sampled_dataset(sample_data, plan).survival_table()
    assert set(survival["customer_id"]) <= ids


def test_the_sentence_names_share_counts_and_budget():
    plan = CustomerSample(threshold=16384, customers=2_501_000, population=10_000_000,
                          panel_rows=130_000_000, budget=32_500_000)
    text = plan.sentence()
    assert "25.0% of customers (2,501,000 of 10,000,000)" in text
    assert "130,000,000 rows" in text and "32,500,000" in text
    assert plan.to_contract()["fraction"] == 0.25


def test_the_budget_must_be_positive(sample_data):
    with pytest.raises(ValueError, match="max_panel_rows"):
        plan_customer_sample(sample_data, max_panel_rows=0)


@pytest.mark.postgres
def test_postgres_samples_the_same_customers_as_duckdb(sample_data, postgres_url):
    from tests.conftest import load_world_into_postgres

    on_postgres = _load(load_world_into_postgres(postgres_url, SAMPLE, "customer_sample"))
    assert on_postgres.engine.dialect.name == "postgresql"
    plans = [plan_customer_sample(d, max_panel_rows=12_000) for d in (sample_data, on_postgres)]
    assert plans[0] == plans[1]
    ids = [set(sampled_dataset(d, p).survival_table()["customer_id"])
           for d, p in zip((sample_data, on_postgres), plans, strict=True)]
    assert ids[0] == ids[1] and len(ids[0]) > 0


def test_retention_value_on_a_sample_is_scaled_to_every_customer():
    from roi.retention.block import _expand_to_population

    plan = CustomerSample(threshold=16384, customers=250, population=1000, panel_rows=13_000,
                          budget=3_250)
    money = {"by_community": {"discord": {
        "extra_customer_months": {"estimate": 10.0, "low": 5.0, "high": 15.0},
        "revenue": {"estimate": 100.0, "low": None, "high": 150.0}, "members": 40}},
        "total": {"extra_customer_months": {"estimate": 10.0, "low": 5.0, "high": 15.0},
                  "revenue": {"estimate": 100.0, "low": 50.0, "high": 150.0}}}
    _expand_to_population(money, plan)
    discord = money["by_community"]["discord"]
    assert discord["extra_customer_months"] == {"estimate": 40.0, "low": 20.0, "high": 60.0}
    assert discord["revenue"] == {"estimate": 400.0, "low": None, "high": 600.0}
    assert discord["members"] == 160
    assert money["total"]["revenue"]["low"] == 200.0
    assert money["customer_sample"]["expansion_factor"] == 4.0
    assert "scaled up to every customer" in money["customer_sample"]["note"]


def test_curves_from_database_counts_equal_the_start_stop_table(sample_data):
    from roi.retention.block import retention_curve_counts_in_database, retention_curves

    memory = retention_curves(sample_data.survival_table())
    database = retention_curves(counts=retention_curve_counts_in_database(sample_data))
    for key in ("retention", "difference"):
        assert len(memory[key]) == len(database[key]) > 0
        for a, b in zip(memory[key], database[key], strict=True):
            assert a.keys() == b.keys()
            for name, value in a.items():
                if isinstance(value, float):
                    assert np.isclose(value, b[name], rtol=1e-12, atol=1e-15, equal_nan=True)
                else:
                    assert value == b[name]
    points = [p["survival"] for p in memory["curves"]["points"]]
    assert np.allclose(points, [p["survival"] for p in database["curves"]["points"]],
                       rtol=1e-12, atol=0)
