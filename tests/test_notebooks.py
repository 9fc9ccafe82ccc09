"""The notebooks run top to bottom with papermill (kernel python3, cwd notebooks/) and show the
numbers of their own run; the copies in the repo carry no outputs.

Speed: each notebook fits every model once. The tests pass ``tune``/``chains`` smaller than the
notebooks' defaults (the same as the shared session run ``sample_run``, tests/conftest.py), run
the notebooks two at a time, and make the session run meanwhile. Numbers that do not sample
(naive, DiD, Cox) must equal the session run's; sampled numbers (94% HDI) must equal the
notebook's own ``results.json``.

The ``python3`` kernel ships with the ipykernel wheel (``<venv>/share/jupyter/kernels/python3``),
so ``pip install -e '.[test]'`` is enough; elsewhere ``python -m ipykernel install --sys-prefix``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from roi.widgets import lift_explorer, paid_media_explorer, retention_explorer
from tests.conftest import ROOT, SAMPLE_RUN

NOTEBOOKS = ROOT / "notebooks"
EXPECTED = {  # notebook -> sentences (from the session run) its output must contain
    "01_quickstart": [("revenue", "did"), ("retention", "cox_time_varying")],
    "02_community_revenue_lift": [("revenue", "naive"), ("revenue", "did")],
    "03_retention": [("retention", "naive"), ("retention", "cox_time_varying")],
    "04_paid_media": [],
    "05_compare_and_budget": [],
}
FAST = {k: SAMPLE_RUN[k] for k in ("tune", "chains")}  # papermill overrides (1000, 4)


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _text_outputs(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output["text"])
            elif "data" in output:
                parts.append(str(output["data"].get("text/plain", "")))
    return "\n".join(parts)


def test_every_notebook_is_listed():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stored_notebook_has_no_outputs_and_papermill_parameters(name):
    notebook = _read(name)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    first = notebook.cells[0]
    assert first.cell_type == "code" and "parameters" in first.metadata.get("tags", [])
    namespace: dict = {}
    exec(first.source, namespace)  # noqa: S102 - our own parameters cell
    assert (namespace["source"], namespace["seed"], namespace["draws"]) == (
        "../data/sample", 7, 200)
    assert all("tags" not in c.metadata or "parameters" not in c.metadata["tags"]
               for c in notebook.cells[1:])
    code = _code(name)
    assert "import pymc" not in code and "roi.models" not in code  # roi calls only


def _code(name: str) -> str:
    return "\n".join(c.source for c in _read(name).cells if c.cell_type == "code")


def _overrides(name: str) -> list[str]:
    """``-p tune 150 -p chains 2`` for the parameters the notebook has."""
    namespace: dict = {}
    exec(_read(name).cells[0].source, namespace)  # noqa: S102 - our own parameters cell
    return [arg for key, value in FAST.items() if key in namespace
            for arg in ("-p", key, str(value))]


@pytest.fixture(scope="module")
def executed(tmp_path_factory, request) -> dict[str, tuple[Path, Path, float]]:
    """Every notebook run by papermill in its own process, two at a time (2-core machines),
    while this process makes the session run the numbers are checked against."""
    folder = tmp_path_factory.mktemp("notebooks")

    def execute(name: str) -> tuple[Path, Path, float]:
        out, executed = folder / f"{name}-out", folder / f"{name}.ipynb"
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOKS / f"{name}.ipynb"),
                               str(executed), "--kernel", "python3", "--cwd", str(NOTEBOOKS),
                               "-p", "out", str(out), *_overrides(name), "--no-progress-bar"],
                              capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, f"{name} failed:\n{done.stderr[-3000:]}"
        return executed, out, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(execute, name) for name in sorted(EXPECTED)}
        request.getfixturevalue("sample_run")
        return {name: future.result() for name, future in futures.items()}


def _deterministic(estimates: dict) -> dict:
    return {k: v for k, v in estimates.items() if "HDI" not in str(v.get("interval"))}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_with_papermill_and_shows_the_run_numbers(name, executed, sample_run):
    path, out, seconds = executed[name]
    print(f"{name}: {seconds:.1f} s")
    notebook = nbformat.read(path, as_version=4)
    assert notebook.metadata["papermill"]["exception"] in (None, False)
    errors = [o for c in notebook.cells for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert all(c.execution_count for c in notebook.cells if c.cell_type == "code")
    text = _text_outputs(notebook)
    bars = [o for c in notebook.cells for o in c.get("outputs", [])
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
            and str(o["data"].get("text/plain")).startswith("roi: 0/")]
    assert len(bars) == 1  # the run's progress bar is a notebook widget (tqdm.auto)
    for section, method in EXPECTED[name]:
        assert getattr(sample_run, section)[method].sentence() in text
    code = _code(name)
    if "lift_explorer(outputs)" in code:
        assert repr(lift_explorer(sample_run))[:110] in text  # the widget's plain-text form
    if "retention_explorer(outputs)" in code:  # up to the first sampled (Bayesian) number
        assert repr(retention_explorer(sample_run)).split(", bayesian")[0] in text
    results = json.loads(Path(out, "results.json").read_text())
    # Exact on purpose: the kernel and sample_run compute on this CPU in this session.
    for section in ("community_revenue_lift", "community_retention_lift"):
        assert (_deterministic(results[section]["estimates"])
                == _deterministic(sample_run.results[section]["estimates"]))
    assert results["data"]["source"] == "folder ../data/sample"
    if "tune" in _overrides(name):
        assert results["config"]["sampler"]["tune"] == FAST["tune"]
    if "paid_media_explorer(outputs)" in code:
        assert repr(paid_media_explorer(results))[:110] in text


def test_paid_media_notebook_prints_the_roas_of_its_run(executed):
    path, out, _ = executed["04_paid_media"]
    text = _text_outputs(nbformat.read(path, as_version=4))
    results = json.loads(Path(out, "results.json").read_text())
    for name, channel in results["paid_media"]["channels"].items():
        roas = channel.get("roas")
        if roas:
            line = (f"{name}: ROAS {roas['estimate']:.2f} ({roas['interval']} "
                    f"{roas['low']:.2f} to {roas['high']:.2f}) on ${channel['spend']:,.0f} spend")
        else:
            line = f"{name}: ${channel['spend']:,.0f} spend, ROAS not estimated"
        assert line in text
