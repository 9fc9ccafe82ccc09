"""The notebooks run top to bottom with papermill (kernel python3, cwd notebooks/) and show the
same numbers as a direct ``run_models`` call; the copies in the repo carry no outputs.

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

from roi.widgets import lift_explorer, retention_explorer
from tests.conftest import ROOT
from tests.test_widgets import sample_outputs

NOTEBOOKS = ROOT / "notebooks"
EXPECTED = {  # notebook -> sentences (from the direct run) its output must contain
    "01_quickstart": [("revenue", "did"), ("retention", "cox_time_varying")],
    "02_community_revenue_lift": [("revenue", "naive"), ("revenue", "did")],
    "03_retention": [("retention", "naive"), ("retention", "cox_time_varying")],
}


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


def _code(name: str) -> str:
    return "\n".join(c.source for c in _read(name).cells if c.cell_type == "code")


@pytest.fixture(scope="module")
def widget_texts() -> dict[str, str]:
    outputs = sample_outputs()
    return {"lift_explorer": repr(lift_explorer(outputs)),
            "retention_explorer": repr(retention_explorer(outputs))}


@pytest.fixture(scope="module")
def executed(tmp_path_factory) -> dict[str, tuple[Path, Path, float]]:
    """Every notebook run by papermill in its own process, two at a time (2-core machines),
    while this process makes the direct run the numbers are checked against."""
    folder = tmp_path_factory.mktemp("notebooks")

    def execute(name: str) -> tuple[Path, Path, float]:
        out, executed = folder / f"{name}-out", folder / f"{name}.ipynb"
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOKS / f"{name}.ipynb"),
                               str(executed), "--kernel", "python3", "--cwd", str(NOTEBOOKS),
                               "-p", "out", str(out), "--no-progress-bar"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{name} failed:\n{done.stderr[-3000:]}"
        return executed, out, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(execute, name) for name in sorted(EXPECTED)}
        sample_outputs()
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_with_papermill_and_shows_the_run_numbers(name, executed,
                                                                 widget_texts):
    path, out, seconds = executed[name]
    print(f"{name}: {seconds:.1f} s")
    expected = sample_outputs()
    notebook = nbformat.read(path, as_version=4)
    assert notebook.metadata["papermill"]["exception"] in (None, False)
    errors = [o for c in notebook.cells for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert all(c.execution_count for c in notebook.cells if c.cell_type == "code")
    text = _text_outputs(notebook)
    for section, method in EXPECTED[name]:
        assert getattr(expected, section)[method].sentence() in text
    for explorer in widget_texts:
        if f"{explorer}(outputs)" in _code(name):
            assert widget_texts[explorer] in text  # the widget's plain-text form
    results = json.loads(Path(out, "results.json").read_text())
    assert (results["community_revenue_lift"]["estimates"]
            == expected.results["community_revenue_lift"]["estimates"])
    assert results["data"]["source"] == "folder ../data/sample"
