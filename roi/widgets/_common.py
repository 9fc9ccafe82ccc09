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
