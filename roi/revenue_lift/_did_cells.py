"""Group-time cells and their 2x2 estimates (helper of :mod:`roi.revenue_lift.did`).

A cell compares cohort ``g`` between a base period and period ``t`` with a control set of
cohorts. Only units observed in both periods enter a cell (unbalanced panels). Every estimate
is a smooth function of four means over those units: treated at ``t`` (a) and at the base (b),
controls at ``t`` (c) and at the base (d):

* additive: ``att = (a - b) - (c - d)``, counterfactual ``b + c - d``;
* multiplicative: ``att = a - b * c / d``, counterfactual ``b * c / d`` (parallel trends in
  logs of means), ratio ``att / counterfactual``.

Its influence function for unit ``i`` in cohort ``j`` is
``coef[j, k] * (Y_i,t - theta_k * Y_i,base - centre[j, k])`` when ``i`` is observed in both
periods, 0 otherwise; :class:`CellEstimates` holds ``coef``, ``theta`` and ``centre``.

Examples
--------
>>> cells = group_time_cells(cohorts=np.array([2]), n_periods=4, base_period="varying",
...                          anticipation=0)
>>> cells.period.tolist(), cells.base.tolist()
([1, 2, 3], [0, 1, 1])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from roi.revenue_lift._did_panel import NEVER


@dataclass
class Cells:
    """The (g, t) comparisons: positions of cohort, period and base period, one entry a cell."""

    cohort: np.ndarray
    period: np.ndarray
    base: np.ndarray
    reference: np.ndarray
    """True for the universal base period itself: ATT 0 by construction, no variance."""

    @property
    def event_time(self) -> np.ndarray:
        return self.period - self.cohort

    def __len__(self) -> int:
        return len(self.cohort)


@dataclass
class CellEstimates:
    """Point estimates of each cell and the terms of its influence function."""

    att: np.ndarray
    counterfactual: np.ndarray
    n_treated: np.ndarray
    n_control: np.ndarray
    valid: np.ndarray
    coef: np.ndarray
    centre: np.ndarray
    theta: np.ndarray
    treated_cohort: np.ndarray
    """Cohort index (into the sorted cohort codes) of each cell's treated units."""


def group_time_cells(*, cohorts: np.ndarray, n_periods: int, base_period: str,
                     anticipation: int) -> Cells:
    """All cells R ``did::att_gt`` estimates, in its order (cohort, then period).

    ``varying``: a period before ``g`` is compared with the period just before it, a period
    from ``g`` on with ``g - 1 - anticipation``. ``universal``: every period with
    ``g - 1 - anticipation``, which is itself a reference cell.
    """
    first = 1 if base_period == "varying" else 0
    cohort, period = (a.ravel() for a in np.meshgrid(cohorts, np.arange(first, n_periods),
                                                     indexing="ij"))
    long_base = cohort - 1 - anticipation
    if base_period == "varying":
        base = np.where(period >= cohort, long_base, period - 1)
    else:
        base = long_base
    return Cells(cohort, period, base, reference=period == base)


def control_mask(cells: Cells, *, cohort_codes: np.ndarray, control_group: str,
                 anticipation: int) -> np.ndarray:
    """``(n_cohorts, n_cells)`` True where cohort ``j`` is a control for cell ``k``."""
    code = cohort_codes[:, None]
    never = np.broadcast_to(code == NEVER, (len(cohort_codes), len(cells)))
    if control_group == "never_treated":
        return never.copy()
    latest = np.maximum(cells.period, cells.base)[None, :] + anticipation
    return never | ((code > latest) & (code != cells.cohort[None, :]))


def cohort_cross_moments(outcome: np.ndarray, cohort_index: np.ndarray,
                         n_cohorts: int) -> tuple[np.ndarray, np.ndarray]:
    """Per cohort ``j``: ``sums[j, s, r]`` = sum of Y at ``s`` over units observed at ``s``
    and ``r``; ``counts[j, s, r]`` = number of those units. Shapes ``(J, T, T)``."""
    observed = ~np.isnan(outcome)
    filled = np.where(observed, outcome, 0.0)
    n_periods = outcome.shape[1]
    sums = np.zeros((n_cohorts, n_periods, n_periods))
    counts = np.zeros((n_cohorts, n_periods, n_periods))
    for j in range(n_cohorts):
        rows = cohort_index == j
        seen = observed[rows].astype(float)
        sums[j] = filled[rows].T @ seen
        counts[j] = seen.T @ seen
    return sums, counts


def estimate_cells(cells: Cells, *, sums: np.ndarray, counts: np.ndarray,
                   controls: np.ndarray, treated_index: np.ndarray, n_units: int,
                   scale: str) -> CellEstimates:
    """2x2 estimates and influence-function terms for every cell (see the module doc)."""
    t, base, k = cells.period, cells.base, np.arange(len(cells))
    n_count, at_t, at_base = counts[:, t, base], sums[:, t, base], sums[:, base, t]
    n_treated = n_count[treated_index, k]
    n_control = (n_count * controls).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = at_t[treated_index, k] / n_treated, at_base[treated_index, k] / n_treated
        c = (at_t * controls).sum(axis=0) / n_control
        d = (at_base * controls).sum(axis=0) / n_control
        if scale == "multiplicative":
            theta, counterfactual = c / d, b * c / d
            treated_centre, control_centre, control_factor = a - b * c / d, 0.0 * d, b / d
        else:
            theta, counterfactual = np.ones_like(a), b + c - d
            treated_centre, control_centre, control_factor = a - b, c - d, np.ones_like(a)
        att = a - counterfactual
        valid = (n_treated > 0) & (n_control > 0) & np.isfinite(att)
        is_treated = np.arange(counts.shape[0])[:, None] == treated_index[None, :]
        coef = np.where(is_treated, n_units / n_treated, 0.0)
        coef = coef - np.where(controls, n_units * control_factor / n_control, 0.0)
        centre = np.where(is_treated, treated_centre, np.where(controls, control_centre, 0.0))
    usable = valid & ~cells.reference
    coef, centre = np.where(usable, coef, 0.0), np.where(usable, centre, 0.0)
    return CellEstimates(att=np.where(valid, att, np.nan), counterfactual=counterfactual,
                         n_treated=n_treated.astype(np.int64),
                         n_control=n_control.astype(np.int64), valid=valid, coef=coef,
                         centre=centre, theta=np.where(usable, theta, 1.0),
                         treated_cohort=np.asarray(treated_index))
