"""``adjusted_estimates`` (one design for regression adjustment, AIPW and the benchmarks)
against the three fitted one by one, as ``roi run`` used to: every estimate, SE, per-community
entry, table, check and warning equal to 1e-10 relative (sums run in another order).

A 4,000-customer world; the benchmarks' customer cap is lowered so that their seeded sample is
taken (the design restricted to it), and one extra community has only members without pre-join
history, so that its per-community fits are refused with the separate fits' reason.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest

from roi.results import EffectResult
from roi.revenue_lift.adjusted import adjusted_estimates
from roi.revenue_lift.regression_adjustment import RegressionAdjustment
from roi.revenue_lift.weighting import AIPW
from roi.sensitivity import benchmarks

COVARIATES = ["segment", "region", "acquisition_channel", "plan", "employees"]
COLUMNS = {"unit": "customer_id", "time": "month_index", "group": "join_month_index",
           "outcome": "revenue", "active": "active"}


@cache
def _panel() -> pd.DataFrame:
    from connectors import open_source
    from roi.data import load_dataset
    from roi.simulate import simulate_world

    panel = load_dataset(open_source(simulate_world(n_customers=4000, seed=3).tables)
                         ).customer_month_panel()
    # a community whose members all joined in the first month: nothing to compare them with
    members = panel.loc[panel["join_month_index"].notna(), "customer_id"].unique()[:25]
    rows = panel["customer_id"].isin(members)
    panel["community"] = panel["community"].cat.add_categories("early")
    panel.loc[rows, "community"] = "early"
    panel.loc[rows, "join_month_index"] = panel["month_index"].min()
    return panel


def _separately(panel: pd.DataFrame, **options) -> dict:
    adjusted = {**COLUMNS, "covariates": COVARIATES}
    return {"regression": RegressionAdjustment(**options).fit(panel, community="community",
                                                              **adjusted).result_,
            "aipw": AIPW(**options).fit(panel, community="community", **adjusted).result_,
            "ovb_benchmarks": benchmarks.benchmark_partial_r2(
                panel, **adjusted, seed=5, lookback=options.get("lookback", 12))}


def _flat(value):
    if isinstance(value, EffectResult):
        return {"contract": value.to_contract(), "by_group": value.by_group,
                "tables": value.tables, "checks": value.diagnostics.checks,
                "warnings": value.diagnostics.warnings, "n_treated": value.n_treated,
                "n_obs": value.n_obs, "scale": value.scale}
    return value


def _differences(a, b, path=""):
    """(relative difference, path) of every number; exact comparison of everything else."""
    a, b = _flat(a), _flat(b)
    if isinstance(a, dict):
        assert set(a) == set(b), path
        return [d for key in a for d in _differences(a[key], b[key], f"{path}.{key}")]
    if isinstance(a, pd.DataFrame):
        assert list(a.columns) == list(b.columns) and a.shape == b.shape, path
        return [d for c in a.columns
                for d in _differences(a[c].to_numpy(), b[c].to_numpy(), f"{path}[{c}]")]
    if isinstance(a, list | tuple):
        assert len(a) == len(b), path
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _differences(x, y, f"{path}[{i}]")]
    if isinstance(a, float | np.ndarray) and np.asarray(a).dtype.kind == "f":
        x, y = np.asarray(a, float), np.asarray(b, float)
        assert np.array_equal(np.isnan(x), np.isnan(y)), path
        scale = np.maximum(np.abs(x), 1e-300)
        gap = np.where(np.isnan(x), 0.0, np.abs(x - y) / scale)
        return [(float(gap.max(initial=0.0)), path)]
    if isinstance(a, np.ndarray):
        assert np.array_equal(a, b), path
        return []
    assert a == b, (path, a, b)
    return []


@pytest.fixture(scope="module")
def both():
    panel = _panel()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(benchmarks, "MAX_CUSTOMERS", 1500)
        new = adjusted_estimates(panel, covariates=COVARIATES, seed=5)
        old = _separately(panel)
    return new, old


def test_adjusted_estimates_equal_the_separate_fits(both) -> None:
    new, old = both
    worst = max(_differences(old, new))
    assert worst[0] < 1e-10, worst
    regression = new["regression"]
    assert set(regression.by_group) == {"discord", "forum", "early"}
    assert regression.by_group["early"]["refused"].startswith("not estimated: ")
    assert np.isfinite(new["aipw"].by_group["forum"]["estimate"])
    assert len(new["ovb_benchmarks"]) == len(COVARIATES) + 1


def test_other_outcome_models_are_fitted_separately() -> None:
    panel = _panel()
    options = {"history": "scale", "lookback": 6}
    new = adjusted_estimates(panel, covariates=COVARIATES, seed=5,
                             regression=RegressionAdjustment(**options), aipw=AIPW(**options))
    old = _separately(panel, **options)
    assert max(_differences(old, new))[0] == 0.0


def test_without_communities() -> None:
    panel = _panel()
    new = adjusted_estimates(panel, covariates=COVARIATES, seed=5, community=None)
    adjusted = {**COLUMNS, "covariates": COVARIATES}
    old = {"regression": RegressionAdjustment().fit(panel, **adjusted).result_,
           "aipw": AIPW().fit(panel, **adjusted).result_}
    assert max(_differences(old, {k: new[k] for k in old}))[0] == 0.0
    assert new["regression"].by_group == {}
