"""Retention explorer: landmark retention curves of members vs non-members, and hazard ratios.

A plain curve of ever-members against never-members credits members with the months before
they joined (immortal time). The landmark curves read membership at a fixed point (3, 6, 12
months after first seen) and follow both groups from there; see
:mod:`roi.retention.survival_curves`.

Examples
--------
>>> from roi.widgets import retention_explorer
>>> explorer = retention_explorer("../out")     # a finished run's folder    # doctest: +SKIP
>>> explorer.landmark.value = 12                                            # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import pandas as pd
from matplotlib.figure import Figure

from roi.widgets._common import (
    ALL,
    MEMBER_COLOUR,
    OTHER_COLOUR,
    STYLE,
    ExportReport,
    community_options,
    converged_of,
    csv_link,
    export_folder,
    figure_output,
    html_table,
    interval_text,
    ratio,
    results_of,
    text_output,
    warning_list,
)


def _landmark_label(month: float) -> str:
    if month == 0:
        return "none: all customers (Kaplan–Meier)"
    return f"{month:g} months after first seen"


class RetentionExplorer(widgets.VBox):
    """Community and landmark dropdowns, curves with bands, hazard ratios and retention table.

    Everything is read from ``results.json`` (``community_retention_lift``: ``estimates``,
    ``estimates_by_community``, ``landmark_retention.curves``), so nothing is refitted.

    Attributes
    ----------
    community, landmark : Dropdown
    table : HTML
        Hazard ratios of every retention estimator and retention at the horizons.
    plot : Output
        Retention curves with pointwise 95% bands.
    curves : DataFrame
        The landmark curves read at whole months (``landmark_month``, ``group``, ``month``,
        ``customers``, ``survival``, ``low``, ``high``).
    export : ExportReport
        Writes the reports of the run into a chosen folder.
    """

    def __init__(self, source: Any) -> None:
        self.results = results = results_of(source)
        self.section = results.get("community_retention_lift") or {}
        self.estimates: dict[str, dict] = self.section.get("estimates") or {}
        landmark = self.section.get("landmark_retention") or {}
        self.curves = pd.DataFrame((landmark.get("curves") or {}).get("points") or [],
                                   columns=CURVE_COLUMNS)
        self.horizons = sorted({r["horizon_month"] for r in landmark.get("retention") or []})
        groups = {g for entries in self._by_community().values() for g in entries}
        groups |= {g.removeprefix("member: ") for g in self.curves["group"].unique()
                   if g.startswith("member: ")}
        months = [_plain(m) for m in sorted(self.curves["landmark_month"].unique()) if m != 0]
        months.append(0)
        self.community = widgets.Dropdown(options=community_options(groups),
                                          description="Community")
        self.landmark = widgets.Dropdown(options=[(_landmark_label(m), m) for m in months],
                                         description="Landmark",
                                         style={"description_width": "initial"})
        self.table = widgets.HTML()
        self.plot = widgets.Output()
        self.export = ExportReport(results, folder=export_folder(source))
        self.community.observe(self._update, names="value")
        self.landmark.observe(self._update, names="value")
        super().__init__(children=[widgets.HBox([self.community, self.landmark]),
                                   self.plot, self.table, self.export])
        self._update()

    def _by_community(self) -> dict[str, dict[str, Any]]:
        found = self.section.get("estimates_by_community")
        if found is None and self.section.get("preferred"):
            found = {self.section["preferred"]: self.section.get("by_community") or {}}
        return found or {}

    def entry(self, method: str, community: str = ALL) -> dict[str, Any] | None:
        if community == ALL:
            return self.estimates.get(method)
        return (self._by_community().get(method) or {}).get(community)

    def _groups(self) -> list[str]:
        if self.landmark.value == 0:
            return ["all"]
        member = "member" if self.community.value == ALL else f"member: {self.community.value}"
        return [member, "non-member"]

    def __repr__(self) -> str:  # text/plain outside a widget frontend (cut at 110 chars)
        parts = []
        for name in self.estimates:
            entry = self.entry(name, self.community.value)
            if entry:
                parts.append(f"{name} {ratio(entry.get('hazard_ratio'))}")
        return f"RetentionExplorer [{self.community.label}]: hazard ratio " + ", ".join(parts)

    def _update(self, _change: Any = None) -> None:
        self.table.value = self._table_html()
        self.plot.outputs = (self._plot_output(),)

    def retention_rows(self) -> pd.DataFrame:
        """Retention of the groups shown at each horizon, read off the monthly curves."""
        curves = self.curves
        kept = curves[(curves["landmark_month"] == self.landmark.value)
                      & curves["group"].isin(self._groups())
                      & curves["month"].isin(self.horizons)]
        order = kept["group"].map({g: i for i, g in enumerate(self._groups())})
        return kept.assign(order=order).sort_values(["order", "month"]).drop(columns="order")

    def _table_html(self) -> str:
        community, scope = self.community.value, self.community.label
        rows, warnings = [], []
        preferred = self.section.get("preferred")
        diagnostics = self.results.get("diagnostics") or {}
        for name in self.estimates:
            entry = self.entry(name, community)
            value = ratio(entry.get("hazard_ratio")) if entry else "—"
            label = f"{name} (preferred)" if name == preferred else name
            ok = converged_of(self.results, f"retention_{name}") and (
                entry or {}).get("converged", True) is not False
            rows.append([label, value, interval_text(entry, ratio), "yes" if ok else "NO"])
            warnings += [w if w.startswith(f"{name}:") else f"{name}: {w}" for w in
                         (diagnostics.get(f"retention_{name}") or {}).get("warnings", [])]
        html = STYLE + (f"<h4>Churn hazard ratio, members vs non-members: {scope}</h4>"
                        + html_table(["method", "hazard ratio", "interval", "converged"], rows)
                        + "<p>Below 1: members churn less. The naive ratio treats members as "
                          "members from their first day as customers (immortal time).</p>")
        kept = self.retention_rows()
        retention_rows = [[r.group, f"{r.month:g}", f"{r.customers:,}", _percent(r.survival),
                           f"{_percent(r.low)} to {_percent(r.high)}"]
                          for r in kept.itertuples()]
        html += (f"<h4>Retention, landmark: {_landmark_label(self.landmark.value)}</h4>"
                 + html_table(["group", "months after landmark", "customers at landmark",
                               "retention", "95% CI"], retention_rows)
                 + csv_link(kept, f"retention_{self.landmark.value:g}_"
                                  f"{community or 'all'}.csv"))
        return html + warning_list(warnings)

    def _plot_output(self) -> dict[str, Any]:
        curves = self.curves
        month, groups = self.landmark.value, self._groups()
        shown = curves[(curves["landmark_month"] == month) & curves["group"].isin(groups)]
        if shown.empty:
            return text_output(f"No retention curves for {groups} at landmark {month} in this "
                               "run.")
        figure = _curves_figure(shown, groups, title=f"Retention: {self.community.label}, "
                                f"landmark {_landmark_label(month)}")
        sizes = ", ".join(f"{g}: {int(shown.loc[shown['group'] == g, 'customers'].max()):,} "
                          f"customers" for g in groups if (shown["group"] == g).any())
        return figure_output(figure, f"Retention curves ({self.community.label}, landmark "
                                     f"{month:g} months): {sizes}.")


CURVE_COLUMNS = ["landmark_month", "group", "month", "customers", "survival", "low", "high"]


def _plain(month: Any) -> int | float:
    month = float(month)
    return int(month) if month.is_integer() else month


def _percent(value: float) -> str:
    return "—" if pd.isna(value) else f"{value:.1%}"


def _curves_figure(curves: pd.DataFrame, groups: list[str], *, title: str) -> Figure:
    figure = Figure(figsize=(8, 3.6))
    ax = figure.add_subplot()
    for group in groups:
        rows = curves[curves["group"] == group]
        colour = OTHER_COLOUR if group == "non-member" else MEMBER_COLOUR
        ax.fill_between(rows["month"], rows["low"], rows["high"], step="post", color=colour,
                        alpha=0.2)
        ax.step(rows["month"], rows["survival"], where="post", color=colour, label=group)
    ax.set_xlabel("months after landmark")
    ax.set_ylabel("still a customer")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower left")
    return figure


def retention_explorer(source: Any) -> RetentionExplorer:
    """Community and landmark dropdowns over the run's retention results.

    Parameters
    ----------
    source : str, Path, dict or RunOutputs
        A finished run: its output folder, its ``results.json``, the loaded dict, or what
        :func:`roi.run.run_models` returned.

    Returns
    -------
    RetentionExplorer
        A ``VBox`` with ``community``, ``landmark``, ``table`` and ``plot`` attributes.
    """
    return RetentionExplorer(source)
