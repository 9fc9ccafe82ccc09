"""Platform exports (Shopify, Stripe, HubSpot, Google Ads, Meta, Slack, Discord, Discourse ...)
read into canonical tables through small declarative mappings.

Each platform is one TOML file in ``connectors/platforms/`` that says, as data, which canonical
table the export feeds and where each canonical column comes from in the export's *real* column
layout. This module is the generic engine that applies such a mapping:

1. read a ``.csv`` (any of UTF-8/UTF-16, comma/tab/semicolon; ``.gz``/``.zip`` too) or ``.xlsx``;
2. find the header row (report title and date-range lines above it are skipped and counted);
3. ``[fold]`` repeated rows of one record (Shopify line items) into their first row;
4. ``[[skip]]`` rows the mapping names (Google Ads ``Total:`` rows, Meta's summary row ...);
5. build each canonical column from ``[columns]`` (source column, constant, or user option),
   parse dates to ISO ``YYYY-MM-DD`` (a timestamp keeps its *local* date as written:
   ``"2024-03-05 23:10:00 -0500"`` -> ``"2024-03-05"``), clean numbers (currency symbols,
   thousands separators, ``--``), and apply transforms;
6. link members to customers through a user-given links file (``[link]``), drop rows whose
   required values are missing, ``[group]`` rows into one per key (Stripe subscriptions ->
   customers), and run ``[[check]]`` counts.

Nothing is dropped silently: every skipped, folded or grouped row is counted in ``notes``.
E-mails stay raw in ``email`` columns (the dataset layer hashes them); a ``customer_id`` made
from an e-mail is its SHA-256 (``transform = "email_sha256"``), the same key the dataset layer
uses to link members by e-mail.

Mapping reference (all keys optional unless marked)::

    table = "orders"                      # required: canonical table
    title = "Shopify orders export"
    source = "where the layout comes from and which columns are used"
    hint = "shown in errors: how to get a fitting export"
    date_formats = ["%b %d, %Y"]          # strptime formats tried after ISO dates

    [columns]                             # canonical column -> rule
    customer_id = {from = "Email", transform = "email_sha256", if_missing = "why rows lack it"}
    order_date = {from = "Created at"}
    revenue = {from = "Total", subtract = "Refunded Amount"}
    community = {value = "discord", option = "community"}   # constant, user may override
    joined_at = {from = ["Claimed Date (UTC)", "Account created (UTC)"]}  # first present
    first_seen = {from = ["Start Date (UTC)", "Created (UTC)"], coalesce = true}  # row-wise
    spend = {regex = '^Amount spent \\([A-Z]{3}\\)$'}
    churned_at = {from = "Ended At (UTC)", only_if = {column = "Status", in = ["canceled"]}}
    # also: optional = true, transform = "email" | "email_sha256" | "lower" | "slug",
    #       prefix = "google_ads_", scale = 0.01, null_values = ["Unknown"], formats = [...]

    [fold]                                # keep the first row per value of a source column
    by = "Name"; rows = "line-item rows"; into = "orders"

    [[skip]]                              # rows to drop (counted in notes)
    columns = ["*"]; startswith = "Total:"; reason = "summary rows"
    # or: in = ["voided"]; matches = '-\\d+'; empty = true (all listed columns empty);
    # optional = true (ignore the rule when its columns are absent)

    [group]                               # one row per canonical key after mapping
    by = "customer_id"; rows = "subscriptions"; into = "customers"
    agg = {first_seen = "min", churned_at = "max_if_all", email = "first"}

    [[check]]                             # counted, never dropped
    kind = "differ"; columns = ["Reporting starts", "Reporting ends"]; message = "{n} rows ..."

    [link]                                # user-given table: member_id -> customer_id / email
    option = "links"; on = "member_id"

Options (``load_export(..., options={...})``): the ``option`` names used by the mapping
(e.g. ``community``, ``joined_at``, ``channel``, ``links``) plus ``columns`` (override a
column rule: a source column name or a rule table), ``date_format``, ``decimal`` (``","``
for decimal commas) and ``sheet`` (Excel sheet name).

Examples
--------
>>> from connectors.platforms import available_platforms
>>> "shopify_orders" in available_platforms()
True
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import math
import re
import tomllib
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from roi.data.schema import TABLES, TableSpec

__all__ = ["ExportFormatError", "MissingOptionError", "PlatformMapping", "PlatformTable",
           "available_platforms", "email_sha256", "load_export", "load_mapping", "read_rows"]

MAPS_FOLDER = "platforms"
ENGINE_OPTIONS = ("columns", "date_format", "decimal", "sheet")
DEFAULT_DATE_FORMATS = ("%b %d, %Y", "%B %d, %Y", "%d %b %Y", "%d %B %Y")
NULL_TEXT = ("", "--", "—", "n/a", "N/A", "nan", "NaN", "None", "null")
HEADER_SCAN_ROWS = 30
_ISO_DATE = re.compile(r"^(\d{4})[-/](\d{2})[-/](\d{2})(?:$|[ T])")
_UNCONVERTED = "unconverted data remains: "


class ExportFormatError(ValueError):
    """An export does not have the layout its platform mapping expects."""


class MissingOptionError(ValueError):
    """A value the export cannot provide must come from ``options`` and was not given."""


# --------------------------------------------------------------------------- mapping as data


@dataclass(frozen=True)
class ColumnRule:
    """Where one canonical column comes from (parsed from a ``[columns]`` entry)."""

    name: str
    sources: tuple[str, ...] = ()
    regex: str | None = None
    coalesce: bool = False
    value: Any = None
    option: str | None = None
    transform: str | None = None
    prefix: str = ""
    scale: float = 1.0
    subtract: str | None = None
    formats: tuple[str, ...] = ()
    null_values: tuple[str, ...] = ()
    optional: bool = False
    only_if: Mapping[str, Any] | None = None
    if_missing: str | None = None

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any] | str) -> ColumnRule:
        """Build a rule from a TOML table (or a bare source column name)."""
        if isinstance(spec, str):
            spec = {"from": spec}
        unknown = set(spec) - _RULE_KEYS
        if unknown:
            raise ValueError(f"column {name!r}: unknown mapping key(s) {sorted(unknown)}")
        return cls(name=name, sources=_as_tuple(spec.get("from")), regex=spec.get("regex"),
                   coalesce=bool(spec.get("coalesce", False)), value=spec.get("value"),
                   option=spec.get("option"), transform=spec.get("transform"),
                   prefix=spec.get("prefix", ""), scale=float(spec.get("scale", 1.0)),
                   subtract=spec.get("subtract"), formats=_as_tuple(spec.get("formats")),
                   null_values=_as_tuple(spec.get("null_values")),
                   optional=bool(spec.get("optional", False)), only_if=spec.get("only_if"),
                   if_missing=spec.get("if_missing"))

    @property
    def reads_source(self) -> bool:
        return bool(self.sources or self.regex)


_RULE_KEYS = {"from", "regex", "coalesce", "value", "option", "transform", "prefix", "scale",
              "subtract", "formats", "null_values", "optional", "only_if", "if_missing"}


@dataclass(frozen=True)
class SkipRule:
    """Rows to drop: a listed column is in ``values`` (case-insensitive), starts with
    ``startswith`` or fully matches the regex ``matches``; or (``empty``) every listed column
    present in the file is empty. ``"*"`` means every column."""

    reason: str
    columns: tuple[str, ...]
    values: tuple[str, ...] = ()
    startswith: str | None = None
    matches: str | None = None
    empty: bool = False
    optional: bool = False


@dataclass(frozen=True)
class Fold:
    """Keep the first row per value of the source column ``by`` (file order)."""

    by: str
    rows: str = "rows"
    into: str = "records"


@dataclass(frozen=True)
class Group:
    """Aggregate mapped rows to one per canonical column ``by``."""

    by: str
    agg: Mapping[str, str]
    rows: str = "rows"
    into: str = "records"


@dataclass(frozen=True)
class Check:
    """A count reported in the notes: rows whose ``columns`` differ, or whose column is in
    ``values``. ``message`` is formatted with ``n``."""

    kind: str
    columns: tuple[str, ...]
    message: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Link:
    """Fill ``customer_id``/``email`` from a user-given table keyed by canonical ``on``."""

    option: str
    on: str = "member_id"


@dataclass(frozen=True)
class PlatformMapping:
    """A platform export's layout mapped to one canonical table (see the module docstring).

    Examples
    --------
    >>> from connectors.platforms import PlatformMapping
    >>> m = PlatformMapping.from_dict("tiny", {"table": "ad_spend", "columns": {
    ...     "date": {"from": "Day"}, "channel": {"value": "tv"}, "spend": {"from": "Cost"}}})
    >>> m.table, sorted(m.columns)
    ('ad_spend', ['channel', 'date', 'spend'])
    """

    name: str
    table: str
    columns: Mapping[str, Mapping[str, Any]]
    title: str = ""
    source: str = ""
    hint: str = ""
    date_formats: tuple[str, ...] = ()
    skips: tuple[SkipRule, ...] = ()
    fold: Fold | None = None
    group: Group | None = None
    checks: tuple[Check, ...] = ()
    link: Link | None = None

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> PlatformMapping:
        """Build and check a mapping from parsed TOML."""
        table = data.get("table")
        if table not in TABLES:
            raise ValueError(f"mapping {name!r}: table must be one of {sorted(TABLES)}")
        columns = {col: _spec_table(spec) for col, spec in data.get("columns", {}).items()}
        _check_columns(name, TABLES[table], columns=columns)
        return cls(name=name, table=table, columns=columns, title=data.get("title", name),
                   source=data.get("source", "").strip(), hint=data.get("hint", "").strip(),
                   date_formats=_as_tuple(data.get("date_formats")),
                   skips=tuple(_skip(s) for s in data.get("skip", [])),
                   fold=Fold(**data["fold"]) if "fold" in data else None,
                   group=_group(data["group"]) if "group" in data else None,
                   checks=tuple(_check(c) for c in data.get("check", [])),
                   link=Link(**data["link"]) if "link" in data else None)

    @classmethod
    def from_toml(cls, path: str | Path) -> PlatformMapping:
        """Read a mapping file; its name is the file stem."""
        path = Path(path)
        return cls.from_dict(path.stem, tomllib.loads(path.read_text(encoding="utf-8")))

    def rules(self, overrides: Mapping[str, Any] | None = None) -> dict[str, ColumnRule]:
        """Column rules after the user's ``options["columns"]`` overrides."""
        specs = dict(self.columns)
        for col, spec in (overrides or {}).items():
            if col not in _allowed_columns(TABLES[self.table]):
                raise ValueError(f"{self.name}: options['columns'] names unknown column {col!r}")
            specs[col] = {"from": spec} if isinstance(spec, str) else dict(spec)
        return {col: ColumnRule.from_spec(col, spec) for col, spec in specs.items()}

    def option_names(self) -> set[str]:
        """Every ``options`` key this mapping understands."""
        names = {spec["option"] for spec in self.columns.values() if "option" in spec}
        if self.link:
            names.add(self.link.option)
        return names | set(ENGINE_OPTIONS)


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _spec_table(spec: Any) -> dict[str, Any]:
    return {"from": spec} if isinstance(spec, str) else dict(spec)


def _allowed_columns(spec: TableSpec) -> tuple[str, ...]:
    return (*spec.required, *spec.optional)


def _check_columns(name: str, spec: TableSpec, *, columns: Mapping[str, Any]) -> None:
    unknown = set(columns) - set(_allowed_columns(spec))
    if unknown:
        raise ValueError(f"mapping {name!r}: {sorted(unknown)} are not columns of {spec.name}")
    missing = [c for c in spec.required if c not in columns]
    if missing:
        raise ValueError(f"mapping {name!r}: required column(s) {missing} have no rule")
    for col, rule in columns.items():
        ColumnRule.from_spec(col, rule)


def _skip(data: Mapping[str, Any]) -> SkipRule:
    return SkipRule(reason=data["reason"], columns=_as_tuple(data["columns"]),
                    values=_as_tuple(data.get("in")), startswith=data.get("startswith"),
                    matches=data.get("matches"), empty=bool(data.get("empty", False)),
                    optional=bool(data.get("optional", False)))


def _group(data: Mapping[str, Any]) -> Group:
    return Group(by=data["by"], agg=dict(data["agg"]), rows=data.get("rows", "rows"),
                 into=data.get("into", "records"))


def _check(data: Mapping[str, Any]) -> Check:
    return Check(kind=data["kind"], columns=_as_tuple(data["columns"]), message=data["message"],
                 values=_as_tuple(data.get("in")))


def _maps_root() -> Any:
    return resources.files("connectors").joinpath(MAPS_FOLDER)


def available_platforms() -> list[str]:
    """Names of the packaged platform mappings.

    Examples
    --------
    >>> from connectors.platforms import available_platforms
    >>> available_platforms()[:3]
    ['discord_members', 'discourse_users', 'google_ads_campaigns']
    """
    return sorted(p.name[:-5] for p in _maps_root().iterdir() if p.name.endswith(".toml"))


def load_mapping(platform: str) -> PlatformMapping:
    """The packaged mapping of ``platform`` (see :func:`available_platforms`).

    Examples
    --------
    >>> from connectors.platforms import load_mapping
    >>> load_mapping("meta_ads").table
    'ad_spend'
    """
    entry = _maps_root().joinpath(f"{platform}.toml")
    # only a packaged name: '../x' must not load a TOML file from elsewhere
    if platform not in available_platforms() or not entry.is_file():
        raise ValueError(f"unknown platform {platform!r}; available: "
                         f"{', '.join(available_platforms())}")
    return PlatformMapping.from_dict(platform, tomllib.loads(entry.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- the result


@dataclass
class PlatformTable:
    """One canonical table read from a platform export.

    ``frame`` has canonical columns only (required, then optional present); dates are ISO
    strings (``None`` when empty), numbers floats, ids and text strings. ``notes`` are plain
    sentences counting every row skipped, folded or grouped.
    """

    table: str
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    platform: str = ""


@dataclass
class _Run:
    """State of one :func:`load_export` call (keeps the helper signatures short)."""

    mapping: PlatformMapping
    path: Path
    options: Mapping[str, Any]
    rules: dict[str, ColumnRule]
    notes: list[str] = field(default_factory=list)

    @property
    def spec(self) -> TableSpec:
        return TABLES[self.mapping.table]

    def where(self) -> str:
        return f"{self.mapping.name}: {self.path.name}"

    def formats(self, rule: ColumnRule) -> tuple[str, ...]:
        user = _as_tuple(self.options.get("date_format"))
        return (*user, *rule.formats, *self.mapping.date_formats, *DEFAULT_DATE_FORMATS)


# --------------------------------------------------------------------------- public entry


def load_export(path: str | Path, *, platform: str | PlatformMapping,
                options: Mapping[str, Any] | None = None) -> PlatformTable:
    """Read a platform export into its canonical table.

    Parameters
    ----------
    path
        The export as downloaded: ``.csv`` (also ``.csv.gz``/``.zip``) or ``.xlsx``.
    platform
        A name from :func:`available_platforms` or a :class:`PlatformMapping`.
    options
        User-set values: the mapping's option names (e.g. ``community``, ``joined_at``,
        ``channel``, ``links``) and ``columns`` / ``date_format`` / ``decimal`` / ``sheet``.

    Returns
    -------
    PlatformTable
        ``.table``, ``.frame`` (canonical columns) and ``.notes``.

    Raises
    ------
    ExportFormatError
        An expected column is missing (the message names the platform, the file, the missing
        and the found columns) or a value cannot be parsed.
    MissingOptionError
        A value the export does not carry (e.g. Slack's join date) was not given in options.

    Examples
    --------
    >>> from pathlib import Path
    >>> import tempfile
    >>> from connectors.platforms import load_export
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "members.csv").write_text(
    ...     "id,username,joinDate,roles\\n1,ana,2024-03-05,Member\\n2,bo,Unknown,\\n")
    >>> _ = (folder / "links.csv").write_text("member_id,email\\n1,ana@example.com\\n")
    >>> tbl = load_export(folder / "members.csv", platform="discord_members",
    ...                   options={"links": folder / "links.csv"})
    >>> tbl.table, len(tbl.frame), tbl.frame.loc[0, "joined_at"]
    ('members', 1, '2024-03-05')
    """
    mapping = platform if isinstance(platform, PlatformMapping) else load_mapping(platform)
    options = dict(options or {})
    _check_options(mapping, options)
    path = Path(path)
    run = _Run(mapping=mapping, path=path, options=options,
               rules=mapping.rules(options.get("columns")))
    raw = _read_export(run)
    frame = _mapped(run, raw)
    frame = _finish(run, frame)
    return PlatformTable(table=mapping.table, frame=frame, notes=run.notes, platform=mapping.name)


def _check_options(mapping: PlatformMapping, options: Mapping[str, Any]) -> None:
    unknown = set(options) - mapping.option_names()
    if unknown:
        raise ValueError(f"{mapping.name}: unknown option(s) {sorted(unknown)}; this platform "
                         f"understands {sorted(mapping.option_names())}")


# --------------------------------------------------------------------------- reading files


def _read_export(run: _Run) -> pd.DataFrame:
    """The export as a DataFrame of raw cell values under its real header."""
    if not run.path.is_file():
        raise ExportFormatError(f"{run.where()}: file not found ({run.path})")
    rows = read_rows(run.path, sheet=run.options.get("sheet"))
    start = _header_index(rows, _expected_names(run))
    header = _unique([_cell_text(c) for c in rows[start]] if rows else [])
    titles = sum(1 for row in rows[:start] if any(_cell_text(c) for c in row))
    if titles:
        run.notes.append(f"Skipped {titles} line(s) above the header row (report title, "
                         f"date range).")
    body = [_fit(row, len(header)) for row in rows[start + 1:]]
    data = [row for row in body if any(_cell_text(c) for c in row)]
    if len(body) - len(data):
        run.notes.append(f"Skipped {len(body) - len(data)} empty row(s).")
    raw = pd.DataFrame(data, columns=header, dtype=object)
    _require_columns(run, raw)
    return raw


def read_rows(path: Path, *, sheet: str | None = None) -> list[list[Any]]:
    """All rows of a CSV or Excel file as lists of cell values (no header handling).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from connectors.platforms import read_rows
    >>> p = Path(tempfile.mkdtemp()) / "r.csv"
    >>> _ = p.write_text("Title\\nA;B\\n1;2\\n")
    >>> read_rows(p)
    [['Title'], ['A', 'B'], ['1', '2']]
    """
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path, sheet)
    text = _decode(_file_bytes(path))
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text)))


def _read_xlsx(path: Path, sheet: str | None) -> list[list[Any]]:
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    try:
        ws = book[sheet] if sheet else book.worksheets[0]
        return [list(row) for row in ws.iter_rows(values_only=True)]
    finally:
        book.close()


def _file_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix.lower() == ".gz":
        return gzip.decompress(data)
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".csv")]
            if len(names) != 1:
                raise ExportFormatError(f"{path.name}: expected one .csv inside, found {names}")
            return archive.read(names[0])
    return data


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252")


def _delimiter(text: str) -> str:
    """The candidate that splits the first lines into the most equally wide rows."""
    sample = text[:20000].splitlines()[:30]

    def score(sep: str) -> tuple[int, int]:
        widths = [len(r) for r in csv.reader(sample, delimiter=sep) if len(r) > 1]
        if not widths:
            return (0, 0)
        common = max(set(widths), key=widths.count)
        return (widths.count(common), common)

    return max((",", "\t", ";"), key=score)


def _expected_names(run: _Run) -> tuple[set[str], list[re.Pattern[str]]]:
    names: set[str] = set()
    patterns: list[re.Pattern[str]] = []
    for rule in run.rules.values():
        names.update(rule.sources)
        if rule.regex:
            patterns.append(re.compile(rule.regex))
    for skip in run.mapping.skips:
        names.update(c for c in skip.columns if c != "*")
    if run.mapping.fold:
        names.add(run.mapping.fold.by)
    return names, patterns


def _header_index(rows: list[list[Any]], expected: tuple[set[str], list[re.Pattern[str]]]) -> int:
    """First row (of the first few) holding the most expected column names."""
    names, patterns = expected

    def hits(row: list[Any]) -> int:
        cells = [_cell_text(c) for c in row]
        return sum(1 for c in cells if c in names or any(p.match(c) for p in patterns))

    scores = [hits(row) for row in rows[:HEADER_SCAN_ROWS]]
    best = max(scores, default=0)
    return scores.index(best) if best else 0


def _cell_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip().lstrip("\ufeff")


def _unique(header: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(header):
        name = name or f"Unnamed: {i}"
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def _fit(row: list[Any], width: int) -> list[Any]:
    return (list(row) + [None] * width)[:width]


def _require_columns(run: _Run, raw: pd.DataFrame) -> None:
    found = list(raw.columns)
    missing = [_describe(rule) for rule in run.rules.values() if _is_missing(run, rule, found=found)]
    missing += [s for s in _structural_columns(run) if s not in found]
    if missing:
        hint = f" {run.mapping.hint}" if run.mapping.hint else ""
        raise ExportFormatError(
            f"{run.where()}: missing column(s) {', '.join(missing)} for the "
            f"{run.mapping.title or run.mapping.name} layout; columns found: "
            f"{', '.join(repr(c) for c in found) or 'none'}.{hint}")


def _is_missing(run: _Run, rule: ColumnRule, *, found: list[str]) -> bool:
    if not rule.reads_source or rule.optional or _source_columns(rule, found):
        return False
    return not (rule.option and run.options.get(rule.option) is not None)


def _describe(rule: ColumnRule) -> str:
    if rule.regex:
        return f"a column matching /{rule.regex}/"
    return " or ".join(repr(s) for s in rule.sources)


def _structural_columns(run: _Run) -> list[str]:
    cols = [c for s in run.mapping.skips if not s.optional and not s.empty
            for c in s.columns if c != "*"]
    if run.mapping.fold:
        cols.append(run.mapping.fold.by)
    return cols


def _source_columns(rule: ColumnRule, found: Iterable[str]) -> list[str]:
    """The export columns a rule reads: all present candidates if ``coalesce``, else the
    first present one."""
    found = list(found)
    if rule.regex:
        pattern = re.compile(rule.regex)
        present = [c for c in found if pattern.match(c)]
    else:
        present = [s for s in rule.sources if s in found]
    return present if rule.coalesce else present[:1]


# --------------------------------------------------------------------------- row selection


def _mapped(run: _Run, raw: pd.DataFrame) -> pd.DataFrame:
    raw = _fold(run, raw)
    raw = _skip_rows(run, raw)
    _run_checks(run, raw)
    return _map_columns(run, raw)


def _fold(run: _Run, raw: pd.DataFrame) -> pd.DataFrame:
    fold = run.mapping.fold
    if fold is None:
        return raw
    key = raw[fold.by].map(_cell_text)
    keyless = int((key == "").sum())
    if keyless:
        run.notes.append(f"Skipped {keyless} row(s) without {fold.by!r}.")
    kept = raw[(key != "") & ~key.duplicated()]
    if len(kept) < len(raw) - keyless:
        run.notes.append(f"Folded {len(raw) - keyless} {fold.rows} into {len(kept)} "
                         f"{fold.into}.")
    return kept.reset_index(drop=True)


def _skip_rows(run: _Run, raw: pd.DataFrame) -> pd.DataFrame:
    for rule in run.mapping.skips:
        columns = list(raw.columns) if "*" in rule.columns else \
            [c for c in rule.columns if c in raw.columns]
        if not columns:
            continue
        hit = _skip_mask(rule, raw[columns].map(_cell_text))
        if hit.any():
            run.notes.append(f"Skipped {int(hit.sum())} row(s): {rule.reason}.")
        raw = raw[~hit].reset_index(drop=True)
    return raw


def _skip_mask(rule: SkipRule, cells: pd.DataFrame) -> pd.Series:
    if cells.empty:
        return pd.Series(False, index=cells.index)
    if rule.empty:
        return (cells == "").all(axis=1)
    if rule.startswith is not None:
        hits = cells.apply(lambda col: col.str.startswith(rule.startswith))
    elif rule.matches is not None:
        hits = cells.apply(lambda col: col.str.fullmatch(rule.matches))
    else:
        wanted = {v.lower() for v in rule.values}
        hits = cells.apply(lambda col: col.str.lower().isin(wanted))
    return hits.any(axis=1)


def _run_checks(run: _Run, raw: pd.DataFrame) -> None:
    for check in run.mapping.checks:
        columns = [c for c in check.columns if c in raw.columns]
        if len(columns) < len(check.columns):
            continue
        cells = raw[columns].map(_cell_text)
        if check.kind == "differ":
            n = int((cells.nunique(axis=1) > 1).sum())
        else:
            n = int(cells.iloc[:, 0].str.lower().isin({v.lower() for v in check.values}).sum())
        if n:
            run.notes.append(check.message.format(n=n))


# --------------------------------------------------------------------------- column values


def _map_columns(run: _Run, raw: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=raw.index)
    for name, rule in run.rules.items():
        values = _column_values(run, rule, raw=raw)
        if values is not None:
            out[name] = values
    return out


def _column_values(run: _Run, rule: ColumnRule, *, raw: pd.DataFrame) -> pd.Series | None:
    option = run.options.get(rule.option) if rule.option else None
    sources = _source_columns(rule, raw.columns)
    if not sources:
        constant = option if option is not None else rule.value
        if constant is None and (rule.reads_source or rule.name not in run.spec.required):
            return None
        _require_constant(run, rule, constant=constant)
        cells = pd.Series([constant] * len(raw), index=raw.index, dtype=object)
        return _typed(run, rule, cells=cells, label=f"options[{rule.option!r}]")
    if rule.regex:
        run.notes.append(f"{rule.name} read from column {sources[0]!r}.")
    values = _typed(run, rule, cells=_coalesced(raw, sources),
                    label=" / ".join(repr(s) for s in sources))
    if option is not None:
        values = _fill_from_option(run, rule, values=values, option=option)
    values = _subtracted(run, rule, raw=raw, values=values)
    return _only_if(run, rule, raw=raw, values=values)


def _require_constant(run: _Run, rule: ColumnRule, *, constant: Any) -> None:
    if constant is None and rule.name in run.spec.required:
        hint = f" {run.mapping.hint}" if run.mapping.hint else ""
        raise MissingOptionError(f"{run.where()}: the export has no value for {rule.name}; "
                                 f"pass options={{{rule.option!r}: ...}}.{hint}")


def _coalesced(raw: pd.DataFrame, sources: list[str]) -> pd.Series:
    values = raw[sources[0]].copy()
    for source in sources[1:]:
        empty = values.map(_cell_text) == ""
        values[empty] = raw.loc[empty, source]
    return values


def _fill_from_option(run: _Run, rule: ColumnRule, *, values: pd.Series,
                      option: Any) -> pd.Series:
    empty = values.isna()
    if empty.any():
        fill = _typed(run, rule, cells=pd.Series([option]), label=f"options[{rule.option!r}]")[0]
        values = values.where(~empty, fill)
        run.notes.append(f"{rule.name} taken from options[{rule.option!r}] = {fill} for "
                         f"{int(empty.sum())} row(s) without one.")
    return values


def _subtracted(run: _Run, rule: ColumnRule, *, raw: pd.DataFrame,
                values: pd.Series) -> pd.Series:
    if not rule.subtract or rule.subtract not in raw.columns:
        return values
    minus = _typed(run, replace(rule, transform=None, prefix=""), cells=raw[rule.subtract],
                   label=repr(rule.subtract)).fillna(0.0)
    if (minus != 0).any():
        run.notes.append(f"{rule.name} is net of {rule.subtract!r} for {int((minus != 0).sum())} "
                         f"row(s) (total {minus.sum():.2f} subtracted).")
    return values - minus


def _only_if(run: _Run, rule: ColumnRule, *, raw: pd.DataFrame,
             values: pd.Series) -> pd.Series:
    cond = rule.only_if
    if not cond or cond["column"] not in raw.columns:
        return values
    wanted = {str(v).lower() for v in _as_tuple(cond["in"])}
    keep = raw[cond["column"]].map(_cell_text).str.lower().isin(wanted)
    blanked = values.notna() & ~keep
    if blanked.any():
        run.notes.append(f"{rule.name} left empty for {int(blanked.sum())} row(s): "
                         f"{cond.get('reason', cond['column'] + ' not in ' + str(sorted(wanted)))}.")
    return values.where(keep | values.isna(), None)


def _typed(run: _Run, rule: ColumnRule, *, cells: pd.Series, label: str) -> pd.Series:
    """Cells parsed to the canonical kind of ``rule.name``; unparseable cells raise."""
    nulls = {*NULL_TEXT, *rule.null_values}
    kind = run.spec.kind(rule.name)
    if kind == "date":
        formats = run.formats(rule)
        parsed = cells.map(lambda c: _parse_date(c, formats=formats, nulls=nulls))
    elif kind == "number":
        decimal = run.options.get("decimal", ".")
        parsed = cells.map(lambda c: _parse_number(c, decimal=decimal, nulls=nulls))
    else:
        parsed = cells.map(lambda c: _parse_text(c, nulls))
    _raise_unparsed(run, rule, cells=cells, parsed=parsed, label=label)
    parsed = parsed.where(parsed.map(lambda v: v is not _BAD), None)
    return _transformed(rule, parsed, kind=kind)


_BAD = object()


def _raise_unparsed(run: _Run, rule: ColumnRule, *, cells: pd.Series, parsed: pd.Series,
                    label: str) -> None:
    bad = parsed.map(lambda v: v is _BAD)
    if not bad.any():
        return
    kind = run.spec.kind(rule.name)
    examples = ", ".join(repr(_cell_text(c)) for c in cells[bad].unique()[:3])
    advice = " Set options={'date_format': '...'} (strptime) for other date styles." \
        if kind == "date" else " Set options={'decimal': ','} for decimal commas." \
        if kind == "number" else ""
    raise ExportFormatError(f"{run.where()}: column {label} ({rule.name}) has "
                            f"{int(bad.sum())} value(s) that are not {kind}s, e.g. "
                            f"{examples}.{advice}")


def _parse_text(cell: Any, nulls: set[str]) -> str | None:
    if isinstance(cell, float) and cell.is_integer():
        cell = int(cell)
    if isinstance(cell, datetime | date):
        return cell.isoformat()
    text = _cell_text(cell)
    return None if text in nulls else text


def _parse_number(cell: Any, *, decimal: str, nulls: set[str]) -> Any:
    if isinstance(cell, bool):
        return _BAD
    if isinstance(cell, int | float):
        return math.nan if isinstance(cell, float) and math.isnan(cell) else float(cell)
    text = _cell_text(cell)
    if text in nulls:
        return math.nan
    negative = text.startswith("(") and text.endswith(")")
    cleaned = re.sub(r"[^\d.,\-+]", "", text)
    cleaned = cleaned.replace(".", "").replace(",", ".") if decimal == "," else \
        cleaned.replace(",", "")
    try:
        number = float(cleaned)
    except ValueError:
        return _BAD
    return -abs(number) if negative else number


def _parse_date(cell: Any, *, formats: tuple[str, ...], nulls: set[str]) -> Any:
    """ISO date of a cell; a timestamp keeps the date as written (no time-zone shift)."""
    if isinstance(cell, datetime):
        return cell.date().isoformat()
    if isinstance(cell, date):
        return cell.isoformat()
    text = _cell_text(cell)
    if text in nulls:
        return None
    iso = _ISO_DATE.match(text)
    if iso:
        return _valid_date(iso)
    for fmt in formats:
        parsed = _strptime_prefix(text, fmt)
        if parsed is not None:
            return parsed.isoformat()
    return _BAD


def _valid_date(iso: re.Match[str]) -> Any:
    try:
        return date(int(iso[1]), int(iso[2]), int(iso[3])).isoformat()
    except ValueError:
        return _BAD


def _strptime_prefix(text: str, fmt: str) -> date | None:
    """``strptime`` that ignores a trailing time part (``"Mar 5, 2024 11:10 PM"``)."""
    try:
        return datetime.strptime(text, fmt).date()
    except ValueError as exc:
        message = str(exc)
        if _UNCONVERTED not in message:
            return None
        rest = message.split(_UNCONVERTED, 1)[1]
        if not rest[:1].isspace() and rest[:1] != "T":
            return None
        try:
            return datetime.strptime(text[: len(text) - len(rest)], fmt).date()
        except ValueError:
            return None


def _transformed(rule: ColumnRule, values: pd.Series, *, kind: str) -> pd.Series:
    if kind == "number":
        return values.astype(float) * rule.scale
    if rule.transform:
        transform = _TRANSFORMS[rule.transform]
        values = values.map(lambda v: None if v is None else transform(v))
    if rule.prefix:
        values = values.map(lambda v: None if v is None else rule.prefix + v)
    return values


def normalised_email(text: str) -> str:
    """Trimmed, lower-cased e-mail (the dataset layer's linking normalisation)."""
    return text.strip().lower()


def email_sha256(text: str) -> str:
    """Hex SHA-256 of the normalised e-mail: a customer key that carries no raw e-mail.

    Examples
    --------
    >>> from connectors.platforms import email_sha256
    >>> email_sha256(" Ana@Example.com ") == email_sha256("ana@example.com")
    True
    """
    return hashlib.sha256(normalised_email(text).encode("utf-8")).hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


_TRANSFORMS = {"email": str.strip, "email_sha256": email_sha256, "lower": str.lower,
               "slug": _slug}


# --------------------------------------------------------------------------- finishing


def _finish(run: _Run, frame: pd.DataFrame) -> pd.DataFrame:
    frame = _linked(run, frame)
    frame = _drop_incomplete(run, frame)
    frame = _grouped(run, frame)
    _check_one_of(run, frame)
    order = [c for c in _allowed_columns(run.spec) if c in frame.columns]
    return _with_nones(run.spec, frame[order].reset_index(drop=True))


def _with_nones(spec: TableSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as floats (NaN when empty); everything else as objects with ``None``."""
    for col in frame.columns:
        if spec.kind(col) == "number":
            frame[col] = frame[col].astype(float)
        else:
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return frame


def _linked(run: _Run, frame: pd.DataFrame) -> pd.DataFrame:
    link = run.mapping.link
    given = run.options.get(link.option) if link else None
    if link is None or given is None:
        return frame
    links = _links_table(run, given, link=link)
    merged = frame.merge(links, how="left", left_on=link.on, right_on="__key",
                         suffixes=("", "__link"))
    found = merged["__key"].notna()
    for col in ("customer_id", "email"):
        if f"{col}__link" in merged.columns:
            base = merged[col] if col in frame.columns else pd.Series(None, index=merged.index)
            merged[col] = base.where(base.notna(), merged[f"{col}__link"])
    run.notes.append(f"Linked {int(found.sum())} of {len(frame)} row(s) through "
                     f"options[{link.option!r}] ({link.on} -> customer_id / email).")
    return merged[[c for c in merged.columns if not c.endswith("__link") and c != "__key"]]


def _links_table(run: _Run, given: Any, *, link: Link) -> pd.DataFrame:
    """The user's links as ``__key`` + ``customer_id`` and/or ``email`` (text)."""
    if isinstance(given, pd.DataFrame):
        table = given.astype(object)
    else:
        rows = read_rows(_links_path(run, Path(given)))
        header = _unique([_cell_text(c) for c in rows[0]]) if rows else []
        table = pd.DataFrame([_fit(r, len(header)) for r in rows[1:]], columns=header)
    targets = [c for c in ("customer_id", "email") if c in table.columns]
    if link.on not in table.columns or not targets:
        raise ExportFormatError(f"{run.where()}: options[{link.option!r}] needs columns "
                                f"{link.on!r} and 'customer_id' and/or 'email'; found "
                                f"{list(table.columns)}")
    out = pd.DataFrame({"__key": table[link.on].map(lambda c: _parse_text(c, set(NULL_TEXT)))})
    for col in targets:
        out[col] = table[col].map(lambda c: _parse_text(c, set(NULL_TEXT)))
    if out["__key"].duplicated().any():
        raise ExportFormatError(f"{run.where()}: options[{link.option!r}] lists a {link.on} "
                                f"more than once")
    return out


def _links_path(run: _Run, given: Path) -> Path:
    """The links file as given, else next to the export (relative paths in manifests)."""
    for candidate in (given, run.path.parent / given):
        if candidate.is_file():
            return candidate
    raise ExportFormatError(f"{run.where()}: links file not found: {given}")


def _drop_incomplete(run: _Run, frame: pd.DataFrame) -> pd.DataFrame:
    for col in run.spec.required:
        if col not in frame.columns:
            continue
        empty = frame[col].isna()
        if empty.any():
            why = run.rules[col].if_missing if col in run.rules else None
            run.notes.append(f"Skipped {int(empty.sum())} row(s) without {col}"
                             f"{': ' + why if why else ''}.")
            frame = frame[~empty]
    return frame.reset_index(drop=True)


def _grouped(run: _Run, frame: pd.DataFrame) -> pd.DataFrame:
    group = run.mapping.group
    if group is None:
        return frame
    aggs = {col: _AGGREGATES[group.agg.get(col, "first")] for col in frame.columns
            if col != group.by}
    out = frame.groupby(group.by, sort=False).agg(aggs).reset_index() if aggs else \
        frame[[group.by]].drop_duplicates()
    run.notes.append(f"Grouped {len(frame)} {group.rows} into {len(out)} {group.into}.")
    return out


def _agg_min(values: pd.Series) -> Any:
    present = values.dropna()
    return present.min() if len(present) else None


def _agg_max(values: pd.Series) -> Any:
    present = values.dropna()
    return present.max() if len(present) else None


def _agg_max_if_all(values: pd.Series) -> Any:
    """Latest value, but empty as soon as one row is empty (one open subscription = active)."""
    return None if values.isna().any() else values.max()


def _agg_first(values: pd.Series) -> Any:
    present = values.dropna()
    return present.iloc[0] if len(present) else None


_AGGREGATES = {"min": _agg_min, "max": _agg_max, "max_if_all": _agg_max_if_all,
               "first": _agg_first}


def _check_one_of(run: _Run, frame: pd.DataFrame) -> None:
    for group in run.spec.one_of:
        present = [c for c in group if c in frame.columns]
        if not present:
            hint = f" {run.mapping.hint}" if run.mapping.hint else ""
            raise ExportFormatError(
                f"{run.where()}: {run.spec.name} needs one of the columns {list(group)} and "
                f"the export provides none.{hint}")
        unlinked = int(frame[present].isna().all(axis=1).sum())
        if unlinked:
            run.notes.append(f"{unlinked} of {len(frame)} row(s) have no "
                             f"{' or '.join(group)}; they stay unlinked.")
