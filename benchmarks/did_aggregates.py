"""Staggered DiD in memory (the customer-month panel in pandas) against from one GROUP BY in
the database (roi.revenue_lift.did_sql), on a cached simulated world over Parquet (DuckDB).

Each mode runs in its own process (``--mode``), so its peak resident memory is its own; without
``--mode`` both run and their estimates and standard errors are compared.

Usage::

    .venv/bin/python benchmarks/did_aggregates.py --customers 200000
    .venv/bin/python benchmarks/did_aggregates.py --customers 1000000

Measured 2026-12-04 (issue 19; 2 cores shared with other sessions at load average 12-22, so
wall times are 5-10x inflated; CPU seconds, which include DuckDB's threads, show the work; the
whole process: validation, data layer and the fit):

=========  ========  =======  ========  ===========  ==========================================
customers  mode      CPU s    peak GiB  rows back    agreement (database vs memory)
=========  ========  =======  ========  ===========  ==========================================
200,000    database  14.5     0.87      2,621        ATT 3.9e-16, SE 1.9e-16, event SEs 2.0e-15
200,000    memory    16.2     1.41      2,617,416
1,000,000  database  88.1     1.39      2,936        ATT 3.9e-15, SE 0, event SEs 4.5e-16
1,000,000  memory    91.8     4.36      13,072,973
=========  ========  =======  ========  ===========  ==========================================

The pivot query costs about as much CPU as fetching the panel; what it saves is memory (and,
for a remote warehouse, the transfer of 13M rows). On the same 1M panel in memory the group-sum
algebra took 1.6 s of CPU against 1.0 s for the explicit influence rows it replaced (2,936
groups; ATT equal to 8.7e-12, SEs to 1.0e-15).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from _common import ROOT, generate  # benchmarks/_common.py

COLUMNS = {"unit": "customer_id", "time": "month_index", "group": "join_month_index",
           "outcome": "revenue"}
SETTINGS = {"control_group": "never_treated", "weights": "member_months"}


def fit(folder: str, mode: str) -> dict:
    """One fit of the DiD the run reports (never-treated controls, member-month weights)."""
    import sqlalchemy as sa

    from connectors import open_source
    from roi.data import load_dataset
    from roi.data.panel import panel_select
    from roi.revenue_lift.did import StaggeredDiD
    from roi.revenue_lift.did_sql import did_aggregates

    start, cpu = time.perf_counter(), time.process_time()
    dataset = load_dataset(open_source(folder))
    loaded = time.perf_counter()
    if mode == "database":
        statement = panel_select(dataset).order_by(None).subquery("panel")
        rows = sa.select(statement).where(statement.c.active).subquery("active")
        aggregates = did_aggregates(dataset.engine, rows, **COLUMNS)
        returned = len(aggregates.stats.n)
        model = StaggeredDiD(**SETTINGS).fit_aggregates(aggregates, group=COLUMNS["group"])
    else:
        panel = dataset.customer_month_panel()
        returned = len(panel)
        active = panel[panel["active"]]
        del panel
        model = StaggeredDiD(**SETTINGS).fit(active, **COLUMNS)
    simple = model.overall_.loc["simple"]
    return {"mode": mode, "seconds": round(time.perf_counter() - start, 1),
            "validate_seconds": round(loaded - start, 1),
            "cpu_seconds": round(time.process_time() - cpu, 1),
            "peak_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
            "rows_returned": returned, "att": float(simple["att"]), "se": float(simple["se"]),
            "dynamic_se": model.dynamic_["se"].tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode", choices=("database", "memory"))
    args = parser.parse_args(argv)
    folder = generate(args.customers, args.seed)
    if args.mode:
        print(json.dumps(fit(str(folder), args.mode)))
        return 0
    rows = []
    for mode in ("database", "memory"):
        done = subprocess.run([sys.executable, __file__, "--customers", str(args.customers),
                               "--seed", str(args.seed), "--mode", mode], cwd=ROOT, check=True,
                              capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print({k: v for k, v in rows[-1].items() if k != "dynamic_se"}, flush=True)
    database, memory = rows
    worst = max(abs(a - b) / abs(b) for a, b in zip(database["dynamic_se"],
                                                     memory["dynamic_se"], strict=True)
                if b == b and b)
    print(f"ATT relative difference {abs(database['att'] - memory['att']) / abs(memory['att']):.2e}"
          f", SE {abs(database['se'] - memory['se']) / memory['se']:.2e}, event-time SEs (worst)"
          f" {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
