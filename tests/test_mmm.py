"""Media-mix model: components against the simulator, and the model on the 3,000-customer sample.

The sample world is small for an MMM: weekly revenue noise is about 8% of mean revenue while each
channel brings 3-10%. Even OLS with the TRUE adstock and Hill curves plugged in estimates the
channels' ROAS with standard errors of 2.5 (search), 1.3 (social), 0.6 (display) and 0.45
(video), so point recovery is not reachable on it: the tests below assert what an honest model
must do there (intervals that are wide and hold the truth). Recovery targets (mean absolute
error < 0.3, truth in >= 3 of 4 HDIs) are tested on 50,000-customer worlds in
``test_media_recovery.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from roi.paid_media import (
    DelayedAdstock,
    GeometricAdstock,
    HillSaturation,
    LogisticSaturation,
    MediaMixModel,
)
from roi.simulate import _adstock, _hill

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
os.environ.setdefault("PYTENSOR_FLAGS", f"base_compiledir={ROOT / '.cache' / 'pytensor'}")


# --------------------------------------------------------------------------- components


def _flighted_spend(seed: int = 3, n: int = 104) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.round(rng.lognormal(8, 0.5, n) * (rng.random(n) > 0.3), 2)


@pytest.mark.parametrize("decay", [0.0, 0.2, 0.5, 0.7, 0.95])
def test_geometric_adstock_equals_simulator(decay):
    spend = _flighted_spend()
    ours = GeometricAdstock().apply(spend, decay=decay)
    np.testing.assert_allclose(ours, _adstock(spend, decay), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("half", "shape"), [(2345.99, 1.0), (5758.57, 1.5), (12778.3, 2.0)])
def test_hill_equals_simulator(half, shape):
    stock = _adstock(_flighted_spend(), 0.5)
    ours = HillSaturation().apply(stock, half=half, shape=shape)
    np.testing.assert_allclose(ours, _hill(stock, half, shape), rtol=1e-10, atol=1e-12)


def test_adstock_vectorises_over_draws_and_channels():
    spend = np.column_stack([_flighted_spend(s) for s in range(3)])          # (week, channel)
    decay = np.array([[0.1, 0.5, 0.9], [0.3, 0.3, 0.3]])                    # (draw, channel)
    out = GeometricAdstock().apply(spend[:, None, :], decay=decay)
    assert out.shape == (104, 2, 3)
    np.testing.assert_allclose(out[:, 0, 2], _adstock(spend[:, 2], 0.9), rtol=1e-10)


@pytest.mark.parametrize("component, params", [
    (GeometricAdstock(), {"decay": [0.2, 0.7]}),
    (GeometricAdstock(l_max=8, normalize=True), {"decay": [0.2, 0.7]}),
    (DelayedAdstock(l_max=6), {"decay": [0.4, 0.8], "delay": [0.5, 2.0]}),
    (HillSaturation(), {"half": [0.8, 1.4], "shape": [1.0, 2.0]}),
    (LogisticSaturation(), {"lam": [0.5, 2.0]}),
])
@pytest.mark.parametrize("as_tensor", [True, False])
def test_pytensor_version_equals_numpy(component, params, as_tensor):
    import pytensor
    import pytensor.tensor as pt

    x = np.column_stack([_flighted_spend(1, 30), _flighted_spend(2, 30)]) / 3000.0
    values = {k: np.array(v) for k, v in params.items()}
    symbolic = component.pt_apply(pt.as_tensor_variable(x) if as_tensor else x,
                                  **{k: pt.as_tensor_variable(v) for k, v in values.items()})
    evaluate = pytensor.function([], symbolic, mode="FAST_COMPILE")
    np.testing.assert_allclose(evaluate(), component.apply(x, **values), rtol=1e-9,
                               atol=1e-12)


def test_truncated_and_normalised_weights():
    w = GeometricAdstock(l_max=3, normalize=True).weights(np.arange(3.0), decay=0.5)
    np.testing.assert_allclose(w, [4 / 7, 2 / 7, 1 / 7])
    out = GeometricAdstock(l_max=2).apply(np.array([1.0, 0.0, 0.0]), decay=0.5)
    assert out.tolist() == [1.0, 0.5, 0.0]


# --------------------------------------------------------------------------- fitted model


@pytest.fixture(scope="module")
def weekly():
    from connectors import open_source
    from roi.data import load_dataset

    return load_dataset(open_source(str(SAMPLE))).weekly_series()


@pytest.fixture(scope="module")
def fitted(weekly):
    """Same structure as the simulated worlds (one compile per session); 2 x 300 draws."""
    return MediaMixModel(draws=300, tune=500, chains=2, seed=11).fit(weekly)


@pytest.fixture(scope="module")
def truth():
    return json.loads((SAMPLE / "truth.json").read_text())


def test_contract_shape_on_the_sample(fitted, weekly):
    paid = fitted.to_contract()
    json.dumps(paid)
    assert set(paid["channels"]) == {"search", "social", "display", "video"}
    for channel, entry in paid["channels"].items():
        assert entry["spend"] == pytest.approx(float(weekly.spend[channel].sum()))
        for key in ("roas", "marginal_roas"):
            assert entry[key]["interval"] == "94% HDI"
            assert entry[key]["low"] <= entry[key]["estimate"] <= entry[key]["high"]
    assert list(fitted.summary().index) == list(weekly.spend.columns)
    assert len(paid["weekly_contributions"]) == 4 * len(weekly.totals)
    assert set(paid["communities"]) == {"discord", "forum"}
    assert fitted.result_.diagnostics.checks["sampler"] == "nutpie"


def test_sample_intervals_are_honest(fitted, truth):
    """What the model honestly gives on the noisy sample (measured, seeds 11 and 12): wide HDIs
    (0.7-2.0 dollars per dollar) that hold the truth for display and video, while search (truth
    3.0, HDI 0.12-1.97) and social (1.8, HDI 0.09-1.69) are pulled towards the prior median
    (then 1; from the data since issue 18, 1.31 = 0.15 x revenue / spend: with the shipped
    4 x 1000 draws, seed 7, search 1.08 [0.13, 2.39], social 0.91 [0.13, 2.00]):
    the data cannot tell the channels apart (the regression baseline agrees: its 95% CIs for
    search and social span more than 4 dollars per dollar). Recovery is tested on
    50,000-customer worlds instead."""
    paid = fitted.to_contract()
    channels = paid["channels"]
    inside = {c: channels[c]["roas"]["low"] <= truth["roas"][c] <= channels[c]["roas"]["high"]
              for c in channels}
    assert inside["display"] and inside["video"], inside
    assert min(p["roas"]["high"] - p["roas"]["low"] for p in channels.values()) > 0.7
    for channel in ("search", "social"):
        baseline = paid["regression_baseline"]["channels"][channel]["roas"]
        assert baseline["high"] - baseline["low"] > 4.0, baseline
