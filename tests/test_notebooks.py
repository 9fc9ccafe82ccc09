"""The notebooks run top to bottom with papermill (kernel python3, cwd notebooks/) and open a
finished run: the session run ``sample_run`` (tests/conftest.py), passed as ``-p results
<its out folder>``, so CI fits nothing here; the "Refit with other settings" cell is skipped
(``refit = False``). What they show must equal what the dashboards and the sentences of the
session run say (the report's numbers: both read its ``results.json``). The copies in the repo
carry no outputs.

The ``python3`` kernel ships with the ipykernel wheel (``<venv>/share/jupyter/kernels/python3``),
so ``pip install -e '.[test]'`` is enough; elsewhere ``python -m ipykernel install --sys-prefix``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from roi.widgets import (
    budget_panel,
    data_overview,
    engagement_panel,
    headline,
    lift_explorer,
    paid_media_explorer,
    retention_explorer,
)
from tests.conftest import ROOT

NOTEBOOKS = ROOT / "notebooks"
EXPECTED = {  # notebook -> sentences (from the session run) its output must contain
    "00_your_data": [],
    "01_quickstart": [("revenue", "did"), ("retention", "cox_time_varying")],
    "02_community_revenue_lift": [("revenue", "naive"), ("revenue", "did")],
    "03_retention": [("retention", "naive"), ("retention", "cox_time_varying")],
    "04_paid_media": [],
    "05_compare_and_budget": [],
    "06_what_kind_of_community_pays": [],
}
SHIPPED = {"results": "../out", "source": "../data/sample", "refit": False, "seed": 7,
           "draws": 1000, "tune": 1000, "chains": 4}  # the defaults converge on the sample
DASHBOARDS = {"data_overview(run)": data_overview, "lift_explorer(run)": lift_explorer,
              "retention_explorer(run)": retention_explorer,
              "paid_media_explorer(run)": paid_media_explorer, "budget_panel(run)": budget_panel,
              "engagement_panel(run)": engagement_panel}


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
    namespace = _parameters(name)
    assert all("tags" not in c.metadata or "parameters" not in c.metadata["tags"]
               for c in notebook.cells[1:])
    code = _code(name)
    assert "import pymc" not in code and "roi.models" not in code  # roi calls only
    if name == "00_your_data":
        assert namespace["source"] == "../data/sample" and "roi_validate(" in code
        return
    assert {k: namespace[k] for k in SHIPPED} == SHIPPED
    refit = [c for c in notebook.cells if c.cell_type == "code" and "if refit:" in c.source]
    assert len(refit) == 1 and "# Refit with other settings" in refit[0].source
    assert "run = open_run(results, source=source)" in code


def _parameters(name: str) -> dict:
    namespace: dict = {}
    exec(_read(name).cells[0].source, namespace)  # noqa: S102 - our own parameters cell
    return namespace


def _code(name: str) -> str:
    return "\n".join(c.source for c in _read(name).cells if c.cell_type == "code")


@pytest.fixture(scope="module")
def executed(tmp_path_factory, sample_run) -> dict[str, tuple[Path, float]]:
    """Every notebook run by papermill in its own process, two at a time (2-core machines), on
    the session run's folder."""
    folder = tmp_path_factory.mktemp("notebooks")

    def execute(name: str) -> tuple[Path, float]:
        executed = folder / f"{name}.ipynb"
        given = (["-p", "scratch", str(folder / "scratch")] if name == "00_your_data"
                 else ["-p", "results", str(sample_run.out), "-p", "out", str(folder / name)])
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOKS / f"{name}.ipynb"),
                               str(executed), "--kernel", "python3", "--cwd", str(NOTEBOOKS),
                               *given, "--no-progress-bar"],
                              capture_output=True, text=True, timeout=400)
        assert done.returncode == 0, f"{name} failed:\n{done.stderr[-3000:]}"
        return executed, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(execute, name) for name in sorted(EXPECTED)}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_with_papermill_and_shows_the_run_numbers(name, executed, sample_run):
    path, seconds = executed[name]
    print(f"{name}: {seconds:.1f} s")
    notebook = nbformat.read(path, as_version=4)
    assert notebook.metadata["papermill"]["exception"] in (None, False)
    errors = [o for c in notebook.cells for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert all(c.execution_count for c in notebook.cells if c.cell_type == "code")
    text = _text_outputs(notebook)
    assert not (NOTEBOOKS / "report").exists()  # nothing written beside the notebooks
    if name == "00_your_data":
        assert "orders.order_date: missing required column; columns found: Date, Total" in text
        assert text.count("satisfies the data contract") == 2  # the sample, then renamed
        return
    assert f"Not refitted: the dashboards show the run in {sample_run.out}" in text
    for section, method in EXPECTED[name]:
        assert getattr(sample_run, section)[method].sentence() in text
    for section in ("community_revenue_lift", "community_retention_lift"):
        if f'headline(run, "{section}")' in _code(name):
            assert all(line in text for line in headline(sample_run.results, section))
    code = _code(name)
    for call, dashboard in DASHBOARDS.items():
        if call in code:  # the widget's plain-text form, from the same results.json
            assert repr(dashboard(sample_run.out))[:110] in text, call
    # Every notebook shows no unconverged model when the session run converged
    diagnostics = sample_run.results["diagnostics"]
    if all(d.get("converged", True) for d in diagnostics.values()):
        assert "NOT CONVERGED" not in text


def test_paid_media_notebook_prints_the_roas_of_the_run(executed, sample_run):
    path, _ = executed["04_paid_media"]
    text = _text_outputs(nbformat.read(path, as_version=4))
    for name, channel in sample_run.results["paid_media"]["channels"].items():
        roas = channel.get("roas")
        if roas:
            line = (f"{name}: ROAS {roas['estimate']:.2f} ({roas['interval']} "
                    f"{roas['low']:.2f} to {roas['high']:.2f}) on ${channel['spend']:,.0f} spend")
        else:
            line = f"{name}: ${channel['spend']:,.0f} spend, ROAS not estimated"
        assert line in text


def test_02_before_you_quote_a_number_prints_the_pretrend_test(executed, sample_run):
    path, _ = executed["02_community_revenue_lift"]
    text = _text_outputs(nbformat.read(path, as_version=4))
    test = sample_run.revenue["did"].diagnostics.checks["pretrend_event"]
    assert (f"Pre-trend test: Wald {test['statistic']:.2f}, df {test['df']}, "
            f"p = {test['p_value']:.3f}") in text
    assert "'statistic': None" not in text


def test_06_prints_each_tier_of_the_run(executed, sample_run):
    path, _ = executed["06_what_kind_of_community_pays"]
    text = _text_outputs(nbformat.read(path, as_version=4))
    tiers = sample_run.results["community_engagement"]["tiers"]
    assert tiers["rule"]["rule"] in text
    for name, tier in tiers["by_tier"].items():
        lift = tier["lift_per_member_month"]
        assert (f"{name}: {tier['members']:,} members, {tier['member_months']:,} member-months; "
                f"lift ${lift['estimate']:,.2f} per member-month" in text
                if lift.get("estimate") is not None else f"{name}: {tier['members']:,} members"
                in text), name
