"""Connectors: load CRM, ad-spend and community data into the six canonical tables.

``open_source`` picks the connector from what it is given: a folder, a SQLAlchemy URL, or a dict
of DataFrames.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from roi.data.source import CanonicalSource

# Where a folder's files are read and aggregated: the embedded DuckDB, or a local Spark session.
ENGINES = ("duckdb", "spark")


def open_source(spec: str | Path | Mapping[str, pd.DataFrame], *,
                tables: Mapping[str, str] | None = None,
                schema: str | None = None,
                columns: Mapping[str, Mapping[str, str]] | None = None,
                engine: str = "duckdb") -> CanonicalSource:
    """A folder path, a database URL (``dialect://...``) or ``{table: DataFrame}``;
    ``columns`` renames a folder's headers (``{"orders": {"order_date": "Date"}}``);
    ``engine="spark"`` reads a folder with a local Apache Spark session instead of the
    embedded DuckDB (:mod:`connectors.spark`).

    Examples
    --------
    >>> from connectors import open_source
    >>> source = open_source("data/sample")                         # doctest: +SKIP
    """
    if engine not in ENGINES:
        from roi.data.errors import SourceError

        raise SourceError(f"unknown engine {engine!r}; one of {', '.join(ENGINES)}")
    if engine == "spark" and (isinstance(spec, Mapping) or "://" in str(spec)):
        from roi.data.errors import SourceError

        raise SourceError("--engine spark reads a folder of files; for a Spark cluster give "
                          "its URL (spark+connect://host:15002, databricks://...) as the source")
    if engine == "spark":
        from connectors.spark import from_folder_spark

        return from_folder_spark(spec, columns=columns)
    if isinstance(spec, Mapping):
        from connectors.frames import from_frames

        return from_frames(spec)
    if "://" in str(spec):
        from connectors.sql import from_url

        if columns:
            from roi.data.errors import SourceError

            raise SourceError("[columns] renames the headers of files; for a database name "
                              "the columns in [source.tables] (SELECT Date AS order_date ...)")

        return from_url(str(spec), tables=tables, schema=schema)
    from connectors.files import from_folder

    return from_folder(spec, columns={k: dict(v) for k, v in (columns or {}).items()})


__all__ = ["open_source"]
