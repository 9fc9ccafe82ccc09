"""The ``sensitivity`` blocks of ``results.json`` from fitted estimators (see docs/CONTRACT.md).

* ``community_revenue_lift.sensitivity``: relative-magnitudes bounds and breakdown ``Mbar`` of
  the staggered DiD's lift (overall and per community, from each fit's event study and its
  covariance), and the omitted-variable robustness value of the AIPW (else regression
  adjustment) estimate.
* ``community_retention_lift.sensitivity``: E-values of the preferred hazard ratio.

Examples
--------
>>> from roi.results import EffectResult
>>> hr = EffectResult(method="cox_time_varying", estimand="community_retention_lift",
...                   estimate=0.7, low=0.6, high=0.8, interval="95% CI", value_name="hazard_ratio")
>>> block = retention_lift_sensitivity({"cox_time_varying": hr}, preferred="cox_time_varying")
>>> round(block["e_value"], 2), round(block["e_value_interval"], 2)
(1.88, 1.61)
"""

from __future__ import annotations

import math
from typing import Any

from roi.results import EffectResult
from roi.sensitivity.evalue import evalues_hr
from roi.sensitivity.omitted_variable import omitted_variable_sensitivity, ovb_bounds
from roi.sensitivity.parallel_trends import (
    MAX_LEADS,
    event_study_sensitivity,
    scale_contract,
)

REVENUE_ESTIMATOR = "did"
"""The estimator whose event study the parallel-trends sensitivity reads."""
OVB_ESTIMATORS = ("aipw", "regression")
"""Regression-type estimators the robustness value is computed for (first usable one)."""


def parallel_trends_block(result: EffectResult, *, horizon: int | None = None,
                          max_leads: int = MAX_LEADS) -> dict[str, Any] | None:
    """``breakdown_m``, ``bounds``, ``summary`` (and the inputs' size) of one DiD fit, in the
    event study's units (the covered member-months); None without an event study and
    covariance, or without a usable lead. ``horizon``: see
    :func:`roi.sensitivity.parallel_trends.from_event_study` (default: every post-join month,
    the headline)."""
    tables, checks = result.tables, result.diagnostics.checks
    if "dynamic" not in tables or "dynamic_vcov" not in tables:
        return None
    sensitivity = event_study_sensitivity(tables["dynamic"], tables["dynamic_vcov"],
                                          base_period=checks.get("base_period", "varying"),
                                          anticipation=int(checks.get("anticipation", 0)),
                                          horizon=horizon, max_leads=max_leads)
    return None if sensitivity is None else sensitivity.to_contract()


def _coverage_factors(did: EffectResult) -> tuple[float, dict[str, float]]:
    """The factor the DiD's headline was scaled by from covered to all member-months, overall
    and per community (1.0 where it was not scaled)."""
    coverage = did.diagnostics.checks.get("member_coverage") or {}
    return float(coverage.get("factor", 1.0)), dict(coverage.get("by_community") or {})


def robustness_value_block(revenue: dict[str, EffectResult]) -> dict[str, Any] | None:
    """Cinelli & Hazlett statistics of the first converged estimator of
    :data:`OVB_ESTIMATORS`. Degrees of freedom: the DiD panel's customers minus 1 (the
    estimators' SEs are clustered by customer; more customers than the regression saw makes
    the robustness value smaller, i.e. errs towards fragility)."""
    did = revenue.get(REVENUE_ESTIMATOR)
    for name in OVB_ESTIMATORS:
        result = revenue.get(name)
        se = None if result is None else result.diagnostics.checks.get("se")
        if (result is None or not result.diagnostics.converged or se is None
                or not (math.isfinite(result.estimate) and math.isfinite(se) and se > 0)):
            continue
        units = (did.diagnostics.checks.get("n_units") if did is not None else None) \
            or result.n_treated
        if not units or units < 3:
            continue
        stats = omitted_variable_sensitivity(estimate=result.estimate, se=float(se),
                                             dof=int(units) - 1)
        benchmarks = benchmark_bounds(result.tables.get("ovb_benchmarks"),
                                      estimate=result.estimate, se=float(se), dof=stats.dof)
        sentence = benchmark_summary(benchmarks, estimate=result.estimate)
        return {"method": name, "t": stats.t, "dof": stats.dof, "partial_r2": stats.partial_r2,
                "rv": stats.rv_q, "rv_interval": stats.rv_qa, "benchmarks": benchmarks,
                "benchmark_summary": sentence,
                "summary": stats.summary() + (f" {sentence}" if sentence else "")}
    return None


BENCHMARK_K = (1.0, 2.0, 3.0)
"""Multiples of each observed benchmark's strength reported (sensemakr's usual ``kd``)."""


def benchmark_bounds(table, *, estimate: float, se: float, dof: int,
                     k: tuple[float, ...] = BENCHMARK_K) -> list[dict[str, Any]]:
    """``benchmarks`` of the contract: per observed benchmark (covariate, or the pre-join
    revenue; :mod:`roi.sensitivity.benchmarks`) and multiple ``k``, the estimate and interval
    adjusted for a hidden factor ``k`` times as strong (null numbers where such a factor would
    explain all of membership or of revenue's residual variation: nothing bounds the lift)."""
    if table is None or len(table) == 0:
        return []
    out = []
    for row in table.to_dict(orient="records"):
        for multiple in k:
            try:
                (bound,) = ovb_bounds(estimate=estimate, se=se, dof=dof,
                                      r2dxj_x=float(row["r2_membership"]),
                                      r2yxj_dx=float(row["r2_revenue"]), kd=(multiple,),
                                      benchmark=str(row["benchmark"]))
            except (ValueError, ZeroDivisionError):
                # k times the benchmark would explain all of membership, or all of revenue's
                # residual variation (sensemakr caps it at 1, leaving no standard error): no
                # bound, the lift could be anything
                out.append({"covariate": str(row["benchmark"]), "k": multiple,
                            "r2_membership": None, "r2_revenue": None,
                            "estimate_adjusted": None, "low": None, "high": None})
                continue
            out.append({"covariate": str(row["benchmark"]), "k": multiple,
                        "r2_membership": bound.r2dz_x, "r2_revenue": bound.r2yz_dx,
                        "estimate_adjusted": bound.adjusted_estimate,
                        "low": bound.adjusted_low, "high": bound.adjusted_high})
    return out


def benchmark_summary(benchmarks: list[dict[str, Any]], *, estimate: float) -> str | None:
    """One sentence: the strongest observed covariate at the largest ``k`` (the one that moves
    the lift most at ``k`` = 1), and the pre-join revenue at ``k`` = 1."""
    from roi.sensitivity.benchmarks import PRE_JOIN_REVENUE

    def moved(entry: dict[str, Any]) -> str:
        if entry["estimate_adjusted"] is None:
            return ("would explain all the rest of the variation in revenue, so nothing "
                    "bounds the lift")
        return (f"would move the lift to {entry['estimate_adjusted']:,.1f} (95% CI "
                f"{entry['low']:,.1f} to {entry['high']:,.1f})")

    def shift(entry: dict[str, Any]) -> float:
        value = entry["estimate_adjusted"]
        return math.inf if value is None else abs(estimate - value)

    covariates = [b for b in benchmarks if b["covariate"] != PRE_JOIN_REVENUE]
    parts = []
    if covariates:
        ones = [b for b in covariates if b["k"] == 1.0] or covariates
        strongest = max(ones, key=shift)["covariate"]
        top = max((b for b in covariates if b["covariate"] == strongest), key=lambda b: b["k"])
        parts.append(f"a hidden factor {top['k']:g}x as strong as \"{strongest}\" (the strongest "
                     f"observed covariate) in explaining joining and the post-join change in "
                     f"revenue {moved(top)}")
    history = next((b for b in benchmarks if b["covariate"] == PRE_JOIN_REVENUE
                    and b["k"] == 1.0), None)
    if history is not None:
        # A stern benchmark: much of the pre-join revenue's pull on the change after joining
        # is regression to the mean of a baseline measured with noise, not selection
        parts.append(f"one as strong as the customer's pre-join revenue {moved(history)} "
                     "(a stern benchmark: much of that revenue's pull is regression to the "
                     "mean, not a trait)")
    if not parts:
        return None
    return "Benchmarked on observed data: " + "; ".join(parts) + "."


def revenue_lift_sensitivity(revenue: dict[str, EffectResult]) -> dict[str, Any]:
    """The ``community_revenue_lift.sensitivity`` block (fields null when not computable)."""
    did = revenue.get(REVENUE_ESTIMATOR)
    options = (did.diagnostics.checks.get("sensitivity_options") or {}) if did is not None \
        else {}
    overall = parallel_trends_block(did, **options) \
        if did is not None and did.diagnostics.converged else None
    factor, factors = _coverage_factors(did) if did is not None else (1.0, {})
    # The bounds in the headline's units: the event study covers members with a month before
    # joining, the headline all member-months (scaled by the coverage factor; Mbar is not)
    if overall is not None:
        overall = scale_contract(overall, factor)
    by_community: dict[str, Any] = {}
    table = None if did is None else did.tables.get("sensitivity_by_community")
    if table is not None:
        by_community = {
            str(row["community"]): {k: v for k, v in scale_contract(
                row, float(factors.get(str(row["community"]), 1.0))).items()
                if k in ("breakdown_m", "bounds", "summary", "scale_factor")}
            for row in table.to_dict(orient="records")}
    summary = (overall["summary"] if overall else
               "No parallel-trends sensitivity: the DiD has no event study with a usable month "
               "before joining.")
    return {"method": "relative_magnitudes", "estimator": REVENUE_ESTIMATOR,
            "interval": "95% CI",
            "breakdown_m": overall["breakdown_m"] if overall else None,
            "bounds": overall["bounds"] if overall else [],
            "max_pre_divergence": overall["max_pre_divergence"] if overall else None,
            "pre_divergence_p_value": overall["pre_divergence_p_value"] if overall else None,
            "horizon": overall["horizon"] if overall else None,
            "scale_factor": factor,
            "by_community": by_community,
            "robustness_value": robustness_value_block(revenue), "summary": summary}


def retention_lift_sensitivity(retention: dict[str, EffectResult], *,
                               preferred: str | None) -> dict[str, Any]:
    """The ``community_retention_lift.sensitivity`` block: E-values of the preferred hazard
    ratio (common outcome: churn over the window; EValue's square-root conversion, which gives
    the smaller, more cautious E-value)."""
    result = retention.get(preferred) if preferred else None
    empty = {"e_value": None, "e_value_interval": None, "method": preferred,
             "summary": "No E-value: no preferred hazard ratio."}
    if result is None or not all(v is not None and math.isfinite(v) and v > 0
                                 for v in (result.estimate, result.low, result.high)):
        return empty
    values = evalues_hr(result.estimate, low=result.low, high=result.high, rare=False)
    return {"e_value": values.e_value, "e_value_interval": values.e_value_interval,
            "method": preferred, "rare_outcome": False,
            "summary": values.summary(what=f"the churn hazard ratio of {result.estimate:.2f}",
                                      interval=result.interval)}
