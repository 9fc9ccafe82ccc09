"""A source is a database engine plus one selectable per canonical table present.

Connectors build sources; :func:`roi.data.load_dataset` validates and types them inside that same
database. Nothing here pulls row-level data into Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from roi.data.dialect import is_duckdb

_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)@")


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
    """A private in-memory DuckDB; one connection shared so registered data stays visible."""
    return sa.create_engine("duckdb:///:memory:", poolclass=StaticPool)


def mask_url(text: str) -> str:
    """Replace the password of every URL in ``text`` by ``***``.

    Examples
    --------
    >>> mask_url("postgresql://analyst:s3cret@db:5432/crm")
    'postgresql://analyst:***@db:5432/crm'
    """
    return _PASSWORD_IN_URL.sub(lambda m: f"{m.group('head')}***@", str(text))


def fetch_frame(engine: sa.Engine, statement: sa.Executable) -> pd.DataFrame:
    """Run a statement in the database and return its (aggregated) result as a DataFrame.

    DuckDB results come back through Arrow (columnar, fast); other engines through pandas.
    """
    with engine.connect() as connection:
        if is_duckdb(engine):
            compiled = statement.compile(dialect=engine.dialect)
            params = compiled.construct_params()
            positional = [params[name] for name in compiled.positiontup or []]
            driver = connection.connection.driver_connection
            return driver.execute(str(compiled), positional).df()
        return pd.read_sql(statement, connection)


def execute_scalar_rows(engine: sa.Engine, statement: sa.Executable) -> list[tuple]:
    """Run a small query (counts, examples) and return its rows as tuples."""
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(statement)]
