"""A folder of canonical Parquet/CSV files read by Apache Spark (``roi run --engine spark``).

Each ``<table>.parquet`` (a file, or a folder of Parquet parts as Spark and the simulator write
them) or ``<table>.csv`` becomes a temporary view of the local SparkSession; validation and the
aggregations then run in Spark SQL (:mod:`roi.data.spark`). CSV columns are read as text, as the
embedded engine reads them, so the validator sees every raw value; a CSV row with more fields
than its header is an error (Spark's FAILFAST mode), never silently cut.

Examples
--------
>>> from connectors.spark import from_folder_spark
>>> source = from_folder_spark("data/sample")                    # doctest: +SKIP
>>> source.engine.dialect.name                                   # doctest: +SKIP
'spark'
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

from connectors._staging import canonical_names, sniff_csv
from roi.data.errors import SourceError
from roi.data.schema import TABLE_NAMES
from roi.data.source import CanonicalSource

SUFFIXES = (".parquet", ".csv")


def spark_table_paths(folder: Path) -> dict[str, Path]:
    """Canonical table -> its ``.parquet`` (file or folder of parts) or ``.csv``."""
    found: dict[str, Path] = {}
    for table in TABLE_NAMES:
        matches = [folder / f"{table}{s}" for s in SUFFIXES if (folder / f"{table}{s}").exists()]
        if not matches and (folder / table).is_dir() and any((folder / table).glob("*.parquet")):
            matches = [folder / table]
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            raise SourceError(f"{table}: more than one file for the table in {folder}: {names}")
        if matches:
            found[table] = matches[0]
    other = sorted(p.name for p in folder.glob("*.xls*"))
    if other:
        raise SourceError(f"the Spark engine reads Parquet and CSV only; convert {other[0]} "
                          "(or run without --engine spark)")
    return found


def from_folder_spark(folder: str | Path, *, session=None,
                      columns: Mapping[str, Mapping[str, str]] | None = None) -> CanonicalSource:
    """Register each table file of ``folder`` as a temporary view of ``session`` (default: the
    local session of :func:`roi.data.spark.local_session`)."""
    from roi.data.spark import local_session, spark_engine

    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"source folder not found: {folder}")
    if (folder / "sources.toml").is_file():
        raise SourceError("the Spark engine reads canonical table files only; platform "
                          "exports in sources.toml need the embedded engine")
    paths = spark_table_paths(folder)
    if not paths:
        raise SourceError(f"no table files in {folder} (expected e.g. customers.csv, "
                          "orders.parquet)")
    session = session or local_session()
    engine = spark_engine(session)
    prefix = f"roi_{uuid.uuid4().hex[:8]}"
    tables = {table: _view(session, engine, table, path, view=f"{prefix}_{table}",
                           rename=(columns or {}).get(table))
              for table, path in paths.items()}
    return CanonicalSource(engine=engine, tables=tables, description=f"folder {folder} (Spark)",
                           embedded=False, notes=[])


def _view(session, engine: sa.Engine, table: str, path: Path, *, view: str,
          rename: Mapping[str, str] | None) -> sa.TableClause:
    """A temporary view with canonical column names; its columns typed from Spark's schema."""
    from roi.data.spark import spark_type

    try:
        if path.suffix.lower() == ".csv":
            if path.stat().st_size == 0:
                raise SourceError(f"{table}: {path.name} is an empty file (not even a header "
                                  "row)")
            dialect = sniff_csv(table, path)
            frame = (session.read.option("header", True).option("inferSchema", False)
                     .option("sep", dialect.delimiter).option("multiLine", True)
                     .option("escape", '"').option("mode", "FAILFAST")
                     .option("encoding", {"utf-16": "UTF-16"}.get(dialect.encoding,
                                                                  dialect.encoding.upper()))
                     .csv(str(path)))
            # Kept once read (memory, then disk): every validation rule reads the raw text.
            frame = frame.cache()
        else:
            frame = session.read.parquet(str(path))
        names = canonical_names(table, frame.columns, origin=path.name, rename=rename)
        frame = frame.toDF(*(names[c] for c in frame.columns))
        frame.createOrReplaceTempView(view)
    except SourceError:
        raise
    except Exception as exc:   # Spark's analysis errors: the first line says what is wrong
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceError(f"{table}: cannot read {path.name} with Spark: {first}") from None
    return sa.table(view, *(sa.column(f.name, spark_type(f.dataType.simpleString()))
                            for f in frame.schema.fields))
