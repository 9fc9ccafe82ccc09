"""Models that cannot be trusted say so instead of printing a number.

Estimators (fast, one by one):

* propensity logit with perfect separation (IPW/AIPW): the cohorts are listed in
  ``checks["propensity_separation"]``, a warning explains, the estimate is not converged;
* no comparison left at all (IPW/AIPW/regression): a refused result, not an exception;
* zero churn events (naive Cox, time-varying Cox, Bayesian survival, retention money): refused
  results with null numbers and the reason;
* a community with one member (Cox per community): its entry is refused, the pooled hazard
  ratio keeps its own status, everything is strict JSON.

Through ``run_models`` and ``results.json`` (the run, DiD and MMM belong to other modules):

* a world without churn events and with a channel whose spend never varies: the run finishes,
  every hazard model is refused with its reason, and the MMM flags the channel;
* a world with a one-member community: the run must finish and flag that community's
  revenue lift (DiD per community) and hazard ratio;
* a world where everyone is a member from their first month (no never-treated and no
  not-yet-treated controls): DiD must refuse in its diagnostics.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from connectors import open_source
from roi.config import RunConfig, SamplerSettings
from roi.data import load_dataset
from roi.results import _jsonable
from roi.retention.bayes_survival import BayesianPiecewiseSurvival
from roi.retention.cox_naive import NaiveCox
from roi.retention.cox_time_varying import CoxTimeVarying
from roi.retention.retention_value import retention_revenue
from roi.revenue_lift.regression_adjustment import RegressionAdjustment
from roi.revenue_lift.weighting import AIPW, IPW
from roi.simulate import simulate_world

COLUMNS = {"unit": "id", "time": "t", "group": "g", "outcome": "y"}


def _strict_json(value) -> dict:
    return json.loads(json.dumps(_jsonable(value), allow_nan=False))


def separated_panel(n: int = 400, seed: int = 2) -> pd.DataFrame:
    """Two periods; a covariate that decides membership exactly (x > 0 joins in period 2)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x[x > 0] += 0.5
    g = np.where(x > 0, 2.0, np.nan)
    rows = pd.DataFrame({"id": np.repeat(np.arange(n), 3), "t": np.tile([0, 1, 2], n),
                         "g": np.repeat(g, 3), "x": np.repeat(x, 3)})
    rows["y"] = 10 + 3 * rows["x"] + 4.0 * (rows["t"] >= rows["g"]) + rng.normal(size=3 * n)
    return rows


@pytest.mark.parametrize("estimator", [IPW, AIPW])
def test_perfect_separation_in_the_propensity_model_is_refused(estimator):
    data = separated_panel()
    fit = estimator(lookback=1, min_history=1).fit(data, covariates=["x"], **COLUMNS)
    diagnostics = fit.result_.diagnostics
    members = int(data.loc[data["t"] == 0, "g"].notna().sum())
    assert diagnostics.checks["propensity_separation"] == {"2": members}
    assert not diagnostics.converged
    assert any("separation" in w for w in diagnostics.warnings)
    assert any(w.startswith("Not trusted") for w in diagnostics.warnings)
    _strict_json(diagnostics.to_contract())


def test_overlapping_propensities_are_not_flagged():
    data = separated_panel()
    rng = np.random.default_rng(3)
    data["x"] = data["x"] + np.repeat(rng.normal(scale=3.0, size=len(data) // 3), 3)
    fit = AIPW(lookback=1, min_history=1).fit(data, covariates=["x"], **COLUMNS)
    assert fit.result_.diagnostics.checks["propensity_separation"] == {}
    assert not any("separation" in w for w in fit.result_.diagnostics.warnings)


@pytest.mark.parametrize("estimator", [IPW, AIPW, RegressionAdjustment])
def test_no_comparison_at_all_is_a_refused_result_not_an_exception(estimator):
    data = separated_panel()
    data["g"] = 2.0  # everyone joins: no never-members to compare with
    result = estimator(lookback=1, min_history=1).fit(data, covariates=["x"], **COLUMNS).result_
    assert not result.diagnostics.converged and np.isnan(result.estimate)
    assert "no cohort has both treated units and controls" in result.diagnostics.checks["refused"]
    contract = _strict_json(result.to_contract())
    assert contract["estimate"] is None and contract["converged"] is False


@pytest.fixture(scope="module")
def no_churn_survival() -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    tables = {k: v.copy() for k, v in simulate_world(n_customers=300, seed=4).tables.items()}
    tables["customers"]["churned_at"] = ""
    dataset = load_dataset(open_source(tables))
    return dataset.survival_table(), dataset.customer_month_panel(), list(dataset.covariates)


@pytest.mark.parametrize("model", [NaiveCox(), CoxTimeVarying(),
                                   BayesianPiecewiseSurvival(draws=20, tune=20, chains=1)],
                         ids=["naive_cox", "cox_time_varying", "bayes_piecewise"])
def test_zero_churn_events_refuse_every_hazard_model(no_churn_survival, model):
    survival, panel, covariates = no_churn_survival
    assert survival["event"].sum() == 0
    kwargs = {} if isinstance(model, NaiveCox) else {"covariates": covariates}
    result = model.fit(survival, community="community", **kwargs).result_
    assert not result.diagnostics.converged
    assert np.isnan(result.estimate) and np.isnan(result.low) and np.isnan(result.high)
    assert "no churn events" in result.diagnostics.checks["refused"]
    assert any("not estimated: no churn events" in w for w in result.diagnostics.warnings)
    contract = _strict_json(result.to_contract())
    assert contract == {"hazard_ratio": None, "low": None, "high": None,
                        "interval": result.interval, "converged": False,
                        "refused": result.diagnostics.checks["refused"]}


def test_zero_churn_events_refuse_the_retention_money(no_churn_survival):
    survival, panel, covariates = no_churn_survival
    cox = CoxTimeVarying().fit(survival, covariates=covariates, community="community")
    money = _strict_json(retention_revenue(survival, panel, model=cox, covariates=covariates))
    assert money["refused"].startswith("retention revenue not estimated: no churn events")
    assert money["total"]["revenue"]["estimate"] is None and money["by_community"] == {}


@pytest.fixture(scope="module")
def one_member_community() -> tuple[pd.DataFrame, list[str]]:
    tables = {k: v.copy() for k, v in simulate_world(n_customers=250, seed=3).tables.items()}
    members = tables["members"]
    linked = members.index[members["customer_id"].fillna("") != ""]
    members.loc[linked[0], "community"] = "tiny"
    dataset = load_dataset(open_source(tables))
    return dataset.survival_table(), list(dataset.covariates)


@pytest.mark.parametrize("model", [CoxTimeVarying(), NaiveCox()], ids=["tv", "naive"])
def test_a_one_member_community_is_refused_and_the_pooled_ratio_kept(one_member_community,
                                                                     model):
    survival, covariates = one_member_community
    kwargs = {} if isinstance(model, NaiveCox) else {"covariates": covariates}
    result = model.fit(survival, community="community", **kwargs).result_
    tiny = result.by_group["tiny"]
    assert tiny["n_treated"] == 1
    assert tiny["hazard_ratio"] is None and tiny["low"] is None and tiny["high"] is None
    assert tiny["refused"].startswith("not estimated:")
    assert any("no hazard ratio for tiny" in w for w in result.diagnostics.warnings)
    others = [v for k, v in result.by_group.items() if k != "tiny"]
    assert others and all(v["hazard_ratio"] is not None and v["low"] > 0 for v in others)
    assert np.isfinite(result.estimate) and 0 < result.low < result.estimate < result.high
    _strict_json({"by_group": result.by_group, "estimate": result.to_contract()})


# --------------------------------------------------------------------------- whole runs

SMALL = RunConfig(seed=11, sampler=SamplerSettings(draws=100, tune=100, chains=2))


def _run(tables: dict[str, pd.DataFrame], out) -> dict:
    from roi.run import run_models

    run_models(tables, out=out, config=SMALL, progress=False, pdf=False)
    return json.loads((out / "results.json").read_text())


@pytest.fixture(scope="module")
def no_churn_run(tmp_path_factory) -> tuple[dict, str]:
    """A world whose customers never churn (``churned_at`` empty, rule 'column') and one of
    whose channels has the same spend every day; results and that channel's name."""
    tables = {k: v.copy() for k, v in simulate_world(n_customers=300, seed=6).tables.items()}
    tables["customers"]["churned_at"] = ""
    spend = tables["ad_spend"]
    flat = str(spend["channel"].iloc[0])
    spend.loc[spend["channel"] == flat, "spend"] = 100.0
    return _run(tables, tmp_path_factory.mktemp("no-churn")), flat


@pytest.mark.slow
def test_run_without_churn_events_refuses_retention_in_results_json(no_churn_run):
    results, _ = no_churn_run
    retention = results["community_retention_lift"]
    assert retention["preferred"] is None
    assert set(retention["estimates"]) >= {"naive", "cox_time_varying", "bayesian"}
    for name, entry in retention["estimates"].items():
        assert entry["hazard_ratio"] is None and entry.get("converged") is False, name
        diagnostics = results["diagnostics"][f"retention_{name}"]
        assert diagnostics["converged"] is False
        assert any("no churn events" in w for w in diagnostics["warnings"]), name
    assert retention["retention_revenue"]["refused"].startswith("retention revenue not")
    # The revenue side is unaffected.
    assert results["community_revenue_lift"]["estimates"]["naive"]["estimate"] is not None


@pytest.fixture(scope="module")
def degenerate_run(tmp_path_factory) -> dict:
    """A community with one member."""
    tables = {k: v.copy() for k, v in simulate_world(n_customers=300, seed=7).tables.items()}
    members = tables["members"]
    linked = members.index[members["customer_id"].fillna("") != ""]
    members.loc[linked[0], "community"] = "tiny"
    return _run(tables, tmp_path_factory.mktemp("degenerate"))


@pytest.mark.slow
def test_run_refuses_the_one_member_community_for_revenue(degenerate_run):
    """Per-community revenue lift of a community with one member (DiD per community is in
    roi/run.py and roi/revenue_lift/did.py): it must be flagged, not shown as a plain number."""
    results = degenerate_run
    tiny = results["community_revenue_lift"]["by_community"].get("tiny")
    assert tiny is not None, "the one-member community is missing from by_community"
    flagged = tiny.get("estimate") is None or tiny.get("converged") is False or "refused" in tiny
    assert flagged, f"one-member community shown as a plain number: {tiny}"
    cox = results["community_retention_lift"]["by_community"].get("tiny", {})
    assert cox.get("hazard_ratio") is None and "refused" in cox


@pytest.mark.slow
def test_refused_community_gets_no_retention_money_and_spoils_no_interval(degenerate_run):
    """Its Cox term is not identified (huge standard error): its money is refused, and the
    other communities and the total keep finite intervals (roi/retention/retention_value.py)."""
    money = degenerate_run["community_retention_lift"]["retention_revenue"]
    tiny = money["by_community"]["tiny"]
    assert tiny["revenue"]["estimate"] is None and "no churn events" in tiny["refused"]
    assert money["total"]["left_out"] == ["tiny"]
    others = [e for name, e in money["by_community"].items() if name != "tiny"]
    for entry in [*others, money["total"]]:
        revenue = entry["revenue"]
        assert None not in (revenue["low"], revenue["high"]), entry
        assert revenue["low"] <= revenue["estimate"] <= revenue["high"]


@pytest.mark.slow
def test_run_flags_a_channel_whose_spend_never_varies(no_churn_run):
    """MMM (roi/paid_media): a channel with constant spend has no identified effect; the
    diagnostics or paid_media must say so for that channel."""
    results, flat = no_churn_run
    paid = results["paid_media"]
    assert flat in paid["channels"]
    texts = json.dumps({k: v for k, v in results["diagnostics"].items()
                        if "paid" in k or "media" in k or "mmm" in k}) + json.dumps(paid)
    assert f"{flat}" in texts and ("vary" in texts or "constant" in texts), \
        f"no warning about {flat}'s constant spend in diagnostics or paid_media"


@pytest.fixture(scope="module")
def everyone_member_run(tmp_path_factory) -> dict:
    """Every customer a member from their first day: no never-treated and no not-yet-treated
    customer-months to compare with."""
    tables = {k: v.copy() for k, v in simulate_world(n_customers=300, seed=8).tables.items()}
    customers = tables["customers"]
    tables["members"] = pd.DataFrame({"community": "discord",
                                      "customer_id": customers["customer_id"],
                                      "joined_at": "2000-01-01"})
    return _run(tables, tmp_path_factory.mktemp("everyone"))


@pytest.mark.slow
def test_run_without_controls_refuses_did_and_the_adjusted_estimators(everyone_member_run):
    results = everyone_member_run
    lift = results["community_revenue_lift"]
    assert lift["preferred"] is None
    for name in ("did", "regression", "aipw"):
        if name in lift["estimates"]:
            assert lift["estimates"][name]["estimate"] is None, name
            diagnostics = results["diagnostics"][f"revenue_{name}"]
            assert diagnostics["converged"] is False and diagnostics["warnings"], name
    assert any("naive" in w for w in results["diagnostics"]["run"]["warnings"])


def test_no_ad_spend_table_says_why_the_media_mix_model_was_not_fitted():
    """A folder without ad_spend: the paid-media block is spend-only with a reason in the
    user's terms (was the model's argument error 'channels: name at least one spend column')."""
    from connectors import open_source
    from roi.config import SamplerSettings
    from roi.data import load_dataset
    from roi.paid_media.block import paid_media_model

    tables = {k: v for k, v in simulate_world(n_customers=200, months=6, seed=3).tables.items()
              if k != "ad_spend"}
    weekly = load_dataset(open_source(tables)).weekly_series()
    block, result = paid_media_model(weekly, sampler=SamplerSettings(), seed=0)
    assert result is None and block["channels"] == {} and block["converged"] is False
    assert block["warnings"] == ["media-mix model not fitted: no paid channel to model (no "
                                 "ad_spend table, or no ad_spend row in the window)"]
