"""Influence-function algebra of the staggered DiD (helper of :mod:`roi.models.did`).

R ``did`` keeps an ``n_units x n_cells`` influence matrix ``Psi``. Every number it reports is
a quadratic form of that matrix plus terms that depend on a unit only through its cohort (the
estimated group-size weights of ``aggte``). So we never keep ``Psi``: one pass over the units
(grouped by cohort and observed periods, or in blocks of rows) accumulates ``gram = Psi' Psi``
(cells x cells) and ``by_cohort = Psi' D`` (cells x cohorts, ``D`` the cohort dummies). Any aggregate is a :class:`LinearForm` ``phi_i = Psi_i w +
h[cohort_i]`` and its standard error is ``sqrt(w' gram w + 2 w' by_cohort h + sum_j N_j h_j^2) /
n``, R's ``sqrt(mean(phi^2) / n)``.

Examples
--------
>>> form = LinearForm(value=1.0, cell_weights=np.array([1.0]), cohort_terms=np.zeros(2))
>>> moments = InfluenceMoments(gram=np.array([[4.0]]), by_cohort=np.zeros((1, 2)),
...                            cohort_sizes=np.array([1, 1]))
>>> float(moments.standard_error(form))
1.0
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from roi.models._did_cells import CellEstimates, Cells

BLOCK_ELEMENTS = 2_000_000
"""Units per block x cells: bounds the memory of one block (16 MB a temporary)."""
PATTERN_MIN_UNITS = 64
"""Smallest group (cohort x observed periods) summed through its ``T x T`` cross-products."""


def single_threaded_blas() -> contextlib.AbstractContextManager:
    """Run BLAS on one thread while fitting.

    The products here are many and mid-sized; on a shared 2-core machine OpenBLAS threads
    waiting for a busy core made fits 3-4x slower (measured: 200k x 24 panel, 2.2-2.8 s on one
    thread against 8.5-9.3 s on two). ``threadpoolctl`` comes with PyMC; without it, no-op.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is installed with pymc
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@dataclass
class LinearForm:
    """An estimate with influence function ``Psi w + h[cohort]``."""

    value: float
    cell_weights: np.ndarray
    cohort_terms: np.ndarray

    def scaled(self, factor: float) -> LinearForm:
        return LinearForm(self.value * factor, self.cell_weights * factor,
                          self.cohort_terms * factor)

    def __add__(self, other: LinearForm) -> LinearForm:
        return LinearForm(self.value + other.value, self.cell_weights + other.cell_weights,
                          self.cohort_terms + other.cohort_terms)


@dataclass
class InfluenceMoments:
    """Cross-products of the influence matrix; enough for every standard error."""

    gram: np.ndarray
    by_cohort: np.ndarray
    cohort_sizes: np.ndarray

    @property
    def n_units(self) -> int:
        return int(self.cohort_sizes.sum())

    def standard_error(self, form: LinearForm) -> float:
        """R's analytic ``getSE``; NaN when it is numerically zero, as R reports NA."""
        w, h = form.cell_weights, form.cohort_terms
        total = w @ self.gram @ w + 2.0 * w @ self.by_cohort @ h + self.cohort_sizes @ h**2
        se = float(np.sqrt(max(total, 0.0))) / self.n_units
        return se if se > np.sqrt(np.finfo(float).eps) * 10 else float("nan")


def influence_moments(outcome: np.ndarray, cohort_index: np.ndarray, cells: Cells,
                      estimates: CellEstimates) -> InfluenceMoments:
    """Accumulate ``Psi' Psi`` and ``Psi' D`` without keeping ``Psi`` (no loop over units).

    Units of one cohort observed in the same periods share their influence terms, so a large
    such group adds ``diag(c) P' (Y'Y) P diag(c)`` (``P`` maps periods to cells): cost per unit
    ``T^2`` instead of ``cells^2``. The other units go through blocks of explicit ``Psi`` rows,
    restricted to the cells their cohort enters.
    """
    n_cells, n_cohorts = len(cells), estimates.coef.shape[0]
    gram, by_cohort = np.zeros((n_cells, n_cells)), np.zeros((n_cells, n_cohorts))
    group_of_unit, group_sizes = _observation_groups(outcome, cohort_index)
    large = group_sizes >= max(PATTERN_MIN_UNITS, 2 * outcome.shape[1])
    order = np.argsort(group_of_unit, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(group_sizes)])
    for group in np.flatnonzero(large):
        members = order[bounds[group]:bounds[group + 1]]
        _add_pattern_group(gram, by_cohort, outcome[members], int(cohort_index[members[0]]),
                           cells, estimates)
    in_blocks = ~large[group_of_unit]
    for cohort in range(n_cohorts):
        rows = outcome[in_blocks & (cohort_index == cohort)]
        _add_blocks(gram, by_cohort, rows, cohort, cells, estimates)
    sizes = np.bincount(cohort_index, minlength=n_cohorts)
    return InfluenceMoments(gram, by_cohort, sizes)


def _observation_groups(outcome: np.ndarray,
                        cohort_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group id of each unit (same cohort and same observed periods) and group sizes."""
    observed = ~np.isnan(outcome)
    if observed.shape[1] <= 40:  # one integer key: cohort, then one bit per period
        bits = observed.astype(np.int64) @ (np.int64(1) << np.arange(observed.shape[1]))
        keys = (cohort_index.astype(np.int64) << observed.shape[1]) | bits
        _, group_of_unit, sizes = np.unique(keys, return_inverse=True, return_counts=True)
    else:
        keys = np.column_stack([cohort_index, np.packbits(observed, axis=1)]).astype(np.int64)
        _, group_of_unit, sizes = np.unique(keys, axis=0, return_inverse=True,
                                            return_counts=True)
    return group_of_unit.ravel(), sizes


def _add_pattern_group(gram: np.ndarray, by_cohort: np.ndarray, outcome: np.ndarray,
                       cohort: int, cells: Cells, estimates: CellEstimates) -> None:
    """Exact contribution of units with one cohort and one observation pattern."""
    seen = ~np.isnan(outcome[0])
    columns = np.flatnonzero(estimates.coef[cohort] * seen[cells.period] * seen[cells.base])
    if columns.size == 0:
        return
    values = np.where(seen, outcome, 0.0)
    mean = values.mean(axis=0)
    centred = values - mean
    to_cells = np.zeros((outcome.shape[1], columns.size))
    to_cells[cells.period[columns], np.arange(columns.size)] = 1.0
    to_cells[cells.base[columns], np.arange(columns.size)] -= estimates.theta[columns]
    coef = estimates.coef[cohort, columns]
    shift = mean @ to_cells - estimates.centre[cohort, columns]
    spread = to_cells.T @ (centred.T @ centred) @ to_cells
    n_members = outcome.shape[0]
    gram[np.ix_(columns, columns)] += np.outer(coef, coef) * (
        spread + n_members * np.outer(shift, shift))
    by_cohort[columns, cohort] += coef * n_members * shift


def _add_blocks(gram: np.ndarray, by_cohort: np.ndarray, outcome: np.ndarray, cohort: int,
                cells: Cells, estimates: CellEstimates) -> None:
    """Contribution of units of one cohort, through explicit ``Psi`` rows in blocks."""
    columns = np.flatnonzero(estimates.coef[cohort])
    if columns.size == 0 or outcome.shape[0] == 0:
        return
    block = max(64, BLOCK_ELEMENTS // columns.size)
    for start in range(0, outcome.shape[0], block):
        psi = _influence_block(outcome[start:start + block], cohort, columns, cells, estimates)
        gram[np.ix_(columns, columns)] += psi.T @ psi
        by_cohort[columns, cohort] += psi.sum(axis=0)


def _influence_block(outcome: np.ndarray, cohort: int, columns: np.ndarray, cells: Cells,
                     estimates: CellEstimates) -> np.ndarray:
    """Columns ``columns`` of ``Psi`` for units of one cohort (0 where not in the cell)."""
    at_t, at_base = outcome[:, cells.period[columns]], outcome[:, cells.base[columns]]
    psi = estimates.coef[cohort, columns] * (at_t - estimates.theta[columns] * at_base
                                             - estimates.centre[cohort, columns])
    psi[np.isnan(psi)] = 0.0
    return psi
