"""IPW and AIPW (roi.revenue_lift.weighting) and the overlap / balance checks (roi.checks).

Two kinds of evidence:

* exact: on a small cross-section with a logit propensity, IPW equals statsmodels WLS of the
  outcome on a member dummy with ATT weights, and AIPW equals the hand formula, to 1e-8;
* simulated worlds (20,000 customers, seeds 1 and 2, shared with test_regression_adjustment):
  members self-select on an unobserved trait. IPW on covariates + pre-join history stays far from
  the truth (history is a noisy proxy of the trait: measured 139 and 122 against a truth of 32
  and 31 on the covered member-months, naive 174 and 166); AIPW (history in the outcome model,
  covariates in the propensity) lands within 13 of the truth and within 2.5 standard errors of
  it (seed 1: 44.5 against 31.6, just outside the 95% CI; seed 2: 21.6 against 30.5).
"""

from __future__ import annotations

import doctest
from functools import cache

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from roi.checks import BalanceCheck, OverlapCheck, balance, overlap
from roi.revenue_lift import regression_adjustment, weighting
from roi.revenue_lift.weighting import AIPW, IPW

COVARIATES = ["segment", "region", "acquisition_channel", "plan", "log_employees"]
COLUMNS = {"unit": "customer_id", "time": "month_index", "group": "join_month_index",
           "outcome": "revenue", "active": "active"}
SEEDS = (1, 2)


@cache
def simulated(seed: int) -> tuple[pd.DataFrame, dict]:
    """Panel of a 20k-customer world and its truth, with the truth over covered member-months.

    "Covered": member-months of members with at least one whole month before joining (the
    history-based estimators cannot adjust the others and leave them out, see the module notes).
    """
    from connectors import open_source
    from roi.data import load_dataset
    from roi.revenue_lift.naive_revenue import NaiveRevenueGap
    from roi.simulate import simulate_world

    world = simulate_world(n_customers=20000, seed=seed)
    panel = load_dataset(open_source(world.tables)).customer_month_panel()
    panel["log_employees"] = np.log(panel["employees"])
    truth = dict(world.truth)
    lift = _true_lift(panel, world)
    rows = panel["active"] & panel["member"]
    assert lift[rows].mean() == pytest.approx(truth["att_per_member_month"], rel=1e-9)
    before = panel["active"] & (panel["month_index"] < panel["join_month_index"])
    covered = rows & panel["customer_id"].isin(panel.loc[before, "customer_id"])
    truth["att_covered"] = float(lift[covered].mean())
    truth["naive"] = NaiveRevenueGap().fit(panel[panel["active"]]).result_.estimate
    return panel, truth


def _true_lift(panel: pd.DataFrame, world) -> pd.Series:
    """mu0 * tau_c * ramp(k) per row (the simulator's formula, from the hidden levels)."""
    truth = world.truth
    level = world.latent.set_index("customer_id")["revenue_level"]
    season = np.asarray(truth["seasonality"])[panel["month"].dt.month.to_numpy() - 1]
    tau = dict(zip(truth["att_by_community"], truth["params"]["tau"], strict=True))
    k = panel["months_since_join"].astype(float).to_numpy()
    effect = panel["community"].astype(str).map(tau).astype(float).fillna(0.0).to_numpy()
    ramp = np.where(k >= 0, 1 - truth["params"]["ramp_rate"] ** (np.nan_to_num(k) + 1), 0.0)
    mu0 = level.reindex(panel["customer_id"].astype(str)).to_numpy() * season
    return pd.Series(mu0 * effect * ramp, index=panel.index)


@cache
def fitted(seed: int, estimator: str):
    panel, _ = simulated(seed)
    model = {"ipw": IPW, "aipw": AIPW}[estimator]()
    return model.fit(panel, covariates=COVARIATES, **COLUMNS)


# --------------------------------------------------------------------------- exact checks


def cross_section(seed: int = 0, n: int = 400) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    kind = rng.choice(["a", "b", "c"], size=n)
    logit = -0.5 + 0.8 * x + 0.6 * (kind == "b")
    member = rng.random(n) < 1 / (1 + np.exp(-logit))
    y = 5 + 2 * x + 1.5 * (kind == "c") + 3.0 * member + rng.normal(size=n)
    return pd.DataFrame({"id": np.arange(n), "t": 1, "g": np.where(member, 1.0, np.nan),
                         "x": x, "kind": pd.Categorical(kind), "y": y})


def _hand_propensity(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    design = sm.add_constant(pd.get_dummies(data[["x", "kind"]], drop_first=True,
                                            dtype=float).to_numpy())
    member = data["g"].notna().to_numpy()
    p = sm.Logit(member.astype(float), design).fit(disp=0).predict(design)
    return design, member, np.where(member, 1.0, p / (1 - p))


EXACT = {"lookback": 0, "min_history": 0, "trim": 0.0}
CROSS_COLUMNS = {"unit": "id", "time": "t", "group": "g", "outcome": "y",
                 "covariates": ["x", "kind"]}


def test_ipw_equals_wls_with_att_weights() -> None:
    data = cross_section()
    design, member, weights = _hand_propensity(data)
    wls = sm.WLS(data["y"].to_numpy(), sm.add_constant(member.astype(float)),
                 weights=weights).fit(cov_type="HC0")
    fit = IPW(**EXACT).fit(data, **CROSS_COLUMNS)
    assert fit.result_.estimate == pytest.approx(wls.params[1], abs=1e-8)
    assert fit.result_.n_obs == member.sum()
    # influence-function SE with the weights taken as known = WLS HC0, times sqrt(G / (G - 1))
    n = len(data)
    assert fit.result_.diagnostics.checks["se"] == pytest.approx(
        wls.bse[1] * np.sqrt(n / (n - 1)), rel=1e-8)


def test_aipw_equals_hand_formula() -> None:
    data = cross_section(seed=3)
    design, member, weights = _hand_propensity(data)
    y = data["y"].to_numpy()
    beta = np.linalg.lstsq(design[~member], y[~member], rcond=None)[0]
    residual = y - design @ beta
    hand = residual[member].mean() - np.average(residual[~member], weights=weights[~member])
    fit = AIPW(**EXACT).fit(data, **CROSS_COLUMNS)
    assert fit.result_.estimate == pytest.approx(hand, abs=1e-8)
    assert fit.result_.low < 3.0 < fit.result_.high


def test_trimming_drops_units_above_the_bound_and_reports_them() -> None:
    data = cross_section(seed=5)
    data.loc[data["x"] > 1.2, "g"] = 1.0   # near-certain members: no comparable controls
    data.loc[data["x"] > 1.2, "x"] += 4
    fit = IPW(lookback=0, min_history=0, trim=0.05).fit(data, **CROSS_COLUMNS)
    trimmed = fit.overlap_.trimmed_
    assert trimmed["treated"] > 0
    assert fit.result_.diagnostics.checks["overlap"]["trimmed"] == trimmed
    assert fit.result_.n_treated == data["g"].notna().sum() - trimmed["treated"]
    assert any("Poor overlap" in w for w in fit.result_.diagnostics.warnings)


def test_balance_check_flags_imbalance() -> None:
    x = np.array([[0.0, 1.0], [1.0, 2.0], [0.0, 0.0], [1.0, 1.0]])
    treated = np.array([True, True, False, False])
    check = BalanceCheck().run(x, treated=treated, weights=np.ones(4), names=["same", "far"])
    assert check.table_.loc["same", "smd_after"] == pytest.approx(0.0, abs=1e-12)
    assert not check.passed_ and "far" in check.warnings_[0]


def test_overlap_check_quantiles() -> None:
    p = np.linspace(0.0, 1.0, 11)
    check = OverlapCheck(low=0.05, high=0.95).run(p, treated=p > 0.5)
    assert check.trimmed_ == {"treated": 1, "control": 1}
    assert check.table_.loc[0.5, "control"] == pytest.approx(0.25)


# --------------------------------------------------------------------------- simulated worlds


@pytest.mark.parametrize("seed", SEEDS)
def test_aipw_recovers_the_lift_naive_does_not(seed: int) -> None:
    _, truth = simulated(seed)
    result = fitted(seed, "aipw").result_
    error = abs(result.estimate - truth["att_covered"])
    assert truth["naive"] > 4 * truth["att_per_member_month"]
    assert error < 13.0                          # measured 12.8 (seed 1), 8.9 (seed 2)
    assert error < 0.1 * (truth["naive"] - truth["att_covered"])
    se = result.diagnostics.checks["se"]
    assert abs(result.estimate - truth["att_covered"]) < 2.5 * se   # measured 2.1 and 1.4 SE
    assert result.diagnostics.checks["coverage"]["share_covered"] == pytest.approx(0.6, abs=0.05)


@pytest.mark.parametrize("seed", SEEDS)
def test_ipw_on_history_balances_but_stays_biased(seed: int) -> None:
    """Balance on the observed history does not balance the trait: honest negative result."""
    _, truth = simulated(seed)
    fit = fitted(seed, "ipw")
    assert fit.balance_.max_smd_after_ < 0.1
    assert fit.balance_.table_["smd_before"].abs().max() > 0.3
    assert fit.result_.estimate > 3 * truth["att_covered"]
    assert fit.result_.estimate < truth["naive"]


@pytest.mark.parametrize("seed", SEEDS)
def test_aipw_balance_and_overlap_on_simulated_data(seed: int) -> None:
    fit = fitted(seed, "aipw")
    assert fit.balance_.max_smd_after_ < 0.1
    assert fit.overlap_.passed_
    checks = fit.result_.diagnostics.checks
    assert set(checks) >= {"overlap", "balance", "coverage"}
    assert checks["overlap"]["trimmed"]["treated"] == 0
    assert set(fit.result_.tables) == {"group_time", "overlap", "balance"}


@pytest.mark.parametrize("module", [weighting, regression_adjustment, overlap, balance])
def test_docstring_examples(module) -> None:
    outcome = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert outcome.failed == 0 and outcome.attempted > 0


def _propensity_stack(seed: int, *, separated: bool = False) -> regression_adjustment.CohortStack:
    """A stack of 3,000 units with categorical covariates and a numeric one of few values (so
    that units share covariate rows), plus a continuous history feature."""
    rng = np.random.default_rng(seed)
    n = 3000
    kind, size = rng.integers(0, 3, n), rng.choice([1.0, 5.0, 20.0, 80.0], n)
    history = rng.gamma(2.0, 10.0, (n, len(regression_adjustment.HISTORY)))
    logit = -2.0 + 0.7 * (kind == 1) + 0.01 * size + 0.02 * history[:, 0]
    treated = rng.random(n) < 1 / (1 + np.exp(-logit))
    if separated:
        treated = kind == 2
    covariates = np.column_stack([kind == 1, kind == 2, size]).astype(float)
    return regression_adjustment.CohortStack(
        cohort=3.0, units=np.arange(n), treated=treated,
        features=np.column_stack([covariates, history]), outcome=np.zeros((n, 1)),
        observed=np.ones((n, 1), bool), patterns=regression_adjustment._row_patterns(covariates))


@pytest.mark.parametrize("history", [False, True])
def test_newton_logit_on_distinct_rows_equals_statsmodels(history: bool) -> None:
    """The fast logit (on 24 distinct covariate rows with counts, or on every unit with the
    history) gives statsmodels' propensities (``_ml_logit``, the former path) to 1e-10."""
    stack = _propensity_stack(4)
    p, separated = weighting.fit_propensity(stack, history=history)
    features = stack.features if history else stack.covariates
    reference = weighting._ml_logit(stack.treated.astype(float), sm.add_constant(features))
    assert not separated
    np.testing.assert_allclose(p, reference, rtol=1e-10, atol=0)


def test_newton_logit_defers_to_statsmodels_on_separation() -> None:
    """Members predicted perfectly: the fast logit gives up, statsmodels fails, the ridge logit
    answers and the cohort is reported as separated (as before the fast path)."""
    stack = _propensity_stack(4, separated=True)
    rows, first = weighting._distinct_rows(stack, own_history=False)
    design = sm.add_constant(stack.covariates)
    total = np.bincount(rows).astype(float)
    events = np.bincount(rows, weights=stack.treated.astype(float))
    assert weighting._newton_logit(design[first], events=events, total=total) is None
    p, separated = weighting.fit_propensity(stack, history=False)
    assert separated
    np.testing.assert_allclose(p, weighting._ridge_logit(stack.treated.astype(float), design))


def test_cell_sums_and_influence_equal_the_cell_mask_formulas() -> None:
    """AIPW's cell means and unit influence terms (matrix-vector products over unit masks)
    equal the former cell-mask formulas, on a staggered panel with trimming at work."""
    from tests.test_regression_adjustment import _small_panel

    rows = _small_panel()
    rows.loc[rows["x"] > 1.0, "g"] = 5.0   # high x: in cohort 5 with high propensity
    model = AIPW(trim=0.2, lookback=2)
    fit = model.fit(rows, unit="id", time="t", group="g", outcome="y", active="active",
                    covariates=["x"])
    design = regression_adjustment.stacked_design(
        rows, unit="id", time="t", group="g", outcome="y", covariates=["x"], active="active",
        lookback=2, min_history=1)
    term, count = np.zeros(len(design.unit_labels)), np.zeros(len(design.unit_labels))
    seen, trimmed, cells = np.zeros(len(design.unit_labels), bool), 0, []
    for stack in design.stacks():
        w = model._weigh(stack)
        trimmed += int((~w.keep).sum())
        weight = np.where(stack.treated, 1.0, w.p / (1 - w.p))
        treated = (stack.observed & (stack.treated & w.keep)[:, None]).astype(float)
        control = (stack.observed & (~stack.treated & w.keep)[:, None]).astype(float)
        n_obs = treated.sum(axis=0)
        c_weight = control.T @ weight
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = np.nan_to_num((control * w.residual).T @ weight / c_weight)
            att = (treated * w.residual).sum(axis=0) / n_obs - mean
        valid = (n_obs > 0) & (c_weight > 0)
        scale = np.where(valid, n_obs / np.where(valid, c_weight, 1.0), 0.0)
        centred = (w.residual - mean) * valid
        term[stack.units] += ((treated * centred).sum(axis=1)
                              - weight * (control * centred * scale).sum(axis=1))
        count[stack.units] += (treated * valid).sum(axis=1)
        seen[stack.units] |= ((treated + control) * valid).any(axis=1)
        cells.append(pd.DataFrame({"att": att, "n_obs": n_obs})[valid])
    cells = pd.concat(cells)
    estimate = (cells["att"] * cells["n_obs"]).sum() / cells["n_obs"].sum()
    assert fit.result_.estimate == pytest.approx(estimate, rel=1e-12)
    totals = (term - estimate * count)[seen] / cells["n_obs"].sum()
    se = np.sqrt(np.sum(totals**2) * len(totals) / (len(totals) - 1))
    assert fit.result_.diagnostics.checks["se"] == pytest.approx(se, rel=1e-10)
    assert trimmed > 0
