"""The ``community_revenue_lift`` block of ``results.json``: which estimators the run fits on
the customer-month panel, how, and the block they make (:func:`revenue_lift_block`).

``roi/run.py`` only sequences; this module decides the revenue-lift question's fits (naive for
contrast, staggered DiD additive and ratio form overall and per community, regression adjustment
and AIPW extended to all member-months, the Bayesian hierarchical lift, the join-month
adjustment) and assembles their block (preferred estimate, event studies, sensitivity).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from roi.data.attribution import RevenueAttribution
from roi.preference import Choice, choose_revenue
from roi.results import EffectResult, estimates_section, refused_effect
from roi.revenue_lift.aggregates_sql import (  # noqa: F401 (the run imports it from here)
    RevenueAggregates,
    revenue_aggregates_in_database,
)
from roi.revenue_lift.member_coverage import (
    base_period_covered,
    extend_to_all_member_months,
    history_covered,
)


def revenue_lift_estimates(panel, *, covariates: dict[str, str] | None = None, sampler=None,
                           seed: int = 0, attribution: RevenueAttribution | None = None,
                           sensitivity: dict[str, Any] | None = None,
                           cells: BayesCells | None = None,
                           aggregates: RevenueAggregates | None = None
                           ) -> dict[str, EffectResult]:
    """Naive (for contrast), staggered DiD (additive and ratio form), with covariates regression
    adjustment and AIPW, and with ``sampler`` settings the Bayesian hierarchical model.

    DiD compares each join cohort with never-members before and after joining, which removes
    self-selection on a stable trait; per community, members of that community against
    never-members. The ratio-form DiD and the Bayesian model fit ``organic_revenue`` (orders not
    attributed to a paid channel; see ``MULTIPLICATIVE_OUTCOME``). Regression adjustment and AIPW use each customer's own pre-join revenue as
    the baseline and cover only members with pre-join history (their diagnostics say how much).
    With ``attribution`` whose ``reason`` is set (paid spend recorded but no order attributed
    to a paid channel), the two ratio forms are refused with that reason instead of fitted.
    ``sensitivity``: ``horizon`` / ``max_leads`` of the DiD's parallel-trends sensitivity
    (:meth:`roi.config.SensitivitySettings.options`; kept in the DiD's
    ``checks["sensitivity_options"]`` for the overall block). ``cells``: the Bayesian model's
    cells computed in the database (:func:`bayesian_cells_in_database`); without them it
    builds its cells from ``panel``. ``aggregates``: the naive gap's, the DiDs' and the
    coverage sums computed in the database (:func:`revenue_aggregates_in_database`); with them
    those fits never read ``panel`` (then only the covariate fits do, and ``panel`` may be None
    without ``covariates`` when ``cells`` are given).
    """
    refuse_ratio = attribution.reason if attribution is not None else None
    source = _PanelFits(panel) if aggregates is None else _AggregateFits(aggregates)
    estimates = _naive_and_did(source, refuse_ratio=refuse_ratio, sensitivity=sensitivity)
    if covariates is not None:
        from roi.revenue_lift.adjusted import adjusted_estimates

        # Regression adjustment, AIPW (overall and per community) and the observed benchmarks
        # of their robustness value (roi.sensitivity.benchmarks) from one stacked design
        adjusted = adjusted_estimates(panel, covariates=list(covariates), seed=seed,
                                      active="active", community="community", **PANEL_COLUMNS)
        fits = {name: adjusted[name] for name in ("regression", "aipw")}
        # Both cover members with pre-join history only; the rest get the proportional rule
        active = panel.loc[panel["active"], [*PANEL_COLUMNS.values(), "community"]]
        covered = history_covered(active)
        for name, result in fits.items():
            estimates[name] = extend_to_all_member_months(result, active, covered)
        table = adjusted["ovb_benchmarks"]
        for name in fits:
            estimates[name].tables = {**estimates[name].tables, "ovb_benchmarks": table}
        level_trend_caveat(estimates)
    if sampler is not None:
        estimates["bayesian"] = (
            _refused_lift("bayesian", refuse_ratio, interval="94% HDI") if refuse_ratio
            else bayesian_revenue_lift(panel, covariates=covariates, sampler=sampler, seed=seed,
                                       cells=cells))
    return estimates


ROW_ESTIMATORS = ("regression", "aipw")
"""The estimates that read the customer-month panel's rows when the block has ``aggregates``
(above the run's row budget, a random sample of customers: ``roi.data.sample``)."""


def level_trend_caveat(estimates: dict[str, EffectResult]) -> None:
    """Warn beside regression adjustment and AIPW when the additive DiD's pre-trend test rejects.

    Their default outcome model (``history="additive"``) imputes a member's untreated revenue as
    its own pre-join mean plus the controls' change in levels: the additive DiD's parallel trends
    with a longer base. When members' revenue already moved differently in levels before joining
    (revenue that scales with a customer's level does), both share that bias. Measured on a
    1,000,000-customer world (truth 35.9 per member-month): additive DiD 42.3 (40.1-44.6), pre-
    trend p = 0.014; regression 39.3 (37.5-41.1), AIPW 39.2 (37.4-41.1); the ratio DiD the run
    prefers 36.7 (34.3-39.1). At 20,000 customers the same bias hides inside the intervals.
    """
    from roi.preference import PRETREND_LEVEL, pretrend_p

    did = estimates.get("did")
    p_value = pretrend_p(did) if did is not None and not did.refused else None
    if p_value is None or p_value >= PRETREND_LEVEL:
        return
    for name in ("regression", "aipw"):
        result = estimates.get(name)
        if result is not None and not result.refused:
            result.diagnostics.warn(
                f"{name}: its outcome model assumes members' revenue would have moved in "
                f"parallel in levels, as the additive DiD does, whose pre-trend test rejects "
                f"(p = {p_value:.3g}); this lift may share that bias (compare the ratio-form "
                "DiD and the Bayesian model).")


def _refused_lift(method: str, reason: str, *, interval: str) -> EffectResult:
    from roi.results import refused_effect
    from roi.revenue_lift.bayes_revenue import ESTIMAND, SCALE

    return refused_effect(method=method, estimand=ESTIMAND, reason=reason, interval=interval,
                          scale=SCALE)


# Paid-attributed orders go to customers whatever their own level (an ad converts whoever it
# reaches), so they are an additive, flighted part of revenue that breaks the multiplicative
# models' parallel trends: on 20,000-customer worlds the ratio DiD moved from 44.7 to 60.9 (seed
# 1) and from 20.5 to 33.6 (seed 2) when they were included, the Bayesian model from 49.9 to 63.6
# and from 32.2 to 40.3, the additive DiD by 1.6 (truth 35.5 and 34.9). The multiplicative
# models therefore fit organic revenue and assume membership does not change paid-attributed
# revenue (which the media-mix model credits to the channels).
MULTIPLICATIVE_OUTCOME = "organic_revenue"


PANEL_COLUMNS = {"unit": "customer_id", "time": "month_index", "group": "join_month_index",
                 "outcome": "revenue"}


class _PanelFits:
    """The naive gap, the DiDs and the coverage rule on the panel's active rows (a narrow
    copy, freed with this object before the Bayesian model builds its cells)."""

    def __init__(self, panel) -> None:
        # Only the columns the estimators read: the panel can be 13M rows
        self.active = panel.loc[panel["active"], [*PANEL_COLUMNS.values(),
                                                  MULTIPLICATIVE_OUTCOME, "community"]]
        self.communities = sorted(self.active["community"].dropna().unique())

    def naive(self) -> EffectResult:
        from roi.revenue_lift.naive_revenue import NaiveRevenueGap

        return NaiveRevenueGap().fit(self.active, group="community").result_

    def fit(self, make, *, outcome: str, community=None):
        rows = self.active
        if community is not None:   # that community's members against never-members
            rows = rows[rows["community"].isna() | (rows["community"] == community)]
        return make().fit(rows, **{**PANEL_COLUMNS, "outcome": outcome})

    def extend(self, result: EffectResult, *, anticipation: int = 0,
               first_month: int = 0) -> EffectResult:
        covered = base_period_covered(self.active, anticipation=anticipation)
        return extend_to_all_member_months(result, self.active, covered,
                                           first_month=first_month)


class _AggregateFits:
    """The same fits from :class:`RevenueAggregates` (sums computed in the database)."""

    def __init__(self, aggregates: RevenueAggregates) -> None:
        self.aggregates = aggregates
        self.communities = aggregates.communities

    def naive(self) -> EffectResult:
        from roi.revenue_lift.naive_revenue import NaiveRevenueGap

        return NaiveRevenueGap().fit_sums(self.aggregates.naive).result_

    def fit(self, make, *, outcome: str, community=None):
        from roi.revenue_lift.did_multiplicative import MultiplicativeDiD

        model = make()
        scope = None if community is None else str(community)
        sums = self.aggregates.did(outcome=outcome, community=scope,
                                   anticipation=model.anticipation)
        if isinstance(model, MultiplicativeDiD):
            return model.fit_aggregates(sums, group=PANEL_COLUMNS["group"],
                                        events=self.aggregates.member_events(scope))
        return model.fit_aggregates(sums, group=PANEL_COLUMNS["group"])

    def extend(self, result: EffectResult, *, anticipation: int = 0,
               first_month: int = 0) -> EffectResult:
        from roi.revenue_lift.member_coverage import extend_with_sums

        rule = "base" if anticipation == 0 else "base_before"
        return extend_with_sums(result, self.aggregates.coverage(rule,
                                                                 first_month=first_month))


def _naive_and_did(source, *, refuse_ratio: str | None = None,
                   sensitivity: dict[str, Any] | None = None) -> dict[str, EffectResult]:
    """The naive gap and the two DiDs, overall and per community, from ``source``: the
    panel (a DataFrame), its active rows (:class:`_PanelFits`), or sums computed in the
    database (:class:`_AggregateFits`)."""
    from roi.revenue_lift.did import StaggeredDiD
    from roi.revenue_lift.did_multiplicative import MultiplicativeDiD

    if not isinstance(source, _PanelFits | _AggregateFits):
        source = _PanelFits(source)

    naive = source.naive()
    # Member-month weights: the estimand averages over member-months, not over cohorts.
    variants = {"did": lambda: StaggeredDiD(control_group="never_treated",
                                            weights="member_months"),
                "did_multiplicative": lambda: MultiplicativeDiD()}
    fitted = {}
    for name, make in variants.items():
        if name == "did_multiplicative" and refuse_ratio:
            fitted[name] = _refused_lift(name, refuse_ratio, interval="95% CI")
            continue
        outcome = MULTIPLICATIVE_OUTCOME if name != "did" else PANEL_COLUMNS["outcome"]
        fitted[name] = _pooled_fit(partial(source.fit, make, outcome=outcome), method=name)
        blocks: dict[str, Any] | None = {} if name == "did" else None
        dynamics: dict[str, Any] = {}   # per-community event studies (the notebooks plot them)
        for community in source.communities:
            fitted[name].by_group[str(community)] = _community_fit(
                partial(source.fit, make, outcome=outcome, community=community),
                sensitivity=blocks, key=str(community), dynamics=dynamics,
                options=sensitivity)
        if dynamics:
            fitted[name].tables["dynamic_by_community"] = dynamics
        if name == "did":   # read by roi.sensitivity.results (the overall block)
            fitted[name].diagnostics.checks["sensitivity_options"] = dict(sensitivity or {})
        if blocks:  # read by roi.sensitivity.results (community_revenue_lift.sensitivity)
            import pandas as pd

            fitted[name].tables["sensitivity_by_community"] = pd.DataFrame(
                [{"community": k, **v} for k, v in blocks.items()])
    # DiD covers members with a whole month before joining; the rest get the proportional rule
    fitted["did"] = source.extend(fitted["did"])
    adjusted = _join_month_adjustment(fitted["did"], source)
    return {"naive": naive, **fitted, **({JOIN_ADJUSTED: adjusted} if adjusted else {})}


JOIN_ADJUSTED = "did_join_month_adjusted"
"""The DiD without the join month (issue 17), in ``estimates`` only when a spike is found."""


def _join_month_adjustment(did: EffectResult,
                           source: _PanelFits | _AggregateFits) -> EffectResult | None:
    """Fit the join-month-adjusted DiD, keep the contract block in
    ``did.tables["join_month_adjusted"]``; when joining follows purchases (a join-month
    spike), also per community, and return it (the bottom line then uses it)."""
    from roi.revenue_lift.did import StaggeredDiD
    from roi.revenue_lift.join_month import join_month_adjusted

    def make() -> StaggeredDiD:
        return StaggeredDiD(control_group="never_treated", weights="member_months",
                            anticipation=1, exclude_join_month=True)

    outcome = PANEL_COLUMNS["outcome"]
    adjusted = _pooled_fit(partial(source.fit, make, outcome=outcome), method=JOIN_ADJUSTED)
    adjusted.method = JOIN_ADJUSTED
    # Like the DiD it adjusts, from the member-months it covers to all (from the month after)
    block = join_month_adjusted(did, source.extend(adjusted, anticipation=1, first_month=1))
    did.tables["join_month_adjusted"] = block
    if not block["detected"]:
        return None
    dynamics: dict[str, Any] = {}   # per-community event studies (the notebooks plot them)
    for community in source.communities:
        adjusted.by_group[str(community)] = _community_fit(
            partial(source.fit, make, outcome=outcome, community=community),
            key=str(community), dynamics=dynamics)
    if dynamics:
        adjusted.tables["dynamic_by_community"] = dynamics
    return source.extend(adjusted, anticipation=1, first_month=1)


def choose_revenue_lift(revenue: dict[str, EffectResult]) -> Choice:
    """The preferred lift (:mod:`roi.preference`), except that when joining follows purchases
    the join-month-adjusted DiD is used (docs/CONTRACT.md section 4, join month)."""
    from roi.preference import usable

    adjusted = revenue.get(JOIN_ADJUSTED)
    if adjusted is not None and usable(adjusted):
        return Choice(JOIN_ADJUSTED, f"{JOIN_ADJUSTED} is used because the event study spikes "
                      "in the join month (customers join after a purchase, so the join month's "
                      "revenue caused the joining and the other estimators count it as effect); "
                      "it averages the lift from the month after joining.")
    return choose_revenue(revenue)


def _join_month_block(revenue: dict[str, EffectResult]) -> dict[str, Any]:
    """``community_revenue_lift.join_month_adjusted``, on every run (null numbers and
    ``detected`` false when no DiD was fitted)."""
    from roi.revenue_lift.join_month import RULE

    did = revenue.get("did")
    block = None if did is None else did.tables.get("join_month_adjusted")
    return block or {"estimate": None, "low": None, "high": None, "interval": "95% CI",
                     "rule": RULE, "detected": False}


BAYES_COLUMNS = {"unit": "customer_id", "time": "month_index", "group": "join_month_index",
                 "outcome": MULTIPLICATIVE_OUTCOME, "community": "community", "active": "active"}


def bayes_keys(covariates: dict[str, str] | None) -> list[str]:
    """The Bayesian model's covariate cell keys: few and categorical (they remove churn bias,
    but every pattern multiplies the cells)."""
    return [c for c in ("segment", "plan") if covariates and c in covariates]


@dataclass(frozen=True)
class BayesCells:
    """The Bayesian revenue model's cells and member count, computed in the database."""

    cells: Any               # DataFrame: revenue_cells' table
    n_treated: int           # customers with an active member month


def bayesian_cells_in_database(dataset, *, sampler,
                               attribution: RevenueAttribution | None = None
                               ) -> BayesCells | None:
    """The cells :func:`bayesian_revenue_lift` fits, from one ``GROUP BY`` over the data
    layer's panel inside the database, or one per slice of customers added up
    (:mod:`roi.revenue_lift.cells_sql`; equal to the cells of the panel in memory), and its
    member count; None when the model is not fitted (no
    ``sampler`` settings, or the ratio forms are refused for ``attribution``'s reason).

    The run calls it in its "aggregate in database" step, before the database's memory is
    released: what comes back grows with the calendar and the patterns, not with customers.
    """
    if sampler is None or (attribution is not None and attribution.reason):
        return None
    from roi.data.sample import customer_slices
    from roi.revenue_lift import aggregates_sql
    from roi.revenue_lift.bayes_revenue import BayesianHierarchicalLift
    from roi.revenue_lift.cells_sql import member_units_sql, revenue_cells_sql

    # Above ROWS_PER_SLICE panel rows (embedded DuckDB), slices of customers: each slice's join
    # with its own monthly revenue fits the memory cap; the cells and member counts add up
    slices = customer_slices(dataset, max_panel_rows=aggregates_sql.ROWS_PER_SLICE)
    panels = [bayes_panel(part) for part in slices]
    cells = revenue_cells_sql(dataset.engine, panels, covariates=bayes_keys(dataset.covariates),
                              kinds=dataset.covariates,
                              numeric_bins=BayesianHierarchicalLift().numeric_bins,
                              first="first_month", last="last_month", **BAYES_COLUMNS)
    members = sum(member_units_sql(dataset.engine, panel, unit="customer_key",
                                   time=BAYES_COLUMNS["time"], group=BAYES_COLUMNS["group"],
                                   active=BAYES_COLUMNS["active"]) for panel in panels)
    return BayesCells(cells=cells, n_treated=members)


def bayes_panel(dataset) -> Any:
    """The data layer's panel statement (a subquery) with each customer's integer
    ``customer_key`` and first and last month in the panel (``first_month``, ``last_month``).

    The panel has one row per calendar month from ``first_month_index`` to ``end_month_index``
    (:func:`roi.data.panel.panel_select`'s calendar join), so a customer's first and last rows
    are those bounds clipped to the calendar: per-customer columns, where computing them from
    the rows took a window over the whole panel (a spilling sort at 10M customers).
    """
    import sqlalchemy as sa

    from roi.data.panel import panel_select
    from roi.data.sql_parts import complete_months

    life = dataset.tables["life"]   # the life panel_select joins (a slice's own)
    months = complete_months(dataset.start, dataset.end)
    low, high = (sa.literal(m, sa.Integer) for m in (months[0][0], months[-1][0]))
    return (panel_select(dataset).order_by(None)
            .add_columns(life.c.customer_key,
                         sa.func.greatest(life.c.first_month_index, low).label("first_month"),
                         sa.func.least(life.c.end_month_index, high).label("last_month"))
            .subquery("panel"))


def bayesian_revenue_lift(panel, *, covariates: dict[str, str] | None, sampler,
                          seed: int, cells: BayesCells | None = None) -> EffectResult:
    """The hierarchical model on cells (join cohort x first-seen month x last-seen month x
    community x segment and plan x month): from ``cells`` computed in the database when given,
    else built from ``panel`` (the whole panel: each customer's first row is their first-seen
    month, and only active rows are summed)."""
    from roi.revenue_lift.bayes_revenue import BayesianHierarchicalLift

    model = BayesianHierarchicalLift(
        sampler=sampler.backend, draws=sampler.draws, tune=sampler.tune, chains=sampler.chains,
        random_seed=seed)
    if cells is not None:
        return model.fit_cells(cells.cells, n_treated=cells.n_treated,
                               group=BAYES_COLUMNS["group"]).result_
    return model.fit(panel, covariates=bayes_keys(covariates), **BAYES_COLUMNS).result_


def _pooled_fit(fit, *, method: str) -> EffectResult:
    """The DiD over every community (``fit()`` returns the fitted estimator); a fit that cannot
    estimate (every member joined before the window, no non-member to compare with, one
    customer) is a refused result with its cause, named ``method``, and the run goes on and
    says why."""
    result = fit().result_
    result.method = method
    if result.refused:
        return refused_effect(method=method, estimand=result.estimand,
                              reason=_in_run_terms(result.refused), interval=result.interval,
                              scale=result.scale)
    return result


def _in_run_terms(cause: str) -> str:
    """A DiD refusal in the run's words (members, joining, the window), the estimator's own
    wording (units, groups, periods) kept after it."""
    return ("no member can be compared before and after joining (every member joined before "
            f"the window began, or there is no non-member to compare with); {cause}")


def _community_fit(fit, *, sensitivity: dict[str, Any] | None = None, key: str = "",
                   dynamics: dict[str, Any] | None = None,
                   options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One community's DiD entry, or a refused entry (null numbers and the reason) when the
    community cannot be estimated, e.g. its only members joined before the window began.
    With ``sensitivity``, its parallel-trends sensitivity goes to ``sensitivity[key]``; with
    ``dynamics``, its event-time table (``tables["dynamic"]``) to ``dynamics[key]``;
    ``fit()`` returns the fitted estimator."""
    from roi.sensitivity.results import parallel_trends_block

    result = fit().result_
    if result.refused:
        return {"estimate": None, "low": None, "high": None, "interval": "95% CI",
                "converged": False, "refused": _in_run_terms(result.refused)}
    if dynamics is not None and result.tables.get("dynamic") is not None:
        dynamics[key] = result.tables["dynamic"]
    block = parallel_trends_block(result, **(options or {})) if sensitivity is not None \
        else None
    if block is not None and result.diagnostics.converged:
        sensitivity[key] = block
    entry = result.to_contract()
    if result.diagnostics.warnings and not result.diagnostics.converged:
        entry["refused"] = result.diagnostics.warnings[-1]
    return entry


def _event_study(revenue: dict[str, EffectResult]) -> dict[str, Any] | None:
    """Effect by months since joining (negative months are the pre-trend placebo), from the
    first estimator in preference order that has an event-time table."""
    studies = _event_studies(revenue)
    for method in ("did_multiplicative", "did"):
        if method in studies:
            return {k: v for k, v in studies[method].items() if k != "by_community"}
    return None


def _event_studies(revenue: dict[str, EffectResult]) -> dict[str, Any]:
    """Every DiD's event study, pooled and per community (``event_studies``, read by the
    notebooks' lift explorer so that it never refits)."""
    def points(table) -> list[dict[str, Any]]:
        table = table.rename(columns={"att": "estimate"})
        return table[["e", "estimate", "low", "high", "n_treated"]].to_dict(orient="records")

    studies = {}
    for method in ("did_multiplicative", "did", JOIN_ADJUSTED):
        result = revenue.get(method)
        table = None if result is None else result.tables.get("dynamic")
        if table is not None and len(table):
            by_community = result.tables.get("dynamic_by_community") or {}
            studies[method] = {"method": method, "interval": result.interval,
                               "points": points(table),
                               "by_community": {k: points(v) for k, v in by_community.items()
                                                if len(v)}}
    return studies


def member_months(panel=None, *, aggregates: RevenueAggregates | None = None) -> int:
    """Active member-months: from ``aggregates`` when given (all customers), else the panel's
    ``(member & active).sum()``."""
    if aggregates is not None:
        return aggregates.member_months()
    return int((panel["member"] & panel["active"]).sum())


def member_months_by_community(panel=None, *,
                               aggregates: RevenueAggregates | None = None) -> dict[str, int]:
    """Active member-months per community: what a per-member-month lift is multiplied by
    (from ``aggregates`` when given)."""
    if aggregates is not None:
        return aggregates.member_months_by_community()
    rows = panel[panel["member"] & panel["active"]]
    sizes = rows.groupby("community", observed=True).size()
    return {str(k): int(v) for k, v in sizes.items() if v > 0}


def revenue_lift_block(revenue: dict[str, EffectResult], *, member_months: int,
                       member_months_by_community: dict[str, int] | None = None
                       ) -> tuple[dict[str, Any], list[str]]:
    """``community_revenue_lift`` (preferred estimate, every estimate overall and per community,
    event studies, sensitivity, the join-month block) and the run notes it raises."""
    from roi.sensitivity.results import revenue_lift_sensitivity

    section = estimates_section(revenue, choice=choose_revenue_lift(revenue))
    section.setdefault("by_community", {})
    section["member_months"] = member_months
    section["member_months_by_community"] = member_months_by_community or {}
    section["event_study"] = _event_study(revenue)
    section["event_studies"] = _event_studies(revenue)
    # Every estimator's per-community entries (``by_community`` holds the preferred one's only)
    section["estimates_by_community"] = {n: r.by_group for n, r in revenue.items()}
    # How strong a violation of each estimate's assumption would have to be (issue 17)
    section["sensitivity"] = revenue_lift_sensitivity(revenue)
    notes = []
    section["join_month_adjusted"] = _join_month_block(revenue)
    if section["join_month_adjusted"]["detected"]:
        from roi.revenue_lift.join_month import warning_text

        notes.append(warning_text(section["join_month_adjusted"]))
    return section, notes
