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


def open_run(results: Any = "../out", *, source: Any = "../data/sample",
             progress: bool = True) -> dict[str, Any]:
    """The ``results.json`` dict of a finished run; when ``results`` (a run's output folder or
    its ``results.json``) holds none, the job runs once on ``source`` and writes it there.

    Parameters
    ----------
    results : str, Path, dict or RunOutputs
        What ``roi run`` / ``make demo`` wrote (``../out`` from the notebooks folder).
    source : str or Path
        The data the job reads when it has to run (a folder or a database URL).
    progress : bool
        Show the job's progress bar (it takes minutes on the sample).

    Returns
    -------
    dict
        The run's ``results.json``; every dashboard of :mod:`roi.widgets` accepts it.
    """
    if not isinstance(results, str | Path):
        return results_of(results)
    path = Path(results)
    file = path if path.suffix == ".json" else path / "results.json"
    if file.is_file():
        return results_of(file)
    from roi.run import run_job

    print(f"{file} not found: running the job once on {source} (writes {file.parent})")
    return run_job(source, out=file.parent, progress=progress)


def sentence(method: str, entry: dict[str, Any] | None, *, converged: bool = True,
             currency: str | None = "USD") -> str:
    """The plain-language sentence of one ``estimates`` entry, as
    :meth:`roi.results.EffectResult.sentence` writes it for the fitted result.

    Examples
    --------
    >>> sentence("did", {"estimate": 4.0, "low": 1.0, "high": 7.0, "interval": "95% CI"})
    'did: each member-month adds $4.00 (95% CI $1.00 to $7.00).'
    """
    entry = entry or {}
    caveat = "" if converged and entry.get("converged", True) else \
        " (NOT CONVERGED: do not rely on it)"
    if entry.get("refused") or not finite(entry.get("estimate", entry.get("hazard_ratio"))):
        return f"{method}: not estimated ({entry.get('refused') or 'no number in this run'})."
    low, high, interval = entry.get("low"), entry.get("high"), entry.get("interval")
    if "hazard_ratio" in entry:
        value = entry["hazard_ratio"]
        change = (1.0 - value) * 100
        word = "lowers" if change > 0 else "raises"
        return (f"{method}: membership {word} the monthly churn hazard by {abs(change):.0f}% "
                f"(hazard ratio {value:.2f}, {interval} {low:.2f}-{high:.2f}){caveat}.")
    cur = symbol(currency)
    return (f"{method}: each member-month adds {cur}{entry['estimate']:,.2f} ({interval} "
            f"{cur}{low:,.2f} to {cur}{high:,.2f}){caveat}.")


def headline(results: Any, section: str = "community_revenue_lift") -> list[str]:
    """One sentence per estimator of ``section`` (``community_revenue_lift`` or
    ``community_retention_lift``), the numbers of ``results.json`` (so, of the report)."""
    results = results_of(results)
    prefix = "revenue" if section == "community_revenue_lift" else "retention"
    currency = (results.get("data") or {}).get("currency")
    estimates = (results.get(section) or {}).get("estimates") or {}
    return [sentence(name, entry, converged=converged_of(results, f"{prefix}_{name}"),
                     currency=currency) for name, entry in estimates.items()]


def converged_of(results: dict[str, Any], key: str) -> bool:
    """``diagnostics[key].converged`` of the run (True when the run does not say)."""
    return bool(((results.get("diagnostics") or {}).get(key) or {}).get("converged", True))


def csv_link(frame: Any, filename: str, label: str = "Download CSV") -> str:
    """An HTML link that downloads ``frame`` (a DataFrame or a list of dicts) as a CSV file;
    the data travel in the link itself, so it works in JupyterLab and in an exported page."""
    import pandas as pd

    table = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(list(frame))
    data = base64.b64encode(table.to_csv(index=False).encode("utf-8")).decode("ascii")
    return (f'<a download="{html.escape(filename)}" href="data:text/csv;base64,{data}" '
            f'class="roi-csv" style="color:#1f5f99;text-decoration:underline">'
            f'{html.escape(label)}</a>')


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


def export_folder(source: Any) -> Path:
    """Where "Export report" writes by default: ``exported/`` in the run's output folder when
    the dashboard was opened from it, else a folder in the temp directory (never the notebooks
    folder, where it would show up untracked in git)."""
    import tempfile

    if isinstance(source, str | Path):
        path = Path(source)
        return (path.parent if path.suffix == ".json" else path) / "exported"
    if getattr(source, "out", None) is not None:
        return Path(source.out) / "exported"
    return Path(tempfile.gettempdir()) / "roi-report"


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

    def __init__(self, results: dict[str, Any], *, folder: str | Path | None = None) -> None:
        from roi.reports.pdf import chromium_path

        self.results = results
        folder = str(folder or export_folder(None))
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
