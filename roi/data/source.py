"""A source is a database engine plus one selectable per canonical table present.

Connectors build sources; :func:`roi.data.load_dataset` validates and types them inside that same
database. Nothing here pulls row-level data into Python.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import duckdb
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from roi.data.dialect import is_duckdb
from roi.redaction import mask_url  # noqa: F401  (re-exported: the one masking rule)


@dataclass
class CanonicalSource:
    """Raw canonical tables living in one database.

    Parameters
    ----------
    engine : sqlalchemy.Engine
        Where the tables live and where every aggregation runs.
    tables : dict
        Canonical table name -> selectable whose column names are canonical (plus covariates).
    description : str
        Human-readable origin, credentials masked.
    embedded : bool
        True when the database is the toolkit's own (DuckDB in memory): typed copies may be
        written there. A warehouse is only read.
    notes : list of str
        What the connector did that a reader should know (rows folded, skipped ...).
    excluded : dict
        Rows a connector excluded under a documented option, by reason.
    """

    engine: sa.Engine
    tables: dict[str, sa.FromClause]
    description: str
    embedded: bool = False
    notes: list[str] = field(default_factory=list)
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def duckdb(self) -> bool:
        return is_duckdb(self.engine)


def embedded_engine() -> sa.Engine:
    """A private in-memory DuckDB; one connection shared so registered data stays visible.

    Memory is capped (``ROI_DUCKDB_MEMORY``, default 1GB) with spilling to a temp folder, and
    insertion order is not preserved, so 20M-order worlds fit a 2-core, few-GiB budget.
    """
    spill = tempfile.mkdtemp(prefix="roi-duckdb-")
    # allocator_flush_threshold: memory freed by a finished task goes back to the system above
    # 8 MB instead of 128 MB (after the 1M-customer panel: 1.09 instead of 1.46 GiB resident)
    config = {"memory_limit": os.environ.get("ROI_DUCKDB_MEMORY", "1GB"),
              "temp_directory": spill, "preserve_insertion_order": False,
              "allocator_flush_threshold": "8MB"}
    engine = sa.create_engine("duckdb:///:memory:", poolclass=StaticPool,
                              connect_args={"config": config})
    # The spill folder goes with the engine (or at exit), not left behind in /tmp.
    weakref.finalize(engine, shutil.rmtree, spill, True)
    return engine


def release_memory(engine: sa.Engine) -> None:
    """Give back the memory DuckDB keeps after its queries (buffer pool and allocator caches).

    DuckDB holds on to what a large query used, up to its ``memory_limit``: after the 1M-customer
    panel 1.0 GiB stays resident with nothing in use. Lowering the limit makes it evict (tables
    held in memory move to its temp folder and come back when queried); the limit is then put
    back. Nothing to do for other engines.
    """
    if not is_duckdb(engine):
        return
    with engine.connect() as connection:
        driver = connection.connection.driver_connection   # outside SQLAlchemy's transaction
        limit = driver.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        try:
            driver.execute(f"SET memory_limit='{RELEASE_TO}'")
        except duckdb.Error:
            pass   # more than that is pinned: nothing was evicted, the limit is unchanged
        driver.execute(f"SET memory_limit='{limit}'")


RELEASE_TO = "64MB"


def create_as(engine: sa.Engine, name: str, select: sa.Select, *,
              kind: str = "TABLE") -> sa.TableClause:
    """``CREATE OR REPLACE <kind> "name" AS <select>`` in the embedded DuckDB (``kind``
    ``TABLE``, ``TEMP TABLE`` or ``VIEW``); the new relation as a table clause."""
    compiled = select.compile(dialect=engine.dialect)
    params = compiled.construct_params()
    positional = [params[p] for p in compiled.positiontup or []]
    sql = str(compiled)
    if positional and kind == "VIEW":
        # DuckDB views cannot hold parameters: inline the (internal, non-user) literals.
        sql = str(select.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
        positional = []
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        driver.execute(f'CREATE OR REPLACE {kind} "{name}" AS {sql}', positional)
    return sa.table(name, *(sa.column(c.key, c.type) for c in select.selected_columns))


@contextmanager
def temporary_table(engine: sa.Engine, select: sa.Select, *,
                    name: str) -> Iterator[sa.TableClause]:
    """``select``'s rows stored once in a temporary table of the embedded DuckDB, for several
    statements that read them (each would otherwise run ``select``'s joins again); dropped on
    exit. ``name`` must be a plain identifier."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise ValueError(f"table name must be a plain identifier, not {name!r}")
    try:
        yield create_as(engine, name, select, kind="TEMP TABLE")
    finally:
        with engine.connect() as connection:
            connection.connection.driver_connection.execute(f'DROP TABLE IF EXISTS "{name}"')


def fresh_database(url: str, database: str) -> str:
    """Drop and create ``database`` on the PostgreSQL server of ``url`` (an admin URL, e.g. to
    ``postgres``); the URL of the new database. For tests and benchmarks that load a world.

    The name must be a plain identifier (it cannot be a bound parameter in ``CREATE DATABASE``).
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", database):
        raise ValueError(f"database name must be a plain identifier, not {database!r}")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}"'))
        connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
    admin.dispose()
    return url.rsplit("/", 1)[0] + f"/{database}"


def fetch_frame(engine: sa.Engine, statement: sa.Executable, *,
                categorical: tuple[str, ...] = ()) -> pd.DataFrame:
    """Run a statement in the database and return its (aggregated) result as a DataFrame.

    DuckDB and Spark results come back through Arrow (columnar, fast); other engines through
    pandas.
    Columns named in ``categorical`` (community, categorical covariates) become pandas
    categoricals: one byte a row instead of a string, which keeps a 13M-row panel small. Other
    text is Arrow-backed strings, whatever the engine.
    """
    with engine.connect() as connection:
        if is_duckdb(engine):
            compiled = statement.compile(dialect=engine.dialect)
            params = compiled.construct_params()
            positional = [params[name] for name in compiled.positiontup or []]
            driver = connection.connection.driver_connection
            sql = str(compiled)
            _announce(connection, "before_cursor_execute", sql, positional, rows=-1)
            # One reference only (in the list), handed over to _to_pandas, which frees each Arrow
            # column once converted; a local name here would keep the whole table alive.
            tables = [_categorical_text(driver.sql(sql, params=positional or None)
                                        .to_arrow_table(), categorical)]
            _announce(connection, "after_cursor_execute", sql, positional,
                      rows=tables[0].num_rows)
            frame = _to_pandas(tables.pop())
            pa.default_memory_pool().release_unused()
            return _sorted_categories(frame, categorical)
        if engine.dialect.name == "spark":
            # Spark SQL (roi.data.spark): the result comes back as Arrow, as DuckDB's does.
            compiled = statement.compile(dialect=engine.dialect,
                                         compile_kwargs={"render_postcompile": True})
            params = compiled.construct_params()
            positional = [params[name] for name in compiled.positiontup or []]
            table = connection.connection.driver_connection.arrow(str(compiled), positional)
            return _sorted_categories(_to_pandas(_categorical_text(table, categorical)),
                                      categorical)
        frame = pd.read_sql(statement, connection)
    # Same dtypes as the DuckDB path.
    for column in frame.columns:
        if column in categorical:
            frame[column] = frame[column].astype("category")
        elif frame[column].dtype == object and pd.api.types.infer_dtype(
                frame[column], skipna=True) in ("string", "empty"):
            frame[column] = frame[column].astype(pd.StringDtype("pyarrow"))
    return _sorted_categories(frame, categorical)


@dataclass
class ArrowCursor:
    """Stands in for a DB-API cursor when a DuckDB result comes through Arrow instead."""

    rowcount: int


def _announce(connection: sa.Connection, event: str, statement: str, parameters: list, *,
              rows: int) -> None:
    """Tell SQLAlchemy's ``before/after_cursor_execute`` listeners (query logs, tracing) about a
    statement run through DuckDB's Arrow API, which bypasses the DB-API cursor; ``rowcount`` of
    the cursor they receive is the number of rows returned."""
    listeners = getattr(connection.dispatch, event)
    if listeners:
        listeners(connection, ArrowCursor(rows), statement, tuple(parameters), None, False)


def _sorted_categories(frame: pd.DataFrame, categorical: tuple[str, ...]) -> pd.DataFrame:
    """Categories in sorted order, so the result does not depend on row order or engine."""
    for column in categorical:
        if column in frame and isinstance(frame[column].dtype, pd.CategoricalDtype):
            categories = sorted(frame[column].cat.categories)
            frame[column] = frame[column].cat.reorder_categories(categories)
    return frame


def _categorical_text(table: pa.Table, categorical: tuple[str, ...]) -> pa.Table:
    for index, arrow_field in enumerate(table.schema):
        is_text = pa.types.is_string(arrow_field.type) or pa.types.is_large_string(arrow_field.type)
        if arrow_field.name in categorical and is_text:
            encoded = table.column(index).dictionary_encode()
            table = table.set_column(index, arrow_field.name, encoded)
    return table


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    """Column by column, releasing each Arrow column once converted (halves the peak).

    Integers without NULLs become numpy integers, with NULLs nullable pandas integers; dates
    become datetime64; text stays Arrow-backed or categorical."""
    columns: dict[str, pd.Series] = {}
    for name in table.column_names:
        column = table.column(name)
        table = table.drop_columns([name])
        if pa.types.is_integer(column.type) and column.null_count:
            series = column.to_pandas(types_mapper=_nullable_integers)
        else:
            series = column.to_pandas(types_mapper=_arrow_strings, date_as_object=False)
        columns[name] = series
        del column
    return pd.DataFrame(columns, copy=False)


def _nullable_integers(arrow_type: pa.DataType):
    if pa.types.is_integer(arrow_type):
        return pd.Int32Dtype() if arrow_type.bit_width <= 32 else pd.Int64Dtype()
    return None


def _arrow_strings(arrow_type: pa.DataType):
    """Strings stay Arrow-backed in pandas (a fraction of the memory of Python objects)."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.StringDtype("pyarrow")
    return None


def execute_scalar_rows(engine: sa.Engine, statement: sa.Executable) -> list[tuple]:
    """Run a small query (counts, examples) and return its rows as tuples."""
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(statement)]
