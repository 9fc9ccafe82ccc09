"""The Excel workbook of a results dict: one sheet per topic, numbers stored as numbers.

Sheets: Summary, Bottom line, Comparison, Revenue lift, Retention, Paid media, Budget scenarios,
Engagement, Diagnostics, Data quality, Assumptions. Every number is the float or integer from ``results.json`` with a
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
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.styles import Alignment, Font, PatternFill
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
    glossary_methods,
    is_converged,
    mapping,
    method_label,
    number,
    plain,
    preferred_method,
    redact,
    sequence,
    value_of,
)
from roi.reports.caveats import (
    bottom_line_alarms,
    community_caveats,
    estimate_caveats,
    headline_caveats,
    joined,
    refusal,
)
from roi.reports.diagnostics import model_title, plain_name
from roi.reports.html import group_entries
from roi.reports.media import (
    comparison_rows,
    entry_ok,
    media_converged,
    move_text,
    row_caveats,
    scenario_rows,
)
from roi.reports.plots import curve_summary
from roi.reports.summary import summary_sentences

SHEETS = ["Summary", "Bottom line", "Comparison", "Revenue lift", "Retention", "Paid media",
          "Budget scenarios", "Engagement", "Diagnostics", "Data quality", "Assumptions"]
DATE = "yyyy-mm-dd"
WRAP = Alignment(wrap_text=True, vertical="top")
WRAP_FROM = 50   # text longer than this wraps in its cell
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
        note = ("refused" if refusal(entry) else "preferred" if method == preferred else
                "for contrast: biased" if method == "naive" else "")
        ok = bool(refusal(entry)) or is_converged(results, section, method, entry)
        rows.append(["all members", method, method_label(method), *_estimate(entry, fmt),
                     Fmt(gap, fmt), _status(ok, note),
                     joined(estimate_caveats(results, section, method))])
    for group, method, _, item, ok in group_entries(results, section):
        reason = refusal(item)
        rows.append([group, method, method_label(method), *_estimate(item, fmt), None,
                     _status(ok or bool(reason), "refused" if reason else ""),
                     joined(community_caveats(results, section, group))])
    value_name = "Hazard ratio" if section == RETENTION else "Estimate"
    at = write_table(sheet, ["Scope", "Method", "Method (plain)", value_name, "Low", "High",
                             "Interval", "Difference from naive", "Status", "Caveats"], rows)
    extra = _event_study_tables if section == REVENUE else _retention_tables
    extra(sheet, results, fmt, at)


def _event_study_tables(sheet: Worksheet, results: dict, money: str, at: int) -> None:
    study = get(results, REVENUE, "event_study")
    rows = [[Fmt(number(p.get("e")), COUNT), *_estimate(p, money)[:3],
             Fmt(number(p.get("n_treated")), COUNT)]
            for p in sequence(get(study, "points")) if isinstance(p, dict)]
    if rows:
        sheet.cell(row=at, column=1, value=f"Event study ({get(study, 'method') or 'did'}, "
                                           f"{get(study, 'interval') or '95% CI'})").font = BOLD
        write_table(sheet, ["Months since joining", "Effect per member-month", "Low", "High",
                            "Members in the month"], rows, start=at + 1)


def _retention_tables(sheet: Worksheet, results: dict, ratio: str, at: int) -> None:
    """Landmark retention (members vs non-members) and the revenue of the extra months."""
    landmark = [[r.get("group"), Fmt(number(r.get("landmark_month")), COUNT),
                 Fmt(number(r.get("horizon_month")), COUNT),
                 Fmt(number(r.get("customers")), COUNT),
                 *[Fmt(number(r.get(f)), PERCENT) for f in ("retention", "low", "high")],
                 r.get("interval")]
                for r in sequence(get(results, RETENTION, "landmark_retention", "retention"))
                if isinstance(r, dict)]
    if landmark:
        at = write_table(sheet, ["Retention curve group", "Landmark month", "Months later",
                                 "Customers", "Still a customer", "Low", "High", "Interval"],
                         landmark, start=at)
    block = get(results, RETENTION, "retention_revenue")
    groups = [*mapping(get(block, "by_community")).items(),
              ("all communities", mapping(get(block, "total")))]
    money = money_format("$")
    kept = [[name, *_estimate(get(e, "extra_customer_months"), "#,##0")[:3],
             *_estimate(get(e, "revenue"), money)] for name, e in groups
            if isinstance(get(e, "revenue"), dict)]
    if kept:
        write_table(sheet, ["Retained months: community", "Extra customer-months", "Low",
                            "High", "Revenue", "Low", "High", "Interval"], kept, start=at)


def comparison_sheet(sheet: Worksheet, results: dict, money: str) -> None:
    rows, parts = [], []
    caveats = row_caveats(results)
    for index, row, ok in comparison_rows(results):
        rpd = row.get("revenue_per_dollar")
        rows.append([row.get("name"), row.get("kind"), Fmt(number(row.get("cost")), money),
                     *_estimate(row.get("incremental_revenue"), money)[:3],
                     *_estimate(rpd, money), row.get("method"), _status(ok),
                     joined(caveats.get(index) or [str(n) for n in as_list(row.get("notes"))])])
        parts += [[row.get("name"), part, *_estimate(entry, money)]
                  for part, entry in mapping(row.get("parts")).items()]
    if not rows:
        sheet.append([f"Comparison of revenue per dollar: {NOT_ESTIMATED}"])
        return
    after = write_table(sheet, ["Name", "Kind", "Cost", "Incremental revenue", "Low", "High",
                                "Revenue per dollar", "Low", "High", "Interval", "Method",
                                "Status", "Caveats"], rows)
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
    tests = [[t.get("channel"), as_date(t.get("start")), as_date(t.get("end")),
              *[Fmt(number(t.get(f)), money) for f in ("spend_change", "revenue_change",
                                                       "standard_error")]]
             for t in sequence(paid.get("lift_tests")) if isinstance(t, dict)]
    weekly = [[as_date(r.get("week")), r.get("channel"),
               *[Fmt(number(r.get(f)), money) for f in ("contribution", "low", "high")]]
              for r in sequence(paid.get("weekly_contributions")) if isinstance(r, dict)]
    for headers, extra in (
            (["Community", "Cost", "Incremental revenue", "Low", "High", "Interval"],
             communities),
            (["Lift test channel", "Start", "End", "Spend change", "Revenue change",
              "Standard error"], tests),
            (["Response curve", "Spend multiplier", "Spend", "Revenue caused", "Low", "High",
              "Interval"], _curve_rows(results, money)),
            (["Week", "Channel", "Contribution", "Low", "High"], weekly),
            *_fit_and_adstock_tables(paid, money)):
        if extra:
            at = write_table(sheet, headers, extra, start=at)


def _fit_and_adstock_tables(paid: dict, money: str) -> list[tuple[list[str], list[list[Any]]]]:
    """The model fit (actual vs predicted per week, R-squared and MAPE in the header) and the
    adstock shares per channel and week after the spend, as (headers, rows)."""
    fit = mapping(paid.get("fit"))
    r2, mape = number(fit.get("r_squared")), number(fit.get("mape"))
    said = (f" (R2 {r2:.2f}, MAPE {mape:.1%})" if r2 is not None and mape is not None else "")
    weeks = [[as_date(w.get("week")), *[Fmt(number(w.get(f)), money)
                                        for f in ("actual", "predicted", "low", "high")],
              fit.get("interval")] for w in sequence(fit.get("weeks")) if isinstance(w, dict)]
    adstock = mapping(paid.get("adstock"))
    shares = []
    for name, entry in mapping(adstock.get("channels")).items():
        share = mapping(get(entry, "share"))
        for lag, values in enumerate(zip(*(sequence(share.get(k)) for k in
                                           ("estimate", "low", "high")), strict=False)):
            shares.append([name, lag, *[Fmt(number(v), "0.0%") for v in values],
                           adstock.get("interval")])
    return [([f"Model fit week{said}", "Actual revenue", "Predicted", "Low", "High",
              "Interval"], weeks),
            (["Adstock channel", "Weeks after the spend", "Share of the effect", "Low", "High",
              "Interval"], shares)]


def budget_sheet(sheet: Worksheet, results: dict, money: str, currency: str) -> None:
    budget = mapping(results.get("budget_scenarios"))
    scenarios = scenario_rows(results)
    if not scenarios and not mapping(budget.get("current")):
        sheet.append([f"Budget scenarios: {NOT_ESTIMATED}"])
        return
    ok = media_converged(results)
    at = _recommendation_rows(sheet, results, money, currency)
    columns = [("current", mapping(budget.get("current")))]
    columns += [(label, mapping(s.get("spend"))) for label, _, s in scenarios]
    names = list(dict.fromkeys(n for _, spend in columns for n in spend))
    at = write_table(sheet, ["Spend", *[label for label, _ in columns]],
                     [[n, *[Fmt(number(spend.get(n)), money) for _, spend in columns]]
                      for n in names], start=at)
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


def engagement_sheet(sheet: Worksheet, results: dict, money: str) -> None:
    """What kind of community pays: tiers, programmes, acquisition, each table under its rule
    sentences (tiers are chosen by members; prospects are attributed, not causal)."""
    block = mapping(results.get("community_engagement"))
    if not block:
        sheet.append([f"Engagement tiers, programmes and acquisition: {NOT_ESTIMATED}"])
        return
    tiers, programs = mapping(block.get("tiers")), mapping(block.get("programs"))
    acquisition = mapping(block.get("acquisition"))
    at = _rule_lines(sheet, 1, "Engagement tiers", [get(tiers, "rule", "rule"),
                                                    get(tiers, "rule", "months_in_window"),
                                                    _not_estimated(tiers)])
    at = _table_if_rows(sheet, ["Tier", "Members", "Member-months after the window",
                                "Lift per member-month", "Low", "High", "Interval",
                                "Churn hazard ratio", "Low", "High", "Lift revenue",
                                "Share of incremental revenue", "Not estimated because"],
                        _tier_rows(tiers, money), start=at)
    at = _rule_lines(sheet, at, "Programmes", [programs.get("rule"), _not_estimated(programs)])
    at = _table_if_rows(sheet, ["Programme", "Members", "Member-months", "Lift per member-month",
                                "Low", "High", "Interval", "Lift revenue", "Cost",
                                "Revenue per dollar", "Low", "High", "Pre-trend p",
                                "Breakdown M", "Not estimated because"],
                        _program_rows(programs, money), start=at)
    prospects, referrals = mapping(acquisition.get("prospects")), \
        mapping(acquisition.get("referrals"))
    at = _rule_lines(sheet, at, "Acquisition", [acquisition.get("rule"), prospects.get("rule")])
    at = _table_if_rows(sheet, ["Community", "Joined before buying, then bought",
                                "Median days to first purchase", "Revenue in the window",
                                "Revenue per customer"],
                        [[name, Fmt(number(e.get("customers")), COUNT),
                          Fmt(number(e.get("median_days_to_first_purchase")), RATIO),
                          Fmt(number(e.get("revenue")), money),
                          Fmt(number(e.get("revenue_per_customer")), money)]
                         for name, e in mapping(prospects.get("by_community")).items()], start=at)
    at = _rule_lines(sheet, at, "Referrals", [referrals.get("rule"), _not_estimated(referrals),
                                              get(referrals, "referral_revenue", "rule")])
    if not referrals.get("refused"):
        write_table(sheet, ["Referrals", "Value", "Low", "High", "Interval"],
                    _referral_rows(referrals, money), start=at)


def _table_if_rows(sheet: Worksheet, headers: list[str], rows: list[list[Any]], *,
                   start: int) -> int:
    """The table, or nothing (not an empty header) when the part has no row."""
    return write_table(sheet, headers, rows, start=start) if rows else start


def _not_estimated(part: dict) -> str | None:
    return f"Not estimated: {part['refused']}." if part.get("refused") else None


def _rule_lines(sheet: Worksheet, at: int, title: str, lines: list[Any]) -> int:
    """A bold title then each rule sentence on its own row; returns the next free row."""
    _put(sheet, at, 1, title)
    sheet.cell(row=at, column=1).font = BOLD
    for line in (str(x) for x in lines if x):
        at += 1
        sheet.cell(row=at, column=1, value=redact(line))
    return at + 1


def _tier_rows(tiers: dict, money: str) -> list[list[Any]]:
    rows = []
    for name, entry in mapping(tiers.get("by_tier")).items():
        lift, hazard = mapping(entry.get("lift_per_member_month")), \
            mapping(entry.get("hazard_ratio"))
        rows.append([name, Fmt(number(entry.get("members")), COUNT),
                     Fmt(number(entry.get("member_months")), COUNT), *_estimate(lift, money),
                     *[Fmt(number(hazard.get(k)), RATIO) for k in ("hazard_ratio", "low",
                                                                   "high")],
                     Fmt(number(entry.get("lift_revenue")), money),
                     Fmt(number(entry.get("share_of_incremental_revenue")), PERCENT),
                     lift.get("refused") or ""])
    return rows


def _program_rows(programs: dict, money: str) -> list[list[Any]]:
    rows = []
    for name, entry in mapping(programs.get("by_program")).items():
        lift = mapping(entry.get("lift_per_member_month"))
        per_dollar = mapping(entry.get("revenue_per_dollar"))
        rows.append([name, Fmt(number(entry.get("members")), COUNT),
                     Fmt(number(entry.get("member_months")), COUNT), *_estimate(lift, money),
                     Fmt(number(get(entry, "lift_revenue", "estimate")), money),
                     Fmt(number(entry.get("cost")), money),
                     *[Fmt(number(per_dollar.get(k)), RATIO) for k in ("estimate", "low",
                                                                       "high")],
                     Fmt(number(get(entry, "pretrend", "p_value")), RATIO),
                     Fmt(number(get(entry, "sensitivity", "breakdown_m")), RATIO),
                     lift.get("refused") or ""])
    return rows


def _referral_rows(referrals: dict, money: str) -> list[list[Any]]:
    rate = "0.0000"
    extra = mapping(referrals.get("extra_referrals_per_member_month"))
    rows = [["Referred customers", Fmt(number(referrals.get("referred_customers")), COUNT)],
            ["Share referred by members",
             Fmt(number(referrals.get("referred_by_members_share")), PERCENT)],
            ["Revenue of referred customers",
             Fmt(number(referrals.get("revenue_of_referred")), money)],
            ["Referrals per member-month",
             Fmt(number(referrals.get("referrals_per_member_month")), rate)],
            ["Referrals per non-member customer-month",
             Fmt(number(referrals.get("referrals_per_non_member_customer_month")), rate)],
            ["Extra referrals per member-month caused by membership (DiD)",
             *[Fmt(number(extra.get(k)), rate) for k in ("estimate", "low", "high")],
             extra.get("interval")]]
    for community, entry in mapping(get(referrals, "referral_revenue", "by_community")).items():
        rows.append([f"Referral revenue: {community}", *_estimate(entry, money)])
    return rows


def _recommendation_rows(sheet: Worksheet, results: dict, money: str, currency: str) -> int:
    """The budget page's first part: the recommendation sentence, current against recommended
    spend with each move's revenue change, and what the optimiser may move and why; returns
    the next free row (1 when the run has no optimised allocation)."""
    from roi.reports.budget_page import headline, recommendation

    rec = recommendation(results)
    if rec is None:
        return 1
    sheet.cell(row=1, column=1, value=redact(plain(headline(rec, currency))))
    rows = []
    for row in rec.rows:
        change = row.change if row.changed and row.change else {}
        rows.append([row.name, row.kind, Fmt(row.current, money),
                     Fmt(row.recommended, money) if row.moved else "not moved",
                     Fmt(row.delta, money) if row.changed else None,
                     *(_estimate(change, money) if change else [None] * 4),
                     row.why_not or ("optimised" if row.moved else "")])
    at = write_table(sheet, ["Name", "Kind", "Current spend", "Recommended", "Change",
                             "Revenue change", "Low", "High", "Interval", "Why"], rows, start=3)
    lines = [f"Moved: {rec.rule}." if rec.rule else "No paid channel can be moved in this run."]
    lines += [f"{name}: {why}." for name, why in sorted(rec.left_out.items())]
    for line in lines:
        sheet.cell(row=at, column=1, value=redact(line))
        at += 1
    return at + 1


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
        if get(diag, "checks", "refused"):
            converged = "refused"
        title = model_title(model)
        rows += [[title, model, converged, "warning", "", text] for text in warnings]
        rows += [[title, model, converged, "check", plain_name(name), _cell(value)]
                 for name, value in flatten(mapping(diag.get("checks")))]
        if not warnings and not diag.get("checks"):
            rows.append([title, model, converged, "status", "", "no warnings"])
    write_table(sheet, ["Model", "Key", "Converged", "Kind", "Item", "Value"], rows)


def as_date(value: Any) -> Any:
    """An ISO date string as a date cell (``yyyy-mm-dd``); anything else unchanged."""
    if isinstance(value, str):
        try:
            return Fmt(dt.date.fromisoformat(value[:10]), DATE)
        except ValueError:
            return value
    return value


def _data_cell(name: str, value: Any) -> Any:
    if name in ("start", "end") and isinstance(value, str):
        return as_date(value)
    if name.endswith("rate") and number(value) is not None:
        return Fmt(value, PERCENT)
    return _cell(value)


def data_sheet(sheet: Worksheet, results: dict) -> None:
    data = results.get("data")
    if not isinstance(data, dict) or not data:
        sheet.append([f"Data summary: {NOT_ESTIMATED}"])
        return
    accounting = [[name, *[Fmt(number(get(e, f)), COUNT) for f in ("read", "used")],
                   Fmt(sum(number(v) or 0 for v in mapping(get(e, "excluded")).values()), COUNT),
                   ", ".join(f"{k.removeprefix(name + '_').replace('_', ' ')} {v}"
                             for k, v in mapping(get(e, "excluded")).items()) or "none"]
                  for name, e in mapping(data.get("row_accounting")).items()]
    at = write_table(sheet, ["Table", "Rows read", "Used", "Excluded", "Reasons"],
                     accounting) if accounting else 1
    write_table(sheet, ["Item", "Value"],
                [[plain_name(name), _data_cell(name, value)] for name, value in flatten(data)
                 if not name.startswith("row_accounting.")], start=at)


def assumptions_sheet(sheet: Worksheet, results: dict) -> None:
    rows: list[list[Any]] = [["glossary: definition", term, text] for term, text in ESTIMANDS]
    rows += [["glossary: method", f"{m}: {method_label(m)}", METHOD_NOTES[m]]
             for m in glossary_methods(results)]
    settings = [("schema_version", results.get("schema_version")),
                ("generated_at", results.get("generated_at"))]
    settings += flatten(mapping(results.get("config")), "config")
    settings += flatten(mapping(results.get("environment")), "environment")
    rows += [["setting", k, _cell(v)] for k, v in settings if v is not None]
    write_table(sheet, ["Kind", "Item", "Text or value"], rows)


def summary_sheet(sheet: Worksheet, results: dict, money: str, currency: str) -> None:
    sheet.append(["What the community earns compared with paid ads"])
    sheet["A1"].font = Font(bold=True, size=14)
    bad, cautions = bottom_line_alarms(results)
    if bad:
        sheet.append([f"{NOT_CONVERGED}: {', '.join(bad)} did not converge."])
        _put(sheet, sheet.max_row, 1, sheet.cell(sheet.max_row, 1).value)
    for text in cautions:
        sheet.append([redact(text)])
        sheet.cell(sheet.max_row, 1).font = BOLD
    for sentence in summary_sentences(results, currency):
        sheet.append([redact(plain(sentence))])
        for section in (REVENUE, RETENTION):   # why this method, and its caveats, beneath
            if any(getattr(f, "key", "").startswith(f"{section}.estimates") for f in sentence):
                reason = get(results, section, "preferred_reason")
                notes = ([f"Why this method: {reason}"] if isinstance(reason, str) else [])
                for note in notes + [f"Caveat: {c}" for c in headline_caveats(results, section)]:
                    sheet.append([redact(f"    {note}")])
                break
    start = sheet.max_row + 2
    rows = []
    for section, label, fmt in ((REVENUE, "Revenue lift per member-month", money),
                                (RETENTION, "Churn hazard ratio, members vs non-members",
                                 RATIO)):
        for method, entry in mapping(get(results, section, "estimates")).items():
            ok = bool(refusal(entry)) or is_converged(results, section, method, entry)
            note = ("refused" if refusal(entry) else "preferred" if method ==
                    preferred_method(results, section) else
                    "for contrast: biased" if method == "naive" else "")
            rows.append([label, method, *_estimate(entry, fmt), _status(ok, note),
                         joined(estimate_caveats(results, section, method))])
    spend = [number(get(c, "spend")) for c in mapping(get(results, "paid_media", "channels"))
             .values()]
    if any(s is not None for s in spend):
        rows.append(["Paid media spend, all channels", "", Fmt(sum(s for s in spend if s), money),
                     None, None, None, ""])
    rows += _money_summary_rows(results, money)
    write_table(sheet, ["Measure", "Method", "Estimate", "Low", "High", "Interval", "Status",
                        "Caveats"], rows, start=start)


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
    headers = ["Name", "Kind", "Cost", "Revenue per dollar", "Low", "High", "Interval",
               *second_headers, "Verdict", "Status", "Based on", "Caveats"]
    at = write_table(sheet, headers, rows, start=6)
    bottom_line_chart(sheet, lines, level=break_even(margin), at=(6, len(headers) + 2),
                      anchor=f"A{at}", currency=currency)


KIND_COLOURS = {"paid": "1F5F99", "community": "E08A00"}


def bottom_line_chart(sheet: Worksheet, lines: list, *, level: float, at: tuple[int, int],
                      anchor: str, currency: str) -> None:
    """A native column chart of revenue per dollar, paid channels and communities in their own
    colours, with the break-even line, placed at ``anchor``; its data table is written at
    ``at`` (row, column), to the right of the bottom-line table, one row per line."""
    rows = []
    for line in lines:
        value = number(get(line.revenue_per_dollar, "estimate")) if line.converged else None
        rows.append([line.name, *[value if line.kind == kind else None
                                  for kind in KIND_COLOURS], level])
    if not any(v is not None for row in rows for v in row[1:3]):
        return
    start, column = at
    for offset, header in enumerate(["Chart data: name", "Paid channel", "Community",
                                     "Break-even"]):
        cell = sheet.cell(row=start, column=column + offset, value=header)
        cell.font, cell.fill = BOLD, HEADER_FILL
    for index, row in enumerate(rows, 1):
        for offset, value in enumerate(row):
            _put(sheet, start + index, column + offset, Fmt(value, RATIO) if offset else value)
    names = Reference(sheet, min_col=column, min_row=start + 1, max_row=start + len(rows))
    bars = BarChart()
    bars.type, bars.grouping, bars.overlap = "col", "clustered", 100
    bars.title = f"Revenue per {currency}1 spent (estimate; break-even line)"
    bars.y_axis.title = f"revenue per {currency}1"
    bars.add_data(Reference(sheet, min_col=column + 1, max_col=column + 2, min_row=start,
                            max_row=start + len(rows)), titles_from_data=True)
    bars.set_categories(names)
    for series, colour in zip(bars.series, KIND_COLOURS.values(), strict=True):
        series.graphicalProperties.solidFill = colour
    line = LineChart()
    line.add_data(Reference(sheet, min_col=column + 3, min_row=start,
                            max_row=start + len(rows)), titles_from_data=True)
    line.series[0].graphicalProperties.line.solidFill = "C0392B"
    line.series[0].graphicalProperties.line.dashStyle = "dash"
    bars += line
    bars.width, bars.height = 18, 9
    sheet.add_chart(bars, anchor)


def _widths(sheet: Worksheet) -> None:
    """Columns as wide as their content up to 60 characters; longer sentences wrap."""
    for column in sheet.columns:
        longest = max((len(str(c.value)) for c in column if c.value is not None), default=8)
        sheet.column_dimensions[column[0].column_letter].width = min(max(longest + 2, 10), 60)
        for cell in column:
            if isinstance(cell.value, str) and len(cell.value) > WRAP_FROM:
                cell.alignment = WRAP


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
    engagement_sheet(sheets["Engagement"], results, money)
    diagnostics_sheet(sheets["Diagnostics"], results)
    data_sheet(sheets["Data quality"], results)
    assumptions_sheet(sheets["Assumptions"], results)
    for name, sheet in sheets.items():
        if name != "Summary":
            _widths(sheet)
            sheet.freeze_panes = "A2"
    sheets["Summary"].column_dimensions["A"].width = 45
    for row in sheets["Summary"].iter_rows(max_col=1):
        if isinstance(row[0].value, str) and len(row[0].value) > WRAP_FROM:
            # Sentences above the table: one merged, wrapped block the width of the table.
            sheets["Summary"].merge_cells(start_row=row[0].row, start_column=1,
                                          end_row=row[0].row, end_column=8)
            row[0].alignment = WRAP
            sheets["Summary"].row_dimensions[row[0].row].height = 15 * (
                1 + len(row[0].value) // 150)
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
