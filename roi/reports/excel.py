"""The Excel workbook of a results dict: one sheet per topic, numbers stored as numbers.

Sheets: Summary, Bottom line, Comparison, Revenue lift, Retention, Paid media, Budget scenarios,
Diagnostics, Data quality, Assumptions. Every number is the float or integer from ``results.json`` with a
number format (currency, ``0.00``, percentage) so finance can compute with it; nothing is stored
as text. Missing sections say "not estimated in this run"; unconverged results carry "NOT
CONVERGED - do not rely on it" in red beside the number.

Examples
--------
>>> import tempfile, pathlib
>>> from roi.reports.excel import write_excel
>>> path = write_excel({"schema_version": 1}, pathlib.Path(tempfile.mkdtemp()) / "r.xlsx")
>>> path.suffix
'.xlsx'
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.worksheet.worksheet import Worksheet

from roi.bottom_line import bottom_line, yardstick
from roi.comparison import break_even, gross_margin_of
from roi.outputs import atomic_target
from roi.reports.base import (
    ESTIMANDS,
    METHOD_NOTES,
    NOT_CONVERGED,
    NOT_ESTIMATED,
    RETENTION,
    REVENUE,
    as_list,
    flatten,
    get,
    is_converged,
    mapping,
    method_label,
    number,
    plain,
    preferred_method,
    redact,
    sequence,
    unconverged_models,
    value_of,
)
from roi.reports.html import group_entries
from roi.reports.media import (
    comparison_rows,
    entry_ok,
    media_converged,
    move_text,
    scenario_rows,
)
from roi.reports.plots import curve_summary
from roi.reports.summary import summary_sentences

SHEETS = ["Summary", "Bottom line", "Comparison", "Revenue lift", "Retention", "Paid media",
          "Budget scenarios", "Diagnostics", "Data quality", "Assumptions"]
RATIO = "0.00"
COUNT = "#,##0"
PERCENT = "0.0%"
GENERAL_NUMBER = "#,##0.####"
BOLD = Font(bold=True)
RED = Font(bold=True, color="FFFFFF")
RED_FILL = PatternFill("solid", fgColor="C0392B")
HEADER_FILL = PatternFill("solid", fgColor="EEF2F6")


class Fmt:
    """A value with its number format, e.g. ``Fmt(42.5, money)``."""

    __slots__ = ("value", "format")

    def __init__(self, value: Any, number_format: str) -> None:
        self.value, self.format = value, number_format


def money_format(currency: str) -> str:
    symbol = currency.replace('"', "")
    return f'"{symbol}"#,##0.00;-"{symbol}"#,##0.00'


def _put(sheet: Worksheet, row: int, column: int, item: Any) -> None:
    value, fmt = (item.value, item.format) if isinstance(item, Fmt) else (item, None)
    if not isinstance(value, dt.date):
        value = _cell(value)
    if isinstance(value, float) and number(value) is None:
        value = None
    cell = sheet.cell(row=row, column=column, value=value)
    if fmt and number(value) is not None:
        cell.number_format = fmt
    elif isinstance(value, int | float) and not isinstance(value, bool):
        cell.number_format = GENERAL_NUMBER if isinstance(value, float) else COUNT
    if isinstance(value, str) and NOT_CONVERGED in value:
        cell.font, cell.fill = RED, RED_FILL


def write_table(sheet: Worksheet, headers: list[str], rows: list[list[Any]], *,
                start: int = 1) -> int:
    """Header row (bold) and rows from ``start``; returns the next free row."""
    for column, header in enumerate(headers, 1):
        cell = sheet.cell(row=start, column=column, value=header)
        cell.font, cell.fill = BOLD, HEADER_FILL
    for offset, row in enumerate(rows, 1):
        for column, item in enumerate(row, 1):
            _put(sheet, start + offset, column, item)
    return start + len(rows) + 2


def _status(ok: bool, note: str = "") -> str:
    return note if ok else NOT_CONVERGED


def _estimate(entry: Any, fmt: str) -> list[Any]:
    entry = entry if isinstance(entry, dict) else {}
    _, value = value_of(entry)
    return [Fmt(value, fmt), Fmt(number(entry.get("low")), fmt),
            Fmt(number(entry.get("high")), fmt), entry.get("interval")]


def estimate_sheet(sheet: Worksheet, results: dict, section: str, fmt: str) -> None:
    """Overall estimates (each method beside naive), then one row per community."""
    estimates = get(results, section, "estimates")
    if not isinstance(estimates, dict) or not estimates:
        sheet.append([f"{sheet.title}: {NOT_ESTIMATED}"])
        return
    preferred = preferred_method(results, section)
    _, naive = value_of(estimates.get("naive"))
    rows = []
    for method, entry in estimates.items():
        _, value = value_of(entry)
        gap = value - naive if None not in (value, naive) and method != "naive" else None
        note = ("preferred" if method == preferred else
                "for contrast: biased" if method == "naive" else "")
        rows.append(["all members", method, method_label(method), *_estimate(entry, fmt),
                     Fmt(gap, fmt), _status(is_converged(results, section, method, entry), note)])
    for group, method, _, item, ok in group_entries(results, section):
        rows.append([group, method, method_label(method), *_estimate(item, fmt), None,
                     _status(ok)])
    value_name = "Hazard ratio" if section == RETENTION else "Estimate"
    write_table(sheet, ["Scope", "Method", "Method (plain)", value_name, "Low", "High",
                        "Interval", "Difference from naive", "Status"], rows)


def comparison_sheet(sheet: Worksheet, results: dict, money: str) -> None:
    rows, parts = [], []
    for _, row, ok in comparison_rows(results):
        rpd = row.get("revenue_per_dollar")
        rows.append([row.get("name"), row.get("kind"), Fmt(number(row.get("cost")), money),
                     *_estimate(row.get("incremental_revenue"), money)[:3],
                     *_estimate(rpd, money), row.get("method"), _status(ok),
                     "; ".join(map(str, as_list(row.get("notes"))))])
        parts += [[row.get("name"), part, *_estimate(entry, money)]
                  for part, entry in mapping(row.get("parts")).items()]
    if not rows:
        sheet.append([f"Comparison of revenue per dollar: {NOT_ESTIMATED}"])
        return
    after = write_table(sheet, ["Name", "Kind", "Cost", "Incremental revenue", "Low", "High",
                                "Revenue per dollar", "Low", "High", "Interval", "Method",
                                "Status", "Notes"], rows)
    if parts:
        write_table(sheet, ["Community", "Part", "Revenue", "Low", "High", "Interval"], parts,
                    start=after)


def _channel_rows(results: dict, money: str) -> list[list[Any]]:
    ok_model = media_converged(results)
    baseline = mapping(get(results, "paid_media", "regression_baseline", "channels"))
    rows = []
    for name, entry in mapping(get(results, "paid_media", "channels")).items():
        roas, marginal = get(entry, "roas"), get(entry, "marginal_roas")
        ok = ok_model and all(is_converged(results, "paid_media", name, e)
                              for e in (roas, marginal) if isinstance(e, dict))
        note = "" if isinstance(roas, dict) else f"ROAS {NOT_ESTIMATED}"
        rows.append([name, Fmt(number(get(entry, "spend")), money), *_estimate(roas, RATIO),
                     *_estimate(marginal, RATIO),
                     *_estimate(get(entry, "incremental_revenue"), money),
                     *_estimate(get(baseline, name, "roas"), RATIO)[:3], _status(ok, note)])
    return rows


def _curve_rows(results: dict, money: str) -> list[list[Any]]:
    curves = mapping(get(results, "paid_media", "response_curves"))
    multipliers = sequence(curves.get("multipliers"))
    rows = []
    for name, draws in mapping(curves.get("draws")).items():
        spend = sequence(get(curves, "spend", name))
        if not draws or len(spend) != len(multipliers):
            continue
        xs, mean, low, high = curve_summary(spend, draws)
        rows += [[name, Fmt(m, RATIO), Fmt(x, money), Fmt(y, money), Fmt(lo, money),
                  Fmt(hi, money), "94% HDI"]
                 for m, x, y, lo, hi in zip(multipliers, xs, mean, low, high, strict=True)]
    return rows


def paid_media_sheet(sheet: Worksheet, results: dict, money: str) -> None:
    rows = _channel_rows(results, money)
    if not rows:
        sheet.append([f"Paid media: {NOT_ESTIMATED}"])
        return
    paid = mapping(results.get("paid_media"))
    warnings = [[f"warning: {w}"] for w in as_list(paid.get("warnings"))]
    at = write_table(sheet, ["Channel", "Spend", "ROAS", "Low", "High", "Interval",
                             "Marginal ROAS", "Low", "High", "Interval", "Incremental revenue",
                             "Low", "High", "Interval", "Regression ROAS", "Low", "High",
                             "Status"], rows + warnings)
    communities = [[name, Fmt(number(get(e, "cost")), money),
                    *_estimate(get(e, "incremental_revenue"), money)]
                   for name, e in mapping(paid.get("communities")).items()]
    tests = [[t.get("channel"), t.get("start"), t.get("end"),
              *[Fmt(number(t.get(f)), money) for f in ("spend_change", "revenue_change",
                                                       "standard_error")]]
             for t in sequence(paid.get("lift_tests")) if isinstance(t, dict)]
    weekly = [[r.get("week"), r.get("channel"),
               *[Fmt(number(r.get(f)), money) for f in ("contribution", "low", "high")]]
              for r in sequence(paid.get("weekly_contributions")) if isinstance(r, dict)]
    for headers, extra in (
            (["Community", "Cost", "Incremental revenue", "Low", "High", "Interval"],
             communities),
            (["Lift test channel", "Start", "End", "Spend change", "Revenue change",
              "Standard error"], tests),
            (["Response curve", "Spend multiplier", "Spend", "Revenue caused", "Low", "High",
              "Interval"], _curve_rows(results, money)),
            (["Week", "Channel", "Contribution", "Low", "High"], weekly)):
        if extra:
            at = write_table(sheet, headers, extra, start=at)


def budget_sheet(sheet: Worksheet, results: dict, money: str, currency: str) -> None:
    budget = mapping(results.get("budget_scenarios"))
    scenarios = scenario_rows(results)
    if not scenarios and not mapping(budget.get("current")):
        sheet.append([f"Budget scenarios: {NOT_ESTIMATED}"])
        return
    ok = media_converged(results)
    columns = [("current", mapping(budget.get("current")))]
    columns += [(label, mapping(s.get("spend"))) for label, _, s in scenarios]
    names = list(dict.fromkeys(n for _, spend in columns for n in spend))
    at = write_table(sheet, ["Spend", *[label for label, _ in columns]],
                     [[n, *[Fmt(number(spend.get(n)), money) for _, spend in columns]]
                      for n in names])
    rows = [[label, "; ".join(move_text(m, currency) for m in sequence(s.get("moves"))),
             *_estimate(s.get("revenue_change"), money),
             _status(entry_ok(s.get("revenue_change"), ok))] for label, _, s in scenarios]
    at = write_table(sheet, ["Allocation", "Moves", "Revenue change", "Low", "High", "Interval",
                             "Status"], rows, start=at)
    bounds = mapping(get(budget, "optimised", "bounds"))
    at = write_table(sheet, ["Bounds", "Lowest spend", "Highest spend"],
                     [[n, *[Fmt(number(v), money) for v in sequence(b)[:2]]]
                      for n, b in bounds.items()], start=at) if bounds else at
    for note in as_list(budget.get("notes")):
        sheet.cell(row=at, column=1, value=redact(f"note: {note}"))
        at += 1


def _cell(value: Any) -> Any:
    """Numbers stay numbers; lists and dicts become readable text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, int | float) or value is None:
        return value
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) if value else "none"
    return str(value)


def diagnostics_sheet(sheet: Worksheet, results: dict) -> None:
    diagnostics = results.get("diagnostics")
    if not isinstance(diagnostics, dict) or not diagnostics:
        sheet.append([f"Diagnostics: {NOT_ESTIMATED}"])
        return
    rows = []
    for model, diag in diagnostics.items():
        if not isinstance(diag, dict):
            continue
        converged = "yes" if diag.get("converged") is not False else NOT_CONVERGED
        warnings = as_list(diag.get("warnings"))
        rows += [[model, converged, "warning", "", text] for text in warnings]
        rows += [[model, converged, "check", name, _cell(value)]
                 for name, value in flatten(mapping(diag.get("checks")))]
        if not warnings and not diag.get("checks"):
            rows.append([model, converged, "status", "", "no warnings"])
    write_table(sheet, ["Model", "Converged", "Kind", "Item", "Value"], rows)


def _data_cell(name: str, value: Any) -> Any:
    if name in ("start", "end") and isinstance(value, str):
        try:
            return Fmt(dt.date.fromisoformat(value), "yyyy-mm-dd")
        except ValueError:
            return value
    if name.endswith("rate") and number(value) is not None:
        return Fmt(value, PERCENT)
    return _cell(value)


def data_sheet(sheet: Worksheet, results: dict) -> None:
    data = results.get("data")
    if not isinstance(data, dict) or not data:
        sheet.append([f"Data summary: {NOT_ESTIMATED}"])
        return
    write_table(sheet, ["Item", "Value"],
                [[name, _data_cell(name, value)] for name, value in flatten(data)])


def assumptions_sheet(sheet: Worksheet, results: dict) -> None:
    rows: list[list[Any]] = [["definition", term, text] for term, text in ESTIMANDS]
    methods = dict.fromkeys(m for s in (REVENUE, RETENTION)
                            for m in mapping(get(results, s, "estimates")))
    rows += [["method", method_label(m), METHOD_NOTES[m]] for m in methods if m in METHOD_NOTES]
    settings = [("schema_version", results.get("schema_version")),
                ("generated_at", results.get("generated_at"))]
    settings += flatten(mapping(results.get("config")), "config")
    settings += flatten(mapping(results.get("environment")), "environment")
    rows += [["setting", k, _cell(v)] for k, v in settings if v is not None]
    write_table(sheet, ["Kind", "Item", "Text or value"], rows)


def summary_sheet(sheet: Worksheet, results: dict, money: str, currency: str) -> None:
    sheet.append(["What the community earns compared with paid ads"])
    sheet["A1"].font = Font(bold=True, size=14)
    bad = unconverged_models(results)
    if bad:
        sheet.append([f"{NOT_CONVERGED}: {', '.join(bad)} did not converge."])
        _put(sheet, sheet.max_row, 1, sheet.cell(sheet.max_row, 1).value)
    for sentence in summary_sentences(results, currency):
        sheet.append([redact(plain(sentence))])
    start = sheet.max_row + 2
    rows = []
    for section, label, fmt in ((REVENUE, "Revenue lift per member-month", money),
                                (RETENTION, "Churn hazard ratio, members vs non-members",
                                 RATIO)):
        for method, entry in mapping(get(results, section, "estimates")).items():
            ok = is_converged(results, section, method, entry)
            note = "preferred" if method == preferred_method(results, section) else ""
            rows.append([label, method, *_estimate(entry, fmt), _status(ok, note)])
    spend = [number(get(c, "spend")) for c in mapping(get(results, "paid_media", "channels"))
             .values()]
    if any(s is not None for s in spend):
        rows.append(["Paid media spend, all channels", "", Fmt(sum(s for s in spend if s), money),
                     None, None, None, ""])
    rows += _money_summary_rows(results, money)
    write_table(sheet, ["Measure", "Method", "Estimate", "Low", "High", "Interval", "Status"],
                rows, start=start)


def _money_summary_rows(results: dict, money: str) -> list[list[Any]]:
    """ROAS per channel, revenue per dollar per comparison row, revenue change per scenario."""
    ok = media_converged(results)
    rows = [["ROAS (revenue per $1 of spend)", name, *_estimate(get(c, "roas"), RATIO),
             _status(entry_ok(get(c, "roas"), ok))]
            for name, c in mapping(get(results, "paid_media", "channels")).items()
            if isinstance(get(c, "roas"), dict)]
    rows += [["Revenue per dollar", f"{row.get('name')} ({row.get('kind')})",
              *_estimate(row.get("revenue_per_dollar"), money), _status(good)]
             for _, row, good in comparison_rows(results)]
    rows += [["Budget: revenue change", label, *_estimate(s.get("revenue_change"), money),
              _status(entry_ok(s.get("revenue_change"), ok))]
             for label, _, s in scenario_rows(results)]
    return rows


def bottom_line_sheet(sheet: Worksheet, results: dict, money: str, currency: str) -> None:
    """The bottom line (as ``roi run`` prints it) with numbers as numbers: per paid channel and
    community, revenue and profit per dollar with intervals, verdict, status and caveats."""
    lines = bottom_line(results)
    margin = gross_margin_of(results)
    _put(sheet, 1, 1, "Bottom line")
    sheet["A1"].font = Font(bold=True, size=14)
    _put(sheet, 2, 1, yardstick(results, currency))
    _put(sheet, 3, 1, "Gross margin")
    _put(sheet, 3, 2, Fmt(margin, PERCENT) if margin is not None else "not configured")
    _put(sheet, 4, 1, "Break-even revenue per dollar")
    _put(sheet, 4, 2, Fmt(break_even(margin), RATIO))
    if not lines:
        _put(sheet, 6, 1, f"Bottom line: {NOT_ESTIMATED}")
        return
    rows = []
    for line in lines:
        second = (_estimate(line.profit_per_dollar, money)[:3] if margin is not None
                  else [Fmt(number(line.break_even_margin), PERCENT)])
        rows.append([line.name, line.kind, Fmt(number(line.cost), money),
                     *_estimate(line.revenue_per_dollar, money), *second, line.verdict,
                     _status(line.converged), line.basis, "; ".join(line.caveats)])
    second_headers = (["Profit per dollar", "Low", "High"] if margin is not None
                      else ["Margin to break even"])
    write_table(sheet, ["Name", "Kind", "Cost", "Revenue per dollar", "Low", "High", "Interval",
                        *second_headers, "Verdict", "Status", "Based on", "Caveats"], rows,
                start=6)


def _widths(sheet: Worksheet) -> None:
    for column in sheet.columns:
        longest = max((len(str(c.value)) for c in column if c.value is not None), default=8)
        sheet.column_dimensions[column[0].column_letter].width = min(max(longest + 2, 10), 60)


def build_workbook(results: dict, *, currency: str = "$") -> Workbook:
    money = money_format(currency)
    book = Workbook()
    sheets = {name: (book.active if i == 0 else book.create_sheet()) for i, name in
              enumerate(SHEETS)}
    for name, sheet in sheets.items():
        sheet.title = name
    summary_sheet(sheets["Summary"], results, money, currency)
    bottom_line_sheet(sheets["Bottom line"], results, money, currency)
    comparison_sheet(sheets["Comparison"], results, money)
    estimate_sheet(sheets["Revenue lift"], results, REVENUE, money)
    estimate_sheet(sheets["Retention"], results, RETENTION, RATIO)
    paid_media_sheet(sheets["Paid media"], results, money)
    budget_sheet(sheets["Budget scenarios"], results, money, currency)
    diagnostics_sheet(sheets["Diagnostics"], results)
    data_sheet(sheets["Data quality"], results)
    assumptions_sheet(sheets["Assumptions"], results)
    for name, sheet in sheets.items():
        if name != "Summary":
            _widths(sheet)
            sheet.freeze_panes = "A2"
    sheets["Summary"].column_dimensions["A"].width = 45
    text_not_formulas(book)
    return book


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_not_formulas(book: Workbook) -> int:
    """Every text cell that a spreadsheet could read as a formula (``=``, ``+``, ``-``, ``@``,
    tab, CR first) is stored as text with Excel's quote prefix; returns how many.

    Names come from the data (a community called ``=HYPERLINK("http://x","y")``) and openpyxl
    stores any string starting with ``=`` as a live formula; the report itself writes none.
    Numbers are untouched.
    """
    changed = 0
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value.startswith(FORMULA_STARTS):
                    cell.data_type, cell.quotePrefix = "s", True
                    changed += 1
    return changed


def write_excel(results: dict, path: str | Path, *, currency: str = "$") -> Path:
    """Write the workbook atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    results : dict
        The parsed ``results.json``.
    path : str or Path
        The ``.xlsx`` file to write.
    currency : str
        Symbol used in the currency number format.
    """
    path = Path(path)
    book = build_workbook(results, currency=currency)
    with atomic_target(path) as temporary:
        book.save(temporary)
    return path
