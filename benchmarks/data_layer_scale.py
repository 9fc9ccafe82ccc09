"""Benchmark of the run's data layer at scale (issue 19): open source -> validate -> every
aggregate the run computes in the database, with wall time, CPU time and peak memory per step.

The steps are those of ``roi run`` before the models: ``connectors.open_source`` over a folder,
``roi.data.load_dataset`` (every contract rule as a SQL count, typed tables), then the
"aggregate in database" step: the customer sample plan, revenue attribution, weekly series, the
staggered DiD's sums on active panel rows (revenue and organic revenue) and the naive gap, the
Bayesian revenue cells, the survival cells and the retention-curve counts. Nothing reads the
row-level panel into Python.

CPU is user + system time of the process, DuckDB's threads included (``getrusage``); on a
shared machine it is steadier than wall time. The slowest SQL statements are listed with their
time (statements the data layer runs through SQLAlchemy or ``fetch_frame``; ``CREATE TABLE``
of the typed stages show as ``materialise``).

Usage::

    .venv/bin/python benchmarks/data_layer_scale.py benchmarks/output/world_1000000_1
    .venv/bin/python benchmarks/data_layer_scale.py benchmarks/output/world_10000000_1 --json
    .venv/bin/python benchmarks/data_layer_scale.py benchmarks/output/world_1000000_1 \\
        --engine spark

Target (issue 19): 10,000,000 customers (200M orders) under 4 GiB peak on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa


class Laps:
    """Wall, CPU and peak RSS per step."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._wall = time.perf_counter()
        self._cpu = _cpu()

    def run(self, name: str, work: Callable[[], object]) -> object:
        result = work()
        wall, cpu = time.perf_counter(), _cpu()
        self.rows.append({"step": name, "wall_s": round(wall - self._wall, 2),
                          "cpu_s": round(cpu - self._cpu, 2), "peak_rss_gib": _peak_gib()})
        print(f"{name:28s} wall {wall - self._wall:8.2f} s  cpu {cpu - self._cpu:8.2f} s  "
              f"peak {_peak_gib():5.2f} GiB", file=sys.stderr, flush=True)
        self._wall, self._cpu = wall, cpu
        return result


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_gib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)


def statement_timer(engine: sa.Engine) -> list[tuple[float, str]]:
    """Time every statement the engine runs (``fetch_frame`` announces its Arrow queries too)."""
    times: list[tuple[float, str]] = []
    started: list[float] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _before(*_args):
        started.append(time.perf_counter())

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _after(_connection, _cursor, statement, *_args):
        if started:
            times.append((time.perf_counter() - started.pop(), " ".join(statement.split())))

    return times


def time_materialise(times: list[tuple[float, str]]) -> None:
    """Also time the ``CREATE TABLE/VIEW`` of load_dataset's stages (run on the driver)."""
    from roi.data import dataset as module

    original = module._materialise

    def timed(source, name, select, *, store):
        start = time.perf_counter()
        table = original(source, name, select, store=store)
        times.append((time.perf_counter() - start,
                      f"materialise {name} ({'TABLE' if store else 'VIEW'})"))
        return table

    module._materialise = timed


def measure(folder: Path, *, engine_name: str) -> dict:
    from connectors import open_source
    from roi.config import RunConfig
    from roi.data import load_dataset
    from roi.data.attribution import revenue_attribution
    from roi.data.panel import panel_select
    from roi.data.sample import plan_customer_sample
    from roi.data.survival import survival_select
    from roi.retention.block import survival_cells_in_database
    from roi.retention.survival_sql import retention_counts
    from roi.revenue_lift.block import bayesian_cells_in_database
    from roi.revenue_lift.did_sql import did_aggregates, naive_gap_sums

    sampler = RunConfig().sampler
    laps = Laps()
    source = laps.run("open source", lambda: open_source(folder, engine=engine_name))
    times = statement_timer(source.engine)
    time_materialise(times)
    dataset = laps.run("validate", lambda: load_dataset(source))
    engine = dataset.engine
    laps.run("plan sample", lambda: plan_customer_sample(dataset))
    attribution = laps.run("attribution", lambda: revenue_attribution(dataset))
    laps.run("weekly series", dataset.weekly_series)
    panel = panel_select(dataset).order_by(None).subquery("panel")
    active = sa.select(panel).where(panel.c.active).subquery("active")
    columns = {"unit": "customer_id", "time": "month_index", "group": "join_month_index"}
    for outcome in ("revenue", "organic_revenue"):
        laps.run(f"did sums {outcome}",
                 lambda o=outcome: did_aggregates(engine, active, outcome=o, **columns))
    laps.run("naive gap sums", lambda: naive_gap_sums(
        engine, active, unit="customer_id", outcome="revenue", join_time="join_month_index",
        community="community"))
    laps.run("bayesian revenue cells", lambda: bayesian_cells_in_database(
        dataset, sampler=sampler.for_model("revenue"), attribution=attribution))
    laps.run("survival cells", lambda: survival_cells_in_database(
        dataset, sampler=sampler.for_model("retention")))
    survival = survival_select(dataset).order_by(None).subquery("survival")
    laps.run("retention curve counts",
             lambda: retention_counts(engine, survival, community="community"))
    slowest = sorted(times, reverse=True)[:25]
    return {"folder": str(folder), "engine": engine_name,
            "customers": dataset.report["customers"], "orders": dataset.report["orders"],
            "steps": laps.rows,
            "total_wall_s": round(sum(r["wall_s"] for r in laps.rows), 1),
            "total_cpu_s": round(sum(r["cpu_s"] for r in laps.rows), 1),
            "peak_rss_gib": _peak_gib(),
            "slowest_statements": [{"s": round(s, 2), "sql": sql[:160]} for s, sql in slowest]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = measure(args.folder, engine_name=args.engine)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"total wall {figures['total_wall_s']} s, cpu {figures['total_cpu_s']} s, "
          f"peak {figures['peak_rss_gib']} GiB ({figures['customers']:,} customers, "
          f"{figures['orders']:,} orders)")
    for entry in figures["slowest_statements"]:
        print(f"  {entry['s']:7.2f} s  {entry['sql']}")


if __name__ == "__main__":
    main()
