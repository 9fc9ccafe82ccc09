"""The piecewise-exponential hazard on database cells against the time-varying Cox model and
the truth (issue 19): hazard ratio and 95% CI overall and per community, CPU seconds.

Usage::

    .venv/bin/python benchmarks/piecewise_vs_cox.py data/sample benchmarks/output/world_200000_1

Per world: the cells from the database (``roi.retention.block.survival_cells_in_database``),
``PiecewiseExponentialHazard.fit_cells`` on them, ``fit`` on the start-stop table in memory
(largest relative difference from ``fit_cells``), ``CoxTimeVarying.fit`` on the table, and the
truth's ``churn_hazard_ratio``. CPU seconds (``time.process_time``) because the machine's 2
cores are shared.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def compare(folder: str) -> dict:
    from connectors import open_source
    from roi.data import load_dataset
    from roi.retention.block import survival_cells_in_database
    from roi.retention.cox_time_varying import CoxTimeVarying
    from roi.retention.piecewise_exponential import PiecewiseExponentialHazard

    dataset = load_dataset(open_source(folder))
    covariates = list(dataset.covariates)
    began = time.process_time()
    cells = survival_cells_in_database(dataset)
    cells_cpu = time.process_time() - began
    began = time.process_time()
    pwe = PiecewiseExponentialHazard().fit_cells(
        cells.cells, n_treated=cells.n_treated, n_obs=cells.n_obs, n_rows=cells.n_rows,
        n_treated_by_group=cells.n_treated_by_group)
    pwe_cpu = time.process_time() - began
    table = dataset.survival_table()
    memory = PiecewiseExponentialHazard().fit(table, covariates=covariates,
                                              community="community")
    began = time.process_time()
    cox = CoxTimeVarying().fit(table, covariates=covariates, community="community")
    cox_cpu = time.process_time() - began
    truth = json.loads((Path(folder) / "truth.json").read_text())["churn_hazard_ratio"]

    def entry(result):
        return {"hr": result.estimate, "low": result.low, "high": result.high,
                "by_group": {g: (e["hazard_ratio"], e["low"], e["high"])
                             for g, e in result.by_group.items()}}

    a, b = pwe.coefficients_, memory.coefficients_
    return {"world": folder, "rows": len(table), "cells": len(cells.cells),
            "truth": truth, "piecewise_exponential": entry(pwe.result_),
            "cox_time_varying": entry(cox.result_),
            "max_rel_diff_sql_vs_memory": float(((a - b).abs() / b.abs()).max().max()),
            "ph_p": pwe.result_.diagnostics.checks["ph_p"]["member"],
            "cpu_s": {"cells_in_database": round(cells_cpu, 2), "pwe_fit_cells": round(pwe_cpu, 3),
                      "cox_fit": round(cox_cpu, 2)}}


if __name__ == "__main__":
    for folder in sys.argv[1:] or ["data/sample"]:
        print(json.dumps(compare(folder), indent=1))
