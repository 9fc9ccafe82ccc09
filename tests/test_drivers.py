"""Warehouse drivers: a URL whose driver is not installed says which extra installs it.

The missing module is simulated by ``sys.modules[name] = None`` (``import name`` then raises
``ModuleNotFoundError`` as on a machine without it); a missing dialect plugin (Snowflake,
BigQuery, Databricks are not installed here) is what SQLAlchemy really raises.
"""

from __future__ import annotations

import sys
import tomllib

import pytest

from connectors import open_source
from connectors.sql import DRIVERS
from tests.conftest import ROOT, run_cli


def test_missing_psycopg_names_the_postgres_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(Exception) as caught:
        open_source("postgresql://analyst:hunter2@db.example/crm")
    message = str(caught.value)
    assert type(caught.value).__name__ == "SourceError"
    assert message == ("cannot open postgresql://analyst:***@db.example/crm: the URL needs the "
                       "PostgreSQL driver: pip install 'community-roi[postgres]' (or psycopg)")


def test_roi_run_without_the_driver_exits_with_the_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    code, out, err = run_cli(["run", "postgresql+psycopg://analyst:hunter2@db.example/crm",
                              "--out", str(tmp_path), "--no-pdf", "--no-progress"])
    assert code != 0
    assert "pip install 'community-roi[postgres]' (or psycopg)" in out + err
    assert "hunter2" not in out + err
    assert not (tmp_path / "results.json").exists()


def test_another_driver_than_the_extras_is_named_with_the_url_to_write(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(Exception, match=r"driver module 'psycopg2', which is not installed: "
                       r"install it, or pip install 'community-roi\[postgres\]' and write the "
                       r"URL as postgresql\+psycopg://"):
        open_source("postgresql+psycopg2://analyst:hunter2@db.example/crm")


@pytest.mark.parametrize(("url", "extra", "package"), [
    ("snowflake://analyst:hunter2@account/crm/public", "snowflake", "snowflake-sqlalchemy"),
    ("bigquery://project/crm", "bigquery", "sqlalchemy-bigquery"),
    ("databricks://token:hunter2@host?http_path=/sql", "databricks", "databricks-sqlalchemy"),
])
def test_missing_dialect_plugin_names_its_extra(monkeypatch, url, extra, package):
    # Even where the dialect is installed (only its own package: "google" is protobuf's too).
    monkeypatch.setitem(sys.modules, DRIVERS[url.split(":")[0]][3][0], None)
    with pytest.raises(Exception, match=rf"pip install 'community-roi\[{extra}\]' "
                       rf"\(or {package}\)") as caught:
        open_source(url)
    assert "hunter2" not in str(caught.value)


def test_unknown_dialect_says_what_is_missing():
    with pytest.raises(Exception, match=r"needs a driver for 'nosuchdb' that is not installed "
                       r"\(Can't load plugin: sqlalchemy.dialects:nosuchdb\)"):
        open_source("nosuchdb://analyst:hunter2@host/crm")


def test_every_extra_named_in_messages_is_declared_in_pyproject():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    for database, extra, package, _, _ in DRIVERS.values():
        assert extra in extras, (database, extra)
        names = [requirement.split("[")[0].split(">")[0].split("=")[0].strip().lower()
                 for requirement in extras[extra]]
        assert package.lower() in names, (extra, package, extras[extra])
