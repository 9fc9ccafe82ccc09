"""Issue 19 for the ``community_engagement`` block: the tier and programme DiDs from database
aggregates equal the in-memory fits, and with a sampled panel the block's counts are all
customers' while the estimates on the sample say so."""

from __future__ import annotations

import math

import numpy as np
import pytest

from roi.engagement.block import community_engagement_block
from roi.engagement.tiers import TierRule, quantiles_from_counts
from tests.conftest import SAMPLE

TOL = 1e-8


def _load(source):
    from connectors import open_source
    from roi.data import load_dataset

    return load_dataset(open_source(source))


@pytest.fixture(scope="module")
def sample_data():
    """data/sample with its panel and survival table in memory."""
    dataset = _load(SAMPLE)
    return dataset, dataset.customer_month_panel(), dataset.survival_table()


@pytest.fixture(scope="module")
def both(sample_data):
    dataset, panel, survival = sample_data
    return {mode: community_engagement_block(dataset, panel=panel, survival=survival,
                                             in_database=mode)
            for mode in (False, True)}


def _close(a, b, what):
    if a is None or b is None:
        assert a is b, what
    else:
        assert math.isclose(a, b, rel_tol=TOL, abs_tol=TOL), (what, a, b)


def _same_effect(memory, database, what):
    assert memory.get("refused") == database.get("refused"), what
    for key in ("estimate", "low", "high"):
        _close(memory.get(key), database.get(key), f"{what} {key}")
    assert memory.get("warnings") == database.get("warnings"), what


def test_tier_dids_from_the_database_equal_the_in_memory_fits(both):
    memory, database = both[False]["tiers"], both[True]["tiers"]
    assert memory["rule"] == database["rule"]
    assert set(memory["by_tier"]) == {"lurker", "participant", "superfan"}
    for name, entry in memory["by_tier"].items():
        other = database["by_tier"][name]
        assert entry["members"] == other["members"] and entry["member_months"] > 0
        assert entry["member_months"] == other["member_months"]
        _same_effect(entry["lift_per_member_month"], other["lift_per_member_month"], name)
        assert (entry["member_coverage"] is None) == (other["member_coverage"] is None)
        for key in ("covered_share", "factor") if entry["member_coverage"] else ():
            _close(entry["member_coverage"][key], other["member_coverage"][key], key)
        _close(entry["share_of_incremental_revenue"], other["share_of_incremental_revenue"],
               name)
        assert entry["hazard_ratio"] == other["hazard_ratio"]


def test_tier_dids_summed_over_customer_slices_equal_one_pass(sample_data, both, monkeypatch):
    """Above ``ROWS_PER_SLICE`` panel rows the embedded DuckDB sums the tiers' DiD pivots and
    coverage over disjoint slices of customers: the same numbers as one pass."""
    from roi.revenue_lift import aggregates_sql

    dataset, panel, survival = sample_data
    monkeypatch.setattr(aggregates_sql, "ROWS_PER_SLICE", len(panel) // 4)
    sliced = community_engagement_block(dataset, panel=panel, survival=survival,
                                        in_database=True)["tiers"]
    for name, entry in both[True]["tiers"]["by_tier"].items():
        other = sliced["by_tier"][name]
        assert entry["member_months"] == other["member_months"] > 0
        _same_effect(entry["lift_per_member_month"], other["lift_per_member_month"], name)
        for key in ("covered_share", "factor") if entry["member_coverage"] else ():
            _close(entry["member_coverage"][key], other["member_coverage"][key], key)


def test_tier_counts_and_activity_in_sql_equal_pandas(sample_data):
    from roi.engagement.tiers import member_tiers, tier_summary

    dataset, rule = sample_data[0], TierRule()
    tiers = member_tiers(dataset, rule)
    members, by_kind = tier_summary(dataset, rule, rule.cut_points(tiers["activity"]))
    assert members == tiers["tier"].value_counts().to_dict()
    assert sum(members.values()) == len(tiers) > 0
    means = tiers.filter(like="kind:").groupby(tiers["tier"], observed=False).mean()
    assert len(means.columns) > 1
    for name in rule.names:
        expected = {k.split(":", 1)[1]: v for k, v in means.loc[name].items()}
        assert by_kind[name] == pytest.approx(expected, rel=1e-12)


def test_quantile_cut_points_from_the_frequency_table(sample_data):
    from roi.engagement.tiers import tier_cut_points, window_activity

    rng = np.random.default_rng(0)
    values = rng.integers(0, 7, size=101).astype(float)
    unique, counts = np.unique(values, return_counts=True)
    qs = (0.1, 0.25, 0.5, 0.77, 0.9)
    assert quantiles_from_counts(unique, counts, qs) == pytest.approx(
        np.quantile(values, qs).tolist(), rel=1e-14)
    rule = TierRule(quantiles=(0.5, 0.9), names=("low", "mid", "high"))
    counts = window_activity(sample_data[0], rule)["activity"]
    assert tier_cut_points(sample_data[0], rule) == pytest.approx(rule.cut_points(counts),
                                                                  rel=1e-14)


@pytest.fixture(scope="module")
def sampled(sample_data):
    """data/sample over a budget of a quarter of its panel rows."""
    from roi.data.sample import plan_customer_sample, sampled_dataset

    dataset, panel, _ = sample_data
    sample = plan_customer_sample(dataset, max_panel_rows=len(panel) // 4)
    assert sample is not None and sample.customers < sample.population
    rows = sampled_dataset(dataset, sample)
    sampled_panel = rows.customer_month_panel()
    block = community_engagement_block(dataset, panel=sampled_panel,
                                       survival=rows.survival_table(), sample=sample)
    return sample, sampled_panel, block


def test_a_sampled_panel_keeps_all_customers_counts_and_labels_the_sample(both, sampled):
    sample, panel, block = sampled
    full = both[True]
    assert panel["customer_id"].nunique() <= sample.customers
    for name, entry in full["tiers"]["by_tier"].items():
        got = block["tiers"]["by_tier"][name]
        # Members, member-months and the DiD are all customers' (computed in the database)
        assert got["members"] == entry["members"]
        assert got["member_months"] == entry["member_months"]
        _same_effect(entry["lift_per_member_month"], got["lift_per_member_month"], name)
        assert sample.sentence() not in got["lift_per_member_month"]["warnings"]
        # The hazard ratio is the sample's and says so
        if got["hazard_ratio"] is not None:
            assert sample.sentence() in got["hazard_ratio"]["warnings"]
            assert got["hazard_ratio"]["n_treated"] <= entry["members"]
    assert sample.sentence() in block["tiers"]["in_window_hazard_ratio"]["warnings"]
    assert _near(block["acquisition"]["prospects"], full["acquisition"]["prospects"])
    assert block["tiers"]["by_tier"]["lurker"]["mean_window_activity_by_kind"] == \
        pytest.approx(full["tiers"]["by_tier"]["lurker"]["mean_window_activity_by_kind"],
                      rel=1e-12)
    assert block["tiers"]["rule"] == full["tiers"]["rule"]


def test_prospects_from_sql_equal_pandas_over_the_panel(sample_data, both):
    import sqlalchemy as sa

    from roi.data import dialect
    from roi.data.source import fetch_frame

    dataset, panel, _ = sample_data
    members, life = dataset.tables["members"], dataset.tables["life"]
    first = sa.func.min(members.c.joined_at)
    frame = fetch_frame(dataset.engine, sa.select(
        life.c.customer_id, life.c.community,
        dialect.day_diff(life.c.first_seen, first).label("days"))
        .select_from(members.join(life, members.c.customer_id == life.c.customer_id))
        .group_by(life.c.customer_id, life.c.community, life.c.first_seen)
        .having(first < life.c.first_seen))
    revenue = frame["customer_id"].map(panel.groupby("customer_id", observed=True)["revenue"]
                                       .sum()).fillna(0.0)
    got = both[True]["acquisition"]["prospects"]
    assert got["customers"] == len(frame) > 0
    assert got["median_days_to_first_purchase"] == float(frame["days"].astype(float).median())
    assert got["revenue"] == pytest.approx(float(revenue.sum()), rel=1e-9)
    for community, rows in frame.groupby(frame["community"].astype(str)):
        entry = got["by_community"][community]
        assert entry["customers"] == len(rows)
        assert entry["median_days_to_first_purchase"] == float(rows["days"].astype(float)
                                                               .median())


@pytest.fixture(scope="module")
def programme_world():
    """A small world with a programme and referrals (roi.simulate_engagement)."""
    from roi.simulate import simulate_world
    from roi.simulate_engagement import EngagementKnobs

    world = simulate_world(n_customers=2_000, months=18, seed=5, tau=(0.3, 0.3),
                           engagement=EngagementKnobs(program_share=0.3, referral_rate=0.02))
    dataset = _load(world.tables)
    panel, survival = dataset.customer_month_panel(), dataset.survival_table()
    return dataset, panel, {mode: community_engagement_block(
        dataset, panel=panel, survival=survival, in_database=mode) for mode in (False, True)}


def test_programme_dids_from_the_database_equal_the_in_memory_fits(programme_world):
    _, _, blocks = programme_world
    memory = blocks[False]["programs"]["by_program"]
    database = blocks[True]["programs"]["by_program"]
    assert memory and set(memory) == set(database)
    for name, entry in memory.items():
        other = database[name]
        assert (entry["members"], entry["member_months"]) == (other["members"],
                                                              other["member_months"])
        _same_effect(entry["lift_per_member_month"], other["lift_per_member_month"], name)
        assert entry["member_coverage"] is not None
        for key in ("covered_share", "factor"):
            _close(entry["member_coverage"][key], other["member_coverage"][key], key)
        _close(entry["pretrend"]["p_value"], other["pretrend"]["p_value"], "pretrend")


def test_referral_counts_in_sql_equal_pandas_over_the_panel(programme_world):
    dataset, panel, blocks = programme_world
    referrals = blocks[True]["acquisition"]["referrals"]
    customers = dataset.tables["customers"]
    import sqlalchemy as sa

    from roi.data.source import fetch_frame

    referred = fetch_frame(dataset.engine, sa.select(customers.c.customer_id)
                           .where(customers.c.referred_by.is_not(None)))["customer_id"]
    mine = panel[panel["customer_id"].isin(referred)]
    per_customer = mine.groupby("customer_id", observed=True)
    assert referrals["referred_customers"] == len(referred) > 0
    assert referrals["referred_share_of_customers"] == pytest.approx(
        len(referred) / panel["customer_id"].nunique(), rel=1e-12)
    assert referrals["revenue_of_referred"] == pytest.approx(float(mine["revenue"].sum()),
                                                             rel=1e-12)
    assert referrals["churned_share_of_referred"] == pytest.approx(
        float(per_customer["churned"].any().mean()), rel=1e-12)
    assert referrals["extra_referrals_per_member_month"]["estimate"] is not None


@pytest.mark.postgres
def test_postgres_block_equals_duckdb(postgres_url, both):
    """The tier statements (cut points, summaries, DiD sums, coverage) and the prospects'
    run inside PostgreSQL too, with DuckDB's numbers."""
    from tests.conftest import load_world_into_postgres

    dataset = _load(load_world_into_postgres(postgres_url, SAMPLE, "engagement_sample"))
    assert dataset.engine.dialect.name == "postgresql"
    block = community_engagement_block(dataset, panel=dataset.customer_month_panel(),
                                       survival=dataset.survival_table(), in_database=True)
    duck = both[True]
    for name, entry in duck["tiers"]["by_tier"].items():
        got = block["tiers"]["by_tier"][name]
        assert (got["members"], got["member_months"]) == (entry["members"],
                                                          entry["member_months"])
        _same_effect(entry["lift_per_member_month"], got["lift_per_member_month"], name)
        assert got["mean_window_activity_by_kind"] == pytest.approx(
            entry["mean_window_activity_by_kind"], rel=1e-12)
    prospects = duck["acquisition"]["prospects"]
    assert block["acquisition"]["prospects"]["customers"] == prospects["customers"]
    assert block["acquisition"]["prospects"]["revenue"] == pytest.approx(prospects["revenue"],
                                                                         rel=1e-12)


def _near(a, b) -> bool:
    """Equal, floats to 1e-12 relative (sums in the database are exact, pandas' are not)."""
    if isinstance(a, float) and isinstance(b, float):
        return bool(np.isclose(a, b, rtol=1e-12, atol=0.0, equal_nan=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_near(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_near(x, y) for x, y in zip(a, b, strict=True))
    return a == b
