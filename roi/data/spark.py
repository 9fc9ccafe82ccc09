"""Apache Spark SQL as a SQLAlchemy engine: a small dialect (Spark SQL spellings) over a DB-API
shim that runs each compiled statement in a SparkSession.

The data layer builds SQLAlchemy Core statements; this module compiles them for Spark SQL and
runs them with ``SparkSession.sql(text, args=[...])`` (positional ``?`` parameters, bound by
Spark, never pasted into the text). Nothing else of the data layer changes: validation, the
typed layer and the three aggregations run inside Spark as they run inside DuckDB or PostgreSQL.

URLs:

- ``spark://`` a local in-process session (``?master=local[2]``, default ``local[*]``);
- ``spark+connect://host:15002`` a Spark Connect server (``sc://host:15002``; the server that
  ``start-connect-server.sh`` of a Spark distribution or a Databricks cluster runs).

Examples
--------
>>> import sqlalchemy as sa
>>> engine = spark_engine()                                      # doctest: +SKIP
>>> with engine.connect() as connection:                         # doctest: +SKIP
...     connection.execute(sa.select(sa.literal(1))).scalar()
1
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import default
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import compiler
from sqlalchemy.sql.elements import TryCast

# Spark SQL is spoken by these SQLAlchemy dialects: ours, Databricks' and PyHive's (Thrift).
SPARK_FAMILY = ("spark", "databricks", "hive")

# Local sessions: small shuffles (the data layer's results are aggregates), no UI, UTC, ANSI
# SQL (Spark 4's default: a bad cast is an error, never a silent NULL, so parsing goes through
# TRY_CAST), and results through Arrow.
LOCAL_CONFIG = {
    "spark.sql.shuffle.partitions": "4",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # 2g lost the 5M-row sampled panel of a 1M-customer world on its way to Python
    # (TaskResultLost); 4g carried it (the run's default row budget)
    "spark.driver.memory": os.environ.get("ROI_SPARK_DRIVER_MEMORY", "4g"),
    "spark.sql.adaptive.enabled": "true",
}


# --- DB-API 2.0 shim --------------------------------------------------------------------------

class Error(Exception):
    """DB-API base error (Spark's own exception is chained)."""


class DatabaseError(Error):
    pass


class OperationalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class InterfaceError(Error):
    pass


paramstyle = "qmark"
apilevel = "2.0"
threadsafety = 1


MEMORY_SIGNS = ("TaskResultLost", "OutOfMemoryError", "maxResultSize")
"""Words of a Spark failure whose cause is the driver's memory for a result."""


def _session_error(exc: BaseException) -> DatabaseError:
    """The failure's first line; where Spark's trace shows the driver had no memory for a
    result (its first line is only "An error occurred while calling ..."), what to change."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    if any(sign in text for sign in MEMORY_SIGNS):
        first += (" (the Spark driver had no memory for a result: raise ROI_SPARK_DRIVER_MEMORY,"
                  f" now {LOCAL_CONFIG['spark.driver.memory']}, or lower [scale] "
                  "max_panel_rows, the customer-month rows a run reads)")
    return DatabaseError(first)


class Cursor:
    """Runs one statement with ``SparkSession.sql`` and keeps its rows."""

    arraysize = 1000

    def __init__(self, session) -> None:
        self.session = session
        self.description: list[tuple] | None = None
        self.rowcount = -1
        self._rows: list[tuple] = []
        self._frame = None

    def execute(self, operation: str, parameters: Any = None) -> None:
        args = [_parameter(p) for p in parameters] if parameters else None
        try:
            frame = self.session.sql(operation, args=args) if args else self.session.sql(operation)
            self._frame = frame
            self.description = [(f.name, f.dataType.simpleString(), None, None, None, None, True)
                                for f in frame.schema.fields] or None
            self._rows = [tuple(row) for row in frame.collect()] if self.description else []
        except Exception as exc:    # Py4J / Spark Connect raise their own types
            raise _session_error(exc) from exc
        self.rowcount = len(self._rows)

    def executemany(self, operation: str, seq_of_parameters) -> None:
        for parameters in seq_of_parameters:
            self.execute(operation, parameters)

    def fetchone(self):
        return self._rows.pop(0) if self._rows else None

    def fetchmany(self, size: int | None = None):
        size = size or self.arraysize
        rows, self._rows = self._rows[:size], self._rows[size:]
        return rows

    def fetchall(self):
        rows, self._rows = self._rows, []
        return rows

    def close(self) -> None:
        self._rows, self._frame = [], None

    def setinputsizes(self, *args) -> None:
        pass

    def setoutputsize(self, *args) -> None:
        pass


def _parameter(value: Any) -> Any:
    """Spark binds Python dates, numbers, strings and booleans; a datetime stays a timestamp."""
    if isinstance(value, dt.datetime | dt.date | str | int | float | bool) or value is None:
        return value
    if hasattr(value, "item"):          # numpy scalars
        return value.item()
    return value


class Connection:
    """A DB-API connection over one SparkSession (statements run at once: no transactions)."""

    def __init__(self, session) -> None:
        self.session = session

    def cursor(self) -> Cursor:
        return Cursor(self.session)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass

    def close(self) -> None:
        pass   # the session outlives a connection: its temp views are the source's tables

    def arrow(self, operation: str, parameters: list | None = None):
        """The statement's result as an Arrow table (columnar, no Python rows)."""
        try:
            frame = (self.session.sql(operation, args=[_parameter(p) for p in parameters])
                     if parameters else self.session.sql(operation))
            return frame.toArrow()
        except Exception as exc:
            raise _session_error(exc) from exc


def local_session(master: str | None = None, *, config: dict[str, str] | None = None):
    """The process's local SparkSession (created once; ``ROI_SPARK_MASTER`` or ``local[*]``)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        from roi.data.errors import SourceError

        raise SourceError("the Spark engine needs pyspark: pip install 'community-roi[spark]' "
                          "(and Java 17 or 21)") from None
    builder = SparkSession.builder.appName("community-roi").master(
        master or os.environ.get("ROI_SPARK_MASTER", "local[*]"))
    for key, value in {**LOCAL_CONFIG, **(config or {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(os.environ.get("ROI_SPARK_LOG_LEVEL", "ERROR"))
    return session


def connect(*, master: str | None = None, remote: str | None = None, session=None) -> Connection:
    """DB-API ``connect``: a given session, a Spark Connect server, or the local session."""
    if session is None and remote:
        from pyspark.sql import SparkSession

        session = SparkSession.builder.remote(remote).getOrCreate()
    return Connection(session or local_session(master))


def spark_engine(session=None, *, master: str | None = None) -> sa.Engine:
    """A SQLAlchemy engine running every statement in ``session`` (default: the local one)."""
    session = session or local_session(master)
    return sa.create_engine("spark://", creator=lambda: Connection(session),
                            poolclass=StaticPool)


def fetch_arrow(connection: sa.Connection, sql: str, parameters: list):
    """Run a compiled statement through Arrow (``roi.data.source.fetch_frame``'s Spark path)."""
    return connection.connection.driver_connection.arrow(sql, parameters)


# --- SQLAlchemy dialect -----------------------------------------------------------------------

class SparkIdentifierPreparer(compiler.IdentifierPreparer):
    """Back-quoted identifiers (a double-quoted name is a string literal in Spark SQL)."""

    def __init__(self, dialect) -> None:
        super().__init__(dialect, initial_quote="`", escape_quote="`")


class SparkTypeCompiler(compiler.GenericTypeCompiler):
    def visit_string(self, type_, **kw):
        return "STRING"

    visit_VARCHAR = visit_NVARCHAR = visit_CHAR = visit_NCHAR = visit_TEXT = visit_string
    visit_unicode = visit_unicode_text = visit_text = visit_string

    def visit_double(self, type_, **kw):
        return "DOUBLE"

    visit_DOUBLE = visit_FLOAT = visit_float = visit_REAL = visit_DOUBLE_PRECISION = visit_double

    def visit_INTEGER(self, type_, **kw):
        return "INT"

    def visit_datetime(self, type_, **kw):
        return "TIMESTAMP"

    visit_DATETIME = visit_TIMESTAMP = visit_datetime


class SparkCompiler(compiler.SQLCompiler):
    """Spark SQL: RLIKE for regular expressions, TRY_CAST, back-quoted names."""

    def visit_regexp_match_op_binary(self, binary, operator, **kw):
        return f"{self.process(binary.left, **kw)} RLIKE {self.process(binary.right, **kw)}"

    def visit_not_regexp_match_op_binary(self, binary, operator, **kw):
        return f"NOT ({self.visit_regexp_match_op_binary(binary, operator, **kw)})"

    def visit_try_cast(self, element: TryCast, **kw):
        return (f"TRY_CAST({self.process(element.clause, **kw)} "
                f"AS {self.process(element.typeclause, **kw)})")

    def render_literal_value(self, value, type_):
        # Spark reads backslashes in string literals as escapes: double them.
        if isinstance(value, str):
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return super().render_literal_value(value, type_)


class SparkDialect(default.DefaultDialect):
    """SQLAlchemy dialect ``spark``: Spark SQL through a SparkSession (local or Spark Connect)."""

    name = "spark"
    driver = "pyspark"
    statement_compiler = SparkCompiler
    type_compiler_cls = SparkTypeCompiler
    preparer = SparkIdentifierPreparer
    paramstyle = "qmark"
    default_paramstyle = "qmark"
    positional = True
    supports_native_boolean = True
    supports_native_decimal = True
    supports_statement_cache = True
    supports_sane_rowcount = False
    supports_sane_multi_rowcount = False
    postfetch_lastrowid = False
    supports_alter = False
    supports_schemas = True
    returns_native_bytes = True
    div_is_floordiv = False

    @classmethod
    def import_dbapi(cls):
        import roi.data.spark as module

        return module

    def create_connect_args(self, url: sa.URL):
        query = dict(url.query)
        if url.host:
            return [], {"remote": f"sc://{url.host}:{url.port or 15002}"}
        return [], {"master": query.get("master")}

    def _get_server_version_info(self, connection):
        return tuple(int(p) for p in _session(connection).version.split(".")[:2] if p.isdigit())

    def _get_default_schema_name(self, connection):
        return _session(connection).catalog.currentDatabase()

    def get_isolation_level(self, dbapi_connection):
        return "AUTOCOMMIT"

    def set_isolation_level(self, dbapi_connection, level):
        pass

    def get_default_isolation_level(self, dbapi_conn):
        return "AUTOCOMMIT"

    def do_rollback(self, dbapi_connection) -> None:
        pass

    def do_commit(self, dbapi_connection) -> None:
        pass

    def do_ping(self, dbapi_connection) -> bool:
        return True

    def has_table(self, connection, table_name, schema=None, **kw) -> bool:
        return table_name in self.get_table_names(connection, schema=schema)

    def get_table_names(self, connection, schema=None, **kw) -> list[str]:
        catalog = _session(connection).catalog
        return [t.name for t in catalog.listTables(schema) if not t.isTemporary or not schema]

    def get_view_names(self, connection, schema=None, **kw) -> list[str]:
        return []

    def get_columns(self, connection, table_name, schema=None, **kw) -> list[dict]:
        name = f"{schema}.{table_name}" if schema else table_name
        fields = _session(connection).table(name).schema.fields
        return [{"name": f.name, "type": spark_type(f.dataType.simpleString()),
                 "nullable": f.nullable, "default": None} for f in fields]

    def get_pk_constraint(self, connection, table_name, schema=None, **kw):
        return {"constrained_columns": [], "name": None}

    def get_foreign_keys(self, connection, table_name, schema=None, **kw):
        return []

    def get_indexes(self, connection, table_name, schema=None, **kw):
        return []


def _session(connection: sa.Connection):
    return connection.connection.driver_connection.session


def spark_type(name: str) -> sa.types.TypeEngine:
    """The SQLAlchemy type of a Spark type name (``simpleString``); DECIMAL as a double."""
    base = name.split("(")[0].lower()
    if base == "date":
        return sa.Date()
    if base.startswith("timestamp"):
        return sa.DateTime()
    if base in ("double", "float", "decimal"):
        return sa.Double()
    if base in ("bigint", "long"):
        return sa.BigInteger()
    if base in ("int", "integer", "smallint", "tinyint", "short", "byte"):
        return sa.Integer()
    if base == "boolean":
        return sa.Boolean()
    return sa.String()


sa.dialects.registry.register("spark", "roi.data.spark", "SparkDialect")
sa.dialects.registry.register("spark.pyspark", "roi.data.spark", "SparkDialect")
sa.dialects.registry.register("spark.connect", "roi.data.spark", "SparkDialect")


def materialise(engine: sa.Engine, name: str, select: sa.Select, *, store: bool) -> sa.TableClause:
    """``select`` as a temporary view of the engine's session (a unique name per call), its
    result computed once and kept (``localCheckpoint``) when ``store``: later statements read
    it instead of re-running the plan from the raw files. Temporary views live in the session
    only; nothing is written to the catalog or the warehouse."""
    import uuid

    compiled = select.compile(dialect=engine.dialect,
                              compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    positional = [_parameter(params[p]) for p in compiled.positiontup or []]
    view = f"{name}_{uuid.uuid4().hex[:8]}"
    with engine.connect() as connection:
        session = _session(connection)
        try:
            frame = session.sql(str(compiled), args=positional or None)
            if store:
                frame = frame.localCheckpoint(eager=True)
            frame.createOrReplaceTempView(view)
        except Exception as exc:
            raise _session_error(exc) from exc
    return sa.table(view, *(sa.column(c.key, c.type) for c in select.selected_columns))
