"""Hostile names, values and URLs: refused clearly or handled as data, never executed or leaked.

* identifiers that reach SQL (mapped SELECTs of ``[source.tables]``, column names from files,
  DataFrames and warehouse tables, the schema name, covariates named in the config, platform
  names and options of ``sources.toml``) with injection strings, on DuckDB and on PostgreSQL:
  each is refused with a message naming the table, or loaded as a quoted name, and the tables
  are intact afterwards;
* values with injection strings are bound parameters: loaded as data;
* warehouse connections are read-only;
* a password planted in the PostgreSQL URL and a raw e-mail planted in the data appear in none
  of the outputs (CLI stdout/stderr, results.json, report.html, report.xlsx, report.pdf text).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import sqlalchemy as sa

from connectors import open_source
from roi.data import DataOptions, load_dataset
from roi.data.errors import DataValidationError, SourceError
from tests.conftest import (
    PLANTED_EMAIL,
    PLANTED_PASSWORD,
    ROOT,
    run_cli,
    tiny_frames,
)

HOSTILE_NAMES = ["x; DROP TABLE orders; --", 'a"b', "it's", "back`tick", "ünï©ødé ☃",
                 '"; DROP TABLE raw_orders; --', "Robert'); DROP TABLE customers;--"]
HOSTILE_SELECTS = [
    "x; DROP TABLE orders; --",
    "SELECT * FROM orders; DROP TABLE orders; --",
    "SELECT * FROM orders) o; DROP TABLE orders; SELECT * FROM (SELECT 1",
    "SELECT * FROM orders -- trailing comment",
    "SELECT * FROM orders /* comment */",
    'SELECT * FROM "orders""; DROP TABLE orders"',
    "SELECT * FROM orders WHERE customer_id = '; DROP TABLE orders; --'",
    "SELECT * FROM orders WHERE customer_id = `x`; DROP TABLE orders",
    "WITH gone AS (DELETE FROM orders RETURNING *) SELECT * FROM gone",
    "DROP TABLE orders",
]


def _tiny_duckdb(path: Path, frames: dict[str, pd.DataFrame] | None = None) -> str:
    connection = duckdb.connect(str(path))
    for name, frame in (frames or tiny_frames()).items():
        connection.register("frame", frame)
        connection.execute(f'CREATE TABLE "{name}" AS SELECT * FROM frame')
        connection.unregister("frame")
    connection.close()
    return f"duckdb:///{path}"


def _row_counts(engine: sa.Engine, schema: str | None = None) -> dict[str, int]:
    names = sa.inspect(engine).get_table_names(schema=schema)
    with engine.connect() as connection:
        return {name: connection.execute(sa.select(sa.func.count()).select_from(
            sa.table(name, schema=schema))).scalar_one() for name in names}


EXPECTED_TINY = {name: len(frame) for name, frame in tiny_frames().items()}


# --------------------------------------------------------------------------- DuckDB


@pytest.mark.parametrize("sql", HOSTILE_SELECTS)
def test_hostile_mapped_select_is_refused_and_tables_survive_duckdb(tmp_path, sql):
    url = _tiny_duckdb(tmp_path / "w.duckdb")
    with pytest.raises(SourceError, match=r"^orders: ") as err:
        load_dataset(open_source(url, tables={"orders": sql}))
    assert "Traceback" not in str(err.value)
    engine = sa.create_engine(url, connect_args={"read_only": True})
    assert _row_counts(engine) == EXPECTED_TINY
    engine.dispose()


def test_hostile_mapped_select_from_config_is_a_clean_cli_error(tmp_path):
    url = _tiny_duckdb(tmp_path / "w.duckdb")
    config = tmp_path / "roi.toml"
    config.write_text('[source.tables]\norders = "SELECT * FROM orders; DROP TABLE orders; --"\n')
    code, stdout, stderr = run_cli(["validate", url, "--config", str(config)])
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: orders: the mapped SELECT contains ';'")
    engine = sa.create_engine(url, connect_args={"read_only": True})
    assert _row_counts(engine)["orders"] == 7
    engine.dispose()


def test_a_legitimate_select_with_quotes_and_colons_still_works(tmp_path):
    url = _tiny_duckdb(tmp_path / "w.duckdb")
    sql = ("SELECT customer_id, order_date, revenue, '10:30 :x it''s' AS note FROM orders "
           "WHERE customer_id <> 'x'' OR 1=1'")
    dataset = load_dataset(open_source(url, tables={"orders": sql}))
    assert dataset.report["orders"] == 7


def test_duckdb_file_is_opened_read_only(tmp_path):
    url = _tiny_duckdb(tmp_path / "w.duckdb")
    source = open_source(url)
    with pytest.raises(sa.exc.DBAPIError, match="read-only"):
        with source.engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE orders"))
    assert _row_counts(source.engine) == EXPECTED_TINY
    source.engine.dispose()


def _hostile_columns() -> dict[str, pd.DataFrame]:
    frames = tiny_frames()
    for i, name in enumerate(HOSTILE_NAMES):
        frames["customers"][name] = [str(i), str(i + 1), "2", "3"]
    return frames


def _assert_hostile_covariates_loaded(dataset) -> None:
    assert set(HOSTILE_NAMES) <= set(dataset.covariates)
    panel = dataset.customer_month_panel()
    assert set(HOSTILE_NAMES) <= set(panel.columns)
    assert panel.loc[panel["customer_id"] == "A", "it's"].iloc[0] == 2.0
    assert dataset.report["orders"] == 7 and dataset.report["customers"] == 4


@pytest.mark.parametrize("kind", ["frames", "csv", "duckdb-file"])
def test_hostile_column_names_are_quoted_not_executed(tmp_path, kind):
    frames = _hostile_columns()
    if kind == "frames":
        spec: object = frames
    elif kind == "csv":
        for name, frame in frames.items():
            frame.to_csv(tmp_path / f"{name}.csv", index=False)
        spec = tmp_path
    else:
        spec = _tiny_duckdb(tmp_path / "w.duckdb", frames)
    source = open_source(spec)
    _assert_hostile_covariates_loaded(load_dataset(source))
    if kind == "duckdb-file":
        assert _row_counts(source.engine)["orders"] == 7


def test_hostile_values_are_bound_parameters():
    frames = tiny_frames()
    hostile = "x'); DROP TABLE orders; --"
    frames["customers"].loc[0, "customer_id"] = hostile
    frames["orders"]["customer_id"] = frames["orders"]["customer_id"].replace("A", hostile)
    frames["members"]["community"] = frames["members"]["community"].replace("forum", hostile)
    dataset = load_dataset(open_source(frames))
    assert hostile in set(dataset.customer_month_panel()["customer_id"])
    assert hostile in dataset.report["communities"]
    assert dataset.report["orders"] == 7


def test_hostile_value_in_a_broken_rule_is_an_example_not_sql():
    frames = tiny_frames()
    frames["orders"].loc[0, "revenue"] = "1; DROP TABLE orders; --"
    with pytest.raises(DataValidationError) as err:
        load_dataset(open_source(frames))
    [problem] = err.value.problems
    assert (problem.table, problem.column, problem.n_rows) == ("orders", "revenue", 1)
    assert problem.examples == ("o1 1; DROP TABLE orders; --",)


def test_control_characters_in_a_column_name_are_refused():
    frames = tiny_frames()
    frames["customers"]["bad\x07name"] = "1"
    with pytest.raises(SourceError, match=r"customers \(DataFrame\): column 'bad\\x07name'"):
        open_source(frames)


def test_hostile_covariate_in_the_config_is_refused():
    with pytest.raises(DataValidationError) as err:
        load_dataset(open_source(tiny_frames()),
                     DataOptions(covariates=("segment", "x; DROP TABLE orders; --")))
    [problem] = err.value.problems
    assert problem.table == "customers" and problem.rule == "configured covariate is not a column"
    assert problem.column == "x; DROP TABLE orders; --"


def _folder_with_export(tmp_path: Path, manifest: str) -> Path:
    for name in ("customers", "orders"):
        tiny_frames()[name].to_csv(tmp_path / f"{name}.csv", index=False)
    shutil.copy(ROOT / "tests/fixtures/platforms/discourse_users.csv", tmp_path)
    (tmp_path / "sources.toml").write_text(manifest)
    return tmp_path


def test_hostile_platform_name_in_sources_toml_is_refused(tmp_path):
    folder = _folder_with_export(tmp_path, '[[export]]\nplatform = "x; DROP TABLE orders; --"\n'
                                           'path = "discourse_users.csv"\n')
    with pytest.raises(SourceError, match=r"sources.toml: export 'x; DROP TABLE orders; --' "
                                          r"\(discourse_users.csv\): unknown platform"):
        open_source(folder)


def test_hostile_platform_option_value_is_data(tmp_path):
    hostile = "forum'); DROP TABLE raw_orders; --"
    folder = _folder_with_export(tmp_path, '[[export]]\nplatform = "discourse_users"\n'
                                           'path = "discourse_users.csv"\n'
                                           f'options = {{ community = "{hostile}" }}\n')
    dataset = load_dataset(open_source(folder))
    assert dataset.report["communities"] == [hostile]
    assert dataset.report["orders"] == 7


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def tiny_pg(postgres_url) -> str:
    """The tiny tables (with hostile covariate names) in their own database."""
    frames = _hostile_columns()
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text('DROP DATABASE IF EXISTS "tiny_hostile"'))
        connection.execute(sa.text('CREATE DATABASE "tiny_hostile"'))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + "/tiny_hostile"
    engine = sa.create_engine(url)
    for name, frame in frames.items():
        frame.to_sql(name, engine, index=False)
    engine.dispose()
    return url


def _pg_counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    counts = _row_counts(engine, schema="public")
    engine.dispose()
    return counts


@pytest.mark.postgres
@pytest.mark.parametrize("sql", HOSTILE_SELECTS)
def test_hostile_mapped_select_is_refused_and_tables_survive_postgres(tiny_pg, sql):
    with pytest.raises(SourceError, match=r"^orders: ") as err:
        load_dataset(open_source(tiny_pg, tables={"orders": sql}))
    assert "Traceback" not in str(err.value)
    assert _pg_counts(tiny_pg) == EXPECTED_TINY


@pytest.mark.postgres
def test_postgres_sessions_are_read_only(tiny_pg):
    source = open_source(tiny_pg)
    with pytest.raises(sa.exc.DBAPIError, match="read-only transaction"):
        with source.engine.begin() as connection:
            connection.execute(sa.text("DROP TABLE orders"))
    source.engine.dispose()
    assert _pg_counts(tiny_pg) == EXPECTED_TINY


@pytest.mark.postgres
def test_hostile_column_names_are_quoted_not_executed_postgres(tiny_pg):
    _assert_hostile_covariates_loaded(load_dataset(open_source(tiny_pg)))
    assert _pg_counts(tiny_pg) == EXPECTED_TINY


@pytest.mark.postgres
def test_hostile_schema_name_finds_nothing_and_executes_nothing(tiny_pg):
    with pytest.raises(DataValidationError, match="customers.\\*: required table is missing"):
        load_dataset(open_source(tiny_pg, schema="public; DROP TABLE orders; --"))
    with pytest.raises(SourceError, match="schema name"):
        open_source(tiny_pg, schema="public\x00")
    assert _pg_counts(tiny_pg) == EXPECTED_TINY


# --------------------------------------------------------------------------- secrets


@pytest.mark.postgres
@pytest.mark.parametrize("where", ["/no_such_database", "closed-port"])
def test_password_is_masked_in_connection_errors(postgres_url, where):
    base = postgres_url.replace("://roi@", f"://roi:{PLANTED_PASSWORD}@")
    url = (base.rsplit("/", 1)[0] + where if where.startswith("/")
           else base.rsplit(":", 1)[0] + ":9/postgres")
    code, stdout, stderr = run_cli(["validate", url])
    assert code == 2 and stdout == ""
    assert stderr.startswith("error: cannot open postgresql+psycopg://roi:***@")
    assert PLANTED_PASSWORD not in stderr


def _pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def _xlsx_text(path: Path) -> str:
    """Every XML part (cells, shared strings, sheet names, properties) of the workbook."""
    with zipfile.ZipFile(path) as book:
        return "\n".join(book.read(name).decode("utf-8", "replace") for name in book.namelist())


def _outputs(out: Path, stdout: str, stderr: str) -> dict[str, str]:
    texts = {"stdout": stdout, "stderr": stderr,
             "results.json": (out / "results.json").read_text(),
             "report.html": (out / "report.html").read_text(),
             "report.xlsx": _xlsx_text(out / "report.xlsx")}
    if (out / "report.pdf").exists():
        texts["report.pdf"] = _pdf_text(out / "report.pdf")
    return texts


def _assert_no_secrets(texts: dict[str, str]) -> None:
    email = PLANTED_EMAIL.lower()
    for name, text in texts.items():
        assert PLANTED_PASSWORD not in text, f"password leaked into {name}"
        assert email not in text.lower(), f"raw e-mail leaked into {name}"
        assert email.split("@")[0] not in text.lower(), f"e-mail local part leaked into {name}"


@pytest.mark.postgres
@pytest.mark.slow
def test_no_password_or_raw_email_in_any_output_postgres(small_world_pg_run):
    run = small_world_pg_run
    texts = _outputs(run["out"], run["stdout"], run["stderr"])
    if shutil.which("chromium"):
        assert "report.pdf" in texts and len(texts["report.pdf"]) > 1000
    results = json.loads(texts["results.json"])
    assert results["data"]["source"].startswith("postgresql+psycopg://roi:***@")
    # The planted member row has no customer_id: it was linked by its hashed e-mail.
    assert results["data"]["identity"]["linked_by_email"] >= 1
    _assert_no_secrets(texts)


@pytest.mark.slow
def test_no_raw_email_in_any_output_files(small_world_run):
    out, stdout, stderr = small_world_run
    texts = _outputs(out, stdout, stderr)
    assert json.loads(texts["results.json"])["data"]["identity"]["linked_by_email"] >= 1
    _assert_no_secrets(texts)


def test_loader_hashes_emails_before_anything_leaves_it(small_world):
    dataset = load_dataset(open_source(small_world / "data"))
    for name, table in dataset.tables.items():
        assert "email" not in table.c, f"{name} still has a raw email column"
    customers = dataset.tables["customers"]
    with dataset.engine.connect() as connection:
        values = connection.execute(sa.select(customers.c.email_hash).limit(3)).scalars().all()
    assert all(len(v) == 64 and "@" not in v for v in values)



@pytest.mark.parametrize("url", [
    "postgresql+psycopg://roi:{pw}@127.0.0.1:5432/db",
    "postgresql://u:p@{pw}@host/db",          # an unencoded '@' in the password
    "postgresql://u:a/{pw}@host:5/db?sslmode=require",
    "postgresql://host/db?user=u&password={pw}&sslmode=require",
    "host=db user=u password={pw} dbname=crm",
    "first postgresql://u:{pw}@h/db then mysql://v:{pw}x@h2/db2",
])
def test_mask_url_hides_every_spelling_of_a_password(url):
    from roi.data.source import mask_url

    masked = mask_url(url.format(pw=PLANTED_PASSWORD))
    assert PLANTED_PASSWORD not in masked and "***" in masked
    assert masked.count("***") == url.count("{pw}")
