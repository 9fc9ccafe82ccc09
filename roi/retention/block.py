"""The ``community_retention_lift`` block of ``results.json``: the retention models the run
fits on the survival table (naive Cox for contrast, time-varying Cox) and on person-period cells
summed in the database (the piecewise-exponential hazard, frequentist and Bayesian), the revenue of the extra retained months, landmark curves, and
the block they make (:func:`retention_lift_block`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from roi.preference import choose_retention
from roi.results import EffectResult, estimates_section, mark_on_sample


@dataclass(frozen=True)
class SurvivalCells:
    """The piecewise-exponential models' person-period cells and the counts their results need
    beyond them, computed in the database over every customer."""

    cells: Any               # DataFrame: person_period_cells' table, attrs with the pieces
    n_treated: int           # customers with member time
    n_obs: int               # member days at risk
    n_rows: int              # start-stop rows summed
    n_treated_by_group: dict[str, int] | None = None   # customers with member time, per community


def survival_cells_in_database(dataset, *, sampler=None) -> SurvivalCells:
    """The cells :func:`retention_models`' piecewise-exponential models fit (the frequentist
    hazard always, the Bayesian one with ``sampler`` settings), from ``GROUP BY`` queries over
    the data layer's start-stop table inside the database (:mod:`roi.retention.cells_sql`;
    equal to the in-memory cells, pieces at the same event-time quantiles), with their counts.
    ``sampler`` is not read (kept for callers that pass it). The run calls it in its
    "aggregate in database" step, before the database's memory is released, with the whole
    ``dataset`` (not the customer sample): about 3 CPU s at 1M customers."""
    import sqlalchemy as sa

    from roi.data.source import fetch_frame
    from roi.data.survival import survival_select
    from roi.retention.bayes_survival import BayesianPiecewiseSurvival
    from roi.retention.cells_sql import member_exposure_sql, person_period_cells_sql

    model = BayesianPiecewiseSurvival()   # its defaults (PiecewiseExponentialHazard's): pieces, bins
    table = survival_select(dataset).order_by(None).subquery("survival")
    cells = person_period_cells_sql(
        dataset.engine, table, intervals_days=model.intervals_days, pieces=model.pieces,
        covariates=list(dataset.covariates), kinds=dataset.covariates, community="community",
        numeric_bins=model.numeric_bins)
    n_treated, n_obs = member_exposure_sql(dataset.engine, table)
    rows = fetch_frame(dataset.engine, sa.select(sa.func.count().label("n")).select_from(table))
    return SurvivalCells(cells=cells, n_treated=n_treated, n_obs=n_obs,
                         n_rows=int(rows.iloc[0, 0]),
                         n_treated_by_group=members_by_community_sql(dataset.engine, table))


def members_by_community_sql(engine, table, *, id_col: str = "customer_id",
                             member: str = "member", community: str = "community"
                             ) -> dict[str, int]:
    """Customers with member time per community (labels as the cells name them), counted in
    the database: the per-community ``n_treated`` the cells do not hold."""
    import sqlalchemy as sa

    from roi.data.source import fetch_frame
    from roi.data.sql_parts import count_distinct

    rows = table.alias("community_rows")
    name = sa.func.coalesce(sa.cast(rows.c[community], sa.String), "(unknown)").label("name")
    found = fetch_frame(engine, count_distinct(
        rows.c[id_col], keys=[name], where=sa.cast(rows.c[member], sa.Integer) != 0))
    return {str(k): int(v) for k, v in zip(found["name"], found["n"], strict=True)}


def retention_models(survival, *, covariates: dict[str, str], sampler=None,
                     seed: int = 0, cells: SurvivalCells | None = None, sample=None,
                     ) -> tuple[dict[str, EffectResult], Any]:
    """Naive ever-member Cox (immortal-time biased, for contrast), time-varying Cox, the
    frequentist piecewise-exponential hazard (``piecewise_exponential``, with ``cells``) and,
    with ``sampler`` settings, the Bayesian piecewise-exponential model on person-period cells
    (``cells`` computed in the database when given, else built from ``survival``); also
    returns the fitted time-varying Cox model, which the retention money reads.

    ``sample`` (a :class:`roi.data.sample.CustomerSample`) says ``survival`` holds a random
    sample of customers: the estimates fitted on it carry its sentence
    (:func:`roi.results.mark_on_sample`), and :func:`roi.preference.choose_retention` then
    prefers ``piecewise_exponential``, fitted on every customer's cells."""
    from roi.retention.bayes_survival import BayesianPiecewiseSurvival
    from roi.retention.cox_naive import NaiveCox
    from roi.retention.cox_time_varying import CoxTimeVarying
    from roi.retention.piecewise_exponential import PiecewiseExponentialHazard

    names = list(covariates)
    naive = NaiveCox().fit(survival, community="community").result_
    cox = CoxTimeVarying().fit(survival, covariates=names, community="community")
    estimates = {"naive": naive, "cox_time_varying": cox.result_}
    on_sample = ["naive", "cox_time_varying"]
    if cells is not None:
        estimates["piecewise_exponential"] = PiecewiseExponentialHazard().fit_cells(
            cells.cells, n_treated=cells.n_treated, n_obs=cells.n_obs, n_rows=cells.n_rows,
            n_treated_by_group=cells.n_treated_by_group).result_
    if sampler is not None:
        bayes = BayesianPiecewiseSurvival(
            sampler=sampler.backend, draws=sampler.draws, tune=sampler.tune,
            chains=sampler.chains, random_seed=seed,
        )
        if cells is not None:
            bayes.fit_cells(cells.cells, n_treated=cells.n_treated, n_obs=cells.n_obs,
                            n_rows=cells.n_rows)
        else:
            bayes.fit(survival, covariates=names, community="community")
            on_sample.append("bayesian")
        estimates["bayesian"] = bayes.result_
    mark_on_sample(estimates, sample, names=tuple(on_sample))
    return estimates, cox


def retention_money(survival, panel, *, cox, covariates: dict[str, str],
                    revenue: dict[str, EffectResult], seed: int,
                    sample=None) -> dict[str, Any]:
    """Extra retained customer-months caused by membership and their revenue (Cox hazards), net
    of the per-member-month revenue lift so nothing is counted twice. With ``sample`` (a
    :class:`roi.data.sample.CustomerSample`: ``survival`` and ``panel`` hold its customers),
    the totals are scaled up to every customer and the block says so."""
    from roi.retention.retention_value import retention_revenue
    from roi.revenue_lift.block import choose_revenue_lift

    method = choose_revenue_lift(revenue).method
    preferred = revenue.get(method) if method else None
    lift = ({k: v["estimate"] for k, v in preferred.by_group.items()} if preferred else None)
    money = retention_revenue(survival, panel, model=cox, covariates=list(covariates),
                              lift_att=lift, seed=seed)
    money.pop("value", None)
    if sample is not None:
        _expand_to_population(money, sample)
    return money


# The totals of retention_revenue: sums over the customers it reads
_EXPANDED = ("extra_customer_months", "revenue")


def _expand_to_population(money: dict[str, Any], sample) -> None:
    """Sums over a random sample of customers -> sums over every customer (times N / n, the
    population's customers over the sample's; the interval scales with them), in place."""
    factor = sample.population / sample.customers
    entries = [*(money.get("by_community") or {}).values(), money.get("total") or {}]
    for entry in entries:
        for key in _EXPANDED:
            numbers = entry.get(key)
            if isinstance(numbers, dict):
                for bound in ("estimate", "low", "high"):
                    if isinstance(numbers.get(bound), int | float):
                        numbers[bound] = numbers[bound] * factor
        if isinstance(entry.get("members"), int):
            entry["members"] = round(entry["members"] * factor)
    money["customer_sample"] = {
        **sample.to_contract(), "expansion_factor": factor,
        "note": f"Retained months and revenue {sample.sentence()}; totals and member counts "
                f"are scaled up to every customer (x {factor:,.2f})."}


def retention_curve_counts_in_database(dataset):
    """What :func:`retention_curves` needs, as counts per landmark, group and day from a
    ``GROUP BY`` in the database over every customer (:mod:`roi.retention.survival_sql`; the
    same curves as from the start-stop table, whatever its size)."""
    from roi.data.survival import survival_select
    from roi.retention.survival_sql import retention_counts

    table = survival_select(dataset).order_by(None).subquery("survival")
    return retention_counts(dataset.engine, table, community="community")


def retention_curves(survival=None, *, counts=None) -> dict[str, Any]:
    """Landmark retention (members vs non-members alive at 3, 6, 12 months) at 6 and 12 months
    after the landmark, with 95% CIs, and the member minus non-member difference; from the
    start-stop table ``survival`` or from ``counts``
    (:func:`retention_curve_counts_in_database`)."""
    from roi.retention.survival_curves import RetentionCurves

    curves = (RetentionCurves().fit_counts(counts) if counts is not None
              else RetentionCurves().fit(survival, community="community"))
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


def retention_lift_block(retention: dict[str, EffectResult], *,
                         retention_money: dict[str, Any] | None = None,
                         retention_curves: dict[str, Any] | None = None) -> dict[str, Any]:
    """``community_retention_lift``: preferred estimate, every estimate overall and per
    community, the E-value sensitivity, retained revenue and landmark curves."""
    from roi.sensitivity.results import retention_lift_sensitivity

    section = estimates_section(retention, choice=choose_retention(retention))
    section["estimates_by_community"] = {n: r.by_group for n, r in retention.items()}
    section["sensitivity"] = retention_lift_sensitivity(retention,
                                                        preferred=section["preferred"])
    section.setdefault("by_community", {})
    if retention_money is not None:
        section["retention_revenue"] = retention_money
    if retention_curves is not None:
        section["landmark_retention"] = retention_curves
    return section
