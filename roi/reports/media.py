"""HTML sections for money: paid media (ROAS, response curves, weekly contributions), the
comparison of revenue per dollar, and budget scenarios (``results.json`` contract, section 4).

Every number is a :class:`~roi.reports.base.Shown` keyed to its results path. Numbers that come
from the media-mix model (ROAS, paid comparison rows, budget revenue changes) are labelled NOT
CONVERGED wherever they appear when the model did not converge.

Examples
--------
>>> "not estimated" in paid_media_section({}, "$")
True
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from markupsafe import Markup

from roi.comparison import break_even, gross_margin_of
from roi.reports import plots
from roi.reports.base import (
    Cell,
    Raw,
    Shown,
    as_list,
    esc,
    estimate_cells,
    figure,
    fixed,
    flat_text,
    get,
    mapping,
    missing,
    money,
    number,
    section,
    sequence,
    shown,
    status,
    table,
)

PAID = "paid_media"


def media_converged(results: dict) -> bool:
    """False when ``paid_media.converged`` or the media-mix diagnostics say it did not."""
    if get(results, PAID, "converged") is False:
        return False
    diagnostics = mapping(results.get("diagnostics"))
    return all(get(diagnostics, key, "converged") is not False
               for key in ("paid_media_mmm", "paid_media", "mmm", "media_mix"))


def entry_ok(entry: Any, model_ok: bool) -> bool:
    return model_ok and not (isinstance(entry, dict) and entry.get("converged") is False)


def notes_list(notes: Any, css: str = "warning") -> str:
    items = "".join(f'<li class="{css}">{esc(n)}</li>' for n in as_list(notes))
    return f"<ul>{items}</ul>" if items else ""


def _cells(key: str, entry: Any, fmt, ok: bool) -> list[Cell]:
    """Estimate, low, high, interval of one entry; the estimate labelled when not converged."""
    if not isinstance(entry, dict):
        return ["not estimated", "", "", ""]
    cells = estimate_cells(key, entry, fmt)
    if not ok and isinstance(cells[0], Shown):
        cells[0] = replace(cells[0], converged=False)
    return cells


# --------------------------------------------------------------------------- paid media


def _roas_rows(results: dict, currency: str,
               ok: bool) -> tuple[list[list[Cell]], list[plots.Row]]:
    rows, chart = [], []
    for name, entry in mapping(get(results, PAID, "channels")).items():
        base = f"{PAID}.channels.{name}"
        roas, marginal = get(entry, "roas"), get(entry, "marginal_roas")
        good = entry_ok(roas, ok) and entry_ok(marginal, ok)
        spend = shown(f"{base}.spend", get(entry, "spend"), lambda v: money(v, currency, 0))
        rows.append([name, spend, *_cells(f"{base}.roas", roas, fixed, good),
                     *_cells(f"{base}.marginal_roas", marginal, fixed, good)[:3],
                     status(good) if isinstance(roas, dict) else "ROAS not estimated"])
        if isinstance(roas, dict):
            chart.append((name, number(roas.get("estimate")), number(roas.get("low")),
                          number(roas.get("high")), good))
    return rows, chart


def _revenue_rows(results: dict, currency: str, ok: bool) -> list[list[Cell]]:
    fmt = lambda v: money(v, currency, 0)  # noqa: E731
    baseline = mapping(get(results, PAID, "regression_baseline", "channels"))
    rows = []
    for name, entry in mapping(get(results, PAID, "channels")).items():
        revenue = get(entry, "incremental_revenue")
        regression = get(baseline, name, "roas")
        if not isinstance(revenue, dict) and not isinstance(regression, dict):
            continue
        key = f"{PAID}.regression_baseline.channels.{name}.roas"
        rows.append([name, *_cells(f"{PAID}.channels.{name}.incremental_revenue", revenue, fmt,
                                   entry_ok(revenue, ok)),
                     *_cells(key, regression, fixed, True)[:4]])
    return rows


def _community_rows(results: dict, currency: str, ok: bool) -> list[list[Cell]]:
    fmt = lambda v: money(v, currency, 0)  # noqa: E731
    rows = []
    for name, entry in mapping(get(results, PAID, "communities")).items():
        base = f"{PAID}.communities.{name}"
        revenue = get(entry, "incremental_revenue")
        rows.append([name, shown(f"{base}.cost", get(entry, "cost"), fmt),
                     *_cells(f"{base}.incremental_revenue", revenue, fmt, entry_ok(revenue, ok)),
                     status(entry_ok(revenue, ok))])
    return rows


def _lift_test_rows(results: dict, currency: str) -> list[list[Cell]]:
    fmt = lambda v: money(v, currency, 0)  # noqa: E731
    rows = []
    for index, test in enumerate(sequence(get(results, PAID, "lift_tests"))):
        if isinstance(test, dict):
            base = f"{PAID}.lift_tests.{index}"
            rows.append([test.get("channel", ""), test.get("start", ""), test.get("end", ""),
                         *[shown(f"{base}.{f}", test.get(f), fmt) for f in
                           ("spend_change", "revenue_change", "standard_error")]])
    return rows


def _curve_series(results: dict) -> dict[str, plots.Curve]:
    """Channel -> (spend, mean, low, high) over the multipliers, 94% HDI across draws."""
    curves = mapping(get(results, PAID, "response_curves"))
    spend, draws = mapping(curves.get("spend")), mapping(curves.get("draws"))
    out = {}
    for name, rows in draws.items():
        matrix = [[number(v) for v in row] for row in sequence(rows) if isinstance(row, list)]
        xs = [number(v) for v in sequence(spend.get(name))]
        if matrix and xs and len(xs) == len(matrix[0]) and None not in xs:
            out[name] = plots.curve_summary(xs, matrix)
    return out


def _contribution_series(results: dict) -> dict[str, tuple[list[str], list, list, list]]:
    series: dict[str, tuple[list[str], list, list, list]] = {}
    for row in sequence(get(results, PAID, "weekly_contributions")):
        if not isinstance(row, dict) or number(row.get("contribution")) is None:
            continue
        weeks, mean, low, high = series.setdefault(str(row.get("channel")), ([], [], [], []))
        weeks.append(str(row.get("week")))
        mean.append(number(row["contribution"]))
        low.append(number(row.get("low")))
        high.append(number(row.get("high")))
    return series


def break_even_text(results: dict) -> tuple[float, str]:
    """Break-even revenue per dollar (1/gross margin, 1 without a margin) and how to say it.

    Examples
    --------
    >>> break_even_text({"gross_margin": 0.6})
    (1.6666666666666667, 'break-even 1.67 at a 60% gross margin')
    """
    margin = gross_margin_of(results)
    level = break_even(margin)
    if margin is None:
        return level, "1 = break-even on revenue; no gross margin configured"
    return level, f"break-even {level:.2f} at a {margin:.0%} gross margin"


def _charts(results: dict, currency: str, roas_chart: list[plots.Row]) -> list[str]:
    """The section's charts, in page order (figures, empty strings for charts not drawn)."""
    channels = mapping(get(results, PAID, "channels"))
    current = {n: number(get(c, "spend")) for n, c in channels.items()}
    level, said = break_even_text(results)
    optimal = {n: number(v) for n, v in mapping(get(results, "budget_scenarios", "optimised",
                                                      "spend")).items()}
    return [
        figure(plots.bar_chart(list(current.items()), xlabel=f"spend ({currency})",
                                  title="Spend per channel in the window"), "Spend per channel"),
        figure(plots.interval_chart(roas_chart, reference=level,
                                    xlabel=f"ROAS (revenue per {currency}1 of spend; {said})",
                                    title="ROAS per channel, 94% HDI"), "ROAS per channel"),
        figure(plots.share_chart(_share_rows(results)),
               "Share of spend against share of incremental revenue"),
        figure(plots.response_multiples(_curve_series(results), current, currency=currency,
                                        optimal=optimal), "Response curves"),
        adstock_figure(results),
        figure(plots.stacked_contribution_chart(_contribution_series(results),
                                                currency=currency),
               "Weekly revenue caused, stacked by channel")]


def fit_figure(results: dict, currency: str) -> str:
    """Actual against predicted weekly revenue with its band, R-squared and MAPE
    (``paid_media.fit``), or nothing when the run has no fit."""
    fit = mapping(get(results, PAID, "fit"))
    weeks = [(str(w.get("week", "")), number(w.get("actual")), number(w.get("predicted")),
              number(w.get("low")), number(w.get("high")))
             for w in sequence(fit.get("weeks")) if isinstance(w, dict)]
    band = f"{fit.get('interval', '94% HDI')} {fit.get('band', '')}".strip()
    return figure(plots.model_fit_chart(weeks, r_squared=number(fit.get("r_squared")),
                                        mape=number(fit.get("mape")), currency=currency,
                                        interval=band),
                  "Model fit: actual against predicted weekly revenue")


def adstock_figure(results: dict) -> str:
    """Share of an ad's effect landing each week after the spend, per channel
    (``paid_media.adstock``)."""
    block = mapping(get(results, PAID, "adstock"))
    decays = {}
    for name, entry in mapping(block.get("channels")).items():
        share = mapping(get(entry, "share"))
        values = [[number(v) or 0.0 for v in sequence(share.get(k))]
                  for k in ("estimate", "low", "high")]
        decays[name] = (*values, number(get(entry, "half_life_weeks", "estimate")))
    return figure(plots.adstock_multiples(decays, interval=str(block.get("interval") or
                                                               "94% HDI")),
                  "Adstock: how long an ad's effect lasts, per channel")


def _share_rows(results: dict) -> list[tuple[str, str, float | None, float | None]]:
    """``(name, kind, spend, incremental revenue)`` of each channel and community."""
    rows = [(name, "paid", number(get(c, "spend")),
             number(get(c, "incremental_revenue", "estimate")))
            for name, c in mapping(get(results, PAID, "channels")).items()]
    rows += [(name, "community", number(get(c, "cost")),
              number(get(c, "incremental_revenue", "estimate")))
             for name, c in mapping(get(results, PAID, "communities")).items()]
    return rows


def render(template: str, **context: Any) -> str:
    """One of the report's Jinja2 templates (``roi/reports/templates``) filled with
    ``context`` (markup already escaped)."""
    from roi.reports.html import templates

    return templates().get_template(template).render(**context)


def paid_media_section(results: dict, currency: str) -> str:
    """paid_media.html.j2, or "not estimated" when the run has no channel."""
    channels = get(results, PAID, "channels")
    if not isinstance(channels, dict) or not channels:
        return section("paid-media", "Paid media", missing("Paid media"))
    return render("paid_media.html.j2", **paid_media_context(results, currency))


def paid_media_context(results: dict, currency: str) -> dict[str, Any]:
    """What paid_media.html.j2 shows: tables and charts as escaped markup."""
    ok = media_converged(results)
    rows, roas_chart = _roas_rows(results, currency, ok)
    level, said = break_even_text(results)
    revenue = _revenue_rows(results, currency, ok)
    communities = _community_rows(results, currency, ok)
    tests = _lift_test_rows(results, currency)
    return {
        "currency": currency, "method": get(results, PAID, "method") or "media-mix",
        "break_even": level, "break_even_said": said,
        "warnings": [str(w) for w in as_list(get(results, PAID, "warnings"))],
        "roas_table": Markup(table(["Channel", "Spend", "ROAS", "Low", "High", "Interval",
                                    "Marginal ROAS", "Low", "High", "Status"], rows)),
        "fit": _fit_context(results, currency),
        "revenue_table": Markup(table(
            ["Channel", "Incremental revenue", "Low", "High", "Interval", "Regression ROAS",
             "Low", "High", "Interval"], revenue)) if revenue else None,
        "community_table": Markup(table(
            ["Community", "Cost", "Incremental revenue", "Low", "High", "Interval", "Status"],
            communities)) if communities else None,
        "lift_test_table": Markup(table(
            ["Channel", "Start", "End", "Spend change", "Revenue change", "Standard error"],
            tests, numeric_from=3)) if tests else None,
        "charts": [Markup(c) for c in _charts(results, currency, roas_chart) if c]}


def _fit_context(results: dict, currency: str) -> dict[str, Any] | None:
    """R-squared, MAPE and the share of weeks inside the band (keyed numbers), and the chart."""
    fit = mapping(get(results, PAID, "fit"))
    r2, mape = number(fit.get("r_squared")), number(fit.get("mape"))
    if r2 is None or mape is None:
        return None
    inside = number(fit.get("share_inside"))
    return {"r_squared": Markup(shown(f"{PAID}.fit.r_squared", r2, lambda v: f"{v:.2f}").html()),
            "mape": Markup(shown(f"{PAID}.fit.mape", mape, lambda v: f"{v:.1%}").html()),
            "inside": Markup(shown(f"{PAID}.fit.share_inside", inside,
                                   lambda v: f"{v:.0%}").html()) if inside is not None else None,
            "chart": Markup(fit_figure(results, currency))}


# --------------------------------------------------------------------------- comparison


def comparison_rows(results: dict) -> list[tuple[int, dict, bool]]:
    """``(index, row, converged)``; paid rows follow the media-mix model's convergence."""
    model_ok = media_converged(results)
    out = []
    for index, row in enumerate(sequence(results.get("comparison"))):
        if not isinstance(row, dict):
            continue
        ok = row.get("converged") is not False and all(
            get(row, f, "converged") is not False
            for f in ("incremental_revenue", "revenue_per_dollar"))
        out.append((index, row, ok and (model_ok or row.get("kind") != "paid")))
    return out


def row_caveats(results: dict) -> dict[int, list[str]]:
    """Comparison row index -> the caveats the bottom line shows beside that row's number."""
    from roi.bottom_line import bottom_line

    indexed = [i for i, row in enumerate(sequence(results.get("comparison")))
               if isinstance(row, dict)]
    return {index: line.caveats for index, line in zip(indexed, bottom_line(results),
                                                        strict=False)}


def _comparison_table(results: dict, currency: str) -> tuple[str, str, list[plots.Row]]:
    """The comparison table, the where-it-comes-from table ("" without parts), chart rows."""
    fmt, rpd = (lambda v: money(v, currency, 0)), (lambda v: money(v, currency))
    rows, chart, parts = [], [], []
    caveats = row_caveats(results)
    for index, row, ok in comparison_rows(results):
        base = f"comparison.{index}"
        rows.append([row.get("name", ""), row.get("kind", ""), shown(f"{base}.cost",
                                                                     row.get("cost"), fmt),
                     *_cells(f"{base}.incremental_revenue", row.get("incremental_revenue"),
                             fmt, ok)[:3],
                     *_cells(f"{base}.revenue_per_dollar", row.get("revenue_per_dollar"), rpd,
                             ok), row.get("method", ""), status(ok),
                     Raw(f'<span class="caveat">{esc("; ".join(caveats.get(index, [])))}</span>')])
        entry = mapping(row.get("revenue_per_dollar"))
        chart.append((f"{row.get('name', '')} ({row.get('kind', '')})",
                      number(entry.get("estimate")), number(entry.get("low")),
                      number(entry.get("high")), ok))
        for part, label in (("lift_revenue", "revenue lift on member-months"),
                            ("retention_revenue", "revenue of extra retained months")):
            if isinstance(get(row, "parts", part), dict):
                parts.append([row.get("name", ""), label, *_cells(
                    f"{base}.parts.{part}", row["parts"][part], fmt, ok)])
    html = table(["Name", "Kind", "Cost", "Incremental revenue", "Low", "High", "Revenue per $",
                  "Low", "High", "Interval", "Method", "Status", "Caveats"], rows,
                 numeric_from=2)
    where = table(["Community", "Part", "Revenue", "Low", "High", "Interval"], parts,
                  numeric_from=2) if parts else ""
    return html, where, chart


def comparison_section(results: dict, currency: str) -> str:
    """comparison.html.j2, or "not estimated" when the run has no comparison row."""
    if not comparison_rows(results):
        return section("comparison", "Community against paid media",
                       missing("Comparison of revenue per dollar"))
    main, parts, chart = _comparison_table(results, currency)
    notes = [f"{row.get('name')}: {note}" for _, row, _ in comparison_rows(results)
             for note in as_list(row.get("notes"))]
    level, said = break_even_text(results)
    return render("comparison.html.j2", table=Markup(main),
                  parts_table=Markup(parts) if parts else None, notes=notes,
                  chart=Markup(figure(plots.interval_chart(
                      chart, reference=level, xlabel=f"revenue per {currency}1 ({said})",
                      title="Revenue per dollar"), "Revenue per dollar")))


# --------------------------------------------------------------------------- budget


def move_text(move: Any, currency: str) -> str:
    if not isinstance(move, dict):
        return flat_text(move)
    return (f"move {money(move.get('amount'), currency, 0)} from {move.get('from', '?')} to "
            f"{move.get('to', '?')}")


def scenario_rows(results: dict) -> list[tuple[str, str, dict]]:
    """``(label, results path, scenario)`` for each scenario, then the optimised allocation."""
    budget = mapping(results.get("budget_scenarios"))
    rows = [(str(s.get("name", f"scenario {i + 1}")), f"budget_scenarios.scenarios.{i}", s)
            for i, s in enumerate(sequence(budget.get("scenarios"))) if isinstance(s, dict)]
    if isinstance(budget.get("optimised"), dict):
        rows.append(("optimised", "budget_scenarios.optimised",
                     budget["optimised"]))
    return rows
