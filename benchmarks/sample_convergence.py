"""Do the shipped sampler defaults pass the convergence gate on the bundled sample, for any seed?

Runs ``roi run`` (every model, no PDF) on ``data/sample`` once per seed with the sampler settings
given (default: the shipped ``SamplerSettings()``, which the notebooks use too) and prints, per
Bayesian model, whether it passed the gate and by how much: the largest r-hat (gate 1.01), the
smallest bulk ESS against its threshold, and divergences.

Usage::

    PYTENSOR_FLAGS=base_compiledir=.cache/pytensor .venv/bin/python benchmarks/sample_convergence.py
    .venv/bin/python benchmarks/sample_convergence.py --seeds 1 2 3 --draws 500 --tune 500

Measured figures are in the issue notes (issue 13).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT  # benchmarks/_common.py

MODELS = {"revenue_bayesian": "revenue lift (Bayesian cells)",
          "retention_bayesian": "retention (piecewise exponential)",
          "paid_media_mmm": "media-mix model"}


def one_seed(seed: int, *, draws: int, tune: int, chains: int) -> dict:
    from roi.config import RunConfig, SamplerSettings
    from roi.run import run_models

    config = RunConfig(seed=seed, sampler=SamplerSettings(draws=draws, tune=tune, chains=chains))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        results = run_models(ROOT / "data" / "sample", out=out, config=config, progress=False,
                             pdf=False).results
    seconds = time.perf_counter() - start
    rows = {}
    for key in MODELS:
        diagnostics = results["diagnostics"].get(key)
        if diagnostics is None:
            continue
        checks = diagnostics.get("checks", {})
        rows[key] = {"converged": diagnostics["converged"],
                     "max_r_hat": checks.get("max_r_hat"),
                     "min_ess_bulk": checks.get("min_ess_bulk"),
                     "ess_threshold": checks.get("ess_threshold"),
                     "divergences": checks.get("divergences")}
    return {"seed": seed, "seconds": round(seconds, 1), "models": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 11)))
    from roi.config import SamplerSettings

    shipped = SamplerSettings()
    parser.add_argument("--draws", type=int, default=shipped.draws)
    parser.add_argument("--tune", type=int, default=shipped.tune)
    parser.add_argument("--chains", type=int, default=shipped.chains)
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    rows, failed = [], 0
    for seed in args.seeds:
        row = one_seed(seed, draws=args.draws, tune=args.tune, chains=args.chains)
        rows.append(row)
        for key, m in row["models"].items():
            failed += not m["converged"]
            print(f"seed {seed:>2} {MODELS[key]:<34} {'pass' if m['converged'] else 'FAIL'}  "
                  f"r-hat {m['max_r_hat']:.4f}  ESS {m['min_ess_bulk']:.0f}/"
                  f"{m['ess_threshold']:.0f}  divergences {m['divergences']}", flush=True)
        print(f"seed {seed:>2} run {row['seconds']} s", flush=True)
    print(f"{len(args.seeds)} seeds x {args.chains} chains x {args.draws} draws "
          f"({args.tune} tuning): {failed} model fits failed the gate", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
