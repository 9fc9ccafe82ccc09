"""Regression adjustment (imputation) for the community revenue lift, on a stacked cohort design.

Design
------
Customers join in different months (cohort ``g`` = ``join_month_index``). Members self-select on
an unobserved trait that also raises revenue; the revenue a customer had *before* joining is the
best observed proxy for it. Every estimator of this module and of :mod:`roi.revenue_lift.weighting`
works on the same stacked design, one stack per cohort ``g``:

* **History** is measured over the ``lookback`` periods before ``g`` (``[g - lookback, g - 1]``),
  on rows flagged ``active`` (whole months): the mean outcome, its square root and ``log1p``
  (so that a logit can balance a heavy-tailed history) and the number of months observed. The window is the same calendar window for members and for controls, so the
  history never contains a post-join month.
* **Treated** units are the cohort's members with at least ``min_history`` history months;
  **controls** are never-members with at least ``min_history`` history months (customers before
  ``g``). Members without enough history (joined in or soon after their first month) cannot be
  adjusted for the trait and are left out; their member-months are counted in
  ``diagnostics.checks["coverage"]`` and the estimate is the ATT over the member-months covered.
* **Outcome rows** are the active rows at ``t >= g``: treated member-months and controls' months.
  Cell ``(g, t)`` compares treated member-months at calendar month ``t`` with controls at ``t``.

Outcome model (``history=``), fitted on each stack's control rows, imputing the untreated
revenue ``y0_it`` of the treated member-months; the ATT is the mean of actual minus imputed
revenue over the covered member-months (the contract's "community revenue lift").

* ``"additive"`` (default): ``y0_it = H_i + month_t + x_i'b`` -- the unit's own pre-join mean
  ``H_i`` enters with coefficient 1 (an offset), the month effects and covariates are fitted by
  OLS on ``y - H`` (so covariates may shift trends). An imputation form of DiD with a
  multi-month base.
* ``"scale"``: ``y0_it = H_i * R_t + month_t + x_i'b`` with ``R_t`` the controls' ratio of means
  (revenue is multiplicative in the level; parallel trends in logs of means).
* ``"iv"``: ``y0_it = a_t + b_t H_i`` by 2SLS, ``H`` instrumented by the covariates (corrects the
  errors-in-variables attenuation; noisy when covariates predict revenue weakly).
* ``"regressor"``: ``y ~ month_t + x_i + history features + month_t x H_i`` by OLS -- the
  selection-on-observables model. Kept to show why it is *not* the default: the history is a
  noisy proxy of the trait, OLS shrinks its coefficient toward the controls' mean (regression
  to the mean), and members, selected on the trait, sit above it.
* ``"none"``: covariates and month effects only.

Measured on ``simulate_world(n_customers=20000, seed=s)``, truth over the covered member-months
about 31 (35.5 over all; naive gap 166-177): seeds 1-5, additive 44.4, 21.6, 31.8, 40.6, 29.0
(RMSE about 8; the staggered DiD gives 47.5, 25.7, 34.2, 40.2, 31.1 against the all-months
truth); scale 54.3, 27.0, 42.0, 48.9, 32.5 (paid-media revenue is additive, not proportional);
iv 41.2, 8.7, 23.5, 35.0, 20.5; regressor 138 on seed 1, none 162.

Computation: every stack is held in wide form, units x months from ``g`` on (the outcome and an
"observed" mask), never as row records. The outcome models' designs are period effects
(optionally times a unit value) plus unit-level terms, so their normal equations are column sums
and unit-level products of those two matrices, the imputed outcomes a matrix, and each unit's
influence a row sum. On 1,000,000 customers (13M panel rows; 173k-460k units in each of 22 stacks)
regression adjustment with the two per-community fits takes 27 s instead of 142 s for the row
form, with the same numbers to 1e-10 (``python benchmarks/revenue_lift.py``). A community's fit
uses the pooled design restricted to its members and the never-members (:meth:`subset`; its
stacks and outcome fits are computed again, although its controls are the pooled ones).

Measured again for issue 19 on ``benchmarks/output/world_1000000_1`` (932k customers with active
months, 23 months, 22 cohort stacks of 173k-460k units, 7.2M unit rows in all), ``fit`` as
``roi run`` calls it (``community="community"``, the run's five covariates), CPU seconds
(``time.process_time``; 2 shared cores, wall 2-4x that under load, AIPW running alongside):
33.4 and 35.9 s before (two runs), 21.6 s after (wall 94-145 s before, 65 s after); estimates
and SEs identical (on the 20k world the ill-conditioned regressor mode to 1e-12, the others to
1e-14). What changed: the design computes its observed mask, zero-filled outcome and running
count of observed months once (every stack counted its units' history months from the NaN
matrix, twice per cohort; the copies cost 0.3 GiB: AIPW's process peaked at 3.69 GiB against
3.39, the 13M-row panel included); the overlap check's logits run on the distinct covariate rows
(:func:`roi.revenue_lift.weighting.fit_propensity`), on stacks without history features or
outcome matrices; the members' side of the outcome model is summed over their rows only; row
sums are matrix-vector products (``sum(axis=1)`` over a dozen columns loops per row). What is
left: building the design from the panel (~5 s, once per estimator), the stacks' gathers and
the outcome fits, two thirds of them in the per-community fits.
``roi run`` now fits both estimators and their observed benchmarks from one design and one
pass over the cohort stacks, the per-community fits from the pooled stacks and outcome models
(:func:`roi.revenue_lift.adjusted.adjusted_estimates`: 21 CPU s for the three at 1M against
63 s one by one, same numbers to 1.2e-15).

Inference: the influence function of the imputation estimator, including the estimation error
of every cohort's outcome model (delta method: the offset, ratio and 2SLS terms), summed by
customer (cluster-robust: a control appears in many stacks and months) and scaled by
``G / (G - 1)``. On a cross-section it reproduces the HC0 standard error of the interacted OLS
plus the members' covariate-mean term (tests).

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> n, months = 600, np.arange(1, 7)
>>> level = rng.lognormal(3, 0.3, n)
>>> g = np.where(rng.random(n) < 0.3, 4.0, np.nan)
>>> rows = pd.DataFrame([(i, t) for i in range(n) for t in months], columns=["id", "t"])
>>> rows["g"] = g[rows["id"]]
>>> member = rows["t"] >= rows["g"]
>>> rows["y"] = level[rows["id"]] + 5.0 * member + rng.normal(0, 1, len(rows))
>>> model = RegressionAdjustment().fit(rows, unit="id", time="t", group="g", outcome="y")
>>> round(model.result_.estimate), model.result_.method
(5, 'regression')
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
from scipy import stats

from roi.results import CI95, Diagnostics, EffectResult
from roi.revenue_lift._did_influence import single_threaded_blas
from roi.revenue_lift.panel_input import (
    CROSS_GROUP,
    CROSS_TIME,
    CROSS_UNIT,
    check_group_column,
    cross_section_panel,
    first_treated_numbers,
    formula_covariates,
    panel_scale,
)

HISTORY = ("history_mean", "history_sqrt_mean", "history_log_mean", "history_months")
HISTORY_MODES = ("additive", "iv", "scale", "regressor", "none")
HistoryMode = Literal["additive", "iv", "scale", "regressor", "none"]


@dataclass
class CohortStack:
    """One cohort's comparison in wide form (helper of the estimators).

    ``units`` are positions in ``unit_labels`` of :class:`StackedDesign`; ``features`` is the
    unit-level pre-treatment design (covariates, then the history; no constant). ``outcome`` is
    the units x periods matrix from the cohort's own month on (column 0 = month ``g``), zero
    where ``observed`` is False (inactive). Wide matrices instead of row records keep a
    1M-customer stack to a few hundred MB: every per-row quantity of the estimators is a matrix
    of the same shape and every per-unit sum a row sum. ``patterns`` numbers the units'
    covariate rows (equal numbers, equal covariates) so that a covariates-only propensity logit
    can be fitted on the distinct rows.
    """

    cohort: Any
    units: np.ndarray
    treated: np.ndarray
    features: np.ndarray
    outcome: np.ndarray
    observed: np.ndarray
    history: bool = True   # the last len(HISTORY) features are the history
    patterns: np.ndarray | None = None

    @property
    def treated_cells(self) -> np.ndarray:
        return self.observed & self.treated[:, None]

    @property
    def control_cells(self) -> np.ndarray:
        return self.observed & ~self.treated[:, None]

    @cached_property
    def covariates(self) -> np.ndarray:
        """The unit features without the history (a contiguous copy: the outcome models use it
        in several products, each about twice as slow on the strided view)."""
        return np.ascontiguousarray(self.features[:, :-len(HISTORY)] if self.history
                                    else self.features)

    @property
    def level(self) -> np.ndarray:
        """The unit's pre-join mean outcome (first history feature)."""
        return self.features[:, -len(HISTORY)]


@dataclass
class StackedDesign:
    """The wide outcome matrix of every unit, and the cohorts that have a comparison.

    :meth:`stacks` builds one :class:`CohortStack` at a time (a 1M-customer design would not
    hold them all in memory).
    """

    wide: np.ndarray           # units x periods, NaN where not active
    cohort: np.ndarray         # per unit: join period, NaN for never-members
    covariates: np.ndarray     # per unit
    periods: np.ndarray
    unit_labels: np.ndarray
    feature_names: list[str]
    lookback: int
    min_history: int
    unit_values: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. the community
    cohorts: list[float] = field(init=False)        # those with members and controls
    coverage: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        # Once per design rather than once per stack (22 cohorts on the simulated 1M world):
        # the observed mask, the outcome with zeros where unobserved, and per unit the count of
        # observed periods before each column (a window's history months are a difference).
        self.observed = np.isfinite(self.wide)
        self.filled = np.where(self.observed, self.wide, 0.0)
        self.seen_before = np.zeros((len(self.wide), self.wide.shape[1] + 1), np.int32)
        np.cumsum(self.observed, axis=1, out=self.seen_before[:, 1:])
        self.cohorts, self.coverage = _cohorts_and_coverage(self)

    @cached_property
    def patterns(self) -> np.ndarray:
        """Per unit, a number shared by exactly the units with the same covariate row."""
        return _row_patterns(self.covariates)

    def subset(self, units: np.ndarray) -> StackedDesign:
        """The design of the units where ``units`` (a mask) is True, e.g. the never-members
        and one community's members (the rows of other units do not enter any comparison of
        those, so this equals building the design from their rows alone)."""
        design = StackedDesign(self.wide[units], self.cohort[units], self.covariates[units],
                               self.periods, self.unit_labels[units], self.feature_names,
                               self.lookback, self.min_history,
                               {k: v[units] for k, v in self.unit_values.items()})
        design.patterns = self.patterns[units]   # numbering the units' rows again is slower
        return design

    def stacks(self, *, covariates_only: bool = False) -> Iterator[CohortStack]:
        for g in self.cohorts:
            yield self.stack(g, covariates_only=covariates_only)

    def history_months(self, start: int) -> np.ndarray:
        """Per unit, its observed periods among the ``lookback`` before column ``start``."""
        return self.seen_before[:, start] - self.seen_before[:, max(start - self.lookback, 0)]

    def comparison(self, g: float) -> tuple[int, np.ndarray, np.ndarray]:
        """(first post column, units kept, which of them are treated) for cohort ``g``."""
        start = int(np.searchsorted(self.periods, g))
        candidate = (self.cohort == g) | np.isnan(self.cohort)
        keep = np.flatnonzero(candidate & (self.history_months(start) >= self.min_history))
        return start, keep, self.cohort[keep] == g

    def stack(self, g: float, *, covariates_only: bool = False) -> CohortStack:
        """Cohort ``g``'s comparison; ``covariates_only`` leaves the history features and the
        post-join outcome (zero columns) out, for a covariates-only propensity."""
        start, keep, treated = self.comparison(g)
        features = self.covariates[keep]
        history = self.lookback > 0 and not covariates_only
        if history:
            low = max(start - self.lookback, 0)
            n_hist = self.seen_before[keep, start] - self.seen_before[keep, low]
            mean = row_sums(self.filled[keep, low:start]) / np.maximum(n_hist, 1)
            positive = np.maximum(mean, 0.0)
            features = np.column_stack([features, mean, np.sqrt(positive), np.log1p(positive),
                                        n_hist])
        end = start if covariates_only else None
        return CohortStack(g, keep, treated, features, self.filled[keep, start:end],
                           self.observed[keep, start:end], history=history,
                           patterns=self.patterns[keep])


def stacked_design(data: pd.DataFrame, *, unit: str, time: str, group: str, outcome: str,
                   covariates: list[str], active: str | None, lookback: int,
                   min_history: int, unit_columns: tuple[str, ...] = ()) -> StackedDesign:
    """The :class:`StackedDesign` of the panel (see the module notes); ``unit_columns`` are
    kept per unit (they must be constant within a unit) for :meth:`StackedDesign.subset`."""
    needed = list(dict.fromkeys([unit, time, group, outcome, *covariates, *unit_columns]))
    missing = [c for c in (*needed, *([active] if active else [])) if c not in data.columns]
    if missing:
        raise KeyError(f"column(s) {missing} not in the data")
    rows = data.loc[data[active].astype(bool), needed] if active else data[needed]
    unit_codes, unit_labels = pd.factorize(rows[unit])
    if (unit_codes < 0).any():
        raise ValueError(f"{int((unit_codes < 0).sum())} rows have an empty unit identifier")
    periods = np.sort(rows[time].unique())
    period_codes = np.searchsorted(periods, rows[time].to_numpy())
    first = _first_rows(unit_codes)
    _check_rows(rows, unit_codes, period_codes, first, unit_labels=np.asarray(unit_labels),
                n_periods=len(periods), constant=[group, *unit_columns], covariates=covariates)
    wide = np.full((len(unit_labels), len(periods)), np.nan)
    wide[unit_codes, period_codes] = rows[outcome].to_numpy(float, na_value=np.nan)
    first_rows = rows.iloc[first]
    cohort = first_treated_numbers(first_rows[group], periods=periods)  # NaN = never treated
    covs, names = _unit_covariates(first_rows, covariates)
    history = list(HISTORY) if lookback > 0 else []
    return StackedDesign(wide, cohort, covs, periods, np.asarray(unit_labels), names + history,
                         lookback, min_history,
                         {c: first_rows[c].to_numpy() for c in unit_columns})


def _cohorts_and_coverage(design: StackedDesign) -> tuple[list[float], dict[str, Any]]:
    """The cohorts with both members and controls, and how many member-months they cover."""
    coverage = {"member_months": 0, "member_months_covered": 0, "members": 0,
                "members_covered": 0}
    cohorts, observed = [], design.observed
    for g in np.unique(design.cohort[~np.isnan(design.cohort)]):
        start, keep, treated = design.comparison(g)
        coverage["members"] += int((design.cohort == g).sum())
        coverage["member_months"] += int(observed[design.cohort == g, start:].sum())
        if treated.sum() == 0 or (~treated).sum() == 0:
            continue
        coverage["members_covered"] += int(treated.sum())
        coverage["member_months_covered"] += int(observed[keep[treated], start:].sum())
        cohorts.append(g)
    coverage["share_covered"] = (coverage["member_months_covered"]
                                 / max(coverage["member_months"], 1))
    return cohorts, coverage


def _row_patterns(values: np.ndarray) -> np.ndarray:
    """Numbers of the distinct rows of ``values``, column by column: a hash-based factorize
    of (number so far, column code) per column instead of sorting the rows."""
    numbers = np.zeros(len(values), np.int64)
    for column in values.T:
        codes, levels = pd.factorize(column, use_na_sentinel=False)
        numbers = pd.factorize(numbers * len(levels) + codes)[0]   # < n**2: fits in int64
    return numbers


def _first_rows(unit_codes: np.ndarray) -> np.ndarray:
    """Position of each unit's first row. ``pd.factorize`` numbers units in order of first
    appearance, so a unit's first row is where its code exceeds every earlier code (linear,
    where ``np.unique`` sorts 13M rows)."""
    earlier = np.maximum.accumulate(np.concatenate([[-1], unit_codes[:-1]]))
    return np.flatnonzero(unit_codes > earlier)


def _check_rows(rows: pd.DataFrame, unit_codes: np.ndarray, period_codes: np.ndarray,
                first: np.ndarray, *, unit_labels: np.ndarray, n_periods: int,
                constant: list[str], covariates: list[str]) -> None:
    """One row per unit and period, ``constant`` columns constant per unit, no empty numeric
    covariate; each error names the rule, the count and up to three example units."""
    cell = unit_codes.astype(np.int64) * n_periods + period_codes
    per_cell = np.bincount(cell, minlength=len(first) * n_periods)
    if per_cell.max(initial=0) > 1:
        units = np.unique(np.flatnonzero(per_cell > 1) // n_periods)
        raise ValueError(f"panel: the panel needs one row per unit and period; "
                         f"{int((per_cell > 1).sum())} unit-periods have duplicates (units "
                         f"{_examples(unit_labels[units])})")
    for column in constant:
        codes = pd.factorize(rows[column])[0]   # missing -> -1, compared like a value
        changed = codes != codes[first][unit_codes]
        if changed.any():
            units = np.unique(unit_codes[changed])
            what = " (join period)" if column == constant[0] else ""
            raise ValueError(f"panel: column {column!r}{what} changes within {len(units)} units; "
                             f"it must be constant (units {_examples(unit_labels[units])})")
    numeric = [c for c in covariates if pd.api.types.is_numeric_dtype(rows[c])]
    empty = {c: int(rows[c].isna().sum()) for c in numeric if rows[c].isna().any()}
    if empty:
        raise ValueError(f"panel: numeric covariate(s) have empty values (rows per column: "
                         f"{empty})")


def _examples(labels: np.ndarray, *, limit: int = 3) -> str:
    shown = ", ".join(repr(label) for label in labels[:limit].tolist())
    return shown + (", ..." if len(labels) > limit else "")


def _unit_covariates(first_rows: pd.DataFrame, covariates: list[str]) -> tuple[np.ndarray,
                                                                                list[str]]:
    if not covariates:
        return np.zeros((len(first_rows), 0)), []
    frame = pd.get_dummies(first_rows[covariates], drop_first=True, dtype=float)
    return frame.to_numpy(float), [str(c) for c in frame.columns]


@dataclass
class OutcomeFit:
    """Imputed untreated outcome of every cell of a stack, and the units' influence terms.

    ``prediction`` and ``residual`` have the stack's units x periods shape (``residual`` is zero
    on unobserved cells). ``nuisance`` holds, per unit, minus its control cells' contribution to
    ``sum(treated residuals)`` through the estimated outcome model (zero for treated units): the
    delta-method term of the imputation estimator.
    """

    prediction: np.ndarray
    residual: np.ndarray
    nuisance: np.ndarray | None
    bread: np.ndarray | None = None   # the linear models' (X'X)^+ over the control cells


def fit_outcome(stack: CohortStack, *, history: HistoryMode,
                influence: bool = True) -> OutcomeFit:
    """Fit the cohort's outcome model on its control cells (see the module notes).

    The row design is ``[period dummies x period_terms_i, unit_terms_i]``: ``period_terms`` are
    unit values whose coefficients change by period (a constant; with ``regressor`` also the
    history mean), ``unit_terms`` have one coefficient (covariates, and the history features
    with ``regressor``). ``influence=False`` may leave ``nuisance`` out (None): AIPW uses the
    residuals only, and the nuisance term is a quarter of the linear models' cost.
    """
    ones = np.ones((len(stack.units), 1))
    if history == "additive" and stack.history:
        return _fit_linear(stack, period_terms=ones, unit_terms=stack.covariates,
                           offset=stack.level[:, None], influence=influence)[0]
    if history == "iv" and stack.history:
        return _fit_iv(stack)
    if history == "scale" and stack.history:
        return _fit_scaled(stack)
    if history == "regressor" and stack.history:
        return _fit_linear(stack, period_terms=np.column_stack([ones, stack.level]),
                           unit_terms=stack.features, offset=np.zeros((1, 1)),
                           influence=influence)[0]
    return _fit_linear(stack, period_terms=ones, unit_terms=stack.covariates,
                       offset=np.zeros((1, 1)), influence=influence)[0]


def _ols(design: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OLS by the normal equations (bread, coefficients); pinv guards against collinearity."""
    bread = np.linalg.pinv(design.T @ design)
    return bread, bread @ (design.T @ y)


def row_sums(matrix: np.ndarray) -> np.ndarray:
    """Row sums of a units x periods matrix as a matrix-vector product: ``sum(axis=1)`` over
    a dozen columns runs a short loop per row and took 3x longer on 350k x 11."""
    return matrix @ np.ones(matrix.shape[1])


def _cross_products(cells: np.ndarray, values: np.ndarray, *, period_terms: np.ndarray,
                    unit_terms: np.ndarray) -> np.ndarray:
    """``sum over cells of design_it * values_it`` for the row design of :func:`fit_outcome`
    (``values`` of the cells' shape; ``cells`` a 0/1 matrix)."""
    weighted = cells * values
    per_period = weighted.T @ period_terms              # periods x q
    return np.concatenate([per_period.ravel(), unit_terms.T @ row_sums(weighted)])


def _gram(cells: np.ndarray, *, period_terms: np.ndarray, unit_terms: np.ndarray) -> np.ndarray:
    """``sum over cells of design_it design_it'`` from unit-level sums (no row design)."""
    n_units, n_periods = cells.shape
    q, k = period_terms.shape[1], unit_terms.shape[1]
    outer = (period_terms[:, :, None] * period_terms[:, None, :]).reshape(n_units, q * q)
    by_unit = (period_terms[:, :, None] * unit_terms[:, None, :]).reshape(n_units, q * k)
    both = cells.T @ np.concatenate([outer, by_unit], axis=1)   # one pass over the cells
    blocks = both[:, :q * q].reshape(n_periods, q, q)
    cross = both[:, q * q:].reshape(n_periods * q, k)
    size = n_periods * q
    gram = np.zeros((size + k, size + k))
    for t in range(n_periods):
        gram[t * q:(t + 1) * q, t * q:(t + 1) * q] = blocks[t]
    gram[:size, size:] = cross
    gram[size:, :size] = cross.T
    gram[size:, size:] = (unit_terms * row_sums(cells)[:, None]).T @ unit_terms
    return gram


def _cell_values(coefficients: np.ndarray, *, period_terms: np.ndarray,
                 unit_terms: np.ndarray) -> np.ndarray:
    """``design_it @ coefficients`` for every cell (units x periods)."""
    q = period_terms.shape[1]
    size = len(coefficients) - unit_terms.shape[1]
    by_period = coefficients[:size].reshape(size // q, q)
    if q == 1:   # an outer product: matmul over an inner dimension of 1 was 5x slower
        values = period_terms * by_period[:, 0]
    else:
        values = period_terms @ by_period.T
    values += (unit_terms @ coefficients[size:])[:, None]
    return values


def _fit_linear(stack: CohortStack, *, period_terms: np.ndarray, unit_terms: np.ndarray,
                offset: np.ndarray,
                influence: bool = True) -> tuple[OutcomeFit, np.ndarray | None]:
    """OLS of ``y - offset`` on the row design over the control cells; also the leverage of
    every cell on the treated cells' sum of predictions (``design_it' bread sum_treated``),
    and with it the nuisance term, unless ``influence`` is False (then both are None)."""
    terms = {"period_terms": period_terms, "unit_terms": unit_terms}
    control = stack.control_cells.astype(float)
    bread = np.linalg.pinv(_gram(control, **terms))
    beta = bread @ _cross_products(control, stack.outcome - offset, **terms)
    prediction = offset + _cell_values(beta, **terms)
    residual = np.where(stack.observed, stack.outcome - prediction, 0.0)
    if not influence:
        return OutcomeFit(prediction, residual, None, bread), None
    # The treated cells are the members' observed cells: sums over the members' rows only
    members = np.flatnonzero(stack.treated)
    direction = bread @ _cross_products(stack.observed[members].astype(float), np.ones((1, 1)),
                                        period_terms=period_terms[members],
                                        unit_terms=unit_terms[members])
    leverage = _cell_values(direction, **terms)
    # A non-member's control cells are its observed ones, where alone its residual is nonzero
    nuisance = np.where(stack.treated, 0.0, -row_sums(leverage * residual))
    return OutcomeFit(prediction, residual, nuisance, bread), leverage


def _fit_iv(stack: CohortStack) -> OutcomeFit:
    """y0_it = a_t + b_t * H_i by 2SLS, H instrumented by the covariates (measurement error).

    The model is separate by period, so each period is a 2 x 2 system of column sums.
    """
    control = stack.control_cells.astype(float)
    treated = stack.treated_cells.astype(float)
    level = stack.level
    covs = np.column_stack([np.ones(len(level)), stack.covariates])
    _, first = _ols(covs[~stack.treated], level[~stack.treated])
    fitted = covs @ first
    y = stack.outcome
    # per period: A = sum over controls of [1, fitted]' [1, h]; c = sum of [1, fitted]' y
    count, h_sum = control.sum(axis=0), control.T @ level
    a = np.stack([np.stack([count, h_sum], -1),
                  np.stack([control.T @ fitted, control.T @ (fitted * level)], -1)], -2)
    c = np.stack([(control * y).sum(axis=0), (control * y).T @ fitted], -1)
    inverse = np.linalg.pinv(a)
    beta = np.einsum("tij,tj->ti", inverse, c)
    prediction = beta[None, :, 0] + level[:, None] * beta[None, :, 1]
    residual = np.where(stack.observed, y - prediction, 0.0)
    treated_sums = np.stack([treated.sum(axis=0), treated.T @ level], -1)
    direction = np.einsum("ti,tij->tj", treated_sums, inverse)
    lever = direction[None, :, 0] + fitted[:, None] * direction[None, :, 1]
    return OutcomeFit(prediction, residual, -(control * lever * residual).sum(axis=1))


def _fit_scaled(stack: CohortStack) -> OutcomeFit:
    """History as the unit's scale: y0_it = H_i * R_t + x_i'b + month_t (ratio of means R_t)."""
    control = stack.control_cells.astype(float)
    level = stack.level
    y_sum = (control * stack.outcome).sum(axis=0)
    h_control = control.T @ level
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(h_control > 0, y_sum / h_control, 0.0)
    offset = level[:, None] * ratio[None, :]
    fit, leverage = _fit_linear(stack, period_terms=np.ones((len(level), 1)),
                                unit_terms=stack.covariates, offset=offset)
    h_treated = stack.treated_cells.astype(float).T @ level
    shared = (control * leverage).T @ level
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(h_control > 0, (h_treated - shared) / h_control, 0.0)
    ratio_term = -(control * slope[None, :] * (stack.outcome - offset)).sum(axis=1)
    return OutcomeFit(fit.prediction, fit.residual, fit.nuisance + ratio_term)


def normal_interval(estimate: float, se: float, *, alpha: float = 0.05) -> tuple[float, float]:
    z = stats.norm.ppf(1 - alpha / 2)
    return estimate - z * se, estimate + z * se


class UnitInfluence:
    """Per-unit sums of influence terms over every stack a unit enters (a control enters many
    cohorts and months), for the cluster-robust SE.

    A unit's term of ``N * (theta_hat - theta)`` is ``term - estimate * count``: ``count`` are
    its treated cells (their term is ``residual - estimate``), known before the estimate is.
    """

    def __init__(self, n_units: int) -> None:
        self.term = np.zeros(n_units)
        self.count = np.zeros(n_units)
        self.seen = np.zeros(n_units, bool)

    def add(self, units: np.ndarray, *, term: np.ndarray, count: np.ndarray,
            seen: np.ndarray) -> None:
        """Add one stack's per-unit sums (``units`` are distinct within a stack)."""
        self.term[units] += term
        self.count[units] += count
        self.seen[units] |= seen

    def se(self, estimate: float, *, n_obs: int) -> float:
        """SE of the estimate: unit totals squared and summed, times G / (G - 1)."""
        totals = (self.term - estimate * self.count)[self.seen] / n_obs
        n = int(self.seen.sum())
        return float(np.sqrt(np.sum(totals**2) * n / max(n - 1, 1)))


class CohortEstimator:
    """The shared ``fit`` of the per-cohort estimators (regression adjustment, IPW, AIPW):
    subclasses have ``lookback`` and ``min_history`` and provide
    ``_estimate(design: StackedDesign) -> EffectResult``."""

    def fit(self, data: pd.DataFrame, *, outcome: str, unit: str | None = None,
            time: str | None = None, group: str | None = None, treated: str | None = None,
            covariates: Sequence[str] | str | None = None, active: str | None = None,
            community: str | None = None) -> Self:
        """Estimate the ATT; returns ``self`` with ``result_``.

        Two shapes of data:

        * a **panel** (``unit``, ``time``, ``group`` = first treated period; 0, NaN or after
          the last period = never treated, :func:`roi.revenue_lift.panel_input.never_treated`):
          the ATT per treated unit-period (per member-month), each cohort against the
          never-treated over the same calendar window, with each unit's pre-treatment outcome
          history over ``lookback`` periods;
        * a **cross-section** (one row per unit, ``treated`` a 0/1 or True/False column): the
          ATT per treated unit (``lookback`` is not used: there is no pre-period).

        ``covariates`` are column names or a formula right-hand side in patsy syntax
        (``"age + I(age**2) + C(plan)"``). ``community`` adds per-community estimates. When no
        treated unit has comparable controls, ``result_`` is refused with the reason.
        """
        name = type(self).__name__
        data, covs = formula_covariates(data, covariates, estimator=name)
        if treated is not None:
            if any(c is not None for c in (unit, time, group, active, community)):
                raise ValueError(f"{name}: give either treated= (a cross-section, one row per "
                                 "unit) or unit=, time= and group= (a panel), not both")
            rows = cross_section_panel(data, outcome=outcome, treated=treated, covariates=covs,
                                       estimator=name)
            design = stacked_design(rows, unit=CROSS_UNIT, time=CROSS_TIME, group=CROSS_GROUP,
                                    outcome=outcome, covariates=covs, active=None, lookback=0,
                                    min_history=0)
        else:
            if unit is None or time is None or group is None:
                raise ValueError(f"{name}: a panel needs unit=, time= and group= (first treated "
                                 "period); a cross-section needs treated= (a 0/1 column)")
            check_group_column(data, group=group, estimator=name)
            design = stacked_design(data, unit=unit, time=time, group=group, outcome=outcome,
                                    covariates=covs, active=active, lookback=self.lookback,
                                    min_history=self.min_history,
                                    unit_columns=(community,) if community else ())
        try:
            self.result_ = self._estimate(design)
        except NoComparison as exc:
            self.result_ = refused_lift(getattr(self, "method", name), str(exc))
            return self
        if treated is not None:
            _label_cross_section(self.result_)
        else:
            self.result_.scale = panel_scale(unit=unit, time=time, outcome=outcome)
        self._pooled_checks(design)
        if community is not None:
            self.result_.by_group = by_community(self, design, community=community)
        return self

    def _pooled_checks(self, design: StackedDesign) -> None:
        """Checks run on the pooled fit only (not per community); none by default."""

    def summary(self) -> pd.DataFrame:
        """One-row table of the estimate (see :meth:`EffectResult.summary`)."""
        return self.result_.summary()


CROSS_SECTION_SCALE = "outcome per treated unit"


def _label_cross_section(result: EffectResult) -> None:
    """A cross-section's ATT is per treated unit, not per member-month."""
    result.estimand, result.scale = "att", CROSS_SECTION_SCALE
    result.diagnostics.checks["data_shape"] = "cross_section"


def _plain(value: object) -> object:
    """A numpy scalar as the Python number it holds (for messages)."""
    return value.item() if isinstance(value, np.generic) else value


def no_comparison_reason(design: StackedDesign, *, estimator: str) -> str:
    """Why no cohort has both treated units and controls, naming the actual cause (no
    never-treated unit, no treated unit, treated from the first period, too little history)."""
    head = (f"{estimator}: no cohort has both treated units and controls with enough "
            "pre-join history")
    never = np.isnan(design.cohort)
    n_treated, n_never = int((~never).sum()), int(never.sum())
    if n_treated == 0:
        return (f"{head}: there is no treated unit (every group value is 0, NaN or after the "
                "last period, or every treated value is 0)")
    if n_never == 0:
        return (f"{head}: there is no never-treated (control) unit to compare with; never "
                "treated is group 0, NaN or a period after the last one, or treated = 0")
    at_start = int((design.cohort[~never] <= design.periods[0]).sum())
    if at_start == n_treated and design.min_history > 0:
        return (f"{head}: all {n_treated} treated units are treated from the first period "
                f"({_plain(design.periods[0])!r}), so none has a period before treatment; group must be "
                "the first treated period, not a 0/1 flag (for one row per unit pass "
                "treated= instead of unit/time/group)")
    return (f"{head}: {n_treated} treated and {n_never} never-treated units, but no cohort has "
            f"both with at least min_history={design.min_history} observed periods among the "
            f"lookback={design.lookback} periods before it (lower min_history, or lookback=0 "
            "to compare without history)")


class NoComparison(ValueError):
    """No member-month has comparable controls: the estimator refuses (see refused_lift)."""


def refused_lift(method: str, reason: str) -> EffectResult:
    """A revenue-lift result without a number: null estimate and interval, ``converged =
    False``, the reason in ``warnings`` and ``checks["refused"]``; never preferred."""
    diagnostics = Diagnostics(converged=False, checks={"refused": reason})
    diagnostics.warn(f"{method}: not estimated: {reason}.")
    nan = float("nan")
    return EffectResult(method=method, estimand="community_revenue_lift", estimate=nan,
                        low=nan, high=nan, interval=CI95, scale="currency per member-month",
                        diagnostics=diagnostics)


class RegressionAdjustment(CohortEstimator):
    """Imputation estimator of the ATT per member-month on the stacked cohort design.

    Parameters
    ----------
    lookback : int
        Periods before the join month over which the outcome history is measured (0: none).
    min_history : int
        History months a unit needs to enter a cohort's comparison.
    alpha : float
        1 - confidence level.

    Attributes
    ----------
    result_ : EffectResult
        Method ``regression``, estimand ``community_revenue_lift``.
    group_ : DataFrame
        Per cohort: g, att, n_treated (units), n_obs (member-months), n_control (units).

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"id": [1, 1, 2, 2, 3, 3, 4, 4], "t": [1, 2] * 4,
    ...                      "g": [2, 2, None, None, None, None, 2, 2],
    ...                      "y": [1.0, 4.0, 1.0, 1.0, 2.0, 2.0, 2.0, 5.0]})
    >>> fit = RegressionAdjustment().fit(rows, unit="id", time="t", group="g", outcome="y")
    >>> round(fit.result_.estimate, 6)
    3.0
    """

    method = "regression"

    def __init__(self, *, history: HistoryMode = "additive", lookback: int = 12,
                 min_history: int = 1, alpha: float = 0.05, overlap: bool = True,
                 overlap_trim: float = 0.01) -> None:
        if history not in HISTORY_MODES:
            raise ValueError(f"history must be one of {HISTORY_MODES}, got {history!r}")
        if lookback < 0 or min_history < 0:
            raise ValueError("lookback and min_history must be >= 0")
        self.history, self.lookback = history, lookback
        self.min_history, self.alpha = min_history, alpha
        self.overlap, self.overlap_trim = overlap, overlap_trim

    def _pooled_checks(self, design: StackedDesign,
                       propensities: list[tuple[np.ndarray, np.ndarray]] | None = None) -> None:
        """Overlap of the members' covariates with the controls', as IPW/AIPW measure it (a
        covariates-only logit per cohort; the history enters the default outcome model as an
        offset and needs no overlap), with the same bounds and thresholds; its warnings go to
        ``result_.diagnostics`` (see :class:`roi.checks.OverlapCheck` for the severity rule).
        ``propensities``: per cohort (propensities, treated) of those logits, when AIPW has
        fitted them already (:func:`roi.revenue_lift.adjusted.adjusted_estimates`)."""
        if not self.overlap or design.covariates.shape[1] == 0:
            return
        from roi.checks import OverlapCheck
        from roi.revenue_lift.weighting import fit_propensity

        if propensities is None:
            with single_threaded_blas():
                propensities = [(fit_propensity(stack, history=False)[0], stack.treated)
                                for stack in design.stacks(covariates_only=True)]
        propensities, treated = [p for p, _ in propensities], [t for _, t in propensities]
        self.overlap_ = OverlapCheck(low=0.0, high=1 - self.overlap_trim, trims=False).run(
            np.concatenate(propensities), treated=np.concatenate(treated))
        result = self.result_
        result.diagnostics.checks["overlap"] = self.overlap_.to_checks()
        result.tables["overlap"] = self.overlap_.table_
        for message in self.overlap_.warnings_:
            result.diagnostics.warn(message)

    def _estimate(self, design: StackedDesign) -> EffectResult:
        if not design.cohorts:
            raise NoComparison(no_comparison_reason(design, estimator=type(self).__name__))
        influence = UnitInfluence(len(design.unit_labels))
        with single_threaded_blas():
            cohorts = [self._add_stack(stack, influence) for stack in design.stacks()]
        return self._finish(design, cohorts, influence)

    def _finish(self, design: StackedDesign, cohorts: list[dict[str, Any]],
                influence: UnitInfluence) -> EffectResult:
        """The result from the cohorts' rows (:meth:`_add_stack`) and their influence sums."""
        residual_sum, n_obs = 0.0, 0
        for row in cohorts:
            residual_sum += row.pop("residual_sum")
            n_obs += row["n_obs"]
        estimate = residual_sum / n_obs
        se = influence.se(estimate, n_obs=n_obs)
        self.group_ = pd.DataFrame(cohorts)
        return self._result(design, estimate, se, n_obs)

    def _add_stack(self, stack: CohortStack, influence: UnitInfluence,
                   fit: OutcomeFit | None = None) -> dict[str, Any]:
        """Fit one cohort's outcome model (unless ``fit`` is given: the same model fitted
        already, with its influence terms), add its units' influence terms; its summary row."""
        fit = fit_outcome(stack, history=self.history) if fit is None else fit
        members = stack.treated
        rows = np.flatnonzero(members)   # their cells are the treated cells
        observed = stack.observed.sum(axis=1)
        term = fit.nuisance.copy()
        term[rows] = fit.residual[rows].sum(axis=1)
        influence.add(stack.units, term=term, count=np.where(members, observed, 0),
                      seen=observed > 0)
        n = int(observed[rows].sum())
        residual_sum = float(fit.residual[rows][stack.observed[rows]].sum())   # cell order kept
        return {"g": stack.cohort, "att": residual_sum / n if n else float("nan"),
                "n_treated": int(members.sum()), "n_obs": n,
                "n_control": int((~members).sum()), "residual_sum": residual_sum}

    def _result(self, design: StackedDesign, estimate: float, se: float,
                n_obs: int) -> EffectResult:
        low, high = normal_interval(estimate, se, alpha=self.alpha)
        diagnostics = Diagnostics(checks={"coverage": design.coverage, "se": se,
                                          "history": self.history, "lookback": design.lookback,
                                          "min_history": design.min_history})
        coverage_warning(diagnostics, design.coverage)
        return EffectResult(method=self.method, estimand="community_revenue_lift",
                            estimate=float(estimate), low=low, high=high, interval=CI95,
                            scale="currency per member-month",
                            n_treated=int(self.group_["n_treated"].sum()), n_obs=n_obs,
                            tables={"group": self.group_}, diagnostics=diagnostics)

    def summary(self) -> pd.DataFrame:
        """One-row table of the estimate (see :meth:`EffectResult.summary`)."""
        return self.result_.summary()


def coverage_warning(diagnostics: Diagnostics, coverage: dict[str, Any]) -> None:
    share = coverage["share_covered"]
    if share < 0.8:
        diagnostics.warn(f"Only {share:.0%} of member-months have pre-join history to adjust "
                         "for; the estimate is the lift over those member-months (members who "
                         "joined at once are left out).")


def by_community(estimator: Any, design: StackedDesign, *,
                 community: str) -> dict[str, dict[str, Any]]:
    """Per community: its members against all never-members, as in ``roi.run``.

    Each community is fitted on a copy of ``estimator`` so that the pooled fit's attributes
    (``group_``, checks) stay the pooled ones. The covariates keep the pooled design's dummy
    coding (a level absent from one community is an all-zero column, which changes nothing).
    """
    out = {}
    never = np.isnan(design.cohort)
    names = pd.Series(design.unit_values[community])
    for name in sorted(names[~never].dropna().unique()):
        units = never | (names == name).to_numpy()
        try:
            result = copy.copy(estimator)._estimate(design.subset(units))
            out[str(name)] = result.to_contract()
        except NoComparison as exc:
            out[str(name)] = {"estimate": None, "low": None, "high": None, "interval": CI95,
                              "converged": False, "refused": f"not estimated: {exc}"}
    return out
