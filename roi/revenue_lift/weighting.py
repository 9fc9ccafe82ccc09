"""Inverse-probability weighting (IPW) and doubly robust AIPW for the community revenue lift.

Both work on the stacked cohort design of :mod:`roi.revenue_lift.regression_adjustment` (read its
notes): per join cohort ``g``, members with pre-join history against never-members with history
over the same calendar window, outcome rows at ``t >= g``.

Propensity
    Per cohort, a maximum-likelihood logit of "member of cohort g" on the unit's pre-treatment
    features: covariates (categoricals as dummies) and the pre-join outcome history (mean, its
    square root and ``log1p``, months observed). ATT weights: members 1, controls ``p / (1 - p)``.
    It is statsmodels' Newton iteration run on the distinct feature rows with their counts
    (:func:`_newton_logit`; statsmodels itself wherever it would warn or fail).
Trimming
    Units (members and controls) with ``p > 1 - trim`` (default 0.99) leave the cohort's
    comparison: members there have no comparable controls, controls there would carry huge
    weights. No lower bound: for the ATT a small ``p`` only means a small control weight, and a
    cohort of ~300 members among ~10,000 controls puts most propensities below 0.01 by design
    (a [0.01, 0.99] rule dropped 8,000 of them on the simulated world). The Crump et al. (2009)
    rule targets the ATE and is not used. Counts per group are in
    ``diagnostics.checks["overlap"]`` (``OverlapCheck``).
Estimate
    Cell ``(g, t)``: mean over the cell's members of ``y - m(x)`` minus the weighted mean over
    its controls of ``y - m(x)``; ``m = 0`` for IPW, the regression-adjustment outcome model for
    AIPW (Sant'Anna & Zhao 2020, "DR-DiD" without differencing). Cells are averaged with their
    member-month counts: the ATT per member-month over the covered member-months.
Inference
    Influence functions per row, summed by customer (cluster-robust; a control enters many
    cohorts and months), ``G / (G - 1)``. The propensity and outcome models are treated as known
    (their estimation terms are left out), which is first-order exact for AIPW when both models
    are right (locally efficient DR) and usually conservative for IPW; a bootstrap is left to do.
Measured
    On 20k-customer worlds, seeds 1 and 2 (truth over covered member-months 31.6 and 30.5, naive
    174 and 166): IPW on covariates + history 137.6 and 120.1 although every |SMD| after
    weighting is below 0.03 -- balancing a noisy history does not balance the trait. AIPW with
    the default outcome model and a covariates-only propensity: 44.5 and 21.6; with the history
    also in the propensity it falls back toward IPW (118 and 109).

    On ``benchmarks/output/world_1000000_1`` (issue 19; 22 cohort stacks of 173k-460k
    units), ``AIPW().fit`` as ``roi run`` calls it (per community, the run's covariates) took
    52.3 and 54.0 CPU s before (two runs) and 26.9 after (``time.process_time``, 2 shared
    cores; wall 117-173 s before, 74 s after), estimates, SEs and tables equal to 2e-15. The statsmodels logits were over a third of it: the run's
    covariates are four categoricals and a head count, 59,870 distinct rows among 932k
    customers, so each cohort's logit now runs on 23k-42k rows with counts, the same
    Newton steps from the same start (same maximum to ~1e-15). The cells' sums and the units'
    influence terms are matrix-vector products over unit masks (a unit's cells are all treated
    or all control) instead of five cell-sized temporaries, and the outcome model skips the
    nuisance term AIPW does not use.
Diagnostics
    :class:`roi.checks.OverlapCheck` on the stacked propensities and
    :class:`roi.checks.BalanceCheck` on the stacked unit features (cohort-size normalised weights);
    their warnings are copied to ``result_.diagnostics``.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(1)
>>> n = 800
>>> x = rng.normal(size=n)
>>> g = np.where(rng.random(n) < 1 / (1 + np.exp(1 - x)), 2.0, np.nan)
>>> rows = pd.DataFrame({"id": np.repeat(np.arange(n), 2), "t": np.tile([1, 2], n),
...                      "g": np.repeat(g, 2), "x": np.repeat(x, 2)})
>>> rows["y"] = 10 + 3 * rows["x"] + 4.0 * (rows["t"] >= rows["g"]) + rng.normal(size=2 * n)
>>> fit = AIPW(lookback=0, min_history=0).fit(rows, unit="id", time="t", group="g",
...                                           outcome="y", covariates=["x"])
>>> round(fit.result_.estimate), fit.result_.method
(4, 'aipw')
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import (
    ConvergenceWarning,
    PerfectSeparationError,
    PerfectSeparationWarning,
)

from roi.checks import BalanceCheck, OverlapCheck
from roi.checks.balance import BalanceMoments
from roi.results import CI95, Diagnostics, EffectResult
from roi.revenue_lift._did_influence import single_threaded_blas
from roi.revenue_lift.regression_adjustment import (
    HISTORY,
    CohortEstimator,
    CohortStack,
    HistoryMode,
    NoComparison,
    StackedDesign,
    UnitInfluence,
    coverage_warning,
    fit_outcome,
    no_comparison_reason,
    normal_interval,
)


def propensity(stack: CohortStack, *, history: bool = True) -> np.ndarray:
    """Logit propensity of being in the cohort, from the unit's pre-treatment features
    (covariates, and the outcome history when ``history``)."""
    return fit_propensity(stack, history=history)[0]


def fit_propensity(stack: CohortStack, *, history: bool = True) -> tuple[np.ndarray, bool]:
    """Propensities and whether the maximum-likelihood logit failed (separation).

    When members are (quasi-)perfectly predicted by their features, the logit has no finite
    maximum: statsmodels then warns, stops unconverged or meets a singular Hessian. The
    propensities then come from a ridge-penalised logit (finite by construction); the caller
    reports the cohort, and the trimming rule removes the members without comparable controls.

    The maximum-likelihood fit is :func:`_newton_logit` on the distinct feature rows with their
    counts (the run's covariates are mostly categorical: ~60k distinct rows among 700k units),
    the statsmodels fit (:func:`_ml_logit`) whenever that one cannot vouch for its answer.
    """
    features = stack.features
    own_history = history and stack.history
    if not history and stack.history:
        features = features[:, :-len(HISTORY)]
    features = features[:, _varies(features)]
    treated = stack.treated.astype(float)
    rows, first = _distinct_rows(stack, own_history=own_history)
    total = np.bincount(rows, minlength=len(first)).astype(float)
    events = np.bincount(rows, weights=treated, minlength=len(first))
    fast = _newton_logit(_with_constant(features[first]), events=events, total=total)
    p = _ml_logit(treated, _with_constant(features)) if fast is None else fast[rows]
    if p is None or _separated(p, stack.treated):
        return _ridge_logit(treated, _with_constant(features)), True
    return p, False


def _with_constant(features: np.ndarray) -> np.ndarray:
    """``sm.add_constant(features, has_constant="add")`` without its checks of every column
    (a third of a 1M-customer stack's propensity time)."""
    return np.column_stack([np.ones(len(features)), features])


def _varies(features: np.ndarray) -> np.ndarray:
    """Per column, a positive standard deviation: max > min (2 passes where ``std`` takes 4),
    and ``std`` itself on the columns where they are equal (a constant column's mean may
    round off its value, and the former rule kept such a column)."""
    varies = features.max(axis=0, initial=-np.inf) > features.min(axis=0, initial=np.inf)
    same = np.flatnonzero(~varies)
    varies[same] = features[:, same].std(axis=0) > 0
    return varies


def _distinct_rows(stack: CohortStack, *, own_history: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per unit the number of its distinct covariate row (0, 1, ... in order of first
    appearance), and each distinct row's first unit. With the history in the features every
    unit is its own row (the history is continuous)."""
    n = len(stack.units)
    if own_history or stack.patterns is None:
        return np.arange(n), np.arange(n)
    return _numbered(stack.patterns)


def _numbered(patterns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Patterns numbered 0, 1, ... in order of first appearance, and each one's first unit."""
    n = len(patterns)
    rows, _ = pd.factorize(patterns)
    first = np.empty(rows.max() + 1 if n else 0, np.int64)
    first[rows[::-1]] = np.arange(n)[::-1]   # the last write of a row is its first unit
    return rows, first


def fit_propensity_rows(stack: CohortStack, rows: np.ndarray) -> tuple[np.ndarray, bool]:
    """``fit_propensity(stack restricted to rows, history=False)`` (``rows`` increasing
    positions, e.g. one community's members and all controls) without copying the units'
    covariates: the logit runs on the distinct covariate rows, whose first units these are.
    Where that fit gives up, the restricted stack is built and :func:`fit_propensity` runs."""
    features = stack.covariates
    if stack.patterns is None or not len(rows):
        return fit_propensity(_restricted(stack, rows), history=False)
    numbers, first = _numbered(stack.patterns[rows])
    distinct = features[rows[first]]
    # A column varies over the rows iff it varies over their distinct rows; a constant one is
    # checked by ``std`` over all the rows, as _varies does
    varies = distinct.max(axis=0) > distinct.min(axis=0)
    same = np.flatnonzero(~varies)
    varies[same] = features[:, same][rows].std(axis=0) > 0
    treated = stack.treated[rows]
    total = np.bincount(numbers, minlength=len(first)).astype(float)
    events = np.bincount(numbers, weights=treated.astype(float), minlength=len(first))
    fast = _newton_logit(_with_constant(distinct[:, varies]), events=events, total=total)
    if fast is not None and not _separated(fast[numbers], treated):
        return fast[numbers], False
    return fit_propensity(_restricted(stack, rows), history=False)


def _restricted(stack: CohortStack, rows: np.ndarray) -> CohortStack:
    """The stack's units at ``rows``, without the history features and outcome."""
    return CohortStack(stack.cohort, stack.units[rows], stack.treated[rows],
                       stack.covariates[rows], stack.outcome[rows, :0],
                       stack.observed[rows, :0], history=False,
                       patterns=None if stack.patterns is None else stack.patterns[rows])


NEWTON_TOL, NEWTON_MAXITER = 1e-8, 100
"""statsmodels' defaults for ``Logit.fit(method="newton")`` (tolerance on the step)."""


def _newton_logit(x: np.ndarray, *, events: np.ndarray, total: np.ndarray) -> np.ndarray | None:
    """Logit propensities per row of ``x`` (``events`` members among ``total`` units each), or
    None when statsmodels might judge the fit differently.

    The iteration is statsmodels' Newton (start at zero, Hessian + 1e-10 ridge, stop when no
    coefficient moves by more than 1e-8), so it meets the same maximum; on rows with counts
    the likelihood and its derivatives are those of the units. It gives up (None) wherever
    statsmodels would warn or fail -- a linear predictor beyond +-700 (overflow), every unit
    predicted within 1e-8 (perfect prediction), no convergence in 100 steps, a singular
    Hessian -- so that the caller asks statsmodels itself in exactly those cases.
    """
    n = total.sum()
    pure = np.where(events == total, 1.0, np.where(events == 0, 0.0, np.nan))
    params, old = np.zeros(x.shape[1]), np.full(x.shape[1], np.inf)
    for _ in range(NEWTON_MAXITER):
        if not np.any(np.abs(params - old) > NEWTON_TOL):
            break
        p = _logit_cdf(x, params)
        if p is None:
            return None
        hessian = (x * (total * p * (1 - p) / n)[:, None]).T @ x
        hessian[np.diag_indices_from(hessian)] += 1e-10
        try:
            step = np.linalg.solve(hessian, x.T @ ((total * p - events) / n))
        except np.linalg.LinAlgError:
            return None
        old, params = params, params - step
        p = _logit_cdf(x, params)   # statsmodels' perfect-prediction callback
        if p is None or np.all(np.abs(p - pure) <= 1e-8):
            return None
    else:
        return None   # statsmodels counts 100 steps as not converged, whatever the last one
    return _final_probabilities(x, params, total=total)


def _final_probabilities(x: np.ndarray, params: np.ndarray, *,
                         total: np.ndarray) -> np.ndarray | None:
    """The converged fit's probabilities, or None where statsmodels' own finishing steps
    (inverting the Hessian for the covariance) would fail."""
    p = _logit_cdf(x, params)
    if p is None:
        return None
    try:
        np.linalg.inv((x * (total * p * (1 - p) / total.sum())[:, None]).T @ x)
    except np.linalg.LinAlgError:
        return None
    return p if np.isfinite(p).all() else None


def _logit_cdf(x: np.ndarray, params: np.ndarray) -> np.ndarray | None:
    """statsmodels' ``Logit.cdf`` of ``x @ params``; None where it would overflow (and warn)."""
    eta = x @ params
    if not np.all(np.abs(eta) < 700):
        return None
    return 1.0 / (1.0 + np.exp(-eta))


def _ml_logit(y: np.ndarray, design: np.ndarray) -> np.ndarray | None:
    """Maximum-likelihood logit propensities, or None when the fit is not trustworthy."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = sm.Logit(y, design).fit(disp=0, maxiter=100, method="newton")
        except (np.linalg.LinAlgError, PerfectSeparationError, ValueError):
            return None
    trouble = (PerfectSeparationWarning, ConvergenceWarning, RuntimeWarning)
    if any(issubclass(w.category, trouble) for w in caught):
        return None
    if not fit.mle_retvals.get("converged", True):
        return None
    p = np.asarray(fit.predict(design))
    return p if np.isfinite(p).all() else None


def _separated(p: np.ndarray, treated: np.ndarray) -> bool:
    """Complete separation: every member's propensity above every control's."""
    if treated.all() or not treated.any():
        return True
    return bool(p[treated].min() > p[~treated].max())


def _ridge_logit(y: np.ndarray, design: np.ndarray, *, penalty: float = 1.0,
                 iterations: int = 100) -> np.ndarray:
    """Logit with an L2 penalty on the standardised slopes (not the constant), by Newton."""
    scale = design[:, 1:].std(axis=0)
    z = design.copy()
    z[:, 1:] = (design[:, 1:] - design[:, 1:].mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    ridge = penalty * np.eye(z.shape[1])
    ridge[0, 0] = 1e-6
    beta = np.zeros(z.shape[1])
    for _ in range(iterations):
        p = _expit(z @ beta)
        hessian = (z * (p * (1 - p))[:, None]).T @ z + ridge
        step = np.linalg.solve(hessian, z.T @ (y - p) - ridge @ beta)
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    return _expit(z @ beta)


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -500, 500)))


@dataclass
class _Weighted:
    """One cohort after trimming: the cell estimates' ingredients."""

    stack: CohortStack
    p: np.ndarray            # per unit of the stack
    keep: np.ndarray         # per unit, p <= 1 - trim
    residual: np.ndarray     # per cell: y - m(x) (zero where not observed)
    separated: bool = False  # the ML logit failed; p from the ridge fallback


@dataclass
class _Cohorts:
    """What the pass over the cohorts keeps: cells, unit influence sums, check inputs."""

    cells: list[pd.DataFrame]
    influence: UnitInfluence
    propensity: list[np.ndarray]
    treated: list[np.ndarray]
    balance: BalanceMoments
    separated: dict[str, int]
    members: int = 0
    members_kept: int = 0


class IPW(CohortEstimator):
    """ATT per member-month by inverse-probability (odds) weighting of never-members.

    Parameters
    ----------
    trim : float
        Units with a propensity above ``1 - trim`` are left out (see the module notes).
    lookback, min_history : int
        History window and minimum history months (see :mod:`roi.revenue_lift.regression_adjustment`).
    history : str
        Outcome model of :class:`AIPW` (``"additive"``, ``"scale"``, ``"iv"``, ``"regressor"``,
        ``"none"``); unused by IPW.
    propensity_history : bool
        Put the history features in the propensity (default True for IPW, False for AIPW).
    alpha : float
        1 - confidence level.

    Attributes
    ----------
    result_ : EffectResult
        ``community_revenue_lift``; tables ``group_time``, ``overlap``, ``balance``;
        ``diagnostics.checks`` has ``overlap``, ``balance``, ``coverage``, ``se``.
    overlap_ : OverlapCheck
    balance_ : BalanceCheck
    group_time_ : DataFrame
        Per cell: g, t (period position from g), att, n_obs, control_weight.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"id": [1, 2, 3, 4], "t": [1] * 4, "g": [1, 1, None, None],
    ...                      "x": [0.0, 1.0, 0.0, 1.0], "y": [5.0, 7.0, 1.0, 3.0]})
    >>> fit = IPW(lookback=0, min_history=0).fit(rows, unit="id", time="t", group="g",
    ...                                          outcome="y", covariates=["x"])
    >>> round(fit.result_.estimate, 6)
    4.0
    """

    method = "ipw"
    doubly_robust = False

    def __init__(self, *, trim: float = 0.01, lookback: int = 12, min_history: int = 1,
                 history: HistoryMode = "additive", propensity_history: bool = True,
                 alpha: float = 0.05) -> None:
        if not 0 <= trim < 0.5:
            raise ValueError(f"trim must be in [0, 0.5), got {trim!r}")
        self.trim, self.lookback, self.min_history = trim, lookback, min_history
        self.history, self.alpha = history, alpha
        self.propensity_history = propensity_history

    def _estimate(self, design: StackedDesign) -> EffectResult:
        if not design.cohorts:
            raise NoComparison(no_comparison_reason(design, estimator=type(self).__name__))
        seen = self._cohorts(design)
        with single_threaded_blas():
            for stack in design.stacks():
                self._add_cohort(self._weigh(stack), seen)
        return self._finish(design, seen)

    @staticmethod
    def _cohorts(design: StackedDesign) -> _Cohorts:
        return _Cohorts([], UnitInfluence(len(design.unit_labels)), [], [], BalanceMoments(), {})

    def _finish(self, design: StackedDesign, seen: _Cohorts) -> EffectResult:
        """The result from the cohorts' cells, influence sums and check inputs."""
        cells = pd.concat(seen.cells, ignore_index=True)
        cells = cells[(cells["n_obs"] > 0) & (cells["control_weight"] > 0)]
        n_obs = int(cells["n_obs"].sum())
        if not n_obs:
            raise NoComparison(f"{type(self).__name__}: no member-month is left with "
                               "comparable controls after trimming (no overlap)")
        estimate = float((cells["att"] * cells["n_obs"]).sum() / n_obs)
        se = seen.influence.se(estimate, n_obs=n_obs)
        self.group_time_ = cells.reset_index(drop=True)
        self._run_checks(design, seen)
        return self._result(design, estimate, se, n_obs, seen)

    def _weigh(self, stack: CohortStack, residual: np.ndarray | None = None) -> _Weighted:
        """Propensities, trimming and outcome residuals (``residual``: of this estimator's
        outcome model, fitted already) of one cohort."""
        p, separated = fit_propensity(stack, history=self.propensity_history)
        keep = p <= 1 - self.trim
        if not self.doubly_robust:
            residual = stack.outcome
        elif residual is None:
            residual = fit_outcome(stack, history=self.history, influence=False).residual
        return _Weighted(stack, p, keep, residual, separated)

    def _add_cohort(self, w: _Weighted, seen: _Cohorts) -> None:
        """One cohort's cells, its units' influence sums and the checks' inputs."""
        masks = _cell_masks(w)
        cells = _cells(w, masks)
        seen.cells.append(cells)
        _add_influence(w, cells, seen.influence, masks)
        seen.propensity.append(w.p)
        seen.treated.append(w.stack.treated)
        features = w.stack.features
        if not self.propensity_history and w.stack.history:
            features = w.stack.covariates
        after, before = _balance_weights(w)
        seen.balance.add(features[w.keep], treated=w.stack.treated[w.keep],
                         weights=after[w.keep], base_weights=before[w.keep])
        seen.members += int(w.stack.treated.sum())
        seen.members_kept += int((w.stack.treated & w.keep).sum())
        if w.separated:
            seen.separated[_label(w.stack.cohort)] = int(w.stack.treated.sum())

    def _run_checks(self, design: StackedDesign, seen: _Cohorts) -> None:
        self.overlap_ = OverlapCheck(low=0.0, high=1 - self.trim).run(
            np.concatenate(seen.propensity), treated=np.concatenate(seen.treated))
        names = design.feature_names
        if not self.propensity_history and design.lookback > 0:
            names = names[:-len(HISTORY)]
        self.balance_ = BalanceCheck().run_moments(seen.balance, names=names)

    def _result(self, design: StackedDesign, estimate: float, se: float, n_obs: int,
                seen: _Cohorts) -> EffectResult:
        low, high = normal_interval(estimate, se, alpha=self.alpha)
        checks = {"coverage": design.coverage, "se": se, "trim": self.trim,
                  "lookback": design.lookback, "overlap": self.overlap_.to_checks(),
                  "balance": self.balance_.to_checks()}
        diagnostics = Diagnostics(checks=checks)
        for message in self.overlap_.warnings_ + self.balance_.warnings_:
            diagnostics.warn(message)
        coverage_warning(diagnostics, design.coverage)
        _separation_warning(diagnostics, seen.separated, members=seen.members,
                            cohorts=len(design.cohorts))
        return EffectResult(method=self.method, estimand="community_revenue_lift",
                            estimate=estimate, low=low, high=high, interval=CI95,
                            scale="currency per member-month", n_treated=seen.members_kept,
                            n_obs=n_obs,
                            tables={"group_time": self.group_time_,
                                    "overlap": self.overlap_.table_,
                                    "balance": self.balance_.table_},
                            diagnostics=diagnostics)

    def summary(self) -> pd.DataFrame:
        """One-row table of the estimate (see :meth:`EffectResult.summary`)."""
        return self.result_.summary()


class AIPW(IPW):
    """Doubly robust ATT per member-month: IPW of the outcome model's residuals.

    Same parameters and attributes as :class:`IPW`, plus ``history``: how the pre-join history
    enters the outcome model (see :mod:`roi.revenue_lift.regression_adjustment`). By default the
    propensity uses the covariates only (``propensity_history=False``): the outcome model
    already carries the history, and weighting on a *noisy* history picks controls whose true
    level is below the members' (regression to the mean), so the structural residuals of the
    weighted controls are not centred and the correction term re-introduces the bias (see the
    module notes for the numbers).

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"id": [1, 2, 3, 4, 5], "t": [1] * 5, "g": [1, 1, None, None, None],
    ...                      "x": [0.0, 1.0, 0.0, 1.0, 2.0], "y": [5.0, 7.0, 1.0, 3.0, 5.0]})
    >>> fit = AIPW(lookback=0, min_history=0).fit(rows, unit="id", time="t", group="g",
    ...                                           outcome="y", covariates=["x"])
    >>> round(fit.result_.estimate, 6)
    4.0
    """

    method = "aipw"
    doubly_robust = True

    def __init__(self, *, trim: float = 0.01, lookback: int = 12, min_history: int = 1,
                 history: HistoryMode = "additive", propensity_history: bool = False,
                 alpha: float = 0.05) -> None:
        super().__init__(trim=trim, lookback=lookback, min_history=min_history,
                         history=history, propensity_history=propensity_history, alpha=alpha)


SEPARATION_LIMIT = 0.5


def _separation_warning(diagnostics: Diagnostics, separated: dict[str, int], *, members: int,
                        cohorts: int) -> None:
    """Cohorts whose propensity logit separated (cohort -> its members): listed in the checks,
    warned about, and the estimate refused (``converged = False``) when they hold over half of
    the members."""
    diagnostics.checks["propensity_separation"] = separated
    if not separated:
        return
    share = sum(separated.values()) / max(members, 1)
    diagnostics.warn(
        f"Propensity model: perfect or quasi-perfect separation in {len(separated)} of "
        f"{cohorts} join cohorts ({share:.0%} of members): their members are predicted "
        "by the covariates alone, so comparable never-members are missing; those propensities "
        "come from a penalised logit and members without overlap are trimmed.")
    if share > SEPARATION_LIMIT:
        diagnostics.converged = False
        diagnostics.warn("Not trusted: most members sit in cohorts whose propensity model "
                         "separated.")


def _label(cohort: Any) -> str:
    value = float(cohort)
    return str(int(value)) if value.is_integer() else str(cohort)


@dataclass
class _CellMasks:
    """Which units' cells count in a cohort after trimming, as unit vectors rather than cell
    masks: a unit's cells are all treated or all control, and the residual is zero on the
    cells not observed, so every cell sum is a sum over rows or a matrix-vector product."""

    observed: np.ndarray     # units x periods, 0/1 floats
    members: np.ndarray      # positions of the kept members
    controls: np.ndarray     # per unit, a kept control
    weight: np.ndarray       # per unit, ATT weight: 1 member, p / (1 - p) control


def _cell_masks(w: _Weighted) -> _CellMasks:
    treated, kept = w.stack.treated, w.keep
    return _CellMasks(w.stack.observed.astype(float), np.flatnonzero(treated & kept),
                      ~treated & kept, np.where(treated, 1.0, _odds(w.p)))


def _cells(w: _Weighted, masks: _CellMasks) -> pd.DataFrame:
    n_obs = w.stack.observed[masks.members].sum(axis=0).astype(np.int64)
    t_sum = w.residual[masks.members].sum(axis=0)
    control_weight = np.where(masks.controls, masks.weight, 0.0)
    c_weight = masks.observed.T @ control_weight
    c_sum = w.residual.T @ control_weight
    with np.errstate(divide="ignore", invalid="ignore"):
        treated_mean, control_mean = t_sum / n_obs, c_sum / c_weight
    return pd.DataFrame({"g": w.stack.cohort, "t": np.arange(len(n_obs)),
                         "att": treated_mean - control_mean, "treated_mean": treated_mean,
                         "control_mean": control_mean, "n_obs": n_obs,
                         "control_weight": c_weight})


def _add_influence(w: _Weighted, cells: pd.DataFrame, influence: UnitInfluence,
                   masks: _CellMasks) -> None:
    """Per unit, its kept cells' terms of N * (theta_hat - theta) over the cohort's valid cells
    (members: residual - control mean - estimate; controls: minus their weighted share of the
    cell's control mean).

    Per unit ``sum_t c_t (r_it - m_t)`` over its observed valid cells is ``r_i . c - o_i . (c
    m)`` (``r`` is zero off the observed cells ``o``), with ``c`` the valid cells for members
    and those times the cell's ``n_obs / control_weight`` for controls: two products of the
    units x periods matrices with a few columns instead of five cell-sized temporaries.
    """
    valid = ((cells["n_obs"] > 0) & (cells["control_weight"] > 0)).to_numpy()
    n_obs = cells["n_obs"].to_numpy(float)
    control_mean = np.where(valid, cells["control_mean"].to_numpy(), 0.0)
    scale = np.where(valid, n_obs / np.where(valid, cells["control_weight"].to_numpy(), 1.0), 0.0)
    member_cells, control_cells = valid.astype(float), scale
    sums = w.residual @ np.column_stack([member_cells, control_cells])
    means = masks.observed @ np.column_stack([member_cells * control_mean,
                                              control_cells * control_mean, member_cells])
    member = np.zeros(len(masks.weight), bool)
    member[masks.members] = True
    term = np.where(member, sums[:, 0] - means[:, 0],
                    np.where(masks.controls, -masks.weight * (sums[:, 1] - means[:, 1]), 0.0))
    valid_months = means[:, 2]
    influence.add(w.stack.units, term=term, count=np.where(member, valid_months, 0.0),
                  seen=(member | masks.controls) & (valid_months > 0))


def _balance_weights(w: _Weighted) -> tuple[np.ndarray, np.ndarray]:
    """Per unit: ATT weights and unweighted ones, controls scaled to the cohort's member count."""
    treated, keep = w.stack.treated, w.keep
    odds = np.where(treated, 1.0, _odds(w.p))
    n_treated = max(int((treated & keep).sum()), 1)
    after = np.where(treated, 1.0, odds * n_treated / odds[~treated & keep].sum())
    before = np.where(treated, 1.0, n_treated / max(int((~treated & keep).sum()), 1))
    return after, before


def _odds(p: np.ndarray) -> np.ndarray:
    return p / np.clip(1 - p, 1e-12, None)
