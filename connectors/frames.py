"""pandas DataFrames (one per canonical table) as a source, for analysts in a notebook."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from connectors._staging import stage_frame
from roi.data.errors import SourceError
from roi.data.schema import TABLE_NAMES
from roi.data.source import CanonicalSource, embedded_engine


def from_frames(frames: Mapping[str, pd.DataFrame]) -> CanonicalSource:
    """Copy DataFrames into the embedded DuckDB, where validation and aggregations run.

    Examples
    --------
    >>> import pandas as pd
    >>> from connectors.frames import from_frames
    >>> source = from_frames({"customers": pd.DataFrame({"customer_id": ["C1"],
    ...                                                   "first_seen": ["2024-01-01"]})})
    >>> list(source.tables)
    ['customers']
    """
    unknown = sorted(set(frames) - set(TABLE_NAMES))
    if unknown:
        raise SourceError(f"unknown table name(s) {unknown}; canonical tables: {TABLE_NAMES}")
    engine = embedded_engine()
    tables = {name: stage_frame(engine, name, frame, origin="DataFrame")
              for name, frame in frames.items()}
    return CanonicalSource(engine=engine, tables=tables, description="DataFrames", embedded=True)
