"""One estimator API on the user's own data (issue 18).

* the same panel with never-treated coded 0, NaN, None or after the last period gives identical
  results in every panel estimator (and a lift near the simulated truth);
* a cross-section with a formula reproduces statsmodels' own OLS (regression adjustment: the
  imputation ATT = the coefficient of the treatment in the fully interacted OLS with covariates
  centred at the treated means) and GLM-logit propensities (IPW, AIPW);
* what cannot be estimated is a refused result naming the cause; invalid input raises an error
  naming the column and the rule; ``summary()`` is a DataFrame everywhere; poor overlap is the
  same named warning in regression adjustment, IPW and AIPW.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import patsy
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from roi.models import (
    AIPW,
    IPW,
    BayesianHierarchicalLift,
    BayesianPiecewiseSurvival,
    CoxTimeVarying,
    MultiplicativeDiD,
    NaiveRevenueGap,
    RegressionAdjustment,
    StaggeredDiD,
)
from roi.revenue_lift.bayes_revenue import revenue_cells

PANEL = {"unit": "id", "time": "t", "group": "g", "outcome": "y"}
EFFECT = 2.0
FORMULA = "age + I(age**2) + educ + C(plan)"


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    """300 units x 6 periods; cohorts 3-5 (half the units) or never; lift 2 per treated period."""
    rng = np.random.default_rng(7)
    n, periods = 300, np.arange(1, 7)
    g = np.where(rng.random(n) < 0.5, rng.integers(3, 6, n).astype(float), np.nan)
    x = rng.normal(size=n)
    rows = pd.DataFrame([(i, t) for i in range(n) for t in periods], columns=["id", "t"])
    rows["g"], rows["x"] = g[rows["id"]], x[rows["id"]]
    level = 20 + 3 * x + rng.normal(0, 2, n)
    rows["y"] = (level[rows["id"]] + 0.5 * rows["t"] + EFFECT * (rows["t"] >= rows["g"])
                 + rng.normal(0, 1, len(rows)))
    return rows


def codings(panel: pd.DataFrame) -> dict[str, pd.DataFrame]:
    never = panel["g"].isna()
    return {"nan": panel, "zero": panel.assign(g=panel["g"].fillna(0)),
            "after_last": panel.assign(g=panel["g"].fillna(9999)),
            "none": panel.assign(g=panel["g"].astype(object).where(~never, None))}


PANEL_ESTIMATORS = {
    "did": (StaggeredDiD, {}, {}),
    "did_multiplicative": (MultiplicativeDiD, {}, {}),
    "regression": (RegressionAdjustment, {"lookback": 2}, {"covariates": ["x"]}),
    "ipw": (IPW, {"lookback": 2}, {"covariates": ["x"]}),
    "aipw": (AIPW, {"lookback": 2}, {"covariates": "x + I(x**2)"}),
}


@pytest.mark.parametrize("name", list(PANEL_ESTIMATORS))
def test_never_treated_coded_four_ways_gives_identical_results(panel, name):
    make, options, extra = PANEL_ESTIMATORS[name]
    fits = {k: make(**options).fit(data, **PANEL, **extra) for k, data in
            codings(panel).items()}
    first = fits["nan"].result_
    assert not first.refused and abs(first.estimate - EFFECT) < 0.4   # truth 2 (SE about 0.1)
    assert first.scale == "y per treated unit-period (id x t)"   # not money per member-month
    for key, fit in fits.items():
        r = fit.result_
        assert (r.estimate, r.low, r.high, r.n_obs) == (first.estimate, first.low, first.high,
                                                        first.n_obs), key
        assert isinstance(fit.summary(), pd.DataFrame)


def test_naive_gap_and_bayesian_cells_read_the_four_codings_alike(panel):
    gaps = {k: NaiveRevenueGap().fit(d, unit="id", outcome="y", join_time="g", time="t")
            .result_.estimate for k, d in codings(panel).items()}
    assert len(set(gaps.values())) == 1
    # the Bayesian model's whole input is its cell table: identical cells, identical posterior
    cells = {k: revenue_cells(d, **PANEL, community=None, active=None)
             for k, d in codings(panel).items()}
    for key, table in cells.items():
        pd.testing.assert_frame_equal(table, cells["nan"], obj=key)
    assert cells["nan"]["member"].sum() > 0


@pytest.fixture(scope="module")
def cross_section() -> pd.DataFrame:
    """2,000 units: treatment depends on age (with a square) and plan; outcome on all of them;
    a constant effect of 3 (so the ATT is 3)."""
    rng = np.random.default_rng(11)
    n = 2000
    frame = pd.DataFrame({"age": rng.uniform(20, 60, n), "educ": rng.normal(12, 2, n),
                          "plan": rng.choice(["basic", "plus", "pro"], n)})
    plan = frame["plan"].map({"basic": 0.0, "plus": 0.5, "pro": 1.0})
    score = -1.0 + 0.002 * (frame["age"] - 40) ** 2 + 0.8 * plan
    frame["d"] = (rng.random(n) < 1 / (1 + np.exp(-score))).astype(int)
    frame["y"] = (5 + 0.3 * frame["age"] + 0.01 * frame["age"] ** 2 + 0.7 * frame["educ"]
                  + 4 * plan + 3.0 * frame["d"] + rng.normal(0, 2, n))
    return frame


def test_regression_adjustment_reproduces_statsmodels_ols(cross_section):
    data = cross_section
    fit = RegressionAdjustment().fit(data, outcome="y", treated="d", covariates=FORMULA)
    treated = data["d"] == 1
    # imputation: OLS on the controls, predicted for the treated
    controls = smf.ols(f"y ~ {FORMULA}", data[~treated]).fit()
    imputed = float((data.loc[treated, "y"] - controls.predict(data[treated])).mean())
    # the same number: treatment coefficient of the interacted OLS, covariates centred at the
    # treated means
    X = patsy.dmatrix(FORMULA, data, return_type="dataframe").drop(columns="Intercept")
    centred = X - X[treated.to_numpy()].mean()
    d = data["d"].to_numpy(float)
    design = np.column_stack([np.ones(len(d)), d, centred, centred.to_numpy() * d[:, None]])
    interacted = sm.OLS(data["y"].to_numpy(), design).fit().params[1]
    r = fit.result_
    assert r.estimate == pytest.approx(imputed, abs=1e-8)
    assert r.estimate == pytest.approx(interacted, abs=1e-8)
    assert abs(r.estimate - 3.0) < 0.3
    assert (r.estimand, r.scale, r.n_obs) == ("att", "outcome per treated unit", treated.sum())
    boolean = RegressionAdjustment().fit(data.assign(d=treated), outcome="y", treated="d",
                                         covariates=FORMULA).result_
    assert (boolean.estimate, boolean.low, boolean.high) == (r.estimate, r.low, r.high)


def test_ipw_and_aipw_reproduce_statsmodels_glm_logit(cross_section):
    data = cross_section
    treated = data["d"].to_numpy() == 1
    glm = smf.glm(f"d ~ {FORMULA}", data, family=sm.families.Binomial()).fit()
    p = glm.predict(data).to_numpy()
    assert p.max() < 0.99   # nothing trimmed: the estimators' formulas apply as written
    w = p / (1 - p)
    y = data["y"].to_numpy()
    ipw = y[treated].mean() - np.sum(w[~treated] * y[~treated]) / w[~treated].sum()
    outcome = smf.ols(f"y ~ {FORMULA}", data[~treated]).fit().predict(data).to_numpy()
    r = y - outcome
    aipw = r[treated].mean() - np.sum(w[~treated] * r[~treated]) / w[~treated].sum()
    ours_ipw = IPW().fit(data, outcome="y", treated="d", covariates=FORMULA).result_
    ours_aipw = AIPW().fit(data, outcome="y", treated="d", covariates=FORMULA).result_
    assert ours_ipw.estimate == pytest.approx(ipw, abs=1e-6)
    assert ours_aipw.estimate == pytest.approx(aipw, abs=1e-6)
    assert abs(ours_aipw.estimate - 3.0) < 0.3
    assert ours_ipw.scale == ours_aipw.scale == "outcome per treated unit"


def test_poor_overlap_is_the_same_named_warning_everywhere():
    rng = np.random.default_rng(5)
    n = 1500
    x = rng.normal(size=n)
    d = (rng.random(n) < 1 / (1 + np.exp(-(4 * x - 3)))).astype(int)   # members at high x
    data = pd.DataFrame({"x": x, "d": d, "y": 1 + 2 * x + d + rng.normal(size=n)})
    for make in (RegressionAdjustment, IPW, AIPW):
        result = make().fit(data, outcome="y", treated="d", covariates=["x"]).result_
        poor = [w for w in result.diagnostics.warnings if w.startswith("Poor overlap:")]
        assert poor, make.__name__
        assert result.diagnostics.checks["overlap"]["passed"] is False
        assert result.diagnostics.converged   # a warning beside the number, not a failed gate
    balanced = data.assign(d=(rng.random(n) < 0.4).astype(int))
    clean = RegressionAdjustment().fit(balanced, outcome="y", treated="d",
                                       covariates=["x"]).result_
    assert clean.diagnostics.checks["overlap"]["passed"] is True
    assert not any(w.startswith("Poor overlap") for w in clean.diagnostics.warnings)


def test_what_cannot_be_estimated_is_a_refused_result_naming_the_cause(panel):
    everyone_never = panel.assign(g=0)
    for name, (make, options, extra) in PANEL_ESTIMATORS.items():
        fit = make(**options).fit(everyone_never, **PANEL, **extra)
        assert fit.result_.refused and np.isnan(fit.result_.estimate), name
        assert isinstance(fit.summary(), pd.DataFrame)
    flag = panel.assign(g=panel["g"].notna().astype(int))   # a 0/1 flag in the group column
    for make in (StaggeredDiD, RegressionAdjustment, AIPW):
        reason = make().fit(flag, **PANEL).result_.refused
        assert "treated from the first period" in reason and "0/1" in reason, make.__name__
    no_controls = panel.assign(g=3)
    reason = RegressionAdjustment().fit(no_controls, **PANEL).result_.refused
    assert "no never-treated (control) unit" in reason
    assert BayesianHierarchicalLift().fit(everyone_never, **PANEL, community=None,
                                          active=None).result_.refused
    no_events = pd.DataFrame({"customer_id": [1, 2, 3], "start": [0, 0, 0],
                              "stop": [5, 6, 7], "event": [0, 0, 0], "member": [0, 1, 0]})
    for model in (CoxTimeVarying(), BayesianPiecewiseSurvival()):
        fit = model.fit(no_events)
        assert "no churn events" in fit.result_.refused
        assert isinstance(fit.summary(), pd.DataFrame)


def test_invalid_input_raises_errors_naming_the_column_and_the_rule(panel, cross_section):
    with pytest.raises(ValueError, match=r"column 'g' is True/False.*first treated period"):
        RegressionAdjustment().fit(panel.assign(g=panel["g"].notna()), **PANEL)
    with pytest.raises(ValueError, match=r"column 'g' is True/False"):
        StaggeredDiD().fit(panel.assign(g=panel["g"].notna()), **PANEL)
    bad = cross_section.assign(d=cross_section["d"].replace({1: 2}))
    with pytest.raises(ValueError, match=r"column 'd' \(treated\) must be 0/1.*rows break"):
        IPW().fit(bad, outcome="y", treated="d")
    with pytest.raises(KeyError, match="'treated_flag'"):
        AIPW().fit(cross_section, outcome="y", treated="treated_flag")
    with pytest.raises(ValueError, match="covariates formula 'age \\+ income'"):
        RegressionAdjustment().fit(cross_section, outcome="y", treated="d",
                                   covariates="age + income")
    with pytest.raises(ValueError, match="either treated="):
        RegressionAdjustment().fit(panel, **PANEL, treated="g")
    with pytest.raises(ValueError, match="takes none"):
        StaggeredDiD().fit(panel, **PANEL, covariates=["x"])


def test_cox_takes_a_formula_as_the_same_columns_built_by_hand():
    rng = np.random.default_rng(2)
    n = 400
    age = rng.uniform(20, 70, n)
    table = pd.DataFrame({"customer_id": np.arange(n), "start": 0.0,
                          "stop": rng.exponential(100, n) + 1, "event": rng.random(n) < 0.7,
                          "member": rng.random(n) < 0.4, "age": age}).astype({"event": int,
                                                                            "member": int})
    by_formula = CoxTimeVarying().fit(table, covariates="age + I(age**2)").summary()
    by_hand = CoxTimeVarying().fit(table.assign(age2=age**2), covariates=["age", "age2"])
    assert by_formula["coef"].to_numpy() == pytest.approx(by_hand.summary()["coef"].to_numpy(),
                                                           rel=1e-9)


def test_the_own_data_page_runs_and_recovers_its_simulated_effects(capsys):
    """docs/estimators_on_your_own_data.md: every example above "Weekly media" runs as written
    and recovers the effect it simulated (3 per period and per unit; hazard ratio 0.7)."""
    import re
    from pathlib import Path

    page = (Path(__file__).parents[1] / "docs" / "estimators_on_your_own_data.md").read_text()
    page = page.split("## Weekly media")[0]
    namespace: dict = {}
    exec(compile("\n".join(re.findall(r"```python\n(.*?)```", page, re.S)), "page", "exec"),
         namespace)
    assert abs(namespace["did"].result_.estimate - 3.0) < 0.5
    assert abs(namespace["aipw"].result_.estimate - 3.0) < 0.5
    assert "not a 0/1 treatment flag" in namespace["refused"].refused
    assert abs(namespace["r"].estimate - 3.0) < 0.5            # the cross-section's AIPW
    assert abs(namespace["cox"].result_.estimate - 0.7) < 0.1


def _falling_hazard_spells(n: int, seed: int, hr: float = 0.7) -> pd.DataFrame:
    """Weibull(0.5) baseline (hazard falls fast), membership from an exponential wait on (so
    non-member time is early time), hazard ratio ``hr`` (benchmarks/bayes_survival_vs_cox.py)."""
    rng = np.random.default_rng(seed)
    join = np.where(rng.random(n) < 0.6, rng.exponential(90.0, n), 1e9)
    censor = rng.uniform(200, 720, n)
    target = rng.exponential(1.0, n)
    before = (np.minimum(join, censor) / 200.0) ** 0.5
    rest = (target - before) / hr + (np.minimum(join, 1e6) / 200.0) ** 0.5
    t_event = np.where(target <= before, 200.0 * target**2, 200.0 * rest**2)
    stop = np.minimum(t_event, censor)
    event = (t_event <= censor).astype(int)
    rows = [(i, 0.0, join[i], 0, 0) for i in range(n) if join[i] < stop[i]]
    rows += [(i, min(join[i], stop[i]) if join[i] < stop[i] else 0.0, stop[i], event[i],
              int(join[i] < stop[i])) for i in range(n)]
    return pd.DataFrame(rows, columns=["customer_id", "start", "stop", "event", "member"])


def test_wide_pieces_bias_the_piecewise_hazard_ratio_and_event_pieces_do_not():
    """The mechanism behind the Bayesian survival model's gap to Cox (issue 18), with the
    model's own cells and a maximum-likelihood Poisson fit in place of the posterior."""
    from roi.retention.bayes_survival import (
        DEFAULT_INTERVALS,
        event_quantile_bounds,
        person_period_cells,
    )

    spells = _falling_hazard_spells(4000, seed=1)
    cox = np.log(CoxTimeVarying().fit(spells).result_.estimate)

    def piecewise(bounds) -> float:
        cells = person_period_cells(spells, intervals_days=bounds)
        X = pd.get_dummies(cells["piece"], prefix="piece", dtype=float)
        X["member"] = cells["member"].astype(float)
        fit = sm.GLM(cells["events"], X, family=sm.families.Poisson(),
                     offset=np.log(cells["exposure"])).fit()
        return float(fit.params["member"])

    default = piecewise(DEFAULT_INTERVALS)
    events = piecewise(event_quantile_bounds(spells["stop"], spells["event"], pieces=12))
    assert abs(cox - np.log(0.7)) < 0.15                     # Cox: truth within 3 SE
    assert default < cox - 0.04                              # wide pieces: biased down
    assert abs(events - cox) < 0.03


def test_a_binary_numeric_covariate_keeps_its_two_levels_in_the_cells():
    from roi.retention.bayes_survival import pattern_columns

    flag = pd.DataFrame({"surgery": [0] * 83 + [1] * 17})   # every quintile is 0
    cats, edges = pattern_columns(flag, covariates=["surgery"], numeric_bins=5)
    assert sorted(cats["surgery"].unique()) == ["0", "1"] and edges == {}
