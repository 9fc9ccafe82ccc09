"""An Excel workbook as one canonical table, the way a person reads it.

* Every sheet whose header holds the table's required columns is read; such sheets must have
  the same columns (case and surrounding spaces aside) and are stacked (a sheet per year or
  region). A sheet with those columns but a different header is refused (naming the file, the
  sheet and the columns that differ); a sheet without them (notes, a pivot, an empty
  ``Sheet1``) is ignored. Each step is said in the notes.
* The header is the first row (among the first :data:`HEADER_SEARCH` non-empty rows) that names
  the required columns: a report title, notes or blank rows above it are skipped.
* Merged cells hold their value in every cell they cover, as Excel shows them.
* Empty rows and empty unnamed columns carry nothing and are skipped; a column with values but
  no header name (a blank or merged header cell) is refused.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

import numpy as np
import pandas as pd
from openpyxl.utils.cell import get_column_letter, range_boundaries

from roi.data.errors import SourceError
from roi.data.schema import TABLES

HEADER_SEARCH = 20
_MERGE = re.compile(rb'<(?:\w+:)?mergeCell\s+ref="([A-Z]+[0-9]+:[A-Z]+[0-9]+)"')
_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
       "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
       "p": "http://schemas.openxmlformats.org/package/2006/relationships"}


@dataclass
class Sheet:
    """One sheet's header (names as written, trimmed) and data rows below it."""

    name: str
    header: list[str]
    rows: pd.DataFrame
    above: int = 0
    blank: int = 0
    merged: int = 0

    @property
    def keys(self) -> list[str]:
        return [_key(name) for name in self.header]


def read_workbook(table: str, path: Path) -> tuple[pd.DataFrame, list[str]]:
    """The table's rows from every matching sheet of ``path``, stacked, and notes on what was
    read, skipped or ignored.

    Raises SourceError for an unreadable file, two sheets of the table with different columns,
    or a column with values but no header name."""
    try:
        grids = pd.read_excel(path, sheet_name=None, header=None, dtype=str)
    except Exception as exc:  # openpyxl raises many types for broken files
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        raise SourceError(f"{table}: cannot read {path.name}: {reason}") from None
    merges = _merged_ranges(path) if path.suffix.lower() == ".xlsx" else {}
    sheets, ignored, notes = [], [], []
    for name, grid in grids.items():
        sheet = _sheet(table, path, name, grid, merges=merges.get(name, []))
        (sheets if sheet is not None and _holds_table(table, sheet.keys) else ignored).append(
            sheet or name)
    if not sheets and ignored:
        # No sheet names the required columns: read the first non-empty one as it is, so that
        # validation lists the columns it has.
        first = next((s for s in ignored if isinstance(s, Sheet)), None)
        if first is not None:
            ignored.remove(first)
            sheets.append(first)
    for sheet in sheets[1:]:
        _check_same_columns(table, path, sheets[0], sheet)
    if not sheets:
        raise SourceError(f"{table}: {path.name} has no values in any sheet (not even a header "
                          "row)")
    notes.extend(_notes(path, sheets, ignored))
    frame = pd.concat([_aligned(s, sheets[0]) for s in sheets], ignore_index=True)
    return frame, notes


def _key(name: str) -> str:
    return name.strip().lstrip("\ufeff").strip().lower()


def _holds_table(table: str, keys: list[str]) -> bool:
    spec, present = TABLES[table], set(keys)
    return (all(c in present for c in spec.required)
            and all(present.intersection(group) for group in spec.one_of))


def _sheet(table: str, path: Path, name: str, grid: pd.DataFrame, *,
           merges: list[str]) -> Sheet | None:
    """The sheet's header and rows; None for a sheet without any value."""
    grid = grid.copy()
    grid.columns = range(grid.shape[1])
    grid = grid.reset_index(drop=True)
    merged_rows = _fill_merged(grid, merges)
    filled = grid.notna() & (grid.astype(str).apply(lambda c: c.str.strip()) != "")
    nonempty = np.flatnonzero(filled.any(axis=1).to_numpy()).tolist()
    if not nonempty:
        return None
    at = next((i for i in nonempty[:HEADER_SEARCH]
               if _holds_table(table, [_key(str(v)) for v in grid.iloc[i] if pd.notna(v)])),
              nonempty[0])
    body = [i for i in nonempty if i > at]
    keep, header = [], []
    for column in grid.columns:
        label = grid.iat[at, column]
        label = "" if pd.isna(label) else str(label).strip().lstrip("\ufeff").strip()
        if not label and not filled.loc[body, column].any():
            continue   # an empty column without a name: nothing to read
        if not label:
            raise SourceError(
                f"{table}: {path.name} sheet {name!r}: column {get_column_letter(column + 1)} "
                "has values but no header name (a blank or merged header cell); name it")
        if _key(label) in map(_key, header):
            raise SourceError(f"{table}: {path.name} sheet {name!r}: duplicate column "
                              f"{label!r} in the header")
        keep.append(column)
        header.append(label)
    rows = grid.loc[body, keep]
    rows.columns = header
    return Sheet(name=name, header=header, rows=rows.reset_index(drop=True),
                 above=sum(1 for i in nonempty if i < at),
                 blank=(body[-1] - at - len(body)) if body else 0,
                 merged=sum(1 for first_row in merged_rows if first_row > at))


def _fill_merged(grid: pd.DataFrame, merges: list[str]) -> list[int]:
    """Each merged range's value copied into every cell it covers; the ranges' first rows."""
    firsts = []
    for ref in merges:
        first_col, first_row, last_col, last_row = range_boundaries(ref)
        if first_row > len(grid) or first_col > grid.shape[1]:
            continue
        value = grid.iat[first_row - 1, first_col - 1]
        grid.iloc[first_row - 1:last_row, first_col - 1:last_col] = value
        firsts.append(first_row - 1)
    return firsts


def _check_same_columns(table: str, path: Path, first: Sheet, other: Sheet) -> None:
    if sorted(first.keys) == sorted(other.keys):
        return
    missing = [h for h, k in zip(first.header, first.keys, strict=True) if k not in other.keys]
    extra = [h for h, k in zip(other.header, other.keys, strict=True) if k not in first.keys]
    what = "; ".join(part for part in (
        f"without {', '.join(map(repr, missing))}" if missing else "",
        f"with {', '.join(map(repr, extra))} in addition" if extra else "",
        "with a column named twice" if not (missing or extra) else "") if part)
    raise SourceError(
        f"{table}: {path.name}: sheet {other.name!r} has other columns than sheet "
        f"{first.name!r} ({what}); sheets are stacked only when their headers match: make the "
        "headers equal or move the other sheet out of the workbook")


def _aligned(sheet: Sheet, first: Sheet) -> pd.DataFrame:
    """The sheet's rows under the first sheet's column names, in its order."""
    spelling = dict(zip(sheet.keys, sheet.header, strict=True))
    return pd.DataFrame({name: sheet.rows[spelling[key]].to_numpy()
                         for name, key in zip(first.header, first.keys, strict=True)})


def _notes(path: Path, sheets: list[Sheet], ignored: list) -> list[str]:
    notes = []
    if len(sheets) > 1:
        counts = ", ".join(f"{s.name!r} {len(s.rows)}" for s in sheets)
        notes.append(f"{path.name}: {len(sheets)} sheets stacked ({counts} rows; "
                     f"{sum(len(s.rows) for s in sheets)} in all).")
    for sheet in sheets:
        for count, what in ((sheet.above, "row(s) above the header (a title or notes)"),
                            (sheet.blank, "empty row(s)"),
                            (sheet.merged, "merged cell range(s) filled with their value")):
            if count:
                verb = "" if what.startswith("merged") else "skipped "
                notes.append(f"{path.name} sheet {sheet.name!r}: {verb}{count} {what}.")
    for sheet in ignored:
        if isinstance(sheet, Sheet):
            notes.append(f"{path.name}: sheet {sheet.name!r} ignored: its header "
                         f"({', '.join(sheet.header[:6])}) lacks the table's required columns.")
        else:
            notes.append(f"{path.name}: sheet {sheet!r} ignored: it is empty.")
    return notes


def _merged_ranges(path: Path) -> dict[str, list[str]]:
    """Sheet name -> its merged ranges ('B4:B5'), read from the workbook's XML (openpyxl's
    fast read-only mode does not give them). Empty when the file cannot be read that way."""
    try:
        with zipfile.ZipFile(path) as archive:
            return {name: _sheet_merges(archive, part)
                    for name, part in _sheet_parts(archive).items()}
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, OSError):
        return {}


def _sheet_parts(archive: zipfile.ZipFile) -> dict[str, str]:
    book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    targets = {r.get("Id"): r.get("Target", "") for r in rels.findall("p:Relationship", _NS)}
    parts = {}
    for sheet in book.findall("m:sheets/m:sheet", _NS):
        target = targets.get(sheet.get(f"{{{_NS['r']}}}id"), "")
        parts[sheet.get("name")] = (target.lstrip("/") if target.startswith("/")
                                    else str(PurePosixPath("xl") / target))
    return parts


def _sheet_merges(archive: zipfile.ZipFile, part: str) -> list[str]:
    """mergeCell refs of one sheet, scanning its XML in chunks (a sheet may be large)."""
    refs: dict[bytes, None] = {}
    tail = b""
    with archive.open(part) as stream:
        while chunk := stream.read(1 << 20):
            text = tail + chunk
            refs.update(dict.fromkeys(_MERGE.findall(text)))
            tail = text[-200:]
    return [ref.decode() for ref in refs]
