"""Reports read a results dict (the parsed ``results.json``) and nothing else.

``write_reports`` writes ``report.html`` (self-contained), ``report.xlsx`` and, with Chromium
installed, ``report.pdf``, each atomically.

Examples
--------
>>> import json, tempfile
>>> from roi.reports import write_reports
>>> results = json.load(open("out/results.json"))  # doctest: +SKIP
>>> write_reports(results, tempfile.mkdtemp(), pdf=False)  # doctest: +SKIP
{'html': PosixPath('.../report.html'), 'xlsx': PosixPath('.../report.xlsx')}
"""

from __future__ import annotations

from pathlib import Path

from roi.redaction import redact_document
from roi.reports.excel import write_excel
from roi.reports.html import write_html
from roi.reports.pdf import PdfUnavailableError, write_pdf

__all__ = ["PdfUnavailableError", "write_excel", "write_html", "write_pdf", "write_reports"]


def write_reports(results: dict, out_dir: str | Path, *, pdf: bool = True,
                  currency: str = "$", paper: str | None = None) -> dict[str, Path]:
    """Write report.html, report.xlsx and (``pdf=True``) report.pdf into ``out_dir``; the PDF on
    ``paper`` (A4 or Letter; default ``$ROI_PAPER``, else A4).

    Raises
    ------
    PdfUnavailableError
        With ``pdf=True`` when Chromium is missing or fails; the HTML and Excel reports are
        already written by then.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Redacted once more here: a results dict made in a notebook, or a results.json from an older
    # version, must not put an e-mail into a chart's pixels (text cells are redacted anyway).
    results = redact_document(results)
    written = {"html": write_html(results, out_dir / "report.html", currency=currency),
               "xlsx": write_excel(results, out_dir / "report.xlsx", currency=currency)}
    if pdf:
        written["pdf"] = write_pdf(written["html"], out_dir / "report.pdf", paper=paper)
    return written
