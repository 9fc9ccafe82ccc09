"""What every benchmark script shares: the cached simulated worlds and a lap timer.

The scripts run as ``python benchmarks/<name>.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "output"
ROOT = Path(__file__).resolve().parents[1]


CHUNKED_ABOVE = 2_000_000
"""Worlds larger than this are simulated in chunks of 250,000 customers (bounded memory,
``roi.simulate_chunked``); smaller ones in one piece, as their cached copies were."""


def generate(customers: int, seed: int) -> Path:
    """The cached Parquet world of ``customers`` (generated once, in its own process)."""
    folder = OUTPUT / f"world_{customers}_{seed}"
    if (folder / "truth.json").is_file():
        return folder
    start = time.perf_counter()
    chunks = ["--chunk-customers", "250000"] if customers > CHUNKED_ABOVE else []
    subprocess.run([sys.executable, "-m", "roi.simulate", "--out", str(folder), "--customers",
                    str(customers), "--seed", str(seed), "--format", "parquet", *chunks],
                   check=True, cwd=ROOT)
    print(f"generated {customers:,} customers in {time.perf_counter() - start:.1f} s -> {folder}",
          file=sys.stderr)
    return folder


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)


class Laps:
    """Wall time and peak RSS (GiB, so far) after each named step; ``echo`` prints each lap on
    stderr (a cold Bayesian compile can take minutes on a busy machine)."""

    def __init__(self, *, echo: bool = False) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_gib: dict[str, float] = {}
        self.echo = echo
        self.clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self.clock, 2)
        self.peak_gib[name] = peak_rss_gib()
        if self.echo:
            print(f"{name}: {self.seconds[name]} s, peak {self.peak_gib[name]} GiB",
                  file=sys.stderr, flush=True)
        self.clock = now
