"""Any SQLAlchemy database: canonical tables by name, or a mapping from table to a SELECT.

Nothing is copied out: validation and aggregations run in that database. Passwords in the URL
are masked in every message.

Examples
--------
>>> from connectors.sql import from_url
>>> source = from_url("postgresql+psycopg://analyst:***@warehouse/crm",      # doctest: +SKIP
...                   tables={"orders": "SELECT buyer AS customer_id, day AS order_date, "
...                                     "amount AS revenue FROM sales.orders"})
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa

from connectors._staging import canonical_names
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
    try:
        engine = sa.create_engine(url)
        with engine.connect():
            pass
        present = {name.lower(): name for name in
                   sa.inspect(engine).get_table_names(schema=schema)}
    except Exception as exc:  # drivers raise their own types; the message is what matters
        raise SourceError(f"cannot open {mask_url(url)}: {mask_url(_first_line(exc))}") from None
    selectables: dict[str, sa.FromClause] = {}
    for table in TABLE_NAMES:
        if table in mapping:
            selectables[table] = _mapped_select(engine, table, mapping[table])
        elif table in present:
            selectables[table] = _reflected(engine, table, present[table], schema=schema)
    return CanonicalSource(engine=engine, tables=selectables, description=mask_url(url),
                           embedded=False)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _mapped_select(engine: sa.Engine, table: str, sql: str) -> sa.FromClause:
    """A user's SELECT as a subquery; its output columns are read with LIMIT 0."""
    statement = sql.strip().rstrip(";")
    if not statement.lower().startswith(("select", "with")):
        raise SourceError(f"{table}: the mapping must be a SELECT (or WITH ... SELECT)")
    probe = sa.text(f"SELECT * FROM ({statement}) AS probe LIMIT 0")
    try:
        with engine.connect() as connection:
            columns = list(connection.execute(probe).keys())
    except Exception as exc:
        raise SourceError(f"{table}: the mapped SELECT failed: {mask_url(_first_line(exc))}") \
            from None
    names = canonical_names(table, columns, origin="mapped SELECT")
    inner = sa.text(statement).columns(*(sa.column(c) for c in columns)).subquery(f"src_{table}")
    return sa.select(*(inner.c[c].label(names[c]) for c in columns)).subquery(f"map_{table}")


def _reflected(engine: sa.Engine, table: str, name: str, *, schema: str | None) -> sa.FromClause:
    reflected = sa.Table(name, sa.MetaData(), autoload_with=engine, schema=schema)
    names = canonical_names(table, list(reflected.c.keys()), origin=name)
    if all(old == new for old, new in names.items()):
        return reflected
    return sa.select(*(reflected.c[c].label(names[c]) for c in reflected.c.keys())) \
        .subquery(f"named_{table}")
