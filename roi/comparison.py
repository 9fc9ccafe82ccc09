"""Paid channels and communities side by side: cost, incremental revenue, revenue per dollar.

Reads a ``results.json`` dict only (contract §4, ``comparison``); it never fits a model.

* A **paid** row costs the channel's spend in the window; its incremental revenue is the
  media-mix model's contribution (``paid_media.channels[ch].incremental_revenue``, or ROAS x
  spend when the block has none) and its revenue per dollar is the ROAS. Without a converged
  model the row has nulls and says why in ``notes``: no number is made up.
* A **community** row costs ``data.community_costs[c]``; its incremental revenue is the preferred
  revenue lift per member-month x the community's member-months plus the revenue of the extra
  retained customer-months; ``parts`` shows both. The two parts' intervals are combined by an
  independent normal approximation (see :func:`combine_independent`), labelled
  ``"95% CI (combined)"`` (the reports' glossary explains it).
* A **program** row (issue 20, ``community_engagement.programs``) costs the programme's
  ``community_costs`` rows (category = its name); its incremental revenue is the programme DiD
  per member-month x the programme's member-months. Both are *part of* their community's cost
  and return, not in addition: the row shows what the programme's own dollars return (the
  budget leaves it out).
* **Referral revenue** (``community_engagement.acquisition.referrals.referral_revenue``) sits
  beside a community row as ``referral_revenue``, never added to its incremental revenue: the
  reader sees how much of a return it would be, under the rule the block states.
* Where the media-mix model's own community term disagrees with the customer-level number
  (their intervals do not overlap) the row carries a note; :func:`find_disagreements` lists
  them for the run's diagnostics.
* The **bottom line** of each row (:func:`add_bottom_line`): with ``gross_margin`` configured,
  profit per dollar = margin x revenue per dollar (gross profit caused per dollar spent; the net
  return is that minus 1), and a ``verdict`` against break-even at 1/margin revenue per dollar:
  "pays back" when the whole interval is above it, "does not pay back" when the whole interval
  is below, else "cannot tell" (also when the row has no number). Without a margin the figures
  stay revenue, break-even is 1 and ``break_even_margin`` = 1 / revenue per dollar.

Examples
--------
>>> results = {
...     "data": {"community_costs": {"forum": 1000.0}},
...     "community_revenue_lift": {
...         "preferred": "did", "member_months_by_community": {"forum": 10},
...         "by_community": {"forum": {"estimate": 30.0, "low": 10.0, "high": 50.0,
...                                    "interval": "95% CI"}}},
...     "community_retention_lift": {"retention_revenue": {"by_community": {"forum": {
...         "revenue": {"estimate": 700.0, "low": 400.0, "high": 1000.0,
...                     "interval": "95% CI"}}}}},
...     "paid_media": {"channels": {"search": {"spend": 500.0, "roas": None}}}}
>>> rows = build_comparison(results)
>>> [(r["name"], r["kind"], r["cost"]) for r in rows]
[('search', 'paid', 500.0), ('forum', 'community', 1000.0)]
>>> rows[0]["revenue_per_dollar"] is None
True
>>> rows[1]["incremental_revenue"]["estimate"], rows[1]["revenue_per_dollar"]["estimate"]
(1000.0, 1.0)
>>> round(rows[1]["incremental_revenue"]["high"], 2)  # 1000 + sqrt(200**2 + 300**2)
1360.56
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from scipy.stats import norm

Entry = dict[str, Any]
COMBINED_LEVEL = 0.95
# One vocabulary with the reports' glossary (roi/reports/base.py INTERVALS): a 95% CI of a sum
# of independent parts, each part's interval read as a normal distribution.
COMBINED_LABEL = "95% CI (combined)"
NOT_IDENTIFIED = ("not identified: this channel's spend never changes, so its ROAS is the "
                  "prior's (and any lift test's), not learnt from the weekly data")
NO_ROAS = "no ROAS: the media-mix model {why}, so this channel's return is not estimated"


def _finite(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _usable(entry: Any) -> bool:
    """A contract entry with a finite estimate, low and high."""
    return isinstance(entry, Mapping) and all(_finite(entry.get(k))
                                              for k in ("estimate", "low", "high"))


def scale_entry(entry: Mapping[str, Any], factor: float) -> Entry:
    """An entry times a known positive constant (the interval keeps its label).

    Examples
    --------
    >>> scale_entry({"estimate": 2.0, "low": 1.0, "high": 3.0, "interval": "94% HDI"}, 10.0)
    {'estimate': 20.0, 'low': 10.0, 'high': 30.0, 'interval': '94% HDI'}
    """
    if factor < 0:
        raise ValueError(f"factor must be >= 0, got {factor}")
    return {"estimate": entry["estimate"] * factor, "low": entry["low"] * factor,
            "high": entry["high"] * factor, "interval": entry.get("interval")}


def interval_level(label: str | None) -> float:
    """The coverage of an interval label: ``"94% HDI"`` -> 0.94 (0.95 when it has no number).

    Examples
    --------
    >>> interval_level("94% HDI"), interval_level("95% CI"), interval_level(None)
    (0.94, 0.95, 0.95)
    """
    found = re.search(r"(\d+(?:\.\d+)?)\s*%", label or "")
    return float(found.group(1)) / 100 if found else COMBINED_LEVEL


def combine_independent(entries: Sequence[Mapping[str, Any]]) -> Entry:
    """The sum of independent estimates with a 95% interval by the normal approximation.

    Each side of each interval is read as ``z(level) x sd`` (``level`` from its label, so a 94%
    HDI and a 95% CI can be added); the lower and upper half-widths are combined separately
    (root sum of squares) so an asymmetric interval stays asymmetric.

    Examples
    --------
    >>> a = {"estimate": 10.0, "low": 7.0, "high": 13.0, "interval": "95% CI"}
    >>> b = {"estimate": 5.0, "low": 1.0, "high": 9.0, "interval": "95% CI"}
    >>> combine_independent([a, b])
    {'estimate': 15.0, 'low': 10.0, 'high': 20.0, 'interval': '95% CI (combined)'}
    """
    z_out = float(norm.ppf(0.5 + COMBINED_LEVEL / 2))
    estimate, below, above = 0.0, 0.0, 0.0
    for entry in entries:
        z_in = float(norm.ppf(0.5 + interval_level(entry.get("interval")) / 2))
        estimate += entry["estimate"]
        below += ((entry["estimate"] - entry["low"]) / z_in) ** 2
        above += ((entry["high"] - entry["estimate"]) / z_in) ** 2
    return {"estimate": estimate, "low": estimate - z_out * math.sqrt(below),
            "high": estimate + z_out * math.sqrt(above), "interval": COMBINED_LABEL}


def build_comparison(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``comparison`` list of ``results.json``: paid channels, then communities.

    Parameters
    ----------
    results : dict
        A ``results.json`` document (contract §3 and §4).

    Returns
    -------
    list of dict
        One row per paid channel and per community: ``name``, ``kind`` (``paid`` or
        ``community``), ``cost``, ``incremental_revenue``, ``revenue_per_dollar`` (entries, or
        ``None`` when not estimated), ``method``, ``parts`` and ``notes``.

    Examples
    --------
    >>> build_comparison({"paid_media": {"channels": {}}})
    []
    """
    disagreements = {d["name"]: d["message"] for d in find_disagreements(results)}
    rows = [paid_row(results, channel)
            for channel in (results.get("paid_media") or {}).get("channels") or {}]
    for community in _communities(results):
        row = community_row(results, community)
        if community in disagreements:
            row["notes"].append(disagreements[community])
        add_referral_revenue(results, row)
        rows.append(row)
    rows += [program_row(results, name) for name in _programs(results)]
    margin = gross_margin_of(results)
    return [add_bottom_line(row, margin=margin) for row in rows]


PAYS_BACK, DOES_NOT_PAY_BACK, CANNOT_TELL = "pays back", "does not pay back", "cannot tell"


def gross_margin_of(results: Mapping[str, Any]) -> float | None:
    """The document's ``gross_margin`` when it is a number in (0, 1], else None (not set).

    Examples
    --------
    >>> gross_margin_of({"gross_margin": 0.6}), gross_margin_of({}), gross_margin_of({"gross_margin": 0})
    (0.6, None, None)
    """
    value = results.get("gross_margin")
    return float(value) if _finite(value) and 0 < value <= 1 else None


def break_even(margin: float | None) -> float:
    """Revenue per dollar at which spend pays for itself: 1/margin (1 when no margin is set).

    Examples
    --------
    >>> round(break_even(0.6), 4), break_even(None)
    (1.6667, 1.0)
    """
    return 1.0 if margin is None else 1.0 / margin


def judge(per_dollar: Any, *, break_even_at: float, refused: str | None = None) -> tuple[str, str]:
    """The verdict on one revenue-per-dollar entry against break-even, and why in one clause.

    Examples
    --------
    >>> judge({"estimate": 3.0, "low": 2.0, "high": 4.0, "interval": "95% CI"}, break_even_at=1.5)[0]
    'pays back'
    >>> judge({"estimate": 1.0, "low": 0.5, "high": 2.0}, break_even_at=1.5)
    ('cannot tell', 'the interval (0.50 to 2.00) includes break-even (1.50)')
    >>> judge(None, break_even_at=1.0, refused="the model did not converge")
    ('cannot tell', 'the model did not converge')
    """
    if refused or not _usable(per_dollar):
        return CANNOT_TELL, refused or "revenue per dollar not estimated"
    low, high = per_dollar["low"], per_dollar["high"]
    span = f"({low:.2f} to {high:.2f})"
    if low > break_even_at:
        return PAYS_BACK, f"the whole interval {span} is above break-even ({break_even_at:.2f})"
    if high < break_even_at:
        return (DOES_NOT_PAY_BACK,
                f"the whole interval {span} is below break-even ({break_even_at:.2f})")
    return CANNOT_TELL, f"the interval {span} includes break-even ({break_even_at:.2f})"


def add_bottom_line(row: dict[str, Any], *, margin: float | None) -> dict[str, Any]:
    """``row`` with ``profit_per_dollar``, ``verdict`` and ``verdict_reason`` (and, when no
    margin is configured, ``break_even_margin``: the margin at which the row would break even,
    above 1 when no margin can make it pay back).

    Examples
    --------
    >>> row = {"revenue_per_dollar": {"estimate": 2.5, "low": 2.0, "high": 3.0, "interval": "95% CI"},
    ...        "notes": []}
    >>> done = add_bottom_line(row, margin=0.6)
    >>> done["verdict"], done["profit_per_dollar"]["low"]
    ('pays back', 1.2)
    >>> add_bottom_line(row, margin=None)["break_even_margin"]
    0.4
    """
    per_dollar = row.get("revenue_per_dollar")
    refused = None
    if not _usable(per_dollar):
        refused = "; ".join(row.get("notes") or []) or "revenue per dollar not estimated"
    elif row.get("converged") is False or per_dollar.get("converged") is False:
        refused = "from a model that did not converge"
    row["verdict"], row["verdict_reason"] = judge(per_dollar, break_even_at=break_even(margin),
                                                  refused=refused)
    # An unconverged row keeps its numbers (shown flagged), but never gets a verdict.
    usable = _usable(per_dollar)
    row["profit_per_dollar"] = (scale_entry(per_dollar, margin)
                                if usable and margin is not None else None)
    if margin is None:
        estimate = per_dollar["estimate"] if usable else None
        row["break_even_margin"] = 1.0 / estimate if estimate and estimate > 0 else None
    return row


def _communities(results: Mapping[str, Any]) -> list[str]:
    """Every community any block names, in the data block's order first."""
    data = results.get("data") or {}
    lift = results.get("community_revenue_lift") or {}
    names = list(data.get("communities") or [])
    for source in (data.get("community_costs"), lift.get("member_months_by_community"),
                   lift.get("by_community")):
        names += [str(n) for n in source or {} if str(n) not in names]
    return names


def _row(name: str, kind: str, cost: float | None) -> dict[str, Any]:
    return {"name": name, "kind": kind, "cost": cost, "incremental_revenue": None,
            "revenue_per_dollar": None, "method": None, "parts": {}, "notes": []}


def paid_row(results: Mapping[str, Any], channel: str) -> dict[str, Any]:
    """One paid channel's comparison row (nulls and a note when there is no usable ROAS)."""
    paid = results.get("paid_media") or {}
    block = paid["channels"][channel]
    spend = block.get("spend")
    row = _row(channel, "paid", spend)
    row["method"] = paid.get("method")
    roas = block.get("roas")
    # A spend-only block (model not run, or not fittable) has converged false and no ROAS at
    # all: that is "not fitted", not a failed convergence gate.
    fitted = isinstance(roas, Mapping)
    if fitted and (paid.get("converged") is False or roas.get("converged") is False):
        row["notes"].append(NO_ROAS.format(why="did not converge"))
        return row
    if not _usable(roas) or not _finite(spend):
        row["notes"].append(NO_ROAS.format(why="was not fitted"))
        return row
    revenue = block.get("incremental_revenue")
    row["incremental_revenue"] = dict(revenue) if _usable(revenue) else scale_entry(roas, spend)
    row["revenue_per_dollar"] = dict(roas)
    if block.get("identified") is False:
        row["notes"].append(NOT_IDENTIFIED)
    if _usable(block.get("marginal_roas")):
        row["marginal_revenue_per_dollar"] = dict(block["marginal_roas"])
    return row


def community_parts(results: Mapping[str, Any], community: str) -> tuple[dict[str, Entry],
                                                                         list[str]]:
    """The lift and retention revenue of one community, and notes on any part that is missing."""
    lift = results.get("community_revenue_lift") or {}
    retention = ((results.get("community_retention_lift") or {}).get("retention_revenue")
                 or {}).get("by_community") or {}
    parts, notes = {}, []
    per_month = (lift.get("by_community") or {}).get(community)
    months = (lift.get("member_months_by_community") or {}).get(community)
    if lift.get("preferred") is None:
        notes.append("no causal revenue-lift estimate in this run (only the naive one, which "
                     "is biased upwards): incremental revenue not estimated")
    elif not _usable(per_month) or not _finite(months):
        notes.append(f"no revenue lift per member-month or member-months for {community}: "
                     "incremental revenue not estimated")
    else:
        parts["lift_revenue"] = scale_entry(per_month, float(months))
    money = (retention.get(community) or {}).get("revenue")
    if _usable(money):
        parts["retention_revenue"] = dict(money)
    else:
        notes.append(f"no retention revenue for {community}: incremental revenue not estimated")
    return parts, notes


def community_row(results: Mapping[str, Any], community: str) -> dict[str, Any]:
    """One community's row: lift on member-months plus retention revenue, per dollar of cost."""
    cost = ((results.get("data") or {}).get("community_costs") or {}).get(community)
    row = _row(community, "community", cost)
    parts, notes = community_parts(results, community)
    row["parts"], row["notes"] = parts, notes
    preferred = (results.get("community_revenue_lift") or {}).get("preferred")
    source = ((results.get("community_retention_lift") or {}).get("retention_revenue")
              or {}).get("source")
    row["method"] = f"lift ({preferred}) x member-months + retention revenue ({source})"
    if notes:
        return row
    row["incremental_revenue"] = combine_independent(list(parts.values()))
    if _finite(cost) and cost > 0:
        row["revenue_per_dollar"] = scale_entry(row["incremental_revenue"], 1.0 / cost)
    else:
        row["notes"].append(f"no cost recorded for {community}: revenue per dollar not defined")
    return row


PROGRAM_NOTE = ("part of the community's cost and return, not in addition: the programme's "
                "own dollars against the extra revenue of entering it (DiD among members)")


def _programs(results: Mapping[str, Any]) -> list[str]:
    block = ((results.get("community_engagement") or {}).get("programs") or {})
    return sorted(block.get("by_program") or {})


def program_row(results: Mapping[str, Any], program: str) -> dict[str, Any]:
    """One programme's row (issue 20): DiD lift x programme member-months per programme dollar.

    Examples
    --------
    >>> results = {"community_engagement": {"programs": {"by_program": {"vip": {
    ...     "cost": 100.0, "member_months": 10, "lift_revenue": {
    ...         "estimate": 300.0, "low": 100.0, "high": 500.0, "interval": "95% CI"}}}}}}
    >>> row = program_row(results, "vip")
    >>> row["kind"], row["revenue_per_dollar"]["estimate"]
    ('program', 3.0)
    """
    entry = results["community_engagement"]["programs"]["by_program"][program]
    cost = entry.get("cost")
    row = _row(program, "program", cost)
    row["method"] = "programme DiD among members x programme member-months"
    row["notes"].append(PROGRAM_NOTE)
    revenue = entry.get("lift_revenue")
    if not _usable(revenue):
        row["notes"].append(f"no programme lift for {program}: incremental revenue not estimated")
        return row
    row["incremental_revenue"] = dict(revenue)
    row["parts"] = {"lift_revenue": dict(revenue)}
    if _finite(cost) and cost > 0:
        row["revenue_per_dollar"] = scale_entry(revenue, 1.0 / cost)
    else:
        row["notes"].append(f"no cost recorded for programme {program} (no community_costs "
                            "row with that category): revenue per dollar not defined")
    return row


def add_referral_revenue(results: Mapping[str, Any], row: dict[str, Any]) -> None:
    """Put the community's referral revenue beside its row (shown separately, not added)."""
    referrals = (((results.get("community_engagement") or {}).get("acquisition") or {})
                 .get("referrals") or {})
    money = referrals.get("referral_revenue") or {}
    entry = (money.get("by_community") or {}).get(row["name"])
    if not _usable(entry):
        return
    row["referral_revenue"] = dict(entry)
    row["notes"].append(f"referral revenue {entry['estimate']:,.0f} "
                        f"({entry['low']:,.0f} to {entry['high']:,.0f}) shown separately, not "
                        f"in the return: {money.get('rule')}")


def find_disagreements(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Communities whose media-mix term and customer-level revenue have disjoint intervals.

    The two answer the same question (revenue the community caused in the window) from
    different data: weekly totals against customers' own histories. Disjoint intervals mean at
    least one of them is wrong, which a reader must be told.

    Returns
    -------
    list of dict
        ``name``, ``mmm`` and ``customer_level`` entries and a ``message``; empty when the
        media-mix model did not converge.

    Examples
    --------
    >>> find_disagreements({"paid_media": {"converged": False}})
    []
    """
    paid = results.get("paid_media") or {}
    if paid.get("converged") is False:   # an unconverged model's numbers prove nothing
        return []
    found = []
    for community, block in (paid.get("communities") or {}).items():
        theirs = (block or {}).get("incremental_revenue")
        parts, notes = community_parts(results, community)
        if notes or not _usable(theirs) or theirs.get("converged") is False:
            continue
        ours = combine_independent(list(parts.values()))
        if theirs["high"] < ours["low"] or theirs["low"] > ours["high"]:
            found.append({"name": community, "mmm": dict(theirs), "customer_level": ours,
                          "message": _disagreement_message(community, theirs, ours)})
    return found


def _disagreement_message(community: str, mmm: Mapping[str, Any],
                          ours: Mapping[str, Any]) -> str:
    return (f"{community}: the media-mix model's community term ({mmm['estimate']:,.0f}, "
            f"{mmm['low']:,.0f} to {mmm['high']:,.0f}, {mmm.get('interval')}) and the "
            f"customer-level estimate ({ours['estimate']:,.0f}, {ours['low']:,.0f} to "
            f"{ours['high']:,.0f}) do not overlap: at least one of them is biased")


def comparison_table(results: Mapping[str, Any]):
    """The comparison as a DataFrame (built from the results when their list is empty).

    Examples
    --------
    >>> comparison_table({"paid_media": {"channels": {"tv": {"spend": 5.0}}}})[["name", "cost"]]
      name  cost
    0   tv   5.0
    """
    import pandas as pd

    rows = results.get("comparison") or build_comparison(results)
    records = []
    for row in rows:
        revenue, per_dollar = row.get("incremental_revenue"), row.get("revenue_per_dollar")
        records.append({
            "name": row["name"], "kind": row["kind"], "cost": row.get("cost"),
            "incremental_revenue": (revenue or {}).get("estimate"),
            "revenue_low": (revenue or {}).get("low"), "revenue_high": (revenue or {}).get("high"),
            "revenue_per_dollar": (per_dollar or {}).get("estimate"),
            "per_dollar_low": (per_dollar or {}).get("low"),
            "per_dollar_high": (per_dollar or {}).get("high"),
            "interval": (revenue or {}).get("interval"),
            "profit_per_dollar": (row.get("profit_per_dollar") or {}).get("estimate"),
            "verdict": row.get("verdict"), "notes": "; ".join(row.get("notes", []))})
    return pd.DataFrame.from_records(records, columns=[
        "name", "kind", "cost", "incremental_revenue", "revenue_low", "revenue_high",
        "revenue_per_dollar", "per_dollar_low", "per_dollar_high", "interval",
        "profit_per_dollar", "verdict", "notes"])
