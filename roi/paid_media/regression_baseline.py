"""Fast regression baseline for paid-media ROAS: OLS with profiled adstock and saturation.

For each channel, adstock decay and Hill half-saturation / shape are chosen on a grid by profile
likelihood (coordinate descent: each channel's grid point that minimises the residual sum of
squares with the others held, ``passes`` sweeps); with the curves fixed, weekly revenue is
regressed (statsmodels OLS) on the same baseline as the Bayesian model (intercept, active
customers, customers x yearly Fourier terms, controls, communities' adstocked active members)
and each channel's transformed spend. ROAS = coefficient x sum of the transformed series /
spend, with a 95% confidence interval from the coefficient's standard error. A channel whose
spend never varies is left out (its ROAS is ``None`` with a note).

Caveat: the interval is conditional on the selected curves (it ignores the uncertainty of the
grid choice), and OLS does not keep ROAS positive; use it as a quick first answer and a
cross-check of the Bayesian model, not instead of it.

Examples
--------
>>> from roi.simulate_media import simulate_media_world
>>> world = simulate_media_world(seed=1, n_customers=20_000)
>>> fit = RegressionBaseline(controls=("promo",)).fit(world.weekly)
>>> fit.to_contract()["channels"]["search"]["roas"]["interval"]
'95% CI'
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from roi.paid_media.components import GeometricAdstock, HillSaturation
from roi.paid_media.model import MediaData, prepare
from roi.results import CI95

DECAYS = (0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9)
HALVES = (0.5, 0.8, 1.2, 2.0)
SHAPES = (1.0, 2.0)


def channel_features(spend: np.ndarray, *, decay: float, half: float, shape: float
                     ) -> np.ndarray:
    """``hill(adstock(spend) / mean adstock)`` for one channel (the model's curve family).

    Examples
    --------
    >>> channel_features(np.array([1.0, 0.0, 1.0]), decay=0.0, half=1.0, shape=1.0).round(2)
    array([0.6, 0. , 0.6])
    """
    stock = GeometricAdstock().apply(spend / spend.mean(), decay=decay)
    return HillSaturation().apply(stock / stock.mean(), half=half, shape=shape)


def baseline_design(data: MediaData, *, community_decay: float = 0.5) -> np.ndarray:
    """Intercept, customers, customers x Fourier, standardised controls, community stock."""
    customers = data.customers / data.customers.mean()
    members = GeometricAdstock(l_max=8, normalize=True).apply(
        data.members / data.customers.mean(), decay=community_decay)
    controls = data.controls - data.controls.mean(axis=0)
    # Without a customers column (all ones) it would repeat the intercept.
    level = [np.ones(len(customers))] + ([customers] if np.ptp(customers) > 0 else [])
    return np.column_stack([*level, customers[:, None] * data.fourier, controls,
                            members.reshape(len(customers), -1)])


class RegressionBaseline:
    """OLS media regression with profile-likelihood curves (see the module docstring).

    Parameters
    ----------
    n_fourier : int
        Yearly Fourier pairs.
    controls : sequence of str
        Columns of ``weekly.totals`` used as controls.
    decays, halves, shapes : sequence of float
        Grids of geometric decay, Hill half-saturation (multiples of mean adstocked spend) and
        Hill shape.
    passes : int
        Coordinate-descent sweeps over the channels.

    Attributes
    ----------
    params_ : dict
        Chosen ``decay``, ``half``, ``shape`` per channel.
    ols_ : statsmodels RegressionResults
    table_ : DataFrame
        Per channel: spend, roas, se, low, high (95% CI).
    """

    def __init__(self, *, n_fourier: int = 2, controls: Sequence[str] = (),
                 decays: Sequence[float] = DECAYS, halves: Sequence[float] = HALVES,
                 shapes: Sequence[float] = SHAPES, passes: int = 2) -> None:
        self.n_fourier, self.controls = n_fourier, tuple(controls)
        self.grid = list(itertools.product(decays, halves, shapes))
        self.passes = passes

    def fit(self, weekly) -> RegressionBaseline:
        """Profile the curves, fit OLS, compute per-channel ROAS with 95% CIs; returns self."""
        return self.fit_data(prepare(weekly, n_fourier=self.n_fourier, controls=self.controls))

    def fit_data(self, data: MediaData) -> RegressionBaseline:
        """:meth:`fit` on prepared arrays (:func:`roi.paid_media.frame.prepare_frame`), e.g. the
        media-mix model's own; ``data`` is not modified."""
        import statsmodels.api as sm

        data = dataclasses.replace(data)
        self.constant_ = {ch: float(data.spend[:, data.channels.index(ch)].sum())
                          for ch in data.constant_channels}   # not identified: left out
        keep = [c for c, ch in enumerate(data.channels) if ch not in self.constant_]
        data.spend, data.channels = data.spend[:, keep], [data.channels[c] for c in keep]
        self.data_ = data
        base = baseline_design(data)
        choice = [self.grid[0]] * len(data.channels)
        columns = [self._feature(c, choice[c]) for c in range(len(data.channels))]
        for _ in range(self.passes):
            for c in range(len(data.channels)):
                choice[c], columns[c] = self._profile(c, base, columns)
        design = np.column_stack([base, *columns])
        self.ols_ = sm.OLS(data.revenue, design).fit()
        self.params_ = {ch: dict(zip(("decay", "half", "shape"), choice[c], strict=True))
                        for c, ch in enumerate(data.channels)}
        self.table_ = self._table(columns, n_base=base.shape[1])
        return self

    def _feature(self, c: int, point: tuple[float, float, float]) -> np.ndarray:
        decay, half, shape = point
        return channel_features(self.data_.spend[:, c], decay=decay, half=half, shape=shape)

    def _profile(self, c: int, base: np.ndarray, columns: list[np.ndarray]):
        others = [col for k, col in enumerate(columns) if k != c]
        best = (np.inf, None, None)
        for point in self.grid:
            feature = self._feature(c, point)
            design = np.column_stack([base, *others, feature])
            coef = np.linalg.lstsq(design, self.data_.revenue, rcond=None)[0]
            value = float(((self.data_.revenue - design @ coef) ** 2).sum())
            if value < best[0]:
                best = (value, point, feature)
        return best[1], best[2]

    def _table(self, columns: list[np.ndarray], *, n_base: int) -> pd.DataFrame:
        data, ols = self.data_, self.ols_
        t = stats.t.ppf(0.975, ols.df_resid)
        rows = []
        for c, ch in enumerate(data.channels):
            per_unit = columns[c].sum() / data.spend[:, c].sum()
            roas = ols.params[n_base + c] * per_unit
            se = ols.bse[n_base + c] * per_unit
            rows.append({"channel": ch, "spend": float(data.spend[:, c].sum()),
                         "roas": float(roas), "se": float(se), "low": float(roas - t * se),
                         "high": float(roas + t * se), **self.params_[ch]})
        for ch in self.constant_:
            rows.append({"channel": ch, "spend": self.constant_[ch], "roas": np.nan, "se": np.nan,
                         "low": np.nan, "high": np.nan, "decay": np.nan, "half": np.nan,
                         "shape": np.nan})
        return pd.DataFrame(rows).set_index("channel")

    def to_contract(self) -> dict[str, Any]:
        """``paid_media.regression_baseline``: ``{"method", "channels": {ch: {"roas": entry95}}}``."""
        channels = {ch: {"spend": _num(row["spend"]),
                         "roas": {"estimate": _num(row["roas"]), "low": _num(row["low"]),
                                  "high": _num(row["high"]), "interval": CI95},
                         "curve": {k: _num(row[k]) for k in ("decay", "half", "shape")}}
                    for ch, row in self.table_.iterrows()}
        notes = [f"channel {ch!r} has constant spend: no ROAS without variation"
                 for ch in self.constant_]
        return {"method": "regression", "channels": channels, "notes": notes}


def _num(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
