"""Retention estimators: published numbers, an independent engine, and a simulated world.

* Rossi recidivism (lifelines ships it): R ``coxph`` with Efron ties.
* Stanford heart transplant (start-stop, transplant time-varying): lifelines
  ``CoxTimeVaryingFitter`` as the independent implementation.
* A simulated customer base with a known hazard ratio and staggered joining that creates
  immortal-time bias in the naive comparison.
* Kaplan–Meier against lifelines' ``KaplanMeierFitter`` and a hand-computed example.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, CoxTimeVaryingFitter, KaplanMeierFitter
from lifelines.datasets import load_rossi, load_stanford_heart_transplants
from lifelines.statistics import proportional_hazard_test

from roi.retention.cox_naive import NaiveCox
from roi.retention.cox_time_varying import (
    CoxTimeVarying,
    design_matrix,
    fit_cox,
    proportional_hazards_test,
    schoenfeld_residuals,
)
from roi.retention.survival_curves import RetentionCurves, kaplan_meier, survival_at

DAYS_PER_MONTH = 30.4375
TRUE_HR = 0.70
COVARIATES = ["segment", "region", "plan", "acquisition_channel", "first_order_value",
              "orders_90d", "discount_share", "nps"]
EFFECTS = {"segment": {"smb": 0.0, "mid": -0.2, "enterprise": -0.4},
           "region": {"na": 0.0, "eu": 0.1, "apac": -0.1, "latam": 0.05},
           "plan": {"basic": 0.0, "pro": -0.3},
           "acquisition_channel": {"organic": 0.0, "paid": 0.25, "referral": -0.15}}


def simulate_world(n: int = 20_000, *, hazard_ratio: float = TRUE_HR,
                   monthly_hazard: float = 0.03, seed: int = 0) -> pd.DataFrame:
    """A start-stop table like :func:`roi.data.survival.survival_table` with a known effect.

    Churn hazard = ``monthly_hazard`` x exp(covariate effects) x ``hazard_ratio`` ** member.
    Joining is more likely on the pro plan and with a high first order (measured confounding),
    happens at a staggered time and only for customers still alive then, so ever-members are
    survivors (immortal-time bias for the naive comparison). Customers are first seen over the
    24 months before and after the window start (day 0 of calendar time); those first seen
    before it enter late (left truncation) and those who churned before it are never seen.
    """
    rng = np.random.default_rng(seed)
    cats = {name: rng.choice(list(levels), size=n) for name, levels in EFFECTS.items()}
    nums = {"first_order_value": rng.normal(0, 1, n), "orders_90d": rng.poisson(2, n),
            "discount_share": rng.uniform(0, 1, n), "nps": rng.normal(0, 1, n)}
    xb = sum(pd.Series(cats[name]).map(levels).to_numpy() for name, levels in EFFECTS.items())
    xb = xb - 0.2 * nums["first_order_value"] - 0.1 * nums["orders_90d"] + 0.3 * nums[
        "discount_share"]
    rate = monthly_hazard / DAYS_PER_MONTH * np.exp(xb)
    propensity = 0.8 + 0.6 * (cats["plan"] == "pro") + 0.3 * nums["first_order_value"]
    join_at = rng.exponential(4 * DAYS_PER_MONTH, n)
    first_seen = rng.uniform(-24, 24, n) * DAYS_PER_MONTH
    follow = 24 * DAYS_PER_MONTH - first_seen
    before = rng.exponential(1.0, n) / rate
    joins = (rng.uniform(size=n) < 1 / (1 + np.exp(-propensity))) & (before > join_at)
    churn = np.where(joins, join_at + rng.exponential(1.0, n) / (rate * hazard_ratio), before)
    base = pd.DataFrame({"customer_id": np.arange(n),
                         "entry": np.floor(np.maximum(0, -first_seen)).astype(int),
                         "stop": np.floor(np.minimum(churn, follow)).astype(int) + 1,
                         "event": (churn < follow).astype(int),
                         "join_day": np.floor(join_at).astype(int), **cats, **nums})
    base["joined"] = joins & (base["join_day"] < base["stop"])
    base["community"] = np.where(base["joined"], np.where(rng.uniform(size=n) < 0.6, "discord",
                                                          "forum"), None)
    return _split_at_joining(base[base["stop"] > base["entry"]])


def _split_at_joining(base: pd.DataFrame) -> pd.DataFrame:
    pre = base[~base["joined"] | (base["join_day"] > base["entry"])].assign(member=0)
    pre["start"] = pre["entry"]
    pre.loc[pre["joined"], "event"] = 0
    pre["stop"] = np.where(pre["joined"], pre["join_day"], pre["stop"])
    post = base[base["joined"]].assign(member=1)
    post["start"] = np.maximum(post["join_day"], post["entry"])
    table = pd.concat([pre, post]).sort_values(["customer_id", "start"], kind="stable")
    columns = ["customer_id", "start", "stop", "event", "member", "community", *COVARIATES]
    return table[columns].reset_index(drop=True)


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    return simulate_world(20_000, seed=7)


@pytest.fixture(scope="module")
def rossi() -> pd.DataFrame:
    return load_rossi()


# Published: Rossi et al. recidivism, R coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar
# + paro + prio, ties = "efron").
R_COXPH = {"fin": (-0.37942, 0.19138), "age": (-0.05744, 0.02200), "prio": (0.09150, 0.02865)}


def test_rossi_reproduces_r_coxph(rossi):
    table = rossi.rename(columns={"week": "stop", "arrest": "event", "fin": "member"}).assign(
        start=0, customer_id=np.arange(len(rossi)))
    model = CoxTimeVarying().fit(table, covariates=["age", "race", "wexp", "mar", "paro", "prio"])
    coefs = model.summary().rename(index={"member": "fin"})
    for term, (coef, se) in R_COXPH.items():
        assert coefs.loc[term, "coef"] == pytest.approx(coef, abs=1e-4)
        assert coefs.loc[term, "se"] == pytest.approx(se, abs=1e-4)
    assert model.result_.estimate == pytest.approx(np.exp(-0.37942), abs=1e-4)
    assert model.result_.diagnostics.converged


def test_schoenfeld_test_matches_lifelines_on_rossi(rossi):
    columns = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    arrays = {"stop": rossi["week"].to_numpy(), "event": rossi["arrest"].to_numpy()}
    fit = fit_cox(rossi[columns], **arrays)
    reference = CoxPHFitter().fit(rossi, "week", "arrest")
    for transform in ("km", "identity", "log"):
        ours = proportional_hazards_test(rossi[columns].to_numpy(float), fit=fit,
                                         transform=transform, **arrays)
        theirs = proportional_hazard_test(reference, rossi, time_transform=transform).summary
        for term in columns:
            assert ours.loc[term, "statistic"] == pytest.approx(
                theirs.loc[term, "test_statistic"], rel=1e-5)
    assert ours.loc["age", "p"] < 0.01  # Rossi's known non-proportional covariate


@pytest.fixture(scope="module")
def heart() -> pd.DataFrame:
    return load_stanford_heart_transplants()


def test_time_varying_matches_lifelines_on_heart_transplant(heart):
    columns = ["age", "year", "surgery", "transplant"]
    reference = CoxTimeVaryingFitter().fit(heart[["id", "start", "stop", "event", *columns]],
                                           id_col="id", event_col="event", start_col="start",
                                           stop_col="stop")
    table = heart.rename(columns={"id": "customer_id", "transplant": "member"})
    model = CoxTimeVarying().fit(table, covariates=["age", "year", "surgery"])
    ours = model.summary().rename(index={"member": "transplant"})
    for term in columns:
        assert ours.loc[term, "coef"] == pytest.approx(reference.params_[term], abs=1e-5)
        assert ours.loc[term, "se"] == pytest.approx(reference.standard_errors_[term], abs=1e-5)
    # R coxph(Surv(start, stop, event) ~ age + year + surgery + transplant, data = jasa1)
    assert ours.loc["transplant", "coef"] == pytest.approx(-0.0103, abs=1e-3)
    assert model.result_.estimate == pytest.approx(np.exp(reference.params_["transplant"]))


def test_schoenfeld_residuals_match_brute_force_on_start_stop_rows(heart):
    X = heart[["age", "year", "surgery", "transplant"]].to_numpy(float)
    start, stop = heart["start"].to_numpy(float), heart["stop"].to_numpy(float)
    event = heart["event"].to_numpy(bool)
    params = np.array([0.03, -0.15, -0.6, -0.01])
    resid, times = schoenfeld_residuals(X, params=params, stop=stop, event=event, start=start)
    phi = np.exp(X @ params)
    expected = []
    for i in np.flatnonzero(event):  # Efron: average over the tied deaths' partial removals
        t = stop[i]
        risk = (start < t) & (t <= stop)
        tied = risk & event & (stop == t)
        k = tied.sum()
        means = [((phi * risk) @ X - j / k * ((phi * tied) @ X)) / (phi[risk].sum()
                 - j / k * phi[tied].sum()) for j in range(k)]
        expected.append(X[i] - np.mean(means, axis=0))
    np.testing.assert_allclose(resid, np.array(expected), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(times, stop[event])


@pytest.fixture(scope="module")
def tv_model(world) -> CoxTimeVarying:
    return CoxTimeVarying().fit(world, covariates=COVARIATES, community="community")


def test_time_varying_cox_recovers_the_hazard_ratio(tv_model):
    result = tv_model.result_
    assert abs(result.estimate - TRUE_HR) < 0.05
    assert result.low < TRUE_HR < result.high
    assert (result.method, result.estimand, result.value_name, result.interval) == (
        "cox_time_varying", "community_retention_lift", "hazard_ratio", "95% CI")
    assert set(result.by_group) == {"discord", "forum"}
    for entry in result.by_group.values():
        assert entry["low"] < TRUE_HR < entry["high"] and entry["interval"] == "95% CI"
    assert result.diagnostics.converged and not result.diagnostics.warnings
    assert tv_model.ph_test_.loc["member", "p"] > 0.01
    assert len(tv_model.summary()) == 13 and "plan[basic]" in tv_model.summary().index
    contract = result.to_contract()
    assert set(contract) == {"hazard_ratio", "low", "high", "interval"}


def test_naive_ever_member_cox_shows_immortal_time_bias(world, tv_model):
    naive = NaiveCox().fit(world, community="community").result_
    assert naive.method == "naive" and naive.value_name == "hazard_ratio"
    assert naive.estimate < TRUE_HR - 0.1
    assert naive.high < tv_model.result_.low
    assert any("immortal-time" in w for w in naive.diagnostics.warnings)
    assert set(naive.by_group) == {"discord", "forum"}
    assert naive.n_treated == world.loc[world["member"] == 1, "customer_id"].nunique()


def test_non_proportional_membership_effect_is_flagged():
    rng = np.random.default_rng(3)
    n = 4000
    member = rng.uniform(size=n) < 0.5
    rate = 0.03 / DAYS_PER_MONTH
    early = rng.exponential(1.0, n) / (rate * np.where(member, 0.3, 1.0))
    late = 180 + rng.exponential(1.0, n) / (rate * np.where(member, 1.5, 1.0))
    churn = np.where(early < 180, early, late)
    table = pd.DataFrame({"customer_id": np.arange(n), "start": 0,
                          "stop": np.floor(np.minimum(churn, 720)).astype(int) + 1,
                          "event": (churn < 720).astype(int), "member": member.astype(int)})
    model = CoxTimeVarying().fit(table)
    row = model.ph_test_.loc["member"]
    assert row["p"] < 0.001 and row["hr_early"] < 0.8 and row["hr_late"] > 1.2
    assert any("proportional hazards doubtful for membership" in w
               for w in model.result_.diagnostics.warnings)


def test_bad_tables_get_clear_errors(world):
    broken = world.head(50).copy()
    broken.loc[broken.index[:2], "stop"] = broken["start"].iloc[:2]
    with pytest.raises(ValueError, match="2 row.*stop > start"):
        CoxTimeVarying().fit(broken)
    holes = world.head(50).assign(nps=np.nan)
    with pytest.raises(ValueError, match="'nps' has 50 missing"):
        CoxTimeVarying().fit(holes, covariates=["nps"])
    with pytest.raises(ValueError, match="'customer_id' has .* levels"):
        CoxTimeVarying().fit(world.head(200).astype({"customer_id": str}),
                             covariates=["customer_id"])


def test_design_matrix_reference_is_the_most_frequent_level():
    frame = pd.DataFrame({"plan": ["pro", "basic", "pro", None], "one": [1, 1, 1, 1]})
    design, info = design_matrix(frame, columns=["plan", "one"])
    assert list(design.columns) == ["plan[(missing)]", "plan[basic]"]
    assert info == {"references": {"plan": "pro"}, "dropped_constant": ["one"]}


def _customer_level(world: pd.DataFrame) -> pd.DataFrame:
    grouped = world.groupby("customer_id")
    return pd.DataFrame({"entry": grouped["start"].min(), "time": grouped["stop"].max(),
                         "event": grouped["event"].last()})


@pytest.mark.parametrize("truncated", [False, True])
def test_kaplan_meier_matches_lifelines(world, truncated):
    ends = _customer_level(world)
    # lifelines counts a customer at risk on its entry day (entry <= t); the counting-process
    # convention here is entry < t. Entries half a day off the grid make both agree.
    entry = ends["entry"].to_numpy() + 0.5 if truncated else None
    ours = kaplan_meier(ends["time"].to_numpy(), ends["event"].to_numpy(), entry=entry)
    theirs = KaplanMeierFitter().fit(ends["time"], ends["event"], entry=entry)
    months = np.array([6.0, 12.0]) * DAYS_PER_MONTH
    at = survival_at(ours, months)
    np.testing.assert_allclose(at["survival"], theirs.survival_function_at_times(months),
                               atol=1e-6)
    bands = theirs.confidence_interval_survival_function_
    index = bands.index.searchsorted(months, side="right") - 1
    np.testing.assert_allclose(at["low"], bands.iloc[index, 0], atol=1e-6)
    np.testing.assert_allclose(at["high"], bands.iloc[index, 1], atol=1e-6)


def test_kaplan_meier_hand_computed_with_late_entry():
    km = kaplan_meier(np.array([2, 3, 3, 5, 6]), np.array([1, 1, 0, 1, 0]),
                      entry=np.array([0, 0, 2, 0, 3]))
    # t=2: 3 at risk (the entry at 2 is not yet at risk), 1 churn; t=3: 3 at risk, 1 churn;
    # t=5: 2 at risk, 1 churn; t=6: 1 at risk, censored.
    assert km["at_risk"].tolist() == [3, 3, 2, 1]
    np.testing.assert_allclose(km["survival"], [2 / 3, 4 / 9, 2 / 9, 2 / 9])
    np.testing.assert_allclose(km["greenwood"].iloc[-1], 1 / 6 + 1 / 6 + 1 / 2)
    s, v = 2 / 9, 5 / 6
    spread = 1.959963984540054 * np.sqrt(v) / np.log(s)
    low = np.exp(-np.exp(np.log(-np.log(s)) - spread))
    assert km["low"].iloc[-1] == pytest.approx(low, abs=1e-12)


def test_landmark_curves_split_by_membership_at_the_landmark():
    table = pd.DataFrame({"customer_id": [1, 2, 2, 3, 4, 4, 5],
                          "start": [0, 0, 20, 0, 0, 50, 200],
                          "stop": [40, 20, 400, 150, 50, 300, 500],
                          "event": [1, 0, 0, 1, 0, 1, 0], "member": [0, 0, 1, 0, 0, 1, 0],
                          "community": [None, None, "forum", None, None, "discord", None]})
    curves = RetentionCurves(landmarks_months=(1,), horizons_months=(6,)).fit(
        table, community="community")
    got = curves.retention_.set_index(["landmark_month", "group"])
    # At day 30.4: customer 2 is a member; 1, 3, 4 are not (4 joins later); 5 is not yet
    # observed (enters at day 200). Non-members churn 9.6, 119.6 and 269.6 days later.
    assert got.loc[(1, "member"), "customers"] == 1
    assert got.loc[(1, "non-member"), "customers"] == 3
    assert got.loc[(1, "non-member"), "retention"] == pytest.approx(1 / 3)
    assert got.loc[(1, "member: forum"), "retention"] == 1.0
    assert got.loc[(0, "all"), "retention"] == pytest.approx(3 / 4 * 2 / 3)
    assert curves.difference_["member_minus_non_member"].iloc[0] == pytest.approx(2 / 3)


def test_landmark_retention_favours_members_in_the_simulated_world(world):
    curves = RetentionCurves().fit(world, community="community")
    assert set(curves.retention_["landmark_month"]) == {0, 3, 6, 12}
    assert (curves.difference_["low"] > 0).all()
    band = curves.curves_
    assert ((band["low"] <= band["survival"] + 1e-12)
            & (band["survival"] <= band["high"] + 1e-12)).all()
    assert band.groupby(["landmark_month", "group"])["survival"].apply(
        lambda s: s.is_monotonic_decreasing).all()
