"""Revenue-lift explorer: pick an estimator and a community, see the estimate beside the naive
number and that community's event study (months before joining shaded: they should hover
around zero).

Everything is read from ``results.json`` (``community_revenue_lift``: ``estimates``,
``estimates_by_community``, ``event_studies``; ``diagnostics``), so a notebook opens a finished
run without refitting and shows the report's numbers.

Examples
--------
>>> from roi.widgets import lift_explorer
>>> explorer = lift_explorer("../out")                  # doctest: +SKIP
>>> explorer.community.value = "forum"                  # doctest: +SKIP
>>> explorer.summary.value                              # doctest: +SKIP
"""

from __future__ import annotations

import html as html_lib
from typing import Any

import ipywidgets as widgets
import pandas as pd
from matplotlib.figure import Figure

from roi.widgets._common import (
    ALL,
    MEMBER_COLOUR,
    NAIVE_COLOUR,
    STYLE,
    ExportReport,
    community_options,
    converged_of,
    csv_link,
    export_folder,
    figure_output,
    finite,
    html_table,
    interval_text,
    money,
    results_of,
    text_output,
    warning_list,
)


def _estimator_options(names: list[str], preferred: str | None) -> list:
    names = sorted(names, key=lambda n: (n != preferred, n == "naive", n))
    return [(f"{n} (preferred)" if n == preferred else n, n) for n in names]


class LiftExplorer(widgets.VBox):
    """Estimator and community dropdowns, an HTML summary and an event-study plot.

    Attributes
    ----------
    estimator, community : Dropdown
    summary : HTML
        The selected estimate with its interval beside the naive one.
    plot : Output
        The event study of the selected estimator and community (``event_studies``).
    caption : HTML
        What the plot shows, in words (visible in JupyterLab, unlike a figure's text form).
    download : HTML
        A link that downloads the event study shown as CSV.
    export : ExportReport
        Writes the reports of the run into a chosen folder.
    """

    def __init__(self, source: Any, *, min_treated: int = 30) -> None:
        self.results = results = results_of(source)
        self.lift = results.get("community_revenue_lift") or {}
        self.estimates: dict[str, dict] = self.lift.get("estimates") or {}
        self.currency = (results.get("data") or {}).get("currency")
        self.member_months = self.lift.get("member_months")
        self.min_treated = min_treated
        preferred = self.lift.get("preferred")
        groups = {g for entries in self._by_community().values() for g in entries}
        self.estimator = widgets.Dropdown(options=_estimator_options(list(self.estimates),
                                                                     preferred),
                                          description="Estimator")
        self.community = widgets.Dropdown(options=community_options(groups),
                                          description="Community")
        self.summary = widgets.HTML()
        self.plot = widgets.Output()
        self.caption = widgets.HTML()
        self.caption.add_class("roi-lift-caption")   # browser tests read it
        self.download = widgets.HTML()
        self.export = ExportReport(results, folder=export_folder(source))
        self.estimator.observe(self._update, names="value")
        self.community.observe(self._update, names="value")
        super().__init__(children=[widgets.HBox([self.estimator, self.community]),
                                   self.summary, self.plot, self.caption, self.download,
                                   self.export])
        self._update()

    def _by_community(self) -> dict[str, dict[str, Any]]:
        """Method -> community -> entry; older results carry the preferred method's only."""
        found = self.lift.get("estimates_by_community")
        if found is None and self.lift.get("preferred"):
            found = {self.lift["preferred"]: self.lift.get("by_community") or {}}
        return found or {}

    def entry(self, method: str, community: str = ALL) -> dict[str, Any] | None:
        """The contract entry of ``method`` for ``community`` (all communities: ``ALL``)."""
        if community == ALL:
            return self.estimates.get(method)
        return (self._by_community().get(method) or {}).get(community)

    def _converged(self, method: str, entry: dict[str, Any] | None) -> bool:
        return converged_of(self.results, f"revenue_{method}") and (
            entry or {}).get("converged", True) is not False

    def __repr__(self) -> str:  # text/plain outside a widget frontend (cut at 110 chars)
        parts = []
        for name in dict.fromkeys([self.estimator.value, "naive"]):
            entry = self.entry(name, self.community.value)
            if entry:
                parts.append(f"{name} {money(entry.get('estimate'), self.currency)}")
        return f"LiftExplorer [{self.community.label}]: " + " vs ".join(parts)

    def _update(self, _change: Any = None) -> None:
        self.summary.value = self._summary_html()
        output, caption = self._plot_output()
        self.plot.outputs = (output,)
        self.caption.value = f"<p>{html_lib.escape(caption)}</p>"
        self.download.value = self.csv() if self.event_study() is not None else ""

    def _summary_html(self) -> str:
        method, community = self.estimator.value, self.community.value
        rows = []
        for name in dict.fromkeys([method, "naive"]):
            if name not in self.estimates:
                continue
            entry = self.entry(name, community)
            estimate = money(entry.get("estimate"), self.currency) if entry else "—"
            rows.append([name, estimate, interval_text(entry, lambda v: money(v, self.currency)),
                         "yes" if self._converged(name, entry) else "NO"])
        scope = self.community.label
        html = STYLE + (f"<h4>Revenue lift per member-month: {scope}</h4>"
                        + html_table(["method", "estimate", "interval", "converged"], rows))
        if method != "naive" and "naive" in self.estimates:
            html += ("<p>The naive number compares ever-members with never-members and credits the "
                     "community with whatever made those customers join; the causal estimate "
                     "compares each joiner with their own months before joining.</p>")
        months = (self.member_months if community == ALL
                  else (self.lift.get("member_months_by_community") or {}).get(community))
        if months:
            html += f"<p>Member-months: {months:,}</p>"
        warnings = ((self.results.get("diagnostics") or {}).get(f"revenue_{method}")
                    or {}).get("warnings", [])
        return html + warning_list(warnings)

    def event_study(self) -> pd.DataFrame | None:
        """The selected estimator's event study for the selected community (None without)."""
        study = (self.lift.get("event_studies") or {}).get(self.estimator.value)
        if study is None:  # results written before event_studies: the pooled one only
            old = self.lift.get("event_study") or {}
            study = old if old.get("method") == self.estimator.value else None
        if study is None:
            return None
        points = (study.get("points") if self.community.value == ALL
                  else (study.get("by_community") or {}).get(self.community.value))
        return pd.DataFrame(points) if points else None

    def _plot_output(self) -> tuple[dict[str, Any], str]:
        method, scope = self.estimator.value, self.community.label
        table = self.event_study()
        if table is None or table.empty:
            text = (f"No event study for {method} ({scope}): it has no before/after "
                    "structure in this run.")
            return text_output(text), text
        shown = table[table["n_treated"] >= self.min_treated]
        pre, post = shown[shown["e"] < 0], shown[shown["e"] >= 0]
        naive = (self.entry("naive", self.community.value) or {}).get("estimate")
        figure = _event_study_figure(shown, currency=self.currency,
                                     naive=naive if finite(naive) else None,
                                     title=f"Event study: {method}, {scope}")
        checks = ((self.results.get("diagnostics") or {}).get(f"revenue_{method}")
                  or {}).get("checks", {})
        p_value = (checks.get("pretrend_event") or checks.get("pretrend") or {}).get("p_value")
        pretrend = (f"; pre-trend test (all communities) p = {p_value:.3f}"
                    if finite(p_value) else "")
        text = (f"Event study ({method}, {scope}): {len(pre)} months before joining (shaded), "
                f"{len(post)} months after; event times with fewer than {self.min_treated} "
                f"members not shown ({len(table) - len(shown)}){pretrend}.")
        return figure_output(figure, text), text

    def csv(self) -> str:
        """A download link for the event study shown (HTML)."""
        table = self.event_study()
        name = f"event_study_{self.estimator.value}_{self.community.value or 'all'}.csv"
        return csv_link(table if table is not None else [], name)


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
    ax.plot(table["e"], table["estimate"], "o-", color=MEMBER_COLOUR, markersize=3,
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


def lift_explorer(source: Any, *, min_treated: int = 30) -> LiftExplorer:
    """Estimator and community dropdowns over the run's revenue-lift results.

    Parameters
    ----------
    source : str, Path, dict or RunOutputs
        A finished run: its output folder, its ``results.json``, the loaded dict, or what
        :func:`roi.run.run_models` returned.
    min_treated : int
        Event times with fewer members than this are left out of the plot (their intervals are
        too wide to read); the caption says how many.

    Returns
    -------
    LiftExplorer
        A ``VBox`` with ``estimator``, ``community``, ``summary``, ``plot`` and ``caption``.
    """
    return LiftExplorer(source, min_treated=min_treated)
