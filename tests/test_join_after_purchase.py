"""Joining after a purchase (issue 17, part 3): the join-month spike is detected and the
join-month-adjusted DiD recovers the effect from the month after joining.

The world: every joiner joins on the day of an order (``join_after_purchase=1``,
``join_purchase_lag_days=0``), so the join month carries an order that caused the joining.
Low-noise knobs (no seasonality, which the additive DiD reads as a trend; gamma shape 8; an
immediate effect, ``ramp_rate=0``; weak selection on the hidden trait, so the cohorts the DiD
can use look like all members) keep 20,000 customers x 12 months under a minute.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from connectors import open_source
from roi.config import RunConfig
from roi.data import load_dataset
from roi.revenue_lift.block import JOIN_ADJUSTED, _join_month_block, _naive_and_did
from roi.revenue_lift.block import choose_revenue_lift as _choose_revenue
from roi.revenue_lift.did import StaggeredDiD
from roi.revenue_lift.join_month import join_month_spike
from roi.simulate import simulate_world

TRIGGERED = dict(join_after_purchase=1.0, join_purchase_lag_days=0, tau=(0.4, 0.4),
                 season_amplitude=0.0, order_value_shape=8.0, orders_per_month=2.0,
                 ramp_rate=0.0, join_engagement_log_odds=0.5)


def _estimates(world):
    dataset = load_dataset(open_source(dict(world.tables)), RunConfig().data)
    return _naive_and_did(dataset.customer_month_panel())


@pytest.fixture(scope="module")
def triggered():
    world = simulate_world(n_customers=20_000, months=12, seed=11, **TRIGGERED)
    return world, _estimates(world)


def test_adjusted_lift_recovers_the_effect_after_joining(triggered):
    world, estimates = triggered
    truth = world.truth["att_from_month_after_joining"]
    block = _join_month_block(estimates)
    assert block["detected"] is True
    assert block["tests"]["month0"]["p_value"] < 1e-6
    # measured: unadjusted 119.2 (+14%), adjusted 98.2 (-6%), truth 104.5
    assert abs(estimates["did"].estimate - truth) / truth > 0.10
    assert abs(block["estimate"] - truth) / truth < 0.10
    assert block["low"] <= truth <= block["high"]
    assert block["unadjusted"] == pytest.approx(estimates["did"].estimate)
    assert set(block) >= {"estimate", "low", "high", "interval", "rule", "detected"}


def test_bottom_line_uses_the_adjusted_estimate_when_detected(triggered):
    _, estimates = triggered
    choice = _choose_revenue(estimates)
    assert choice.method == JOIN_ADJUSTED
    assert "join month" in choice.reason
    adjusted = estimates[JOIN_ADJUSTED]
    assert set(adjusted.by_group) == {"discord", "forum"}
    assert all(np.isfinite(entry["estimate"]) for entry in adjusted.by_group.values())


def test_no_spike_on_a_default_world():
    world = simulate_world(n_customers=3000, months=24, seed=7)
    estimates = _estimates(world)
    block = _join_month_block(estimates)
    assert block["detected"] is False
    assert JOIN_ADJUSTED not in estimates
    assert _choose_revenue(estimates).method != JOIN_ADJUSTED
    assert block["estimate"] is not None and block["low"] < block["estimate"] < block["high"]


def test_join_month_exclusion_averages_from_the_month_after_joining():
    # A hand-made panel: effect 2 from the month after joining, +10 in the join month, +4 in
    # the month before (a purchase that caused the joining): the adjusted DiD gives exactly 2.
    units, periods = np.arange(300), np.arange(1, 9)
    panel = pd.DataFrame([(u, t) for u in units for t in periods], columns=["id", "month"])
    panel["joined"] = np.where(panel["id"] % 3 == 0, 5, 0)
    e = np.where(panel["joined"] > 0, panel["month"] - panel["joined"], -99)
    panel["revenue"] = (10.0 + panel["id"] % 7 + 0.5 * panel["month"] + 2.0 * (e >= 1)
                        + 10.0 * (e == 0) + 4.0 * (e == -1))
    columns = dict(unit="id", time="month", group="joined", outcome="revenue")
    plain = StaggeredDiD(weights="member_months").fit(panel, **columns)
    adjusted = StaggeredDiD(weights="member_months", anticipation=1,
                            exclude_join_month=True).fit(panel, **columns)
    assert adjusted.result_.estimate == pytest.approx(2.0, abs=1e-9)
    assert adjusted.result_.n_obs == 100 * 3   # months 6-8 of the 100 joiners
    # unadjusted: base month 4 is 4 too high and month 5 has +10: (10 + 3 * 2) / 4 - 4 = 0
    assert plain.result_.estimate == pytest.approx(0.0, abs=1e-9)
    spike = join_month_spike(plain.dynamic_, plain.dynamic_vcov_.fillna(0.0) + np.eye(
        len(plain.dynamic_vcov_)) * 1e-6)
    assert spike["detected"] and spike["month0"]["difference"] == pytest.approx(6.0 - (-2.0))
