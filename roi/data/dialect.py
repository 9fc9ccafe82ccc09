"""The few SQL expressions whose spelling differs between database engines.

Everything else in the aggregations is portable SQLAlchemy Core. Supported: DuckDB (the embedded
engine) and PostgreSQL; other dialects use the PostgreSQL spellings, which most warehouses accept.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement, TryCast

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


@compiles(TryCast, "duckdb")
def _duckdb_try_cast(element: TryCast, compiler, **kw) -> str:
    # SQLAlchemy spells TRY_CAST only for SQL Server; DuckDB has the same function.
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
    return sa.case((text.regexp_match(_ISO_DATE), checked), else_=None)


def _real_day(head: ColumnElement) -> ColumnElement:
    """For a YYYY-MM-DD string already matching the ISO pattern: the day exists."""
    year = sa.cast(sa.func.substr(head, 1, 4), sa.Integer)
    month = sa.cast(sa.func.substr(head, 6, 2), sa.Integer)
    day = sa.cast(sa.func.substr(head, 9, 2), sa.Integer)
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
            # PostgreSQL orders NaN above every number: NaN and +-Infinity fail this test.
            return sa.case((sa.func.abs(value) <= _LARGEST, value), else_=None)
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
    return sa.case((plausible, finite), else_=None)


def sha256_hex(text: ColumnElement, *, duckdb: bool) -> ColumnElement:
    """Hex SHA-256 of a UTF-8 string."""
    if duckdb:
        return sa.func.sha256(text)
    return sa.func.encode(sa.func.sha256(sa.func.convert_to(text, "UTF8")), "hex")


def normalised_email_hash(column: ColumnElement, *, duckdb: bool) -> ColumnElement:
    """SHA-256 of the trimmed, lower-cased e-mail (the linking key; raw e-mails never leave)."""
    return sha256_hex(sa.func.lower(as_text(column)), duckdb=duckdb)


def week_start(column: ColumnElement) -> ColumnElement:
    """Monday of the ISO week, as a date."""
    return sa.cast(sa.func.date_trunc("week", column), sa.Date)


def month_index(column: ColumnElement) -> ColumnElement:
    """Months since year 0: comparable integers that make month arithmetic portable."""
    year = sa.cast(sa.extract("year", column), sa.Integer)
    month = sa.cast(sa.extract("month", column), sa.Integer)
    return year * 12 + month - 1


def day_diff(later: ColumnElement, earlier: ColumnElement) -> ColumnElement:
    """Whole days between two dates (DATE - DATE is an integer in DuckDB and PostgreSQL)."""
    return sa.cast(later - earlier, sa.Integer)



# Sums of money in DECIMAL: exact, so the result does not depend on the order in which a
# parallel aggregate adds the rows (a float sum's last bits do, and a rerun would differ).
# Amounts are validated to lie within +-MAX_AMOUNT, far inside DECIMAL(38, 9).
MAX_AMOUNT = 1e15
_EXACT = sa.Numeric(38, 9)


def exact_sum(value: ColumnElement) -> ColumnElement:
    """SUM computed exactly (DECIMAL(38, 9)) and returned as a double."""
    return sa.cast(sa.func.sum(sa.cast(value, _EXACT)), sa.Double)
