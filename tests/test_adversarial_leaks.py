"""Leaks (issue 14, items 10-13): nothing secret, no raw e-mail and no live formula in any output.

* ``sources.toml`` paths (exports and links files) must resolve inside the folder: ``..``,
  absolute paths and symlinks pointing outside are refused with an error naming the entry,
  never quoting the file;
* one masking rule (:mod:`roi.redaction`) for every place a source is shown: the userinfo
  password and every query parameter not on a short allow-list (default-deny), plus secret-looking
  ``name=value`` pairs in driver messages and tracebacks;
* raw e-mails (a covariate level, a customer_id, a community, a channel, a campaign) appear in
  none of ``results.json``, ``report.html``, ``report.xlsx`` (its XML), stdout and stderr, nor in
  validation error examples;
* text from the data never becomes a spreadsheet formula (a community named
  ``=HYPERLINK(...)``); HTML escapes ``<script>``.

The hostile world is run once (module fixture, 600 customers, small sampler).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import openpyxl
import pytest
import sqlalchemy as sa

from connectors import open_source
from roi.data import load_dataset
from roi.data.errors import DataProblem, DataValidationError, SourceError
from roi.redaction import mask_url, redact, redact_document
from tests.conftest import ROOT, SMALL_SAMPLER, run_cli, tiny_frames

SECRET = "sk_live_Zq81-topsecret"
FILE_LINE = f"API_KEY={SECRET}"


# --------------------------------------------------------------------------- 10. sources.toml


def _folder(tmp_path: Path, manifest: str) -> Path:
    """A source folder (tiny customers and orders, a Discourse export) beside a secret file."""
    (tmp_path / "secret.env").write_text(FILE_LINE + "\n")
    folder = tmp_path / "data"
    (folder / "exports").mkdir(parents=True)
    for name in ("customers", "orders"):
        tiny_frames()[name].to_csv(folder / f"{name}.csv", index=False)
    for name in ("discourse_users.csv", "discord_members.csv", "discord_links.csv"):
        (folder / "exports" / name).write_bytes((ROOT / "tests/fixtures/platforms" / name)
                                                .read_bytes())
    (folder / "sources.toml").write_text(manifest)
    return folder


def _export(path: str, platform: str = "discourse_users", options: str = "") -> str:
    extra = f"options = {{ {options} }}\n" if options else ""
    return f'[[export]]\nplatform = "{platform}"\npath = "{path}"\n{extra}'


@pytest.mark.parametrize("path", ["../secret.env", "{tmp}/secret.env", "/etc/passwd",
                                  "exports/../../secret.env"])
def test_sources_toml_path_outside_the_folder_is_refused(tmp_path, path):
    path = path.format(tmp=tmp_path)
    folder = _folder(tmp_path, _export(path))
    code, stdout, stderr = run_cli(["validate", str(folder)])
    assert code == 2 and stdout == ""
    assert stderr == (f"error: sources.toml: export 'discourse_users' path {path!r} resolves "
                      "outside the source folder; every path in sources.toml must be inside it\n")
    assert SECRET not in stderr and "root:" not in stderr


def test_symlink_in_the_folder_pointing_outside_is_refused(tmp_path):
    folder = _folder(tmp_path, _export("exports/users.csv"))
    (folder / "exports" / "users.csv").symlink_to(tmp_path / "secret.env")
    with pytest.raises(SourceError, match=r"export 'discourse_users' path 'exports/users.csv' "
                                          r"resolves outside the source folder") as err:
        open_source(folder)
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("links", ["../../secret.env", "/etc/passwd"])
def test_links_file_option_outside_the_folder_is_refused(tmp_path, links):
    folder = _folder(tmp_path, _export("exports/discord_members.csv", "discord_members",
                                       f'links = "{links}"'))
    with pytest.raises(SourceError, match=r"export 'discord_members' options.links") as err:
        open_source(folder)
    assert SECRET not in str(err.value) and "root:" not in str(err.value)


@pytest.mark.parametrize("where", ["path", "links"])
def test_a_url_with_a_password_in_sources_toml_is_refused_masked(tmp_path, where):
    """A path would fold '//' (``https:/u:pw@h``) and escape masking: a URL is refused first."""
    url = f"https://analyst:P!{SECRET}@files.example/users.csv?token={SECRET}"
    manifest = (_export(url) if where == "path" else
                _export("exports/discord_members.csv", "discord_members", f'links = "{url}"'))
    code, stdout, stderr = run_cli(["validate", str(_folder(tmp_path, manifest))])
    assert code == 2 and stdout == ""
    assert "'https://analyst:***@files.example/users.csv?token=***' is a URL" in stderr
    assert SECRET not in stderr and "P!" not in stderr


def test_paths_inside_the_folder_still_load(tmp_path):
    """Subfolders, '..' that stays inside, a links file next to the export, a symlink inside."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "users.csv").symlink_to(Path("exports") / "discourse_users.csv")
    manifest = (_export("exports/sub/../discord_members.csv", "discord_members",
                        'links = "discord_links.csv"') + _export("users.csv"))
    folder = _folder(tmp_path, manifest)
    (folder / "exports" / "sub").mkdir()
    source = open_source(folder)
    assert set(source.tables) == {"customers", "orders", "members"}
    assert any("Linked 3 of" in note for note in source.notes)


def test_platform_name_cannot_point_at_a_file(tmp_path):
    (tmp_path / "evil.toml").write_text('table = "members"\n')
    folder = _folder(tmp_path, _export("exports/discourse_users.csv", "../../../" * 8
                                       + str(tmp_path / "evil").lstrip("/")))
    with pytest.raises(SourceError, match="unknown platform"):
        open_source(folder)


# --------------------------------------------------------------------------- 11. masking


@pytest.mark.parametrize("url", [
    "postgresql://u@h/db?sslpassword={s}&sslmode=require",
    "postgresql://u@h/db?password={s}",                     # DSN style: no password in userinfo
    "snowflake://u@acct/db?warehouse=wh&private_key_file_pwd={s}&role=analyst",
    "https://api.example/v1?token={s}",
    "https://h/x?access_token={s}&api_key={s}&secret={s}&client_secret={s}",
    "https://acct.blob.core.windows.net/c/orders.csv?sv=2022-11-02&se=2026-01-01&sig={s}",
    "https://h/x?sas={s}&key={s}",
    "bigquery://project/dataset?credentials_base64={s}",
    "https://b.s3.amazonaws.com/o.csv?X-Amz-Credential={s}&X-Amz-Signature={s}",
    "https://h/x?SomethingNew={s}",                          # unknown names: default-deny
    "https://h/callback#access_token={s}&state=1",
    "databricks://token:{s}@adb-1.azuredatabricks.net/default?http_path=/sql/1",
    "mssql+pyodbc://u:{s}@dsn/?driver=ODBC+Driver+18&odbc_connect=DRIVER%3D%7Bx%7D%3BPWD%3D{s}",
])
def test_every_secret_parameter_is_masked(url):
    shown = mask_url(url.format(s=SECRET))
    assert SECRET not in shown
    assert shown.count("***") >= url.count("{s}")
    assert shown.split("://")[0] == url.split("://")[0]      # the rest of the URL is kept


def test_harmless_parameters_are_kept():
    url = ("postgresql+psycopg://roi:pw@db.example:6432/crm?sslmode=verify-full&port=6432"
           "&application_name=roi&connect_timeout=10&target_session_attrs=read-write")
    assert mask_url(url) == url.replace(":pw@", ":***@")
    assert mask_url("duckdb:///tmp/x.duckdb") == "duckdb:///tmp/x.duckdb"


@pytest.mark.parametrize("text", [
    "host=db user=u password={s} dbname=crm sslpassword='{s}'",
    "connect_args={{'password': '{s}', \"token\": \"{s}\"}}",
    "Engine(postgresql://u:***@h/db?api_key={s})",
    "(psycopg.OperationalError) invalid dsn: client_secret={s}: bad",
    "[SQL: SELECT * FROM orders WHERE password = '{s}']",
])
def test_secrets_in_driver_messages_are_masked(text):
    shown = mask_url(text.format(s=SECRET))
    assert SECRET not in shown and "***" in shown


def test_a_libpq_keyword_string_as_source_is_masked():
    """Not a URL and not a folder: the 'folder not found' error masks the password in it."""
    code, stdout, stderr = run_cli(["validate", f"host=db user=u password={SECRET} dbname=crm"])
    assert (code, stdout) == (2, "")
    assert stderr == "error: source folder not found: host=db user=u password=*** dbname=crm\n"


def _duckdb_file(path: Path) -> str:
    connection = duckdb.connect(str(path))
    for name, frame in tiny_frames().items():
        connection.register("frame", frame)
        connection.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
        connection.unregister("frame")
    connection.close()
    return f"duckdb:///{path}"


def test_cli_error_on_a_url_with_tokens_masks_them(tmp_path):
    url = _duckdb_file(tmp_path / "w.duckdb") + f"?motherduck_token={SECRET}&s3_secret={SECRET}"
    code, stdout, stderr = run_cli(["validate", url])
    assert code == 2 and stdout == ""
    assert stderr.startswith(f"error: cannot open duckdb:///{tmp_path}/w.duckdb"
                             "?motherduck_token=***&s3_secret=***: ")
    assert SECRET not in stderr


def test_debug_traceback_on_connection_failure_is_masked(tmp_path, monkeypatch):
    """--debug prints the traceback of an internal error; the URL in it is masked too."""
    import connectors

    def broken(spec, **_):
        raise RuntimeError(f"driver could not connect to {spec} with password={SECRET}")

    monkeypatch.setattr(connectors, "open_source", broken)
    url = f"postgresql://u:{SECRET}@h/db?sslpassword={SECRET}"
    code, stdout, stderr = run_cli(["--debug", "validate", url])
    assert code == 1 and "Traceback (most recent call last)" in stderr
    assert "RuntimeError: driver could not connect to postgresql://u:***@h/db" in stderr
    assert SECRET not in stderr
    code, _, stderr = run_cli(["validate", url])
    assert code == 1 and stderr.startswith("internal error: RuntimeError") and SECRET not in stderr


def test_mapped_select_with_a_secret_literal_fails_without_echoing_it(tmp_path):
    url = _duckdb_file(tmp_path / "w.duckdb")
    config = tmp_path / "roi.toml"
    config.write_text(f"[source.tables]\norders = \"SELECT * FROM orders WHERE api_token = "
                      f"'{SECRET}'\"\n")
    code, stdout, stderr = run_cli(["validate", url, "--config", str(config)])
    assert code == 2 and stderr.startswith("error: orders: the mapped SELECT failed:")
    assert SECRET not in stdout + stderr


def test_url_from_an_environment_variable_is_masked_in_a_real_process(tmp_path):
    """``roi validate "$DATABASE_URL"``: the shell expands it; nothing of it is printed."""
    url = _duckdb_file(tmp_path / "w.duckdb") + f"?access_token={SECRET}"
    env = {**os.environ, "DATABASE_URL": url}
    done = subprocess.run(["sh", "-c", f'{sys.executable} -m roi.cli validate "$DATABASE_URL"'],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "access_token=***" in done.stderr and SECRET not in done.stdout + done.stderr


@pytest.mark.postgres
def test_source_description_masks_unknown_parameters_postgres(postgres_url):
    from roi.data.source import fresh_database

    url = fresh_database(postgres_url, "leaks_tiny")
    engine = sa.create_engine(url)
    for name, frame in tiny_frames().items():
        frame.to_sql(name, engine, index=False)
    engine.dispose()
    secret_url = (url.replace("://roi@", f"://roi:{SECRET}@")
                  + f"?application_name=roi-test&sslpassword={SECRET}")
    dataset = load_dataset(open_source(secret_url))
    assert dataset.report["source"] == (url.replace("://roi@", "://roi:***@")
                                        + "?application_name=roi-test&sslpassword=***")
    code, stdout, stderr = run_cli(["validate", secret_url.replace("/leaks_tiny?", "/nowhere?")])
    assert code == 2 and 'database "nowhere" does not exist' in stderr
    assert SECRET not in stdout + stderr


# --------------------------------------------------------------------------- 12. e-mails


def test_redact_document_keeps_numbers_and_distinct_keys():
    doc = {"balance": {"m=a@x.com": 0.1, "m=b@x.com": 0.2}, "n": 3, "ok": True, "none": None,
           "list": ["c@d.org", 1.5], "source": f"postgresql://u:{SECRET}@h/db"}
    assert redact_document(doc) == {
        "balance": {"m=[e-mail removed]": 0.1, "m=[e-mail removed] (2)": 0.2}, "n": 3,
        "ok": True, "none": None, "list": ["[e-mail removed]", 1.5],
        "source": "postgresql://u:***@h/db"}


def test_validation_examples_never_echo_an_email(tmp_path):
    frames = tiny_frames()
    frames["orders"].loc[0, "customer_id"] = "Ghost.Buyer@Shop.example"
    with pytest.raises(DataValidationError) as err:
        load_dataset(open_source(frames))
    [problem] = err.value.problems
    assert (problem.table, problem.column, problem.n_rows) == ("orders", "customer_id", 1)
    assert problem.examples == ("[e-mail removed]",)
    for name, frame in frames.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    code, stdout, stderr = run_cli(["validate", str(tmp_path)])
    assert code == 2 and "orders.customer_id: order for an unknown customer (1 row" in stderr
    assert "ghost.buyer" not in (stdout + stderr).lower()
    assert DataProblem("t", "c", "r", 1, ("x y@z.io", 3)).examples == ("x [e-mail removed]", 3)


MANAGERS = ["Owner.One@Corp.example", "owner.two@corp.example"]
EMAIL_CUSTOMER = "VIP.Buyer@Shop.example"
EMAIL_COMMUNITY = "forum.lead@Brand.example"
EMAIL_CHANNEL = "agency@Ads.example"
EMAIL_CAMPAIGN = "spring promo by planner@Agency.example"
FORMULA_COMMUNITY = '=HYPERLINK("http://x","y")'
FORMULA_CHANNEL = "=cmd|' /C calc'!A0"
SCRIPT_SEGMENT = "<script>alert(1)</script>"
EMAILS = [*MANAGERS, EMAIL_CUSTOMER, EMAIL_COMMUNITY, EMAIL_CHANNEL, "planner@Agency.example"]


def _hostile_world(root: Path) -> Path:
    """600 customers with e-mails as a covariate's levels, a customer_id, a community, a
    channel and a campaign; a formula-like community and channel; a <script> segment."""
    from roi.simulate import simulate_world

    tables = {n: f.copy() for n, f in simulate_world(n_customers=600, seed=3).tables.items()}
    customers = tables["customers"]
    customers["account_manager"] = [MANAGERS[i % 2] for i in range(len(customers))]
    customers["segment"] = customers["segment"].replace("smb", SCRIPT_SEGMENT)
    old_id = customers["customer_id"].iloc[7]
    for frame in tables.values():
        if "customer_id" in frame:
            frame["customer_id"] = frame["customer_id"].replace(old_id, EMAIL_CUSTOMER)
        if "community" in frame:
            frame["community"] = frame["community"].replace(
                {"forum": EMAIL_COMMUNITY, "discord": FORMULA_COMMUNITY})
    tables["ad_spend"]["channel"] = tables["ad_spend"]["channel"].replace(
        {"social": EMAIL_CHANNEL, "display": FORMULA_CHANNEL})
    tables["ad_spend"]["campaign"] = EMAIL_CAMPAIGN
    (root / "data").mkdir()
    for name, frame in tables.items():
        frame.to_csv(root / "data" / f"{name}.csv", index=False)
    (root / "roi.toml").write_text(SMALL_SAMPLER)
    return root


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory) -> dict:
    root = _hostile_world(tmp_path_factory.mktemp("hostile-world"))
    out = root / "out"
    code, stdout, stderr = run_cli(["run", str(root / "data"), "--out", str(out), "--config",
                                    str(root / "roi.toml"), "--no-pdf", "--no-progress"])
    assert code == 0, stderr[-3000:]
    with zipfile.ZipFile(out / "report.xlsx") as book:
        xml = "\n".join(book.read(n).decode("utf-8", "replace") for n in book.namelist())
        # Cell formulas live in the sheets (a chart's <f> is its data range, not a cell)
        sheets = "\n".join(book.read(n).decode("utf-8", "replace") for n in book.namelist()
                           if n.startswith("xl/worksheets/"))
    return {"out": out, "stdout": stdout, "stderr": stderr, "xlsx_xml": xml,
            "sheet_xml": sheets,
            "json": (out / "results.json").read_text(),
            "html": (out / "report.html").read_text()}


@pytest.mark.slow
def test_no_raw_email_in_any_output(hostile_run):
    texts = {name: hostile_run[name] for name in ("stdout", "stderr", "json", "html",
                                                  "xlsx_xml")}
    for name, text in texts.items():
        for email in EMAILS:
            assert email.lower() not in text.lower(), f"{email} leaked into {name}"
            assert email.split("@")[0].lower() not in text.lower(), f"{email} in {name}"
    results = json.loads(hostile_run["json"])
    # The planted values did reach the models: the covariate and both names are there, redacted.
    assert results["data"]["covariates"]["account_manager"] == "categorical"
    assert "[e-mail removed]" in results["data"]["communities"]
    assert "[e-mail removed]" in results["data"]["channels"]
    assert hostile_run["json"].count('"account_manager[[e-mail removed]]"') >= 1   # a Cox term


@pytest.mark.slow
def test_no_formula_cells_from_data_in_the_workbook(hostile_run):
    book = openpyxl.load_workbook(hostile_run["out"] / "report.xlsx")
    cells = [c for sheet in book.worksheets for row in sheet.iter_rows() for c in row]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    texts = {c.value for c in cells if isinstance(c.value, str)}
    assert FORMULA_COMMUNITY in texts and FORMULA_CHANNEL in texts    # kept, as text
    assert "<f>" not in hostile_run["sheet_xml"] and "<f " not in hostile_run["sheet_xml"]
    numbers = [c.value for c in cells if c.data_type == "n" and c.value is not None]
    assert len(numbers) > 100 and all(isinstance(v, int | float) for v in numbers)


@pytest.mark.slow
def test_script_and_formula_names_are_escaped_in_html(hostile_run):
    html = hostile_run["html"]
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "=HYPERLINK(&quot;http://x&quot;,&quot;y&quot;)" in html
    assert "=cmd|&#x27; /C calc&#x27;!A0" in html


def test_workbook_text_starting_like_a_formula_is_stored_as_text():
    from roi.reports.excel import build_workbook

    hostile = ["=1+1", "+1-1", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1"]
    results = {"schema_version": 1,
               "data": {"communities": hostile, "customers": 10, "currency": "USD",
                        "notes": [f"{h} note" for h in hostile]},
               "paid_media": {"channels": {h: {"spend": 100.0} for h in hostile}}}
    book = build_workbook(results)
    cells = [c for sheet in book.worksheets for row in sheet.iter_rows() for c in row]
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    as_text = [c for c in cells if isinstance(c.value, str) and c.value in hostile]
    assert len(as_text) >= len(hostile) and all(c.quotePrefix for c in as_text)
    assert 10 in [c.value for c in cells] and 100.0 in [c.value for c in cells]


def test_report_redaction_is_the_same_rule():
    from roi.reports.base import redact as report_redact

    text = f"postgresql://u@h/db?sslpassword={SECRET} by a.b@example.com"
    assert report_redact(text) == redact(text) == \
        "postgresql://u@h/db?sslpassword=*** by [e-mail removed]"


def test_frames_source_with_email_community_is_redacted_in_the_report_block():
    """The data report is what results.json's ``data`` block is built from."""
    frames = tiny_frames()
    frames["members"]["community"] = frames["members"]["community"].replace(
        "forum", "Mods@Example.org")
    report = redact_document(load_dataset(open_source(frames)).report)
    assert report["communities"] == ["[e-mail removed]", "discord"]
    assert "mods@" not in json.dumps(report).lower()


def test_docstring_examples_of_the_masking_rule_run():
    import doctest

    import connectors.files
    import roi.redaction

    for module in (roi.redaction, connectors.files):
        outcome = doctest.testmod(module)
        assert outcome.failed == 0 and outcome.attempted >= 2, module.__name__


@pytest.mark.slow
def test_reports_from_an_unredacted_results_dict_show_no_email(hostile_run, tmp_path,
                                                               monkeypatch):
    """A results dict made in a notebook (or a results.json of an older version) with raw
    e-mails: neither the text nor the charts' labels of the reports carry them."""
    import matplotlib.figure
    import matplotlib.text

    from roi.reports import write_reports

    raw = json.loads(hostile_run["json"].replace("[e-mail removed]", EMAIL_COMMUNITY))
    labels: list[str] = []
    save = matplotlib.figure.Figure.savefig

    def recording(figure, *args, **kwargs):
        labels.extend(t.get_text() for t in figure.findobj(matplotlib.text.Text))
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", recording)
    written = write_reports(raw, tmp_path, pdf=False)
    assert len(labels) > 20 and "[e-mail removed]" in labels
    with zipfile.ZipFile(written["xlsx"]) as book:
        xml = "\n".join(book.read(n).decode("utf-8", "replace") for n in book.namelist())
    for text in ("\n".join(labels), written["html"].read_text(), xml):
        assert "forum.lead" not in text.lower()


def test_validate_prints_the_data_report_without_emails(tmp_path):
    root = _hostile_world(tmp_path)
    code, stdout, stderr = run_cli(["validate", str(root / "data")])
    assert code == 0, stderr
    report = json.loads(stdout[:stdout.rindex("}") + 1])
    assert report["communities"] == [FORMULA_COMMUNITY, "[e-mail removed]"]
    assert "[e-mail removed]" in report["channels"] and FORMULA_CHANNEL in report["channels"]
    for email in EMAILS:
        assert email.split("@")[0].lower() not in (stdout + stderr).lower(), email
