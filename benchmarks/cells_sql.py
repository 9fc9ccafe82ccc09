"""The Bayesian models' cells in memory (the panel or start-stop table in pandas, then
``revenue_cells`` / ``person_period_cells``) against from ``GROUP BY`` queries in the database
(``roi.revenue_lift.cells_sql``, ``roi.retention.cells_sql``), on a cached simulated world over
Parquet (DuckDB). The cells are built with the run's arguments: revenue on ``organic_revenue``
with covariates segment and plan; survival with every covariate of the dataset and 12 pieces at
event-time quantiles.

Each (table, mode) runs in its own process (``--mode``), so its peak resident memory is its own;
without ``--mode`` all four run and the two cell tables of each kind are compared (keys exactly,
sums to a relative tolerance).

Usage::

    .venv/bin/python benchmarks/cells_sql.py --customers 1000000

Measured 2026-12-04 (issue 19; 2 cores shared with other sessions at load average 8-11, so wall
times are inflated; CPU seconds include DuckDB's threads; "cells" columns are the step after the
data layer's validation, "peak" the whole process, whose validation alone peaked at 1.33-1.34 GiB):

=========  ========  ========  =======  =======  =========  =====================================
table      mode      cells     CPU s    wall s   peak GiB   agreement (database vs memory)
=========  ========  ========  =======  =======  =========  =====================================
revenue    database  216,584   21.7     82.2     1.50       keys and counts equal, sums 9.9e-15
revenue    memory    216,584   46.0     192.0    5.43       (13.1M-row panel fetched)
survival   database  11,263    3.1      3.3      1.33       keys, bounds, edges, counts equal,
survival   memory    11,263    8.2      10.9     1.52       sums equal
=========  ========  ========  =======  =======  =========  =====================================
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, generate  # benchmarks/_common.py

REVENUE = {"unit": "customer_id", "time": "month_index", "group": "join_month_index",
           "outcome": "organic_revenue", "community": "community", "active": "active",
           "covariates": ["segment", "plan"]}


def build(folder: str, table: str, mode: str, out: str) -> dict:
    """One cell table; the whole process's CPU and peak memory, and the cells step's own."""
    from connectors import open_source
    from roi.data import load_dataset

    start, cpu = time.perf_counter(), time.process_time()
    dataset = load_dataset(open_source(folder))
    loaded, cpu_loaded = time.perf_counter(), time.process_time()
    peak_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    if table == "revenue":
        if mode == "database":
            from roi.data.panel import panel_select
            from roi.revenue_lift.cells_sql import revenue_cells_sql

            panel = panel_select(dataset).order_by(None).subquery("panel")
            cells = revenue_cells_sql(dataset.engine, panel, kinds=dataset.covariates,
                                      **REVENUE)
        else:
            from roi.revenue_lift.bayes_revenue import revenue_cells

            cells = revenue_cells(dataset.customer_month_panel(), **REVENUE)
    else:
        covariates = list(dataset.covariates)
        if mode == "database":
            from roi.data.survival import survival_select
            from roi.retention.cells_sql import person_period_cells_sql

            rows = survival_select(dataset).order_by(None).subquery("survival")
            cells = person_period_cells_sql(dataset.engine, rows, covariates=covariates,
                                            kinds=dataset.covariates, community="community")
        else:
            from roi.retention.bayes_survival import (
                event_quantile_bounds,
                person_period_cells,
            )
            from roi.retention.cells_sql import sorted_cells

            survival = dataset.survival_table()
            bounds = event_quantile_bounds(survival["stop"], survival["event"], pieces=12)
            cells = sorted_cells(person_period_cells(survival, intervals_days=bounds,
                                                     covariates=covariates,
                                                     community="community"),
                                 covariates=covariates)
    done, cpu_done = time.perf_counter(), time.process_time()
    cells.attrs = {}
    cells.to_parquet(out)
    return {"table": table, "mode": mode, "cells": len(cells),
            "seconds": round(done - start, 1), "cpu_seconds": round(cpu_done - cpu, 1),
            "cells_seconds": round(done - loaded, 1),
            "cells_cpu_seconds": round(cpu_done - cpu_loaded, 1),
            "peak_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
            "peak_after_load_gib": round(peak_loaded, 2)}


def compare(database: Path, memory: Path) -> str:
    import numpy as np
    import pandas as pd

    left, right = pd.read_parquet(database), pd.read_parquet(memory)
    sums = [c for c in ("total", "total_sq", "events", "exposure") if c in left]
    keys = [c for c in left.columns if c not in sums]
    pd.testing.assert_frame_equal(left[keys], right[keys], check_dtype=False,
                                  check_categorical=False)
    worst = max(float(np.max(np.abs(left[c] - right[c]) / np.maximum(np.abs(right[c]), 1e-300)
                             * (right[c] != 0))) for c in sums)
    return f"keys and counts equal, sums to {worst:.1e} relative (worst)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--table", choices=("revenue", "survival"))
    parser.add_argument("--mode", choices=("database", "memory"))
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    folder = generate(args.customers, args.seed)
    if args.mode:
        print(json.dumps(build(str(folder), args.table, args.mode, args.out)))
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="cells-sql-"))
    for table in ("revenue", "survival"):
        for mode in ("database", "memory"):
            done = subprocess.run(
                [sys.executable, __file__, "--customers", str(args.customers), "--seed",
                 str(args.seed), "--table", table, "--mode", mode, "--out",
                 str(scratch / f"{table}-{mode}.parquet")],
                cwd=ROOT, check=True, capture_output=True, text=True)
            print(done.stdout.strip().splitlines()[-1], flush=True)
        print(table, compare(scratch / f"{table}-database.parquet",
                             scratch / f"{table}-memory.parquet"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
