"""Bayesian media-mix model (MMM) on the weekly series: paid-media ROAS with 94% HDIs.

Weekly revenue = baseline (active customers, yearly Fourier seasonality, controls) + communities
(active members with their own carry-over) + paid channels (adstock then saturation, ROAS prior
on the business scale) + noise; lift tests enter as likelihood terms on the response curves.
The model and its priors: :mod:`roi.paid_media.model`; components:
:mod:`roi.paid_media.components`; experiments: :mod:`roi.paid_media.lift_tests`.

Outputs (posterior draws, 94% HDIs): each channel's contribution per week, ROAS over the window,
marginal ROAS at current spend (revenue from +1% spend in every week / 1% of spend), response
curves (revenue caused in the window at 0-2x the observed spend), each community's incremental
revenue; :meth:`MediaMixModel.to_contract` gives the ``paid_media`` block of ``results.json``.

Sampler: nutpie by default, its log-density compiled by JAX and kept on disk per data set (a
refit of data seen before loads it in about 0.5 s; with numba: compiled once per structure,
data swapped in), see :mod:`roi.paid_media.sampling`; PyMC NUTS when nutpie cannot be
imported (said in ``diagnostics``). Summarising 4,000 draws (contributions, 21-point response
curves, HDIs) takes about 0.3 s besides the convergence gate. Convergence gate
(:mod:`roi.checks.convergence`): r-hat > 1.01, low bulk ESS or divergences set
``converged = False``, and every entry of the contract block then carries
``"converged": false``.

Identification warnings (in ``diagnostics.warnings``): a channel with no spend is left out; a
channel whose spend never changes is kept but its ROAS is the prior's (plus lift tests), and the
entry says ``"identified": false``.

Examples
--------
>>> from roi.simulate_media import simulate_media_world
>>> world = simulate_media_world(seed=1, n_customers=20_000)
>>> mmm = MediaMixModel(draws=300, tune=300, chains=2, controls=("promo",))  # doctest: +SKIP
>>> mmm.fit(world.weekly).to_contract()["channels"]["search"]["roas"]["interval"]  # doctest: +SKIP
'94% HDI'
"""

from __future__ import annotations

import sys
import time as clock
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from roi.checks.convergence import convergence_gate
from roi.inference.nuts import nutpie_backend
from roi.paid_media.components import GeometricAdstock, HillSaturation, window_sums
from roi.paid_media.lift_tests import LiftTest, as_lift_tests
from roi.paid_media.model import (
    MediaData,
    build_model,
    model_inputs,
    prepare,
    structure_key,
)
from roi.paid_media.sampling import (
    compiled_model,
    nutpie_available,
    posterior_draws,
    sample_nutpie,
    sample_pymc,
)
from roi.results import HDI94, Diagnostics, EffectResult, hdi_bounds, hdi_entries, hdi_entry

ESTIMAND = "roas"
METHOD = "mmm"
CURVE_MULTIPLIERS = tuple(float(m) for m in np.round(np.arange(0.0, 2.01, 0.1), 2))
MAX_CURVE_DRAWS = 200


class MediaResponse:
    """The fitted paid-media response per week, draw and channel, computed once.

    ``scaled`` is the adstocked spend over its mean (week, draw, channel), ``beta`` the
    currency per unit of saturation; :meth:`revenue` and :meth:`window_revenue` give the revenue
    caused with spend scaled by a multiplier (the saturation point stays the one fitted at the
    observed spend, in currency).
    """

    def __init__(self, data: MediaData, draws: dict[str, np.ndarray], *, adstock,
                 saturation) -> None:
        media = {k: draws[f"media_{k}"] for k in adstock.params}
        self.saturation = saturation
        self.curve = {k: draws[f"saturation_{k}"] for k in saturation.params}
        stock = adstock.apply((data.spend / data.spend.mean(axis=0))[:, None, :], **media)
        self.scaled = stock / stock.mean(axis=0)
        fitted = saturation.apply(self.scaled, **self.curve)
        self.beta = draws["roas"] * data.spend.sum(axis=0) / fitted.sum(axis=0)
        self.fitted = self.beta * fitted

    def revenue(self, multiplier: float = 1.0) -> np.ndarray:
        """Revenue caused per week, draw and channel (currency)."""
        if multiplier == 1.0:
            return self.fitted
        return self.beta * self.saturation.apply(multiplier * self.scaled, **self.curve)

    def window_revenue(self, multipliers) -> np.ndarray:
        """Revenue caused in the window (multiplier, draw, channel) at each multiplier."""
        sums = window_sums(self.saturation, self.scaled, multipliers, **self.curve)
        return sums * self.beta


def media_contributions(data: MediaData, draws: dict[str, np.ndarray], *, adstock, saturation,
                        multiplier: float = 1.0) -> np.ndarray:
    """Revenue caused per week, draw and channel (currency), spend scaled by ``multiplier``.

    The saturation point stays the one fitted at the observed spend (in currency).
    """
    return MediaResponse(data, draws, adstock=adstock,
                         saturation=saturation).revenue(multiplier)


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
    adstock, saturation : component
        Paid-media carry-over (default ``GeometricAdstock(l_max=26)``: half a year of lags,
        0.9**26 = 6% of the first week's weight left at decay 0.9) and diminishing
        returns (default ``HillSaturation()``); any object of
        :mod:`roi.paid_media.components`.
    community_adstock : component
        Carry-over of community activity (default normalised ``GeometricAdstock(l_max=8)``).
    n_fourier : int
        Yearly Fourier pairs of the baseline.
    controls : sequence of str
        Columns of ``weekly.totals`` used as controls (promotions, events, prices ...).
    lift_tests : DataFrame or list of LiftTest or dict, optional
        Experiments (:mod:`roi.paid_media.lift_tests`).
    roas_median, roas_sigma : float
        ``roas_c ~ LogNormal(log(roas_median), roas_sigma)``.
    draws, tune, chains, seed : int
        Sampler settings; ``sampler`` is ``"nutpie"`` (default) or ``"pymc"``.
    regression_baseline : bool
        Also fit :class:`~roi.paid_media.regression_baseline.RegressionBaseline` (< 1 s) and
        report it beside the Bayesian numbers.

    Attributes
    ----------
    result_ : EffectResult
        Total paid ROAS; per-channel entries in ``by_group``; tables ``channels``,
        ``contributions``, ``response_curves``, ``communities``.
    idata_ : arviz.InferenceData
    fit_seconds_ : dict
        Seconds to ``prepare`` the data, ``compile`` (or load) the model, ``sample`` and
        ``summarise`` the draws (gate, contributions, curves, HDIs).
    compiled_now_ : bool
        Whether the model was compiled by this fit (False: reused in memory or, with JAX,
        loaded from the on-disk cache).

    Examples
    --------
    >>> mmm = MediaMixModel(draws=500, tune=500, chains=2, seed=1)
    >>> mmm.sampler, mmm.lift_tests
    ('nutpie', [])
    """

    def __init__(self, *, adstock=None, saturation=None, community_adstock=None,
                 n_fourier: int = 2, controls: Sequence[str] = (),
                 lift_tests: pd.DataFrame | Iterable[LiftTest | dict] | None = None,
                 roas_median: float = 1.0, roas_sigma: float = 0.8, draws: int = 1000,
                 tune: int = 1000, chains: int = 4, sampler: str = "nutpie",
                 seed: int = 20261123, regression_baseline: bool = True) -> None:
        if sampler not in ("nutpie", "pymc"):
            raise ValueError(f"sampler must be 'nutpie' or 'pymc', not {sampler!r}")
        self.adstock = adstock or GeometricAdstock(l_max=26)
        self.saturation = saturation or HillSaturation()
        self.community_adstock = community_adstock or GeometricAdstock(l_max=8, normalize=True)
        self.n_fourier, self.controls = n_fourier, tuple(controls)
        self.lift_tests = as_lift_tests(lift_tests)
        self.roas_median, self.roas_sigma = roas_median, roas_sigma
        self.draws, self.tune, self.chains = draws, tune, chains
        self.sampler, self.seed = sampler, seed
        self.regression_baseline = regression_baseline

    # ------------------------------------------------------------------ fitting

    def fit(self, weekly) -> MediaMixModel:
        """Prepare the data, compile (or reuse) the model and sample; returns self."""
        started = clock.perf_counter()
        self.data_ = prepare(weekly, n_fourier=self.n_fourier, controls=self.controls)
        if not self.data_.channels:
            raise ValueError("no channel has spend in the window: nothing to model")
        self.inputs_ = model_inputs(self.data_, adstock=self.adstock,
                                    community_adstock=self.community_adstock,
                                    lift_tests=self.lift_tests)
        self.baseline_ = self._fit_baseline(weekly)
        self.fit_seconds_ = {"prepare": clock.perf_counter() - started}
        return self.resample()

    def _fit_baseline(self, weekly):
        if not self.regression_baseline:
            return None
        from roi.paid_media.regression_baseline import RegressionBaseline

        return RegressionBaseline(n_fourier=self.n_fourier, controls=self.controls).fit(weekly)

    def _build(self):
        return build_model(self.data_, self.inputs_, adstock=self.adstock,
                           saturation=self.saturation, community_adstock=self.community_adstock,
                           roas_median=self.roas_median, roas_sigma=self.roas_sigma)

    def _model_key(self) -> tuple:
        """Everything the compiled model depends on: structure, priors, coordinates, data
        arrays and the source of the modules that build it (for the on-disk JAX cache)."""
        data = self.data_
        modules = {type(c).__module__ for c in (self.adstock, self.saturation,
                                                   self.community_adstock)}
        modules |= {"roi.paid_media.model", "roi.paid_media.lift_tests"}
        sources = tuple(Path(sys.modules[m].__file__).read_bytes() for m in sorted(modules))
        return ("media-mix", repr(self.adstock), repr(self.saturation),
                repr(self.community_adstock), self.roas_median, self.roas_sigma,
                data.channels, data.communities, data.control_names, data.fourier.shape[1],
                self.inputs_, sources)

    def resample(self, *, draws: int | None = None, tune: int | None = None,
                 seed: int | None = None) -> MediaMixModel:
        """Sample the fitted data again (no recompiling), e.g. longer after a failed gate."""
        draws, tune = draws or self.draws, tune or self.tune
        seed = self.seed if seed is None else seed
        used = self.sampler if nutpie_available() else "pymc (nutpie could not be imported)"
        started = clock.perf_counter()
        if used == "nutpie":
            key = structure_key(self.data_, adstock=self.adstock, saturation=self.saturation,
                                community_adstock=self.community_adstock,
                                roas_median=self.roas_median, roas_sigma=self.roas_sigma)
            compiled, fresh = compiled_model(self._build, key=key, model_key=self._model_key,
                                             inputs=self.inputs_)
            self.fit_seconds_["compile"] = clock.perf_counter() - started
            self.compiled_now_ = fresh
            started = clock.perf_counter()
            self.idata_ = sample_nutpie(compiled, draws=draws, tune=tune, chains=self.chains,
                                        seed=seed)
        else:
            self.idata_ = sample_pymc(self._build(), draws=draws, tune=tune,
                                      chains=self.chains, seed=seed)
        self.fit_seconds_["sample"] = clock.perf_counter() - started
        started = clock.perf_counter()
        self.result_ = self._result(self._diagnostics(draws=draws, used=used))
        self.fit_seconds_["summarise"] = clock.perf_counter() - started
        return self

    def _diagnostics(self, *, draws: int, used: str) -> Diagnostics:
        names = [v for v in self.idata_.posterior.data_vars]
        diagnostics = convergence_gate(self.idata_, draws=draws, chains=self.chains,
                                       method=METHOD, var_names=names)
        diagnostics.checks["sampler"] = used
        diagnostics.checks["nutpie_backend"] = nutpie_backend() if used == "nutpie" else None
        if used != self.sampler:
            diagnostics.warn(f"{METHOD}: sampled with {used}.")
        for channel in self.data_.dropped_channels:
            diagnostics.warn(f"{METHOD}: channel {channel!r} has no spend in the window and is "
                             "left out.")
        tested = {t.channel for t in self.lift_tests}
        for channel in self.data_.constant_channels:
            source = "its lift tests and the prior" if channel in tested else "the prior only"
            diagnostics.warn(f"{METHOD}: channel {channel!r} has constant spend (the same "
                             "every week, no variation): its effect cannot be told apart from "
                             f"the baseline; its ROAS comes from {source}.")
        return diagnostics

    # ------------------------------------------------------------------ outputs

    def _result(self, diagnostics: Diagnostics) -> EffectResult:
        data, draws = self.data_, posterior_draws(self.idata_)
        response = MediaResponse(data, draws, adstock=self.adstock, saturation=self.saturation)
        caused = response.fitted                                              # (week, draw, ch)
        window = caused.sum(axis=0)                                           # (draw, ch)
        curves = response.window_revenue((1.01, *CURVE_MULTIPLIERS))        # (mult, draw, ch)
        spend = data.spend.sum(axis=0)
        roas = window / spend
        marginal = (curves[0] - window) / (0.01 * spend)
        entries = hdi_entries(np.concatenate([roas, marginal, window], axis=1))
        n = len(data.channels)
        by_group = {ch: {"spend": float(spend[i]), "roas": entries[i],
                         "marginal_roas": entries[n + i], "incremental_revenue": entries[2 * n + i],
                         "identified": ch not in data.constant_channels}
                    for i, ch in enumerate(data.channels)}
        total = hdi_entry(window.sum(axis=1) / spend.sum())
        tables = {"channels": _channel_table(by_group, window, data),
                  "contributions": _contribution_table(caused, data),
                  "response_curves": self._curves(curves[1:]),
                  "communities": self._community_table(draws)}
        return EffectResult(method=METHOD, estimand=ESTIMAND, estimate=total["estimate"],
                            low=total["low"], high=total["high"], interval=HDI94,
                            scale="revenue per dollar of paid media", by_group=by_group,
                            tables=tables, diagnostics=diagnostics)

    def curve_draws(self, *, max_draws: int = MAX_CURVE_DRAWS) -> np.ndarray:
        """Window revenue caused (draw, multiplier, channel) at ``CURVE_MULTIPLIERS`` for up to
        ``max_draws`` evenly thinned posterior draws (the same draws for every channel)."""
        draws = posterior_draws(self.idata_)
        n = len(draws["roas"])
        keep = np.unique(np.linspace(0, n - 1, min(n, max_draws)).round().astype(int))
        draws = {k: v[keep] for k, v in draws.items()}
        response = MediaResponse(self.data_, draws, adstock=self.adstock,
                                 saturation=self.saturation)
        return np.moveaxis(response.window_revenue(CURVE_MULTIPLIERS), 0, 1)

    def _curves(self, revenue: np.ndarray) -> pd.DataFrame:
        """Table of the response curves from window revenue (multiplier, draw, channel)."""
        spend, channels = self.data_.spend.sum(axis=0), self.data_.channels
        entries = hdi_entries(np.moveaxis(revenue, 1, 0))       # multiplier-major, then channel
        rows = [{"channel": ch, "multiplier": m, "spend": m * spend[i],
                 "revenue": entry["estimate"], "low": entry["low"], "high": entry["high"]}
                for (m, (i, ch)), entry in zip(
                    ((m, c) for m in CURVE_MULTIPLIERS for c in enumerate(channels)), entries,
                    strict=True)]
        return pd.DataFrame(rows)

    def _community_table(self, draws: dict[str, np.ndarray]) -> pd.DataFrame:
        data = self.data_
        if not data.communities:
            return pd.DataFrame()
        revenue = community_contributions(data, draws, community_adstock=self.community_adstock)
        totals = revenue.sum(axis=0)                                          # (draw, community)
        entries = hdi_entries(totals)
        rows = []
        for j, name in enumerate(data.communities):
            cost = data.community_cost[j]
            per_dollar = hdi_entry(totals[:, j] / cost) if cost > 0 else {}
            rows.append({"community": name, "cost": cost,
                         **{f"revenue_{k}": v for k, v in entries[j].items() if k != "interval"},
                         **{f"per_dollar_{k}": v for k, v in per_dollar.items()
                            if k != "interval"}})
        return pd.DataFrame(rows).set_index("community")

    def summary(self) -> pd.DataFrame:
        """One row per channel: spend, ROAS and marginal ROAS with 94% HDIs, contribution."""
        return self.result_.tables["channels"]

    def to_contract(self) -> dict[str, Any]:
        """The ``paid_media`` block of ``results.json`` (CONTRACT section 4); plain JSON types."""
        from roi.paid_media.contract import paid_media_block

        return paid_media_block(self)


def _channel_table(by_group: dict[str, dict[str, Any]], window: np.ndarray,
                   data: MediaData) -> pd.DataFrame:
    rows = []
    revenue = window.mean(axis=0)
    for i, ch in enumerate(data.channels):
        entry = by_group[ch]
        rows.append({"channel": ch, "spend": entry["spend"],
                     "revenue": float(revenue[i]),
                     "roas": entry["roas"]["estimate"], "roas_low": entry["roas"]["low"],
                     "roas_high": entry["roas"]["high"],
                     "marginal_roas": entry["marginal_roas"]["estimate"],
                     "marginal_low": entry["marginal_roas"]["low"],
                     "marginal_high": entry["marginal_roas"]["high"],
                     "share_of_revenue": float(revenue[i] / data.revenue.sum())})
    return pd.DataFrame(rows).set_index("channel")


def _contribution_table(caused: np.ndarray, data: MediaData) -> pd.DataFrame:
    """Long table: week, channel, mean contribution and its 94% HDI."""
    low, high = hdi_bounds(np.moveaxis(caused, 1, 0))                 # (week, ch) each
    mean = caused.mean(axis=1)
    n_weeks, n_channels = mean.shape
    return pd.DataFrame({"week": np.tile(data.weeks, n_channels),
                         "channel": np.repeat(data.channels, n_weeks),
                         "contribution": mean.T.ravel(), "low": low.T.ravel(),
                         "high": high.T.ravel()})
