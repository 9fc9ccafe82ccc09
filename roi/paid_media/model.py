"""The PyMC graph of the media-mix model and the arrays it reads.

Every array the model reads is a named ``pm.Data`` container, so one compiled model serves any
data set of the same structure (numbers of channels, communities, Fourier pairs, controls):
:func:`model_inputs` gives the arrays and nutpie's ``compiled.with_data(**inputs)`` swaps them
in without recompiling (see :mod:`roi.paid_media.sampling`).

Model (weekly revenue, or any target, ``y_t`` divided by its mean ``Y``)::

    y_t / Y = level + rate * (c_t - 1) + seasonal_t . f + z_t . gamma     # baseline
            + sum_g theta_g * centred(adstock_g(active members_g / mean customers))_t
            + centred(sum_c beta_c * sat_c(stock_c,t / mean_t stock_c,t))      # paid media
            + Normal(0, sigma)
    stock_c = adstock_c(spend_c / mean spend_c)
    beta_c  = roas_c * (spend_c in window / Y) / sum_t sat_c(...)

``c_t`` is active customers over their mean, ``seasonal_t = c_t * fourier_t`` (centred), ``z_t``
the standardised controls (a linear trend among them with ``trend=True``); ``c_t = 1`` when
the data have no active-customer column. ``roas_c`` is the contract's ROAS (revenue caused in
the window / spend in the window) and gets its prior directly.

Revenue and spend enter divided by their means, so the model is the same whatever the data's
units except for the ROAS prior, which is stated in them (target per unit of spend).

Priors (business scale):

* ``roas_c ~ LogNormal(log(roas_median), roas_sigma)``, sigma 0.8 (95% prior mass within a
  factor 4.8 of the median); the median is data (``roas_log_median``), by default the ROAS at
  which paid media as a whole would cause 15% of the target (``MediaMixModel``'s
  ``prior_paid_share``), i.e. 0.15 x target / spend in the data's units.
* adstock / saturation: see :mod:`roi.paid_media.components`.
* ``level ~ Normal(1, 0.3)`` (mean revenue over its sample mean: every other term is centred,
  a reparameterisation that removes the ridge between ``level`` and the ROAS), ``rate ~
  HalfNormal(2)``, ``f ~ Normal(0, 0.2)``, ``gamma ~ Normal(0, 0.2)`` (revenue change per sd of a
  control as a share of mean revenue), ``theta_g ~ Normal(0, 0.5)`` (revenue of an active
  member-week as a multiple of an average customer-week), ``sigma ~ HalfNormal(0.1)``.
* lift tests: ``revenue_change / Y ~ Normal(predicted / Y, se / Y)``
  (:mod:`roi.paid_media.lift_tests`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from roi.paid_media.components import _lagged
from roi.paid_media.lift_tests import LiftTest, lift_arrays


@dataclass
class MediaData:
    """Arrays the model reads (built by :func:`prepare`), in currency and weeks."""

    weeks: pd.DatetimeIndex
    revenue: np.ndarray          # (week,)
    spend: np.ndarray            # (week, channel)
    customers: np.ndarray        # (week,)
    members: np.ndarray          # (week, community) active members
    fourier: np.ndarray          # (week, 2 * n_fourier)
    controls: np.ndarray         # (week, control), raw
    channels: list[str]
    communities: list[str]
    control_names: list[str]
    community_cost: np.ndarray   # (community,)
    dropped_channels: list[str]
    constant_channels: list[str]

    @property
    def scale(self) -> float:
        return float(self.revenue.mean())


def fourier_terms(weeks: pd.DatetimeIndex, *, n_pairs: int) -> np.ndarray:
    """Yearly sine/cosine pairs at each week's Monday (columns sin1, cos1, sin2, ...).

    Examples
    --------
    >>> fourier_terms(pd.date_range("2024-01-01", periods=3, freq="W-MON"), n_pairs=2).shape
    (3, 4)
    """
    years = (weeks - pd.Timestamp("2000-01-03")).days.to_numpy() / 365.25
    cols = []
    for k in range(1, n_pairs + 1):
        cols += [np.sin(2 * np.pi * k * years), np.cos(2 * np.pi * k * years)]
    return np.column_stack(cols) if cols else np.zeros((len(weeks), 0))


def prepare(weekly, *, n_fourier: int = 2, controls: tuple[str, ...] = (),
            trend: bool = False) -> MediaData:
    """:class:`MediaData` from a ``WeeklySeries``: its DataFrame
    (:func:`roi.paid_media.frame.media_frame`) through
    :func:`roi.paid_media.frame.prepare_frame`, the path of any weekly DataFrame.

    Channels whose spend is zero in every week are dropped; channels whose spend never varies
    are kept (their ROAS then comes from the prior and lift tests) and listed in
    ``constant_channels``; both become warnings of the fit.

    Examples
    --------
    >>> from roi.simulate_media import simulate_media_world
    >>> data = prepare(simulate_media_world(seed=1, n_customers=20_000).weekly,
    ...                controls=("promo",))
    >>> data.channels, data.spend.shape
    (['search', 'social', 'display', 'video'], (104, 4))
    """
    from roi.paid_media.frame import media_frame, prepare_frame

    frame, columns = media_frame(weekly, controls=controls)
    return prepare_frame(frame, **columns, n_fourier=n_fourier, trend=trend)


def structure_key(data: MediaData, *, adstock, saturation, community_adstock,
                  roas_sigma: float) -> tuple:
    """What a compiled model depends on (everything else, the prior's median included, is
    swappable data)."""
    return (repr(adstock), repr(saturation), repr(community_adstock), roas_sigma,
            len(data.channels), len(data.communities), data.fourier.shape[1],
            max(1, data.controls.shape[1]))


def model_inputs(data: MediaData, *, adstock, community_adstock,
                 lift_tests: list[LiftTest], roas_median: float = 1.0) -> dict[str, np.ndarray]:
    """Every ``pm.Data`` array of :func:`build_model`, by name; ``roas_median`` (target per
    unit of spend, the data's units) centres the ROAS prior.

    Without lift tests one inert test (zero spend change, zero window) keeps the structure.
    """
    n_weeks, scale = len(data.weeks), data.scale
    mean_spend = data.spend.mean(axis=0)
    length = adstock._length(n_weeks)
    lift = lift_arrays(lift_tests, weeks=data.weeks, channels=data.channels, scale=scale)
    if not lift_tests:
        lift = {"lift_spend": np.zeros((n_weeks, 1)), "lift_mask": np.zeros((n_weeks, 1)),
                "lift_channel": np.zeros(1, "int64"), "lift_observed": np.zeros(1),
                "lift_se": np.ones(1)}
    customers = data.customers / data.customers.mean()
    seasonal = customers[:, None] * data.fourier
    members = data.members / data.customers.mean()
    g_length = community_adstock._length(n_weeks)
    return {
        "revenue": data.revenue / scale,
        "customers": customers - 1.0,
        "seasonal": seasonal - seasonal.mean(axis=0),
        "controls": _standardised(data.controls),   # one zero column when there is none
        "lags": np.arange(length, dtype=float),
        "spend_lagged": _lagged(data.spend / mean_spend, length),
        "spend_total": data.spend.sum(axis=0) / scale,
        "roas_log_median": np.asarray(np.log(roas_median), dtype=float),
        "community_lags": np.arange(g_length, dtype=float),
        "members_lagged": _lagged(members, g_length),
        "lift_lagged": _lagged(lift["lift_spend"] / mean_spend[lift["lift_channel"]], length),
        **{k: lift[k] for k in ("lift_mask", "lift_channel", "lift_observed", "lift_se")},
    }


def _standardised(controls: np.ndarray) -> np.ndarray:
    if controls.shape[1] == 0:       # same structure with and without controls: no compile
        return np.zeros((controls.shape[0], 1))
    sd = controls.std(axis=0)
    return (controls - controls.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def build_model(data: MediaData, inputs: dict[str, np.ndarray], *, adstock, saturation,
                community_adstock, roas_sigma: float = 0.8):
    """The PyMC model of the module docstring, every input a ``pm.Data``."""
    import pymc as pm

    coords = {"channel": data.channels, "community": data.communities,
              "fourier_term": np.arange(data.fourier.shape[1]),
              "control": data.control_names or ["none"]}
    with pm.Model(coords=coords) as model:
        d = {name: pm.Data(name, value) for name, value in inputs.items()}
        mu = _baseline(d)
        media, curve = _media_term(d, adstock=adstock, saturation=saturation,
                                   roas_sigma=roas_sigma)
        mu = mu + media
        if data.communities:
            mu = mu + _community_term(d, community_adstock=community_adstock)
        sigma = pm.HalfNormal("sigma", 0.1)
        pm.Normal("obs", mu=mu, sigma=sigma, observed=d["revenue"])
        _lift_likelihood(d, saturation=saturation, **curve)
    return model


def _baseline(d):
    import pymc as pm
    import pytensor.tensor as pt

    level = pm.Normal("level", 1.0, 0.3)
    rate = pm.HalfNormal("rate", 2.0)
    f = pm.Normal("fourier", 0.0, 0.2, dims="fourier_term")
    gamma = pm.Normal("gamma", 0.0, 0.2, dims="control")   # prior only for the zero column
    return level + rate * d["customers"] + pt.dot(d["seasonal"], f) + pt.dot(d["controls"], gamma)


def _media_term(d, *, adstock, saturation, roas_sigma: float):
    import pymc as pm

    # The median is data (the data's own units), so one compiled model serves every scale.
    roas = pm.LogNormal("roas", d["roas_log_median"], roas_sigma, dims="channel")
    media_params = adstock.priors(prefix="media", dims="channel")
    sat_params = saturation.priors(prefix="saturation", dims="channel")
    weights = adstock.weights(d["lags"][:, None],
                              **{k: v[None, :] for k, v in media_params.items()})
    stock = (weights[:, None, :] * d["spend_lagged"]).sum(axis=0)          # (week, channel)
    norm = stock.mean(axis=0)
    response = saturation.pt_apply(stock / norm, **sat_params)
    beta = roas * d["spend_total"] / response.sum(axis=0)
    curve = {"weights": weights, "stock": stock, "norm": norm, "response": response,
             "beta": beta, "sat_params": sat_params}
    contribution = (response * beta).sum(axis=1)
    return contribution - contribution.mean(), curve


def _lift_likelihood(d, *, saturation, weights, stock, norm, response, beta, sat_params):
    """revenue change in the test weeks ~ Normal(model's change, se), all / mean revenue."""
    import pymc as pm
    import pytensor.tensor as pt

    ch = d["lift_channel"]
    extra = (weights[:, ch][:, None, :] * d["lift_lagged"]).sum(axis=0)   # (week, test)
    moved = pt.maximum(stock[:, ch] + extra, 0.0) / norm[ch]
    changed = saturation.pt_apply(moved, **{k: v[ch] for k, v in sat_params.items()})
    predicted = (beta[ch] * (changed - response[:, ch]) * d["lift_mask"]).sum(axis=0)
    pm.Normal("lift", mu=predicted, sigma=d["lift_se"], observed=d["lift_observed"])


def _community_term(d, *, community_adstock):
    import pymc as pm

    theta = pm.Normal("theta", 0.0, 0.5, dims="community")
    params = community_adstock.priors(prefix="community", dims="community")
    weights = community_adstock.weights(d["community_lags"][:, None],
                                        **{k: v[None, :] for k, v in params.items()})
    stock = (weights[:, None, :] * d["members_lagged"]).sum(axis=0)
    return ((stock - stock.mean(axis=0)) * theta).sum(axis=1)
