"""Benchmark of the data layer: a generated world as Parquet -> validate -> three aggregations.

Prints wall time per step and the peak resident memory of the process that does the work
(generation runs in its own process first and is cached under benchmarks/output/).

Usage::

    .venv/bin/python benchmarks/data_layer.py --customers 1000000
    .venv/bin/python benchmarks/data_layer.py --customers 20000 --customers 200000

Target (issue: foundation): 1,000,000 customers (~16M orders) under 60 s and 4 GiB on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import generate  # benchmarks/_common.py


def measure(folder: Path) -> dict:
    """Run in a fresh process so its peak memory is the data layer's alone."""
    from connectors import open_source
    from roi.data import load_dataset

    timings, peaks = {}, {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = round(now - clock, 2)
        peaks[name] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)
        clock = now

    dataset = load_dataset(open_source(folder))
    lap("open + validate + type")
    panel = dataset.customer_month_panel()
    lap("customer-month panel")
    weekly = dataset.weekly_series()
    lap("weekly series")
    survival = dataset.survival_table()
    lap("survival table")
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    return {"customers": dataset.report["customers"], "orders": dataset.report["orders"],
            "panel_rows": len(panel), "weeks": len(weekly.totals),
            "survival_rows": len(survival), "seconds": timings, "peak_gib_after": peaks,
            "total_seconds": round(sum(timings.values()), 2), "peak_rss_gib": round(peak_gib, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, action="append")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure))))
        return
    for customers in args.customers or [1_000_000]:
        folder = generate(customers, args.seed)
        done = subprocess.run([sys.executable, __file__, "--measure", str(folder)],
                              check=True, capture_output=True, text=True)
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
