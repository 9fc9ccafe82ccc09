"""What kind of community pays (issue 20): a small panel over ``community_engagement``.

A view selector (engagement tiers, programmes, acquisition), a table of the chosen view and,
for tiers, the lift per member-month of each tier with its 95% interval. Read from
``results.json`` only; tiers are chosen by members, not assigned, and the panel says so.

Examples
--------
>>> panel = engagement_panel({"community_engagement": {"tiers": {"by_tier": {"lurker": {
...     "members": 3, "member_months": 9, "lift_per_member_month": {
...         "estimate": 5.0, "low": 1.0, "high": 9.0, "interval": "95% CI"}}}}}})
>>> panel.view.value, panel.rows()[0][0]
('tiers', 'lurker')
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
from matplotlib.figure import Figure

from roi.widgets._common import (
    MEMBER_COLOUR,
    STYLE,
    figure_output,
    finite,
    html_table,
    interval_text,
    money,
    ratio,
    results_of,
    symbol,
)

CHOSEN = ("Tiers are chosen by members, not assigned: a tier's lift is what membership earns "
          "among members who behave that way early on, not what making members more active "
          "would earn.")
VIEWS = [("Engagement tiers", "tiers"), ("Programmes", "programs"),
         ("Acquisition", "acquisition")]


class EngagementPanel(widgets.VBox):
    """View dropdown, table and (tiers) a lift chart, from ``community_engagement``.

    Attributes
    ----------
    view : Dropdown
    table : HTML
    plot : Output
    """

    def __init__(self, source: Any) -> None:
        self.results = results_of(source)
        self.block = self.results.get("community_engagement") or {}
        self.currency = (self.results.get("data") or {}).get("currency")
        self.view = widgets.Dropdown(options=VIEWS, value="tiers", description="View")
        self.table, self.plot = widgets.HTML(), widgets.Output()
        self.view.observe(self._update, names="value")
        super().__init__(children=[self.view, self.table, self.plot])
        self._update()

    def __repr__(self) -> str:
        return f"EngagementPanel [{self.view.value}]: {len(self.rows())} rows"

    def rows(self) -> list[list[str]]:
        """The table's rows for the current view."""
        fmt = lambda v: money(v, self.currency)  # noqa: E731
        part = self.block.get(self.view.value) or {}
        if self.view.value == "tiers":
            return [[name, f"{e.get('members', 0):,}", *_lift_cells(e, fmt),
                     ratio((e.get("hazard_ratio") or {}).get("hazard_ratio")),
                     _hazard_interval(e.get("hazard_ratio")),
                     _share(e.get("share_of_incremental_revenue"))]
                    for name, e in (part.get("by_tier") or {}).items()]
        if self.view.value == "programs":
            return [[name, f"{e.get('members', 0):,}", *_lift_cells(e, fmt), fmt(e.get("cost")),
                     _number((e.get("revenue_per_dollar") or {}).get("estimate"))]
                    for name, e in (part.get("by_program") or {}).items()]
        prospects = (part.get("prospects") or {}).get("by_community") or {}
        rows = [[f"joined before buying: {c}", f"{e.get('customers', 0):,}", fmt(e.get("revenue"))]
                for c, e in prospects.items()]
        referrals = part.get("referrals") or {}
        if "referred_customers" in referrals:
            rows.append(["referred customers", f"{referrals['referred_customers']:,}",
                         fmt(referrals.get("revenue_of_referred"))])
        return rows

    def _update(self, _change: Any = None) -> None:
        headers = {"tiers": ["Tier", "Members", "Lift per member-month", "Interval",
                             "Churn hazard ratio", "Interval", "Share of incremental revenue"],
                   "programs": ["Programme", "Members", "Lift per member-month", "Interval",
                                "Cost", "Revenue per dollar"],
                   "acquisition": ["Group (attributed, not causal)", "Customers", "Revenue"]}
        note = {"tiers": CHOSEN, "programs": (self.block.get("programs") or {}).get("rule", ""),
                "acquisition": (self.block.get("acquisition") or {}).get("rule", "")}
        rows = self.rows()
        # STYLE: widgets.HTML gets none of JupyterLab's table CSS (cells ran together)
        self.table.value = (STYLE + f"<p>{html.escape(note[self.view.value])}</p>"
                            + (html_table(headers[self.view.value], rows) if rows else "")
                            + self._missing_text(bool(rows)))
        chart = self._chart() if self.view.value == "tiers" and rows else None
        self.plot.outputs = (chart,) if chart else ()

    def _missing_text(self, any_rows: bool) -> str:
        """Why the view (or its referrals) has nothing: the block's own refusal."""
        part = self.block.get(self.view.value) or {}
        if self.view.value == "acquisition":
            part = part.get("referrals") or {}
            label = "Referrals not estimated"
        else:
            label = "Not estimated in this run"
        reason = part.get("refused") or ("" if any_rows or self.view.value == "acquisition"
                                         else "nothing in results.json")
        return f'<p class="roi-warn">{label}: {html.escape(reason)}.</p>' if reason else ""

    def _chart(self) -> dict[str, Any] | None:
        tiers = (self.block.get("tiers") or {}).get("by_tier") or {}
        names, points = [], []
        for name, entry in tiers.items():
            lift = entry.get("lift_per_member_month") or {}
            if all(finite(lift.get(k)) for k in ("estimate", "low", "high")):
                names.append(name)
                points.append((lift["estimate"], lift["low"], lift["high"]))
        if not names:
            return None   # no tier with a finite lift: the table says why
        figure = Figure(figsize=(5, 2.6))
        axes = figure.subplots()
        for i, (estimate, low, high) in enumerate(points):
            axes.errorbar([i], [estimate], yerr=[[estimate - low], [high - estimate]], fmt="o",
                          color=MEMBER_COLOUR, capsize=4)
        axes.set_xticks(range(len(names)), names)
        axes.axhline(0, color="#999999", linewidth=0.8)
        axes.set_ylabel(f"lift per member-month ({symbol(self.currency)})")
        axes.set_xlim(-0.5, len(names) - 0.5)   # two tiers sat at the frame's edges
        left_out = [n for n in tiers if n not in names]
        if left_out:
            axes.set_title(f"not estimated: {', '.join(left_out)}", fontsize=8, loc="left")
        return figure_output(figure, "; ".join(f"{n}: {p[0]:.1f}" for n, p in
                                                zip(names, points, strict=True)))


def _lift_cells(entry: dict[str, Any], fmt) -> list[str]:
    """Lift and its interval, or "not estimated" and the reason the block gives."""
    lift = entry.get("lift_per_member_month") or {}
    if not finite(lift.get("estimate")):
        return ["not estimated", lift.get("refused") or "no finite estimate"]
    return [fmt(lift.get("estimate")), interval_text(lift, fmt)]


def _hazard_interval(entry: dict[str, Any] | None) -> str:
    entry = entry or {}
    if not finite(entry.get("low")):
        return "—"
    return f"{entry['low']:.2f} to {entry['high']:.2f} ({entry.get('interval', '95% CI')})"


def _share(value: Any) -> str:
    return f"{100 * value:.0f}%" if finite(value) else "—"


def _number(value: Any) -> str:
    return f"{value:.2f}" if finite(value) else "—"


def engagement_panel(source: Any) -> EngagementPanel:
    """The panel for a finished run (folder, ``results.json`` path or dict)."""
    return EngagementPanel(source)
