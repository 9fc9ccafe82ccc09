"""Staggered difference-in-differences (Callaway & Sant'Anna 2021): community revenue lift.

Customers join the community in different months (cohorts ``g``). For every cohort and period
``(g, t)`` the estimator compares the cohort's change in outcome since a pre-join base period
with the same change among controls (never-members, or also customers who have not joined
*yet*), giving a group-time ATT. These are averaged into the contract's estimand, the average
effect per member-month (``simple``), an event study by months since joining (``dynamic``,
placebo months before joining included) and per-cohort effects (``group``). Two-way
fixed-effects regression is not used: with staggered joins and effects that grow with
membership it compares late joiners with early joiners and is biased (see
``tests/test_did.py``).

Inference matches R ``did`` (``att_gt(..., bstrap = FALSE)`` then ``aggte``): analytic
influence functions, clustered by unit, including the term for estimating the cohort-size
weights. R's point estimates and standard errors are reproduced on ``mpdta`` (tests). One
deliberate difference: for the overall *group* aggregation R's ``aggte`` builds the weight term
from the first entries of its group-time cohort vector instead of the cohort list (an indexing
slip, anti-conservative in general); we use the cohorts themselves. On ``mpdta`` that moves
the group SE from 0.01242 (R's code path, reproduced here) to 0.01245 (as in moderndid).
Pointwise intervals only (no bootstrap uniform bands).

Unbalanced panels (customers enter and churn): each ``(g, t)`` comparison uses the units
observed in both its base period and ``t``; a unit missing either period simply does not enter
that comparison. (R ``did`` instead balances the panel or switches to repeated cross-sections;
on a balanced panel the three agree.)

Weights. R's ``simple`` and event-time averages weight each cell by its cohort's size, which on
an unbalanced panel is not the contract's estimand (average over member-months): churn thins
the late cells of early cohorts, where the lift has grown, and cohort-size weights still count
every customer who ever joined. ``weights="member_months"`` weights each cell by the treated
units observed in it (``group_time_.n_treated``) and per cohort over its periods the same way;
the influence function carries the term for estimating those counts (each unit's cell
memberships, see :mod:`roi.revenue_lift._did_influence`). On a balanced panel both weightings, and
their standard errors, are identical (so ``mpdta`` is reproduced with either).

Pre-trend test. R's cell-level Wald test (``pretrend_``) is kept for reproduction; the warning
uses the event-time test (``pretrend_event_``) over leads with at least
:data:`PRETREND_MIN_TREATED` treated unit-periods. On 60 simulated customer worlds where
parallel trends hold by construction, the event-time test over all leads rejected 25-30% at
5% (the earliest leads rest on a handful of customers, whose analytic SEs are far too small);
without those leads 7-8%.

``scale="multiplicative"`` assumes parallel trends in logs of *means* (Poisson-style), the
natural assumption for revenue whose level differs a lot between customers: the counterfactual
of cohort ``g`` at ``t`` is its base mean times the controls' growth ``E[Y_t|C] / E[Y_base|C]``.
The ATT is still reported in currency per treated unit-period (actual minus counterfactual
mean, i.e. ratio x counterfactual); its standard error is the delta-method influence function.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> units, periods = np.arange(400), np.arange(1, 7)
>>> panel = pd.DataFrame([(u, t) for u in units for t in periods], columns=["id", "month"])
>>> panel["joined"] = np.where(panel["id"] % 3 == 0, 4, 0)
>>> member = (panel["joined"] > 0) & (panel["month"] >= panel["joined"])
>>> panel["revenue"] = 10 + panel["id"] % 7 + 0.5 * panel["month"] + 2.0 * member
>>> panel["revenue"] += rng.normal(0, 0.1, len(panel))
>>> model = StaggeredDiD().fit(panel, unit="id", time="month", group="joined",
...                            outcome="revenue")
>>> round(model.result_.estimate, 1), model.result_.method
(2.0, 'did')
>>> model.dynamic_[["e", "att"]].round(1).to_dict("list")["e"]
[-2, -1, 0, 1, 2]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal, NamedTuple, Self

import numpy as np
import pandas as pd

from roi.results import Diagnostics, EffectResult, refused_effect
from roi.revenue_lift._did_aggregate import (
    cell_forms,
    equal_weighted,
    event_pretrend_wald,
    interval_table,
    member_month_weighted,
    nan_form,
    pretrend_wald,
    share_weighted,
)
from roi.revenue_lift._did_cells import (
    CellEstimates,
    Cells,
    control_mask,
    estimate_cells,
    group_time_cells,
)
from roi.revenue_lift._did_influence import (
    InfluenceMoments,
    LinearForm,
    single_threaded_blas,
)
from roi.revenue_lift._did_panel import NEVER, WidePanel, wide_panel
from roi.revenue_lift._did_stats import (
    DiDAggregates,
    PatternStats,
    cross_moments,
    moments_from_stats,
)
from roi.revenue_lift.panel_input import check_group_column, panel_scale

ControlGroup = Literal["never_treated", "not_yet_treated"]
BasePeriod = Literal["varying", "universal"]
Scale = Literal["additive", "multiplicative"]
Weights = Literal["cohort_size", "member_months"]
Averager = Callable[[np.ndarray], LinearForm]
PRETREND_LEVEL = 0.05
PRETREND_MIN_TREATED = 30
"""Fewest treated unit-periods for a lead to enter the event-time pre-trend test; below it
the analytic SEs of skewed revenue are unreliable (see ``event_pretrend_wald``)."""


class NoTreatedUnits(ValueError):
    """No cohort with a pre-period and a comparison group in the data (e.g. every member joined
    before the window began): the design cannot identify an ATT. ``fit`` no longer raises it
    (it returns a refused ``result_``, as every estimator does); kept so that callers written
    against it still import."""


def no_treated_reason(panel: WidePanel | DiDAggregates, *, group: str) -> str:
    """Why no treated unit can be compared: what the ``group`` column held and what was left
    out (a 0/1 flag in ``group`` makes every treated unit "treated from the first period")."""
    dropped = panel.dropped
    if not len(panel.periods):
        return f"the data have no rows (column {group!r}: no unit to compare)"
    at_start = dropped.get("units_treated_from_first_period", 0)
    reason = f"no treated unit with a period before its first treated period in column {group!r}"
    if at_start:
        return (f"{reason}: {at_start} treated unit(s) are treated from the first period on "
                f"(group = {_plain(panel.periods[0])!r}, the first period), so none has a pre-period; "
                "group must be the first treated period (0, NaN or after the last period = "
                "never treated), not a 0/1 treatment flag")
    left_out = {k: v for k, v in dropped.items() if v and k != "rows_without_outcome"}
    if left_out:
        return f"{reason} (left out: {left_out})"
    return (f"{reason}: every unit is never treated (group 0, NaN or after the last period "
            f"{_plain(panel.periods[-1])!r})" if len(panel.periods) else reason)


def _plain(value: object) -> object:
    """A numpy scalar as the Python number it holds (for messages: ``1``, not ``np.int64(1)``)."""
    return value.item() if isinstance(value, np.generic) else value


class FitParts(NamedTuple):
    """What a fit keeps beyond its tables: cells, their estimates and influence forms, and the
    influence moments (for further averages such as :mod:`roi.revenue_lift.did_multiplicative`'s)."""

    cells: Cells
    estimates: CellEstimates
    forms: list[LinearForm]
    moments: InfluenceMoments


class StaggeredDiD:
    """Callaway & Sant'Anna (2021) staggered DiD on a tidy long panel, scikit-learn style.

    Parameters
    ----------
    control_group : {"never_treated", "not_yet_treated"}
        Controls of cell ``(g, t)``: never-treated units only, or also units first treated
        after ``max(t, base) + anticipation``. Without never-treated units,
        ``not_yet_treated`` drops the periods from the last cohort's start on (as R does).
    base_period : {"varying", "universal"}
        Pre-period cells compare ``t`` with ``t - 1`` (``varying``, R's default) or every cell
        with ``g - 1 - anticipation`` (``universal``, whose reference cell is 0).
    anticipation : int
        Periods before ``g`` in which units may already react; the base period moves back.
    exclude_join_month : bool
        Leave the join period (``e = 0``) out of the effect: ``simple_``, ``group_``, the
        ``dynamic`` overall and ``result_`` average over treated periods from ``g + 1`` on.
        For customers who join *because* of a purchase, the join month's revenue caused the
        joining; with ``anticipation=1`` the month before joining (a purchase late in the
        month, a join early in the next) also stays out of the base period.
    scale : {"additive", "multiplicative"}
        Parallel trends in levels, or in logs of means (revenue); both report currency.
        :class:`roi.revenue_lift.did_multiplicative.MultiplicativeDiD` is the multiplicative one
        with a headline over all member-months.
    weights : {"cohort_size", "member_months"}
        Cell weights of the ``simple`` and event-time averages (and of the periods within a
        cohort): R's cohort sizes, or the treated units observed in each cell (the contract's
        average per member-month). Identical on a balanced panel.
    alpha : float
        1 - confidence level of the pointwise intervals.

    Attributes
    ----------
    group_time_ : DataFrame
        One row per cell: g, t, e (= t - g in periods), base_period, att, se, low, high,
        n_treated, n_control (units observed in t and base), counterfactual, att_ratio, post.
    simple_ : DataFrame
        One row: the average ATT over post-treatment cells weighted by cohort size, or by the
        treated units observed in each cell (``weights="member_months"``), with se, low, high
        and n_obs (member-months in the cells).
    dynamic_ : DataFrame
        Event study: e, att, se, low, high, n_treated (treated unit-periods at that event
        time); ``e < 0`` are placebo periods.
    dynamic_vcov_ : DataFrame
        Covariance of the event-time estimates of ``dynamic_`` (rows and columns indexed by
        ``e``), from the same influence functions; also ``result_.tables["dynamic_vcov"]``.
    group_ : DataFrame
        Per cohort: g, att, se, low, high, n_units, n_obs.
    overall_ : DataFrame
        Indexed by ``simple``, ``dynamic`` (mean of e >= 0) and ``group`` (cohort-size
        weighted mean of the cohort effects): att, se, low, high.
    pretrend_event_ : dict
        Joint Wald test of the event-time placebo effects (months before joining with at
        least ``PRETREND_MIN_TREATED`` treated unit-periods; ``leads_left_out`` counts the
        others): statistic, df, p_value. The diagnostics warn on it.
    pretrend_ : dict
        Joint Wald test that the placebo ATTs are 0: statistic, df, p_value.
    vcov_ : ndarray
        Covariance of the group-time ATTs, in the order of ``group_time_``.
    parts_ : FitParts
        Cells, cell estimates, their influence forms and the influence moments, for further
        averages with standard errors (used by ``MultiplicativeDiD``).
    result_ : EffectResult
        The ``simple`` estimate as the contract's ``community_revenue_lift`` (method ``did``).

    Examples
    --------
    >>> import pandas as pd
    >>> long = pd.DataFrame({"id": [1, 1, 1, 2, 2, 2, 3, 3, 3], "t": [1, 2, 3] * 3,
    ...                      "g": [3, 3, 3, 0, 0, 0, 0, 0, 0],
    ...                      "y": [1.0, 2.0, 5.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0]})
    >>> fit = StaggeredDiD().fit(long, unit="id", time="t", group="g", outcome="y")
    >>> fit.group_time_[["g", "t", "base_period", "att"]].to_dict("list")
    {'g': [3, 3], 't': [2, 3], 'base_period': [1, 2], 'att': [0.0, 2.0]}
    """

    method_name = "did"
    """Name of the method in ``results.json``."""

    def __init__(self, *, control_group: ControlGroup = "never_treated",
                 base_period: BasePeriod = "varying", anticipation: int = 0,
                 scale: Scale = "additive", weights: Weights = "cohort_size",
                 alpha: float = 0.05, exclude_join_month: bool = False) -> None:
        _require_choice(control_group, ("never_treated", "not_yet_treated"), "control_group")
        _require_choice(base_period, ("varying", "universal"), "base_period")
        _require_choice(scale, ("additive", "multiplicative"), "scale")
        _require_choice(weights, ("cohort_size", "member_months"), "weights")
        if int(anticipation) != anticipation or anticipation < 0:
            raise ValueError(f"anticipation must be a whole number >= 0, got {anticipation!r}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
        self.control_group, self.base_period = control_group, base_period
        self.anticipation, self.scale, self.alpha = int(anticipation), scale, alpha
        self.weights = weights
        self.exclude_join_month = bool(exclude_join_month)

    def _post(self, cells: Cells, estimates: CellEstimates) -> np.ndarray:
        """The cells averaged as effect: treated periods, from ``g + 1`` when the join period
        is excluded."""
        return estimates.valid & (cells.period >= cells.cohort + int(self.exclude_join_month))

    def fit(self, data: pd.DataFrame, *, outcome: str, unit: str, time: str, group: str,
            covariates: Sequence[str] | str | None = None) -> Self:
        """Estimate all group-time ATTs and their aggregations; returns ``self``.

        ``group`` holds the first treated period of the unit (constant within a unit) on the
        grid of ``time`` (a value between two periods maps to the next one); 0, NaN or a
        period after the last one means never treated
        (:func:`roi.revenue_lift.panel_input.never_treated`, the rule of every estimator).
        Without a treated unit that has a pre-period, ``result_`` is a refused result (the
        reason in ``result_.refused``). ``covariates`` must be empty: this is the unconditional
        estimator (regression adjustment and AIPW take covariates).
        """
        check_group_column(data, group=group, estimator=type(self).__name__)
        if covariates is not None and len(covariates):
            raise ValueError(f"{type(self).__name__}: covariates={covariates!r} given, but this "
                             "estimator assumes unconditional parallel trends and takes none; "
                             "use RegressionAdjustment or AIPW for covariates")
        panel = wide_panel(data, unit=unit, time=time, group=group, outcome=outcome,
                           anticipation=self.anticipation,
                           drop_last_cohort=self.control_group == "not_yet_treated")
        with single_threaded_blas():
            aggregates = DiDAggregates.from_wide(panel)
        del panel   # the fit reads only the sums per observation group
        self.fit_aggregates(aggregates, group=group)
        self.result_.scale = panel_scale(unit=unit, time=time, outcome=outcome)
        return self

    def fit_aggregates(self, aggregates: DiDAggregates, *, group: str = "group") -> StaggeredDiD:
        """Fit from the sums per cohort and observation pattern alone (what :meth:`fit` does
        after building them from the long table): the same results, from a ``GROUP BY`` in the
        database (:func:`roi.revenue_lift.did_sql.did_aggregates`) as from memory.

        ``group`` names the first-treated column in a refusal's reason.
        """
        cohort_codes = aggregates.cohort_codes
        treated = cohort_codes[cohort_codes != NEVER]
        if treated.size == 0:
            self.result_ = self._refused(no_treated_reason(aggregates, group=group))
            return self
        cells = group_time_cells(cohorts=treated, n_periods=len(aggregates.periods),
                                 base_period=self.base_period, anticipation=self.anticipation)
        with single_threaded_blas():
            estimates = self._estimate_cells(aggregates.stats, cells, cohort_codes)
            moments = moments_from_stats(aggregates.stats, cells, estimates)
            self._tabulate(aggregates, cells, estimates, moments, cohort_codes)
        self.result_ = self._effect_result(aggregates, cells, estimates)
        return self

    def _estimate_cells(self, stats: PatternStats, cells: Cells,
                        cohort_codes: np.ndarray) -> CellEstimates:
        controls = control_mask(cells, cohort_codes=cohort_codes,
                                control_group=self.control_group,
                                anticipation=self.anticipation)
        sums, counts = cross_moments(stats)
        return estimate_cells(cells, sums=sums, counts=counts, controls=controls,
                              treated_index=np.searchsorted(cohort_codes, cells.cohort),
                              n_units=stats.n_units, scale=self.scale)

    def _tabulate(self, panel: DiDAggregates, cells: Cells, estimates: CellEstimates,
                  moments: InfluenceMoments, cohort_codes: np.ndarray) -> None:
        cell_cohort = np.searchsorted(cohort_codes, cells.cohort)
        shares = moments.cohort_sizes / moments.n_units
        forms = cell_forms(estimates)
        self.parts_ = FitParts(cells, estimates, forms, moments)
        post = self._post(cells, estimates)
        over_cells, by_period = self._averagers(forms, moments, shares, cell_cohort)
        simple = over_cells(post)
        by_event = {int(e): over_cells(estimates.valid & (cells.event_time == e))
                    for e in np.unique(cells.event_time)}
        by_cohort = {int(g): by_period(post & (cells.cohort == g))
                     for g in np.unique(cells.cohort)}
        overall = {"simple": simple,
                   "dynamic": _dynamic_overall(by_event, first=int(self.exclude_join_month)),
                   "group": _group_overall(by_cohort, cohort_codes, shares)}
        self.vcov_ = moments.gram / moments.n_units**2
        self.group_time_ = self._group_time_table(panel, cells, estimates, forms, moments)
        self.overall_ = interval_table(list(overall.values()), moments, alpha=self.alpha)
        self.overall_.index = pd.Index(list(overall), name="aggregation")
        member_months = int(estimates.n_treated[post].sum())
        self.simple_ = self.overall_.loc[["simple"]].assign(n_obs=member_months)
        self.dynamic_ = self._event_table(by_event, cells, estimates, moments)
        # The event-time estimates' joint covariance (same influence functions), which the
        # parallel-trends sensitivity (roi.sensitivity.parallel_trends) needs, not just SEs.
        events = pd.Index(list(by_event), name="e")
        self.dynamic_vcov_ = pd.DataFrame(moments.covariance(list(by_event.values())),
                                          index=events, columns=events)
        self.group_ = self._cohort_table(by_cohort, panel, cells, estimates, moments, post)
        self.pretrend_ = pretrend_wald(cells, estimates, moments, anticipation=self.anticipation)
        self.pretrend_event_ = event_pretrend_wald(
            by_event, moments, anticipation=self.anticipation,
            n_treated=dict(zip(self.dynamic_["e"], self.dynamic_["n_treated"], strict=True)),
            min_treated=PRETREND_MIN_TREATED)

    def _averagers(self, forms: list[LinearForm], moments: InfluenceMoments,
                   shares: np.ndarray, cell_cohort: np.ndarray) -> tuple[Averager, Averager]:
        """Averages over a set of cells: across cohorts (simple, event time) and over the
        periods of one cohort. R: cohort-size weights and plain means; ``member_months``:
        treated units observed in each cell for both."""
        if self.weights == "member_months":
            return (partial(_member_month_cells, forms, moments=moments),) * 2
        return (partial(_share_weighted_cells, forms, shares=shares, cell_cohort=cell_cohort),
                partial(_equal_weighted_cells, forms))

    def _group_time_table(self, panel: DiDAggregates, cells: Cells, estimates: CellEstimates,
                          forms: list[LinearForm], moments: InfluenceMoments) -> pd.DataFrame:
        periods = panel.periods
        table = pd.DataFrame({"g": [panel.cohort_labels[int(c)] for c in cells.cohort],
                              "t": periods[cells.period], "e": cells.event_time,
                              "base_period": periods[cells.base]})
        table = pd.concat([table, interval_table(forms, moments, alpha=self.alpha)], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = estimates.att / estimates.counterfactual
        return table.assign(n_treated=estimates.n_treated, n_control=estimates.n_control,
                            counterfactual=estimates.counterfactual, att_ratio=ratio,
                            post=cells.period >= cells.cohort)

    def _event_table(self, by_event: dict[int, LinearForm], cells: Cells,
                     estimates: CellEstimates, moments: InfluenceMoments) -> pd.DataFrame:
        table = interval_table(list(by_event.values()), moments, alpha=self.alpha)
        table.insert(0, "e", list(by_event))
        counted = np.where(estimates.valid, estimates.n_treated, 0)
        table["n_treated"] = [int(counted[cells.event_time == e].sum()) for e in by_event]
        return table

    def _cohort_table(self, by_cohort: dict[int, LinearForm], panel: DiDAggregates, cells: Cells,
                      estimates: CellEstimates, moments: InfluenceMoments,
                      post: np.ndarray) -> pd.DataFrame:
        table = interval_table(list(by_cohort.values()), moments, alpha=self.alpha)
        table.insert(0, "g", [panel.cohort_labels[g] for g in by_cohort])
        table["n_units"] = [panel.units_in(np.array([g])) for g in by_cohort]
        table["n_obs"] = [int(estimates.n_treated[post & (cells.cohort == g)].sum())
                          for g in by_cohort]
        return table

    def _effect_result(self, panel: DiDAggregates, cells: Cells,
                       estimates: CellEstimates) -> EffectResult:
        simple = self.simple_.iloc[0]
        post = self._post(cells, estimates)
        members = panel.units_in(np.unique(cells.cohort[post]))
        tables = {"group_time": self.group_time_, "dynamic": self.dynamic_,
                  "dynamic_vcov": self.dynamic_vcov_, "group": self.group_,
                  "overall": self.overall_}
        return EffectResult(method=self.method_name, estimand="community_revenue_lift",
                            estimate=float(simple["att"]), low=float(simple["low"]),
                            high=float(simple["high"]), interval=self.interval_label,
                            scale="currency per member-month", n_treated=members,
                            n_obs=int(simple["n_obs"]), tables=tables,
                            diagnostics=self._diagnostics(panel, estimates))

    def _diagnostics(self, panel: DiDAggregates, estimates: CellEstimates) -> Diagnostics:
        no_controls = estimates.n_control == 0
        checks = {"pretrend": self.pretrend_, "pretrend_event": self.pretrend_event_,
                  "control_group": self.control_group,
                  "base_period": self.base_period, "anticipation": self.anticipation,
                  "exclude_join_month": self.exclude_join_month,
                  "scale": self.scale, "weights": self.weights, "n_units": panel.n_units,
                  "n_periods": len(panel.periods), "n_cells": len(estimates.att),
                  "cells_without_controls": int(no_controls.sum()),
                  "cells_not_estimable": int((~estimates.valid).sum()), "dropped": panel.dropped}
        diagnostics = Diagnostics(checks=checks)
        # The event-time test, not R's cell-level one: on customer panels the cell test is
        # singular or dominated by cells of a few customers, whose analytic SEs are far too
        # small (it rejected true parallel trends in simulated worlds); the event-time test
        # leaves out thin leads. R's test stays in ``checks`` (and gives the same verdict on
        # mpdta).
        pre = self.pretrend_event_
        if pre["p_value"] is not None and pre["p_value"] < PRETREND_LEVEL:
            diagnostics.warn(
                f"Pre-trend test rejects parallel trends at 5% (Wald {pre['statistic']:.2f}, "
                f"df {pre['df']}, p = {pre['p_value']:.3g}): members already differed "
                "before joining, so the lift may be biased.")
        elif pre["p_value"] is None:
            diagnostics.warn("No pre-trend test could be computed (no month before joining "
                             f"with {PRETREND_MIN_TREATED}+ comparable members): parallel "
                             "trends are unchecked.")
        if no_controls.all():
            # Refused, not just warned: a run must never prefer an estimator without a number.
            diagnostics.warn("No valid control units in any comparison (no never-members or "
                             "not-yet-members to compare with): no DiD estimate.")
            diagnostics.converged = False
            diagnostics.checks["refused"] = (
                "no valid control unit in any comparison: no never-treated unit (group 0, "
                "NaN or after the last period) and no not-yet-treated one to compare with")
        elif no_controls.any():
            diagnostics.warn(f"{int(no_controls.sum())} of {len(no_controls)} group-time "
                             "comparisons have no valid control units and are left out.")
        other = ~estimates.valid & ~no_controls
        if other.any():
            diagnostics.warn(f"{int(other.sum())} group-time comparisons are not estimable (no "
                             "treated unit observed in both periods, or a zero control mean "
                             "in the base period on the multiplicative scale) and are left out.")
        if panel.dropped.get("units_treated_from_first_period", 0):
            diagnostics.warn(f"{panel.dropped['units_treated_from_first_period']} units treated "
                             "from the first period on have no pre-period and are left out.")
        return diagnostics

    @property
    def interval_label(self) -> str:
        """``"95% CI"`` for ``alpha=0.05``."""
        return f"{100 * (1 - self.alpha):g}% CI"

    def _refused(self, reason: str) -> EffectResult:
        """The result of a fit that cannot estimate an effect; the tables stay empty."""
        self.group_time_ = self.dynamic_ = self.group_ = pd.DataFrame()
        self.overall_ = self.simple_ = pd.DataFrame()
        return refused_effect(method=self.method_name, estimand="community_revenue_lift",
                              reason=reason, interval=self.interval_label,
                              scale="currency per member-month")

    def summary(self) -> pd.DataFrame:
        """The aggregations (``simple``, ``dynamic``, ``group``) as a table with ``att``,
        ``se``, ``low``, ``high``; the settings, the pre-trend test and the warnings are in
        ``attrs`` and in :meth:`report`. A refused fit gives the one-row
        :meth:`EffectResult.summary`."""
        if self.result_.refused:
            return self.result_.summary()
        table = self.overall_.copy()
        table["interval"] = self.interval_label
        table.attrs.update(pretrend=self.pretrend_, warnings=list(
            self.result_.diagnostics.warnings))
        return table

    def report(self) -> str:
        """Plain-text report: settings, aggregations, pre-trend test, tables, warnings."""
        if self.result_.refused:
            return f"{type(self).__name__}: not estimated: {self.result_.refused}"
        checks = self.result_.diagnostics.checks
        pre = self.pretrend_
        lines = [f"Staggered DiD (Callaway & Sant'Anna 2021): controls {self.control_group}, "
                 f"base period {self.base_period}, anticipation {self.anticipation}, "
                 f"scale {self.scale}, weights {self.weights}",
                 f"units {checks['n_units']}, periods {checks['n_periods']}, "
                 f"cohorts {len(self.group_)}, member-months {self.result_.n_obs}",
                 "", f"Aggregated ATT ({self.interval_label}, pointwise):",
                 self.overall_.to_string(float_format="{:.4f}".format), "",
                 f"Pre-trend Wald test: statistic {_format(pre['statistic'], '.3f')}, "
                 f"df {pre['df']}, p-value {_format(pre['p_value'], '.4f')}", "", "Event study (e < 0: placebo):",
                 self.dynamic_.to_string(index=False, float_format="{:.4f}".format), "",
                 "Per cohort:", self.group_.to_string(index=False, float_format="{:.4f}".format),
                 "", f"Group-time ATTs: {len(self.group_time_)} rows in group_time_"]
        lines += [f"WARNING: {w}" for w in self.result_.diagnostics.warnings]
        return "\n".join(lines)


def _format(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _require_choice(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _share_weighted_cells(forms: list[LinearForm], keep: np.ndarray, *, shares: np.ndarray,
                          cell_cohort: np.ndarray) -> LinearForm:
    if not keep.any():
        return nan_form(len(forms), len(shares))
    chosen = [forms[k] for k in np.flatnonzero(keep)]
    return share_weighted(chosen, shares=shares[cell_cohort[keep]],
                          cohort_of_item=cell_cohort[keep])


def _member_month_cells(forms: list[LinearForm], keep: np.ndarray, *,
                        moments: InfluenceMoments) -> LinearForm:
    if not keep.any():
        return nan_form(len(forms), len(forms[0].cohort_terms))
    chosen = np.flatnonzero(keep)
    return member_month_weighted([forms[k] for k in chosen], counts=moments.cell_counts[chosen],
                                 cells=chosen, n_units=moments.n_units)


def _equal_weighted_cells(forms: list[LinearForm], keep: np.ndarray) -> LinearForm:
    if not keep.any():
        return nan_form(len(forms), len(forms[0].cohort_terms))
    return equal_weighted([forms[k] for k in np.flatnonzero(keep)])


def _dynamic_overall(by_event: dict[int, LinearForm], *, first: int = 0) -> LinearForm:
    """Mean of the event-time effects from e = ``first`` on (R's overall dynamic effect: 0)."""
    after = [form for e, form in by_event.items() if e >= first and np.isfinite(form.value)]
    if not after:
        first = next(iter(by_event.values()))
        return nan_form(len(first.cell_weights), len(first.cohort_terms))
    return equal_weighted(after)


def _group_overall(by_cohort: dict[int, LinearForm], cohort_codes: np.ndarray,
                   shares: np.ndarray) -> LinearForm:
    """Cohort-size weighted mean of cohort effects, with the weight-estimation term.

    The term uses each cohort's own indicator (R indexes its group-time vector here instead;
    see the module notes).
    """
    finite = {g: form for g, form in by_cohort.items() if np.isfinite(form.value)}
    if not finite:
        first = next(iter(by_cohort.values()))
        return nan_form(len(first.cell_weights), len(first.cohort_terms))
    index = np.searchsorted(cohort_codes, np.array(list(finite)))
    return share_weighted(list(finite.values()), shares=shares[index], cohort_of_item=index)
