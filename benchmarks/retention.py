"""Benchmark of the retention methods: naive Cox, time-varying Cox, curves, Bayesian, money.

Each measurement runs in a fresh process, so its peak memory is its own. Default: a simulated
20,000-customer world (in memory) through the data layer, then every retention method; with
``--large``, the start-stop table and the time-varying Cox fit on a 1,000,000-customer world
(generated once under benchmarks/output/, as ``benchmarks/data_layer.py`` does).

Usage::

    PYTENSOR_FLAGS=base_compiledir=.cache/pytensor .venv/bin/python benchmarks/retention.py
    .venv/bin/python benchmarks/retention.py --large
    .venv/bin/python benchmarks/retention.py --cold   # empty PyTensor compile cache

Targets: all retention methods on 20,000 customers under 30 s cold (data layer excluded);
start-stop table + Cox on 1,000,000 customers under 5 minutes and 6 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import ROOT, Laps, generate  # benchmarks/_common.py

COVARIATES = ["segment", "region", "acquisition_channel", "plan", "employees"]


def measure_small(customers: int, seed: int, chains: int, draws: int) -> dict:
    from connectors import open_source
    from roi.data import load_dataset
    from roi.simulate import simulate_world

    laps = Laps()
    world = simulate_world(n_customers=customers, seed=seed)
    ds = load_dataset(open_source(world.tables))
    table, panel = ds.survival_table(), ds.customer_month_panel()
    laps.lap("simulate + data layer (not counted)")
    results = _retention_methods(table, panel, laps=laps, chains=chains, draws=draws,
                                 lift_att=world.truth["att_by_community"])
    counted = sum(v for k, v in laps.seconds.items() if "not counted" not in k)
    truth = {k: world.truth[k] for k in ("churn_hazard_ratio",
                                         "retention_extra_customer_months_by_community",
                                         "retention_revenue_by_community")}
    return {"customers": customers, "rows": len(table), "seconds": laps.seconds,
            "peak_gib_after": laps.peak_gib, "retention_seconds": round(counted, 2),
            "peak_rss_gib": max(laps.peak_gib.values()), "results": results, "truth": truth}


def _retention_methods(table, panel, *, laps: Laps, chains: int, draws: int,
                       lift_att: dict) -> dict:
    from roi.retention.bayes_survival import BayesianPiecewiseSurvival
    from roi.retention.cox_naive import NaiveCox
    from roi.retention.cox_time_varying import CoxTimeVarying
    from roi.retention.retention_value import retention_revenue
    from roi.retention.survival_curves import RetentionCurves

    laps.lap("import models (not counted)")
    naive = NaiveCox().fit(table, community="community")
    laps.lap("naive Cox")
    cox = CoxTimeVarying().fit(table, covariates=COVARIATES, community="community")
    laps.lap("time-varying Cox")
    RetentionCurves().fit(table, community="community")
    laps.lap("retention curves")
    import pymc  # noqa: F401

    laps.lap("import pymc")
    bayes = BayesianPiecewiseSurvival(chains=chains, draws=draws, tune=draws).fit(
        table, covariates=COVARIATES, community="community")
    laps.lap(f"Bayesian piecewise ({chains} x {draws}+{draws})")
    money = {name: retention_revenue(table, panel, model=model, covariates=COVARIATES,
                                     lift_att=lift_att)["total"]
             for name, model in (("cox", cox), ("bayes", bayes))}
    laps.lap("retention revenue (Cox and Bayes)")
    return {"naive": repr(naive.result_), "cox": repr(cox.result_),
            "bayes": repr(bayes.result_), "bayes_checks": {
                k: bayes.result_.diagnostics.checks[k] for k in (
                    "max_r_hat", "min_ess_bulk", "divergences", "cells", "sampler")},
            "revenue_total": money}


def measure_large(folder: Path) -> dict:
    from connectors import open_source
    from roi.data import load_dataset
    from roi.retention.cox_time_varying import CoxTimeVarying

    laps = Laps()
    ds = load_dataset(open_source(folder))
    laps.lap("open + validate + type")
    table = ds.survival_table()
    laps.lap("start-stop table")
    cox = CoxTimeVarying().fit(table, covariates=COVARIATES, community="community")
    laps.lap("time-varying Cox (pooled + by community + PH test)")
    return {"customers": ds.report["customers"], "rows": len(table), "seconds": laps.seconds,
            "peak_gib_after": laps.peak_gib, "total_seconds": round(sum(laps.seconds.values()),
                                                                    2),
            "peak_rss_gib": max(laps.peak_gib.values()), "cox": repr(cox.result_)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=600)
    parser.add_argument("--large", action="store_true", help="1,000,000-customer table + Cox")
    parser.add_argument("--cold", action="store_true", help="empty PyTensor compile cache")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure == "small":
        print(json.dumps(measure_small(args.customers, args.seed, args.chains, args.draws)))
        return
    if args.measure:
        print(json.dumps(measure_large(Path(args.measure))))
        return
    env = dict(os.environ)
    if args.cold:
        env["PYTENSOR_FLAGS"] = f"base_compiledir={tempfile.mkdtemp(prefix='pytensor-')}"
    env.setdefault("PYTENSOR_FLAGS", f"base_compiledir={ROOT / '.cache' / 'pytensor'}")
    target = str(generate(1_000_000, args.seed)) if args.large else "small"
    command = [sys.executable, __file__, "--measure", target, "--customers",
               str(args.customers), "--seed", str(args.seed), "--chains", str(args.chains),
               "--draws", str(args.draws)]
    done = subprocess.run(command, check=True, capture_output=True, text=True, env=env,
                          cwd=ROOT)
    print(json.dumps(json.loads(done.stdout.strip().splitlines()[-1]), indent=2))


if __name__ == "__main__":
    main()
