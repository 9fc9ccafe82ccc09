"""Regression adjustment (roi.revenue_lift.regression_adjustment): exact identities and recovery.

Exact: on a cross-section the imputation ATT equals the member coefficient of a fully
interacted OLS (covariates centred at the members' means) and its standard error equals that
regression's HC0 one (times sqrt(n / (n - 1))); on a small panel the default ``additive`` history
model equals the hand formula. Simulated worlds (seeds 1 and 2, 20,000 customers; built once
in test_weighting): within 13 of the truth over the covered member-months, truth inside the
within 2.5 standard errors of it (2.1 and 1.4 SE: on seed 1 the truth is just outside the 95%
CI), while the naive gap is 4-5x the truth.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from roi.revenue_lift.regression_adjustment import RegressionAdjustment
from tests.test_weighting import COLUMNS, COVARIATES, SEEDS, cross_section, simulated

CROSS = {"unit": "id", "time": "t", "group": "g", "outcome": "y", "covariates": ["x", "kind"]}


def test_cross_section_matches_interacted_ols_and_hc0() -> None:
    data = cross_section(seed=7)
    member = data["g"].notna().to_numpy(float)
    x = pd.get_dummies(data[["x", "kind"]], drop_first=True, dtype=float).to_numpy()
    centred = x - x[member == 1].mean(axis=0)
    design = np.column_stack([np.ones(len(x)), member, centred, member[:, None] * centred])
    ols = sm.OLS(data["y"].to_numpy(), design).fit(cov_type="HC0")
    fit = RegressionAdjustment(lookback=0, min_history=0).fit(data, **CROSS)
    n, treated = len(data), member == 1
    assert fit.result_.estimate == pytest.approx(ols.params[1], abs=1e-8)
    # HC0 treats the members' covariate means as fixed; the imputation IF also has their term
    with_const = np.column_stack([np.ones(n), x])
    gap = (np.linalg.lstsq(with_const[treated], data["y"][treated], rcond=None)[0]
           - np.linalg.lstsq(with_const[~treated], data["y"][~treated], rcond=None)[0])
    extra = np.sum((centred[treated] @ gap[1:]) ** 2) / treated.sum() ** 2
    expected = np.sqrt((ols.bse[1] ** 2 + extra) * n / (n - 1))
    assert fit.result_.diagnostics.checks["se"] == pytest.approx(expected, rel=1e-8)


def test_additive_history_equals_hand_formula() -> None:
    rng = np.random.default_rng(11)
    n, periods = 60, np.arange(1, 7)
    g = np.where(rng.random(n) < 0.4, rng.choice([3, 5], n), np.nan)
    rows = pd.DataFrame([(i, t) for i in range(n) for t in periods], columns=["id", "t"])
    rows["g"] = g[rows["id"]]
    rows["y"] = rng.gamma(2.0, 10.0, len(rows)) + 3.0 * (rows["t"] >= rows["g"])
    fit = RegressionAdjustment(lookback=2).fit(rows, unit="id", time="t", group="g",
                                               outcome="y")
    gaps = []
    for cohort in (3, 5):
        history = rows[rows["t"].between(cohort - 2, cohort - 1)].groupby("id")["y"].mean()
        post = rows[(rows["t"] >= cohort) & (rows["g"].isna() | (rows["g"] == cohort))]
        post = post.assign(gap=post["y"] - post["id"].map(history))
        shift = post[post["g"].isna()].groupby("t")["gap"].mean()
        members = post[post["g"] == cohort]
        gaps.append(members["gap"] - members["t"].map(shift))
    assert fit.result_.estimate == pytest.approx(pd.concat(gaps).mean(), abs=1e-8)
    assert fit.result_.n_obs == sum(len(x) for x in gaps)


@cache
def fitted(seed: int) -> RegressionAdjustment:
    panel, _ = simulated(seed)
    community = "community" if seed == SEEDS[0] else None
    return RegressionAdjustment().fit(panel, covariates=COVARIATES, community=community,
                                      **COLUMNS)


@pytest.mark.parametrize("seed", SEEDS)
def test_regression_recovers_the_lift(seed: int) -> None:
    _, truth = simulated(seed)
    result = fitted(seed).result_
    error = abs(result.estimate - truth["att_covered"])
    assert error < 13.0                          # measured 12.8 (seed 1), 8.9 (seed 2)
    assert error < 0.1 * (truth["naive"] - truth["att_covered"])
    se = result.diagnostics.checks["se"]
    assert abs(result.estimate - truth["att_covered"]) < 2.5 * se   # measured 2.1 and 1.4 SE
    assert result.method == "regression" and result.interval == "95% CI"
    assert result.estimand == "community_revenue_lift"


def test_by_community() -> None:
    fit = fitted(SEEDS[0])
    assert set(fit.result_.by_group) == {"discord", "forum"}
    for row in fit.result_.by_group.values():
        assert row["interval"] == "95% CI" and row["low"] < row["estimate"] < row["high"]
    assert fit.result_.by_group["discord"]["estimate"] > fit.result_.by_group["forum"]["estimate"]
    assert not fit.group_.empty and fit.summary().index[0] == "regression"


def test_rejects_unknown_history_mode() -> None:
    with pytest.raises(ValueError, match="history"):
        RegressionAdjustment(history="oops")


def test_rejects_duplicates_and_changing_groups() -> None:
    rows = pd.DataFrame({"id": [1, 1, 2, 2], "t": [1, 2, 1, 2], "g": [2, 2, None, None],
                         "y": [1.0, 2.0, 1.0, 1.0]})
    columns = {"unit": "id", "time": "t", "group": "g", "outcome": "y"}
    with pytest.raises(ValueError, match="one row per unit"):
        RegressionAdjustment().fit(pd.concat([rows, rows.iloc[[0]]]), **columns)
    with pytest.raises(ValueError, match="constant"):
        RegressionAdjustment().fit(rows.assign(g=[2, 1, None, None]), **columns)


def _small_panel(seed: int = 5) -> pd.DataFrame:
    """A staggered panel with a covariate, gaps (inactive months) and three cohorts."""
    rng = np.random.default_rng(seed)
    n, periods = 150, np.arange(1, 9)
    g = np.where(rng.random(n) < 0.45, rng.choice([3, 5, 6], n), np.nan)
    x = rng.normal(size=n)
    rows = pd.DataFrame([(i, t) for i in range(n) for t in periods], columns=["id", "t"])
    rows["g"], rows["x"] = g[rows["id"]], x[rows["id"]]
    level = rng.gamma(3.0, 8.0, n)[rows["id"]]
    rows["y"] = (level * (1 + 0.05 * rows["t"]) + 2.0 * rows["x"] + rng.normal(0, 3, len(rows))
                 + 4.0 * (rows["t"] >= rows["g"]))
    rows["active"] = rng.random(len(rows)) > 0.1
    return rows


def _reference_imputation(rows: pd.DataFrame, history: str, lookback: int = 2) -> float:
    """Row by row with statsmodels: per cohort, history over the lookback window, the outcome
    model fitted by OLS on the controls' post rows, imputed for the members' post rows."""
    rows = rows[rows["active"]]
    gaps = []
    for cohort in sorted(rows["g"].dropna().unique()):
        window = rows[rows["t"].between(cohort - lookback, cohort - 1)]
        h = window.groupby("id")["y"].mean()
        post = rows[(rows["t"] >= cohort) & (rows["g"].isna() | (rows["g"] == cohort))
                    & rows["id"].isin(h.index)].copy()
        post["h"] = post["id"].map(h)
        post["months"] = post["id"].map(window.groupby("id").size())
        control = post[post["g"].isna()]
        if history == "scale":
            ratio = control.groupby("t")["y"].sum() / control.groupby("t")["h"].sum()
            post["offset"] = post["h"] * post["t"].map(ratio)
        else:
            post["offset"] = 0.0
        formula = {"none": "y ~ C(t) + x", "scale": "I(y - offset) ~ C(t) + x",
                   "regressor": "y ~ C(t) * h + x + np.sqrt(h) + np.log1p(h) + months"}[history]
        control, member = post[post["g"].isna()], post[post["g"] == cohort]
        fit = smf.ols(formula, control).fit()
        imputed = fit.predict(member) + member["offset"]
        gaps.append(member["y"] - imputed)
    return float(pd.concat(gaps).mean())


@pytest.mark.parametrize("history", ["none", "scale", "regressor"])
def test_history_modes_equal_a_row_level_statsmodels_fit(history: str) -> None:
    rows = _small_panel()
    fit = RegressionAdjustment(history=history, lookback=2).fit(
        rows, unit="id", time="t", group="g", outcome="y", covariates=["x"], active="active")
    assert fit.result_.estimate == pytest.approx(_reference_imputation(rows, history), abs=1e-8)


def test_per_community_fits_leave_the_pooled_attributes_alone() -> None:
    rows = _small_panel()
    rows["club"] = np.where(rows["g"].isna(), None, np.where(rows["id"] % 2, "a", "b"))
    columns = {"unit": "id", "time": "t", "group": "g", "outcome": "y", "active": "active"}
    pooled = RegressionAdjustment(lookback=2).fit(rows, **columns)
    fit = RegressionAdjustment(lookback=2).fit(rows, community="club", **columns)
    pd.testing.assert_frame_equal(fit.group_, pooled.group_)
    for club in ("a", "b"):
        alone = RegressionAdjustment(lookback=2).fit(rows[rows["club"].isin([None, club])
                                                         | rows["g"].isna()], **columns)
        assert fit.result_.by_group[club]["estimate"] == pytest.approx(alone.result_.estimate,
                                                                       abs=1e-10)


def test_bad_panel_errors_name_the_rule_count_and_example_units() -> None:
    rows = pd.DataFrame({"id": ["a", "a", "b", "b", "c", "c"], "t": [1, 2] * 3,
                         "g": [2, 2, None, None, 2, 2], "y": [1.0, 2.0, 1.0, 1.0, 3.0, 4.0]})
    columns = {"unit": "id", "time": "t", "group": "g", "outcome": "y"}
    with pytest.raises(ValueError, match=r"2 unit-periods have duplicates \(units 'a', 'c'\)"):
        RegressionAdjustment().fit(pd.concat([rows, rows.iloc[[0, 4]]]), **columns)
    with pytest.raises(ValueError, match=r"'g' \(join period\) changes within 1 units.*'c'"):
        RegressionAdjustment().fit(rows.assign(g=[2, 2, None, None, 2, 1]), **columns)


def test_stack_equals_a_direct_construction_from_the_wide_matrix() -> None:
    """The stacks read the design's precomputed mask, zero-filled outcome and running history
    counts; the same stack computed directly from the NaN-coded wide matrix (the former path),
    also for a community's subset."""
    from roi.revenue_lift.regression_adjustment import HISTORY, stacked_design

    rows = _small_panel()
    rows["community"] = np.where(rows["g"].notna(), rows["id"] % 2, np.nan)
    design = stacked_design(rows, unit="id", time="t", group="g", outcome="y", covariates=["x"],
                            active="active", lookback=2, min_history=1, unit_columns=("community",))
    never = np.isnan(design.cohort)
    for sub in (design, design.subset(never | (design.unit_values["community"] == 1))):
        for g in sub.cohorts:
            start = int(np.searchsorted(sub.periods, g))
            window = sub.wide[:, start - 2:start]
            n_hist = np.isfinite(window).sum(axis=1)
            keep = np.flatnonzero(((sub.cohort == g) | np.isnan(sub.cohort)) & (n_hist >= 1))
            mean = np.nansum(window[keep], axis=1) / n_hist[keep]
            stack = sub.stack(g)
            np.testing.assert_array_equal(stack.units, keep)
            np.testing.assert_allclose(stack.level, mean, rtol=1e-14)
            np.testing.assert_array_equal(stack.features[:, -1], n_hist[keep])
            assert stack.features.shape[1] == 1 + len(HISTORY)
            post = sub.wide[keep, start:]
            np.testing.assert_array_equal(stack.observed, np.isfinite(post))
            np.testing.assert_array_equal(stack.outcome, np.nan_to_num(post, nan=0.0))
