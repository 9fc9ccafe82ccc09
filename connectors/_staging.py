"""Stage files and DataFrames into the toolkit's embedded DuckDB as raw canonical tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from roi.data.errors import SourceError
from roi.data.schema import TABLES

_DUCKDB_TYPES = {"DATE": sa.Date, "TIMESTAMP": sa.DateTime, "DOUBLE": sa.Double,
                 "FLOAT": sa.Double, "BIGINT": sa.BigInteger, "INTEGER": sa.Integer,
                 "VARCHAR": sa.String, "BOOLEAN": sa.Boolean}


def quote_identifier(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def canonical_names(table: str, columns: list[str], *, origin: str) -> dict[str, str]:
    """Map each source column to its canonical spelling (trimmed, case-insensitive match).

    Raises SourceError on duplicate column names, which would make a column ambiguous.
    """
    spec = TABLES[table]
    canonical = {c.lower(): c for c in (*spec.required, *spec.optional)}
    renamed: dict[str, str] = {}
    for column in columns:
        clean = str(column).strip().lstrip("\ufeff")
        target = canonical.get(clean.lower(), clean)
        if target in renamed.values():
            raise SourceError(f"{table} ({origin}): duplicate column {target!r} in the header")
        renamed[column] = target
    return renamed


def _driver(engine: sa.Engine):
    return engine.raw_connection().driver_connection


def _raw_table(engine: sa.Engine, name: str) -> sa.TableClause:
    described = _driver(engine).execute(f"DESCRIBE {quote_identifier(name)}").fetchall()
    return sa.table(name, *(sa.column(row[0], _sql_type(row[1])) for row in described))


def _sql_type(duckdb_type: str):
    base = duckdb_type.split("(")[0].upper()
    if base.startswith("DECIMAL"):
        return sa.Double
    if base.startswith("TIMESTAMP"):
        return sa.DateTime
    return _DUCKDB_TYPES.get(base, sa.String)


def stage_file(engine: sa.Engine, table: str, path: Path) -> sa.TableClause:
    """CSV (read as text so the validator sees every raw value), Parquet, or Excel."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xls"):
        try:
            frame = pd.read_excel(path, dtype=str)
        except Exception as exc:  # openpyxl raises many types for broken files
            raise SourceError(f"{table}: cannot read {path.name}: {exc}") from None
        return stage_frame(engine, table, frame, origin=path.name)
    if path.stat().st_size == 0:
        raise SourceError(f"{table}: {path.name} is an empty file (not even a header row)")
    reader = ("read_csv($1, all_varchar=true, header=true)" if suffix == ".csv"
              else "read_parquet($1)")
    select = f"SELECT * FROM {reader}"
    return _create(engine, table, select, [str(path)], origin=path.name,
                   view=suffix == ".parquet")


def stage_frame(engine: sa.Engine, table: str, frame: pd.DataFrame, *,
                origin: str) -> sa.TableClause:
    """A DataFrame copied into DuckDB (so validation and aggregations run in SQL)."""
    driver = _driver(engine)
    view = f"frame_{table}"
    driver.register(view, frame)
    try:
        return _create(engine, table, f"SELECT * FROM {quote_identifier(view)}", [],
                       origin=origin)
    finally:
        driver.unregister(view)


def _create(engine: sa.Engine, table: str, select: str, params: list, *,
            origin: str, view: bool = False) -> sa.TableClause:
    """A raw table (or, for Parquet, a view: no copy) with canonical column names."""
    import duckdb

    raw = f"raw_{table}"
    driver = _driver(engine)
    try:
        columns = [row[0] for row in driver.execute(f"DESCRIBE {select}", params).fetchall()]
        names = canonical_names(table, columns, origin=origin)
        renamed = ", ".join(f"{quote_identifier(old)} AS {quote_identifier(new)}"
                            for old, new in names.items())
        kind = "VIEW" if view else "TABLE"
        body = f"SELECT {renamed} FROM ({select})"
        if view and params:
            # DuckDB views cannot hold parameters; the only parameter is our own file path.
            body = body.replace("$1", "'" + str(params[0]).replace("'", "''") + "'")
            params = []
        driver.execute(f"CREATE OR REPLACE {kind} {quote_identifier(raw)} AS {body}", params)
    except duckdb.Error as exc:
        reason = str(exc).splitlines()[0]
        raise SourceError(f"{table}: cannot read {origin}: {reason}") from None
    return _raw_table(engine, raw)
