"""Bayesian piecewise-exponential survival on person-period cells (roi.retention.bayes_survival).

Fits share one simulated world (20,000 customers, true member hazard ratio 0.70), one Cox fit and
one small posterior (2 chains x 300 draws), built once per session by :func:`fitted` (also used
by ``tests/test_retention_value.py``); the gate test samples a tiny table for 20 draws.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("PYTENSOR_FLAGS", "base_compiledir=" + os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "pytensor"))

from connectors import open_source  # noqa: E402
from roi.data import load_dataset  # noqa: E402
from roi.retention.bayes_survival import (  # noqa: E402
    BayesianPiecewiseSurvival,
    person_period_cells,
    piece_exposure,
)
from roi.retention.cox_time_varying import CoxTimeVarying  # noqa: E402
from roi.simulate import simulate_world  # noqa: E402

COVARIATES = ["segment", "region", "acquisition_channel", "plan", "employees"]
TRUE_HR = 0.70


@functools.cache
def fitted() -> dict:
    """The shared world, its tables, a time-varying Cox fit and a small posterior."""
    sim = simulate_world(n_customers=20_000, seed=11)
    ds = load_dataset(open_source(sim.tables))
    table = ds.survival_table()
    out = {"sim": sim, "ds": ds, "table": table, "panel": ds.customer_month_panel()}
    out["cox"] = CoxTimeVarying().fit(table, covariates=COVARIATES, community="community")
    out["bayes"] = BayesianPiecewiseSurvival(draws=300, tune=300, chains=2, random_seed=3,
                                             target_accept=0.9).fit(
        table, covariates=COVARIATES, community="community")
    return out


@pytest.fixture(scope="module")
def world():
    return fitted()


@pytest.fixture(scope="module")
def cox(world):
    return world["cox"]


@pytest.fixture(scope="module")
def bayes(world):
    return world["bayes"]


def test_cells_reproduce_events_and_exposure_exactly(world):
    table = world["table"]
    cells = person_period_cells(table, covariates=COVARIATES, community="community")
    assert cells["events"].sum() == table["event"].sum()
    assert cells["exposure"].sum() == (table["stop"] - table["start"]).sum()
    member = table["member"] == 1
    assert (cells.loc[cells["member"] == 1, "exposure"].sum()
            == (table["stop"] - table["start"])[member].sum())
    assert len(cells) < len(table) / 3


def test_piece_exposure_counts_start_exclusive_stop_inclusive():
    days, piece = piece_exposure(np.array([0, 30, 59]), np.array([30, 60, 61]),
                                 bounds=np.array([0, 30, 60]))
    assert days.tolist() == [[30, 0, 0], [0, 30, 0], [0, 1, 1]]
    assert piece.tolist() == [0, 1, 2]


def test_bayesian_hr_recovers_truth_and_agrees_with_cox(bayes, cox):
    b, c = bayes.result_, cox.result_
    assert b.interval == "94% HDI" and b.value_name == "hazard_ratio"
    assert abs(b.estimate - TRUE_HR) < 0.05
    assert b.low < TRUE_HR < b.high
    assert c.low < b.estimate < c.high and b.low < c.estimate < b.high
    assert sorted(b.by_group) == ["discord", "forum"]
    for name, entry in b.by_group.items():
        cox_entry = c.by_group[name]
        assert entry["low"] < cox_entry["hazard_ratio"] < entry["high"]
        assert entry["interval"] == "94% HDI"
    assert b.diagnostics.checks["sampler"] == "nutpie"
    assert b.diagnostics.checks["cells"] < 10_000
    assert "theta[discord]" in bayes.summary().index


def test_gate_flags_a_too_short_run(world):
    table = world["table"]
    small = table[table["customer_id"].isin(table["customer_id"].unique()[:3000])]
    short = BayesianPiecewiseSurvival(draws=20, tune=10, chains=2, random_seed=1,
                                      intervals_days=(0, 182, 365)).fit(
        small, covariates=["plan"], community="community")
    assert short.result_.diagnostics.converged is False
    assert any("ESS" in w or "r-hat" in w for w in short.result_.diagnostics.warnings)
    assert short.result_.to_contract()["converged"] is False


def test_bad_inputs_get_clear_errors(world):
    with pytest.raises(ValueError, match="sampler"):
        BayesianPiecewiseSurvival(sampler="stan")
    bad = pd.DataFrame({"customer_id": [1], "start": [5], "stop": [5], "event": [1],
                        "member": [1], "community": ["a"]})
    with pytest.raises(ValueError, match="stop > start"):
        BayesianPiecewiseSurvival().fit(bad, community="community")
    with pytest.raises(ValueError, match="intervals_days"):
        person_period_cells(world["table"].head(), intervals_days=(5, 10))
