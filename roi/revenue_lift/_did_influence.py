"""Influence-function algebra of the staggered DiD (helper of :mod:`roi.revenue_lift.did`).

R ``did`` keeps an ``n_units x n_cells`` influence matrix ``Psi``. Every number it reports is
a quadratic form of that matrix plus terms for the estimated aggregation weights. So we never
keep ``Psi``: one pass over the units (grouped by cohort and observed periods, or in blocks of
rows) accumulates ``gram = Psi' Psi`` (cells x cells), ``by_cohort = Psi' D`` (cells x cohorts,
``D`` the cohort dummies), ``by_cell = Psi' M`` and ``overlap = M' M`` (``M[i, k] = 1`` when
unit ``i`` is a treated unit of cell ``k``, i.e. of its cohort and observed in both periods).

Any aggregate is a :class:`LinearForm` with influence function
``phi_i = Psi_i w + h[cohort_i] + sum_k (M[i, k] - p_k) c_k`` (``p_k = n_k / n``): ``h`` is
R's term for cohort-size weights, ``c`` the one for weights proportional to the treated units
observed in each cell (member-months). Its standard error is ``sqrt(sum_i phi_i^2) / n``,
R's ``sqrt(mean(phi^2) / n)``, expanded in the moments above.

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
import functools
from dataclasses import dataclass

import numpy as np

from roi.revenue_lift._did_cells import CellEstimates, Cells

BLOCK_ELEMENTS = 2_000_000
"""Units per block x cells: bounds the memory of one block (16 MB a temporary)."""
PATTERN_MIN_UNITS = 64
"""Smallest group (cohort x observed periods) summed through its ``T x T`` cross-products."""


def single_threaded_blas() -> contextlib.AbstractContextManager:
    """Run BLAS on one thread while fitting.

    The products here are many and mid-sized; on a shared 2-core machine OpenBLAS threads
    waiting for a busy core made fits 3-4x slower (measured: 200k x 24 panel, 2.2-2.8 s on one
    thread against 8.5-9.3 s on two). ``threadpoolctl`` comes with PyMC; without it, no-op.
    The controller is built once: finding the BLAS libraries costs ~15 ms, as much as a whole
    fit of a small panel (the coverage studies fit hundreds).
    """
    controller = _blas_controller()
    if controller is None:  # pragma: no cover - threadpoolctl is installed with pymc
        return contextlib.nullcontext()
    return controller.limit(limits=1, user_api="blas")


@functools.cache
def _blas_controller() -> object | None:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover
        return None
    return ThreadpoolController()


@dataclass
class LinearForm:
    """An estimate with influence function ``Psi w + h[cohort] + (M - p) c``.

    ``cell_terms`` (``c``) is None for forms without member-month weight terms.
    """

    value: float
    cell_weights: np.ndarray
    cohort_terms: np.ndarray
    cell_terms: np.ndarray | None = None

    def cell_terms_or_zero(self) -> np.ndarray:
        return np.zeros_like(self.cell_weights) if self.cell_terms is None else self.cell_terms

    def scaled(self, factor: float) -> LinearForm:
        terms = None if self.cell_terms is None else self.cell_terms * factor
        return LinearForm(self.value * factor, self.cell_weights * factor,
                          self.cohort_terms * factor, terms)

    def __add__(self, other: LinearForm) -> LinearForm:
        terms = (None if self.cell_terms is None and other.cell_terms is None
                 else self.cell_terms_or_zero() + other.cell_terms_or_zero())
        return LinearForm(self.value + other.value, self.cell_weights + other.cell_weights,
                          self.cohort_terms + other.cohort_terms, terms)


@dataclass
class InfluenceMoments:
    """Cross-products of the influence matrix; enough for every standard error.

    ``by_cell``, ``overlap``, ``cell_counts`` (``n_k``) and ``cell_cohort`` (cohort index of
    each cell's treated units) are only needed by forms with ``cell_terms``; they default to
    empty (no cell) for hand-built moments.
    """

    gram: np.ndarray
    by_cohort: np.ndarray
    cohort_sizes: np.ndarray
    by_cell: np.ndarray | None = None
    overlap: np.ndarray | None = None
    cell_counts: np.ndarray | None = None
    cell_cohort: np.ndarray | None = None

    @property
    def n_units(self) -> int:
        return int(self.cohort_sizes.sum())

    def covariance(self, forms: list[LinearForm]) -> np.ndarray:
        """Covariance matrix of the forms' estimates: ``Phi' Phi / n^2``."""
        w = np.array([f.cell_weights for f in forms])
        h = np.array([f.cohort_terms for f in forms])
        total = self._cross(w, h, self.by_cohort) + h * self.cohort_sizes @ h.T
        total += w @ self.gram @ w.T
        if any(f.cell_terms is not None for f in forms):
            total += self._member_month_terms(w, h, np.array([f.cell_terms_or_zero()
                                                             for f in forms]))
        return total / self.n_units**2

    @staticmethod
    def _cross(left: np.ndarray, right: np.ndarray, middle: np.ndarray) -> np.ndarray:
        """``A B C' + (A B C')'``: the symmetric cross term of two parts of ``phi``."""
        half = left @ middle @ right.T
        return half + half.T

    def _member_month_terms(self, w: np.ndarray, h: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Terms of ``(M - p) c`` in ``Phi' Phi``; uses ``sum_i Psi_i = by_cohort`` summed."""
        if self.by_cell is None or self.overlap is None or self.cell_counts is None:
            raise ValueError("these moments have no member-month cross-products")
        n, counts = self.n_units, self.cell_counts.astype(float)
        mean_term = c @ (counts / n)  # p' c for each form
        psi_total = self.by_cohort.sum(axis=1)
        with_psi = w @ self.by_cell @ c.T - np.outer(w @ psi_total, mean_term)
        cohort_of_cell = h[:, self.cell_cohort] * counts  # sum_i h[cohort_i] M[i, k]
        with_cohort = cohort_of_cell @ c.T - np.outer(h @ self.cohort_sizes, mean_term)
        cross = with_psi + with_cohort
        own = c @ self.overlap @ c.T - n * np.outer(mean_term, mean_term)
        return cross + cross.T + own

    def variances(self, forms: list[LinearForm]) -> np.ndarray:
        """Diagonal of :meth:`covariance` without the off-diagonal work (one row per form)."""
        plain = np.array([f.cell_terms is None for f in forms], dtype=bool)
        out = np.empty(len(forms))
        if plain.any():
            w = np.array([f.cell_weights for f, p in zip(forms, plain, strict=True) if p])
            h = np.array([f.cohort_terms for f, p in zip(forms, plain, strict=True) if p])
            out[plain] = (np.einsum("ij,ij->i", w @ self.gram, w)
                          + 2.0 * np.einsum("ij,ij->i", w @ self.by_cohort, h)
                          + (h**2) @ self.cohort_sizes) / self.n_units**2
        if not plain.all():  # few forms (aggregates): their full covariance is cheap
            out[~plain] = np.diag(self.covariance([f for f, p in zip(forms, plain, strict=True)
                                                   if not p]))
        return out

    def standard_errors(self, forms: list[LinearForm]) -> np.ndarray:
        """R's analytic ``getSE`` per form; NaN where it is numerically zero (R: NA)."""
        se = np.sqrt(np.maximum(self.variances(forms), 0.0))
        return np.where(se > np.sqrt(np.finfo(float).eps) * 10, se, np.nan)

    def standard_error(self, form: LinearForm) -> float:
        """:meth:`standard_errors` of one form."""
        return float(self.standard_errors([form])[0])


def influence_moments(outcome: np.ndarray, cohort_index: np.ndarray, cells: Cells,
                      estimates: CellEstimates) -> InfluenceMoments:
    """Accumulate ``Psi' Psi``, ``Psi' D``, ``Psi' M`` and ``M' M`` without keeping ``Psi``.

    Units of one cohort observed in the same periods share their influence terms, so a large
    such group adds ``diag(c) P' (Y'Y) P diag(c)`` (``P`` maps periods to cells): cost per unit
    ``T^2`` instead of ``cells^2``. The other units go through blocks of explicit ``Psi`` rows,
    restricted to the cells their cohort enters.
    """
    n_cells, n_cohorts = len(cells), estimates.coef.shape[0]
    sums = _Sums(np.zeros((n_cells, n_cells)), np.zeros((n_cells, n_cohorts)),
                 np.zeros((n_cells, n_cells)), np.zeros((n_cells, n_cells)))
    group_of_unit, group_sizes = _observation_groups(outcome, cohort_index)
    large = group_sizes >= max(PATTERN_MIN_UNITS, 2 * outcome.shape[1])
    order = np.argsort(group_of_unit, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(group_sizes)])
    for group in np.flatnonzero(large):
        members = order[bounds[group]:bounds[group + 1]]
        _add_pattern_group(sums, outcome[members], int(cohort_index[members[0]]), cells,
                           estimates)
    in_blocks = ~large[group_of_unit]
    for cohort in range(n_cohorts):
        rows = outcome[in_blocks & (cohort_index == cohort)]
        _add_blocks(sums, rows, cohort, cells, estimates)
    sizes = np.bincount(cohort_index, minlength=n_cohorts)
    counts = np.where(estimates.valid, estimates.n_treated, 0)
    return InfluenceMoments(sums.gram, sums.by_cohort, sizes, by_cell=sums.by_cell,
                            overlap=sums.overlap, cell_counts=counts,
                            cell_cohort=estimates.treated_cohort)


@dataclass
class _Sums:
    """The four cross-products being accumulated (see the module doc)."""

    gram: np.ndarray
    by_cohort: np.ndarray
    by_cell: np.ndarray
    overlap: np.ndarray


def _treated_cells(seen: np.ndarray, cohort: int, cells: Cells,
                   estimates: CellEstimates) -> tuple[np.ndarray, np.ndarray]:
    """``M`` for units of ``cohort`` with observation rows ``seen``: the valid cells of their
    own cohort, and a ``(units, those cells)`` 0/1 matrix of being observed in both periods."""
    own = np.flatnonzero((estimates.treated_cohort == cohort) & estimates.valid)
    return own, (seen[:, cells.period[own]] & seen[:, cells.base[own]]).astype(float)


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


def _add_pattern_group(sums: _Sums, outcome: np.ndarray, cohort: int, cells: Cells,
                       estimates: CellEstimates) -> None:
    """Exact contribution of units with one cohort and one observation pattern."""
    seen = ~np.isnan(outcome[0])
    n_members = outcome.shape[0]
    own, in_cell = _treated_cells(seen[None, :], cohort, cells, estimates)
    sums.overlap[np.ix_(own, own)] += n_members * np.outer(in_cell[0], in_cell[0])
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
    sums.gram[np.ix_(columns, columns)] += np.outer(coef, coef) * (
        spread + n_members * np.outer(shift, shift))
    psi_sum = coef * n_members * shift  # the group's influence rows summed
    sums.by_cohort[columns, cohort] += psi_sum
    sums.by_cell[np.ix_(columns, own)] += np.outer(psi_sum, in_cell[0])


def _add_blocks(sums: _Sums, outcome: np.ndarray, cohort: int, cells: Cells,
                estimates: CellEstimates) -> None:
    """Contribution of units of one cohort, through explicit ``Psi`` rows in blocks."""
    columns = np.flatnonzero(estimates.coef[cohort])
    if outcome.shape[0] == 0:
        return
    block = max(64, BLOCK_ELEMENTS // max(columns.size, 1))
    for start in range(0, outcome.shape[0], block):
        rows = outcome[start:start + block]
        own, in_cell = _treated_cells(~np.isnan(rows), cohort, cells, estimates)
        sums.overlap[np.ix_(own, own)] += in_cell.T @ in_cell
        if columns.size == 0:
            continue
        psi = _influence_block(rows, cohort, columns, cells, estimates)
        sums.gram[np.ix_(columns, columns)] += psi.T @ psi
        sums.by_cohort[columns, cohort] += psi.sum(axis=0)
        sums.by_cell[np.ix_(columns, own)] += psi.T @ in_cell


def _influence_block(outcome: np.ndarray, cohort: int, columns: np.ndarray, cells: Cells,
                     estimates: CellEstimates) -> np.ndarray:
    """Columns ``columns`` of ``Psi`` for units of one cohort (0 where not in the cell)."""
    at_t, at_base = outcome[:, cells.period[columns]], outcome[:, cells.base[columns]]
    psi = estimates.coef[cohort, columns] * (at_t - estimates.theta[columns] * at_base
                                             - estimates.centre[cohort, columns])
    psi[np.isnan(psi)] = 0.0
    return psi
