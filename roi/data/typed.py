"""Typed views of the raw canonical tables, expressed as SQL that runs in the source database.

Text is trimmed (empty -> NULL), dates parsed as ISO (timestamps truncated to their date), numbers
parsed as finite doubles, e-mails replaced by their normalised SHA-256. The raw e-mail never leaves
this layer.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from roi.data import dialect
from roi.data.schema import TableSpec


def parsed_column(spec: TableSpec, raw: sa.FromClause, name: str, *,
                  duckdb: bool) -> ColumnElement:
    """The typed expression of one canonical column of ``raw``."""
    column = raw.c[name]
    kind = spec.kind(name)
    if kind == "date":
        return dialect.parse_date(column, duckdb=duckdb)
    if kind == "number":
        return dialect.parse_number(column, duckdb=duckdb)
    return dialect.as_text(column)


def canonical_columns(spec: TableSpec, raw: sa.FromClause) -> list[str]:
    """Canonical columns (required and optional) present in ``raw``, in spec order."""
    present = set(raw.c.keys())
    return [c for c in (*spec.required, *spec.optional) if c in present]


def extra_columns(spec: TableSpec, raw: sa.FromClause) -> list[str]:
    """Columns beyond the contract (covariates for customers, ignored elsewhere)."""
    known = set(spec.required) | set(spec.optional)
    return [c for c in raw.c.keys() if c not in known]


def typed_select(spec: TableSpec, raw: sa.FromClause, *, duckdb: bool,
                 numeric_extras: tuple[str, ...] = (),
                 keep_extras: tuple[str, ...] = ()) -> sa.Select:
    """SELECT producing the typed table; ``email`` becomes ``email_hash``."""
    columns: list[ColumnElement] = []
    for name in canonical_columns(spec, raw):
        if name == "email":
            columns.append(dialect.normalised_email_hash(raw.c[name], duckdb=duckdb)
                           .label("email_hash"))
        else:
            columns.append(parsed_column(spec, raw, name, duckdb=duckdb).label(name))
    for name in keep_extras:
        if name in numeric_extras:
            columns.append(dialect.parse_number(raw.c[name], duckdb=duckdb).label(name))
        else:
            columns.append(dialect.as_text(raw.c[name]).label(name))
    return sa.select(*columns).select_from(raw)
