"""The main job: source -> validated dataset -> aggregations -> models -> ``results.json``.

Examples
--------
>>> from roi.run import run_job
>>> results = run_job("data/sample", out="out")                # doctest: +SKIP
>>> results["data"]["customers"]                                 # doctest: +SKIP
3000
"""

from __future__ import annotations

import datetime as dt
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roi.config import RunConfig
from roi.data import Dataset, load_dataset
from roi.data.attribution import RevenueAttribution, revenue_attribution
from roi.data.source import release_memory
from roi.interrupts import handling_interrupts, raise_if_interrupted
from roi.outputs import OUTPUT_NAMES, staged_outputs, write_json
from roi.preference import Choice, choose_retention, choose_revenue
from roi.progress import Steps, progress_steps
from roi.redaction import redact_document
from roi.results import EffectResult, _jsonable
from roi.revenue_lift.member_coverage import (
    base_period_covered,
    extend_to_all_member_months,
    history_covered,
)

SCHEMA_VERSION = 1
STEPS = ["open source", "validate", "aggregate in database", "revenue lift", "retention lift",
         "paid media", "write results", "write reports"]


@dataclass
class RunOutputs:
    dataset: Dataset
    revenue: dict[str, EffectResult]
    retention: dict[str, EffectResult]
    results: dict[str, Any]
    reports: dict[str, Path]
    paid_media: EffectResult | None = None
    steps: Steps | None = None   # seconds and peak memory per step
    written: list[Path] = field(default_factory=list)   # the files this run wrote, in `out`
    notes: list[str] = field(default_factory=list)      # e.g. an earlier report.pdf left alone


def run_job(source: Any, *, out: str | Path, config: RunConfig | None = None,
            progress: bool = True, pdf: bool = True) -> dict[str, Any]:
    """Run everything and write ``out/results.json`` and the reports; returns the results."""
    return run_models(source, out=out, config=config, progress=progress, pdf=pdf).results


def run_models(source: Any, *, out: str | Path, config: RunConfig | None = None,
               progress: bool = True, pdf: bool = True) -> RunOutputs:
    from connectors import open_source

    config = config or RunConfig()
    # Outputs are staged inside ``out`` and moved into place together at the end; a signal at
    # any step (even one nutpie swallowed while sampling) stops the run before that move.
    with handling_interrupts(), staged_outputs(out) as staged, \
            progress_steps(STEPS, enabled=progress) as progress_bar:
        steps = _InterruptibleSteps(progress_bar)
        steps.start("open source")
        canonical = open_source(source, tables=config.source_tables or None,
                                columns=config.columns or None)
        steps.start("validate")
        dataset = load_dataset(canonical, config.data)
        _refuse_empty_window(dataset.report)
        steps.start("aggregate in database")
        panel = dataset.customer_month_panel()
        weekly = dataset.weekly_series()
        survival = dataset.survival_table()
        attribution = revenue_attribution(dataset)
        experiment = invitation_experiments(dataset, panel)   # reads the database: before release
        dataset.report["revenue_attribution"] = attribution.to_contract()
        release_memory(dataset.engine)   # the models run on these frames, not in the database
        steps.start("revenue lift")
        revenue = revenue_lift_estimates(panel, covariates=dataset.covariates,
                                         sampler=config.sampler.for_model("revenue"),
                                         seed=config.seed, attribution=attribution)
        steps.start("retention lift")
        retention, cox = retention_models(survival, covariates=dataset.covariates,
                                          sampler=config.sampler.for_model("retention"),
                                          seed=config.seed)
        raise_if_interrupted()    # the Bayesian survival model samples last
        money = retention_money(survival, panel, cox=cox, covariates=dataset.covariates,
                                revenue=revenue, seed=config.seed)
        curves = retention_curves(survival)
        steps.start("paid media")
        paid, media = paid_media_model(weekly, sampler=config.sampler.for_model("paid_media"),
                                       seed=config.seed,
                                       lift_tests=config.lift_tests)
        steps.start("write results")
        results = assemble_results(dataset=dataset, config=config, revenue=revenue,
                                   retention=retention, retention_money=money,
                                   retention_curves=curves,
                                   paid_media=paid, paid_media_result=media,
                                   member_months=int((panel["member"] & panel["active"]).sum()),
                                   member_months_by_community=_member_months_by_community(panel),
                                   community_costs=_community_costs(weekly),
                                   experiment=experiment)
        write_json(staged.path("results.json"), results)
        steps.start("write reports")
        reports = _write_reports(results, staged.folder, pdf=pdf)
        written = staged.commit()
    return RunOutputs(dataset=dataset, revenue=revenue, retention=retention, results=results,
                      reports={k: Path(out) / p.name for k, p in reports.items()},
                      paid_media=media, steps=progress_bar, written=written,
                      notes=_not_rewritten(Path(out), written))


def _refuse_empty_window(report: dict[str, Any]) -> None:
    """A data error (exit 2) when no order or no customer falls in the analysis window (e.g.
    ``[data] start``/``end`` outside the data): there is nothing to estimate."""
    from roi.data.errors import RoiError

    accounting = report.get("row_accounting", {})
    for table in ("orders", "customers"):
        counts = accounting.get(table, {})
        if counts.get("read") and counts.get("used") == 0:
            reasons = ", ".join(f"{reason}: {n:,}" for reason, n in
                                counts.get("excluded", {}).items())
            raise RoiError(f"{table}: none of the {counts['read']:,} rows falls in the analysis "
                           f"window {report.get('start')} to {report.get('end')} ({reasons}); "
                           "nothing to estimate (check [data] start and end)")


class _InterruptibleSteps:
    """The progress steps, checking before each step for a signal that a library swallowed
    (nutpie returns its draws so far on Ctrl-C instead of raising)."""

    def __init__(self, steps: Steps) -> None:
        self._steps = steps

    def start(self, name: str) -> None:
        raise_if_interrupted()
        self._steps.start(name)


def _not_rewritten(out: Path, written: list[Path]) -> list[str]:
    """Outputs in ``out`` from an earlier run that this run did not replace (``report.pdf``
    after ``--no-pdf``): left alone, never listed as this run's, and named in a note."""
    names = {p.name for p in written}
    return [f"{name} in {out} is from an earlier run; this run did not write it"
            for name in OUTPUT_NAMES if name not in names and (out / name).is_file()]


def invitation_experiments(dataset: Dataset, panel) -> dict[str, Any] | None:
    """The ``community_experiment`` block when the source has an ``invitations`` table
    (:mod:`roi.experiments`), else None."""
    if "invitations" not in dataset.tables:
        return None
    import sqlalchemy as sa

    from roi.data.source import fetch_frame
    from roi.experiments import community_experiment

    invitations = fetch_frame(dataset.engine, sa.select(dataset.tables["invitations"]))
    end_month = int(panel["month_index"].max()) if len(panel) else 0
    return community_experiment(panel, invitations, end_month=end_month)


def _member_months_by_community(panel) -> dict[str, int]:
    """Active member-months per community: what a per-member-month lift is multiplied by."""
    rows = panel[panel["member"] & panel["active"]]
    sizes = rows.groupby("community", observed=True).size()
    return {str(k): int(v) for k, v in sizes.items() if v > 0}


def _community_costs(weekly) -> dict[str, float]:
    """Community cost in the analysis window (complete weeks), per community: every community
    with a cost row (with or without members or activity), and 0 for active communities
    without one."""
    communities = [*weekly.cost.columns,
                   *(c for c in weekly.active_members.columns if c not in weekly.cost.columns)]
    totals = weekly.cost.reindex(columns=communities).fillna(0.0).sum()
    return {str(k): float(v) for k, v in totals.items()}


def _write_reports(results: dict[str, Any], out: Path, *, pdf: bool) -> dict[str, Path]:
    """HTML and Excel always; PDF when Chromium is installed (else a warning, not a failure)."""
    import sys

    from roi.reports import PdfUnavailableError, write_reports

    try:
        return write_reports(results, out, pdf=pdf)
    except PdfUnavailableError as exc:
        print(f"warning: report.pdf not written: {exc}", file=sys.stderr)
        return {name: out / f"report.{name}" for name in ("html", "xlsx")}


def revenue_lift_estimates(panel, *, covariates: dict[str, str] | None = None, sampler=None,
                           seed: int = 0, attribution: RevenueAttribution | None = None
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
    """
    refuse_ratio = attribution.reason if attribution is not None else None
    estimates = _naive_and_did(panel, refuse_ratio=refuse_ratio)
    if covariates is not None:
        from roi.revenue_lift.regression_adjustment import RegressionAdjustment
        from roi.revenue_lift.weighting import AIPW

        adjusted = {**PANEL_COLUMNS, "active": "active", "covariates": list(covariates)}
        fits = {"regression": RegressionAdjustment().fit(panel, community="community",
                                                         **adjusted).result_,
                "aipw": AIPW().fit(panel, community="community", **adjusted).result_}
        # Both cover members with pre-join history only; the rest get the proportional rule
        active = panel.loc[panel["active"], [*PANEL_COLUMNS.values(), "community"]]
        covered = history_covered(active)
        for name, result in fits.items():
            estimates[name] = extend_to_all_member_months(result, active, covered)
    if sampler is not None:
        estimates["bayesian"] = (
            _refused_lift("bayesian", refuse_ratio, interval="94% HDI") if refuse_ratio
            else bayesian_revenue_lift(panel, covariates=covariates, sampler=sampler, seed=seed))
    return estimates


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


def _naive_and_did(panel, *, refuse_ratio: str | None = None) -> dict[str, EffectResult]:
    """The naive gap and the two DiDs, overall and per community, on the active rows (a
    narrow copy, freed on return before the Bayesian model builds its cells)."""
    from roi.revenue_lift.did import StaggeredDiD
    from roi.revenue_lift.did_multiplicative import MultiplicativeDiD
    from roi.revenue_lift.naive_revenue import NaiveRevenueGap

    # Only the columns the estimators read: the panel can be 13M rows
    active = panel.loc[panel["active"], [*PANEL_COLUMNS.values(), MULTIPLICATIVE_OUTCOME,
                                         "community"]]
    naive = NaiveRevenueGap().fit(active, group="community").result_
    # Member-month weights: the estimand averages over member-months, not over cohorts.
    variants = {"did": lambda: StaggeredDiD(control_group="never_treated",
                                            weights="member_months"),
                "did_multiplicative": lambda: MultiplicativeDiD()}
    fitted = {}
    for name, make in variants.items():
        if name == "did_multiplicative" and refuse_ratio:
            fitted[name] = _refused_lift(name, refuse_ratio, interval="95% CI")
            continue
        own = ({**PANEL_COLUMNS, "outcome": MULTIPLICATIVE_OUTCOME} if name != "did"
               else PANEL_COLUMNS)
        fitted[name] = _pooled_fit(make, active, own, method=name)
        sensitivity: dict[str, Any] | None = {} if name == "did" else None
        dynamics: dict[str, Any] = {}   # per-community event studies (the notebooks plot them)
        for community in sorted(active["community"].dropna().unique()):
            rows = active[active["community"].isna() | (active["community"] == community)]
            fitted[name].by_group[str(community)] = _community_fit(
                make, rows, own, sensitivity=sensitivity, key=str(community), dynamics=dynamics)
        if dynamics:
            fitted[name].tables["dynamic_by_community"] = dynamics
        if sensitivity:  # read by roi.sensitivity.results (community_revenue_lift.sensitivity)
            import pandas as pd

            fitted[name].tables["sensitivity_by_community"] = pd.DataFrame(
                [{"community": k, **v} for k, v in sensitivity.items()])
    # DiD covers members with a whole month before joining; the rest get the proportional rule
    fitted["did"] = extend_to_all_member_months(fitted["did"], active,
                                                base_period_covered(active))
    adjusted = _join_month_adjustment(fitted["did"], active)
    return {"naive": naive, **fitted, **({JOIN_ADJUSTED: adjusted} if adjusted else {})}


JOIN_ADJUSTED = "did_join_month_adjusted"
"""The DiD without the join month (issue 17), in ``estimates`` only when a spike is found."""


def _join_month_adjustment(did: EffectResult, active) -> EffectResult | None:
    """Fit the join-month-adjusted DiD, keep the contract block in
    ``did.tables["join_month_adjusted"]``; when joining follows purchases (a join-month
    spike), also per community, and return it (the bottom line then uses it)."""
    from roi.revenue_lift.did import StaggeredDiD
    from roi.revenue_lift.join_month import join_month_adjusted

    def make() -> StaggeredDiD:
        return StaggeredDiD(control_group="never_treated", weights="member_months",
                            anticipation=1, exclude_join_month=True)

    adjusted = _pooled_fit(make, active, PANEL_COLUMNS, method=JOIN_ADJUSTED)
    adjusted.method = JOIN_ADJUSTED
    # Like the DiD it adjusts, from the member-months it covers to all (from the month after)
    covered = base_period_covered(active, anticipation=1)
    block = join_month_adjusted(did, extend_to_all_member_months(adjusted, active, covered,
                                                                 first_month=1))
    did.tables["join_month_adjusted"] = block
    if not block["detected"]:
        return None
    dynamics: dict[str, Any] = {}   # per-community event studies (the notebooks plot them)
    for community in sorted(active["community"].dropna().unique()):
        rows = active[active["community"].isna() | (active["community"] == community)]
        adjusted.by_group[str(community)] = _community_fit(make, rows, PANEL_COLUMNS,
                                                           key=str(community), dynamics=dynamics)
    if dynamics:
        adjusted.tables["dynamic_by_community"] = dynamics
    return extend_to_all_member_months(adjusted, active, covered, first_month=1)


def _choose_revenue(revenue: dict[str, EffectResult]) -> Choice:
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


def bayesian_revenue_lift(panel, *, covariates: dict[str, str] | None, sampler,
                          seed: int) -> EffectResult:
    """The hierarchical model on cells (join cohort x first-seen month x community x segment and
    plan x month). The whole panel goes in: each customer's first row is their first-seen month,
    and only active rows are summed."""
    from roi.revenue_lift.bayes_revenue import BayesianHierarchicalLift

    # Few categorical cell keys: they remove churn bias, but every pattern multiplies the cells.
    keys = [c for c in ("segment", "plan") if covariates and c in covariates]
    return BayesianHierarchicalLift(
        sampler=sampler.backend, draws=sampler.draws, tune=sampler.tune, chains=sampler.chains,
        random_seed=seed,
    ).fit(panel, unit="customer_id", time="month_index", group="join_month_index",
          outcome=MULTIPLICATIVE_OUTCOME, community="community", active="active",
          covariates=keys).result_


def _pooled_fit(make, rows, columns: dict[str, str], *, method: str) -> EffectResult:
    """The DiD over every community, or a refused result (null numbers, the reason in its
    warnings) when no member can be compared before and after joining (every member joined
    before the window, or there is one customer): the run goes on and says why."""
    from roi.results import Diagnostics
    from roi.revenue_lift.did import NoTreatedUnits

    try:
        return make().fit(rows, **columns).result_
    except NoTreatedUnits as exc:
        reason = (f"{method}: not estimated: no member can be compared before and after "
                  "joining (every member joined before the window began, or there is no "
                  "non-member to compare with)")
        nan = float("nan")
        return EffectResult(method=method, estimand="community_revenue_lift", estimate=nan,
                            low=nan, high=nan, interval="95% CI",
                            scale="currency per member-month",
                            diagnostics=Diagnostics(converged=False, warnings=[reason],
                                                    checks={"refused": str(exc)}))


def _community_fit(make, rows, columns: dict[str, str], *,
                   sensitivity: dict[str, Any] | None = None, key: str = "",
                   dynamics: dict[str, Any] | None = None) -> dict[str, Any]:
    """One community's DiD entry, or a refused entry (null numbers and the reason) when the
    community cannot be estimated, e.g. its only members joined before the window began.
    With ``sensitivity``, its parallel-trends sensitivity goes to ``sensitivity[key]``; with
    ``dynamics``, its event-time table (``tables["dynamic"]``) to ``dynamics[key]``."""
    from roi.revenue_lift.did import NoTreatedUnits
    from roi.sensitivity.results import parallel_trends_block

    try:
        result = make().fit(rows, **columns).result_
    except NoTreatedUnits as exc:
        return {"estimate": None, "low": None, "high": None, "interval": "95% CI",
                "converged": False, "refused": str(exc)}
    if dynamics is not None and result.tables.get("dynamic") is not None:
        dynamics[key] = result.tables["dynamic"]
    block = parallel_trends_block(result) if sensitivity is not None else None
    if block is not None and result.diagnostics.converged:
        sensitivity[key] = block
    entry = result.to_contract()
    if result.diagnostics.warnings and not result.diagnostics.converged:
        entry["refused"] = result.diagnostics.warnings[-1]
    return entry


def paid_media_model(weekly, *, sampler, seed: int,
                     lift_tests=()) -> tuple[dict[str, Any], Any]:
    """The Bayesian media-mix model on the weekly series: the ``paid_media`` block and its
    result; a spend-only block with a warning when no channel has spend to model."""
    from roi.paid_media import MediaMixModel

    if sampler is None:
        return _spend_only(weekly, "media-mix model not run ([sampler] models leaves out "
                           "paid_media)"), None
    try:
        mmm = MediaMixModel(sampler=sampler.backend, draws=sampler.draws, tune=sampler.tune,
                            chains=sampler.chains, seed=seed,
                            lift_tests=list(lift_tests) or None).fit(weekly)
    except ValueError as exc:
        return _spend_only(weekly, f"media-mix model not fitted: {exc}"), None
    return mmm.to_contract(), mmm.result_


def _spend_only(weekly, reason: str) -> dict[str, Any]:
    """The ``paid_media`` block without a model: spend per channel, no ROAS, and why."""
    spend = {channel: {"spend": float(weekly.spend[channel].sum()), "roas": None,
                       "marginal_roas": None} for channel in weekly.spend.columns}
    return {"channels": spend, "converged": False, "warnings": [reason]}


def retention_models(survival, *, covariates: dict[str, str], sampler=None,
                     seed: int = 0) -> tuple[dict[str, EffectResult], Any]:
    """Naive ever-member Cox (immortal-time biased, for contrast), time-varying Cox, and (with
    ``sampler`` settings) the Bayesian piecewise-exponential model on person-period cells;
    also returns the fitted time-varying Cox model, which the retention money reads."""
    from roi.retention.bayes_survival import BayesianPiecewiseSurvival
    from roi.retention.cox_naive import NaiveCox
    from roi.retention.cox_time_varying import CoxTimeVarying

    names = list(covariates)
    naive = NaiveCox().fit(survival, community="community").result_
    cox = CoxTimeVarying().fit(survival, covariates=names, community="community")
    estimates = {"naive": naive, "cox_time_varying": cox.result_}
    if sampler is not None:
        bayes = BayesianPiecewiseSurvival(
            sampler=sampler.backend, draws=sampler.draws, tune=sampler.tune,
            chains=sampler.chains, random_seed=seed,
        ).fit(survival, covariates=names, community="community")
        estimates["bayesian"] = bayes.result_
    return estimates, cox


def retention_money(survival, panel, *, cox, covariates: dict[str, str],
                    revenue: dict[str, EffectResult], seed: int) -> dict[str, Any]:
    """Extra retained customer-months caused by membership and their revenue (Cox hazards), net
    of the per-member-month revenue lift so nothing is counted twice."""
    from roi.retention.retention_value import retention_revenue

    method = _choose_revenue(revenue).method
    preferred = revenue.get(method) if method else None
    lift = ({k: v["estimate"] for k, v in preferred.by_group.items()} if preferred else None)
    money = retention_revenue(survival, panel, model=cox, covariates=list(covariates),
                              lift_att=lift, seed=seed)
    money.pop("value", None)
    return money


def retention_curves(survival) -> dict[str, Any]:
    """Landmark retention (members vs non-members alive at 3, 6, 12 months) at 6 and 12 months
    after the landmark, with 95% CIs, and the member minus non-member difference."""
    from roi.retention.survival_curves import RetentionCurves

    curves = RetentionCurves().fit(survival, community="community")
    columns = ["landmark_month", "group", "horizon_month", "customers", "retention", "low",
               "high", "interval"]
    pooled = ~curves.retention_["group"].str.startswith("member: ")
    return {"retention": curves.retention_.loc[pooled, columns].to_dict(orient="records"),
            "difference": curves.difference_.to_dict(orient="records"),
            "curves": monthly_curves(curves)}


def monthly_curves(curves) -> dict[str, Any]:
    """The landmark curves (per community too) read at whole months since the landmark: small
    enough for ``results.json`` and the same step function at every month (the horizons 6 and
    12 included), so a notebook draws them and reads retention without refitting."""
    from roi.retention.survival_curves import survival_at

    sizes = curves.retention_.groupby(["landmark_month", "group"])["customers"].first()
    points = []
    for (landmark, group), rows in curves.curves_.groupby(["landmark_month", "group"],
                                                           sort=True):
        months = range(int(rows["month"].max()) + 1)
        at = survival_at(rows.rename(columns={"day": "time"}).assign(greenwood=0.0),
                         [m * curves.days_per_month for m in months])
        customers = int(sizes.get((landmark, group), 0))
        points += [{"landmark_month": landmark, "group": group, "month": m,
                    "customers": customers, "survival": s, "low": lo, "high": hi}
                   for m, s, lo, hi in zip(months, at["survival"], at["low"], at["high"],
                                           strict=True)]
    return {"interval": "95% CI", "points": points}


def _section(estimates: dict[str, EffectResult], *, choice: Choice) -> dict:
    """An ``estimates`` block with the preferred method (chosen by evidence, see
    :mod:`roi.preference`) and the sentence that says why."""
    section: dict[str, Any] = {
        "preferred": choice.method,
        "preferred_reason": choice.reason,
        "estimates": {name: r.to_contract() for name, r in estimates.items()},
    }
    if choice.method is not None:
        section["by_community"] = estimates[choice.method].by_group
    return section


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


def assemble_results(*, dataset: Dataset, config: RunConfig, revenue: dict[str, EffectResult],
                     retention: dict[str, EffectResult], paid_media: dict[str, Any],
                     member_months: int, paid_media_result: EffectResult | None = None,
                     member_months_by_community: dict[str, int] | None = None,
                     community_costs: dict[str, float] | None = None,
                     retention_money: dict[str, Any] | None = None,
                     retention_curves: dict[str, Any] | None = None,
                     experiment: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``results.json`` document (schema_version 1 of the contract, extended)."""
    revenue_section = _section(revenue, choice=_choose_revenue(revenue))
    revenue_section.setdefault("by_community", {})
    revenue_section["member_months"] = member_months
    revenue_section["member_months_by_community"] = member_months_by_community or {}
    revenue_section["event_study"] = _event_study(revenue)
    revenue_section["event_studies"] = _event_studies(revenue)
    # Every estimator's per-community entries (``by_community`` holds the preferred one's only)
    revenue_section["estimates_by_community"] = {n: r.by_group for n, r in revenue.items()}
    retention_section = _section(retention, choice=choose_retention(retention))
    retention_section["estimates_by_community"] = {n: r.by_group for n, r in retention.items()}
    from roi.sensitivity.results import retention_lift_sensitivity, revenue_lift_sensitivity

    # How strong a violation of each estimate's assumption would have to be (issue 17)
    revenue_section["sensitivity"] = revenue_lift_sensitivity(revenue)
    retention_section["sensitivity"] = retention_lift_sensitivity(
        retention, preferred=retention_section["preferred"])
    diagnostics = {f"revenue_{name}": r.diagnostics.to_contract() for name, r in revenue.items()}
    diagnostics.update({f"retention_{name}": r.diagnostics.to_contract()
                        for name, r in retention.items()})
    notes = []
    revenue_section["join_month_adjusted"] = _join_month_block(revenue)
    if revenue_section["join_month_adjusted"]["detected"]:
        from roi.revenue_lift.join_month import warning_text

        notes.append(warning_text(revenue_section["join_month_adjusted"]))
    if experiment is not None:   # the comparison uses a community's experimental number
        from roi.experiments.results import apply_experiments

        notes += apply_experiments(experiment, revenue_section)
    retention_section.setdefault("by_community", {})
    if retention_money is not None:
        retention_section["retention_revenue"] = retention_money
    if retention_curves is not None:
        retention_section["landmark_retention"] = retention_curves
    if revenue_section["preferred"] is None:
        notes.append("No causal revenue-lift estimator has produced a trustworthy number in this "
                     "run: only the naive comparison is shown, and it is biased upwards.")
    if paid_media_result is not None:
        diagnostics["paid_media_mmm"] = paid_media_result.diagnostics.to_contract()
    diagnostics["run"] = {"converged": True, "warnings": notes}
    from roi.budget import with_comparison_and_budget

    # NaN -> null and numpy scalars -> plain numbers, so the file is strict JSON. The comparison
    # and budget blocks are computed last, from the assembled document only. Then one redaction
    # over every key and string (covariate levels, names, notes, the source): no raw e-mail or
    # connection secret in results.json or anything read from it.
    return redact_document(with_comparison_and_budget(_jsonable({
        "schema_version": SCHEMA_VERSION,
        "generated_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        # The bottom line's yardstick: comparison rows judge revenue per dollar against it.
        "gross_margin": config.gross_margin,
        "break_even_revenue_per_dollar": (None if config.gross_margin is None
                                          else 1.0 / config.gross_margin),
        "data": {**dataset.report, "community_costs": community_costs or {}},
        "community_revenue_lift": revenue_section,
        "community_retention_lift": retention_section,
        "paid_media": paid_media,
        **({"community_experiment": experiment} if experiment is not None else {}),
        "comparison": [],
        "diagnostics": diagnostics,
        "config": config.to_dict(),
        "environment": _environment(),
    }), seed=config.seed))


def _environment() -> dict[str, str]:
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for package in ("community-roi", "pandas", "statsmodels", "pymc", "nutpie", "sqlalchemy",
                    "duckdb"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
