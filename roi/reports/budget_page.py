"""The budget page: current against recommended spend per channel, the expected gain with its
interval, what the optimiser may move and why, and the scenarios with their assumptions
(``results.json`` ``budget_scenarios``, written by :mod:`roi.budget`).

:func:`recommendation` reads the block once for every output (HTML, Excel); the HTML layout is
``templates/budget.html.j2``.

Examples
--------
>>> recommendation({}) is None
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from roi.comparison import gross_margin_of
from roi.reports import plots
from roi.reports.base import (
    Cell,
    Raw,
    Shown,
    as_list,
    esc,
    figure,
    get,
    mapping,
    money,
    number,
    sequence,
    shown,
    status,
    table,
)
from roi.reports.media import entry_ok, media_converged, move_text, scenario_rows

SURE = 0.9          # share of draws above 0 from which a gain is called likely
KEY = "budget_scenarios.optimised"


@dataclass
class ChannelMove:
    """One name's current and recommended spend, and the revenue change of that move."""

    name: str
    kind: str
    current: float | None
    recommended: float | None
    change: dict | None
    moved: bool
    why_not: str = ""

    @property
    def delta(self) -> float | None:
        if self.current is None or self.recommended is None:
            return None
        return self.recommended - self.current

    @property
    def changed(self) -> bool:
        """Moved by more than a dollar and 0.01% (the optimiser's polish leaves cents)."""
        return (self.moved and self.delta is not None
                and abs(self.delta) > max(1.0, 1e-4 * (self.current or 0.0)))


@dataclass
class Recommendation:
    """What the budget page says first."""

    rows: list[ChannelMove]
    gain: dict | None
    probability: float | None
    converged: bool
    margin: float | None
    rule: str | None
    left_out: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """"likely gain" / "cannot tell" / "likely loss" (from the share of draws above 0)."""
        if not self.converged or self.probability is None:
            return "cannot tell"
        if self.probability >= SURE:
            return "likely gain"
        return "likely loss" if self.probability <= 1 - SURE else "cannot tell"

    def moves_text(self, currency: str) -> str:
        """"social -$60,000; video +$60,000" for the names whose spend changes."""
        parts = [f"{r.name} {'+' if r.delta > 0 else '-'}{money(abs(r.delta), currency, 0)}"
                 for r in self.rows if r.changed]
        return "; ".join(parts) or "no change"


def recommendation(results: dict) -> Recommendation | None:
    """The optimised allocation against today's, or None when the run has none."""
    budget = mapping(results.get("budget_scenarios"))
    optimised = budget.get("optimised")
    if not isinstance(optimised, dict):
        return None
    current, spend = mapping(budget.get("current")), mapping(optimised.get("spend"))
    by_name, bounds = mapping(optimised.get("by_name")), mapping(optimised.get("bounds"))
    scope = mapping(budget.get("optimiser_scope"))
    left_out = {str(k): str(v) for k, v in mapping(scope.get("left_out")).items()}
    paid = mapping(get(results, "paid_media", "channels"))
    rows = [ChannelMove(name=name, kind="paid" if name in paid else "community",
                        current=number(value), recommended=number(spend.get(name, value)),
                        change=by_name.get(name) if isinstance(by_name.get(name), dict) else None,
                        moved=name in bounds, why_not=left_out.get(name, ""))
            for name, value in current.items()]
    change = optimised.get("revenue_change")
    return Recommendation(
        rows=rows, gain=change if isinstance(change, dict) else None,
        probability=number(optimised.get("probability_positive")),
        converged=entry_ok(change, media_converged(results)), margin=gross_margin_of(results),
        rule=scope.get("rule") if isinstance(scope.get("rule"), str) else None,
        left_out=left_out, notes=[str(n) for n in as_list(budget.get("notes"))])


def chance(probability: float) -> str:
    """A share of draws as a percentage that never rounds to a certainty it is not.

    Examples
    --------
    >>> chance(0.995), chance(0.004), chance(0.57), chance(1.0)
    ('>99%', '<1%', '57%', '100%')
    """
    if 0.99 < probability < 1:
        return ">99%"
    if 0 < probability < 0.01:
        return "<1%"
    return f"{probability:.0%}"


def headline(rec: Recommendation, currency: str) -> list[str | Shown]:
    """The page's first sentence: what to do, what it gains, how sure."""
    gain = rec.gain or {}
    fmt = lambda v: money(v, currency, 0)  # noqa: E731
    amount = Shown(f"{KEY}.revenue_change.estimate", number(gain.get("estimate")),
                   fmt(gain.get("estimate")), rec.converged, "headline")
    interval = (f" ({gain.get('interval', 'interval')} {fmt(gain.get('low'))} to "
                f"{fmt(gain.get('high'))})")
    sure = (f"; the gain is above zero in {chance(rec.probability)} of the posterior draws"
            if rec.probability is not None else "")
    profit = (f"; at the {rec.margin:.0%} gross margin that is {fmt(rec.margin * gain['estimate'])}"
              " of gross profit (total spend unchanged)"
              if rec.margin is not None and number(gain.get("estimate")) is not None else "")
    moves = rec.moves_text(currency)
    if rec.verdict == "likely gain":
        return [f"Recommended: {moves} (same total). Expected revenue gain ", amount,
                f"{interval}{sure}{profit}."]
    opening = ("No clear gain from moving money" if rec.verdict == "cannot tell"
               else "Keep today's split")
    if not rec.converged:
        opening = "No recommendation: the media-mix model did not converge"
    return [f"{opening}: the best split the optimiser found ({moves}, same total) changes "
            "revenue by ", amount, f"{interval}{sure}{profit}. Today's split is as good as "
            "any the data can tell apart."]


def spend_rows(rec: Recommendation, currency: str) -> list[list[Cell]]:
    """Channel, kind, current, recommended, change, revenue change (low, high, interval)."""
    fmt = lambda v: money(v, currency, 0)  # noqa: E731
    out: list[list[Cell]] = []
    for row in rec.rows:
        change = (row.change or {}) if row.changed else {}
        estimate = (Shown(f"{KEY}.by_name.{row.name}.estimate", number(change.get("estimate")),
                          fmt(change.get("estimate")), rec.converged)
                    if change else ("no change" if row.moved else "not moved"))
        out.append([row.name, row.kind, shown(f"budget_scenarios.current.{row.name}",
                                               row.current, fmt),
                    shown(f"{KEY}.spend.{row.name}", row.recommended, fmt)
                    if row.moved else "not moved",
                    (("+" if row.delta > 0 else "") + fmt(row.delta)) if row.changed else "",
                    estimate,
                    shown(f"{KEY}.by_name.{row.name}.low", change.get("low"), fmt)
                    if change else "",
                    shown(f"{KEY}.by_name.{row.name}.high", change.get("high"), fmt)
                    if change else "",
                    change.get("interval", "") if change else "",
                    "left out: response assumed (see below)" if row.why_not
                    else ("optimised" if row.moved else "")])
    return out


def scenario_table(results: dict, currency: str) -> tuple[list[list[Cell]], list[plots.Row]]:
    """Each scenario with its revenue change, how sure, and the assumption it rests on."""
    ok, fmt = media_converged(results), (lambda v: money(v, currency, 0))
    communities = set(mapping(get(results, "budget_scenarios", "optimiser_scope", "left_out")))
    rows: list[list[Cell]] = []
    chart: list[plots.Row] = []
    for label, key, scenario in scenario_rows(results):
        change = scenario.get("revenue_change")
        good = entry_ok(change, ok)
        moves = sequence(scenario.get("moves"))
        touched = {m.get("to") for m in moves if isinstance(m, dict)} | {
            m.get("from") for m in moves if isinstance(m, dict)}
        assumption = ("community revenue follows an assumed square-root response (next dollar "
                      "earns half of today's revenue per dollar)" if touched & communities
                      else "response curves of the media-mix model")
        probability = number(scenario.get("probability_positive"))
        cells = ([shown(f"{key}.revenue_change.{f}", get(change, f), fmt)
                  for f in ("estimate", "low", "high")] if isinstance(change, dict)
                 else ["not estimated", "", ""])
        if cells and isinstance(cells[0], Shown) and not good:
            cells[0] = Shown(cells[0].key, cells[0].value, cells[0].text, False)
        rows.append([label, "; ".join(move_text(m, currency) for m in moves)
                     or "best split of the same total", *cells,
                     get(change, "interval") or "",
                     chance(probability) if probability is not None else "n/a",
                     Raw(f'<span class="caveat">{esc(assumption)}</span>'), status(good)])
        chart.append((label, number(get(change, "estimate")), number(get(change, "low")),
                      number(get(change, "high")), good))
    return rows, chart


def budget_context(results: dict, currency: str) -> dict[str, Any] | None:
    """Everything ``budget.html.j2`` shows, as escaped markup; None without a budget block."""
    from markupsafe import Markup

    from roi.reports.base import render

    budget = mapping(results.get("budget_scenarios"))
    if not scenario_rows(results) and not mapping(budget.get("current")):
        return None
    rec = recommendation(results)
    rows, chart = scenario_table(results, currency)
    context: dict[str, Any] = {"headline": None, "spend_table": None, "spend_chart": None,
                               "rule": None, "left_out": [], "notes": budget.get("notes") or [],
                               "total": None}
    if rec is not None:
        context.update(
            headline=Markup(render(headline(rec, currency))), rule=rec.rule,
            left_out=sorted(rec.left_out.items()), verdict=rec.verdict,
            total=Markup(shown(f"{KEY}.total", get(budget, "optimised", "total"),
                               lambda v: money(v, currency, 0)).html()),
            spend_table=Markup(table(
                ["Name", "Kind", "Current spend", "Recommended", "Change",
                 "Revenue change", "Low", "High", "Interval", "Why"],
                spend_rows(rec, currency), numeric_from=2)),
            spend_chart=Markup(figure(plots.budget_chart(
                [(r.name, r.current, r.recommended) for r in rec.rows if r.moved],
                currency=currency), "Current against recommended spend per channel")))
    context["notes"] = [str(n) for n in as_list(context["notes"])]
    context["scenario_table"] = Markup(table(
        ["Scenario", "Moves", "Revenue change", "Low", "High", "Interval",
         "Chance of a gain", "Assumes", "Status"], rows, numeric_from=2))
    context["scenario_chart"] = Markup(figure(plots.interval_chart(
        chart, reference=0.0, xlabel=f"revenue change ({currency})",
        title="Revenue change per scenario"), "Revenue change per scenario"))
    return context
