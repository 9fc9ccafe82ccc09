"""A folder of files named after the canonical tables (``customers.csv``, ``orders.parquet``,
``members.xlsx`` ...), plus optional platform exports listed in ``sources.toml``.

``sources.toml`` example::

    [[export]]
    platform = "shopify_orders"
    path = "exports/orders_export.csv"

    [[export]]
    platform = "discord_members"
    path = "exports/discord.csv"
    options = { community = "discord" }

Exports of the same canonical table are stacked; a table given both as a file and as an export
is an error (which one would win is not obvious).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd

from connectors._staging import stage_file, stage_frame
from roi.data.errors import SourceError
from roi.data.schema import TABLE_NAMES
from roi.data.source import CanonicalSource, embedded_engine
from roi.redaction import mask_url

SUFFIXES = (".csv", ".parquet", ".xlsx", ".xls")
MANIFEST = "sources.toml"


def table_files(folder: Path) -> dict[str, Path]:
    """Canonical table -> its file; two files for one table is an error."""
    found: dict[str, Path] = {}
    for table in TABLE_NAMES:
        matches = [folder / f"{table}{s}" for s in SUFFIXES if (folder / f"{table}{s}").is_file()]
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            raise SourceError(f"{table}: more than one file for the table in {folder}: {names}")
        if matches:
            found[table] = matches[0]
    return found


def from_folder(folder: str | Path, *,
                columns: dict[str, dict[str, str]] | None = None) -> CanonicalSource:
    """Stage every table file (and listed platform export) of ``folder`` in embedded DuckDB;
    ``columns`` renames headers per table (``{"orders": {"order_date": "Date"}}``: canonical
    name -> the file's header, ``[columns.orders]`` in ``roi.toml``).

    Examples
    --------
    >>> from connectors.files import from_folder
    >>> source = from_folder("data/sample")                        # doctest: +SKIP
    >>> sorted(source.tables)                                      # doctest: +SKIP
    ['activity', 'ad_spend', 'community_costs', 'customers', 'members', 'orders']
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"source folder not found: {folder}")
    engine = embedded_engine()
    files = table_files(folder)
    notes: list[str] = []
    tables = {table: stage_file(engine, table, path, notes=notes,
                                rename=(columns or {}).get(table))
              for table, path in files.items()}
    for table, frame, export_notes in _exports(folder):
        if table in files:
            raise SourceError(f"{table}: given both as {files[table].name} and as a platform "
                              f"export in {MANIFEST}; keep one")
        tables[table] = stage_frame(engine, table, frame, origin=MANIFEST)
        notes.extend(export_notes)
    if not tables:
        raise SourceError(f"no table files in {folder} (expected e.g. customers.csv, orders.csv)")
    return CanonicalSource(engine=engine, tables=tables, description=f"folder {folder}",
                           embedded=True, notes=notes)


def _exports(folder: Path) -> list[tuple[str, pd.DataFrame, list[str]]]:
    """Platform exports listed in the manifest, stacked per canonical table."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return []
    try:
        entries = tomllib.loads(manifest.read_text()).get("export", [])
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{manifest}: not valid TOML: {exc}") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise SourceError(f"{manifest}: 'export' must be a list of [[export]] tables")
    stacked: dict[str, list[pd.DataFrame]] = {}
    notes: dict[str, list[str]] = {}
    for entry in entries:
        if "platform" not in entry or "path" not in entry:
            raise SourceError(f"{manifest}: every [[export]] needs 'platform' and 'path'")
        loaded = _load_entry(manifest, entry, folder=folder)
        stacked.setdefault(loaded.table, []).append(loaded.frame)
        notes.setdefault(loaded.table, []).extend(
            f"{entry['platform']}: {note}" for note in loaded.notes)
    return [(table, pd.concat(frames, ignore_index=True), notes[table])
            for table, frames in stacked.items()]


def _load_entry(manifest: Path, entry: dict, *, folder: Path):
    """One ``[[export]]``; a layout or option problem becomes a SourceError naming it."""
    from connectors.platforms import load_export

    platform, path = str(entry["platform"]), str(entry["path"])
    options = entry.get("options", {})
    if not isinstance(options, dict):
        raise SourceError(f"{manifest}: export {platform!r}: 'options' must be a table")
    try:
        export = inside_folder(folder, path, entry=f"export {platform!r} path")
        options = _options_inside(folder, export, platform=platform, options=options)
        return load_export(export, platform=platform, options=options)
    except (ValueError, OSError, KeyError, TypeError) as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"{manifest.name}: export {platform!r} ({path}): {exc}") from None


def inside_folder(folder: Path, given: str, *, entry: str) -> Path:
    """``given`` (relative to ``folder``) resolved, symlinks followed; refused unless it stays
    inside the folder.

    A manifest must not make the toolkit read (and an error message quote) a file elsewhere,
    e.g. ``../../secret.env``, ``/etc/passwd`` or a link pointing outside. The error names the
    manifest entry only, never the file's contents.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> inside_folder(folder, "exports/a.csv", entry="export 'x' path").name
    'a.csv'
    >>> inside_folder(folder, "../secret.env", entry="export 'x' path")
    Traceback (most recent call last):
    ...
    roi.data.errors.SourceError: sources.toml: export 'x' path '../secret.env' resolves outside the source folder; every path in sources.toml must be inside it
    """
    _not_a_url(given, entry=entry)
    root = folder.resolve()
    target = (folder / given).resolve()
    if not target.is_relative_to(root):
        raise SourceError(f"{MANIFEST}: {entry} {given!r} resolves outside the source folder; "
                          f"every path in {MANIFEST} must be inside it")
    return target


def _not_a_url(given: str, *, entry: str) -> None:
    # Checked before any Path is made: a path folds '//' and would hide the URL from masking.
    if "://" in given:
        raise SourceError(f"{MANIFEST}: {entry} {mask_url(given)!r} is a URL; {MANIFEST} lists "
                          "files inside the source folder (download the export first)")


def _options_inside(folder: Path, export: Path, *, platform: str, options: dict) -> dict:
    """Options that name a file (a links table) resolved next to the export, inside the
    folder; other options unchanged."""
    from connectors.platforms import load_mapping

    link = load_mapping(platform).link
    given = options.get(link.option) if link else None
    if not isinstance(given, str):
        return options
    where = f"export {platform!r} options.{link.option}"
    _not_a_url(given, entry=where)
    relative = export.parent.relative_to(folder.resolve()) / given
    return {**options, link.option: inside_folder(folder, str(relative), entry=where)}
