"""Small static charts for the reports, drawn from a results dict only (PNG bytes).

Charts use matplotlib's object API (no pyplot, no global state) and return ``None`` when the
section they draw is missing, so a report never fails because a model was not run.

Examples
--------
>>> from roi.reports.plots import interval_chart
>>> png = interval_chart([("did", 42.0, 6.0, 79.0, True)], reference=0.0, xlabel="$")
>>> png[:4] == b"\\x89PNG"
True
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

OK_COLOUR = "#1f5f99"
BAD_COLOUR = "#c0392b"
Row = tuple[str, float | None, float | None, float | None, bool]


def _finite(value: float | None) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight",
                   metadata={"Software": None})
    return buffer.getvalue()


def interval_chart(rows: Sequence[Row], *, reference: float | None, xlabel: str,
                   log: bool = False, title: str = "") -> bytes | None:
    """Point estimates with horizontal interval bars, one row each.

    ``rows`` are ``(label, estimate, low, high, converged)``; rows without a finite estimate are
    skipped and unconverged rows are drawn in red with "NOT CONVERGED" in the label.
    """
    rows = [row for row in rows if _finite(row[1]) and (not log or row[1] > 0)]
    if not rows:
        return None
    figure = Figure(figsize=(7.0, 0.45 * len(rows) + 1.2))
    axes = figure.add_subplot()
    for position, (_, estimate, low, high, converged) in enumerate(reversed(rows)):
        colour = OK_COLOUR if converged else BAD_COLOUR
        if _finite(low) and _finite(high) and (not log or (low > 0 and high > 0)):
            axes.plot([low, high], [position, position], color=colour, linewidth=2.5)
        axes.plot([estimate], [position], "o", color=colour, markersize=7)
    labels = [label if converged else f"{label} (NOT CONVERGED)"
              for label, _, _, _, converged in reversed(rows)]
    axes.set_yticks(range(len(rows)), labels)
    for tick, (*_, converged) in zip(axes.get_yticklabels(), reversed(rows), strict=True):
        tick.set_color("black" if converged else BAD_COLOUR)
    if log:
        _log_axis(axes, [v for row in rows for v in row[1:4] if _finite(v) and v > 0])
    if reference is not None:
        axes.axvline(reference, color="grey", linestyle="--", linewidth=1)
    axes.set_xlabel(xlabel)
    axes.set_ylim(-0.7, len(rows) - 0.3)
    axes.grid(axis="x", alpha=0.3)
    if title:
        axes.set_title(title, fontsize=11, loc="left")
    return _png(figure)


LOG_TICKS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0,
             10.0, 20.0)


def _log_axis(axes, values: list[float]) -> None:
    """Log scale with plain tick labels (0.5, 1, 2) instead of powers of ten."""
    axes.set_xscale("log")
    axes.minorticks_off()
    low, high = min([*values, 1.0]) / 1.1, max([*values, 1.0]) * 1.1
    ticks = [t for t in LOG_TICKS if low <= t <= high]
    axes.set_xlim(low, high)
    axes.set_xticks(ticks, [f"{t:g}" for t in ticks])


def bar_chart(bars: Sequence[tuple[str, float | None]], *, xlabel: str,
              title: str = "") -> bytes | None:
    """Horizontal bars (spend per channel, cost per community)."""
    bars = [(label, value) for label, value in bars if _finite(value)]
    if not bars:
        return None
    figure = Figure(figsize=(7.0, 0.32 * len(bars) + 1.1))
    axes = figure.add_subplot()
    labels = [label for label, _ in reversed(bars)]
    axes.barh(labels, [value for _, value in reversed(bars)], color=OK_COLOUR)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes.set_xlabel(xlabel)
    axes.grid(axis="x", alpha=0.3)
    if title:
        axes.set_title(title, fontsize=11, loc="left")
    return _png(figure)
