"""The Bayesian revenue-lift cells model on a cached world: numba kernel against PyMC's graph.

Fits :class:`roi.revenue_lift.bayes_revenue.BayesianHierarchicalLift` as ``roi run`` does
(``organic_revenue``, cell keys segment and plan, 4 chains x 1000 draws after 1000 tuning
steps) with the log-density backend ``ROI_REVENUE_LOGP`` chosen on the command line, in this
process, and prints: the fit's wall seconds (``fit_seconds_``; ``fit_wall_s`` includes the
currency lift per draw) and CPU seconds (every thread), leapfrog steps, wall sampling time and
the whole fit's CPU time per leapfrog step of every chain (tuning included; 2 chains run at
once on 2 cores), for the kernel the CPU time of one density + gradient call on these cells,
and the ATT with its 94% HDI against the truth.

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
    direct = _kernel_gradient_us(model) if args.backend == "numba" else None
    sampling = model.fit_seconds_["sampling"]
    print(json.dumps({
        "backend": args.backend, "world": args.world, "cells": len(model.cells_),
        "fit_seconds": {k: round(v, 2) for k, v in model.fit_seconds_.items()},
        "fit_wall_s": round(wall, 2), "fit_cpu_s": round(cpu, 2),
        "leapfrog_steps": steps, "steps_per_draw": round(
            float(stats["n_steps"].mean()), 2),
        "divergences": int(stats["diverging"].sum()),
        "us_per_gradient_wall": round(1e6 * sampling / steps, 1),
        "fit_cpu_us_per_step": round(1e6 * cpu / steps, 1),
        "kernel_us_per_gradient_cpu": direct,
        "checks": {k: result.diagnostics.checks.get(k) for k in ("sampler", "logp_backend")},
        "converged": result.diagnostics.converged,
        "att": [round(result.estimate, 2), round(result.low, 2), round(result.high, 2)],
        "by_community": {k: round(v["estimate"], 2) for k, v in result.by_group.items()},
        "truth": round(truth["att_per_member_month"], 2)}, indent=1))


def _kernel_gradient_us(model) -> float:
    """CPU microseconds per call of the numba density + gradient on this fit's cells (through
    ``ctypes`` into the C callback nutpie calls: about 1 us of that is ``ctypes``)."""
    import ctypes

    import numpy as np

    from roi.revenue_lift import _fast_kernels, fast_logp
    from roi.revenue_lift.bayes_revenue import MU_TAU_SD, model_inputs

    index = model.index_
    inputs = model_inputs(model.cells_, index=index, phi=model.phi_)
    sizes = {"n_patterns": len(index["patterns"]), "n_communities": len(index["communities"]),
             "n_segments": len(index["segments"]), "segment": model.segment is not None}
    lay = fast_logp.layout(n_times=len(index["times"]), **sizes)
    buf = fast_logp.pack(inputs, **sizes, buildup_prior=model.buildup_prior, mean_sd=MU_TAU_SD,
                         n_dim=lay.n_dim)
    x, grad, value = np.zeros(lay.n_dim), np.zeros(lay.n_dim), np.zeros(1)
    pointers = [a.ctypes.data_as(ctypes.POINTER(ctypes.c_double)) for a in (x, grad, value, buf)]
    call = _fast_kernels.logp_c.ctypes
    started = time.process_time()
    for _ in range(2000):
        call(lay.n_dim, *pointers)
    return round((time.process_time() - started) / 2000 * 1e6, 1)


if __name__ == "__main__":
    main()
