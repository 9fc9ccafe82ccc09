"""One self-contained HTML report from a results dict (the parsed ``results.json``).

The report reads nothing but the results: no models, no data. Every number shown is escaped text;
charts are embedded as base64 PNG; there are no external styles, scripts or fonts. Numbers that
come straight from the results carry ``data-key`` (their dotted path in ``results.json``) and
``data-value`` (the exact value), so tests and other tools can compare what is displayed with
what was estimated. Sections that a run did not produce say "not estimated in this run"; results
that did not converge are labelled "NOT CONVERGED - do not rely on it" wherever they appear.
A key holding a dot (a quantile ``0.05``) stays whole in the path: match keys longest first.

Layout: the page, the banners and the Summary are Jinja2 templates in ``roi/reports/templates``
(``report.html.j2`` places the sections, ``report.css`` styles screen and print); a page can be
rearranged there without reading the estimators' plumbing. :mod:`roi.reports.base` reads and
formats, :mod:`roi.reports.summary` writes the plain-language sentences,
:mod:`roi.reports.media` the paid media and comparison sections,
:mod:`roi.reports.budget_page` the budget page (``budget.html.j2``),
:mod:`roi.reports.diagnostics` the Diagnostics; this module the lift, retention, data and
assumptions sections and fills the templates.

Examples
--------
>>> import tempfile, pathlib
>>> from roi.reports.html import write_html
>>> results = {"schema_version": 1, "community_revenue_lift": {"preferred": "did",
...     "estimates": {"did": {"estimate": 42.5, "low": 5.7, "high": 79.3, "interval": "95% CI"}}}}
>>> path = write_html(results, pathlib.Path(tempfile.mkdtemp()) / "report.html")
>>> "$42" in path.read_text()
True
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from roi.bottom_line import bottom_line
from roi.outputs import write_atomic
from roi.reports import plots
from roi.reports.base import (
    ESTIMANDS,
    METHOD_NOTES,
    NOT_CONVERGED,
    NOT_ESTIMATED,
    RETENTION,
    REVENUE,
    Cell,
    Raw,
    Shown,
    as_list,
    esc,
    estimate_cells,
    figure,
    fixed,
    flat_text,
    flatten,
    get,
    glossary_methods,
    is_converged,
    key_value_table,
    mapping,
    method_label,
    missing,
    money,
    number,
    preferred_method,
    redact,
    render,
    section,
    sequence,
    shown,
    status,
    table,
    value_of,
)
from roi.reports.budget_page import budget_context, recommendation
from roi.reports.budget_page import headline as budget_headline
from roi.reports.caveats import (
    bottom_line_alarms,
    community_caveats,
    estimate_caveats,
    headline_caveats,
    joined,
    other_problems,
    refusal,
)
from roi.reports.diagnostics import checks_html, diagnostics_section
from roi.reports.engagement import engagement_section
from roi.reports.experiment import experiment_and_join_month
from roi.reports.media import (
    break_even_text,
    comparison_section,
    paid_media_section,
)
from roi.reports.summary import bottom_line_context, churn_change, summary_sentences


def _method_note(method: str, preferred: Any, entry: Any = None) -> str:
    if refusal(entry):
        return "refused"
    if method == preferred:
        return "preferred"
    return "for contrast: biased" if method == "naive" else ""


def estimate_rows(results: dict, section: str, fmt, gap_fmt) -> list[list[Cell]]:
    """Every estimator side by side, with its distance from the naive number."""
    estimates = mapping(get(results, section, "estimates"))
    preferred = preferred_method(results, section)
    _, naive = value_of(estimates.get("naive"))
    rows: list[list[Cell]] = []
    for method, entry in estimates.items():
        if not isinstance(entry, dict):
            rows.append([method_label(method), "n/a", "", "", "", "", status(True, NOT_ESTIMATED),
                         ""])
            continue
        _, value = value_of(entry)
        # A refused estimator is "not estimated, because", not a failed convergence gate.
        ok = bool(refusal(entry)) or is_converged(results, section, method, entry)
        gap = "" if method == "naive" or value is None or naive is None else gap_fmt(value, naive)
        rows.append([method_label(method),
                     *estimate_cells(f"{section}.estimates.{method}", entry, fmt),
                     gap, status(ok, _method_note(method, preferred, entry)),
                     caveat_cell(estimate_caveats(results, section, method))])
    return rows


def caveat_cell(caveats: list[str]) -> Raw:
    """The caveats of one number, in the cell beside it."""
    text = joined(caveats)
    return Raw(f'<span class="caveat">{esc(text)}</span>' if text else "")


def group_entries(results: dict, section: str) -> list[tuple[str, str, str, dict, bool]]:
    """``(community, method, key, entry, converged)`` for each per-community estimate.

    ``by_community`` holds one estimate per community (from the preferred method); a nested
    ``{community: {method: estimate}}`` form is read too.
    """
    preferred = preferred_method(results, section) or "preferred"
    out = []
    for group, entry in mapping(get(results, section, "by_community")).items():
        if not isinstance(entry, dict):
            continue
        base = f"{section}.by_community.{group}"
        if value_of(entry)[1] is None and any(isinstance(v, dict) for v in entry.values()):
            pairs = [(m, f"{base}.{m}", e) for m, e in entry.items() if isinstance(e, dict)]
        else:
            pairs = [(preferred, base, entry)]
        for method, key, item in pairs:
            out.append((group, method, key, item, is_converged(results, section, method, item)))
    return out


def group_rows(results: dict, section: str, fmt) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for group, method, key, item, ok in group_entries(results, section):
        counts = ", ".join(f"{k.replace('_', ' ')} {item[k]:,}" for k in ("n_treated", "events")
                           if isinstance(item.get(k), int))
        reason = refusal(item)
        rows.append([group, method_label(method), *estimate_cells(key, item, fmt), counts,
                     status(ok or bool(reason), "refused" if reason else ""),
                     caveat_cell(community_caveats(results, section, group))])
    return rows


SHORT_LABELS = {"naive": "naive (dashboard)", "did": "diff-in-diff",
                "cox_time_varying": "Cox, time-varying",
                "piecewise_exponential": "piecewise exponential"}


def short_label(method: str) -> str:
    return SHORT_LABELS.get(method, method.replace("_", " "))


def chart_rows(results: dict, section: str) -> list[plots.Row]:
    rows: list[plots.Row] = []
    for method, entry in mapping(get(results, section, "estimates")).items():
        if isinstance(entry, dict):
            rows.append((short_label(method), value_of(entry)[1], number(entry.get("low")),
                         number(entry.get("high")), is_converged(results, section, method, entry)))
    for group, method, _, item, ok in group_entries(results, section):
        rows.append((f"{group}: {short_label(method)}", value_of(item)[1],
                     number(item.get("low")), number(item.get("high")), ok))
    return rows


# --------------------------------------------------------------------------- sections


def revenue_section(results: dict, currency: str) -> str:
    lift = get(results, REVENUE)
    if not isinstance(get(lift, "estimates"), dict) or not lift["estimates"]:
        return section("revenue", "Community revenue lift", missing("Community revenue lift"))
    fmt = lambda v: money(v, currency)  # noqa: E731
    gap = lambda v, n: f"{money(v - n, currency)} vs naive"  # noqa: E731
    months = number(lift.get("member_months"))
    layout = templates().get_template("lift.html.j2").module
    groups = group_rows(results, REVENUE, fmt)
    return str(layout.lift(
        "revenue", "Community revenue lift",
        layout.revenue_intro(currency, Markup(shown(f"{REVENUE}.member_months", months,
                                                    lambda v: f"{v:,.0f}").html())
                             if months is not None else None),
        Markup(table(["Method", "Estimate", "Low", "High", "Interval", "Difference", "Status",
                      "Caveats"], estimate_rows(results, REVENUE, fmt, gap))),
        Markup(table(["Community", "Method", "Estimate", "Low", "High", "Interval", "Counts",
                      "Status", "Caveats"], groups, numeric_from=2) if groups
               else missing("Per-community revenue lift")),
        Markup(figure(plots.interval_chart(chart_rows(results, REVENUE), reference=0.0,
                                           xlabel=f"{currency} per member-month",
                                           title="Revenue lift per member-month"),
                      "Revenue lift per member-month with intervals")),
        Markup(event_study(results, currency))))


def _event_rows(points: Any) -> list[tuple]:
    return [(number(p.get("e")), number(p.get("estimate", p.get("att"))), number(p.get("low")),
             number(p.get("high"))) for p in sequence(points) if isinstance(p, dict)]


def event_study(results: dict, currency: str) -> str:
    """The event study of the preferred method (``event_studies[preferred]``, else
    ``event_study``), pooled, then one small panel per community."""
    preferred = preferred_method(results, REVENUE)
    study = get(results, REVENUE, "event_studies", preferred) if preferred else None
    if not isinstance(study, dict):
        study = get(results, REVENUE, "event_study")
    rows = _event_rows(get(study, "points") if isinstance(study, dict) else study)
    interval = str(get(study, "interval") or "95% CI")
    png = plots.event_study_chart(rows, currency=currency, interval=interval)
    if png is None:
        return "<h3>Event study</h3>" + missing("Event study")
    checks = get(results, "diagnostics", f"revenue_{get(study, 'method') or 'did'}", "checks")
    # The event-time test (leads only) is the one the preference rule and the caveats read.
    p_value = next((number(get(checks, name, "p_value")) for name in ("pretrend_event",
                    "pretrend") if number(get(checks, name, "p_value")) is not None), None)
    return str(_lift_layout().event_study(
        p_value, Markup(figure(png, "Event study: effect by months since joining")),
        Markup(figure(plots.event_study_multiples(
            {name: _event_rows(points) for name, points in
             mapping(get(study, "by_community")).items()}, currency=currency,
            interval=interval), "Event study per community"))))


def _lift_layout():
    """The macros of lift.html.j2 (sections and their parts)."""
    return templates().get_template("lift.html.j2").module


def retention_section(results: dict, currency: str = "$") -> str:
    if not isinstance(get(results, RETENTION, "estimates"), dict) or \
            not results[RETENTION]["estimates"]:
        return section("retention", "Retention", missing("Community retention lift"))
    gap = lambda v, n: f"churn {churn_change(v)} vs {churn_change(n)} naive"  # noqa: E731
    layout = templates().get_template("lift.html.j2").module
    groups = group_rows(results, RETENTION, fixed)
    return str(layout.lift(
        "retention", "Retention", layout.retention_intro(),
        Markup(table(["Method", "Hazard ratio", "Low", "High", "Interval", "Churn", "Status",
                      "Caveats"], estimate_rows(results, RETENTION, fixed, gap))),
        Markup(table(["Community", "Method", "Hazard ratio", "Low", "High", "Interval",
                      "Counts", "Status", "Caveats"], groups, numeric_from=2) if groups
               else missing("Per-community retention lift")),
        Markup(figure(plots.interval_chart(
            chart_rows(results, RETENTION), reference=1.0, log=True,
            xlabel="hazard ratio of churn (log scale; 1 = no effect)",
            title="Churn hazard ratio, members vs non-members"),
            "Churn hazard ratios with intervals")),
        Markup(landmark_retention(results) + retention_revenue(results, currency))))


def landmark_retention(results: dict) -> str:
    """Share still a customer, members vs non-members followed from a landmark month."""
    base = f"{RETENTION}.landmark_retention.retention"
    records = sequence(get(results, RETENTION, "landmark_retention", "retention"))
    rows: list[list[Cell]] = []
    chart: list[plots.Row] = []
    pct = lambda v: f"{v:.1%}" if number(v) is not None else "n/a"  # noqa: E731
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            continue
        label = (f"{r.get('group')}, still here {flat_text(r.get('landmark_month'))} months "
                 f"after first seen, {flat_text(r.get('horizon_month'))} months later")
        rows.append([label, shown(f"{base}.{i}.customers", r.get("customers"), flat_text),
                     *[shown(f"{base}.{i}.{f}", r.get(f), pct) for f in ("retention", "low",
                                                                        "high")],
                     r.get("interval", "")])
        chart.append((label.split(",")[0] + f" (landmark {flat_text(r.get('landmark_month'))}"
                      f", +{flat_text(r.get('horizon_month'))} m)", number(r.get("retention")),
                      number(r.get("low")), number(r.get("high")), True))
    if not rows:
        return "<h3>Retention curves</h3>" + missing("Landmark retention")
    png = plots.retention_curve_chart(retention_curves(results), interval=str(
        get(results, RETENTION, "landmark_retention", "curves", "interval") or "95% CI"))
    if png is None:
        png = plots.interval_chart(chart, reference=None, xlabel="share still a customer",
                                   title="Retention after the landmark")
    return str(_lift_layout().landmark(
        Markup(figure(png, "Retention curves, members vs non-members")),
        Markup(table(["Group", "Customers", "Still a customer", "Low", "High", "Interval"],
                     rows))))


def retention_curves(results: dict) -> dict[str, dict[str, list[plots.CurvePoint]]]:
    """``{landmark: {group: [(month, share, low, high)]}}`` from the landmark curves when the
    run wrote them, else from the retention records (share 1 at the landmark itself)."""
    block = get(results, RETENTION, "landmark_retention")
    out: dict[str, dict[str, list[plots.CurvePoint]]] = {}
    points = sequence(get(block, "curves", "points"))
    for p in points:
        if isinstance(p, dict) and not str(p.get("group", "")).startswith("member:"):
            out.setdefault(flat_text(p.get("landmark_month")), {}).setdefault(
                str(p.get("group")), []).append((number(p.get("month")), number(p.get("survival")),
                                                 number(p.get("low")), number(p.get("high"))))
    if out:
        return out
    for r in sequence(get(block, "retention")):
        if isinstance(r, dict) and r.get("group") != "all":
            group = out.setdefault(flat_text(r.get("landmark_month")), {}).setdefault(
                str(r.get("group")), [(0.0, 1.0, 1.0, 1.0)])
            group.append((number(r.get("horizon_month")), number(r.get("retention")),
                          number(r.get("low")), number(r.get("high"))))
    return out


def retention_revenue(results: dict, currency: str) -> str:
    """Extra customer-months members stay, and the revenue of those months."""
    money_block = get(results, RETENTION, "retention_revenue")
    base = f"{RETENTION}.retention_revenue"
    groups = [(f"{base}.by_community.{n}", n, e) for n, e in
              mapping(get(money_block, "by_community")).items()]
    groups.append((f"{base}.total", "all communities", mapping(get(money_block, "total"))))
    rows: list[list[Cell]] = []
    for key, name, entry in groups:
        months, revenue = get(entry, "extra_customer_months"), get(entry, "revenue")
        if isinstance(months, dict) and isinstance(revenue, dict):
            rows.append([name, *estimate_cells(f"{key}.extra_customer_months", months,
                                               lambda v: fixed(v, 0))[:3],
                         *estimate_cells(f"{key}.revenue", revenue,
                                         lambda v: money(v, currency, 0))])
    if not rows:
        return ""
    note = get(money_block, "customer_sample", "note")
    caption = Markup(f'<p class="note">{escape(note)}</p>') if isinstance(note, str) else ""
    return str(_lift_layout().retained_months(caption + Markup(table(
        ["Community", "Extra customer-months", "Low", "High", "Revenue", "Low", "High",
         "Interval"], rows))))


def data_section(results: dict) -> str:
    data = results.get("data")
    if not isinstance(data, dict) or not data:
        return section("data", "Data quality", missing("Data summary"))
    window = f"{data.get('start', '?')} to {data.get('end', '?')}"
    churn = data.get("churn") if isinstance(data.get("churn"), dict) else {}
    rule = {"column": "churned_at column in the customers table",
            "inactivity": "inactivity rule (no order for "
                          f"{get(results, 'config', 'inactivity_days') or '?'} days)"}
    link_rate = number(get(data, "identity", "link_rate"))
    rest = {k: v for k, v in data.items() if k != "row_accounting"}
    accounting = row_accounting_table(data)
    return templates().get_template("data.html.j2").render(
        window=window,
        churn_rule=str(rule.get(str(churn.get("rule")), churn.get("rule") or "unrecorded rule")),
        link_rate=Markup(Shown("data.identity.link_rate", link_rate,
                               f"{link_rate:.1%}").html()) if link_rate is not None else None,
        excluded=[(k.replace("_", " "), flat_text(v))
                  for k, v in mapping(get(data, "excluded")).items()],
        notes=[str(n) for n in as_list(data.get("notes"))],
        row_accounting=Markup(accounting) if accounting else None,
        checks=Markup(checks_html(rest, "data")))


def row_accounting_table(data: dict) -> str:
    """Where every row read went: used, or excluded with its reason (data.row_accounting)."""
    rows = []
    for name, entry in mapping(data.get("row_accounting")).items():
        entry = mapping(entry)
        key = f"data.row_accounting.{name}"
        excluded = mapping(entry.get("excluded"))
        reasons = ", ".join(f"{k.removeprefix(name + '_').replace('_', ' ')} {flat_text(v)}"
                            for k, v in excluded.items())
        rows.append([name, shown(f"{key}.read", entry.get("read"), flat_text),
                     shown(f"{key}.used", entry.get("used"), flat_text),
                     flat_text(sum(number(v) or 0 for v in excluded.values())),
                     reasons or "none"])
    if not rows:
        return ""
    return table(["Table", "Rows read", "Used", "Excluded", "Reasons"], rows)


def assumptions_section(results: dict) -> str:
    """assumptions.html.j2: the glossary (definitions, intervals, every method shown) and the
    run's settings and versions."""
    run = [("schema_version", results.get("schema_version")),
           ("generated_at", results.get("generated_at"))]
    run += flatten(mapping(results.get("config")), "config")
    run += flatten(mapping(results.get("environment")), "environment")
    return templates().get_template("assumptions.html.j2").render(
        estimands=ESTIMANDS,
        methods=[(m, method_label(m), METHOD_NOTES[m]) for m in glossary_methods(results)],
        settings=Markup(key_value_table([(k, v) for k, v in run if v is not None],
                                        grouping=False)))


# --------------------------------------------------------------------------- page

TEMPLATES = Path(__file__).with_name("templates")
SECTIONS = [("summary", "Summary"), ("comparison", "Community against paid media"),
            ("revenue", "Revenue lift"), ("retention", "Retention"),
            ("engagement", "What kind of community pays"),
            ("paid-media", "Paid media"), ("budget", "Budget"),
            ("diagnostics", "Diagnostics"), ("data", "Data quality"),
            ("assumptions", "Assumptions")]


@lru_cache(maxsize=1)
def templates() -> Environment:
    """The report's Jinja2 templates (``roi/reports/templates``): every value is escaped unless
    it is :class:`~markupsafe.Markup` (sections built and escaped in Python); ``redact`` masks
    e-mails and connection secrets before escaping."""
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)
    environment.filters["redact"] = redact
    return environment


def banner_context(results: dict) -> dict[str, Any]:
    """What banners.html.j2 shows: only alarms of what the bottom line uses."""
    bad, cautions = bottom_line_alarms(results)
    diagnostics = mapping(results.get("diagnostics"))
    count = sum(len(as_list(d.get("warnings"))) for d in diagnostics.values()
                if isinstance(d, dict))
    # Joined here: Jinja's join filter would escape before ``redact`` reads the text.
    return {"not_converged": ", ".join(bad), "not_converged_label": NOT_CONVERGED,
            "cautions": cautions, "warning_count": count,
            "media_warnings": "; ".join(map(str, as_list(get(results, "paid_media",
                                                              "warnings"))))}


def budget_section(results: dict, currency: str = "$") -> str:
    """budget.html.j2: current against recommended spend, the optimiser's scope, scenarios."""
    context = budget_context(results, currency)
    if context is None:
        return section("budget", "Budget scenarios", missing("Budget scenarios"))
    return templates().get_template("budget.html.j2").render(**context)


def summary_section(results: dict, currency: str) -> str:
    """summary.html.j2 with the bottom line, its chart and the sentences (each lift sentence
    with its method's preferred_reason and caveats)."""
    sentences = []
    for sentence in summary_sentences(results, currency):
        topic = _topic(sentence)
        reason = get(results, topic, "preferred_reason") if topic else None
        sentences.append({"html": Markup(render(sentence)),
                          "reason": reason if isinstance(reason, str) else None,
                          "caveats": headline_caveats(results, topic) if topic else []})
    rec = recommendation(results)
    return templates().get_template("summary.html.j2").render(
        bottom_line=bottom_line_context(results, currency),
        budget=Markup(render(budget_headline(rec, currency))) if rec else None,
        chart=Markup(bottom_line_chart(results, currency)), sentences=sentences)


def _topic(sentence: list) -> str | None:
    """The lift section whose overall estimate a summary sentence states, if any."""
    for section_name in (REVENUE, RETENTION):
        if any(getattr(f, "key", "").startswith(f"{section_name}.estimates") for f in sentence):
            return section_name
    return None


def bottom_line_chart(results: dict, currency: str) -> str:
    """Revenue per dollar of every paid channel and community, coloured by kind, against the
    break-even line (the bottom line's numbers, drawn)."""
    rows = [(line.name, line.kind, *(number(get(line.revenue_per_dollar, k))
                                     for k in ("estimate", "low", "high")), line.converged)
            for line in bottom_line(results)]
    level, said = break_even_text(results)
    return figure(plots.per_dollar_chart(rows, break_even=level, currency=currency,
                                         label=f"revenue per {currency}1 spent ({said})"),
                  "Revenue per dollar, paid channels and communities, with break-even")


def render_html(results: dict, *, currency: str = "$") -> str:
    """The whole report as one HTML string (see :func:`write_html`): report.html.j2 places the
    sections built here."""
    data = results.get("data") if isinstance(results.get("data"), dict) else {}
    meta = (f"Window {data.get('start', '?')} to {data.get('end', '?')}; source "
            f"{data.get('source', 'not recorded')}; generated {results.get('generated_at', '?')}; "
            f"results schema {results.get('schema_version', '?')}.")
    sections = {
        "summary": summary_section(results, currency),
        "comparison": comparison_section(results, currency),
        "revenue": revenue_section(results, currency) + experiment_and_join_month(results,
                                                                                  currency),
        "retention": retention_section(results, currency),
        "engagement": engagement_section(results, currency),
        "paid_media": paid_media_section(results, currency),
        "budget": budget_section(results, currency),
        "diagnostics": diagnostics_section(results, other_problems=other_problems(results)),
        "data": data_section(results), "assumptions": assumptions_section(results)}
    return templates().get_template("report.html.j2").render(
        meta=meta, nav=SECTIONS, sections={k: Markup(v) for k, v in sections.items()},
        **banner_context(results))


def write_html(results: dict, path: str | Path, *, currency: str = "$") -> Path:
    """Write the self-contained HTML report atomically.

    Parameters
    ----------
    results : dict
        The parsed ``results.json``; missing or null sections are reported as not estimated.
    path : str or Path
        Where to write (parent folders are created).
    currency : str
        Symbol printed before money amounts.

    Returns
    -------
    Path
        ``path``.
    """
    return write_atomic(Path(path), render_html(results, currency=currency))
