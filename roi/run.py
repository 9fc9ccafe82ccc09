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
from roi.data.attribution import revenue_attribution
from roi.data.sample import plan_customer_sample, sampled_dataset
from roi.data.source import release_memory
from roi.engagement.block import community_engagement_block
from roi.experiments.results import invitation_experiments
from roi.interrupts import handling_interrupts, raise_if_interrupted
from roi.outputs import OUTPUT_NAMES, staged_outputs, write_json
from roi.paid_media.block import community_costs, paid_media_model
from roi.progress import Steps, progress_steps
from roi.redaction import redact_document
from roi.results import EffectResult, _jsonable, mark_on_sample
from roi.retention.block import (
    retention_curve_counts_in_database,
    retention_curves,
    retention_lift_block,
    retention_models,
    retention_money,
    survival_cells_in_database,
)
from roi.revenue_lift.aggregates_sql import revenue_aggregates_in_database
from roi.revenue_lift.block import (
    ROW_ESTIMATORS,
    bayesian_cells_in_database,
    member_months,
    member_months_by_community,
    revenue_lift_block,
    revenue_lift_estimates,
)

SCHEMA_VERSION = 1
STEPS = ["open source", "validate", "aggregate in database", "engagement", "revenue lift",
         "retention lift", "paid media", "write results", "write reports"]


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
            progress: bool = True, pdf: bool = True, engine: str = "duckdb") -> dict[str, Any]:
    """Run everything and write ``out/results.json`` and the reports; returns the results."""
    return run_models(source, out=out, config=config, progress=progress, pdf=pdf,
                      engine=engine).results


def run_models(source: Any, *, out: str | Path, config: RunConfig | None = None,
               progress: bool = True, pdf: bool = True, engine: str = "duckdb") -> RunOutputs:
    """``engine`` reads a folder with the embedded DuckDB or a local Spark session
    (``connectors.open_source``); a URL's database is its own engine."""
    from connectors import open_source

    config = config or RunConfig()
    # Outputs are staged inside ``out`` and moved into place together at the end; a signal at
    # any step (even one nutpie swallowed while sampling) stops the run before that move.
    with handling_interrupts(), staged_outputs(out) as staged, \
            progress_steps(STEPS, enabled=progress) as progress_bar:
        steps = _InterruptibleSteps(progress_bar)
        steps.start("open source")
        canonical = open_source(source, tables=config.source_tables or None,
                                columns=config.columns or None, engine=engine)
        steps.start("validate")
        dataset = load_dataset(canonical, config.data)
        _refuse_empty_window(dataset.report)
        steps.start("aggregate in database")
        # Above the row budget, the estimators that read customer rows get those of a random
        # sample of customers (labelled beside their numbers); sums come from every customer.
        sample = plan_customer_sample(dataset, max_panel_rows=config.scale.max_panel_rows)
        if sample is not None:
            dataset.report["customer_sample"] = sample.to_contract()
            dataset.report.setdefault("notes", []).append(
                f"Estimators that read customer rows (regression adjustment, AIPW, Cox, "
                f"engagement tiers, experiments, retention value) were {sample.sentence()}.")
        rows = sampled_dataset(dataset, sample)
        panel = rows.customer_month_panel()
        weekly = dataset.weekly_series()
        survival = rows.survival_table()
        attribution = revenue_attribution(dataset)
        # Sums over every customer: the naive gap's, the DiDs' and the coverage's; the Bayesian
        # models' cells. GROUP BYs in the database, before its memory is released
        revenue_sums = revenue_aggregates_in_database(dataset)
        revenue_cells = bayesian_cells_in_database(
            dataset, sampler=config.sampler.for_model("revenue"), attribution=attribution)
        survival_cells = survival_cells_in_database(
            dataset, sampler=config.sampler.for_model("retention"))
        curve_counts = retention_curve_counts_in_database(dataset)
        # reads the database: before release
        experiment = invitation_experiments(rows, panel, sample=sample)
        steps.start("engagement")   # tier/programme fits read activity and programmes: before release
        engagement = community_engagement_block(dataset, panel=panel, survival=survival,
                                                rule=config.tiers, sample=sample)
        dataset.report["revenue_attribution"] = attribution.to_contract()
        release_memory(dataset.engine)   # the models run on these frames and cells from here
        steps.start("revenue lift")
        revenue = revenue_lift_estimates(panel, covariates=dataset.covariates,
                                         sampler=config.sampler.for_model("revenue"),
                                         seed=config.seed, attribution=attribution,
                                         sensitivity=config.sensitivity.options(),
                                         cells=revenue_cells, aggregates=revenue_sums)
        mark_on_sample(revenue, sample, names=ROW_ESTIMATORS)
        steps.start("retention lift")
        retention, cox = retention_models(survival, covariates=dataset.covariates,
                                          sampler=config.sampler.for_model("retention"),
                                          seed=config.seed, cells=survival_cells,
                                          sample=sample)
        raise_if_interrupted()    # the Bayesian survival model samples last
        money = retention_money(survival, panel, cox=cox, covariates=dataset.covariates,
                                revenue=revenue, seed=config.seed, sample=sample)
        curves = retention_curves(counts=curve_counts)
        steps.start("paid media")
        paid, media = paid_media_model(weekly, sampler=config.sampler.for_model("paid_media"),
                                       seed=config.seed,
                                       lift_tests=config.lift_tests)
        steps.start("write results")
        results = assemble_results(dataset=dataset, config=config, revenue=revenue,
                                   retention=retention, retention_money=money,
                                   retention_curves=curves,
                                   paid_media=paid, paid_media_result=media,
                                   member_months=member_months(aggregates=revenue_sums),
                                   member_months_by_community=member_months_by_community(
                                       aggregates=revenue_sums),
                                   community_costs=community_costs(weekly),
                                   experiment=experiment, community_engagement=engagement)
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


def _write_reports(results: dict[str, Any], out: Path, *, pdf: bool) -> dict[str, Path]:
    """HTML and Excel always; PDF when Chromium is installed (else a warning, not a failure)."""
    import sys

    from roi.reports import PdfUnavailableError, write_reports

    try:
        return write_reports(results, out, pdf=pdf)
    except PdfUnavailableError as exc:
        print(f"warning: report.pdf not written: {exc}", file=sys.stderr)
        return {name: out / f"report.{name}" for name in ("html", "xlsx")}


def assemble_results(*, dataset: Dataset, config: RunConfig, revenue: dict[str, EffectResult],
                     retention: dict[str, EffectResult], paid_media: dict[str, Any],
                     member_months: int, paid_media_result: EffectResult | None = None,
                     member_months_by_community: dict[str, int] | None = None,
                     community_costs: dict[str, float] | None = None,
                     retention_money: dict[str, Any] | None = None,
                     retention_curves: dict[str, Any] | None = None,
                     experiment: dict[str, Any] | None = None,
                     community_engagement: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``results.json`` document (schema_version 1 of the contract, extended): each
    question's block from its own folder, then the comparison and budget from the document."""
    revenue_section, notes = revenue_lift_block(
        revenue, member_months=member_months,
        member_months_by_community=member_months_by_community)
    retention_section = retention_lift_block(retention, retention_money=retention_money,
                                             retention_curves=retention_curves)
    diagnostics = {f"revenue_{name}": r.diagnostics.to_contract() for name, r in revenue.items()}
    diagnostics.update({f"retention_{name}": r.diagnostics.to_contract()
                        for name, r in retention.items()})
    if experiment is not None:   # the comparison uses a community's experimental number
        from roi.experiments.results import apply_experiments

        notes += apply_experiments(experiment, revenue_section)
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
        **({"community_engagement": community_engagement}
           if community_engagement is not None else {}),
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
