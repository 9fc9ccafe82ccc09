"""How well the media-mix model fits, and how long an ad's effect lasts, from its posterior.

* :func:`fitted_revenue`: the model's expected weekly revenue per posterior draw, in currency,
  recomputed in numpy from the draws exactly as :func:`roi.paid_media.model.build_model` builds
  ``mu`` (baseline + centred community term + centred paid-media term). The noise ``sigma`` of
  the model is the spread of actual revenue around it, which the tests use as a check.
* :func:`fit_block`: ``paid_media.fit`` of ``results.json``: actual and predicted revenue per
  week (posterior mean of the expected revenue) with the 94% HDI of the posterior predictive
  (expected revenue plus the model's noise, so about 94% of actual weeks should fall inside),
  R-squared and MAPE of the posterior mean.
* :func:`adstock_block`: ``paid_media.adstock``: for each channel the share of an ad's total
  carried-over effect that lands ``l`` weeks after the spend (mean and 94% HDI per lag) and
  the weeks by which half of it has landed.

Examples
--------
>>> half_life(np.array([[0.5, 0.25, 0.125, 0.125]]))   # half lands in the week of the spend
array([1.])
>>> fit_statistics(np.array([10.0, 20.0, 30.0]), np.array([11.0, 19.0, 30.0]))
{'r_squared': 0.99, 'mape': 0.05}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from roi.results import HDI94, hdi_bounds


def fitted_revenue(mmm) -> np.ndarray:
    """Expected weekly revenue (draw, week) in currency of a fitted ``MediaMixModel``."""
    from roi.paid_media.mmm import MediaResponse, community_contributions
    from roi.paid_media.sampling import posterior_draws

    data, inputs = mmm.data_, mmm.inputs_
    draws = posterior_draws(mmm.idata_)
    baseline = (draws["level"][:, None] + draws["rate"][:, None] * inputs["customers"][None, :]
                + draws["fourier"] @ inputs["seasonal"].T
                + draws["gamma"] @ inputs["controls"].T)                      # (draw, week)
    media = MediaResponse(data, draws, adstock=mmm.adstock,
                          saturation=mmm.saturation).fitted.sum(axis=2).T     # (draw, week)
    total = baseline * data.scale + media - media.mean(axis=1, keepdims=True)
    if data.communities:
        members = community_contributions(data, draws, community_adstock=mmm.community_adstock)
        members = members.sum(axis=2).T
        total += members - members.mean(axis=1, keepdims=True)
    return total


def fit_statistics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """R-squared (1 - residual / total sum of squares) and MAPE (mean absolute error over
    actual, weeks with positive actual revenue), rounded to 4 decimals."""
    residual = float(np.sum((actual - predicted) ** 2))
    spread = float(np.sum((actual - actual.mean()) ** 2))
    positive = actual > 0
    mape = float(np.mean(np.abs(actual - predicted)[positive] / actual[positive]))
    return {"r_squared": round(1.0 - residual / spread, 4) if spread > 0 else None,
            "mape": round(mape, 4)}


def fit_block(mmm, *, seed: int = 0) -> dict[str, Any]:
    """``paid_media.fit``: weekly actual vs predicted, 94% HDI of the posterior predictive
    (one seeded noise draw per posterior draw and week)."""
    from roi.paid_media.sampling import posterior_draws

    fitted = fitted_revenue(mmm)
    actual = np.asarray(mmm.data_.revenue, dtype=float)
    predicted = fitted.mean(axis=0)
    sigma = posterior_draws(mmm.idata_)["sigma"][:, None] * mmm.data_.scale
    noise = np.random.default_rng(seed).standard_normal(fitted.shape)
    low, high = hdi_bounds(fitted + sigma * noise)
    weeks = [{"week": week.strftime("%Y-%m-%d"), "actual": float(a), "predicted": float(p),
              "low": float(lo), "high": float(hi)}
             for week, a, p, lo, hi in zip(mmm.data_.weeks, actual, predicted, low, high,
                                           strict=True)]
    inside = float(np.mean((actual >= low) & (actual <= high)))
    return {"interval": HDI94, "band": "posterior predictive", **fit_statistics(actual, predicted),
            "share_inside": round(inside, 4), "weeks": weeks}


def half_life(shares: np.ndarray) -> np.ndarray:
    """Weeks by which half of the effect has landed, per draw (rows of lag shares summing to
    1): the cumulative share is 0 at 0 and reaches ``sum(shares[:l + 1])`` at ``l + 1`` weeks,
    linear in between. For geometric decay ``d`` the cumulative share is ``1 - d**t`` at whole
    weeks, so a decay with ``log 0.5 / log d`` a whole number gives exactly that number.

    Examples
    --------
    >>> d = 0.5 ** (1 / 3)
    >>> weights = d ** np.arange(200.0)
    >>> half_life((weights / weights.sum())[None, :]).round(6)
    array([3.])
    """
    cumulative = np.concatenate([np.zeros((len(shares), 1)), np.cumsum(shares, axis=1)], axis=1)
    out = np.empty(len(shares))
    for i, row in enumerate(cumulative):
        k = int(np.searchsorted(row, 0.5))
        k = min(max(k, 1), len(row) - 1)
        out[i] = (k - 1) + (0.5 - row[k - 1]) / (row[k] - row[k - 1])
    return out


def adstock_block(mmm) -> dict[str, Any]:
    """``paid_media.adstock``: per channel the share of an ad's effect landing at each lag."""
    from roi.paid_media.sampling import posterior_draws
    from roi.results import hdi_entry

    draws = posterior_draws(mmm.idata_)
    length = mmm.adstock._length(len(mmm.data_.weeks))
    lags = np.arange(length, dtype=float)[:, None, None]                  # (lag, draw, channel)
    params = {k: draws[f"media_{k}"][None, :, :] for k in mmm.adstock.params}
    weights = np.asarray(mmm.adstock.weights(lags, **params), dtype=float)
    shares = weights / weights.sum(axis=0, keepdims=True)
    channels = {}
    for j, channel in enumerate(mmm.data_.channels):
        by_draw = shares[:, :, j].T                                        # (draw, lag)
        low, high = hdi_bounds(by_draw)
        channels[channel] = {"share": {"estimate": [round(float(v), 5) for v in
                                                    by_draw.mean(axis=0)],
                                       "low": [round(float(v), 5) for v in low],
                                       "high": [round(float(v), 5) for v in high]},
                             "half_life_weeks": hdi_entry(half_life(by_draw))}
    return {"interval": HDI94, "component": repr(mmm.adstock),
            "lags": list(range(length)), "channels": channels}
