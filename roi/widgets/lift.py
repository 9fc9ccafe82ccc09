"""Revenue-lift explorer: pick an estimator and a community, see the estimate beside the naive
number and the event study (months before joining shaded: they should hover around zero).

Examples
--------
>>> from roi.run import run_models
>>> from roi.widgets import lift_explorer
>>> explorer = lift_explorer(run_models("data/sample", out="out"))   # doctest: +SKIP
>>> explorer.community.value = "forum"                                 # doctest: +SKIP
>>> explorer.summary.value                                             # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import pandas as pd
from matplotlib.figure import Figure

from roi.results import EffectResult
from roi.widgets._common import (
    ALL,
    MEMBER_COLOUR,
    NAIVE_COLOUR,
    STYLE,
    ExportReport,
    community_options,
    figure_output,
    html_table,
    interval_text,
    money,
    text_output,
    warning_list,
)


def _estimator_options(revenue: dict[str, EffectResult], preferred: str | None) -> list:
    names = sorted(revenue, key=lambda n: (n != preferred, n == "naive", n))
    return [(f"{n} (preferred)" if n == preferred else n, n) for n in names]


def _entry(result: EffectResult, community: str) -> dict[str, Any] | None:
    if community == ALL:
        return result.to_contract()
    return result.by_group.get(community)


class LiftExplorer(widgets.VBox):
    """Estimator and community dropdowns, an HTML summary and an event-study plot.

    Attributes
    ----------
    estimator, community : Dropdown
    summary : HTML
        The selected estimate with its interval beside the naive one.
    plot : Output
        The event study of the selected estimator (``tables["dynamic"]``).
    export : ExportReport
        Writes the reports of the run into a chosen folder.
    """

    def __init__(self, outputs: Any, *, min_treated: int = 30) -> None:
        self.revenue: dict[str, EffectResult] = outputs.revenue
        results = outputs.results
        self.currency = (results.get("data") or {}).get("currency")
        self.member_months = results.get("community_revenue_lift", {}).get("member_months")
        self.min_treated = min_treated
        preferred = results.get("community_revenue_lift", {}).get("preferred")
        groups = {g for r in self.revenue.values() for g in r.by_group}
        self.estimator = widgets.Dropdown(options=_estimator_options(self.revenue, preferred),
                                          description="Estimator")
        self.community = widgets.Dropdown(options=community_options(groups),
                                          description="Community")
        self.summary = widgets.HTML()
        self.plot = widgets.Output()
        self.export = ExportReport(outputs.results)
        self.estimator.observe(self._update, names="value")
        self.community.observe(self._update, names="value")
        super().__init__(children=[widgets.HBox([self.estimator, self.community]),
                                   self.summary, self.plot, self.export])
        self._update()

    def __repr__(self) -> str:  # text/plain outside a widget frontend (cut at 110 chars)
        parts = []
        for name in dict.fromkeys([self.estimator.value, "naive"]):
            result = self.revenue.get(name)
            entry = _entry(result, self.community.value) if result is not None else None
            if entry:
                parts.append(f"{name} {money(entry.get('estimate'), self.currency)}")
        return f"LiftExplorer [{self.community.label}]: " + " vs ".join(parts)

    def _update(self, _change: Any = None) -> None:
        self.summary.value = self._summary_html()
        self.plot.outputs = (self._plot_output(),)

    def _summary_html(self) -> str:
        method, community = self.estimator.value, self.community.value
        chosen = self.revenue[method]
        rows = []
        for name in dict.fromkeys([method, "naive"]):
            if name not in self.revenue:
                continue
            entry = _entry(self.revenue[name], community)
            estimate = money(entry.get("estimate"), self.currency) if entry else "—"
            rows.append([name, estimate, interval_text(entry, lambda v: money(v, self.currency)),
                         "yes" if self.revenue[name].diagnostics.converged else "NO"])
        scope = self.community.label
        html = STYLE + (f"<h4>Revenue lift per member-month: {scope}</h4>"
                        + html_table(["method", "estimate", "interval", "converged"], rows))
        if method != "naive" and "naive" in self.revenue:
            html += ("<p>The naive number compares ever-members with never-members and credits the "
                     "community with whatever made those customers join; the causal estimate "
                     "compares each joiner with their own months before joining.</p>")
        if community == ALL and self.member_months:
            html += f"<p>Member-months: {self.member_months:,}</p>"
        return html + warning_list(chosen.diagnostics.warnings)

    def _plot_output(self) -> dict[str, Any]:
        method, community = self.estimator.value, self.community.value
        dynamic = self.revenue[method].tables.get("dynamic")
        if dynamic is None or dynamic.empty:
            return text_output(f"No event study for {method}: it has no before/after structure.")
        shown = dynamic[dynamic["n_treated"] >= self.min_treated]
        pre, post = shown[shown["e"] < 0], shown[shown["e"] >= 0]
        scope = "all communities" if community == ALL else (
            f"all communities pooled: the results hold no per-community event study; "
            f"{community}'s estimate is in the table above")
        naive = self.revenue["naive"].estimate if "naive" in self.revenue else None
        figure = _event_study_figure(shown, currency=self.currency, naive=naive,
                                     title=f"Event study: {method}, all communities")
        p_value = self.revenue[method].diagnostics.checks.get("pretrend", {}).get("p_value")
        pretrend = f"; pre-trend test p = {p_value:.3f}" if p_value is not None else ""
        text = (f"Event study ({method}, {scope}): {len(pre)} months before joining (shaded), "
                f"{len(post)} months after; event times with fewer than {self.min_treated} "
                f"members not shown ({len(dynamic) - len(shown)}){pretrend}.")
        return figure_output(figure, text)


def _event_study_figure(table: pd.DataFrame, *, currency: str | None, naive: float | None,
                        title: str) -> Figure:
    figure = Figure(figsize=(8, 3.6))
    ax = figure.add_subplot()
    if (table["e"] < 0).any():
        ax.axvspan(table["e"].min() - 0.5, -0.5, color="#dddddd", alpha=0.6,
                   label="before joining (placebo)")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.fill_between(table["e"], table["low"], table["high"], color=MEMBER_COLOUR, alpha=0.2,
                    step=None, label="95% CI")
    ax.plot(table["e"], table["att"], "o-", color=MEMBER_COLOUR, markersize=3,
            label="effect per member-month")
    ax.axvline(-0.5, color="black", linestyle=":", linewidth=0.8)
    if naive is not None:
        ax.axhline(naive, color=NAIVE_COLOUR, linestyle="--", linewidth=1,
                   label="naive member vs non-member gap")
    ax.set_xlabel("months since joining")
    ax.set_ylabel(f"revenue ({currency})" if currency else "revenue")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return figure


def lift_explorer(outputs: Any, *, min_treated: int = 30) -> LiftExplorer:
    """Estimator and community dropdowns over the run's revenue-lift results.

    Parameters
    ----------
    outputs : RunOutputs
        What :func:`roi.run.run_models` returned.
    min_treated : int
        Event times with fewer members than this are left out of the plot (their intervals are
        too wide to read); the caption says how many.

    Returns
    -------
    LiftExplorer
        A ``VBox`` with ``estimator``, ``community``, ``summary`` and ``plot`` attributes.
    """
    return LiftExplorer(outputs, min_treated=min_treated)
