"""Bayesian media-mix model (MMM) on the weekly series: paid-media ROAS with 94% HDIs.

Model (weekly revenue ``y_t``, all terms divided by mean weekly revenue ``Y``)::

    y_t / Y = level
            + rate * centred(c_t) + centred(c_t * fourier_t . f)  # CRM baseline, c_t = customers_t / mean
            + sum_g theta_g * centred(adstock_g(active members_g / mean customers))_t
            + sum_c contribution_c,t / Y                                       # paid media
            + Normal(0, sigma)
    contribution_c,t = roas_c * spend_c * saturation(stock_c,t / mean_t stock_c,t)
                                          / sum_t saturation(stock_c,t / mean_t stock_c,t)
    stock_c = adstock(spend_c)

``fourier_t`` holds ``n_fourier`` yearly sine/cosine pairs: seasonality scales the revenue per
active customer (to first order, which keeps the baseline linear and free of funnels). ``spend_c`` is the channel's spend in the window, so ``roas_c`` is exactly the
contract's ROAS (revenue caused in the window / spend in the window) and gets the prior directly.

Priors, on the business scale:

* ``roas_c ~ LogNormal(log(roas_median), roas_sigma)``: default median 1, sigma 0.8 (95% of prior
  mass between 0.2 and 4.8 dollars per dollar).
* adstock and saturation parameters: see :mod:`roi.models.media.components` (decay ~ Beta(2, 2);
  Hill half-saturation ~ LogNormal(0, 0.5) multiples of mean adstocked spend, shape ~
  LogNormal(log 1.3, 0.35)).
* ``level ~ Normal(0.8, 0.3)``: mean non-media revenue as a share of mean revenue (0.8 when
  paid media brings 20%); ``rate ~ HalfNormal(2)``: revenue change per unit change of the active
  customer base (relative to its mean); ``f ~ Normal(0, 0.2)`` (seasonal swings of revenue per
  customer within about +-40% of the mean).
  Centring (``centred(z) = z - mean_t z``) is a reparameterisation only: it decorrelates
  ``level`` from ``rate`` and ``theta`` and makes NUTS fast.
* ``theta_g ~ Normal(0, 0.5)``: revenue of one active member-week of community g as a multiple of
  the revenue of an average active customer-week (a member adding a whole customer is 2 sd out);
  community adstock geometric normalised, decay ~ Beta(2, 2).
* ``sigma ~ HalfNormal(0.1)``: weekly noise as a share of mean revenue.

Outputs (from posterior draws, 94% HDIs): contribution of each channel per week, ROAS over the
window, marginal ROAS at current spend (revenue from +1% spend in every week / 1% of spend, with
the fitted half-saturation point held fixed in currency), response curves (revenue caused in
the window at 0-2x the observed spend), and each community's revenue per dollar of cost.

Sampler: nutpie by default (compiled once; :meth:`MediaMixModel.resample` re-runs it without
recompiling), PyMC NUTS if nutpie cannot be imported (said in ``diagnostics``). Convergence gate:
any r-hat above 1.01, bulk ESS below ``min(400, max(100, draws * chains / 4))`` or any
divergence sets ``diagnostics.converged = False`` with warnings.

Examples
--------
>>> from connectors import open_source  # doctest: +SKIP
>>> from roi.data import load_dataset  # doctest: +SKIP
>>> weekly = load_dataset(open_source("data/sample")).weekly_series()   # doctest: +SKIP
>>> mmm = MediaMixModel(draws=500, tune=500, chains=2).fit(weekly)      # doctest: +SKIP
>>> mmm.to_contract()["channels"]["search"]["roas"]["interval"]         # doctest: +SKIP
'94% HDI'
"""

from __future__ import annotations

import time as clock
from dataclasses import dataclass
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from roi.checks.convergence import convergence_gate
from roi.models.media.components import GeometricAdstock, HillSaturation
from roi.results import HDI94, Diagnostics, EffectResult

ESTIMAND = "roas"
METHOD = "bayesian_mmm"
CURVE_MULTIPLIERS = tuple(np.round(np.arange(0.0, 2.01, 0.1), 2))


@dataclass
class MediaData:
    """Arrays the model reads (built by :func:`prepare`)."""

    weeks: pd.DatetimeIndex
    revenue: np.ndarray          # (week,)
    spend: np.ndarray            # (week, channel), currency
    customers: np.ndarray        # (week,)
    members: np.ndarray          # (week, community), active members
    fourier: np.ndarray          # (week, 2 * n_fourier)
    channels: list[str]
    communities: list[str]
    community_cost: np.ndarray   # (community,) cost in the window
    dropped_channels: list[str]

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


def prepare(weekly, *, n_fourier: int = 2) -> MediaData:
    """The arrays of :class:`MediaData` from a ``WeeklySeries`` (channels without spend dropped).

    Examples
    --------
    >>> from connectors import open_source                                  # doctest: +SKIP
    >>> from roi.data import load_dataset  # doctest: +SKIP
    >>> data = prepare(load_dataset(open_source("data/sample")).weekly_series())  # doctest: +SKIP
    >>> data.channels                                                      # doctest: +SKIP
    ['display', 'search', 'social', 'video']
    """
    spend = weekly.spend.astype(float)
    kept = [c for c in spend.columns if spend[c].sum() > 0]
    members = weekly.active_members.astype(float)
    cost = weekly.cost.reindex(columns=members.columns).fillna(0.0).sum()
    weeks = pd.DatetimeIndex(weekly.totals.index)
    return MediaData(weeks=weeks, revenue=weekly.totals["revenue"].to_numpy(float),
                     spend=spend[kept].to_numpy(), customers=weekly.totals[
                         "active_customers"].to_numpy(float), members=members.to_numpy(),
                     fourier=fourier_terms(weeks, n_pairs=n_fourier), channels=list(kept),
                     communities=[str(c) for c in members.columns],
                     community_cost=cost.to_numpy(float),
                     dropped_channels=[c for c in spend.columns if c not in kept])


def hdi_entry(values: np.ndarray) -> dict[str, Any]:
    """Posterior mean with its 94% HDI, shaped like the contract.

    Examples
    --------
    >>> hdi_entry(np.random.default_rng(0).normal(2.0, 0.1, 4000))["interval"]
    '94% HDI'
    """
    values = np.asarray(values, dtype=float).ravel()
    low, high = az.hdi(values, hdi_prob=0.94)
    return {"estimate": float(np.mean(values)), "low": float(low), "high": float(high),
            "interval": HDI94}


def build_model(data: MediaData, *, adstock, saturation, community_adstock,
                roas_median: float = 1.0, roas_sigma: float = 0.8):
    """The PyMC model of the module docstring (revenue divided by its mean)."""
    import pymc as pm

    coords = {"week": np.arange(len(data.weeks)), "channel": data.channels,
              "community": data.communities, "fourier_term": np.arange(data.fourier.shape[1])}
    with pm.Model(coords=coords) as model:
        mu = _baseline(data) + _media_term(data, adstock=adstock, saturation=saturation,
                                           roas_median=roas_median, roas_sigma=roas_sigma)
        if data.communities:
            mu = mu + _community_term(data, community_adstock=community_adstock)
        sigma = pm.HalfNormal("sigma", 0.1)
        pm.Normal("revenue", mu=mu, sigma=sigma, observed=data.revenue / data.scale, dims="week")
    return model


def _baseline(data: MediaData):
    """``level + rate * centred(c_t) + centred(c_t * fourier_t . f)``, with ``c`` = customers / mean.

    Linear in its parameters (seasonality scales revenue per customer to first order), so no
    funnel between ``rate`` and the seasonal terms; centring decorrelates ``level``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    level = pm.Normal("level", 0.8, 0.3)
    rate = pm.HalfNormal("rate", 2.0)
    customers = data.customers / data.customers.mean()
    seasonal = customers[:, None] * data.fourier
    seasonal = seasonal - seasonal.mean(axis=0)
    f = pm.Normal("fourier", 0.0, 0.2, dims="fourier_term")
    return level + rate * (customers - 1.0) + pt.dot(seasonal, f)


def _media_term(data: MediaData, *, adstock, saturation, roas_median: float,
                roas_sigma: float):
    import pymc as pm

    roas = pm.LogNormal("roas", float(np.log(roas_median)), roas_sigma, dims="channel")
    stock = adstock.pt_apply(_relative_spend(data),
                             **adstock.priors(prefix="media", dims="channel"))
    response = saturation.pt_apply(stock / stock.mean(axis=0),
                                   **saturation.priors(prefix="saturation", dims="channel"))
    share = response / response.sum(axis=0)
    return (share * (roas * data.spend.sum(axis=0) / data.scale)).sum(axis=1)


def _community_term(data: MediaData, *, community_adstock):
    import pymc as pm

    theta = pm.Normal("theta", 0.0, 0.5, dims="community")
    members = data.members / data.customers.mean()
    stock = community_adstock.pt_apply(
        members, **community_adstock.priors(prefix="community", dims="community"))
    return ((stock - stock.mean(axis=0)) * theta).sum(axis=1)


def _relative_spend(data: MediaData) -> np.ndarray:
    return data.spend / data.spend.mean(axis=0)


def compile_nutpie(model):
    """The nutpie-compiled model, or None when nutpie cannot be imported."""
    try:
        import nutpie
    except ImportError:
        return None
    return nutpie.compile_pymc_model(model)


def sample(model, *, sampler: str, draws: int, tune: int, chains: int, seed: int,
           compiled=None) -> tuple[az.InferenceData, str, Any]:
    """Sample with nutpie (compiling once) or PyMC NUTS; returns (idata, sampler used, compiled)."""
    if sampler == "nutpie":
        try:
            import nutpie
        except ImportError:
            sampler = "pymc (nutpie could not be imported)"
        else:
            compiled = compiled if compiled is not None else nutpie.compile_pymc_model(model)
            idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains,
                                  cores=min(chains, 2), seed=seed, progress_bar=False,
                                  low_rank_modified_mass_matrix=True)
            return idata, "nutpie", compiled
    import pymc as pm

    with model:
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=min(chains, 2),
                          random_seed=seed, nuts_sampler="pymc", progressbar=False,
                          compute_convergence_checks=False)
    return idata, sampler, None


def posterior_draws(idata: az.InferenceData) -> dict[str, np.ndarray]:
    """Every posterior variable with chains and draws stacked on axis 0."""
    post = idata.posterior
    return {name: post[name].to_numpy().reshape((-1,) + post[name].shape[2:])
            for name in post.data_vars}


def media_contributions(data: MediaData, draws: dict[str, np.ndarray], *, adstock, saturation,
                        multiplier: float = 1.0) -> np.ndarray:
    """Revenue caused per week, draw and channel (currency), spend scaled by ``multiplier``.

    The half-saturation point and ``beta`` stay those fitted at the observed spend.
    """
    media = {k: draws[f"media_{k}"] for k in adstock.params}
    curve = {k: draws[f"saturation_{k}"] for k in saturation.params}
    stock = adstock.apply(_relative_spend(data)[:, None, :], **media)     # (week, draw, ch)
    norm = stock.mean(axis=0)
    fitted = saturation.apply(stock / norm, **curve)
    beta = draws["roas"] * data.spend.sum(axis=0) / fitted.sum(axis=0)
    if multiplier == 1.0:
        return beta * fitted
    return beta * saturation.apply(multiplier * stock / norm, **curve)


def community_contributions(data: MediaData, draws: dict[str, np.ndarray], *,
                            community_adstock) -> np.ndarray:
    """Revenue attributed to active members per week, draw and community (currency)."""
    params = {k: draws[f"community_{k}"] for k in community_adstock.params}
    members = (data.members / data.customers.mean())[:, None, :]
    return community_adstock.apply(members, **params) * draws["theta"] * data.scale


class MediaMixModel:
    """Bayesian MMM: CRM baseline + communities + adstocked, saturating paid channels.

    Parameters
    ----------
    adstock : component
        Paid-media carry-over (default ``GeometricAdstock()``, the whole window).
    saturation : component
        Diminishing returns (default ``HillSaturation()``).
    community_adstock : component
        Carry-over of community activity (default normalised ``GeometricAdstock(l_max=8)``).
    n_fourier : int
        Yearly Fourier pairs of the baseline.
    roas_median, roas_sigma : float
        ``roas_c ~ LogNormal(log(roas_median), roas_sigma)``.
    draws, tune, chains, seed : int
        Sampler settings; ``sampler`` is ``"nutpie"`` (default) or ``"pymc"``.

    Attributes
    ----------
    result_ : EffectResult
        Total paid ROAS (``estimate``), per-channel entries in ``by_group``, tables
        ``channels``, ``contributions``, ``response_curves``, ``communities``.
    idata_ : arviz.InferenceData
    fit_seconds_ : dict
        ``build``, ``compile`` (nutpie, first call only) and ``sample`` wall times.

    Examples
    --------
    >>> from connectors import open_source                                   # doctest: +SKIP
    >>> from roi.data import load_dataset  # doctest: +SKIP
    >>> weekly = load_dataset(open_source("data/sample")).weekly_series()  # doctest: +SKIP
    >>> mmm = MediaMixModel(draws=500, tune=500, chains=2, seed=1).fit(weekly)  # doctest: +SKIP
    >>> mmm.summary().loc["search", "roas"] > 0  # doctest: +SKIP
    True
    """

    def __init__(self, *, adstock=None, saturation=None, community_adstock=None,
                 n_fourier: int = 2, roas_median: float = 1.0, roas_sigma: float = 0.8,
                 draws: int = 1000, tune: int = 1000, chains: int = 4, sampler: str = "nutpie",
                 seed: int = 20261123) -> None:
        if sampler not in ("nutpie", "pymc"):
            raise ValueError(f"sampler must be 'nutpie' or 'pymc', not {sampler!r}")
        self.adstock = adstock or GeometricAdstock()
        self.saturation = saturation or HillSaturation()
        self.community_adstock = community_adstock or GeometricAdstock(l_max=8, normalize=True)
        self.n_fourier, self.roas_median, self.roas_sigma = n_fourier, roas_median, roas_sigma
        self.draws, self.tune, self.chains = draws, tune, chains
        self.sampler, self.seed = sampler, seed

    def fit(self, weekly) -> MediaMixModel:
        """Build, compile and sample the model on a ``WeeklySeries``; returns self."""
        started = clock.perf_counter()
        self.data_ = prepare(weekly, n_fourier=self.n_fourier)
        if not self.data_.channels:
            raise ValueError("no channel has spend in the window: nothing to model")
        self.model_ = build_model(self.data_, adstock=self.adstock, saturation=self.saturation,
                                  community_adstock=self.community_adstock,
                                  roas_median=self.roas_median, roas_sigma=self.roas_sigma)
        self.compiled_ = None
        self.fit_seconds_ = {"build": clock.perf_counter() - started}
        return self.resample()

    def resample(self, *, draws: int | None = None, tune: int | None = None,
                 seed: int | None = None) -> MediaMixModel:
        """Sample the already built (and compiled) model again, e.g. longer after a failed gate."""
        draws, tune = draws or self.draws, tune or self.tune
        if self.compiled_ is None and self.sampler == "nutpie":
            started = clock.perf_counter()
            self.compiled_ = compile_nutpie(self.model_)
            self.fit_seconds_["compile"] = clock.perf_counter() - started
        started = clock.perf_counter()
        self.idata_, used, self.compiled_ = sample(
            self.model_, sampler=self.sampler, draws=draws, tune=tune, chains=self.chains,
            seed=self.seed if seed is None else seed, compiled=self.compiled_)
        self.fit_seconds_ = {**self.fit_seconds_, "sample": clock.perf_counter() - started}
        diagnostics = convergence_gate(self.idata_, draws=draws, chains=self.chains,
                                       method=METHOD)
        diagnostics.checks["sampler"] = used
        if used != self.sampler:
            diagnostics.warn(f"{METHOD}: sampled with {used}.")
        for channel in self.data_.dropped_channels:
            diagnostics.warn(f"{METHOD}: channel {channel!r} has no spend and is left out.")
        self.result_ = self._result(diagnostics)
        return self

    def _result(self, diagnostics: Diagnostics) -> EffectResult:
        data, draws = self.data_, posterior_draws(self.idata_)
        parts = {"adstock": self.adstock, "saturation": self.saturation}
        caused = media_contributions(data, draws, **parts)                  # (week, draw, ch)
        bumped = media_contributions(data, draws, multiplier=1.01, **parts)
        spend = data.spend.sum(axis=0)
        roas = caused.sum(axis=0) / spend
        marginal = (bumped.sum(axis=0) - caused.sum(axis=0)) / (0.01 * spend)
        by_group = {ch: {"spend": float(spend[i]), "roas": hdi_entry(roas[:, i]),
                         "marginal_roas": hdi_entry(marginal[:, i])}
                    for i, ch in enumerate(data.channels)}
        total = hdi_entry(caused.sum(axis=(0, 2)) / spend.sum())
        tables = {"channels": _channel_table(by_group, caused, data),
                  "contributions": _contribution_table(caused, data),
                  "response_curves": self._curves(draws),
                  "communities": self._community_table(draws)}
        return EffectResult(method=METHOD, estimand=ESTIMAND, estimate=total["estimate"],
                            low=total["low"], high=total["high"], interval=HDI94,
                            scale="revenue per dollar of paid media", by_group=by_group,
                            tables=tables, diagnostics=diagnostics)

    def _curves(self, draws: dict[str, np.ndarray]) -> pd.DataFrame:
        rows = []
        spend = self.data_.spend.sum(axis=0)
        for m in CURVE_MULTIPLIERS:
            revenue = media_contributions(self.data_, draws, adstock=self.adstock,
                                          saturation=self.saturation, multiplier=m).sum(axis=0)
            for i, ch in enumerate(self.data_.channels):
                entry = hdi_entry(revenue[:, i])
                rows.append({"channel": ch, "multiplier": m, "spend": m * spend[i],
                             "revenue": entry["estimate"], "low": entry["low"],
                             "high": entry["high"]})
        return pd.DataFrame(rows)

    def _community_table(self, draws: dict[str, np.ndarray]) -> pd.DataFrame:
        data = self.data_
        if not data.communities:
            return pd.DataFrame()
        revenue = community_contributions(data, draws, community_adstock=self.community_adstock)
        rows = []
        for j, name in enumerate(data.communities):
            total, cost = revenue[:, :, j].sum(axis=0), data.community_cost[j]
            per_dollar = hdi_entry(total / cost) if cost > 0 else {}
            rows.append({"community": name, "cost": cost,
                         **{f"revenue_{k}": v for k, v in hdi_entry(total).items()
                            if k != "interval"},
                         **{f"per_dollar_{k}": v for k, v in per_dollar.items()
                            if k != "interval"}})
        return pd.DataFrame(rows).set_index("community")

    def summary(self) -> pd.DataFrame:
        """One row per channel: spend, ROAS and marginal ROAS with 94% HDIs, contribution."""
        return self.result_.tables["channels"]

    def to_contract(self) -> dict[str, Any]:
        """The ``paid_media`` block of ``results.json`` (plus ``communities`` and ``method``)."""
        communities = {}
        for name, row in self.result_.tables["communities"].iterrows():
            communities[str(name)] = {
                "cost": float(row["cost"]),
                "incremental_revenue": {"estimate": row["revenue_estimate"],
                                        "low": row["revenue_low"], "high": row["revenue_high"],
                                        "interval": HDI94}}
        return {"method": METHOD, "channels": {k: dict(v) for k, v in
                                               self.result_.by_group.items()},
                "communities": communities,
                "converged": bool(self.result_.diagnostics.converged)}


def _channel_table(by_group: dict[str, dict[str, Any]], caused: np.ndarray,
                   data: MediaData) -> pd.DataFrame:
    rows = []
    for i, ch in enumerate(data.channels):
        entry = by_group[ch]
        rows.append({"channel": ch, "spend": entry["spend"],
                     "revenue": float(caused[:, :, i].sum(axis=0).mean()),
                     "roas": entry["roas"]["estimate"], "roas_low": entry["roas"]["low"],
                     "roas_high": entry["roas"]["high"],
                     "marginal_roas": entry["marginal_roas"]["estimate"],
                     "marginal_low": entry["marginal_roas"]["low"],
                     "marginal_high": entry["marginal_roas"]["high"],
                     "share_of_revenue": float(caused[:, :, i].sum(axis=0).mean()
                                               / data.revenue.sum())})
    return pd.DataFrame(rows).set_index("channel")


def _contribution_table(caused: np.ndarray, data: MediaData) -> pd.DataFrame:
    """Long table: week, channel, mean contribution and its 94% HDI."""
    hdi = az.hdi(np.moveaxis(caused, 1, 0)[None], hdi_prob=0.94)   # (week, ch, 2)
    rows = []
    for i, ch in enumerate(data.channels):
        rows.append(pd.DataFrame({"week": data.weeks, "channel": ch,
                                  "contribution": caused[:, :, i].mean(axis=1),
                                  "low": hdi[:, i, 0], "high": hdi[:, i, 1]}))
    return pd.concat(rows, ignore_index=True)
