"""Benchmark of the five community revenue-lift estimators on a 20,000-customer world, cold.

A fresh process simulates the world (default parameters), runs it through the data layer (not
counted), then fits each estimator as ``roi.run`` would (overall and per community), importing
its module inside its own lap so that import and compile costs are counted ("cold"):
naive, regression adjustment, AIPW, staggered DiD (additive, member-month weights) plus its
multiplicative variant, and the Bayesian hierarchical lift (``roi.revenue_lift.bayes_revenue``;
skipped with a message when the module is not there). ``--cold`` also empties the PyTensor
compile cache. Prints wall seconds and peak RSS after each step, and estimates against truth.

Usage::

    PYTENSOR_FLAGS=base_compiledir=.cache/pytensor .venv/bin/python benchmarks/revenue_lift.py
    .venv/bin/python benchmarks/revenue_lift.py --cold --customers 20000

Target: all five together under 60 s cold (data layer excluded).

At 1M customers (issue 19; ``benchmarks/output/world_1000000_1``, its panel cached as Parquet,
each fit as this script and ``roi run`` call it, CPU seconds by ``time.process_time`` on a
shared 2-core machine): regression adjustment 33.4-35.9 s before and 21.6 s after the changes
recorded in ``roi/revenue_lift/regression_adjustment.py``, AIPW 52.3-54.0 s before and 26.9 s
after (``roi/revenue_lift/weighting.py``), with the same estimates and SEs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

from _common import ROOT, Laps  # benchmarks/_common.py

MULTIPLICATIVE_OUTCOME = "organic_revenue"   # roi.revenue_lift.block.MULTIPLICATIVE_OUTCOME (not imported:
                                             # the parent process stays free of roi imports)

COLUMNS = {"unit": "customer_id", "time": "month_index", "group": "join_month_index",
           "outcome": "revenue"}


def _entry(result) -> dict:
    contract = result.to_contract()
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in contract.items()}


def _by_community(cls, active, *, outcome: str = "revenue", **options) -> dict:
    """Overall and per-community fits (members of one community against never-members)."""
    columns = {**COLUMNS, "outcome": outcome}
    out = {"all": _entry(cls(**options).fit(active, **columns).result_)}
    for community in sorted(active["community"].dropna().unique()):
        rows = active[active["community"].isna() | (active["community"] == community)]
        out[str(community)] = _entry(cls(**options).fit(rows, **columns).result_)
    return out


def measure(customers: int, seed: int, draws: int, chains: int, *, tune: int) -> dict:
    from connectors import open_source
    from roi.data import load_dataset
    from roi.simulate import simulate_world

    laps = Laps(echo=True)
    world = simulate_world(n_customers=customers, seed=seed)
    dataset = load_dataset(open_source(world.tables))
    panel = dataset.customer_month_panel()
    covariates = list(dataset.covariates)
    active = panel[panel["active"]]
    laps.lap("simulate + data layer (not counted)")
    estimates = _estimators(panel, active, covariates, laps=laps, draws=draws, chains=chains,
                            tune=tune)
    counted = sum(v for k, v in laps.seconds.items() if "not counted" not in k)
    truth = {"att": round(world.truth["att_per_member_month"], 2),
             "by_community": {k: round(v, 2) for k, v in world.truth["att_by_community"].items()}}
    return {"customers": customers, "panel_rows": len(panel), "seconds": laps.seconds,
            "peak_gib_after": laps.peak_gib, "estimators_seconds": round(counted, 2),
            "peak_rss_gib": max(laps.peak_gib.values()), "estimates": estimates,
            "truth": truth}


def _estimators(panel, active, covariates: list[str], *, laps: Laps, draws: int,
                chains: int, tune: int) -> dict:
    from roi.revenue_lift.naive_revenue import NaiveRevenueGap

    out = {"naive": _entry(NaiveRevenueGap().fit(active, group="community").result_)}
    laps.lap("naive")
    from roi.revenue_lift.regression_adjustment import RegressionAdjustment

    adjusted = {**COLUMNS, "active": "active", "covariates": covariates}
    out["regression"] = _entry(RegressionAdjustment().fit(panel, community="community",
                                                          **adjusted).result_)
    laps.lap("regression adjustment")
    from roi.revenue_lift.weighting import AIPW

    out["aipw"] = _entry(AIPW().fit(panel, community="community", **adjusted).result_)
    laps.lap("AIPW")
    from roi.revenue_lift.did import StaggeredDiD
    from roi.revenue_lift.did_multiplicative import MultiplicativeDiD

    out["did"] = _by_community(StaggeredDiD, active, weights="member_months")
    # As roi run: the multiplicative estimators fit organic revenue (roi.revenue_lift.block.MULTIPLICATIVE_OUTCOME)
    out["did_multiplicative"] = _by_community(MultiplicativeDiD, active,
                                              outcome=MULTIPLICATIVE_OUTCOME)
    laps.lap("DiD + multiplicative DiD (overall + per community)")
    out["bayesian"] = _bayesian(panel, covariates, draws=draws, chains=chains, tune=tune)
    laps.lap("Bayesian hierarchical lift (import + compile + sample)")
    return out


def _bayesian(panel, covariates: list[str], *, draws: int, chains: int,
              tune: int) -> dict | str:
    if importlib.util.find_spec("roi.revenue_lift.bayes_revenue") is None:
        return "skipped: roi.revenue_lift.bayes_revenue is not there yet"
    try:
        from roi.revenue_lift.bayes_revenue import BayesianHierarchicalLift
    except ImportError as exc:
        return f"skipped: {exc}"
    # its cells take the few covariates that drive revenue and churn (its docstring), not all
    keys = [c for c in ("segment", "plan") if c in covariates]
    fit = BayesianHierarchicalLift(draws=draws, tune=tune, chains=chains).fit(
        panel, **{**COLUMNS, "outcome": MULTIPLICATIVE_OUTCOME}, community="community",
        active="active", covariates=keys)
    return {**_entry(fit.result_), "converged": fit.result_.diagnostics.converged,
            "seconds": {k: round(v, 1) for k, v in fit.fit_seconds_.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--cold", action="store_true", help="empty PyTensor compile cache")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.customers, args.seed, args.draws, args.chains,
                                 tune=args.tune)))
        return
    env = dict(os.environ)
    if args.cold:
        env["PYTENSOR_FLAGS"] = f"base_compiledir={tempfile.mkdtemp(prefix='pytensor-')}"
    env.setdefault("PYTENSOR_FLAGS", f"base_compiledir={ROOT / '.cache' / 'pytensor'}")
    command = [sys.executable, __file__, "--measure", "--customers", str(args.customers),
               "--seed", str(args.seed), "--draws", str(args.draws), "--tune", str(args.tune),
               "--chains",
               str(args.chains)]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, env=env,
                          cwd=ROOT)
    print(json.dumps(json.loads(done.stdout.strip().splitlines()[-1]), indent=2))


if __name__ == "__main__":
    main()
