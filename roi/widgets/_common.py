"""Shared pieces of the dashboards: reading results, formatting numbers, HTML tables, figures.

Widgets read a :class:`roi.run.RunOutputs` (or the ``results.json`` dict it carries); they never
fit a model. Figures are drawn with matplotlib's object API (no pyplot, no global state) and put
into an ``Output`` widget as a PNG display message, so the dashboards behave the same in
JupyterLab, in papermill and in a plain Python test without a kernel.

Examples
--------
>>> money(1234.5, "USD")
'$1,234.50'
>>> "<td>&lt;2&gt;</td>" in html_table(["a", "b"], [["1", "<2>"]])
True
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from matplotlib.figure import Figure

ALL = ""
ALL_LABEL = "All communities"
HR_DIGITS = 3
MEMBER_COLOUR = "#1f5f99"
OTHER_COLOUR = "#8c8c8c"
NAIVE_COLOUR = "#c0392b"
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}
STYLE = ("<style>.roi-table{border-collapse:collapse;margin:4px 0}"
         ".roi-table th,.roi-table td{border:1px solid #ccc;padding:2px 8px;text-align:left}"
         ".roi-table th{background:#f3f3f3}.roi-warn{color:#a04000}</style>")


def results_of(source: Any) -> dict[str, Any]:
    """The ``results.json`` dict from a RunOutputs, a dict, or a path to the file or its folder."""
    if isinstance(source, dict):
        return source
    if hasattr(source, "results"):
        return source.results
    if isinstance(source, str | Path):
        path = Path(source)
        path = path / "results.json" if path.is_dir() else path
        return json.loads(path.read_text())
    raise TypeError(f"expected RunOutputs, a results dict or a path, got {type(source).__name__}")


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def symbol(currency: str | None) -> str:
    """``$`` for USD, the code itself for others, ``$`` when unknown (as the reports do)."""
    return SYMBOLS.get(currency or "USD", currency or "$")


def money(value: Any, currency: str | None = None) -> str:
    """``$1,234.50``; an em dash for a missing or non-finite value."""
    if not finite(value):
        return "—"
    symbol = SYMBOLS.get(currency or "", f"{currency} " if currency else "")
    sign = "-" if value < 0 else ""
    return f"{sign}{symbol}{abs(value):,.2f}"


def ratio(value: Any) -> str:
    """A hazard ratio with three decimals."""
    return f"{value:.{HR_DIGITS}f}" if finite(value) else "—"


def interval_text(entry: dict[str, Any] | None, fmt) -> str:
    """``low to high (95% CI)`` for one contract entry."""
    if not entry:
        return "—"
    return f"{fmt(entry.get('low'))} to {fmt(entry.get('high'))} ({entry.get('interval', '')})"


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A small HTML table; every cell is escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<table class="roi-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def warning_list(warnings: Iterable[str]) -> str:
    items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
    return f'<ul class="roi-warn">{items}</ul>' if items else ""


def figure_output(figure: Figure, text: str) -> dict[str, Any]:
    """A display message with the figure as PNG and ``text`` as its plain-text form."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight",
                   metadata={"Software": None})
    png = base64.b64encode(buffer.getvalue()).decode("ascii")
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": png, "text/plain": text}}


def text_output(text: str) -> dict[str, Any]:
    return {"output_type": "display_data", "metadata": {}, "data": {"text/plain": text}}


def community_options(communities: Iterable[str]) -> list[tuple[str, str]]:
    return [(ALL_LABEL, ALL)] + [(str(c), str(c)) for c in sorted(set(communities))]


class ExportReport(widgets.VBox):
    """Folder box, PDF check box and an "Export report" button that writes report.html,
    report.xlsx (and report.pdf) with :func:`roi.reports.write_reports`; ``paths`` lists them.

    Attributes
    ----------
    folder : Text
    pdf : Checkbox
        Ticked by default when headless Chromium is installed.
    button : Button
    paths : HTML
        The files written, or why the PDF was not.
    written : dict
        ``{"html": Path, "xlsx": Path[, "pdf": Path]}`` of the last export.
    """

    def __init__(self, results: dict[str, Any], *, folder: str = "report") -> None:
        from roi.reports.pdf import chromium_path

        self.results = results
        self.written: dict[str, Path] = {}
        self.folder = widgets.Text(value=folder, description="Folder")
        self.pdf = widgets.Checkbox(value=chromium_path() is not None, description="PDF",
                                    indent=False)
        self.button = widgets.Button(description="Export report", icon="download")
        self.paths = widgets.HTML()
        self.button.on_click(self._export)
        super().__init__(children=[widgets.HBox([self.folder, self.pdf, self.button]),
                                   self.paths])

    def _export(self, _button: Any = None) -> None:
        from roi.reports import PdfUnavailableError, write_reports

        folder = Path(self.folder.value).expanduser()
        note = ""
        try:
            self.written = write_reports(self.results, folder, pdf=self.pdf.value)
        except PdfUnavailableError as error:
            self.written = {k: folder / f"report.{k}" for k in ("html", "xlsx")}
            note = f'<p class="roi-warn">report.pdf not written: {html.escape(str(error))}</p>'
        items = "".join(f"<li>{html.escape(str(p.resolve()))}</li>"
                        for p in self.written.values())
        self.paths.value = STYLE + f"<p>Written:</p><ul>{items}</ul>" + note
