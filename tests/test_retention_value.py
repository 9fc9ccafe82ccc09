"""Retention revenue (roi.retention.retention_value) against the simulated world's truth.

Tolerance: 25% of the true extra customer-months and revenue per community, and the truth inside
the interval. At 20,000 customers the hazard-ratio uncertainty alone gives a relative standard
error of about 9% on extra months (95% CI about +-18%), so 25% is under 3 standard errors and
still catches a wrong estimand (valuing at unweighted member-month revenue is +45%, leaving
paid-media orders in is +20%, ignoring the window end of churned members changes months by <1%).
The lift ATT passed is the world's true one (the run passes its estimate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from roi.retention.retention_value import (
    extra_days,
    member_values,
    retention_revenue,
    window_end_days,
)
from tests.test_bayes_survival import COVARIATES, fitted

TOLERANCE = 0.25


@pytest.fixture(scope="module")
def world():
    return fitted()


@pytest.fixture(scope="module")
def inputs(world):
    sim, table = world["sim"], world["table"]
    orders = sim.tables["orders"]
    media = orders.loc[orders["channel"] != "direct", "revenue"].sum()
    customer_days = (table["stop"] - table["start"]).sum()
    first_seen = sim.tables["customers"].set_index("customer_id")["first_seen"]
    return {"lift_att": sim.truth["att_by_community"],
            "shared_revenue_per_month": float(media / customer_days * 30.4375),
            "end_day": window_end_days(first_seen, window_end=world["ds"].end)}


def _check_against_truth(result: dict, truth: dict) -> None:
    months = truth["retention_extra_customer_months_by_community"]
    revenue = truth["retention_revenue_by_community"]
    assert sorted(result["by_community"]) == sorted(months)
    for name, entry in result["by_community"].items():
        for key, true in (("extra_customer_months", months[name]), ("revenue", revenue[name])):
            got = entry[key]
            assert abs(got["estimate"] / true - 1) < TOLERANCE, (name, key, got, true)
            assert got["low"] < true < got["high"], (name, key, got, true)
    total = result["total"]["revenue"]
    assert total["low"] < sum(revenue.values()) < total["high"]


@pytest.mark.parametrize("source", ["cox", "bayes"])
def test_retention_revenue_matches_truth(world, inputs, source):
    result = retention_revenue(world["table"], world["panel"], model=world[source],
                               covariates=COVARIATES, n_draws=200, **inputs)
    _check_against_truth(result, world["sim"].truth)
    expected = "95% CI" if source == "cox" else "94% HDI"
    assert result["interval"] == expected
    assert result["by_community"]["discord"]["revenue"]["interval"] == expected


def test_window_end_from_the_panel_is_close_to_the_exact_one(world, inputs):
    common = {"model": world["cox"], "covariates": COVARIATES, "n_draws": 20,
              "lift_att": inputs["lift_att"]}
    exact = retention_revenue(world["table"], world["panel"], end_day=inputs["end_day"],
                              **common)
    approx = retention_revenue(world["table"], world["panel"], **common)
    for name, entry in exact["by_community"].items():
        a = approx["by_community"][name]["extra_customer_months"]["estimate"]
        assert abs(a / entry["extra_customer_months"]["estimate"] - 1) < 0.02


def test_extra_days_matches_numerical_integration():
    bounds = np.array([0.0, 30.0, 200.0])
    rates = np.array([0.004, 0.002, 0.001])
    join, end, hr = 20.0, 500.0, 0.6

    def survival(t: float, scale: float) -> float:
        grid = np.append(bounds, np.inf)
        used = np.clip(np.minimum(t, grid[1:]) - np.maximum(join, grid[:-1]), 0, None)
        return float(np.exp(-scale * rates @ used))

    points = [30.0, 200.0]
    want = (integrate.quad(survival, join, end, args=(hr,), points=points)[0]
            - integrate.quad(survival, join, end, args=(1.0,), points=points)[0])
    got = extra_days(np.array([join]), np.array([end]), bounds=bounds,
                     log_rate=np.log(rates)[None, :], log_hr=np.log([hr]))
    assert got[0] == pytest.approx(want, rel=1e-9)


def test_member_values_fall_back_to_the_community_mean():
    panel = pd.DataFrame({"customer_id": [1, 1, 2, 3], "revenue": [10.0, 20.0, 30.0, 99.0],
                          "member": [True, True, True, True],
                          "active": [True, True, True, False], "community": ["a"] * 4})
    values = member_values(panel, lift_att=5.0)
    assert values["value"].tolist() == [10.0, 25.0, 15.0]
    assert values["months"].tolist() == [2.0, 1.0, 0.0]


def test_hazard_ratio_above_one_gives_finite_negative_retention_revenue(world, inputs):
    """A community that raises churn (fitted hazard ratio > 1, as on a world where membership
    does nothing and the estimate lands above 1) loses months: the money must be negative and
    finite, valued like gained months (weights |extra days|), never NaN."""
    from roi.retention.retention_value import _community_values, member_rows

    members = member_rows(world["table"], panel=world["panel"], end_day=None)
    names = sorted(members["community"].unique())
    group = pd.Categorical(members["community"], categories=names).codes
    gained = np.linspace(1.0, 30.0, len(members))
    common = {"group": group, "names": names, "lift_att": inputs["lift_att"],
              "id_col": "customer_id", "community": "community"}
    lost = _community_values(world["panel"], members, extra=-gained, **common)
    won = _community_values(world["panel"], members, extra=gained, **common)
    assert np.isfinite(lost["value"]).all() and np.isfinite(lost["se"]).all()
    pd.testing.assert_frame_equal(lost, won)
    values = member_values(world["panel"], lift_att=inputs["lift_att"])["value"]
    first = group == 0
    want = np.average(values.reindex(members.index[first]).to_numpy(), weights=gained[first])
    assert lost["value"].iloc[0] == pytest.approx(want, rel=1e-9)
