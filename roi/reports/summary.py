"""The plain-language summary: one sentence per topic, numbers kept as :class:`Shown`.

Examples
--------
>>> from roi.reports.base import plain
>>> results = {"community_revenue_lift": {"preferred": "did", "estimates": {
...     "did": {"estimate": 42.5, "low": 5.7, "high": 79.3, "interval": "95% CI"}}}}
>>> plain(revenue_summary(results))[:50]
'Each community member-month adds $42 (95% CI $6 to'
"""

from __future__ import annotations

import math
from typing import Any

from roi.bottom_line import Line, bottom_line, interval_note, margin_text, yardstick
from roi.comparison import gross_margin_of
from roi.reports.base import (
    NOT_CONVERGED,
    NOT_ESTIMATED,
    RETENTION,
    REVENUE,
    Cell,
    Fragment,
    Raw,
    Shown,
    esc,
    fixed,
    get,
    headline_decimals,
    is_converged,
    mapping,
    method_label,
    money,
    number,
    preferred_method,
    sequence,
    table,
)
from roi.reports.budget_page import chance
from roi.reports.media import (
    comparison_rows,
    entry_ok,
    media_converged,
    move_text,
    scenario_rows,
)


def _money_shown(key: str, value: float | None, currency: str, decimals: int, *,
                 converged: bool = True, css: str = "headline") -> Shown:
    return Shown(key, value, money(value, currency, decimals), converged, css)


def revenue_summary(results: dict, currency: str = "$") -> list[Fragment]:
    """"Each community member-month adds $42 (95% CI $6 to $79) by ...", or why it cannot."""
    section = get(results, REVENUE)
    estimates = mapping(get(section, "estimates"))
    preferred = preferred_method(results, REVENUE)
    entry = estimates.get(preferred) if preferred != "naive" else None
    naive = number(get(estimates, "naive", "estimate"))
    if not isinstance(entry, dict):
        if naive is None:
            return [f"Community revenue lift: {NOT_ESTIMATED}."]
        key = f"{REVENUE}.estimates.naive.estimate"
        return ["No causal revenue estimate in this run; the dashboard (naive) comparison says ",
                _money_shown(key, naive, currency, headline_decimals(naive)),
                " per member-month, which mixes the community's effect with who chooses to join."]
    base = f"{REVENUE}.estimates.{preferred}"
    value = number(entry.get("estimate"))
    ok = is_converged(results, REVENUE, preferred, entry)
    decimals = headline_decimals(value)
    parts: list[Fragment] = [
        "Each community member-month adds " if ok else
        f"The preferred method ({method_label(preferred)}) did not converge; it would say each "
        "member-month adds ",
        _money_shown(f"{base}.estimate", value, currency, decimals, converged=ok),
        f" ({entry.get('interval', 'interval')} ",
        _money_shown(f"{base}.low", number(entry.get("low")), currency, decimals),
        " to ", _money_shown(f"{base}.high", number(entry.get("high")), currency, decimals), ")",
        f" by the preferred method ({method_label(preferred)})" if ok else "",
    ]
    parts += _naive_revenue_clause(naive, value if ok else None, currency, decimals)
    parts += _revenue_caveats(section, entry, ok, currency)
    return parts


def _naive_revenue_clause(naive: float | None, value: float | None, currency: str,
                          decimals: int) -> list[Fragment]:
    if naive is None:
        return ["."]
    shown = _money_shown(f"{REVENUE}.estimates.naive.estimate", naive, currency, decimals)
    if value is not None and naive > value and naive > 0:
        share = "mostly" if naive - value > 0.5 * naive else "partly"
        return ["; the dashboard comparison says ", shown,
                f", which {share} reflects that the best customers join."]
    return ["; the dashboard (naive) comparison says ", shown, "."]


def _revenue_caveats(section: Any, entry: dict, ok: bool, currency: str) -> list[Fragment]:
    low, high, value = (number(entry.get(k)) for k in ("low", "high", "estimate"))
    out: list[Fragment] = []
    if ok and low is not None and high is not None and low <= 0 <= high:
        out.append(" The interval includes zero: the data cannot rule out no effect.")
    months = number(get(section, "member_months"))
    if ok and months and value is not None and low is not None and high is not None:
        key = f"{REVENUE}.member_months"
        out += [" Over ", Shown(key, months, f"{months:,.0f}"),
                f" member-months that is about {money(value * months, currency, 0)} of extra "
                f"revenue ({money(low * months, currency, 0)} to "
                f"{money(high * months, currency, 0)})."]
    return out


def churn_change(ratio: float) -> str:
    """``28% less``, ``9% more``; ``about as often`` when the change rounds to 0% (was "0% more").
    """
    change = (1.0 - ratio) * 100
    if round(abs(change)) == 0:
        return "about as often"
    return f"{abs(change):.0f}% {'less' if change >= 0 else 'more'}"


def retention_summary(results: dict) -> list[Fragment]:
    """"Members churn 28% less (hazard ratio 0.72, 95% CI 0.62-0.84); a naive ..."."""
    estimates = mapping(get(results, RETENTION, "estimates"))
    preferred = preferred_method(results, RETENTION)
    entry = estimates.get(preferred) if preferred != "naive" else None
    naive = number(get(estimates, "naive", "hazard_ratio"))
    naive_key = f"{RETENTION}.estimates.naive.hazard_ratio"
    if not isinstance(entry, dict) or number(entry.get("hazard_ratio")) is None:
        if naive is None:
            return [f"Community retention lift: {NOT_ESTIMATED}."]
        return ["No causal retention estimate in this run; a naive comparison says members "
                f"churn {churn_change(naive)} (hazard ratio ",
                Shown(naive_key, naive, fixed(naive), css="headline"),
                "), which overstates the effect because customers must survive to join."]
    base = f"{RETENTION}.estimates.{preferred}"
    ratio = number(entry["hazard_ratio"])
    ok = is_converged(results, RETENTION, preferred, entry)
    parts: list[Fragment] = [
        f"Members churn {churn_change(ratio)}" if ok else
        f"The preferred retention model ({method_label(preferred)}) did not converge; it would "
        f"say members churn {churn_change(ratio)}",
        " (hazard ratio ", Shown(f"{base}.hazard_ratio", ratio, fixed(ratio), ok, "headline"),
        f", {entry.get('interval', 'interval')} ",
        Shown(f"{base}.low", number(entry.get("low")), fixed(entry.get("low")), css="headline"),
        "-",
        Shown(f"{base}.high", number(entry.get("high")), fixed(entry.get("high")),
              css="headline"),
        f") by the preferred method ({method_label(preferred)})" if ok else ")",
    ]
    low, high = number(entry.get("low")), number(entry.get("high"))
    # As for the revenue lift: an interval across 1 must not read as a retention effect.
    covers = (" The interval includes 1: the data cannot rule out that membership leaves "
              "churn unchanged." if ok and low is not None and high is not None
              and low <= 1.0 <= high else "")
    if naive is None:
        return [*parts, "." + covers]
    why = (" because customers must survive to join"
           if naive > 0 and ratio > 0 and abs(math.log(naive)) > abs(math.log(ratio)) else "")
    return [*parts, f"; a naive comparison says {churn_change(naive)} (hazard ratio ",
            Shown(naive_key, naive, fixed(naive), css="headline"), f"){why}.{covers}"]


def paid_media_summary(results: dict, currency: str = "$") -> list[Fragment]:
    channels = get(results, "paid_media", "channels")
    if not isinstance(channels, dict) or not channels:
        # Say why (e.g. no ad_spend table): a refusal without its reason reads like a failure.
        why = [str(w) for w in sequence(get(results, "paid_media", "warnings")) if w]
        return [f"Paid media: {NOT_ESTIMATED}" + (f" ({why[0]})." if why else ".")]
    spend = [number(get(c, "spend")) for c in channels.values()]
    total = sum(s for s in spend if s is not None)
    parts: list[Fragment] = [f"Paid media: {money(total, currency, 0)} spent on "
                             f"{len(channels)} channel{'s' if len(channels) != 1 else ''}"]
    with_roas = [(name, c["roas"]) for name, c in channels.items()
                 if isinstance(get(c, "roas"), dict) and number(c["roas"].get("estimate"))
                 is not None]
    if not with_roas:
        return [*parts, f"; return on ad spend (ROAS) {NOT_ESTIMATED}."]
    parts.append("; each dollar returns ")
    ranked = sorted(((not is_converged(results, "paid_media", name, roas), -roas["estimate"],
                      name, roas) for name, roas in with_roas), key=lambda r: r[:2])
    for index, (bad, _, name, roas) in enumerate(ranked):
        ok = not bad
        key = f"paid_media.channels.{name}.roas.estimate"
        parts += ["; " if index else "", Shown(key, roas["estimate"],
                                               money(roas["estimate"], currency), ok, "headline"),
                  f" on {name} ({roas.get('interval', 'interval')} "
                  f"{money(roas.get('low'), currency)} to {money(roas.get('high'), currency)})"]
    return [*parts, "."]


def community_summary(results: dict, currency: str = "$") -> list[Fragment]:
    """"Each discord member-month adds $47 (95% CI -$4 to $98); each forum ..."."""
    preferred = preferred_method(results, REVENUE)
    groups = mapping(get(results, REVENUE, "by_community"))
    rows = [(name, entry) for name, entry in groups.items()
            if number(get(entry, "estimate")) is not None]
    if preferred is None or preferred == "naive" or not rows:
        return []
    ok = is_converged(results, REVENUE, preferred, get(results, REVENUE, "estimates", preferred))
    parts: list[Fragment] = ["Per community: " if ok else
                             "Per community (from a model that did not converge): "]
    for index, (name, entry) in enumerate(rows):
        key, value = f"{REVENUE}.by_community.{name}", number(entry["estimate"])
        decimals = headline_decimals(value)
        parts += ["; " if index else "", f"each {name} member-month adds ",
                  _money_shown(f"{key}.estimate", value, currency, decimals, converged=ok),
                  f" ({entry.get('interval', 'interval')} "
                  f"{money(entry.get('low'), currency, decimals)} to "
                  f"{money(entry.get('high'), currency, decimals)})"]
    return [*parts, "."]


def _per_dollar(index: int, row: dict, ok: bool, currency: str) -> list[Fragment]:
    rpd = row["revenue_per_dollar"]
    return [Shown(f"comparison.{index}.revenue_per_dollar.estimate", number(rpd["estimate"]),
                  money(rpd["estimate"], currency), ok, "headline"),
            f" ({rpd.get('interval', 'interval')} {money(rpd.get('low'), currency)} to "
            f"{money(rpd.get('high'), currency)})"]


def comparison_summary(results: dict, currency: str = "$") -> list[Fragment]:
    """"Per dollar, the discord community returns $3.42 (...), against $2.40 for search ..."."""
    rows = [(i, row, ok) for i, row, ok in comparison_rows(results)
            if number(get(row, "revenue_per_dollar", "estimate")) is not None]
    if not rows:
        return [f"Community against paid media, revenue per dollar: {NOT_ESTIMATED} (it needs "
                "both community costs with lift and paid-media ROAS)."]
    rows.sort(key=lambda item: (not item[2], -item[1]["revenue_per_dollar"]["estimate"]))
    parts: list[Fragment] = ["Per dollar spent, "]
    communities = [r for r in rows if r[1].get("kind") != "paid"]
    paid = [r for r in rows if r[1].get("kind") == "paid"]
    for position, (index, row, ok) in enumerate(communities):
        parts += ["; " if position else "", f"the {row.get('name')} community returns ",
                  *_per_dollar(index, row, ok, currency)]
    parts.append(", against " if communities and paid else "paid media returns " if paid else "")
    for position, (index, row, ok) in enumerate(paid):
        parts += ["; " if position else "", *_per_dollar(index, row, ok, currency),
                  f" for {row.get('name')}"]
    return [*parts, "."]


def budget_summary(results: dict, currency: str = "$") -> list[Fragment]:
    """"Moving $50,000 from display to discord would change revenue by $12,000 (...)"."""
    ok = media_converged(results)
    parts: list[Fragment] = []
    for label, key, scenario in scenario_rows(results)[-3:]:
        change = scenario.get("revenue_change")
        if number(get(change, "estimate")) is None:
            continue
        moves = "; ".join(move_text(m, currency) for m in sequence(scenario.get("moves")))
        what = ("Re-allocating the same paid total within the bounds"
                if key.endswith("optimised") else f"Scenario '{label}' ({moves})")
        probability = number(scenario.get("probability_positive"))
        parts += [" " if parts else "", f"{what} would change revenue by ",
                  Shown(f"{key}.revenue_change.estimate", number(change["estimate"]),
                        money(change["estimate"], currency, 0), entry_ok(change, ok),
                        "headline"),
                  f" ({change.get('interval', 'interval')} "
                  f"{money(change.get('low'), currency, 0)} to "
                  f"{money(change.get('high'), currency, 0)}"
                  + (f"; a gain in {chance(probability)} of draws" if probability is not None
                     else "") + ")" + _assumed(results, scenario) + "."]
    return parts


def _assumed(results: dict, scenario: dict) -> str:
    """The community-response assumption, beside a scenario that moves money into or out of a
    community (see roi/budget.py)."""
    left_out = mapping(get(results, "budget_scenarios", "optimiser_scope", "left_out"))
    touched = {m.get(k) for m in sequence(scenario.get("moves")) if isinstance(m, dict)
               for k in ("from", "to")} & set(left_out)
    if not touched:
        return ""
    return (f", assuming {', '.join(sorted(touched))} earns along a square-root response "
            "(the next dollar half of today's revenue per dollar; measured only at today's "
            "cost)")


def summary_sentences(results: dict, currency: str = "$") -> list[list[Fragment]]:
    """The plain-language summary, one sentence (list of fragments) per topic."""
    sentences = [revenue_summary(results, currency), community_summary(results, currency),
                 retention_summary(results), comparison_summary(results, currency),
                 paid_media_summary(results, currency), budget_summary(results, currency)]
    return [s for s in sentences if s]


def _per_dollar_cell(key: str | None, entry: dict | None, *, converged: bool,
                     currency: str) -> Raw:
    """``$8.58 [$2.59 to $14.56]``; the estimate keyed to its results path when it has one."""
    flag = "" if converged else f' <span class="not-converged">{esc(NOT_CONVERGED)}</span>'
    if entry is None:
        return Raw(esc("n/a") + flag)
    span = esc(f" [{money(entry['low'], currency)} to {money(entry['high'], currency)}]")
    if key is None:   # computed here (profit of a failed model's ROAS): no results path
        return Raw(esc(money(entry["estimate"], currency)) + span + flag)
    shown = Shown(f"{key}.estimate", number(entry["estimate"]),
                  money(entry["estimate"], currency), converged)
    return Raw(shown.html() + span)


def _bottom_line_row(line: Line, *, margin: float | None, currency: str) -> list[Cell]:
    cost = (Shown(line.cost_key, line.cost, money(line.cost, currency, 0))
            if line.cost is not None and line.cost_key else "n/a")
    second: Cell = (_per_dollar_cell(line.profit_key, line.profit_per_dollar,
                                     converged=line.converged, currency=currency)
                    if margin is not None else margin_text(line.break_even_margin))
    return [line.name, line.kind, cost,
            _per_dollar_cell(line.revenue_key, line.revenue_per_dollar,
                             converged=line.converged, currency=currency),
            second, Raw(f"<strong>{esc(line.verdict)}</strong>"), "; ".join(line.caveats)]


def bottom_line_context(results: dict, currency: str = "$") -> dict | None:
    """The bottom line that opens the Summary (the same lines ``roi run`` prints): per paid
    channel and community, revenue and profit per dollar, verdict, caveats beside them, for
    summary.html.j2 (``yardstick``, ``table`` markup, ``intervals``); None without lines."""
    from markupsafe import Markup

    lines = bottom_line(results)
    if not lines:
        return None
    margin = gross_margin_of(results)
    second = (f"Profit per {currency}1 [interval]" if margin is not None
              else "Margin to break even")
    rows = [_bottom_line_row(line, margin=margin, currency=currency) for line in lines]
    return {"yardstick": yardstick(results, currency), "intervals": interval_note(lines),
            "table": Markup(table(["Name", "Kind", "Cost", f"Revenue per {currency}1 [interval]",
                                   second, "Verdict", "Caveats"], rows, numeric_from=2))}
