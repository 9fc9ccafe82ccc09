"""Paid media explorer: response curves with 94% HDI bands, weekly contributions, ROAS table.

Everything is read from the ``paid_media`` block of ``results.json`` (contract section 4): the
curves from ``response_curves`` (posterior draws, summarised here), the weekly lines from
``weekly_contributions``. When the media-mix model did not run, the table shows spend only and
the plots say why they are empty.

Examples
--------
>>> from roi.widgets import paid_media_explorer
>>> results = {"paid_media": {"converged": True, "channels": {"search": {"spend": 100.0,
...     "roas": {"estimate": 2.0, "low": 1.5, "high": 2.5, "interval": "94% HDI"}}},
...     "response_curves": {"multipliers": [0.0, 1.0, 2.0],
...                         "spend": {"search": [0.0, 100.0, 200.0]},
...                         "draws": {"search": [[0.0, 200.0, 300.0], [0.0, 180.0, 260.0]]}}}}
>>> explorer = paid_media_explorer(results)
>>> repr(explorer)
'PaidMediaExplorer [all channels]: search ROAS 2.00 (94% HDI 1.50 to 2.50)'
"""

from __future__ import annotations

import base64
from typing import Any

import ipywidgets as widgets

from roi.reports import plots
from roi.widgets._common import (
    ALL,
    STYLE,
    ExportReport,
    csv_link,
    export_folder,
    finite,
    html_table,
    money,
    results_of,
    symbol,
    text_output,
    warning_list,
)

NOT_CONVERGED = "NOT CONVERGED - do not rely on it"


def _fixed(value: Any) -> str:
    return f"{value:.2f}" if finite(value) else "—"


def _interval(entry: Any, fmt=_fixed) -> str:
    if not isinstance(entry, dict):
        return "not estimated"
    return (f"{fmt(entry.get('estimate'))} ({entry.get('interval', '')} {fmt(entry.get('low'))} "
            f"to {fmt(entry.get('high'))})")


def png_output(png: bytes | None, text: str, missing: str) -> dict[str, Any]:
    """A display message with the PNG and its plain-text caption, or only why it is empty."""
    if png is None:
        return text_output(missing)
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": text}}


def curve_series(paid: dict[str, Any]) -> dict[str, plots.Curve]:
    """Channel -> (spend, mean, low, high) from ``response_curves`` (94% HDI over draws)."""
    curves = paid.get("response_curves") or {}
    spend, draws = curves.get("spend") or {}, curves.get("draws") or {}
    return {name: plots.curve_summary(spend[name], rows) for name, rows in draws.items()
            if name in spend and rows and len(rows[0]) == len(spend[name])}


def contribution_series(paid: dict[str, Any]) -> dict[str, tuple[list, list, list, list]]:
    series: dict[str, tuple[list, list, list, list]] = {}
    for row in paid.get("weekly_contributions") or []:
        weeks, mean, low, high = series.setdefault(row["channel"], ([], [], [], []))
        weeks.append(row["week"])
        mean.append(row["contribution"])
        low.append(row.get("low"))
        high.append(row.get("high"))
    return series


class PaidMediaExplorer(widgets.VBox):
    """A channel dropdown, response curves, weekly contributions and the ROAS table.

    Attributes
    ----------
    channel : Dropdown
    table : HTML
        ROAS, marginal ROAS, revenue caused and the regression baseline per channel.
    curves, contributions : Output
        The response curves (mean, 94% HDI) and weekly contributions of the selection.
    export : ExportReport
    """

    def __init__(self, results_or_outputs: Any) -> None:
        self.results = results_of(results_or_outputs)
        self.paid = self.results.get("paid_media") or {}
        self.currency = (self.results.get("data") or {}).get("currency")
        self.converged = self.paid.get("converged") is not False
        names = list(self.paid.get("channels") or {})
        self.channel = widgets.Dropdown(options=[("All channels", ALL)] + [(n, n) for n in names],
                                        description="Channel")
        self.table = widgets.HTML()
        self.curves = widgets.Output()
        self.contributions = widgets.Output()
        self.export = ExportReport(self.results, folder=export_folder(results_or_outputs))
        self.channel.observe(self._update, names="value")
        super().__init__(children=[self.channel, self.table, self.curves, self.contributions,
                                   self.export])
        self._update()

    def _selected(self) -> list[str]:
        names = list(self.paid.get("channels") or {})
        return names if self.channel.value == ALL else [self.channel.value]

    def __repr__(self) -> str:  # text/plain outside a widget frontend
        channels = self.paid.get("channels") or {}
        parts = [f"{n} ROAS {_interval(channels[n].get('roas'))}" for n in self._selected()]
        flag = "" if self.converged else f" [{NOT_CONVERGED}]"
        return f"PaidMediaExplorer [{self.channel.label.lower()}]{flag}: " + "; ".join(parts)

    def _update(self, _change: Any = None) -> None:
        self.table.value = self._table_html()
        self.curves.outputs = (self._curves_output(),)
        self.contributions.outputs = (self._contributions_output(),)

    def _row(self, name: str, entry: dict[str, Any]) -> list[str]:
        baseline = ((self.paid.get("regression_baseline") or {}).get("channels") or {})
        revenue = entry.get("incremental_revenue")
        return [name, money(entry.get("spend"), self.currency), _interval(entry.get("roas")),
                _interval(entry.get("marginal_roas")),
                _interval(revenue, lambda v: money(v, self.currency)),
                _interval((baseline.get(name) or {}).get("roas")),
                "yes" if self.converged else NOT_CONVERGED]

    def _table_html(self) -> str:
        channels = self.paid.get("channels") or {}
        rows = [self._row(name, channels[name]) for name in self._selected()]
        html = STYLE + "<h4>Return on ad spend (revenue caused per dollar of spend)</h4>"
        header = ["channel", "spend", "ROAS", "marginal ROAS", "revenue caused",
                  "regression ROAS (contrast)", "converged"]
        html += html_table(header, rows)
        html += csv_link([dict(zip(header, row, strict=True)) for row in rows], "roas.csv")
        if not self.converged:
            html += f'<p class="roi-warn"><b>{NOT_CONVERGED}</b>: the media-mix model.</p>'
        return html + warning_list(self.paid.get("warnings") or [])

    def _curves_output(self) -> dict[str, Any]:
        series = {n: c for n, c in curve_series(self.paid).items() if n in self._selected()}
        current = {n: (self.paid["channels"][n] or {}).get("spend") for n in series}
        png = plots.response_curve_chart(series, current, currency=symbol(self.currency))
        text = "Response curves (mean, 94% HDI) for " + ", ".join(series) + "."
        return png_output(png, text, "No response curves in this run: the media-mix model "
                                     "did not run.")

    def _contributions_output(self) -> dict[str, Any]:
        series = {n: c for n, c in contribution_series(self.paid).items()
                  if n in self._selected()}
        png = plots.contribution_chart(series, currency=symbol(self.currency))
        weeks = len(next(iter(series.values()))[0]) if series else 0
        return png_output(png, f"Weekly contributions, {weeks} weeks, for " + ", ".join(series)
                          + ".", "No weekly contributions in this run.")


def paid_media_explorer(results_or_outputs: Any) -> PaidMediaExplorer:
    """Response curves, weekly contributions and ROAS of the run's media-mix model.

    Parameters
    ----------
    results_or_outputs : RunOutputs, dict or path
        What :func:`roi.run.run_models` returned, its ``results`` dict, or ``results.json``.

    Returns
    -------
    PaidMediaExplorer
        A ``VBox`` with ``channel``, ``table``, ``curves``, ``contributions`` and ``export``.
    """
    return PaidMediaExplorer(results_or_outputs)
