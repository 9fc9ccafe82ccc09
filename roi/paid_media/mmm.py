"""Bayesian media-mix model (MMM) on weekly rows: paid-media ROAS with 94% HDIs.

Input: a plain DataFrame, one row per week (``fit(df, date=..., target=..., channels=[...],
controls=[...])``), checked and scaled by :mod:`roi.paid_media.frame`; the canonical run turns
its ``WeeklySeries`` into such a DataFrame first (:func:`~roi.paid_media.frame.media_frame`),
so both take one path. Spend and target stay in the data's units (divided by their means inside
the model); the ROAS prior is centred on the data's own target/spend ratio unless stated
(:func:`roas_prior`), and a stated prior that the data's scale makes implausible is a named
warning (:func:`prior_warning`). ``roas_`` gives each channel's ROAS in the data's units.

Weekly revenue = baseline (active customers, yearly Fourier seasonality, controls, optional
linear trend) + communities (active members with their own carry-over) + paid channels (adstock
then saturation, ROAS prior in the data's units) + noise; lift tests enter as likelihood terms
on the response curves. The model and its priors: :mod:`roi.paid_media.model`; components:
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
>>> df = world.weekly.totals.join(world.weekly.spend).reset_index()
>>> mmm = MediaMixModel(draws=300, tune=300, chains=2)  # doctest: +SKIP
>>> mmm.fit(df, date="week", target="revenue", channels=["search", "social", "display", "video"],
...         controls=["promo"], customers="active_customers")  # doctest: +SKIP
>>> list(mmm.roas_.columns)  # doctest: +SKIP
['estimate', 'low', 'high', 'spend']
"""

from __future__ import annotations

import sys
import time as clock
import warnings
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
    structure_key,
)
from roi.paid_media.sampling import (
    compiled_model,
    kernel_model,
    logp_backend,
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


class MediaDataWarning(UserWarning):
    """The weekly data make part of the media-mix model doubtful (a channel left out, a stated
    ROAS prior implausible for the data's scale); the same sentence is in the diagnostics."""


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
    roas_median : float, optional
        Median of the ROAS prior in the data's units (target per unit of spend). None (default):
        the ROAS at which paid media as a whole would cause ``prior_paid_share`` of the target,
        ``prior_paid_share * sum(target) / sum(spend)``, so the prior follows the data's scale.
    roas_sigma : float
        ``roas_c ~ LogNormal(log(roas_median), roas_sigma)``.
    prior_paid_share : float
        Share of the target that paid media would cause at the prior's median ROAS (0.15).
    trend : bool
        Add a linear time trend to the baseline (a control named ``trend``).
    draws, tune, chains, seed : int
        Sampler settings; ``sampler`` is ``"nutpie"`` (default) or ``"pymc"``.
    target_accept : float
        NUTS target acceptance rate. 0.85: at nutpie's 0.8, 2 of 16 seeds left one divergent
        transition on a 1,000,000-customer world (and failed the gate); at 0.85, 16 of 16
        passed for about 10% more leapfrog steps (0.9: 65% more).
    regression_baseline : bool
        Also fit :class:`~roi.paid_media.regression_baseline.RegressionBaseline` (< 1 s) and
        report it beside the Bayesian numbers.

    Attributes
    ----------
    roas_ : DataFrame
        Per channel (index): ``estimate``, ``low``, ``high`` (94% HDI) of the ROAS in the data's
        units (target per unit of spend), and ``spend``.
    roas_prior_ : dict
        The ROAS prior used: ``median``, ``sigma``, ``source`` and the ``implied_paid_share``.
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
                 roas_median: float | None = None, roas_sigma: float = 0.8,
                 prior_paid_share: float = 0.15, trend: bool = False, draws: int = 1000,
                 tune: int = 1000, chains: int = 4, sampler: str = "nutpie",
                 seed: int = 20261123, target_accept: float = 0.85,
                 regression_baseline: bool = True) -> None:
        if sampler not in ("nutpie", "pymc"):
            raise ValueError(f"sampler must be 'nutpie' or 'pymc', not {sampler!r}")
        self.adstock = adstock or GeometricAdstock(l_max=26)
        self.saturation = saturation or HillSaturation()
        self.community_adstock = community_adstock or GeometricAdstock(l_max=8, normalize=True)
        self.n_fourier, self.controls = n_fourier, tuple(controls)
        self.lift_tests = as_lift_tests(lift_tests)
        if roas_median is not None and not roas_median > 0:
            raise ValueError(f"roas_median must be positive (or None: from the data), not "
                             f"{roas_median!r}")
        if not 0 < prior_paid_share < 1:
            raise ValueError(f"prior_paid_share must be in (0, 1), not {prior_paid_share!r}")
        self.roas_median, self.roas_sigma = roas_median, roas_sigma
        self.prior_paid_share, self.trend = prior_paid_share, trend
        self.draws, self.tune, self.chains = draws, tune, chains
        self.sampler, self.seed = sampler, seed
        self.target_accept = target_accept
        self.regression_baseline = regression_baseline

    # ------------------------------------------------------------------ fitting

    def fit(self, data: pd.DataFrame | Any, *, date: str | None = None,
            target: str | None = None, channels: Sequence[str] | dict[str, str] | None = None,
            controls: Sequence[str] | None = None, customers: str | None = None,
            communities: Sequence[str] | dict[str, str] | None = None,
            community_costs: dict[str, str] | None = None) -> MediaMixModel:
        """Check the weekly rows, compile (or reuse) the model and sample; returns self.

        Parameters
        ----------
        data : DataFrame or WeeklySeries
            One row per week (a ``WeeklySeries`` is turned into that DataFrame by
            :func:`roi.paid_media.frame.media_frame`, the canonical run's path).
        date, target : str
            Week column (or the index's name) and the outcome (revenue, sales ...).
        channels : list of str or dict
            Spend columns, or ``{channel name: column}``; spend in any one unit per channel.
        controls : list of str, optional
            Control columns (default: the constructor's ``controls``).
        customers : str, optional
            Active customers per week: the baseline scales with them.
        communities, community_costs : list or dict, optional
            Active members per community (``{name: column}`` or columns) and each community's
            weekly cost column (``{name: column}``).

        Raises
        ------
        ValueError
            Invalid rows, naming the column and rule (:mod:`roi.paid_media.frame`).
        """
        from roi.paid_media.frame import media_frame, prepare_frame

        if not isinstance(data, pd.DataFrame) and hasattr(data, "spend") \
                and hasattr(data, "totals"):
            frame, columns = media_frame(data, controls=self.controls if controls is None
                                         else controls)
            return self.fit(frame, **columns)
        if isinstance(data, pd.DataFrame):
            missing = [k for k, v in {"date": date, "target": target,
                                      "channels": channels}.items() if v is None]
            if missing:
                raise TypeError(f"MediaMixModel.fit(df, ...) needs {missing}: e.g. "
                                "fit(df, date='week', target='revenue', channels=['tv', 'search'])")
        started = clock.perf_counter()
        self.data_ = prepare_frame(
            data, date=date, target=target, channels=channels,
            controls=self.controls if controls is None else tuple(controls),
            customers=customers, communities=communities, community_costs=community_costs,
            n_fourier=self.n_fourier, trend=self.trend)
        if not self.data_.channels:
            raise ValueError(f"channels: no channel has spend in the window (all zero: "
                             f"{self.data_.dropped_channels}); nothing to model")
        self.roas_prior_ = roas_prior(self.data_, median=self.roas_median,
                                      sigma=self.roas_sigma, paid_share=self.prior_paid_share)
        for message in self._input_warnings():   # also in result_.diagnostics.warnings
            warnings.warn(message, MediaDataWarning, stacklevel=2)
        self.inputs_ = model_inputs(self.data_, adstock=self.adstock,
                                    community_adstock=self.community_adstock,
                                    lift_tests=self.lift_tests,
                                    roas_median=self.roas_prior_["median"])
        self.baseline_ = self._fit_baseline()
        self.fit_seconds_ = {"prepare": clock.perf_counter() - started}
        return self.resample()

    def _input_warnings(self) -> list[str]:
        """What the data make doubtful before sampling: channels left out, a stated prior the
        data's scale makes implausible."""
        out = [f"{METHOD}: channel {channel!r} has no spend in the window and is left out."
               for channel in self.data_.dropped_channels]
        implausible = prior_warning(self.roas_prior_)
        return out + ([f"{METHOD}: {implausible}"] if implausible else [])

    def _fit_baseline(self):
        if not self.regression_baseline:
            return None
        from roi.paid_media.regression_baseline import RegressionBaseline

        return RegressionBaseline(n_fourier=self.n_fourier).fit_data(self.data_)

    def _build(self):
        return build_model(self.data_, self.inputs_, adstock=self.adstock,
                           saturation=self.saturation, community_adstock=self.community_adstock,
                           roas_sigma=self.roas_sigma)

    def _model_key(self) -> tuple:
        """Everything the compiled model depends on: structure, priors, coordinates, data
        arrays and the source of the modules that build it (for the on-disk JAX cache)."""
        data = self.data_
        modules = {type(c).__module__ for c in (self.adstock, self.saturation,
                                                   self.community_adstock)}
        modules |= {"roi.paid_media.model", "roi.paid_media.lift_tests"}
        sources = tuple(Path(sys.modules[m].__file__).read_bytes() for m in sorted(modules))
        return ("media-mix", repr(self.adstock), repr(self.saturation),
                repr(self.community_adstock), self.roas_sigma,
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
            components = {"adstock": self.adstock, "saturation": self.saturation,
                          "community_adstock": self.community_adstock}
            self.logp_backend_ = logp_backend(**components)
            if self.logp_backend_ == "numba":     # hand-written kernel: no PyMC graph at all
                compiled, fresh = kernel_model(self.data_, self.inputs_, **components,
                                               roas_sigma=self.roas_sigma)
            else:
                key = structure_key(self.data_, **components, roas_sigma=self.roas_sigma)
                compiled, fresh = compiled_model(self._build, key=key,
                                                 model_key=self._model_key, inputs=self.inputs_)
            self.fit_seconds_["compile"] = clock.perf_counter() - started
            self.compiled_now_ = fresh
            started = clock.perf_counter()
            self.idata_ = sample_nutpie(compiled, draws=draws, tune=tune, chains=self.chains,
                                        seed=seed, target_accept=self.target_accept)
        else:
            self.idata_ = sample_pymc(self._build(), draws=draws, tune=tune,
                                      chains=self.chains, seed=seed,
                                      target_accept=self.target_accept)
        self.fit_seconds_["sample"] = clock.perf_counter() - started
        started = clock.perf_counter()
        self.result_ = self._result(self._diagnostics(draws=draws, used=used))
        self.roas_ = roas_frame(self.result_.by_group)
        self.fit_seconds_["summarise"] = clock.perf_counter() - started
        return self

    def _diagnostics(self, *, draws: int, used: str) -> Diagnostics:
        names = [v for v in self.idata_.posterior.data_vars]
        if np.ptp(self.data_.customers) == 0:   # no customers column: ``rate`` is prior only
            names.remove("rate")
        diagnostics = convergence_gate(self.idata_, draws=draws, chains=self.chains,
                                       method=METHOD, var_names=names)
        diagnostics.checks["sampler"] = used
        diagnostics.checks["nutpie_backend"] = nutpie_backend() if used == "nutpie" else None
        diagnostics.checks["logp_backend"] = (getattr(self, "logp_backend_", None)
                                              if used == "nutpie" else "pytensor")
        if used != self.sampler:
            diagnostics.warn(f"{METHOD}: sampled with {used}.")
        for message in self._input_warnings():
            diagnostics.warn(message)
        diagnostics.checks["roas_prior"] = dict(self.roas_prior_)
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
                            scale="revenue per unit of paid-media spend (the data's units)",
                            by_group=by_group,
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


def roas_prior(data: MediaData, *, median: float | None, sigma: float,
               paid_share: float = 0.15) -> dict[str, Any]:
    """The ROAS prior in the data's units (target per unit of spend) and the share of the
    target paid media would cause at its median.

    ``median=None`` takes it from the data: ``paid_share * sum(target) / sum(spend)``, the ROAS
    at which paid media as a whole would cause ``paid_share`` of the target; spend in thousands
    gives a median 1,000 times larger, in line with the data.

    Examples
    --------
    >>> import numpy as np
    >>> from roi.paid_media.frame import prepare_frame
    >>> import pandas as pd
    >>> df = pd.DataFrame({"week": pd.date_range("2024-01-01", periods=10, freq="W-MON"),
    ...                    "sales": 1000.0, "tv": np.arange(10.0)})
    >>> data = prepare_frame(df, date="week", target="sales", channels=["tv"])
    >>> prior = roas_prior(data, median=None, sigma=0.8)
    >>> round(prior["median"], 4), prior["implied_paid_share"]
    (33.3333, 0.15)
    """
    ratio = float(data.revenue.sum() / data.spend.sum())   # target per unit of spend
    if median is None:
        median = paid_share * ratio
        source = (f"from the data: the ROAS at which paid media would cause {paid_share:.0%} "
                  f"of the target ({paid_share:g} x target / spend = {median:.4g})")
    else:
        median, source = float(median), "stated"
    return {"median": median, "sigma": sigma, "source": source,
            "implied_paid_share": median / ratio}


def prior_warning(prior: dict[str, Any], *, low: float = 0.005, high: float = 1.0) -> str | None:
    """Why a stated ROAS prior is implausible for the data's scale, or None.

    A median at which paid media would cause under 0.5% or over 100% of the target usually
    means spend and target are in different units (thousands, cents, impressions).

    Examples
    --------
    >>> prior_warning({"median": 1.0, "sigma": 0.8, "source": "stated",
    ...                "implied_paid_share": 0.0001})[:40]
    'the ROAS prior (median 1 target per unit'
    >>> prior_warning({"median": 1.0, "sigma": 0.8, "source": "stated",
    ...                "implied_paid_share": 0.2}) is None
    True
    """
    share = prior["implied_paid_share"]
    if low <= share <= high:
        return None
    return (f"the ROAS prior (median {prior['median']:.4g} target per unit of spend, "
            f"{prior['source']}) implies paid media causes {share:.3%} of the target, "
            f"implausible for this data's scale (outside {low:.1%}-{high:.0%}): are spend and "
            "target in different units (thousands, cents)? The prior may dominate the data; "
            "state roas_median in target per unit of spend, or leave it None to take it from "
            "the data.")


def roas_frame(by_group: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Per-channel ROAS (``estimate``, ``low``, ``high``, ``spend``) indexed by channel."""
    rows = {ch: {"estimate": e["roas"]["estimate"], "low": e["roas"]["low"],
                 "high": e["roas"]["high"], "spend": e["spend"]} for ch, e in by_group.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("channel")


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
