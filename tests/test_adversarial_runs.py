"""Adversarial runs (issue 14, items 15-17 and runs that fail badly): each case asserts the exit
code, the message and which files exist, not just "no traceback".

Items of the issue:

* 15: a refused estimate (every member joined before the window, one customer, every customer a
  member) used to crash the summary ("internal error", exit 1) or write nothing;
* 16: SQLite failed on PostgreSQL-only SQL and a missing file was created;
* 17: ``--out`` naming a file failed only after every model ran; an old ``report.pdf`` was listed
  as written by a ``--no-pdf`` run; ``roi report`` on malformed JSON was an internal error;
  ``[data] start`` after ``end`` was blamed on ``orders.order_date``.

Cases of this campaign: an output path with spaces and non-ASCII letters, a missing config
file, a config with an unknown key or a wrong type, ``roi report`` on a run that refused
everything, a community with costs and no members, a window without orders, a one-month
window, an output folder that cannot be written, a staging folder left by a killed run, SIGTERM
during ``roi report``. Every run skips the Bayesian models (``[sampler] models = []``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli
from tests.test_interrupts import Run, hashes

FAST = "seed = 11\n[sampler]\nmodels = []\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """A 400-customer world (``data/``), the fast config, and ``base/``: its run's outputs."""
    from roi.simulate import simulate_world

    root = tmp_path_factory.mktemp("adversarial-runs")
    simulate_world(n_customers=400, seed=5).write(root / "data")
    (root / "fast.toml").write_text(FAST)
    code, _, stderr = roi(root, "run", root / "data", "--out", root / "base")
    assert code == 0, stderr[-2000:]
    return root


def roi(world: Path, command: str, *args, config: str | Path | None = "fast.toml",
        pdf: bool = False) -> tuple[int, str, str]:
    """``roi COMMAND ARGS [--config] [--no-pdf] --no-progress`` in this process."""
    argv = [command, *map(str, args)]
    if config is not None and command in ("run", "validate"):
        argv += ["--config", str(world / config) if isinstance(config, str) else str(config)]
    if not pdf and command in ("run", "report"):
        argv.append("--no-pdf")
    if command == "run":
        argv.append("--no-progress")
    return run_cli(argv)


def variant(world: Path, name: str, change) -> Path:
    """A copy of the world's CSV folder with ``change(tables)`` applied (text, as read)."""
    folder = world / name
    tables = {p.stem: pd.read_csv(p, dtype=str, keep_default_na=False)
              for p in (world / "data").glob("*.csv")}
    change(tables)
    folder.mkdir()
    for table, frame in tables.items():
        frame.to_csv(folder / f"{table}.csv", index=False)
    return folder


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def refusal(document: dict, model: str) -> str:
    """The reason the terminal prints: the bare refusal, else the last warning."""
    diagnostics = document["diagnostics"][model]
    refused = (diagnostics.get("checks") or {}).get("refused")
    warnings = diagnostics["warnings"]
    assert refused or warnings, f"{model} has no reason"
    return refused if isinstance(refused, str) and refused else warnings[-1]


# --------------------------------------------------------------------------- item 15: refusals

def test_every_member_joined_before_the_window_is_a_refusal_not_a_crash(world, tmp_path):
    def early(tables):
        tables["members"]["joined_at"] = "2022-06-01"
        customers = tables["customers"]
        customers["first_seen"] = customers["first_seen"].where(
            customers["first_seen"] < "2022-06-01", "2022-05-01")

    code, stdout, stderr = roi(world, "run", variant(world, "early", early), "--out", tmp_path)
    assert code == 0, stderr[-2000:]
    document = results(tmp_path)
    did = document["community_revenue_lift"]["estimates"]["did"]
    assert did["estimate"] is None and did["converged"] is False
    reason = refusal(document, "revenue_did")
    assert "joined before the window" in reason
    assert f"Revenue lift [did]: not estimated ({reason})" in stdout
    assert document["community_revenue_lift"]["preferred"] is None
    assert {p.name for p in tmp_path.iterdir()} == {"results.json", "report.html",
                                                     "report.xlsx"}


def test_one_customer_only_completes_and_says_why_nothing_is_estimated(world, tmp_path):
    def one(tables):
        keep = tables["members"]["customer_id"].replace("", pd.NA).dropna().iloc[0]
        for table in ("customers", "orders", "members"):
            tables[table] = tables[table][tables[table]["customer_id"] == keep]
        tables["activity"] = tables["activity"][tables["activity"]["customer_id"] == keep]

    code, stdout, stderr = roi(world, "run", variant(world, "one", one), "--out", tmp_path)
    assert code == 0, stderr[-2000:]
    document = results(tmp_path)
    assert document["data"]["customers"] == 1
    for name, estimate in document["community_revenue_lift"]["estimates"].items():
        assert estimate["estimate"] is None, name
        assert f"Revenue lift [{name}]: not estimated ({refusal(document, f'revenue_{name}')})" \
            in stdout
    assert "no churn events" in refusal(document, "retention_cox_time_varying")
    assert (tmp_path / "report.html").is_file() and (tmp_path / "report.xlsx").is_file()


def test_every_customer_a_member_completes_with_a_number_or_a_reason(world, tmp_path):
    def everyone(tables):
        customers, members = tables["customers"], tables["members"]
        missing = customers[~customers["customer_id"].isin(members["customer_id"])]
        extra = pd.DataFrame({c: "" for c in members.columns}, index=range(len(missing)))
        extra["customer_id"] = missing["customer_id"].to_numpy()
        extra["community"], extra["joined_at"] = "forum", "2023-06-15"
        extra["member_id"] = [f"added-{i}" for i in range(len(missing))]
        tables["members"] = pd.concat([members, extra], ignore_index=True)

    code, stdout, stderr = roi(world, "run", variant(world, "everyone", everyone),
                               "--out", tmp_path)
    assert code == 0, stderr[-2000:]
    document = results(tmp_path)
    lines = [line for line in stdout.splitlines() if line.startswith(("Revenue lift",
                                                                      "Churn hazard"))]
    sections = ("community_revenue_lift", "community_retention_lift")
    assert len(lines) == sum(len(document[s]["estimates"]) for s in sections)
    for section, prefix in zip(sections, ("revenue", "retention"), strict=True):
        for name, estimate in document[section]["estimates"].items():
            value = estimate.get("estimate", estimate.get("hazard_ratio"))
            if value is None:   # refused: the reason is in results.json and on the terminal
                assert f"not estimated ({refusal(document, f'{prefix}_{name}')})" in stdout
            else:
                assert math.isfinite(value)


# --------------------------------------------------------------------------- item 17

def test_out_naming_a_file_fails_before_the_source_is_opened(world, tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    code, stdout, stderr = roi(world, "run", tmp_path / "no-such-folder", "--out", target)
    assert code == 2
    assert f"--out {target} is a file, not a folder" in stderr
    assert "no-such-folder" not in stderr, "the source was opened before --out was checked"
    assert target.read_text() == "keep me"


def test_an_old_pdf_is_left_alone_and_not_listed_after_a_no_pdf_run(world, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(world / "base", out)
    (out / "report.pdf").write_bytes(b"%PDF-1.4 an earlier run's report")
    (out / "notes.txt").write_text("the analyst's own file")
    code, stdout, stderr = roi(world, "run", world / "data", "--out", out)
    assert code == 0, stderr[-2000:]
    listed = stdout.split("Outputs written to", 1)[1].splitlines()[1:4]
    assert sorted(Path(line.strip()).name for line in listed) == [
        "report.html", "report.xlsx", "results.json"]
    assert "report.pdf" not in stdout.split("Outputs written to", 1)[1].split("note:")[0]
    assert f"note: report.pdf in {out} is from an earlier run; this run did not write it" \
        in stdout
    assert (out / "report.pdf").read_bytes() == b"%PDF-1.4 an earlier run's report"
    assert (out / "notes.txt").read_text() == "the analyst's own file"
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "staging left behind"


def test_report_on_malformed_json_names_the_file_and_the_position(world, tmp_path):
    broken = tmp_path / "results.json"
    broken.write_text('{\n  "schema_version": 1,\n  "data": {,}\n}\n')
    code, _, stderr = roi(world, "report", broken)
    assert code == 2
    assert f"error: {broken} is not valid JSON" in stderr
    assert "line 3, column 12" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]


def test_start_after_end_blames_the_config_keys(world, tmp_path):
    config = tmp_path / "window.toml"
    config.write_text(FAST.replace("[sampler]", "[data]\nstart = 2024-06-01\nend = "
                                   "2024-01-01\n[sampler]"))
    code, _, stderr = roi(world, "run", world / "data", "--out", tmp_path / "out",
                          config=config)
    assert code == 2
    assert "[data] start (2024-06-01) is after [data] end (2024-01-01)" in stderr
    assert "orders.order_date" not in stderr
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- item 16: SQLite

def _sqlite_world(world: Path, path: Path) -> None:
    with sqlite3.connect(path) as connection:
        for csv in sorted((world / "data").glob("*.csv")):
            frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
            frame.to_sql(csv.stem, connection, index=False)
    connection.close()


def test_sqlite_file_gives_the_numbers_of_the_same_csv_and_is_not_written(world, tmp_path):
    database = tmp_path / "crm world.db"
    _sqlite_world(world, database)
    before = database.read_bytes()
    code, stdout, stderr = roi(world, "run", f"sqlite:///{database}", "--out", tmp_path / "out")
    assert code == 0, stderr[-2000:]
    files, sqlite = results(world / "base"), results(tmp_path / "out")
    assert sqlite["data"]["orders"] == files["data"]["orders"]
    for name, estimate in files["community_revenue_lift"]["estimates"].items():
        other = sqlite["community_revenue_lift"]["estimates"][name]
        for key in ("estimate", "low", "high"):
            assert other[key] == pytest.approx(estimate[key], rel=1e-9, abs=1e-9), (name, key)
    assert database.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crm world.db", "out"], \
        "SQLite wrote a journal beside the file"


def test_a_missing_sqlite_file_is_an_error_naming_it_and_is_not_created(world, tmp_path):
    missing = tmp_path / "nothere.db"
    code, _, stderr = roi(world, "validate", f"sqlite:///{missing}")
    assert code == 2
    assert f"error: SQLite database file not found: {missing}" in stderr
    assert not missing.exists()


# --------------------------------------------------------------------------- campaign

def test_output_path_with_spaces_and_non_ascii_letters(world, tmp_path):
    out = tmp_path / "Q3 résultats — ünïcode 社区"
    code, stdout, stderr = roi(world, "run", world / "data", "--out", out)
    assert code == 0, stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.xlsx",
                                                     "results.json"]
    assert str(out / "results.json") in stdout
    assert results(out)["data"]["customers"] == 400
    mask = os.umask(0o022)
    os.umask(mask)
    for path in out.iterdir():   # as a plain write would make them, not mkstemp's 0600
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path.name


def test_missing_config_file_names_it_and_writes_nothing(world, tmp_path):
    code, _, stderr = roi(world, "run", world / "data", "--out", tmp_path / "out",
                          config=tmp_path / "roi.toml")
    assert code == 2
    assert f"config {tmp_path / 'roi.toml'}: " in stderr and "No such file" in stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("text", "message"), [
    ('colour = "blue"\n', "unknown key(s) ['colour']"),
    ('[sampler]\ndraws = "many"\n', "[sampler] draws must be a whole number >= 1, not 'many'"),
    ("[sampler]\nchains = 0\n", "[sampler] chains must be a whole number >= 1, not 0"),
    ('[sampler]\nbackend = "stan"\n', "[sampler] backend must be 'nutpie' or 'pymc'"),
    ("[data]\nstart = 2024-13-01\n", "roi.toml: "),
])
def test_a_bad_config_is_refused_before_any_work(world, tmp_path, text, message):
    config = tmp_path / "roi.toml"
    config.write_text(text)
    code, _, stderr = roi(world, "run", world / "data", "--out", tmp_path / "out",
                          config=config)
    assert code == 2, stderr[-2000:]
    assert stderr.startswith(f"error: config {config}")
    assert message in stderr
    assert not (tmp_path / "out").exists()


def test_report_again_from_a_run_that_refused_everything(world, tmp_path):
    def early(tables):
        tables["members"]["joined_at"] = "2022-06-01"
        tables["customers"]["first_seen"] = "2022-05-01"

    out = tmp_path / "out"
    code, _, stderr = roi(world, "run", variant(world, "early-report", early), "--out", out)
    assert code == 0, stderr[-2000:]
    (out / "report.html").unlink()
    code, stdout, stderr = roi(world, "report", out)
    assert code == 0, stderr[-2000:]
    assert f"html: {out / 'report.html'}" in stdout
    html = (out / "report.html").read_text()
    assert "not estimated" in html or "No causal revenue-lift estimator" in html


def test_a_community_with_costs_and_no_members(world, tmp_path):
    def ghost(tables):
        costs = tables["community_costs"]
        extra = costs.iloc[:6].copy()
        extra["community"], extra["cost"] = "ghost town", "1000"
        tables["community_costs"] = pd.concat([costs, extra], ignore_index=True)

    code, stdout, stderr = roi(world, "run", variant(world, "ghost", ghost), "--out", tmp_path)
    assert code == 0, stderr[-2000:]
    document = results(tmp_path)
    # Six rows of 1,000 dated 2023-01-01: the days before the first complete week of the window
    # (2023-01-02) fall outside it, so a little less than 6,000 is booked, but it is booked.
    assert 5500.0 < document["data"]["community_costs"]["ghost town"] <= 6000.0
    assert "ghost town" not in document["community_revenue_lift"]["member_months_by_community"]
    assert set(document["community_revenue_lift"]["by_community"]) == {"discord", "forum"}


def test_a_window_without_orders_is_a_data_error(world, tmp_path):
    config = tmp_path / "roi.toml"
    config.write_text(FAST.replace("[sampler]", "[data]\nstart = 2030-01-01\nend = "
                                   "2030-12-31\n[sampler]"))
    code, _, stderr = roi(world, "run", world / "data", "--out", tmp_path / "out",
                          config=config)
    assert code == 2
    assert "orders: none of the" in stderr and "2030-01-01 to 2030-12-31" in stderr
    assert not (tmp_path / "out").exists()


def test_a_one_month_window_refuses_the_before_after_designs(world, tmp_path):
    config = tmp_path / "roi.toml"
    config.write_text(FAST.replace("[sampler]", "[data]\nstart = 2024-03-01\nend = "
                                   "2024-03-31\n[sampler]"))
    code, stdout, stderr = roi(world, "run", world / "data", "--out", tmp_path / "out",
                               config=config)
    assert code == 0, stderr[-2000:]
    document = results(tmp_path / "out")
    assert (document["data"]["start"], document["data"]["end"]) == ("2024-03-01", "2024-03-31")
    estimates = document["community_revenue_lift"]["estimates"]
    assert math.isfinite(estimates["naive"]["estimate"])
    assert estimates["did"]["estimate"] is None   # no month before joining inside the window
    assert f"Revenue lift [did]: not estimated ({refusal(document, 'revenue_did')})" in stdout


def test_an_output_folder_that_cannot_be_written(world, tmp_path):
    if os.geteuid() == 0:   # root writes through permission bits: use a read-only file system
        out = Path("/sys/roi-adversarial-out")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        out = locked / "out"
    code, _, stderr = roi(world, "run", world / "data", "--out", out)
    assert code == 2, stderr[-2000:]
    assert f"cannot create the output folder {out}" in stderr
    assert not out.exists()


def test_a_staging_folder_of_a_killed_run_is_removed_by_the_next_run(world, tmp_path):
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "out"
    shutil.copytree(world / "base", out)
    stale = out / f".roi-staging.{dead.pid}.abc123"
    stale.mkdir()
    (stale / "results.json").write_text("half a run")
    code, _, stderr = roi(world, "run", world / "data", "--out", out)
    assert code == 0, stderr[-2000:]
    assert not stale.exists()
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.xlsx",
                                                     "results.json"]


@pytest.mark.slow
def test_sigterm_during_roi_report_leaves_the_earlier_reports(world, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(world / "base", out)
    before = hashes(out)
    run = Run(["report", str(out), "--no-pdf"])
    run.wait_for("roi report: writing the reports")
    run.process.send_signal(signal.SIGTERM)
    assert run.finish() == 143, run.stderr[-2000:]
    assert "interrupted" in run.stderr
    assert hashes(out) == before


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "cannot read {path}: No such file or directory"),
    ("not results", "{path} is not a results.json written by roi run (no schema_version)"),
    ("out is a file", "--out {out} is a file, not a folder"),
])
def test_roi_report_refuses_what_it_cannot_use(world, tmp_path, case, message):
    path, out = tmp_path / "results.json", tmp_path / "report-here"
    if case == "not results":
        path.write_text('[{"estimate": 1.0}]')
    elif case == "out is a file":
        shutil.copy(world / "base" / "results.json", path)
        out.write_text("not a folder")
    argv = [path] + (["--out", out] if case == "out is a file" else [])
    code, stdout, stderr = roi(world, "report", *argv)
    assert code == 2, stderr[-2000:]
    assert message.format(path=path, out=out) in stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("report.", ".roi"))]
