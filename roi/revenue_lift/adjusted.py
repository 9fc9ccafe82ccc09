"""Regression adjustment, AIPW and their observed benchmarks from one stacked design.

``roi run`` fits :class:`~roi.revenue_lift.regression_adjustment.RegressionAdjustment` and
:class:`~roi.revenue_lift.weighting.AIPW` overall and per community, and measures the observed
benchmarks of their robustness value (:mod:`roi.sensitivity.benchmarks`). Fitted one by one,
each builds the same :class:`~roi.revenue_lift.regression_adjustment.StackedDesign` from the
panel, and each community's fit builds every cohort's stack and outcome model again, although a
community's comparison is the pooled one restricted to its members: its controls are the same
never-members, so its outcome model (fitted on the controls' cells) is the pooled one.
:func:`adjusted_estimates` builds the design and every cohort's stack once and fits the outcome
model once per cohort; from them it takes

* the pooled regression adjustment and AIPW, by the estimators' own code;
* per community, the regression adjustment's members' residuals and the controls' influence
  terms (the outcome model's leverage on the community's members: one matrix product over the
  stack for all communities), and AIPW with the community's own propensity logit (on its
  members and the controls: a genuinely different fit, run on the distinct covariate rows
  without copying the stack) and its cells' control sums, again one product for all
  communities;
* the regression adjustment's overlap check from AIPW's covariates-only logits (the same fit);
* the benchmarks from the design restricted to their seeded sample of customers (the design
  that sample's rows would build, checked: same months, same covariate coding).

The numbers equal the separate fits' up to rounding (sums in another order; the test compares
to 1e-10 relative). Other outcome models than ``"additive"`` and ``"none"``, or estimators with
different windows, are fitted separately as before.

Measured for issue 19 on ``benchmarks/output/world_1000000_1`` (its panel, 13M rows; the run's
five covariates; two communities; CPU seconds by ``time.process_time`` on 2 shared cores):
fitted one by one, regression adjustment 25.9 and 26.1 s, AIPW 33.9 and 33.2 s, benchmarks
3.1 and 3.8 s (63 s in all; wall 200-280 s under load); :func:`adjusted_estimates` 21.2 and
21.5 s (wall 59-79 s), estimates, SEs, per-community entries and tables equal to 1.2e-15
relative (the pooled ones exactly); peak memory 3.55 GiB against 3.62 (the panel alone 2.2).
What is left (cProfile): the design from the panel ~4-5 s, once; the pass over the 22 cohort
stacks ~11 s (gathers 1.2, the outcome model 4.6, AIPW's pooled logits and balance moments 2.7,
the per-community terms 2.6, of which their logits 1.1); the benchmarks 2.3 s (the customers'
distinct identifiers and the sample's membership test 1.3 of it).

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> n, months = 600, np.arange(1, 7)
>>> g = np.where(rng.random(n) < 0.3, 4.0, np.nan)
>>> rows = pd.DataFrame([(i, t) for i in range(n) for t in months], columns=["id", "t"])
>>> rows["g"], rows["active"] = g[rows["id"]], True
>>> rows["community"] = np.where(np.isnan(rows["g"]), None, np.where(rows["id"] % 2, "a", "b"))
>>> rows["plan"] = np.where(rows["id"] % 3, "basic", "pro")
>>> rows["y"] = 20 + 5.0 * (rows["t"] >= rows["g"]) + rng.normal(0, 1, len(rows))
>>> out = adjusted_estimates(rows, covariates=["plan"], unit="id", time="t", group="g",
...                          outcome="y")
>>> round(out["regression"].estimate), sorted(out["aipw"].by_group)
(5, ['a', 'b'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from roi.results import CI95, Diagnostics, EffectResult
from roi.revenue_lift._did_influence import single_threaded_blas
from roi.revenue_lift.panel_input import check_group_column, panel_scale
from roi.revenue_lift.regression_adjustment import (
    CohortStack,
    NoComparison,
    OutcomeFit,
    RegressionAdjustment,
    StackedDesign,
    UnitInfluence,
    _cross_products,
    fit_outcome,
    no_comparison_reason,
    normal_interval,
    refused_lift,
    row_sums,
    stacked_design,
)
from roi.revenue_lift.weighting import (
    AIPW,
    _label,
    _odds,
    _separation_warning,
    fit_propensity_rows,
)

SHARED_MODES = ("additive", "none")
"""Outcome models whose per-community fit is the pooled one (period effects, covariates)."""


def adjusted_estimates(data: pd.DataFrame, *, covariates: list[str], seed: int = 0,
                       unit: str = "customer_id", time: str = "month_index",
                       group: str = "join_month_index", outcome: str = "revenue",
                       active: str | None = "active", community: str | None = "community",
                       regression: RegressionAdjustment | None = None,
                       aipw: AIPW | None = None) -> dict[str, Any]:
    """``{"regression": EffectResult, "aipw": EffectResult, "ovb_benchmarks": DataFrame}``:
    the same as ``regression.fit(data, community=community, ...)``, ``aipw.fit(...)`` and
    :func:`roi.sensitivity.benchmarks.benchmark_partial_r2` (with the estimators' ``lookback``
    and ``min_history``) called one by one, from one design (see the module notes).

    ``regression`` and ``aipw`` default to the estimators' defaults; they are fitted in place
    (``result_`` and the other fitted attributes). ``community=None``: no per-community fits.
    """
    regression = RegressionAdjustment() if regression is None else regression
    aipw = AIPW() if aipw is None else aipw
    columns = {"unit": unit, "time": time, "group": group, "outcome": outcome,
               "active": active, "covariates": list(covariates)}
    if not _shareable(regression, aipw):
        return _separately(data, regression, aipw, community=community, seed=seed, **columns)
    check_group_column(data, group=group, estimator=type(regression).__name__)
    check_group_column(data, group=group, estimator=type(aipw).__name__)
    design = stacked_design(data, **columns, lookback=regression.lookback,
                            min_history=regression.min_history,
                            unit_columns=(community,) if community else ())
    if not design.cohorts:   # both refuse, with the reason
        return _separately(data, regression, aipw, community=community, seed=seed, **columns)
    communities = _Communities(design, community=community)
    with single_threaded_blas():
        pooled = _fit_stacks(design, regression, aipw, communities)
    scale = panel_scale(unit=unit, time=time, outcome=outcome)
    regression.result_ = regression._finish(design, pooled.rows, pooled.influence)
    regression.result_.scale = scale
    regression._pooled_checks(design, None if aipw.propensity_history else pooled.propensities)
    if community is not None:
        regression.result_.by_group = communities.regression(regression)
    try:
        aipw.result_ = aipw._finish(design, pooled.weighted)
    except NoComparison as exc:
        aipw.result_ = refused_lift(aipw.method, str(exc))
    else:
        aipw.result_.scale = scale
        if community is not None:
            aipw.result_.by_group = communities.aipw(aipw)
    return {"regression": regression.result_, "aipw": aipw.result_,
            "ovb_benchmarks": _benchmarks(data, design, seed=seed, **columns)}


def _shareable(regression: RegressionAdjustment, aipw: AIPW) -> bool:
    """Whether the two estimators fit the same design and outcome model (the run's do)."""
    return (type(aipw).doubly_robust and regression.history == aipw.history
            and regression.history in SHARED_MODES
            and (regression.lookback, regression.min_history)
            == (aipw.lookback, aipw.min_history))


def _separately(data: pd.DataFrame, regression: RegressionAdjustment, aipw: AIPW, *,
                community: str | None, seed: int, **columns: Any) -> dict[str, Any]:
    """The three computations one by one (each builds its design)."""
    from roi.sensitivity.benchmarks import benchmark_partial_r2

    return {"regression": regression.fit(data, community=community, **columns).result_,
            "aipw": aipw.fit(data, community=community, **columns).result_,
            "ovb_benchmarks": benchmark_partial_r2(
                data, **columns, lookback=regression.lookback,
                min_history=regression.min_history, seed=seed)}


@dataclass
class _Pooled:
    """What the pass over the cohorts keeps for the pooled fits."""

    rows: list[dict[str, Any]]           # the regression adjustment's per-cohort rows
    influence: UnitInfluence             # ... and unit influence sums
    weighted: Any                        # AIPW's _Cohorts
    propensities: list[tuple[np.ndarray, np.ndarray]]   # AIPW's logits, with the treated


def _fit_stacks(design: StackedDesign, regression: RegressionAdjustment, aipw: AIPW,
                communities: _Communities) -> _Pooled:
    """One pass over the cohorts: each stack and outcome model once, for every fit."""
    pooled = _Pooled([], UnitInfluence(len(design.unit_labels)), aipw._cohorts(design), [])
    for stack in design.stacks():
        fit = fit_outcome(stack, history=regression.history)
        pooled.rows.append(regression._add_stack(stack, pooled.influence, fit=fit))
        weighted = aipw._weigh(stack, residual=fit.residual)
        aipw._add_cohort(weighted, pooled.weighted)
        pooled.propensities.append((weighted.p, stack.treated))
        communities.add(stack, fit, trim=aipw.trim)
    return pooled


@dataclass
class _Community:
    """One community's sums over the cohorts where it has members."""

    name: Any
    units: int
    ra_influence: UnitInfluence = field(init=False)
    aipw_influence: UnitInfluence = field(init=False)
    residual_sum: float = 0.0
    n_obs: int = 0
    cells: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    separated: dict[str, int] = field(default_factory=dict)
    members: int = 0
    cohorts: int = 0

    def __post_init__(self) -> None:
        self.ra_influence = UnitInfluence(self.units)
        self.aipw_influence = UnitInfluence(self.units)


class _Communities:
    """The per-community fits (``by_community`` of the estimators: each community's members
    against all never-members), accumulated from the pooled stacks."""

    def __init__(self, design: StackedDesign, *, community: str | None) -> None:
        self.design = design
        never = np.isnan(design.cohort)
        names = pd.Series(design.unit_values[community] if community else
                          np.full(len(never), None))
        self.names = sorted(names[~never].dropna().unique())
        self.code = np.full(len(names), -1)
        for number, name in enumerate(self.names):
            self.code[(names == name).to_numpy()] = number
        self.state = [_Community(name, len(names)) for name in self.names]
        self.never = never

    def add(self, stack: CohortStack, fit: OutcomeFit, *, trim: float) -> None:
        """One cohort's terms for every community with members in it."""
        labels = np.where(stack.treated, self.code[stack.units], -1)
        present = [(self.state[k], np.flatnonzero(labels == k))
                   for k in np.unique(labels[labels >= 0])]
        if not present:
            return
        controls = np.flatnonzero(~stack.treated)
        for state, _ in present:
            state.cohorts += 1
        _add_regression(stack, fit, present, controls)
        _add_aipw(stack, fit, present, controls, labels=labels, trim=trim)

    def regression(self, estimator: RegressionAdjustment) -> dict[str, dict[str, Any]]:
        out = {}
        for state in self.state:
            if not state.cohorts:
                out[str(state.name)] = self._refused(state, estimator)
                continue
            estimate = state.residual_sum / state.n_obs
            se = state.ra_influence.se(estimate, n_obs=state.n_obs)
            out[str(state.name)] = _contract(estimator, estimate, se, Diagnostics())
        return out

    def aipw(self, estimator: AIPW) -> dict[str, dict[str, Any]]:
        out = {}
        for state in self.state:
            if not state.cohorts:
                out[str(state.name)] = self._refused(state, estimator)
                continue
            att, n_obs, valid = (np.concatenate([c[i] for c in state.cells]) for i in range(3))
            total = int(n_obs[valid].sum())
            if not total:
                out[str(state.name)] = _refusal(
                    f"{type(estimator).__name__}: no member-month is left with comparable "
                    "controls after trimming (no overlap)")
                continue
            estimate = float((att[valid] * n_obs[valid]).sum() / total)
            se = state.aipw_influence.se(estimate, n_obs=total)
            diagnostics = Diagnostics()
            _separation_warning(diagnostics, state.separated, members=state.members,
                                cohorts=state.cohorts)
            out[str(state.name)] = _contract(estimator, estimate, se, diagnostics)
        return out

    def _refused(self, state: _Community, estimator: Any) -> dict[str, Any]:
        """The separate fit's refusal (the community's design, built for its reason)."""
        units = self.never | (self.code == self.names.index(state.name))
        reason = no_comparison_reason(self.design.subset(units),
                                      estimator=type(estimator).__name__)
        return _refusal(reason)


def _refusal(reason: str) -> dict[str, Any]:
    return {"estimate": None, "low": None, "high": None, "interval": CI95,
            "converged": False, "refused": f"not estimated: {reason}"}


def _contract(estimator: Any, estimate: float, se: float,
              diagnostics: Diagnostics) -> dict[str, Any]:
    low, high = normal_interval(estimate, se, alpha=estimator.alpha)
    return EffectResult(method=estimator.method, estimand="community_revenue_lift",
                        estimate=float(estimate), low=low, high=high, interval=CI95,
                        diagnostics=diagnostics).to_contract()


def _add_regression(stack: CohortStack, fit: OutcomeFit,
                    present: list[tuple[_Community, np.ndarray]], controls: np.ndarray) -> None:
    """Regression adjustment's terms per community (``RegressionAdjustment._add_stack`` on the
    community's stack). Its outcome model is the pooled one; only its leverage on the treated
    sum differs: ``direction = bread @ sum over the members' cells of the row design``, and a
    control's nuisance term is ``-sum_t (d_t + x_i'd_x) r_it``, one product for all."""
    observed, residual = stack.observed, fit.residual
    months = observed.sum(axis=1)
    n_periods = observed.shape[1]
    ones = np.ones((len(months), 1))
    directions = np.column_stack([
        fit.bread @ _cross_products(observed[members].astype(float), np.ones((1, 1)),
                                    period_terms=ones[members],
                                    unit_terms=stack.covariates[members])
        for _, members in present])
    leverage = (residual @ directions[:n_periods]
                + (stack.covariates @ directions[n_periods:]) * row_sums(residual)[:, None])
    for column, (state, members) in enumerate(present):
        state.ra_influence.add(stack.units[members], term=residual[members].sum(axis=1),
                               count=months[members], seen=months[members] > 0)
        state.ra_influence.add(stack.units[controls], term=-leverage[controls, column],
                               count=np.zeros(len(controls)), seen=months[controls] > 0)
        state.n_obs += int(months[members].sum())
        state.residual_sum += float(residual[members][observed[members]].sum())


def _add_aipw(stack: CohortStack, fit: OutcomeFit, present: list[tuple[_Community, np.ndarray]],
              controls: np.ndarray, *, labels: np.ndarray, trim: float) -> None:
    """AIPW's cells and influence terms per community (``IPW._add_cohort`` on the community's
    stack): its own propensity logit, the pooled outcome residuals; the controls' weighted
    sums and influence products for all communities at once."""
    observed, residual = stack.observed.astype(float), fit.residual
    weights = np.zeros((len(labels), len(present)))
    kept_members, kept_controls = [], []
    for column, (state, members) in enumerate(present):
        rows = np.flatnonzero(~stack.treated | (labels == labels[members[0]]))
        p, separated = fit_propensity_rows(stack, rows)
        keep, treated = p <= 1 - trim, stack.treated[rows]
        kept_members.append(rows[treated & keep])
        kept_controls.append(rows[~treated & keep])
        weights[kept_controls[-1], column] = _odds(p[~treated & keep])
        state.members += len(members)
        if separated:
            state.separated[_label(stack.cohort)] = len(members)
    control_weight, control_sum = observed.T @ weights, residual.T @ weights
    scales, mean_scales, valid_cells = [], [], []
    for column, (state, _) in enumerate(present):
        kept = kept_members[column]
        n_obs = stack.observed[kept].sum(axis=0).astype(np.int64)
        weight = control_weight[:, column]
        with np.errstate(divide="ignore", invalid="ignore"):
            treated_mean = residual[kept].sum(axis=0) / n_obs
            control_mean = control_sum[:, column] / weight
        valid = (n_obs > 0) & (weight > 0)
        state.cells.append((treated_mean - control_mean, n_obs, valid))
        mean = np.where(valid, control_mean, 0.0)
        cells = valid.astype(float)
        scale = np.where(valid, n_obs / np.where(valid, weight, 1.0), 0.0)
        months = observed[kept] @ cells
        state.aipw_influence.add(stack.units[kept],
                                 term=residual[kept] @ cells - observed[kept] @ (cells * mean),
                                 count=months, seen=months > 0)
        scales.append(scale)
        mean_scales.append(scale * mean)
        valid_cells.append(cells)
    sums = residual @ np.column_stack(scales)
    means = observed @ np.column_stack([*mean_scales, *valid_cells])
    for column, (state, _) in enumerate(present):
        rows = kept_controls[column]
        weight = weights[rows, column]
        state.aipw_influence.add(stack.units[rows],
                                 term=-weight * (sums[rows, column] - means[rows, column]),
                                 count=np.zeros(len(rows)),
                                 seen=means[rows, len(present) + column] > 0)


def _benchmarks(data: pd.DataFrame, design: StackedDesign, *, seed: int, unit: str,
                covariates: list[str], **columns: Any) -> pd.DataFrame:
    """:func:`roi.sensitivity.benchmarks.benchmark_partial_r2` from the design restricted to
    its sample of customers, when that is the design the sample's rows would build: the same
    months (every one observed in the sample) and covariate coding (categorical, numeric or
    boolean columns: their dummies do not depend on the levels present)."""
    from roi.sensitivity.benchmarks import benchmark_partial_r2, benchmark_table, sampled_units

    keep = sampled_units(data[unit].unique(), seed=seed)
    sample = design
    if keep is not None:
        sample = design.subset(pd.Series(design.unit_labels).isin(keep).to_numpy())
    coded = all(isinstance(data[c].dtype, pd.CategoricalDtype)
                or pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c])
                for c in covariates)
    if not coded or not sample.observed.any(axis=0).all():
        return benchmark_partial_r2(data, unit=unit, covariates=covariates, **columns,
                                    lookback=design.lookback, min_history=design.min_history,
                                    seed=seed)
    return benchmark_table(sample, covariates=covariates)
