"""The Bayesian survival model's two log-density paths on a stored world (issue 21).

Builds the start-stop table the way ``roi run`` does (:mod:`roi.retention.block`: the data
layer's ``survival_table`` and covariates), fits :class:`BayesianPiecewiseSurvival` with the
run's sampler settings (4 chains x 1000+1000) once with ``ROI_SURVIVAL_LOGP`` as given, and
prints fit time (wall and CPU, the latter summed over nutpie's threads), leapfrog steps, the
cost of one gradient, the pooled hazard ratio with its 94% HDI, the time-varying Cox estimate
and the truth.

Usage::

    ROI_SURVIVAL_LOGP=numba .venv/bin/python benchmarks/survival_kernel.py \
        benchmarks/output/world_20000_1
    ROI_SURVIVAL_LOGP=pytensor .venv/bin/python benchmarks/survival_kernel.py \
        benchmarks/output/world_20000_1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("world", type=Path)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    from connectors import open_source
    from roi.data import load_dataset
    from roi.retention.bayes_survival import BayesianPiecewiseSurvival
    from roi.retention.cox_time_varying import CoxTimeVarying

    dataset = load_dataset(open_source(str(args.world)))
    table, covariates = dataset.survival_table(), list(dataset.covariates)
    cox = CoxTimeVarying().fit(table, covariates=covariates, community="community").result_
    wall, cpu = time.perf_counter(), cpu_seconds()
    model = BayesianPiecewiseSurvival(draws=args.draws, tune=args.draws, chains=args.chains,
                                      random_seed=args.seed).fit(
        table, covariates=covariates, community="community")
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    groups = [g for g in ("warmup_sample_stats", "sample_stats") if g in model.idata_.groups()]
    steps = sum(int(model.idata_[g]["n_steps"].sum()) for g in groups
                if "n_steps" in model.idata_[g]) or None
    draw_steps = (float(model.idata_.sample_stats["n_steps"].mean())
                  if "n_steps" in model.idata_.sample_stats else None)
    sampling = model.seconds_["sampling"]
    result, checks = model.result_, model.result_.diagnostics.checks
    truth = json.loads((args.world / "truth.json").read_text())["churn_hazard_ratio"]
    print(json.dumps({
        "logp_backend": checks.get("logp_backend"), "cells": checks["cells"],
        "parameters": int(sum(v.size for v in model.idata_.posterior.isel(
            chain=0, draw=0).data_vars.values())),
        "fit_wall_s": round(wall, 2), "fit_cpu_s": round(cpu, 2),
        "seconds": model.seconds_, "leapfrog_steps": steps,
        "steps_per_draw_after_tuning": round(draw_steps, 1) if draw_steps else None,
        # chains run two at a time: wall per gradient on one core
        "us_per_gradient": (round(sampling / (steps / min(args.chains, 2)) * 1e6, 1)
                            if steps else None),
        "converged": result.diagnostics.converged,
        "divergences": checks.get("divergences"),
        "pooled_hr": [round(result.estimate, 4), round(result.low, 4), round(result.high, 4)],
        "cox_time_varying": [round(cox.estimate, 4), round(cox.low, 4), round(cox.high, 4)],
        "truth": truth, "env": os.environ.get("ROI_SURVIVAL_LOGP"),
    }, indent=1))


if __name__ == "__main__":
    main()
