"""The few SQL expressions whose spelling differs between database engines.

Everything else in the aggregations is portable SQLAlchemy Core. Run and tested: DuckDB (the
embedded engine), PostgreSQL and Spark SQL (``roi.data.spark``; Databricks' and PyHive's
dialects get the same spellings). Compiled in tests (golden files): BigQuery and Snowflake.
Other dialects get the PostgreSQL spellings, which most warehouses accept.

DuckDB's spellings are chosen when the statement is built (``duckdb=True``, the embedded
engine); the others when it is compiled, by the dialect's name (:class:`PerDialect`), so one
statement serves every warehouse.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement, TryCast
from sqlalchemy.sql.visitors import InternalTraversal

# A date, optionally followed by a time ('T' or ' ', HH:MM[:SS[.fraction]]) and a zone (Z, UTC,
# +HH, +HHMM, +HH:MM). Anything else after the date is refused: '2023-01-083' is not 2023-01-08.
# Plain groups, no \d: the same pattern in DuckDB (RE2) and PostgreSQL (ARE); both search, so
# it is anchored.
_ISO_DATE = (r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
             r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.,][0-9]{1,9})?)?"
             r" ?(Z|UTC|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?)?$")
_NUMBER = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,4})?\s*$"
_HUGE = sa.literal_column("1e308::numeric")
_TINY = sa.literal_column("1e-300::numeric")
_LARGEST = sa.literal_column("1.7976931348623157e308::float8")
_LARGEST_PORTABLE = sa.cast(sa.literal_column("1.7976931348623157e308"), sa.Double)
SPARK_FAMILY = ("spark", "databricks", "hive")


class PerDialect(ColumnElement):
    """One expression spelled per dialect at compile time: ``default`` (the PostgreSQL
    spelling) unless the compiling dialect's name has its own (Spark SQL, BigQuery,
    Snowflake)."""

    # Children declared, so that cloning (subqueries, aliases) adapts the columns inside every
    # spelling and the statement cache keys on all of them.
    _traverse_internals = [("default", InternalTraversal.dp_clauseelement),
                           ("names", InternalTraversal.dp_string_list),
                           ("spellings", InternalTraversal.dp_clauseelement_tuple),
                           ("type", InternalTraversal.dp_type)]
    inherit_cache = True

    def __init__(self, default: ColumnElement, *, type_: sa.types.TypeEngine,
                 **spellings: ColumnElement) -> None:
        if "spark" in spellings:
            for name in SPARK_FAMILY[1:]:
                spellings.setdefault(name, spellings["spark"])
        self.default = default
        self.names = tuple(spellings)
        self.spellings = tuple(spellings.values())
        self.type = type_

    def spelled_for(self, dialect_name: str) -> ColumnElement:
        if dialect_name in self.names:
            return self.spellings[self.names.index(dialect_name)]
        return self.default


@compiles(PerDialect)
def _per_dialect(element: PerDialect, compiler, **kw) -> str:
    return compiler.process(element.spelled_for(compiler.dialect.name), **kw)


@compiles(TryCast, "duckdb")
def _duckdb_try_cast(element: TryCast, compiler, **kw) -> str:
    # SQLAlchemy spells TRY_CAST only for SQL Server; DuckDB has the same function.
    return (f"TRY_CAST({compiler.process(element.clause, **kw)} "
            f"AS {compiler.process(element.typeclause, **kw)})")


@compiles(TryCast, "bigquery")
def _bigquery_safe_cast(element: TryCast, compiler, **kw) -> str:
    # BigQuery's TRY_CAST is SAFE_CAST.
    return (f"SAFE_CAST({compiler.process(element.clause, **kw)} "
            f"AS {compiler.process(element.typeclause, **kw)})")


@compiles(TryCast, "snowflake")
def _snowflake_try_cast(element: TryCast, compiler, **kw) -> str:
    return (f"TRY_CAST({compiler.process(element.clause, **kw)} "
            f"AS {compiler.process(element.typeclause, **kw)})")


def is_duckdb(engine_or_dialect: sa.Engine | sa.Dialect) -> bool:
    dialect = getattr(engine_or_dialect, "dialect", engine_or_dialect)
    return dialect.name == "duckdb"


def as_text(column: ColumnElement) -> ColumnElement:
    """Trimmed text, empty string as NULL."""
    if isinstance(column.type, sa.String):
        text = column
    else:
        text = sa.cast(column, sa.String)
    return sa.func.nullif(sa.func.trim(text), "")


def parse_date(column: ColumnElement, *, duckdb: bool) -> ColumnElement:
    """ISO date; a timestamp (with or without a zone) gives the date as written, i.e. its local
    calendar date (time-zone-aware file columns are made local when staged, see
    ``connectors._staging``). NULL when unparsable, including text after the date that is not
    a time."""
    if is_native_date(column):
        return column
    text = as_text(column)
    head = sa.func.substr(text, 1, 10)
    if duckdb:
        # A plain date (most rows) skips the regex, which would take 3x the cast's time.
        return sa.case((text.like("____-__-__"), sa.try_cast(text, sa.Date)),
                       (text.regexp_match(_ISO_DATE), sa.try_cast(head, sa.Date)), else_=None)
    # No TRY_CAST in PostgreSQL: a cast of '2024-02-30' or '0000-01-01' would abort the whole
    # query, so the day is checked against the month's length and the year must be >= 1.
    # Nested CASEs: PostgreSQL evaluates them in order (AND has no guaranteed order).
    checked = sa.case((_real_day(head), sa.cast(head, sa.Date)), else_=None)
    iso = text.regexp_match(_ISO_DATE)
    # Warehouses with TRY_CAST (Spark's ANSI mode, BigQuery's SAFE_CAST, Snowflake): the same
    # pattern and day check, then a cast that cannot abort the query.
    # (TRY_CAST for the parts too: an engine may evaluate both sides of the AND.)
    safe = sa.case((sa.and_(iso, _real_day(head, cast=sa.try_cast)), sa.try_cast(head, sa.Date)),
                   else_=None)
    return PerDialect(sa.case((iso, checked), else_=None), type_=sa.Date(),
                      spark=safe, bigquery=safe, snowflake=safe)


def _real_day(head: ColumnElement, *, cast=sa.cast) -> ColumnElement:
    """For a YYYY-MM-DD string already matching the ISO pattern: the day exists."""
    year = cast(sa.func.substr(head, 1, 4), sa.Integer)
    month = cast(sa.func.substr(head, 6, 2), sa.Integer)
    day = cast(sa.func.substr(head, 9, 2), sa.Integer)
    leap = sa.or_(sa.and_(year % 4 == 0, year % 100 != 0), year % 400 == 0)
    length = sa.case((month == 2, sa.case((leap, 29), else_=28)),
                     (month.in_([4, 6, 9, 11]), 30), else_=31)
    return sa.and_(year >= 1, day <= length)


def is_native_number(column: ColumnElement) -> bool:
    return isinstance(column.type, sa.Integer | sa.Numeric | sa.Float)


def is_native_date(column: ColumnElement) -> bool:
    return isinstance(column.type, sa.Date) and not isinstance(column.type, sa.DateTime)


def parse_number(column: ColumnElement, *, duckdb: bool) -> ColumnElement:
    """Finite number. NULL when unparsable, NaN or infinite."""
    if is_native_number(column):
        value = sa.cast(column, sa.Double)
        if not duckdb:
            # PostgreSQL (and Spark, BigQuery, Snowflake) order NaN above every number: NaN and
            # +-Infinity fail this test.
            portable = sa.case((sa.func.abs(value) <= _LARGEST_PORTABLE, value), else_=None)
            return PerDialect(sa.case((sa.func.abs(value) <= _LARGEST, value), else_=None),
                              type_=sa.Double(), spark=portable, bigquery=portable,
                              snowflake=portable)
        return sa.case((sa.func.isfinite(value), value), else_=None)
    text = as_text(column)
    if duckdb:
        value = sa.try_cast(text, sa.Double)
        return sa.case((sa.func.isfinite(value), value), else_=None)
    # PostgreSQL: through NUMERIC (exact, no overflow for these lengths) so that 1e309 is
    # refused and 1e-400 is 0 instead of a cast error that aborts the query.
    # Nested CASEs: PostgreSQL evaluates them in order (AND has no guaranteed order).
    exact = sa.cast(text, sa.Numeric)
    plausible = sa.and_(text.regexp_match(_NUMBER), sa.func.length(text) <= 400)
    finite = sa.case((sa.func.abs(exact) >= _HUGE, None), (sa.func.abs(exact) < _TINY, 0.0),
                     else_=sa.cast(exact, sa.Double))
    # TRY_CAST to a double after the same pattern (the pattern refuses what a cast alone would
    # take: Java's '1d', Snowflake's '1e'); 1e309 is infinite and refused, 1e-400 is 0.
    double = sa.try_cast(text, sa.Double)
    safe = sa.case((sa.and_(text.regexp_match(_NUMBER), sa.func.length(text) <= 400),
                    sa.case((sa.func.abs(double) <= _LARGEST_PORTABLE, double), else_=None)),
                   else_=None)
    return PerDialect(sa.case((plausible, finite), else_=None), type_=sa.Double(),
                      spark=safe, bigquery=safe, snowflake=safe)


def sha256_hex(text: ColumnElement, *, duckdb: bool) -> ColumnElement:
    """Hex SHA-256 of a UTF-8 string."""
    if duckdb:
        return sa.func.sha256(text)
    return PerDialect(sa.func.encode(sa.func.sha256(sa.func.convert_to(text, "UTF8")), "hex"),
                      type_=sa.String(), spark=sa.func.sha2(text, 256),
                      bigquery=sa.func.to_hex(sa.func.sha256(text)),
                      snowflake=sa.func.sha2(text, 256))


def normalised_email_hash(column: ColumnElement, *, duckdb: bool) -> ColumnElement:
    """SHA-256 of the trimmed, lower-cased e-mail (the linking key; raw e-mails never leave)."""
    return sha256_hex(sa.func.lower(as_text(column)), duckdb=duckdb)


def week_start(column: ColumnElement) -> ColumnElement:
    """Monday of the ISO week, as a date."""
    portable = sa.cast(sa.func.date_trunc("week", column), sa.Date)
    # BigQuery: DATE_TRUNC(date, ISOWEEK) (its WEEK starts on Sunday). Snowflake's 'week'
    # follows the session's WEEK_START: 0 (the default) and 1 are Monday.
    return PerDialect(portable, type_=sa.Date(),
                      bigquery=sa.func.date_trunc(column, sa.literal_column("ISOWEEK")),
                      spark=sa.func.trunc(column, "week"))


def month_index(column: ColumnElement) -> ColumnElement:
    """Months since year 0: comparable integers that make month arithmetic portable."""
    year = sa.cast(sa.extract("year", column), sa.Integer)
    month = sa.cast(sa.extract("month", column), sa.Integer)
    return year * 12 + month - 1


def day_diff(later: ColumnElement, earlier: ColumnElement) -> ColumnElement:
    """Whole days between two dates (DATE - DATE is an integer in DuckDB and PostgreSQL; an
    interval in Spark SQL)."""
    return PerDialect(sa.cast(later - earlier, sa.Integer), type_=sa.Integer(),
                      spark=sa.func.datediff(later, earlier),
                      bigquery=sa.func.date_diff(later, earlier, sa.literal_column("DAY")),
                      snowflake=sa.func.datediff(sa.literal_column("day"), earlier, later))



# Sums of money in DECIMAL: exact, so the result does not depend on the order in which a
# parallel aggregate adds the rows (a float sum's last bits do, and a rerun would differ).
# Amounts are validated to lie within +-MAX_AMOUNT, far inside DECIMAL(38, 9).
MAX_AMOUNT = 1e15
_EXACT = sa.Numeric(38, 9)


def exact_sum(value: ColumnElement) -> ColumnElement:
    """SUM computed exactly (DECIMAL(38, 9)) and returned as a double."""
    return sa.cast(sa.func.sum(sa.cast(value, _EXACT)), sa.Double)
