"""The bottom line as finance reads it: per paid channel and community, revenue and profit per
dollar with their intervals, a verdict against break-even, and the caveats beside the numbers.

Reads a ``results.json`` dict only (the ``comparison`` rows, ``gross_margin`` and the
diagnostics); the terminal (``roi run``), the HTML summary and the Excel "Bottom line" sheet all
show :func:`bottom_line`, so they cannot disagree.

* Break-even is 1/``gross_margin`` revenue per dollar; with no margin configured the figures are
  revenue, break-even is 1 and each line shows the margin at which it would break even.
* A number from a model that did not converge is shown with ``NOT CONVERGED`` beside it and never
  gets a verdict: a paid channel of an unconverged media-mix model shows the model's ROAS
  (the ``comparison`` row itself holds null there).
* Caveats are the ones that bear on that line's number: the pre-trend test of the preferred
  revenue-lift method (for communities), a refused or unconverged per-community fit, the
  sensitivity summary when the run has one, and the comparison row's own notes.

Examples
--------
>>> results = {"gross_margin": 0.5, "comparison": [{
...     "name": "forum", "kind": "community", "cost": 100.0,
...     "revenue_per_dollar": {"estimate": 3.0, "low": 2.5, "high": 3.5, "interval": "95% CI"},
...     "profit_per_dollar": {"estimate": 1.5, "low": 1.25, "high": 1.75, "interval": "95% CI"},
...     "verdict": "pays back", "notes": []}]}
>>> [(line.name, line.verdict, line.converged) for line in bottom_line(results)]
[('forum', 'pays back', True)]
>>> print(bottom_line_text(results).splitlines()[0])
Bottom line. Gross margin 50%: spend pays back when each $1 brings more than $2.00 of revenue, i.e. more than $1 of gross profit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from roi.comparison import (
    CANNOT_TELL,
    add_bottom_line,
    break_even,
    gross_margin_of,
    scale_entry,
)

NOT_CONVERGED_FLAG = "NOT CONVERGED"
PRETREND_LEVEL = 0.05   # the DiD's own warning level (roi.revenue_lift.did.PRETREND_LEVEL)
REVENUE = "community_revenue_lift"


@dataclass
class Line:
    """One row of the bottom line; ``*_key`` is the results path of the entry shown (None when
    the number is computed here, e.g. profit from an unconverged model's ROAS)."""

    name: str
    kind: str
    cost: float | None
    revenue_per_dollar: dict[str, Any] | None
    profit_per_dollar: dict[str, Any] | None
    break_even_margin: float | None
    verdict: str
    reason: str
    converged: bool
    basis: str
    caveats: list[str] = field(default_factory=list)
    revenue_key: str | None = None
    profit_key: str | None = None
    cost_key: str | None = None


def _finite(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _entry(value: Any) -> dict[str, Any] | None:
    """A contract entry with finite estimate, low and high, else None."""
    if isinstance(value, Mapping) and all(_finite(value.get(k))
                                          for k in ("estimate", "low", "high")):
        return dict(value)
    return None


def _get(value: Any, *path: str) -> Any:
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def bottom_line(results: Mapping[str, Any]) -> list[Line]:
    """One :class:`Line` per ``comparison`` row (paid channels, then communities).

    Rows written before the bottom line existed (no ``verdict``) are judged here the same way.
    """
    margin = gross_margin_of(results)
    lines = []
    for index, stored in enumerate(results.get("comparison") or []):
        if not isinstance(stored, Mapping):
            continue
        row = dict(stored)
        if "verdict" not in row:
            row = add_bottom_line(row, margin=margin)
        maker = {"paid": _paid_line, "program": _program_line}.get(row.get("kind"),
                                                                   _community_line)
        line = maker(results, row, index=index, margin=margin)
        if "profit_per_dollar" not in stored:   # computed here: no results path to cite
            line.profit_key = None
        lines.append(line)
    return _pooled_caveats_once(lines)


def _pooled_caveats_once(lines: list[Line]) -> list[Line]:
    """A caveat about all communities (the pooled lift's sensitivity) in full on the first
    community line only, referred to on the others: with 30 communities the same two long
    sentences on every row made the table unreadable."""
    first: dict[str, str] = {}
    for line in lines:
        if line.kind != "community":
            continue
        kept = []
        for caveat in line.caveats:
            label, _, body = caveat.partition(": ")
            if "all communities" not in label or body not in first:
                first.setdefault(body, line.name)
                kept.append(caveat)
            else:
                kept.append(f"{label}: as on the {first[body]} line")
        line.caveats = kept
    return lines


def _base(row: dict[str, Any], *, index: int, basis: str) -> Line:
    revenue, profit = _entry(row.get("revenue_per_dollar")), _entry(row.get("profit_per_dollar"))
    base = f"comparison.{index}"
    return Line(name=str(row.get("name")), kind=str(row.get("kind")),
                cost=row.get("cost") if _finite(row.get("cost")) else None,
                revenue_per_dollar=revenue, profit_per_dollar=profit,
                break_even_margin=row.get("break_even_margin"),
                verdict=str(row.get("verdict") or CANNOT_TELL),
                reason=str(row.get("verdict_reason") or ""),
                converged=row.get("converged") is not False and all(
                    _get(row, f, "converged") is not False
                    for f in ("incremental_revenue", "revenue_per_dollar")),
                basis=basis, caveats=[str(n) for n in row.get("notes") or []],
                revenue_key=f"{base}.revenue_per_dollar" if revenue else None,
                profit_key=f"{base}.profit_per_dollar" if profit else None,
                cost_key=f"{base}.cost")


def media_unconverged(results: Mapping[str, Any], channel: str) -> bool:
    """True when the media-mix model (or this channel's ROAS) failed its convergence gate.
    A spend-only block (model not run) has no ROAS and is "not estimated", not unconverged."""
    paid = results.get("paid_media") or {}
    roas = _get(paid, "channels", channel, "roas")
    if not isinstance(roas, Mapping):
        return False
    model = _get(results, "diagnostics", "paid_media_mmm", "converged")
    return paid.get("converged") is False or roas.get("converged") is False or model is False


def _paid_line(results: Mapping[str, Any], row: dict[str, Any], *, index: int,
               margin: float | None) -> Line:
    paid = results.get("paid_media") or {}
    line = _base(row, index=index,
                 basis=str(paid.get("method") or row.get("method") or "no model fitted"))
    if media_unconverged(results, line.name):
        line.converged = False
        line.verdict, line.reason = CANNOT_TELL, "the media-mix model did not converge"
        roas = _entry(_get(paid, "channels", line.name, "roas"))
        if line.revenue_per_dollar is None and roas is not None:
            # Shown, flagged, so the reader sees what the failed model would say.
            line.revenue_per_dollar = roas
            line.revenue_key = f"paid_media.channels.{line.name}.roas"
            line.caveats = [c for c in line.caveats if not c.startswith("no ROAS")]
            line.caveats.insert(0, "the media-mix model did not converge: its ROAS shown for "
                                   "reference only")
            line.profit_per_dollar = scale_entry(roas, margin) if margin else None
            if margin is None and roas["estimate"] > 0:
                line.break_even_margin = 1.0 / roas["estimate"]
    elif line.revenue_per_dollar is None:
        line.caveats += [str(w) for w in paid.get("warnings") or []
                         if str(w) not in line.caveats]
    return line


def _community_line(results: Mapping[str, Any], row: dict[str, Any], *, index: int,
                    margin: float | None) -> Line:
    lift = results.get(REVENUE) or {}
    preferred = lift.get("preferred")
    source = _get(results, "community_retention_lift", "retention_revenue", "source")
    basis = (f"lift: {preferred} (preferred)" if preferred else "no causal lift")
    basis += f" + retention: {source}" if source else ""
    line = _base(row, index=index, basis=basis)
    own = _get(lift, "by_community", line.name)
    money = _get(results, "community_retention_lift", "retention_revenue", "by_community",
                 line.name, "revenue")
    # A refused fit (null numbers, the reason given) is "not estimated", not a failed gate.
    failed = [e for e in (own, money) if _get(e, "converged") is False and not _get(e, "refused")]
    if failed:
        line.converged = False
    if not line.converged and line.verdict != CANNOT_TELL:
        line.verdict, line.reason = CANNOT_TELL, "from a model that did not converge"
    if isinstance(own, Mapping) and own.get("refused"):
        line.caveats.append(f"{preferred} lift refused for {line.name}: {own['refused']}")
    line.caveats = [*pretrend_caveats(results, preferred), *sensitivity_caveats(
        results, line.name), *line.caveats]
    return line


def _program_line(results: Mapping[str, Any], row: dict[str, Any], *, index: int,
                  margin: float | None) -> Line:
    """A programme's line (issue 20): its own DiD, its notes as caveats."""
    line = _base(row, index=index, basis="programme DiD among members")
    line.caveats = [str(n) for n in row.get("notes") or []]
    return line


def pretrend_caveats(results: Mapping[str, Any], method: str | None) -> list[str]:
    """The pre-trend test of the revenue-lift ``method`` when it rejects or could not be run.

    Examples
    --------
    >>> pretrend_caveats({"diagnostics": {"revenue_did": {"checks": {"pretrend_event": {
    ...     "p_value": 0.018}}}}}, "did")
    ['pre-trend test rejects parallel trends (p = 0.018): members differed before joining, so the did lift may be biased']
    """
    test = _get(results, "diagnostics", f"revenue_{method}", "checks", "pretrend_event")
    if not isinstance(test, Mapping):
        return []
    p_value = test.get("p_value")
    if _finite(p_value) and p_value < PRETREND_LEVEL:
        return [f"pre-trend test rejects parallel trends (p = {p_value:.3f}): members differed "
                f"before joining, so the {method} lift may be biased"]
    if p_value is None:
        return [f"no pre-trend test could be computed for the {method} lift: parallel trends "
                "unchecked"]
    return []


def sensitivity_caveats(results: Mapping[str, Any], community: str) -> list[str]:
    """The sensitivity summary of the revenue lift (this community's; else the run's, labelled
    as such), and the robustness value's benchmark sentence (of the pooled lift), if any.

    Examples
    --------
    >>> sensitivity_caveats({"community_revenue_lift": {"sensitivity": {"summary": "M.",
    ...     "robustness_value": {"method": "aipw", "benchmark_summary": "B."}}}}, "discord")
    ['sensitivity (all communities, none for discord alone, no month before joining with enough members): M.', 'sensitivity (aipw, all communities): B.']
    """
    sensitivity = _get(results, REVENUE, "sensitivity")
    own = _get(sensitivity, "by_community", community, "summary")
    pooled = _get(sensitivity, "summary")
    if isinstance(own, str) and own:
        out = [f"sensitivity: {own}"]
    elif isinstance(pooled, str) and pooled:
        # A small community's event study has no usable lead (roi.sensitivity.parallel_trends
        # MIN_TREATED): the pooled sentence must not read as this community's own.
        out = [f"sensitivity (all communities, none for {community} alone, no month before "
               f"joining with enough members): {pooled}"]
    else:
        out = []
    benchmark = _get(sensitivity, "robustness_value", "benchmark_summary")
    if isinstance(benchmark, str) and benchmark:
        method = _get(sensitivity, "robustness_value", "method")
        out.append(f"sensitivity ({method}, all communities): {benchmark}")
    return out


def yardstick(results: Mapping[str, Any], currency: str = "$") -> str:
    """One sentence: the margin, the break-even, and whether the figures are revenue.

    Examples
    --------
    >>> yardstick({})
    'No gross margin configured: the figures are revenue, and spend pays back when each $1 brings more than $1.00 of revenue (before the cost of goods); "margin to break even" is the gross margin at which it would.'
    """
    margin = gross_margin_of(results)
    level = break_even(margin)
    if margin is None:
        return ("No gross margin configured: the figures are revenue, and spend pays back when "
                f"each {currency}1 brings more than {currency}{level:.2f} of revenue (before the "
                'cost of goods); "margin to break even" is the gross margin at which it would.')
    return (f"Gross margin {margin:.0%}: spend pays back when each {currency}1 brings more than "
            f"{currency}{level:.2f} of revenue, i.e. more than {currency}1 of gross profit.")


# --------------------------------------------------------------------------- plain text


def money_text(value: Any, currency: str = "$", decimals: int = 2) -> str:
    """``$1,234.50``, ``-$3.30``; ``n/a`` for a missing number."""
    if not _finite(value):
        return "n/a"
    return f"{'-' if value < 0 else ''}{currency}{abs(value):,.{decimals}f}"


def entry_text(entry: Mapping[str, Any] | None, currency: str = "$", *,
               converged: bool = True) -> str:
    """``$8.58 [$2.59 to $14.56]``, with NOT CONVERGED beside a number of a failed model.

    Examples
    --------
    >>> entry_text({"estimate": 0.72, "low": 0.5, "high": 0.9}, converged=False)
    '$0.72 [$0.50 to $0.90] NOT CONVERGED'
    """
    if entry is None:
        return "n/a" if converged else f"n/a ({NOT_CONVERGED_FLAG})"
    text = (f"{money_text(entry['estimate'], currency)} [{money_text(entry['low'], currency)} "
            f"to {money_text(entry['high'], currency)}]")
    return text if converged else f"{text} {NOT_CONVERGED_FLAG}"


def margin_text(value: Any) -> str:
    """The margin at which a line would break even: ``"35%"``; above 100% no margin does."""
    if not _finite(value):
        return "n/a"
    return f"{value:.0%}" if value <= 1 else f"{value:.0%} (no margin pays back)"


def line_cells(line: Line, *, margin: float | None, currency: str = "$") -> list[str]:
    """The text cells of one line: name, kind, cost, revenue per dollar, profit per dollar (or
    the margin to break even), verdict, based on, caveats."""
    second = (entry_text(line.profit_per_dollar, currency, converged=line.converged)
              if margin is not None else margin_text(line.break_even_margin))
    return [line.name, line.kind, money_text(line.cost, currency, 0),
            entry_text(line.revenue_per_dollar, currency, converged=line.converged), second,
            line.verdict, line.basis, "; ".join(line.caveats)]


def headers(results: Mapping[str, Any], currency: str = "$") -> list[str]:
    second = (f"profit per {currency}1 [interval]" if gross_margin_of(results) is not None
              else "margin to break even")
    return ["name", "kind", "cost", f"revenue per {currency}1 [interval]", second, "verdict",
            "based on", "caveats"]


def interval_note(lines: list[Line]) -> str:
    """Which interval each kind of line carries (one vocabulary, said once)."""
    labels: dict[str, list[str]] = {}
    for line in lines:
        label = (line.revenue_per_dollar or {}).get("interval")
        if label and line.kind not in labels.setdefault(label, []):
            labels[label].append(line.kind)
    return "; ".join(f"{' and '.join(kinds)} {label}" for label, kinds in labels.items())


def bottom_line_text(results: Mapping[str, Any], currency: str = "$") -> str:
    """The bottom line as an aligned plain-text table (what ``roi run`` prints); names and
    notes come from the data, so e-mails and URL secrets are masked as in the reports."""
    # Imported here: roi.reports imports this module.
    from roi.reports.base import redact

    return _text_table(results, currency, clean=redact)


def _text_table(results: Mapping[str, Any], currency: str, *, clean) -> str:
    lines = bottom_line(results)
    title = f"Bottom line. {yardstick(results, currency)}"
    if not lines:
        return f"{title}\n  No paid channel or community to compare in this run."
    margin = gross_margin_of(results)
    table = [headers(results, currency),
             *([clean(c) for c in line_cells(line, margin=margin, currency=currency)]
               for line in lines)]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    out = [title]
    for cells in table:   # the caveats column last and unpadded: it sits on the number's line
        out.append("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=False))
                   + "  " + cells[-1])
    note = interval_note(lines)
    if note:
        out.append(f"  Intervals: {note}.")
    if not all(line.converged for line in lines):
        out.append(f"  {NOT_CONVERGED_FLAG}: from a model that failed its convergence gate; "
                   "do not use it for decisions.")
    return "\n".join(o.rstrip() for o in out)
