"""E-values (VanderWeele & Ding 2017): how strong a hidden confounder would have to be.

The E-value of a risk ratio ``RR`` is the minimum strength of association, on the risk-ratio
scale, that an unmeasured confounder would need with both the treatment (membership) and the
outcome (churn), beyond the measured covariates, to explain the estimate away fully:
``E = RR + sqrt(RR (RR - 1))`` for ``RR >= 1`` (``RR < 1`` is inverted first). The E-value of
the confidence interval is that of the limit nearer 1, and 1 when the interval includes 1.

Hazard ratios are converted to the risk-ratio scale as the R package ``EValue`` does
(``evalues.HR``): with a rare outcome (under 15% by the end of follow-up) the hazard ratio is
used as a risk ratio; with a common outcome (customer churn over a two-year window is common)
by VanderWeele's square-root transformation
``RR = (1 - 0.5 ** sqrt(HR)) / (1 - 0.5 ** sqrt(1 / HR))``.

Examples
--------
>>> result = evalues_rr(3.9, low=1.8, high=8.7)       # EValue::evalues.RR(3.9, 1.8, 8.7)
>>> round(result.e_value, 2), round(result.e_value_interval, 2)
(7.26, 3.0)
>>> round(evalues_hr(0.70, low=0.60, high=1.05, rare=False).e_value_interval, 2)
1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RARE_OUTCOME_SHARE = 0.15
"""EValue's threshold: an outcome is rare when under 15% have it by the end of follow-up."""


@dataclass(frozen=True)
class EValue:
    """E-values of a ratio estimate and of its interval limit nearer 1.

    Attributes
    ----------
    estimate, low, high : float
        The estimate and interval on the risk-ratio scale (after any hazard-ratio conversion).
    e_value : float
        E-value of the point estimate (1 when the estimate is exactly 1).
    e_value_interval : float or None
        E-value of the interval limit nearer 1; 1 when the interval includes 1; None without
        an interval.
    """

    estimate: float
    low: float | None
    high: float | None
    e_value: float
    e_value_interval: float | None

    def summary(self, *, what: str = "the churn hazard ratio", interval: str = "95% CI") -> str:
        """One plain sentence for a finance reader."""
        sentence = (f"To explain away {what}, a hidden factor would need a risk ratio of at "
                    f"least {self.e_value:.2f} with both joining and churn, beyond the "
                    "covariates")
        if self.e_value_interval is None:
            return sentence + "."
        if self.e_value_interval <= 1.0:
            return sentence + "; its interval already includes no effect."
        return (sentence + f" ({self.e_value_interval:.2f} to move its {interval} to "
                "include no effect).")


def e_value(ratio: float) -> float:
    """E-value of one risk ratio (VanderWeele & Ding 2017, their equation for ``RR >= 1``).

    Examples
    --------
    >>> round(e_value(0.80), 2)        # the leukemia example of VanderWeele & Ding (2017)
    1.81
    """
    _require_positive(ratio, "ratio")
    rr = 1.0 / ratio if ratio < 1.0 else ratio
    return rr + math.sqrt(rr * (rr - 1.0))


def hazard_to_risk_ratio(hazard_ratio: float, *, rare: bool) -> float:
    """A hazard ratio on the risk-ratio scale (EValue's ``toRR`` of an ``HR``).

    Examples
    --------
    >>> round(hazard_to_risk_ratio(0.56, rare=False), 4)
    0.6701
    """
    _require_positive(hazard_ratio, "hazard_ratio")
    if rare:
        return hazard_ratio
    root = math.sqrt(hazard_ratio)
    return (1.0 - 0.5**root) / (1.0 - 0.5 ** (1.0 / root))


def evalues_rr(estimate: float, *, low: float | None = None,
               high: float | None = None) -> EValue:
    """E-values of a risk ratio and its interval (EValue's ``evalues.RR``).

    Examples
    --------
    >>> r = evalues_rr(0.80, low=0.71, high=0.91)   # VanderWeele & Ding (2017): 1.81, 1.43
    >>> round(r.e_value, 2), round(r.e_value_interval, 2)
    (1.81, 1.43)
    """
    _require_positive(estimate, "estimate")
    for name, value in (("low", low), ("high", high)):
        if value is not None:
            _require_positive(value, name)
    if low is not None and high is not None and not low <= estimate <= high:
        raise ValueError(f"the estimate {estimate} must lie inside its interval "
                         f"[{low}, {high}]")
    return EValue(estimate, low, high, e_value(estimate), _interval_e_value(estimate, low, high))


def evalues_hr(estimate: float, *, low: float | None = None, high: float | None = None,
               rare: bool = False) -> EValue:
    """E-values of a hazard ratio and its interval (EValue's ``evalues.HR``).

    ``rare=False`` (the default: churn is common) converts by the square-root transformation;
    ``rare=True`` takes the hazard ratio as a risk ratio.

    Examples
    --------
    >>> round(evalues_hr(0.56, low=0.46, high=0.69, rare=True).e_value, 2)
    2.97
    """
    def convert(value: float | None) -> float | None:
        return None if value is None else hazard_to_risk_ratio(value, rare=rare)

    return evalues_rr(convert(estimate), low=convert(low), high=convert(high))


def _interval_e_value(estimate: float, low: float | None, high: float | None) -> float | None:
    """E-value of the limit nearer 1; 1 when the interval includes 1 (as EValue)."""
    nearer = low if estimate > 1.0 else high if estimate < 1.0 else 1.0
    if nearer is None:
        return None
    if (estimate > 1.0 and nearer <= 1.0) or (estimate < 1.0 and nearer >= 1.0):
        return 1.0
    return e_value(nearer)


def _require_positive(value: float, name: str) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite ratio, got {value!r}")
