"""Print the HTML report to PDF with headless Chromium (Debian package ``chromium``).

The page size and margins come from the report's ``@page`` rule: A4 by default, US Letter with
``paper="Letter"`` (or ``ROI_PAPER=Letter``, which ``roi run --paper``/``roi report --paper``
set). Page numbers ("Page 3 of 12") are the ``@page`` footer margin box; Chromium's own header
and footer (date, file path) are switched off. The PDF is written to a temporary file in the
target folder and renamed, so a reader never sees half a PDF.

Examples
--------
>>> from roi.reports.pdf import chromium_path
>>> chromium_path() is None or chromium_path().endswith("chromium")  # doctest: +SKIP
True
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from roi.outputs import atomic_target

PACKAGE_HINT = ("PDF reports need headless Chromium: install the Debian package 'chromium' "
                "(apt-get install -y chromium) or set ROI_CHROMIUM to the browser binary, or "
                "write the reports with pdf=False.")


PAPERS = {"a4": "A4", "letter": "letter"}
PAPER_ENV = "ROI_PAPER"


class PdfUnavailableError(RuntimeError):
    """Chromium is missing or failed to print."""


def paper_size(paper: str | None = None) -> str:
    """The CSS page size for ``paper`` (else ``$ROI_PAPER``, else A4): ``"A4"`` or ``"letter"``.

    Examples
    --------
    >>> paper_size("Letter")
    'letter'
    """
    chosen = (paper or os.environ.get(PAPER_ENV) or "A4").strip().lower()
    if chosen not in PAPERS:
        raise ValueError(f"paper must be A4 or Letter, not {chosen!r}")
    return PAPERS[chosen]


def for_paper(html: str, paper: str) -> str:
    """The report's HTML with its ``@page`` size set to ``paper`` (a CSS page size)."""
    return html.replace("size: A4;", f"size: {paper};", 1)


def chromium_path() -> str | None:
    """The Chromium binary: ``$ROI_CHROMIUM``, else ``chromium`` / ``chromium-browser`` on PATH."""
    configured = os.environ.get("ROI_CHROMIUM")
    if configured:
        return shutil.which(configured) or (configured if Path(configured).is_file() else None)
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_command(binary: str, html_path: Path, pdf_path: Path, profile: Path) -> list[str]:
    return [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--no-default-browser-check", "--no-pdf-header-footer",
            f"--user-data-dir={profile}", f"--print-to-pdf={pdf_path}",
            html_path.resolve().as_uri()]


def write_pdf(html_path: str | Path, pdf_path: str | Path, *, timeout: float = 120.0,
              paper: str | None = None) -> Path:
    """Print ``html_path`` to ``pdf_path`` with headless Chromium on ``paper`` (A4 or Letter;
    default ``$ROI_PAPER``, else A4).

    Raises
    ------
    PdfUnavailableError
        If Chromium is not installed (names the Debian package) or does not produce a PDF.
    """
    html_path, pdf_path = Path(html_path), Path(pdf_path)
    binary = chromium_path()
    if binary is None:
        raise PdfUnavailableError(f"chromium not found. {PACKAGE_HINT}")
    if not html_path.is_file():
        raise FileNotFoundError(html_path)
    size = paper_size(paper)
    with atomic_target(pdf_path) as temporary, \
            tempfile.TemporaryDirectory(prefix="roi-chromium-") as profile:
        source = html_path
        if size != "A4":   # the report is self-contained: a copy anywhere prints the same
            source = Path(profile) / "report.html"
            source.write_text(for_paper(html_path.read_text(encoding="utf-8"), size),
                              encoding="utf-8")
        _print(chromium_command(binary, source, temporary, Path(profile)),
               temporary, timeout, profile)
    return pdf_path


def _print(command: list[str], output: Path, timeout: float, profile: str) -> None:
    env = {**os.environ, "HOME": profile}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        raise PdfUnavailableError(f"chromium did not finish printing within {timeout:.0f} s") \
            from error
    if output.stat().st_size < 100 or not output.read_bytes()[:5] == b"%PDF-":
        tail = "\n".join((done.stderr or "").strip().splitlines()[-5:])
        raise PdfUnavailableError(f"chromium (exit {done.returncode}) wrote no PDF: {tail}")
