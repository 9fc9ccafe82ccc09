"""The preferred revenue-lift estimate is chosen by evidence (gates and pre-trend tests) and says
why; the ratio forms are refused, visibly, when paid-media orders cannot be told apart."""

from __future__ import annotations

import math

import pytest

from roi.preference import choose_retention, choose_revenue
from roi.results import Diagnostics, EffectResult, refused_effect


def _lift(method: str, estimate: float = 40.0, *, p_value: float | None = None,
          converged: bool = True) -> EffectResult:
    checks = {"pretrend_event": {"p_value": p_value}} if method.startswith("did") else {}
    return EffectResult(method, "community_revenue_lift", estimate, estimate - 10,
                        estimate + 10, "95% CI",
                        diagnostics=Diagnostics(converged=converged, checks=checks))


def _refused(method: str) -> EffectResult:
    return refused_effect(method=method, estimand="community_revenue_lift",
                          reason="no attribution", interval="95% CI")


def test_did_is_preferred_when_its_pretrend_test_passes():
    choice = choose_revenue({"did": _lift("did", p_value=0.40),
                             "did_multiplicative": _lift("did_multiplicative", p_value=0.9),
                             "aipw": _lift("aipw"), "bayesian": _lift("bayesian")})
    assert choice.method == "did"
    assert "p = 0.4" in choice.reason and "stable trait" in choice.reason


def test_ratio_form_is_preferred_when_only_the_additive_pretrend_test_rejects():
    choice = choose_revenue({"did": _lift("did", p_value=0.018),
                             "did_multiplicative": _lift("did_multiplicative", p_value=0.31),
                             "aipw": _lift("aipw")})
    assert choice.method == "did_multiplicative"
    assert "p = 0.018" in choice.reason and "p = 0.31" in choice.reason


def test_a_rejected_pretrend_is_kept_with_its_caveat_when_nothing_better_exists():
    choice = choose_revenue({"did": _lift("did", p_value=0.01),
                             "did_multiplicative": _refused("did_multiplicative"),
                             "bayesian": _refused("bayesian"), "aipw": _lift("aipw")})
    assert choice.method == "did"
    assert "rejects (p = 0.01)" in choice.reason and "caution" in choice.reason


@pytest.mark.parametrize(("failed", "expected"), [
    ({"did": _lift("did", converged=False)}, "aipw"),
    ({"did": _refused("did"), "aipw": _lift("aipw", math.nan)}, "regression"),
    ({"did": _refused("did"), "aipw": _refused("aipw"), "regression": _refused("regression")},
     "bayesian"),
])
def test_without_a_usable_did_the_covariate_estimators_come_next(failed, expected):
    estimates = {"did_multiplicative": _refused("did_multiplicative"), "aipw": _lift("aipw"),
                 "regression": _lift("regression"), "bayesian": _lift("bayesian"), **failed}
    choice = choose_revenue(estimates)
    assert choice.method == expected
    assert choice.reason.startswith(f"{expected} passed its gate")


def test_nothing_usable_gives_no_preferred_and_says_so():
    choice = choose_revenue({"naive": _lift("naive"), "did": _refused("did")})
    assert choice.method is None and "naive" in choice.reason


def test_retention_prefers_the_time_varying_cox_then_the_bayesian_model():
    def hr(method, converged=True):
        return EffectResult(method, "community_retention_lift", 0.7, 0.6, 0.8, "95% CI",
                            diagnostics=Diagnostics(converged=converged),
                            value_name="hazard_ratio")
    assert choose_retention({"cox_time_varying": hr("cox_time_varying"),
                             "bayesian": hr("bayesian")}).method == "cox_time_varying"
    assert choose_retention({"cox_time_varying": hr("cox_time_varying", False),
                             "bayesian": hr("bayesian")}).method == "bayesian"


@pytest.fixture(scope="module")
def unattributed_world():
    from roi.simulate import simulate_world

    return simulate_world(n_customers=1500, seed=5)


@pytest.mark.parametrize("view", ["unattributed", "no_ad_spend"])
def test_ratio_forms_are_refused_without_attribution_and_the_reason_reaches_the_json(
        unattributed_world, view):
    from connectors import open_source
    from roi.data import load_dataset
    from roi.data.attribution import revenue_attribution
    from roi.revenue_lift.block import revenue_lift_estimates
    from roi.testbed import world_views

    tables = world_views(unattributed_world, [view])[view]
    dataset = load_dataset(open_source(tables))
    attribution = revenue_attribution(dataset)
    # A sampler is given, but a refused Bayesian model is never fitted (no compile, no draws)
    from roi.config import SamplerSettings

    estimates = revenue_lift_estimates(dataset.customer_month_panel(),
                                       covariates=dataset.covariates, sampler=SamplerSettings(),
                                       attribution=attribution)
    for method in ("did_multiplicative", "bayesian"):
        entry = estimates[method].to_contract()
        assert entry["estimate"] is None and entry["converged"] is False
        assert "bias" in entry["refused"] and "upwards" in entry["refused"]
    assert ("no `channel` column" in attribution.reason if view == "unattributed"
            else "no ad_spend table" in attribution.reason)
    for method in ("did", "regression", "aipw"):
        assert estimates[method].refused is None
        assert math.isfinite(estimates[method].estimate)


def test_attributed_orders_let_the_ratio_forms_be_fitted(unattributed_world):
    from connectors import open_source
    from roi.data import load_dataset
    from roi.data.attribution import revenue_attribution

    attribution = revenue_attribution(load_dataset(open_source(unattributed_world.tables)))
    assert attribution.reason is None
    paid = unattributed_world.tables["orders"]["channel"].isin(
        unattributed_world.tables["ad_spend"]["channel"].unique())
    assert attribution.attributed_orders == int(paid.sum()) > 0
    assert attribution.spend == pytest.approx(
        float(unattributed_world.tables["ad_spend"]["spend"].sum()), rel=1e-9)


@pytest.mark.parametrize("p_value, warned", [(0.014, True), (0.4, False), (None, False)])
def test_covariate_estimators_carry_the_additive_pretrend_rejection(p_value, warned):
    """Regression adjustment and AIPW share the additive DiD's parallel trends in levels: when
    its pre-trend test rejects, the caveat stands beside their numbers too (not the ratio
    form's, whose own test decides)."""
    from roi.revenue_lift.block import level_trend_caveat

    estimates = {"did": _lift("did", p_value=p_value), "regression": _lift("regression"),
                 "aipw": _lift("aipw"), "did_multiplicative": _lift("did_multiplicative",
                                                                    p_value=0.3)}
    level_trend_caveat(estimates)
    for name in ("regression", "aipw"):
        words = " ".join(estimates[name].diagnostics.warnings)
        assert ("pre-trend test rejects (p = 0.014)" in words) is warned
    assert not estimates["did_multiplicative"].diagnostics.warnings
