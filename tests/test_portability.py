"""Another CPU gives the same results within the README's tolerances (Reproducibility).

"Another machine" is simulated on this one (``make test-portable`` uses the same settings):
numpy without its AVX2/AVX-512 loops, OpenBLAS's Sandybridge kernels, XLA compiling for SSE4.2.
These change summation order and the last digits of elementwise functions, which is what moving
to another CPU does. Frequentist numbers in ``results.json`` must agree to 1e-9 relative,
Bayesian ones within Monte Carlo error (4 combined MCSE).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT, run_cli

ANOTHER_CPU = {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
               "OPENBLAS_CORETYPE": "Sandybridge", "XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2",
               # the media-mix model's hand-written numba kernel, compiled for a generic x86-64
               "NUMBA_CPU_NAME": "generic"}
FREQUENTIST_REL = 1e-9
# Convergence residuals (the Cox fit's last Newton step, ~1e-14) are noise on every CPU.
ABS_FLOOR = 1e-12
BAYESIAN = ("bayesian", "paid_media", "comparison", "budget_scenarios")
NOT_COMPARED = ("generated_at",)
Z94 = 1.8808  # a 94% interval is +-1.88 sd for a normal posterior

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="the narrowed features are x86 ones")

PROBE = """
import json, jax, jax.numpy as jnp, threadpoolctl
from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
value = float(jax.jit(lambda v: jnp.sum(jnp.exp(v)))(jnp.arange(3.0)))
blas = [i["architecture"] for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"]
print(json.dumps({"dispatched": [f for f in __cpu_dispatch__ if __cpu_features__[f]],
                  "blas": blas, "jax": value}))
"""


def _another_cpu() -> dict[str, str]:
    return {**os.environ, **ANOTHER_CPU}


def test_another_cpu_settings_take_effect():
    """numpy honours the feature names (numpy 2.4 ignores old ones such as AVX2 with only an
    ImportWarning), OpenBLAS takes the kernel, XLA accepts the ISA."""
    done = subprocess.run([sys.executable, "-c", PROBE], env=_another_cpu(), capture_output=True,
                          text=True, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert not set(probe["dispatched"]) & set(ANOTHER_CPU["NPY_DISABLE_CPU_FEATURES"].split())
    assert probe["blas"] and set(probe["blas"]) == {"Sandybridge"}
    assert probe["jax"] == pytest.approx(1 + math.e + math.e ** 2, rel=1e-6)
    assert "Unknown CPU ISA" not in done.stderr and "Unknown flag" not in done.stderr


def test_makefile_uses_the_same_settings():
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    line = next(row for row in text.splitlines() if row.startswith("ANOTHER_CPU :="))
    settings = dict(word.split("=", 1) for word in shlex.split(line.split(":=", 1)[1]))
    assert settings == ANOTHER_CPU


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, f"{path}[{i}]")
    else:
        yield path, value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _bayesian_gap(here: dict, there: dict, *, ess: float, log: bool) -> tuple[float, float]:
    """|difference| of two posterior means and 4 combined Monte Carlo standard errors, the
    posterior sd read from the 94% HDI (on the log scale for a hazard ratio)."""
    scale = math.log if log else float
    key = "hazard_ratio" if log else "estimate"
    sd = max((scale(r["high"]) - scale(r["low"])) / (2 * Z94) for r in (here, there))
    return abs(scale(here[key]) - scale(there[key])), 4 * math.sqrt(2) * sd / math.sqrt(ess)


@pytest.mark.slow
def test_results_json_on_another_cpu_within_the_stated_tolerances(tmp_path):
    from roi.simulate import simulate_world

    simulate_world(n_customers=1000, months=18, seed=4).write(tmp_path / "data", fmt="csv")
    config = tmp_path / "roi.toml"
    config.write_text('seed = 5\n[sampler]\nmodels = ["revenue", "retention"]\n'
                      "draws = 300\ntune = 300\nchains = 2\n")
    argv = ["run", str(tmp_path / "data"), "--config", str(config), "--no-pdf", "--no-progress"]
    code, _, stderr = run_cli([*argv, "--out", str(tmp_path / "here")])
    assert code == 0, stderr[-3000:]
    done = subprocess.run([sys.executable, "-m", "roi.cli", *argv, "--out", str(tmp_path / "there")],
                          env=_another_cpu(), capture_output=True, text=True, check=False,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    here, there = (json.loads((tmp_path / name / "results.json").read_text())
                   for name in ("here", "there"))
    a, b = dict(_leaves(here)), dict(_leaves(there))
    compared = [p for p in a if not p.startswith(NOT_COMPARED) and not any(k in p for k in BAYESIAN)]
    assert set(compared) <= set(b) and len(compared) > 300
    differing = [(p, a[p], b[p]) for p in compared
                 if not (_number(a[p]) and _number(b[p])
                         and math.isclose(a[p], b[p], rel_tol=FREQUENTIST_REL, abs_tol=ABS_FLOOR))
                 and a[p] != b[p]]
    assert not differing, differing[:10]
    for section, model, log in (("community_revenue_lift", "revenue_bayesian", False),
                                ("community_retention_lift", "retention_bayesian", True)):
        ess = min(r["diagnostics"][model]["checks"]["min_ess_bulk"] for r in (here, there))
        gap, allowed = _bayesian_gap(here[section]["estimates"]["bayesian"],
                                     there[section]["estimates"]["bayesian"], ess=ess, log=log)
        assert gap <= allowed, (section, gap, allowed)
