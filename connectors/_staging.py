"""Stage files and DataFrames into the toolkit's embedded DuckDB as raw canonical tables."""

from __future__ import annotations

import csv
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from connectors._excel import read_workbook
from roi.data.errors import SourceError
from roi.data.schema import TABLES

_DUCKDB_TYPES = {"DATE": sa.Date, "TIMESTAMP": sa.DateTime, "DOUBLE": sa.Double,
                 "FLOAT": sa.Double, "BIGINT": sa.BigInteger, "INTEGER": sa.Integer,
                 "VARCHAR": sa.String, "BOOLEAN": sa.Boolean}


def quote_identifier(name: str) -> str:
    """Double-quoted SQL identifier (inner quotes doubled); refuses what cannot be quoted."""
    check_identifier(name, what="identifier")
    return '"' + str(name).replace('"', '""') + '"'


def check_identifier(name: object, *, what: str) -> str:
    """A name that may reach SQL: non-empty text without NUL or control characters."""
    text = str(name)
    if not text.strip() or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise SourceError(f"{what} {text!r} is not a usable name (empty, or has control "
                          "characters)")
    return text


def canonical_names(table: str, columns: list[str], *, origin: str,
                    rename: Mapping[str, str] | None = None) -> dict[str, str]:
    """Map each source column to its canonical spelling (trimmed, case-insensitive match);
    ``rename`` maps a canonical name to the header the file uses for it (``[columns.<table>]``
    of ``roi.toml``, e.g. ``order_date = "Date"``), matched the same way.

    Raises SourceError on duplicate column names, which would make a column ambiguous, and on
    a ``rename`` header the file does not have (naming the columns found).
    """
    spec = TABLES[table]
    canonical = {c.lower(): c for c in (*spec.required, *spec.optional)}
    headers = {str(c).strip().lstrip("\ufeff").lower() for c in columns}
    for target, header in (rename or {}).items():
        if str(header).strip().lower() not in headers:
            found = ", ".join(str(c) for c in columns)
            raise SourceError(f"{table} ({origin}): [columns.{table}] {target} = {header!r}: "
                              f"no such column; columns found: {found}")
        canonical[str(header).strip().lower()] = target
    renamed: dict[str, str] = {}
    for column in columns:
        check_identifier(column, what=f"{table} ({origin}): column")
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
    return sa.table(name, *(sa.column(row[0], duckdb_type(row[1])) for row in described))


def duckdb_type(type_name: str) -> type[sa.types.TypeEngine]:
    """The SQLAlchemy type of a DuckDB column type name (DECIMAL as a double)."""
    base = type_name.split("(")[0].upper()
    if base.startswith("DECIMAL"):
        return sa.Double
    if base.startswith("TIMESTAMP"):
        return sa.DateTime
    return _DUCKDB_TYPES.get(base, sa.String)


def stage_file(engine: sa.Engine, table: str, path: Path, *,
               notes: list[str] | None = None,
               rename: Mapping[str, str] | None = None) -> sa.TableClause:
    """CSV (read as text so the validator sees every raw value), Parquet, or Excel (every sheet
    of the table, see :mod:`connectors._excel`); what a reader should know goes to ``notes``."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xls"):
        frame, sheet_notes = read_workbook(table, path)
        if notes is not None:
            notes.extend(sheet_notes)
        return stage_frame(engine, table, frame, origin=path.name, rename=rename)
    if path.stat().st_size == 0:
        raise SourceError(f"{table}: {path.name} is an empty file (not even a header row)")
    if suffix == ".parquet":
        return _create(engine, table, parquet_select(table, path), [str(path)],
                       origin=path.name, view=True, rename=rename)
    dialect = sniff_csv(table, path)
    reader = (f"read_csv($1, all_varchar=true, header=true, encoding='{dialect.encoding}', "
              f"delim='{dialect.delimiter}')")
    return _create(engine, table, f"SELECT * FROM {reader}", [str(path)], origin=path.name,
                   width=len(dialect.header), rename=rename)


def parquet_select(table: str, path: Path) -> str:
    """``read_parquet``, with each time-zone-aware timestamp column as the wall-clock time in
    the zone the file records for it: its date is then the local calendar date, the one a CSV
    export of the same data shows (an order at 21:30 in New York stays on its day). A zone the
    file does not name is UTC (Parquet stores instants in UTC)."""
    zones = _parquet_zones(path)
    if not zones:
        return "SELECT * FROM read_parquet($1)"
    local = ", ".join(f"timezone('{_icu_zone(table, path, column, zone)}', "
                      f"{quote_identifier(column)}) AS {quote_identifier(column)}"
                      for column, zone in zones.items())
    return f"SELECT * REPLACE ({local}) FROM read_parquet($1)"


def _parquet_zones(path: Path) -> dict[str, str]:
    """Column -> time zone of the file's time-zone-aware timestamp columns (Arrow schema)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError):
        return {}   # DuckDB then says what is wrong with the file
    return {f.name: f.type.tz for f in schema
            if pa.types.is_timestamp(f.type) and f.type.tz is not None}


_OFFSET = re.compile(r"[+-][0-9]{2}:[0-9]{2}")


def _icu_zone(table: str, path: Path, column: str, zone: str) -> str:
    """The zone as DuckDB (ICU) spells it: IANA names as they are, '+05:00' as 'GMT+05:00'.
    An unknown name is refused (it is also the only text put in the SQL)."""
    if _OFFSET.fullmatch(zone):
        return f"GMT{zone}"
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise SourceError(f"{table}: {path.name}: column {column!r} has timestamps in an "
                          f"unknown time zone {zone!r}") from None
    return zone


@dataclass(frozen=True)
class CsvDialect:
    encoding: str
    delimiter: str
    header: tuple[str, ...]


DELIMITERS = (",", ";", "\t", "|")
_HEAD_BYTES = 1 << 16


def sniff_csv(table: str, path: Path) -> CsvDialect:
    """Encoding (UTF-8, UTF-16 by BOM or NUL bytes, else Latin-1), delimiter (the candidate
    that splits the header line into the most fields) and header names, from the file's head.

    Raises SourceError for a header without names or with a name twice (case-insensitive)."""
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    encoding = _encoding(head)
    text = head.decode({"utf-16": "utf-16", "latin-1": "latin-1"}.get(encoding, "utf-8-sig"),
                       errors="ignore").lstrip("\ufeff")
    first = next(iter(text.splitlines()), "")
    if not first.strip():
        raise SourceError(f"{table}: {path.name} has no header row (the first line is empty)")
    delimiter = max(DELIMITERS, key=lambda d: len(next(csv.reader([first], delimiter=d))))
    header = tuple(next(csv.reader([first], delimiter=delimiter)))
    seen: dict[str, str] = {}
    for name in header:
        key = name.strip().lower()
        if key in seen:
            raise SourceError(f"{table} ({path.name}): duplicate column {name.strip()!r} in "
                              f"the header (also {seen[key]!r})")
        seen[key] = name.strip()
    return CsvDialect(encoding=encoding, delimiter=delimiter, header=header)


def _encoding(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or head[:200].count(b"\x00") > 10:
        return "utf-16"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the head is still UTF-8.
        if exc.start < len(head) - 3:
            return "latin-1"
    return "utf-8"


def _reason(exc: BaseException) -> str:
    """DuckDB's first line, plus what a sniffing failure usually means. Later lines are left
    out: they quote raw rows, which may hold e-mails."""
    reason = _first_line(exc)
    if "sniffing file" in reason:
        reason = ("the rows do not parse as CSV with the header's delimiter (a row with more "
                  "fields than the header, an unclosed quote, or not a CSV file)")
    return reason


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def stage_frame(engine: sa.Engine, table: str, frame: pd.DataFrame, *,
                origin: str, rename: Mapping[str, str] | None = None) -> sa.TableClause:
    """A DataFrame copied into DuckDB (so validation and aggregations run in SQL)."""
    driver = _driver(engine)
    aware = [i for i, dtype in enumerate(frame.dtypes) if isinstance(dtype, pd.DatetimeTZDtype)]
    if aware:
        # Local wall-clock time, as for Parquet: the date is the one written in its own zone.
        # By position: a header with a name twice is refused below, not here.
        frame = frame.copy()
        for i in aware:
            frame.isetitem(i, frame.iloc[:, i].dt.tz_localize(None))
    view = f"frame_{table}"
    driver.register(view, frame)
    try:
        return _create(engine, table, f"SELECT * FROM {quote_identifier(view)}", [],
                       origin=origin, rename=rename)
    finally:
        driver.unregister(view)


def _create(engine: sa.Engine, table: str, select: str, params: list, *,
            origin: str, view: bool = False, width: int | None = None,
            rename: Mapping[str, str] | None = None) -> sa.TableClause:
    """A raw table (or, for Parquet, a view: no copy) with canonical column names; ``width``
    is the number of columns the header names (CSV), which the reader must agree with."""
    import duckdb

    raw = f"raw_{table}"
    driver = _driver(engine)
    try:
        columns = [row[0] for row in driver.execute(f"DESCRIBE {select}", params).fetchall()]
        if width is not None and len(columns) != width:
            raise SourceError(f"{table}: cannot read {origin}: the header names {width} "
                              f"columns but rows have {len(columns)} (a row with more fields "
                              "than the header, or mixed delimiters)")
        names = canonical_names(table, columns, origin=origin, rename=rename)
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
        raise SourceError(f"{table}: cannot read {origin}: {_reason(exc)}") from None
    return _raw_table(engine, raw)
