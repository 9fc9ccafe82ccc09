"""Sufficient statistics of the staggered DiD (helper of :mod:`roi.revenue_lift.did`).

Every number the DiD reports (cell ATTs, standard errors of every aggregate, the pre-trend
tests) is a function of a few sums over the units that share a cohort and a set of observed
periods (an *observation group* ``g``): the count ``n_g``, the sums ``s_g[t] = sum_i Y_it`` and
the cross-products ``S_g[s, t] = sum_i Y_is Y_it`` (``T x T``). What leaves the data therefore
grows with cohorts x observation patterns x periods squared, not with units: customers enter
and churn once, so the patterns are (cohort, first month, last month), a few thousand at any
number of customers. The sums are one ``GROUP BY`` in a database (:mod:`roi.revenue_lift.did_sql`)
or a pass over the wide matrix here (:func:`pattern_stats`); the estimator reads only these.

From them:

* the cell means: per cohort ``j``, ``sums[j, s, r]`` = sum of ``Y_s`` over units seen at
  ``s`` and ``r`` = ``sum_g s_g[s] seen_g[r]`` (:func:`cross_moments`);
* the influence cross-products (:mod:`roi.revenue_lift._did_influence`): unit ``i`` of group
  ``g`` has ``psi_ik = coef_k m_gk (Y_i' a_k - c_k)`` with ``a_k`` the cell's period contrast
  (``e_t - theta_k e_base``) and ``m_gk`` = seen in both periods, so summed over the group
  ``sum_i psi_ik psi_il = coef_k coef_l m_gk m_gl (a_k' S_g a_l - c_l a_k' s_g - c_k a_l' s_g
  + n_g c_k c_l)`` (:func:`moments_from_stats`).

Examples
--------
>>> y = np.array([[1.0, 2.0], [3.0, np.nan], [2.0, 4.0]])
>>> stats = pattern_stats(y, np.array([0, 0, 0]), n_cohorts=1)
>>> stats.n.tolist(), stats.total.tolist()
([2, 1], [[3.0, 6.0], [3.0, 0.0]])
>>> stats.cross[0].tolist()
[[5.0, 10.0], [10.0, 20.0]]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from roi.revenue_lift._did_cells import CellEstimates, Cells
from roi.revenue_lift._did_influence import InfluenceMoments


@dataclass
class PatternStats:
    """Sums per observation group (same cohort, same observed periods).

    Attributes
    ----------
    cohort : ndarray of int, shape (G,)
        Cohort index of the group (position in the sorted cohort codes).
    seen : ndarray of bool, shape (G, T)
        Periods its units are observed in.
    n : ndarray of int, shape (G,)
        Units in the group.
    total : ndarray, shape (G, T)
        Sum of the outcome per period (0 where not observed).
    cross : ndarray, shape (G, T, T)
        Sum of products of the outcome in two periods (0 where either is not observed).
    n_cohorts : int
        Number of cohort codes (the never-treated code included).
    """

    cohort: np.ndarray
    seen: np.ndarray
    n: np.ndarray
    total: np.ndarray
    cross: np.ndarray
    n_cohorts: int

    @property
    def cohort_sizes(self) -> np.ndarray:
        return np.bincount(self.cohort, weights=self.n, minlength=self.n_cohorts).astype(np.int64)

    @property
    def n_units(self) -> int:
        return int(self.n.sum())


def pattern_stats(outcome: np.ndarray, cohort_index: np.ndarray, *,
                  n_cohorts: int) -> PatternStats:
    """The sums of :class:`PatternStats` from a ``units x periods`` matrix (NaN = not seen)."""
    observed = ~np.isnan(outcome)
    n_periods = outcome.shape[1]
    if n_periods <= 62:  # one integer key: cohort, then one bit per period
        bits = observed.astype(np.int64) @ (np.int64(1) << np.arange(n_periods))
        keys = np.column_stack([cohort_index.astype(np.int64), bits])
    else:
        keys = np.column_stack([cohort_index, np.packbits(observed, axis=1)]).astype(np.int64)
    _, first, group_of_unit, sizes = np.unique(keys, axis=0, return_index=True,
                                               return_inverse=True, return_counts=True)
    group_of_unit = group_of_unit.ravel()
    order = np.argsort(group_of_unit, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    filled = np.where(observed, outcome, 0.0)
    total = np.zeros((len(sizes), n_periods))
    cross = np.zeros((len(sizes), n_periods, n_periods))
    for g in range(len(sizes)):   # a loop over groups (thousands), not units
        rows = filled[order[bounds[g]:bounds[g + 1]]]
        total[g] = rows.sum(axis=0)
        cross[g] = rows.T @ rows
    return PatternStats(cohort=np.asarray(cohort_index)[first].astype(np.int64),
                        seen=observed[first], n=sizes.astype(np.int64), total=total,
                        cross=cross, n_cohorts=n_cohorts)


def cross_moments(stats: PatternStats) -> tuple[np.ndarray, np.ndarray]:
    """Per cohort ``j``: ``sums[j, s, r]`` = sum of Y at ``s`` over units observed at ``s``
    and ``r``; ``counts[j, s, r]`` = number of those units. Shapes ``(J, T, T)``."""
    seen = stats.seen.astype(float)
    n_periods = seen.shape[1]
    sums = np.zeros((stats.n_cohorts, n_periods, n_periods))
    counts = np.zeros_like(sums)
    np.add.at(sums, stats.cohort, stats.total[:, :, None] * seen[:, None, :])
    np.add.at(counts, stats.cohort, stats.n[:, None, None] * seen[:, :, None] * seen[:, None, :])
    return sums, counts


def moments_from_stats(stats: PatternStats, cells: Cells,
                       estimates: CellEstimates) -> InfluenceMoments:
    """``Psi' Psi``, ``Psi' D``, ``Psi' M`` and ``M' M`` (see
    :func:`roi.revenue_lift._did_influence.influence_moments`) from the group sums."""
    n_cells = len(cells)
    gram, by_cohort = np.zeros((n_cells, n_cells)), np.zeros((n_cells, stats.n_cohorts))
    by_cell, overlap = np.zeros((n_cells, n_cells)), np.zeros((n_cells, n_cells))
    for cohort in range(stats.n_cohorts):
        groups = np.flatnonzero(stats.cohort == cohort)
        if groups.size == 0:
            continue
        seen, n = stats.seen[groups], stats.n[groups].astype(float)
        own = np.flatnonzero((estimates.treated_cohort == cohort) & estimates.valid)
        in_cell = (seen[:, cells.period[own]] & seen[:, cells.base[own]]).astype(float)
        overlap[np.ix_(own, own)] += (in_cell * n[:, None]).T @ in_cell
        columns = np.flatnonzero(estimates.coef[cohort])
        if columns.size == 0:
            continue
        spans = _contiguous(seen)
        if spans.all():   # customers: observed from entry to exit
            terms = _interval_terms(stats, groups, cohort, columns, own, cells, estimates)
            gram[np.ix_(columns, columns)] += terms[0]
            by_cohort[columns, cohort] += terms[1]
            by_cell[np.ix_(columns, own)] += terms[2]
            continue
        for batch in np.array_split(groups, max(1, groups.size * columns.size**2 // 4_000_000)):
            psi_sum, psi_gram = _cohort_terms(stats, batch, cohort, columns, cells, estimates)
            gram[np.ix_(columns, columns)] += psi_gram
            by_cohort[columns, cohort] += psi_sum.sum(axis=0)
            batch_cell = (stats.seen[batch][:, cells.period[own]]
                          & stats.seen[batch][:, cells.base[own]]).astype(float)
            by_cell[np.ix_(columns, own)] += psi_sum.T @ batch_cell
    counts = np.where(estimates.valid, estimates.n_treated, 0)
    return InfluenceMoments(gram, by_cohort, stats.cohort_sizes, by_cell=by_cell,
                            overlap=overlap, cell_counts=counts,
                            cell_cohort=estimates.treated_cohort)


def _contiguous(seen: np.ndarray) -> np.ndarray:
    """Per group: its observed periods form one run (entry to exit, no gap)."""
    runs = np.diff(seen.astype(np.int8), axis=1, prepend=0, append=0) == 1
    return runs.sum(axis=1) == 1


def _interval_terms(stats: PatternStats, groups: np.ndarray, cohort: int, columns: np.ndarray,
                    own: np.ndarray, cells: Cells,
                    estimates: CellEstimates) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Psi' Psi``, ``Psi' 1`` and ``Psi' M`` of one cohort whose groups are observed from an
    entry to an exit period. Units in cells ``k`` and ``l`` both are those with entry <=
    ``E = min(periods of k and l)`` and exit >= ``X = max(...)``, so sums over them are
    lookups in cumulative sums over (entry, exit): cost cells^2, whatever the number of groups.
    """
    seen = stats.seen[groups]
    n_periods = seen.shape[1]
    entry, leave = seen.argmax(axis=1), n_periods - 1 - seen[:, ::-1].argmax(axis=1)
    count = np.zeros((n_periods, n_periods))
    total = np.zeros((n_periods, n_periods, n_periods))
    cross = np.zeros((n_periods, n_periods, n_periods, n_periods))
    np.add.at(count, (entry, leave), stats.n[groups])
    np.add.at(total, (entry, leave), stats.total[groups])
    np.add.at(cross, (entry, leave), stats.cross[groups])
    for table in (count, total, cross):  # entry <= E (ascending), exit >= X (descending)
        np.cumsum(table, axis=0, out=table)
        table[:] = np.cumsum(table[:, ::-1], axis=1)[:, ::-1]
    t, b, theta = cells.period, cells.base, estimates.theta
    low, high = np.minimum(t, b), np.maximum(t, b)

    def pairs(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (np.minimum.outer(low[left], low[right]),
                np.maximum.outer(high[left], high[right]))

    k, c = columns, estimates.centre[cohort, columns]
    coef = estimates.coef[cohort, columns]
    first, last = pairs(k, k)
    quad = (cross[first, last, t[k][:, None], t[k][None, :]]
            - theta[k][None, :] * cross[first, last, t[k][:, None], b[k][None, :]]
            - theta[k][:, None] * cross[first, last, b[k][:, None], t[k][None, :]]
            + np.outer(theta[k], theta[k]) * cross[first, last, b[k][:, None], b[k][None, :]])
    along = total[first, last, t[k][:, None]] - theta[k][:, None] * total[first, last,
                                                                         b[k][:, None]]
    inner = quad - along * c[None, :] - c[:, None] * along.T + count[first, last] * np.outer(c, c)
    gram = np.outer(coef, coef) * inner
    psi_sum = coef * (total[low[k], high[k], t[k]] - theta[k] * total[low[k], high[k], b[k]]
                      - count[low[k], high[k]] * c)
    first, last = pairs(k, own)
    with_cell = coef[:, None] * (total[first, last, t[k][:, None]]
                                 - theta[k][:, None] * total[first, last, b[k][:, None]]
                                 - count[first, last] * c[:, None])
    return gram, psi_sum, with_cell


def _cohort_terms(stats: PatternStats, groups: np.ndarray, cohort: int, columns: np.ndarray,
                  cells: Cells, estimates: CellEstimates) -> tuple[np.ndarray, np.ndarray]:
    """Per group the summed influence rows ``(G, K)``, and ``sum_g sum_i psi psi'`` ``(K, K)``
    over the cells ``columns`` one cohort's units enter."""
    seen = stats.seen[groups]
    n = stats.n[groups].astype(float)
    contrast = np.zeros((seen.shape[1], columns.size))  # a_k: e_t - theta_k e_base
    contrast[cells.period[columns], np.arange(columns.size)] = 1.0
    contrast[cells.base[columns], np.arange(columns.size)] -= estimates.theta[columns]
    coef, centre = estimates.coef[cohort, columns], estimates.centre[cohort, columns]
    mask = (seen[:, cells.period[columns]] & seen[:, cells.base[columns]]).astype(float)
    along = stats.total[groups] @ contrast                      # a_k' s_g, (G, K)
    quad = contrast.T[None] @ (stats.cross[groups] @ contrast)   # a_k' S_g a_l, (G, K, K)
    inner = (quad - along[:, :, None] * centre[None, None, :]
             - centre[None, :, None] * along[:, None, :]
             + n[:, None, None] * np.outer(centre, centre)[None])
    weight = mask * coef[None, :]
    psi_gram = (weight[:, :, None] * inner * weight[:, None, :]).sum(axis=0)
    psi_sum = weight * (along - n[:, None] * centre[None, :])
    return psi_sum, psi_gram


@dataclass
class DiDAggregates:
    """Everything :meth:`roi.revenue_lift.did.StaggeredDiD.fit_aggregates` reads: the group sums
    and the panel's description, from a wide matrix (:meth:`from_wide`) or a database
    (:func:`roi.revenue_lift.did_sql.did_aggregates`).

    Attributes
    ----------
    stats : PatternStats
        Sums per observation group; ``stats.cohort`` indexes ``cohort_codes``.
    cohort_codes : ndarray of int
        Sorted cohort positions (first treated period's position, ``NEVER`` = -1 first).
    periods : ndarray
        The time values, position ``p`` is ``periods[p]``.
    cohort_labels : dict
        Cohort position -> the ``group`` value the user gave.
    dropped : dict
        Units (and rows) left out, by reason.
    """

    stats: PatternStats
    cohort_codes: np.ndarray
    periods: np.ndarray
    cohort_labels: dict[int, object]
    dropped: dict[str, int]

    @classmethod
    def from_wide(cls, panel) -> DiDAggregates:
        """From a :class:`roi.revenue_lift._did_panel.WidePanel`."""
        codes = np.unique(panel.cohort)
        stats = pattern_stats(panel.outcome, np.searchsorted(codes, panel.cohort),
                              n_cohorts=len(codes))
        return cls(stats, codes, panel.periods, panel.cohort_labels, panel.dropped)

    @property
    def n_units(self) -> int:
        return self.stats.n_units

    def units_in(self, cohorts: np.ndarray) -> int:
        """Units whose cohort position is one of ``cohorts``."""
        sizes = self.stats.cohort_sizes
        return int(sizes[np.isin(self.cohort_codes, cohorts)].sum())
