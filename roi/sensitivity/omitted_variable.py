"""Omitted-variable-bias sensitivity (Cinelli & Hazlett 2020) for a regression-type estimate.

How strong would a hidden confounder have to be, in shares of variance explained, to change
the conclusion? Everything follows from the estimate's t-statistic and residual degrees of
freedom (``dof``):

* **partial R2 of the treatment with the outcome**, ``t^2 / (t^2 + dof)``: a confounder that
  explained all the outcome's residual variance would have to explain at least this share of
  the treatment's to bring the estimate to zero;
* **robustness value** ``RV_q``: a confounder explaining ``RV_q`` of the residual variance of
  both the treatment and the outcome reduces the estimate by ``100 q %`` (``q = 1``: to zero);
  ``RV_{q,alpha}``: the same to make it no longer significant at level ``alpha``;
* **bounds** benchmarked on an observed covariate: a hidden factor ``kd`` times as strong as
  the covariate in explaining the treatment and ``ky`` times in explaining the outcome, and
  the estimate, standard error and interval once adjusted for it (``ovb_bounds``).

Formulas as in the R package ``sensemakr`` (``robustness_value``, ``partial_r2``,
``ovb_partial_r2_bound``, ``adjusted_estimate``, ``adjusted_se``); ``tests/test_sensitivity.py``
reproduces the paper's Darfur example. For the toolkit's cluster-robust estimates (regression
adjustment, AIPW) the t-statistic uses the cluster-robust standard error and ``dof`` the
number of customers minus one: an approximation of the OLS setting the formulas are exact for.

Examples
--------
>>> s = omitted_variable_sensitivity(estimate=0.0973, se=0.0233, dof=783)
>>> round(s.partial_r2, 3), round(s.rv_q, 3), round(s.rv_qa, 3)
(0.022, 0.139, 0.076)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class OmittedVariableSensitivity:
    """The sensitivity statistics of one estimate (see the module doc)."""

    estimate: float
    se: float
    t: float
    dof: int
    partial_r2: float
    rv_q: float
    rv_qa: float
    q: float = 1.0
    alpha: float = 0.05

    def summary(self, *, what: str = "the lift") -> str:
        """One plain sentence for a finance reader."""
        sentence = (f"A hidden factor explaining {self.rv_q:.1%} of the unexplained variation "
                    f"in both membership and revenue would bring {what} to zero")
        if self.rv_qa <= 0:
            return sentence + " (it is already not statistically distinguishable from zero)."
        return sentence + (f"; {self.rv_qa:.1%} would make it statistically indistinguishable "
                           "from zero.")


@dataclass(frozen=True)
class OVBBound:
    """A hidden factor ``kd`` / ``ky`` times as strong as a benchmark covariate, and the
    estimate adjusted for it (bias against the estimate's sign, as sensemakr's ``reduce``)."""

    label: str
    r2dz_x: float
    r2yz_dx: float
    adjusted_estimate: float
    adjusted_se: float
    adjusted_t: float
    adjusted_low: float
    adjusted_high: float


def partial_r2(t: float, dof: int) -> float:
    """Partial R2 of a regressor with the outcome from its t-statistic: ``t^2 / (t^2 + dof)``.

    Examples
    --------
    >>> round(partial_r2(4.18445, 783), 5)
    0.02187
    """
    _require_dof(dof)
    return t**2 / (t**2 + dof)


def robustness_value(t: float, dof: int, *, q: float = 1.0, alpha: float | None = None) -> float:
    """``RV_q`` (``alpha=None``) or ``RV_{q,alpha}`` of an estimate with t-statistic ``t``.

    Examples
    --------
    >>> round(robustness_value(4.18445, 783), 5), round(robustness_value(4.18445, 783,
    ...                                                                   alpha=0.05), 5)
    (0.13878, 0.07626)
    """
    _require_dof(dof)
    if q <= 0:
        raise ValueError(f"q must be positive, got {q!r}")
    f_q = q * abs(t) / math.sqrt(dof)
    f_crit = 0.0
    if alpha is not None:
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        f_crit = float(abs(stats.t.ppf(alpha / 2, dof - 1))) / math.sqrt(dof - 1)
    f = f_q - f_crit
    if f <= 0:
        return 0.0
    if f_crit > 0 and f_q > 1.0 / f_crit:  # sensemakr's edge case: the bound is then linear
        return (f_q**2 - f_crit**2) / (1.0 + f_q**2)
    return 0.5 * (math.sqrt(f**4 + 4.0 * f**2) - f**2)


def omitted_variable_sensitivity(*, estimate: float, se: float, dof: int, q: float = 1.0,
                                 alpha: float = 0.05) -> OmittedVariableSensitivity:
    """Partial R2, ``RV_q`` and ``RV_{q,alpha}`` of an estimate with its standard error."""
    if not (math.isfinite(estimate) and math.isfinite(se) and se > 0):
        raise ValueError(f"need a finite estimate and a positive standard error, got "
                         f"estimate={estimate!r}, se={se!r}")
    t = estimate / se
    return OmittedVariableSensitivity(
        estimate=estimate, se=se, t=t, dof=int(dof), partial_r2=partial_r2(t, dof),
        rv_q=robustness_value(t, dof, q=q), rv_qa=robustness_value(t, dof, q=q, alpha=alpha),
        q=q, alpha=alpha)


def benchmark_strength(*, r2dxj_x: float, r2yxj_dx: float, kd: float,
                       ky: float | None = None) -> tuple[float, float]:
    """Partial R2s (with the treatment, with the outcome) of a hidden factor ``kd`` / ``ky``
    times as strong as a covariate with partial R2s ``r2dxj_x`` (with the treatment, given the
    other covariates) and ``r2yxj_dx`` (with the outcome, given the treatment and the others).
    Cinelli & Hazlett (2020) section 6.1; sensemakr's ``ovb_partial_r2_bound``.

    Examples
    --------
    >>> [round(v, 4) for v in benchmark_strength(r2dxj_x=0.1, r2yxj_dx=0.1, kd=1)]
    [0.1111, 0.1389]
    """
    ky = kd if ky is None else ky
    if not (0 <= r2dxj_x < 1 and 0 <= r2yxj_dx < 1):
        raise ValueError("partial R2s must be in [0, 1)")
    if kd * r2dxj_x >= 1:
        raise ValueError(f"kd = {kd} times the covariate's partial R2 with the treatment "
                         f"({r2dxj_x:.4f}) reaches 1: the hidden factor cannot be that strong")
    r2dz_x = kd * r2dxj_x / (1.0 - r2dxj_x)
    r2zxj_xd = kd * r2dxj_x**2 / ((1.0 - kd * r2dxj_x) * (1.0 - r2dxj_x))
    r2yz_dx = ((math.sqrt(ky) + math.sqrt(r2zxj_xd)) / math.sqrt(1.0 - r2zxj_xd)) ** 2 \
        * r2yxj_dx / (1.0 - r2yxj_dx)
    return r2dz_x, min(r2yz_dx, 1.0)  # sensemakr also caps the outcome side at 1


def adjusted_estimate(*, estimate: float, se: float, dof: int, r2dz_x: float,
                      r2yz_dx: float, alpha: float = 0.05) -> tuple[float, float, float, float]:
    """Estimate, standard error and interval adjusted for a confounder of the given strength,
    the bias taken against the estimate's sign; returns (estimate, se, low, high)."""
    _require_dof(dof)
    bias = se * math.sqrt(r2yz_dx * r2dz_x / (1.0 - r2dz_x)) * math.sqrt(dof)
    adjusted = estimate - math.copysign(bias, estimate)
    adjusted_se = se * math.sqrt((1.0 - r2yz_dx) / (1.0 - r2dz_x)) * math.sqrt(dof / (dof - 1))
    half = float(stats.t.ppf(1 - alpha / 2, dof - 1)) * adjusted_se
    return adjusted, adjusted_se, adjusted - half, adjusted + half


def ovb_bounds(*, estimate: float, se: float, dof: int, r2dxj_x: float, r2yxj_dx: float,
               kd: tuple[float, ...] = (1.0, 2.0, 3.0), ky: tuple[float, ...] | None = None,
               benchmark: str = "covariate", alpha: float = 0.05) -> list[OVBBound]:
    """Bounds for hidden factors ``kd`` (``ky``) times as strong as one observed covariate.

    Examples
    --------
    >>> b = ovb_bounds(estimate=0.0973, se=0.0233, dof=783, r2dxj_x=0.00908,
    ...                r2yxj_dx=0.1090, kd=(1,), benchmark="female")
    >>> b[0].label, round(b[0].adjusted_estimate, 3)
    ('1x female', 0.075)
    """
    ky = kd if ky is None else ky
    if len(ky) != len(kd):
        raise ValueError(f"ky needs one value per kd, got kd={kd!r}, ky={ky!r}")
    bounds = []
    for k_d, k_y in zip(kd, ky, strict=True):
        r2dz_x, r2yz_dx = benchmark_strength(r2dxj_x=r2dxj_x, r2yxj_dx=r2yxj_dx, kd=k_d, ky=k_y)
        value, value_se, low, high = adjusted_estimate(estimate=estimate, se=se, dof=dof,
                                                       r2dz_x=r2dz_x, r2yz_dx=r2yz_dx,
                                                       alpha=alpha)
        label = f"{k_d:g}x {benchmark}" if k_d == k_y else f"{k_d:g}x/{k_y:g}x {benchmark}"
        bounds.append(OVBBound(label, r2dz_x, r2yz_dx, value, value_se, value / value_se,
                               low, high))
    return bounds


def _require_dof(dof: int) -> None:
    if not dof >= 2:
        raise ValueError(f"need at least 2 residual degrees of freedom, got {dof!r}")
