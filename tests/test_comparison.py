"""The comparison rows against hand-computed numbers on small synthetic results dicts."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from roi.comparison import (
    COMBINED_LABEL,
    build_comparison,
    combine_independent,
    comparison_table,
    find_disagreements,
)

Z95, Z94 = 1.959963984540054, 1.880793608151251


def entry(estimate: float, low: float, high: float, interval: str = "95% CI") -> dict:
    return {"estimate": estimate, "low": low, "high": high, "interval": interval}


def results_dict() -> dict:
    """Three channels (zeta with the model's own incremental revenue), two communities."""
    return {
        "data": {"communities": ["forum", "discord"],
                 "community_costs": {"discord": 2000.0, "forum": 1000.0}},
        "community_revenue_lift": {
            "preferred": "did",
            "member_months_by_community": {"forum": 100, "discord": 40},
            "by_community": {"forum": entry(30.0, 10.0, 50.0),
                             "discord": entry(50.0, 20.0, 80.0)}},
        "community_retention_lift": {"retention_revenue": {"source": "cox_time_varying",
                                                           "by_community": {
            "forum": {"revenue": entry(700.0, 400.0, 1000.0)},
            "discord": {"revenue": entry(1000.0, 800.0, 1300.0)}}}},
        "paid_media": {
            "method": "mmm", "converged": True,
            "channels": {
                "zeta": {"spend": 1000.0, "roas": entry(2.0, 1.5, 2.6, "94% HDI"),
                         "incremental_revenue": entry(2010.0, 1490.0, 2590.0, "94% HDI")},
                "alpha": {"spend": 400.0, "roas": entry(1.5, 1.0, 2.5, "94% HDI"),
                          "marginal_roas": entry(0.8, 0.5, 1.1, "94% HDI")}},
            "communities": {"forum": {"cost": 1000.0,
                                      "incremental_revenue": entry(9000.0, 8000.0, 10000.0,
                                                                   "94% HDI")},
                            "discord": {"cost": 2000.0,
                                        "incremental_revenue": entry(3000.0, 2000.0, 4000.0,
                                                                     "94% HDI")}}},
    }


def rows_by_name(results: dict) -> dict[str, dict]:
    return {row["name"]: row for row in build_comparison(results)}


def test_paid_rows_use_the_models_revenue_or_roas_times_spend():
    rows = rows_by_name(results_dict())
    assert [r["name"] for r in build_comparison(results_dict())] == [
        "zeta", "alpha", "forum", "discord"]
    zeta, alpha = rows["zeta"], rows["alpha"]
    assert (zeta["kind"], zeta["cost"], zeta["method"]) == ("paid", 1000.0, "mmm")
    assert zeta["incremental_revenue"] == entry(2010.0, 1490.0, 2590.0, "94% HDI")
    assert zeta["revenue_per_dollar"] == entry(2.0, 1.5, 2.6, "94% HDI")
    # No incremental_revenue in the block: ROAS x spend, every bound scaled by 400.
    assert alpha["incremental_revenue"] == entry(600.0, 400.0, 1000.0, "94% HDI")
    assert alpha["marginal_revenue_per_dollar"]["estimate"] == 0.8
    assert zeta["notes"] == alpha["notes"] == []


def test_community_rows_add_lift_on_member_months_and_retention_revenue():
    forum = rows_by_name(results_dict())["forum"]
    assert forum["cost"] == 1000.0 and forum["kind"] == "community"
    assert forum["parts"]["lift_revenue"] == entry(3000.0, 1000.0, 5000.0)   # 30 x 100 months
    assert forum["parts"]["retention_revenue"] == entry(700.0, 400.0, 1000.0)
    revenue = forum["incremental_revenue"]
    # Both parts are 95% CIs: half-widths add in quadrature, each side on its own.
    below, above = math.hypot(2000.0, 300.0), math.hypot(2000.0, 300.0)
    assert revenue["estimate"] == 3700.0
    assert revenue["low"] == pytest.approx(3700.0 - below, rel=1e-12)   # 1677.62
    assert revenue["high"] == pytest.approx(3700.0 + above, rel=1e-12)  # 5722.38
    assert revenue["interval"] == COMBINED_LABEL
    assert forum["revenue_per_dollar"]["estimate"] == pytest.approx(3.7)
    assert forum["revenue_per_dollar"]["low"] == pytest.approx((3700.0 - below) / 1000.0)
    discord = rows_by_name(results_dict())["discord"]
    # 50 x 40 = 2000 (800 to 3200) plus 1000 (800 to 1300): asymmetric, sides separate.
    assert discord["incremental_revenue"]["low"] == pytest.approx(3000 - math.hypot(1200, 200))
    assert discord["incremental_revenue"]["high"] == pytest.approx(3000 + math.hypot(1200, 300))
    assert discord["revenue_per_dollar"]["estimate"] == pytest.approx(1.5)


def test_mixed_interval_levels_combine_like_independent_normals_by_simulation():
    a, b = entry(100.0, 60.0, 140.0, "94% HDI"), entry(50.0, 20.0, 80.0, "95% CI")
    combined = combine_independent([a, b])
    sd = math.hypot(40.0 / Z94, 30.0 / Z95)                         # 26.42
    assert combined["high"] - combined["estimate"] == pytest.approx(Z95 * sd, rel=1e-9)
    rng = np.random.default_rng(1)
    total = rng.normal(100.0, 40.0 / Z94, 2_000_000) + rng.normal(50.0, 30.0 / Z95, 2_000_000)
    low, high = np.quantile(total, [0.025, 0.975])
    assert combined["low"] == pytest.approx(low, rel=2e-3)           # 98.2
    assert combined["high"] == pytest.approx(high, rel=2e-3)         # 201.8


def test_without_a_converged_model_paid_rows_are_null_and_say_why():
    results = results_dict()
    results["paid_media"]["converged"] = False
    for row in build_comparison(results)[:2]:
        assert row["incremental_revenue"] is None and row["revenue_per_dollar"] is None
        assert "did not converge" in row["notes"][0]
    spend_only = {"paid_media": {"channels": {"tv": {"spend": 5.0, "roas": None,
                                                     "marginal_roas": None}}}}
    results = results_dict()
    results["paid_media"]["channels"]["alpha"]["roas"]["converged"] = False
    assert rows_by_name(results)["alpha"]["revenue_per_dollar"] is None
    results["paid_media"]["channels"]["zeta"]["identified"] = False
    assert rows_by_name(results)["zeta"]["notes"][0].startswith("not identified")
    (row,) = build_comparison(spend_only)
    assert row["cost"] == 5.0 and row["revenue_per_dollar"] is None
    assert row["notes"] == ["no ROAS: the media-mix model was not fitted, so this channel's "
                            "return is not estimated"]


def test_missing_parts_give_nulls_and_notes_never_a_partial_number():
    results = results_dict()
    results["community_revenue_lift"]["preferred"] = None
    rows = rows_by_name(results)
    assert rows["forum"]["incremental_revenue"] is None
    assert "no causal revenue-lift estimate" in rows["forum"]["notes"][0]
    results = results_dict()
    del results["community_retention_lift"]["retention_revenue"]["by_community"]["discord"]
    rows = rows_by_name(results)
    assert rows["discord"]["incremental_revenue"] is None
    assert rows["discord"]["notes"] == ["no retention revenue for discord: incremental revenue "
                                        "not estimated"]
    assert rows["forum"]["incremental_revenue"]["estimate"] == 3700.0
    results = results_dict()
    results["data"]["community_costs"]["forum"] = 0.0
    forum = rows_by_name(results)["forum"]
    assert forum["revenue_per_dollar"] is None and forum["incremental_revenue"] is not None
    assert "no cost recorded" in forum["notes"][0]


def test_disjoint_mmm_and_customer_level_intervals_are_flagged():
    results = results_dict()
    # forum: MMM 8000 to 10000 against 1678 to 5722 -> disjoint; discord 2000 to 4000 overlaps.
    (found,) = find_disagreements(results)
    assert found["name"] == "forum" and found["mmm"]["estimate"] == 9000.0
    assert found["customer_level"]["estimate"] == 3700.0
    rows = rows_by_name(results)
    assert rows["forum"]["notes"] == [found["message"]] and "do not overlap" in found["message"]
    assert rows["discord"]["notes"] == []
    # Touching intervals overlap: no note.
    touching = copy.deepcopy(results)
    high = rows["forum"]["incremental_revenue"]["high"]
    touching["paid_media"]["communities"]["forum"]["incremental_revenue"]["low"] = high
    assert find_disagreements(touching) == []
    below = copy.deepcopy(results)
    below["paid_media"]["communities"]["discord"]["incremental_revenue"].update(
        estimate=200.0, low=100.0, high=300.0)
    assert {d["name"] for d in find_disagreements(below)} == {"forum", "discord"}
    below["paid_media"]["converged"] = False
    assert find_disagreements(below) == []


def test_rows_are_strict_json_and_the_table_matches_them():
    results = results_dict()
    rows = build_comparison(results)
    assert json.loads(json.dumps(rows, allow_nan=False)) == rows
    table = comparison_table(results)
    assert list(table["name"]) == ["zeta", "alpha", "forum", "discord"]
    assert table.set_index("name").loc["forum", "incremental_revenue"] == 3700.0
    assert table.set_index("name").loc["alpha", "revenue_per_dollar"] == 1.5
