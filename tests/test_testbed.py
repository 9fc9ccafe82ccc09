"""Every estimate a run shows is right on worlds we did not tune to, or is refused with its reason
(issue 13): 5 seeds of the test bed (roi/testbed.py: churn that depends on the hidden trait,
join rates that differ by community), each read three ways (paid orders attributed, no
`channel` column, no `ad_spend`). Bar: mean error under 10% and the interval covering the truth
in at least 4 of 5 seeds, for every estimator shown; the ratio forms refused without
attribution. The table of this run is written to the pytest log (``-rA`` shows it).

Measured (10,000 customers, seeds 1-5, shipped sampler): mean error did +5.8% (range -2.9 to
+16.6), did_multiplicative -0.2%, regression +2.8%, aipw +2.6%, bayesian +2.1% (-1.5 to +7.0),
time-varying Cox +0.7%, Bayesian survival +0.9%; every interval covered the truth 5 of 5. Before
this round: did -7.6%, regression -10.2%, aipw -10.4% (3 of 5 each; members without a pre-join
month were left out of the estimand, roi/revenue_lift/member_coverage.py), bayesian +41% on a
20,000-customer world (cells whose composition drifted under churn), and the ratio forms +72% on
data without a `channel` column (now refused)."""

from __future__ import annotations

import pandas as pd
import pytest

from roi.testbed import VIEWS, run_testbed, summarise

SEEDS = (1, 2, 3, 4, 5)
CUSTOMERS = 10_000
RATIO_FORMS = {"did_multiplicative", "bayesian"}


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    from roi.config import SamplerSettings

    rows = run_testbed(seeds=SEEDS, customers=CUSTOMERS, sampler=SamplerSettings(),
                       progress=False)
    summary = summarise(rows)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(summary.round(1).to_string(index=False))
    return rows


def _shown(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["refused"].isna()]


@pytest.mark.slow
def test_every_shown_estimate_has_mean_error_under_10_percent(table):
    summary = summarise(table)
    shown = summary[summary["shown"] > 0]
    # did, regression, aipw in each view, the two ratio forms attributed, two hazard ratios
    assert len(shown) == 3 * 3 + 2 + 2
    worst = shown.loc[shown["mean_error_pct"].abs().idxmax()]
    assert (shown["mean_error_pct"].abs() < 10).all(), worst.to_dict()


@pytest.mark.slow
def test_every_shown_interval_covers_the_truth_in_4_of_5_seeds(table):
    summary = summarise(table)
    shown = summary[summary["shown"] > 0]
    assert (shown["shown"] == len(SEEDS)).all(), shown[shown["shown"] != len(SEEDS)]
    assert (shown["covered"] >= 4).all(), shown[shown["covered"] < 4]


@pytest.mark.slow
def test_every_shown_estimate_passed_its_gate(table):
    shown = _shown(table)
    assert shown["converged"].all(), shown.loc[~shown["converged"], ["seed", "view", "method"]]


@pytest.mark.slow
def test_ratio_forms_are_refused_exactly_where_attribution_is_missing(table):
    lift = table[table["estimand"] == "revenue_lift"]
    refused = lift[lift["refused"].notna()]
    assert set(refused["method"]) == RATIO_FORMS
    assert set(refused["view"]) == {"unattributed", "no_ad_spend"}
    assert len(refused) == len(SEEDS) * 2 * len(RATIO_FORMS)
    attributed = lift[(lift["view"] == "attributed") & lift["method"].isin(RATIO_FORMS)]
    assert attributed["refused"].isna().all() and len(attributed) == 2 * len(SEEDS)


@pytest.mark.slow
def test_the_additive_estimates_do_not_depend_on_attribution(table):
    """did reads total revenue: the same number in every view (fitted in each)."""
    did = table[table["method"] == "did"].pivot(index="seed", columns="view", values="estimate")
    for view in VIEWS[1:]:
        assert did[view].to_numpy() == pytest.approx(did["attributed"].to_numpy(), rel=1e-9)
