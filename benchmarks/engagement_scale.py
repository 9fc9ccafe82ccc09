"""The ``engagement`` step of ``roi run`` (community_engagement_block) at scale: CPU, wall and
the step's extra resident memory, per mode, after one load of a cached world.

Modes (comma-separated, run in sequence): ``mem`` (today's default without a sample: DiDs on the
panel in memory), ``db`` (tier and programme DiDs from database aggregates, in_database=True),
``sampled:<max_panel_rows>`` (panel and survival of roi.data.sample's customers, sample=...).

Usage::

    .venv/bin/python benchmarks/engagement_scale.py benchmarks/output/world_1000000_1 db,mem,sampled:4000000

Measured 2026-12-05 at 1M customers (13.1M panel rows, 8.2M activity rows, no programmes or
referrals in this world), 2 cores shared at load average 6-10: CPU seconds of the step (DuckDB's
threads included) are the comparable figure; extra GiB = peak RSS during the step above before.

=====================  =======  ======  =========  ======================================
mode                   CPU s    wall s  extra GiB  note
=====================  =======  ======  =========  ======================================
before (commit d8bda51) 47.4    401.5   1.91       load average ~10
mem                    52.8     132.4   3.07       same numbers as before
db                     74.5     217.6   1.70       DiDs equal mem to ~1e-14
sampled:4000000        66.5     138.9   0.33       30.6% sample; counts/DiDs all customers'
=====================  =======  ======  =========  ======================================
"""

import gc
import json
import os
import resource
import sys
import threading
import time

import psutil

folder, modes = sys.argv[1], sys.argv[2].split(",")
# ROI_ROOT: another checkout to measure (e.g. an earlier commit's `git archive`)
sys.path.insert(0, os.environ.get("ROI_ROOT", str(__import__("pathlib").Path(__file__)
                                                  .resolve().parents[1])))
from connectors import open_source  # noqa: E402
from roi.data import load_dataset  # noqa: E402
from roi.engagement.block import community_engagement_block  # noqa: E402
from roi.results import _jsonable  # noqa: E402

t0 = time.perf_counter()
dataset = load_dataset(open_source(folder))
print(f"loaded dataset in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
proc = psutil.Process()
current = (None, None, None)
for mode in modes:
    sample = None
    if mode.startswith("sampled"):
        from roi.data.sample import plan_customer_sample, sampled_dataset

        sample = plan_customer_sample(dataset, max_panel_rows=int(mode.split(":")[1]))
        key = ("sampled", mode)
        rows = sampled_dataset(dataset, sample)
    else:
        key, rows = ("full",), dataset
    if current[0] != key:
        current = None
        gc.collect()
        t = time.perf_counter()
        current = (key, rows.customer_month_panel(), rows.survival_table())
        print(
            f"{mode}: panel {len(current[1]):,} rows, survival {len(current[2]):,} in {time.perf_counter() - t:.1f}s",
            file=sys.stderr,
            flush=True,
        )
    _, panel, survival = current
    gc.collect()
    base = proc.memory_info().rss
    peak, stop = [base], [False]

    def watch(peak=peak, stop=stop):
        while not stop[0]:
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    cpu, wall = time.process_time(), time.perf_counter()
    kw = {}
    if mode == "db":
        kw["in_database"] = True
    if sample is not None:
        kw["sample"] = sample
    block = community_engagement_block(dataset, panel=panel, survival=survival, **kw)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    stop[0] = True
    th.join()
    out = {
        "mode": mode,
        "cpu_s": round(cpu, 1),
        "wall_s": round(wall, 1),
        "rss_before_gib": round(base / 2**30, 2),
        "step_extra_gib": round((peak[0] - base) / 2**30, 2),
        "process_peak_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "load1": os.getloadavg()[0],
    }
    print(json.dumps(out), flush=True)
    json.dump(
        _jsonable(block),
        open(f"/tmp/engagement_block_{mode.replace(':', '_')}.json", "w"),
        indent=1,
        default=str,
    )
