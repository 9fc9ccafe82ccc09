"""The revenue-lift block's naive gap and DiDs: from the panel in memory vs from database sums.

Usage (from the repository root; one process per path, so each peak RSS is its own)::

    .venv/bin/python -m benchmarks.revenue_aggregates FOLDER --path panel
    .venv/bin/python -m benchmarks.revenue_aggregates FOLDER --path aggregates
    .venv/bin/python -m benchmarks.revenue_aggregates FOLDER --path compare

``panel``: fetch the customer-month panel, then ``revenue_lift_estimates(panel)`` (naive, DiD,
ratio DiD, join-month adjustment, coverage; no covariates, no Bayesian model).
``aggregates``: ``revenue_aggregates_in_database`` then the same block from the sums.
``compare``: both, and the largest relative difference over every number of the block.
Prints one JSON line: CPU seconds (process time, all threads), wall seconds, peak RSS
(``ru_maxrss``) after opening the data and at the end, rows fetched. The machine is shared:
CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import time


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--path", choices=("panel", "aggregates", "compare"), required=True)
    args = parser.parse_args()
    from connectors import open_source
    from roi.data import load_dataset
    from roi.revenue_lift.block import revenue_aggregates_in_database, revenue_lift_estimates

    dataset = load_dataset(open_source(args.folder))
    figures = {"folder": args.folder, "path": args.path, "opened_peak_mib": _peak_mib()}
    cpu, wall = time.process_time(), time.perf_counter()
    results = {}
    if args.path in ("panel", "compare"):
        panel = dataset.customer_month_panel()
        figures["panel_rows_fetched"] = len(panel)
        results["panel"] = revenue_lift_estimates(panel)
        del panel
        figures["panel_cpu_s"] = time.process_time() - cpu
        figures["panel_wall_s"] = time.perf_counter() - wall
        cpu, wall = time.process_time(), time.perf_counter()
    if args.path in ("aggregates", "compare"):
        aggregates = revenue_aggregates_in_database(dataset)
        figures["aggregates_rows_fetched"] = aggregates.rows_fetched
        figures["aggregates_query_wall_s"] = time.perf_counter() - wall
        results["aggregates"] = revenue_lift_estimates(None, aggregates=aggregates)
        figures["aggregates_cpu_s"] = time.process_time() - cpu
        figures["aggregates_wall_s"] = time.perf_counter() - wall
    figures["peak_mib"] = _peak_mib()
    if args.path == "compare":
        from tests.test_revenue_aggregates import largest_difference

        figures["largest_relative_difference"] = largest_difference(results["aggregates"],
                                                                    results["panel"])
    figures["estimates"] = {name: r.estimate for name, r in
                            next(iter(results.values())).items()}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
