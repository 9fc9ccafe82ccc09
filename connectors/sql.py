"""Any SQLAlchemy database: canonical tables by name, or a mapping from table to a SELECT.

Nothing is copied out: validation and aggregations run in that database. The URL's password and
every query parameter not known to be harmless are masked in every message and in the source's
description (``roi.redaction.mask_url``).

Safety: the toolkit only reads. PostgreSQL sessions are set read-only and DuckDB and SQLite files
are opened read-only (a missing SQLite file is an error, never created), so nothing it runs can
change the warehouse. SQLite tables are copied into the embedded DuckDB (SQLite lacks the SQL the
aggregations use). A mapped SELECT must be one statement (no
``;``, no SQL comments); names with control characters are refused; identifiers are quoted by
SQLAlchemy and every value is a bound parameter.

Examples
--------
>>> from connectors.sql import from_url
>>> source = from_url("postgresql+psycopg://analyst:***@warehouse/crm",      # doctest: +SKIP
...                   tables={"orders": "SELECT buyer AS customer_id, day AS order_date, "
...                                     "amount AS revenue FROM sales.orders"})
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import sqlalchemy as sa

from connectors._staging import canonical_names, check_identifier, duckdb_type
from roi.data.errors import SourceError
from roi.data.schema import TABLE_NAMES
from roi.data.source import CanonicalSource, mask_url


def from_url(url: str, *, tables: Mapping[str, str] | None = None,
             schema: str | None = None) -> CanonicalSource:
    """Open a database; each canonical table is a table of that name or a mapped SELECT."""
    mapping = dict(tables or {})
    unknown = sorted(set(mapping) - set(TABLE_NAMES))
    if unknown:
        raise SourceError(f"unknown table name(s) in the mapping: {unknown}")
    if schema is not None:
        check_identifier(schema, what="schema name")
    try:
        engine = _read_only_engine(url)
        with engine.connect():
            pass
        present = {name.lower(): name for name in
                   sa.inspect(engine).get_table_names(schema=schema)}
    except SourceError:
        raise
    except Exception as exc:  # drivers raise their own types; the message is what matters
        raise SourceError(f"cannot open {mask_url(url)}: {mask_url(_first_line(exc))}") from None
    selectables: dict[str, sa.FromClause] = {}
    for table in TABLE_NAMES:
        if table in mapping:
            selectables[table] = _mapped_select(engine, table, mapping[table])
        elif table in present:
            try:
                selectables[table] = _reflected(engine, table, present[table], schema=schema)
            except sa.exc.SQLAlchemyError as exc:
                raise SourceError(f"{table}: cannot read the columns of {present[table]!r}: "
                                  f"{mask_url(_first_line(exc))}") from None
    if engine.dialect.name == "sqlite":
        return _copied_into_duckdb(engine, selectables, description=mask_url(url))
    return CanonicalSource(engine=engine, tables=selectables, description=mask_url(url),
                           embedded=False)


def _copied_into_duckdb(engine: sa.Engine, selectables: dict[str, sa.FromClause], *,
                        description: str) -> CanonicalSource:
    """SQLite has none of what the validation and aggregations need (regular expressions,
    ``date_trunc``, exact decimals, SHA-256), so its tables (or mapped SELECTs) are read and
    copied, as text, into the embedded DuckDB, as DataFrames are. A SQLite file is local and
    small next to a warehouse."""
    import pandas as pd

    from connectors.frames import from_frames

    frames = {}
    with engine.connect() as connection:
        for table, selectable in selectables.items():
            result = connection.execute(sa.select(selectable))
            rows = [[None if v is None else str(v) for v in row] for row in result]
            frames[table] = pd.DataFrame(rows, columns=list(result.keys()), dtype=object)
    engine.dispose()
    source = from_frames(frames)
    source.description = description
    source.notes.append("SQLite tables were read (read-only) and copied into the embedded "
                        "DuckDB, where validation and aggregations ran")
    return source


def _sqlite_read_only(parsed: sa.URL) -> sa.Engine:
    """A SQLite file opened read-only (``mode=ro`` URI): never created, never written. A
    missing file is an error naming the path (SQLite would create an empty one)."""
    import sqlite3
    from pathlib import Path
    from urllib.parse import quote, unquote

    database = parsed.database or ""
    if database.startswith("file:"):      # already a URI filename: the path before '?'
        database = unquote(database[len("file:"):].split("?", 1)[0])
    if database in ("", ":memory:"):
        raise SourceError("a SQLite source must name a database file, e.g. "
                          "sqlite:///path/to/crm.db")
    path = Path(database).expanduser()
    if not path.is_file():
        raise SourceError(f"SQLite database file not found: {path}")
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    return sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(
        uri, uri=True, check_same_thread=False))


def _read_only_engine(url: str) -> sa.Engine:
    """An engine that cannot write: read-only sessions (PostgreSQL) or files (DuckDB)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_read_only(parsed)
    if parsed.get_backend_name() == "duckdb" and parsed.database not in (None, "", ":memory:"):
        return _create_engine(parsed, connect_args={"read_only": True})
    engine = _create_engine(parsed)
    if parsed.get_backend_name() == "postgresql":
        sa.event.listen(engine, "connect", _postgres_read_only)
    return engine


# Drivers that are extras of community-roi (pyproject.toml, README "Warehouse drivers"):
# backend -> (database, extra, package to name, top-level modules the extra provides, URL prefix)
DRIVERS: dict[str, tuple[str, str, str, tuple[str, ...], str]] = {
    "postgresql": ("PostgreSQL", "postgres", "psycopg", ("psycopg",), "postgresql+psycopg"),
    "mysql": ("MySQL", "mysql", "PyMySQL", ("pymysql",), "mysql+pymysql"),
    "mariadb": ("MariaDB", "mysql", "PyMySQL", ("pymysql",), "mariadb+pymysql"),
    "snowflake": ("Snowflake", "snowflake", "snowflake-sqlalchemy", ("snowflake",), "snowflake"),
    "bigquery": ("BigQuery", "bigquery", "sqlalchemy-bigquery",
                 ("sqlalchemy_bigquery", "google"), "bigquery"),
    "databricks": ("Databricks", "databricks", "databricks-sqlalchemy", ("databricks",),
                   "databricks"),
}


def _create_engine(url: sa.URL, **kwargs) -> sa.Engine:
    """``sa.create_engine``; a driver that is not installed is named with the extra to install."""
    try:
        return sa.create_engine(url, **kwargs)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        shown = mask_url(url.render_as_string(hide_password=True))
        raise SourceError(f"cannot open {shown}: {missing_driver_message(url, exc)}") from None


def missing_driver_message(url: sa.URL, exc: Exception) -> str:
    """What to install when SQLAlchemy cannot load the dialect or the DBAPI module of ``url``.

    Examples
    --------
    >>> missing_driver_message(sa.make_url("postgresql://db/crm"),
    ...                        ModuleNotFoundError("No module named 'psycopg'", name="psycopg"))
    "the URL needs the PostgreSQL driver: pip install 'community-roi[postgres]' (or psycopg)"
    """
    backend = url.get_backend_name()
    if backend not in DRIVERS:
        return (f"the URL needs a driver for {backend!r} that is not installed "
                f"({_first_line(exc)}): install that database's SQLAlchemy dialect and driver")
    database, extra, package, modules, prefix = DRIVERS[backend]
    module = getattr(exc, "name", None) or ""
    if module and module.split(".")[0] not in modules:
        # The URL asks for another driver (postgresql+psycopg2://, mysql:// is MySQLdb).
        return (f"the URL needs the {database} driver module {module!r}, which is not "
                f"installed: install it, or pip install 'community-roi[{extra}]' and write the "
                f"URL as {prefix}://...")
    return (f"the URL needs the {database} driver: pip install 'community-roi[{extra}]' "
            f"(or {package})")


def _postgres_read_only(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cursor.close()
    dbapi_connection.commit()


_FORBIDDEN = re.compile(r";|--|/\*|\*/")


def single_select(table: str, sql: str) -> str:
    """The mapping as one SELECT: refuses ``;`` (a second statement) and comments anywhere,
    even inside quotes (telling quoting apart differs by database; refusing is safe)."""
    statement = sql.strip()
    while statement.endswith(";"):
        statement = statement[:-1].rstrip()
    if not statement.lower().startswith(("select", "with")):
        raise SourceError(f"{table}: the mapping must be a SELECT (or WITH ... SELECT)")
    found = _FORBIDDEN.search(statement)
    if found or "\x00" in statement:
        what = repr(found.group()) if found else "a NUL character"
        raise SourceError(f"{table}: the mapped SELECT contains {what}; it must be a single "
                          "SELECT statement without ';' or SQL comments")
    return statement


def _duckdb_table(engine: sa.Engine, name: str, *, schema: str | None) -> sa.TableClause:
    """Columns from information_schema (SQLAlchemy's PostgreSQL-style column reflection fails on
    DuckDB 2: it reads pg_catalog.pg_collation, which DuckDB does not have)."""
    query = sa.text("SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = :name AND table_schema = coalesce(:schema, "
                    "current_schema()) ORDER BY ordinal_position")
    with engine.connect() as connection:
        rows = connection.execute(query, {"name": name, "schema": schema}).fetchall()
    return sa.table(name, *(sa.column(column, duckdb_type(kind)) for column, kind in rows),
                    schema=schema)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _mapped_select(engine: sa.Engine, table: str, sql: str) -> sa.FromClause:
    """A user's SELECT as a subquery; its output columns are read with LIMIT 0."""
    statement = single_select(table, sql)
    # A colon would otherwise read as a bind parameter (':name') inside text().
    escaped = statement.replace(":", "\\:")
    probe = sa.text(f"SELECT * FROM ({escaped}) AS probe LIMIT 0")
    try:
        with engine.connect() as connection:
            columns = list(connection.execute(probe).keys())
    except Exception as exc:
        raise SourceError(f"{table}: the mapped SELECT failed: {mask_url(_first_line(exc))}") \
            from None
    names = canonical_names(table, columns, origin="mapped SELECT")
    inner = sa.text(escaped).columns(*(sa.column(c) for c in columns)).subquery(f"src_{table}")
    return sa.select(*(inner.c[c].label(names[c]) for c in columns)).subquery(f"map_{table}")


def _reflected(engine: sa.Engine, table: str, name: str, *, schema: str | None) -> sa.FromClause:
    if engine.dialect.name == "duckdb":
        reflected = _duckdb_table(engine, name, schema=schema)
    else:
        reflected = sa.Table(name, sa.MetaData(), autoload_with=engine, schema=schema)
    names = canonical_names(table, list(reflected.c.keys()), origin=name)
    if all(old == new for old, new in names.items()):
        return reflected
    return sa.select(*(reflected.c[c].label(names[c]) for c in reflected.c.keys())) \
        .subquery(f"named_{table}")
