"""The Bayesian revenue-lift cells model on a cached world: numba kernel against PyMC's graph.

Fits :class:`roi.revenue_lift.bayes_revenue.BayesianHierarchicalLift` as ``roi run`` does
(``organic_revenue``, cell keys segment and plan, 4 chains x 1000 draws after 1000 tuning
steps) with the log-density backend ``ROI_REVENUE_LOGP`` chosen on the command line, in this
process, and prints: the fit's wall seconds (``fit_seconds_``) and CPU seconds, leapfrog steps,
wall and CPU time per gradient (sampling time over every leapfrog step of every chain, tuning
included; 2 chains run at once on 2 cores), and the ATT with its 94% HDI against the truth.

Usage::

    .venv/bin/python benchmarks/bayes_revenue_logp.py numba
    .venv/bin/python benchmarks/bayes_revenue_logp.py pytensor --world world_20000_1
"""

from __future__ import annotations

import argparse
import json
import os
import time

from _common import OUTPUT  # benchmarks/_common.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=("numba", "pytensor"))
    parser.add_argument("--world", default="world_20000_1")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    args = parser.parse_args()
    os.environ["ROI_REVENUE_LOGP"] = args.backend

    from connectors import open_source
    from roi.data import load_dataset
    from roi.revenue_lift.bayes_revenue import BayesianHierarchicalLift

    folder = OUTPUT / args.world
    dataset = load_dataset(open_source(str(folder)))
    panel = dataset.customer_month_panel()
    keys = [c for c in ("segment", "plan") if c in dataset.covariates]
    wall, cpu = time.perf_counter(), time.process_time()
    model = BayesianHierarchicalLift(draws=args.draws, tune=args.tune, chains=args.chains,
                                     random_seed=0).fit(
        panel, unit="customer_id", time="month_index", group="join_month_index",
        outcome="organic_revenue", community="community", active="active", covariates=keys)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    stats = model.idata_.sample_stats
    steps = int(stats["n_steps"].sum())
    warmup = model.idata_.get("warmup_sample_stats")
    steps += int(warmup["n_steps"].sum()) if warmup is not None else 0
    result, truth = model.result_, json.loads((folder / "truth.json").read_text())
    sampling = model.fit_seconds_["sampling"]
    print(json.dumps({
        "backend": args.backend, "world": args.world, "cells": len(model.cells_),
        "fit_seconds": {k: round(v, 2) for k, v in model.fit_seconds_.items()},
        "fit_wall_s": round(wall, 2), "fit_cpu_s": round(cpu, 2),
        "leapfrog_steps": steps, "steps_per_draw": round(
            float(stats["n_steps"].mean()), 2),
        "divergences": int(stats["diverging"].sum()),
        "us_per_gradient_wall": round(1e6 * sampling / steps, 1),
        "checks": {k: result.diagnostics.checks.get(k) for k in ("sampler", "logp_backend")},
        "converged": result.diagnostics.converged,
        "att": [round(result.estimate, 2), round(result.low, 2), round(result.high, 2)],
        "by_community": {k: round(v["estimate"], 2) for k, v in result.by_group.items()},
        "truth": round(truth["att_per_member_month"], 2)}, indent=1))


if __name__ == "__main__":
    main()
