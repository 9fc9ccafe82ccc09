"""One result type for every estimator, whatever the backend (OLS, GLM, Cox, PyMC).

Every estimator returns an :class:`EffectResult`. Reports, widgets and ``results.json`` read only
this type, so a new estimator plugs in without touching them.

Examples
--------
>>> from roi.results import EffectResult
>>> r = EffectResult(method="naive", estimand="community_revenue_lift", estimate=12.0,
...                  low=10.0, high=14.0, interval="95% CI", scale="currency per member-month")
>>> r.to_contract()["estimate"]
12.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

CI95 = "95% CI"
HDI94 = "94% HDI"


def hdi_bounds(values: np.ndarray, *, prob: float = 0.94) -> np.ndarray:
    """HDI of draws on axis 0, for every other position at once: (2, ...) low and high.

    The same interval as ``arviz.hdi`` (the narrowest window of ``floor(prob * n)`` steps of
    the sorted draws, the first one on ties), one sort for all positions. Every Bayesian model
    of the toolkit reports its intervals through this function.

    Examples
    --------
    >>> import arviz as az
    >>> draws = np.random.default_rng(0).normal(2.0, 0.1, (4000, 3))
    >>> bool(np.allclose(hdi_bounds(draws)[:, 1], az.hdi(draws[:, 1], hdi_prob=0.94)))
    True
    """
    ordered = np.sort(np.asarray(values, dtype=float), axis=0)
    n = ordered.shape[0]
    inside = int(np.floor(prob * n))
    widths = ordered[inside:] - ordered[: n - inside]
    first = np.expand_dims(np.argmin(widths, axis=0), 0)
    return np.concatenate([np.take_along_axis(ordered, first, 0),
                           np.take_along_axis(ordered, first + inside, 0)])


def hdi_entries(values: np.ndarray, *, key: str = "estimate") -> list[dict[str, Any]]:
    """Posterior mean (under ``key``) and 94% HDI of each column of (draw, column) ``values``,
    shaped like the contract's entries."""
    values = np.asarray(values, dtype=float).reshape(len(values), -1)
    bounds, means = hdi_bounds(values), values.mean(axis=0)
    return [{key: float(means[i]), "low": float(bounds[0, i]), "high": float(bounds[1, i]),
             "interval": HDI94} for i in range(values.shape[1])]


def hdi_entry(values: np.ndarray, *, key: str = "estimate") -> dict[str, Any]:
    """:func:`hdi_entries` of one set of draws.

    Examples
    --------
    >>> hdi_entry(np.random.default_rng(0).normal(2.0, 0.1, 4000))["interval"]
    '94% HDI'
    """
    return hdi_entries(np.asarray(values, dtype=float).ravel()[:, None], key=key)[0]


@dataclass
class Diagnostics:
    """What a reader must know before trusting a number.

    ``converged`` is False when a sampler or optimiser did not meet its gate; ``warnings`` are
    plain sentences shown wherever the estimate is shown; ``checks`` holds the figures behind them
    (r-hat, ESS, divergences, overlap, balance, pre-trend p-values ...).
    """

    converged: bool = True
    warnings: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def to_contract(self) -> dict[str, Any]:
        return {"converged": bool(self.converged), "warnings": list(self.warnings),
                "checks": _jsonable(self.checks)}


@dataclass
class EffectResult:
    """Estimate with interval, diagnostics and tidy tables.

    Parameters
    ----------
    method : str
        Method name as it appears in ``results.json`` (``naive``, ``did``, ``cox_time_varying`` ...).
    estimand : str
        ``community_revenue_lift``, ``community_retention_lift``, ``roas`` ...
    estimate, low, high : float
        Point estimate and interval bounds on the scale named by ``scale``.
    interval : str
        ``"95% CI"`` for frequentist methods, ``"94% HDI"`` for Bayesian ones.
    scale : str
        What the number is: ``"currency per member-month"``, ``"hazard ratio"`` ...
    n_treated : int, optional
        Treated units (members).
    n_obs : int, optional
        Treated observations the estimate averages over (member-months for revenue lift).
    by_group : dict
        Per-community (or per-segment) estimates, each a dict with estimate, low, high, interval.
    tables : dict of DataFrame
        Tidy tables behind the estimate (per cohort, per event time, balance ...).
    """

    method: str
    estimand: str
    estimate: float
    low: float
    high: float
    interval: str
    scale: str = ""
    n_treated: int | None = None
    n_obs: int | None = None
    by_group: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    diagnostics: Diagnostics = field(default_factory=Diagnostics)
    value_name: str = "estimate"

    @property
    def refused(self) -> str | None:
        """Why there is no estimate (the data cannot identify it), or None."""
        return self.diagnostics.checks.get("refused")

    def to_contract(self) -> dict[str, Any]:
        """The dict written under ``estimates`` in ``results.json``."""
        out = {self.value_name: _num(self.estimate), "low": _num(self.low),
               "high": _num(self.high), "interval": self.interval}
        if not self.diagnostics.converged:
            out["converged"] = False
        if self.refused:
            out["refused"] = self.refused
        return out

    def summary(self) -> pd.DataFrame:
        """One-row table: method, estimate, interval, counts, convergence."""
        row = {"method": self.method, self.value_name: self.estimate, "low": self.low,
               "high": self.high, "interval": self.interval, "n_treated": self.n_treated,
               "n_obs": self.n_obs, "converged": self.diagnostics.converged,
               "warnings": len(self.diagnostics.warnings)}
        return pd.DataFrame([row]).set_index("method")

    def sentence(self, currency: str = "$") -> str:
        """A plain-language sentence a finance reader understands."""
        caveat = "" if self.diagnostics.converged else " (NOT CONVERGED: do not rely on it)"
        if self.value_name == "hazard_ratio":
            change = (1.0 - self.estimate) * 100
            word = "lowers" if change > 0 else "raises"
            return (f"{self.method}: membership {word} the monthly churn hazard by "
                    f"{abs(change):.0f}% (hazard ratio {self.estimate:.2f}, {self.interval} "
                    f"{self.low:.2f}-{self.high:.2f}){caveat}.")
        return (f"{self.method}: each member-month adds {currency}{self.estimate:,.2f} "
                f"({self.interval} {currency}{self.low:,.2f} to {currency}{self.high:,.2f})"
                f"{caveat}.")

    def __repr__(self) -> str:
        return (f"EffectResult(method={self.method!r}, {self.value_name}={self.estimate:.4g}, "
                f"{self.interval}=[{self.low:.4g}, {self.high:.4g}], "
                f"converged={self.diagnostics.converged})")


def estimates_section(estimates: dict[str, EffectResult], *, choice: Any) -> dict[str, Any]:
    """An ``estimates`` block with the preferred method (``choice``, a
    :class:`roi.preference.Choice` chosen by evidence) and the sentence that says why."""
    section: dict[str, Any] = {
        "preferred": choice.method,
        "preferred_reason": choice.reason,
        "estimates": {name: r.to_contract() for name, r in estimates.items()},
    }
    if choice.method is not None:
        section["by_community"] = estimates[choice.method].by_group
    return section


def mark_on_sample(results: dict[str, EffectResult], sample: Any, *,
                   names: tuple[str, ...] | None = None) -> None:
    """Estimates computed on a random sample of customers (``sample``: a
    :class:`roi.data.sample.CustomerSample`, or None for all customers) say so beside their
    number: a warning with the sample's sentence and ``checks["customer_sample"]``. ``names``
    limits it to those keys of ``results``; refused estimates have no number to qualify."""
    if sample is None:
        return
    for name, result in results.items():
        if (names is not None and name not in names) or result.refused:
            continue
        result.diagnostics.warn(f"{name}: {sample.sentence()}")
        result.diagnostics.checks["customer_sample"] = sample.to_contract()


def refused_effect(*, method: str, estimand: str, reason: str, interval: str,
                   scale: str = "", value_name: str = "estimate") -> EffectResult:
    """A result that says why there is no estimate: null numbers, ``converged = False``, the
    reason in ``warnings`` and ``checks["refused"]`` (and so in ``results.json``).

    Examples
    --------
    >>> refused_effect(method="did_multiplicative", estimand="community_revenue_lift",
    ...                reason="no attribution", interval="95% CI").to_contract()["refused"]
    'no attribution'
    """
    diagnostics = Diagnostics(converged=False, checks={"refused": reason})
    diagnostics.warn(f"{method}: not estimated: {reason}.")
    nan = float("nan")
    return EffectResult(method=method, estimand=estimand, estimate=nan, low=nan, high=nan,
                        interval=interval, scale=scale, diagnostics=diagnostics,
                        value_name=value_name)


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _jsonable(value: Any) -> Any:
    """Turn numpy scalars and containers into plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        try:
            return value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and math.isnan(value):
        return None
    return value
