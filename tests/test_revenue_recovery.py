"""Community revenue lift recovered on simulated worlds with known truth (``roi.simulate``).

Worlds go through the real data path (``open_source`` on the simulator's DataFrames ->
``load_dataset`` -> ``customer_month_panel``), then the preferred estimator,
:class:`roi.revenue_lift.did_multiplicative.MultiplicativeDiD` (see its module: revenue in the world
is multiplicative, and 40% of member-months belong to members who joined in their first month,
whom only a proportional lift can speak for), is fitted as ``roi.run`` does: all active
customer-months, and per community that community's members against never-members.

Organic revenue. The simulator gives paid-media orders (``channel`` = a paid channel) to random
customers: the same expected amount per customer-day whatever their level, shrinking per
customer as the customer base grows, and untouched by membership. That additive part breaks
parallel trends in ratios: on all revenue the ratio DiD overstated the lift by 34% on average
over 20 default worlds of 3,000 customers (median 38%), against -4% (median 0%) without paid
media. The lift is therefore estimated on organic orders (channel "direct"), which is where
membership acts; the truth is the same. ``roi.data.panel`` should offer that column (see the
issue 3 report); until then the tests drop paid-channel orders before loading.

Why "strong" worlds for the 10% targets: in the default world a single customer-month of
revenue has a coefficient of variation near 1.1 (about 1.2 orders a month, gamma values of
shape 2), and the 95% interval is about +-45% of the ATT at 20,000 customers (measured:
35.3 [19.4, 51.1] against a truth of 35.7). The strong world has 6 orders a month of shape 6
and lifts of 50% / 30% at full strength; everything else is the default world (self-selection
on engagement, seasonality, paid media, churn, entry, messy member e-mails, 40% of
member-months without a month before joining). The coverage study uses default worlds.

CI budget (one core): the three 10,000-customer worlds, the 20,000-customer world and the 50
coverage worlds together took 58 s of wall time and 43 s of CPU (coverage 33 s, the 20,000
world 6 s, each 10,000 world 4-5.5 s; peak RSS 1.15 GB) on the shared 2-core machine at load 4;
the budget is 150 s.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from connectors import open_source
from roi.data import load_dataset
from roi.results import EffectResult
from roi.revenue_lift.did_multiplicative import MultiplicativeDiD
from roi.revenue_lift.naive_revenue import NaiveRevenueGap
from roi.simulate import WorldParams, simulate_world

COLUMNS = {"unit": "customer_id", "time": "month_index", "group": "join_month_index",
           "outcome": "revenue"}
STRONG = WorldParams(orders_per_month=6.0, order_value_shape=6.0, tau=(0.50, 0.30))
TABLES = ("customers", "orders", "members")  # all that the revenue lift reads


def _active_panel(n_customers: int, *, seed: int, params: WorldParams | None = None,
                  ) -> tuple[pd.DataFrame, dict]:
    world = simulate_world(n_customers=n_customers, seed=seed, params=params)
    tables = {name: world.tables[name] for name in TABLES}
    tables["orders"] = tables["orders"][tables["orders"]["channel"] == "direct"]  # organic
    dataset = load_dataset(open_source(tables))
    panel = dataset.customer_month_panel()
    return panel[panel["active"]], world.truth


def _preferred(active: pd.DataFrame) -> tuple[EffectResult, dict[str, EffectResult]]:
    """Overall and per-community fits, as ``roi.revenue_lift.block.revenue_lift_estimates`` makes them."""
    overall = MultiplicativeDiD().fit(active, **COLUMNS).result_
    by_community = {}
    for community in sorted(active["community"].dropna().unique()):
        rows = active[active["community"].isna() | (active["community"] == community)]
        by_community[str(community)] = MultiplicativeDiD().fit(rows, **COLUMNS).result_
    return overall, by_community


def _check_recovery(active: pd.DataFrame, truth: dict) -> None:
    overall, by_community = _preferred(active)
    att = truth["att_per_member_month"]
    assert abs(overall.estimate - att) < 0.10 * att, (overall.estimate, att)
    assert overall.low <= att <= overall.high
    assert overall.diagnostics.converged
    for community, result in by_community.items():
        expected = truth["att_by_community"][community]
        assert abs(result.estimate - expected) < 0.20 * expected, (community, result, expected)
    naive = NaiveRevenueGap().fit(active).result_.estimate
    assert naive - att > 0.5 * att


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_preferred_estimator_recovers_the_lift_and_naive_does_not(seed: int) -> None:
    active, truth = _active_panel(10_000, seed=seed, params=STRONG)
    _check_recovery(active, truth)


@pytest.mark.slow
def test_recovery_on_a_20000_customer_world() -> None:
    active, truth = _active_panel(20_000, seed=7, params=STRONG)
    _check_recovery(active, truth)


COVERAGE_WORLDS = 50


@pytest.mark.slow
def test_interval_coverage_over_small_default_worlds() -> None:
    """The 95% CI of the preferred estimator holds the truth in 90-99% of 50 default worlds of
    1,000 customers (measured 47 of 50, 94%; with 600 customers 45 of 50: heavy-tailed revenue
    makes the delta-method SE a little small in small worlds, rms z-score 1.06-1.08)."""
    covered = []
    for seed in range(COVERAGE_WORLDS):
        active, truth = _active_panel(1000, seed=1000 + seed)
        result = MultiplicativeDiD().fit(active, **COLUMNS).result_
        covered.append(result.low <= truth["att_per_member_month"] <= result.high)
    share = float(np.mean(covered))
    assert 0.90 <= share <= 0.99, share
