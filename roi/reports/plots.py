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


Curve = tuple[list[float], list[float], list[float], list[float]]
PALETTE = ("#1f5f99", "#e07b00", "#2e8b57", "#8e44ad", "#c0392b", "#7f8c8d", "#b7950b")


def hdi(values: Sequence[float], prob: float = 0.94) -> tuple[float, float]:
    """Narrowest interval holding ``prob`` of the values (a highest-density interval)."""
    ordered = sorted(values)
    width = max(1, min(len(ordered), math.ceil(prob * len(ordered))))
    starts = range(len(ordered) - width + 1)
    best = min(starts, key=lambda i: ordered[i + width - 1] - ordered[i])
    return ordered[best], ordered[best + width - 1]


def curve_summary(spend: Sequence[float], draws: Sequence[Sequence[float | None]]) -> Curve:
    """``(spend, mean, low, high)`` over the columns of ``draws`` (rows = posterior draws)."""
    means, lows, highs = [], [], []
    for column in range(len(spend)):
        values = [row[column] for row in draws if _finite(row[column])]
        low, high = hdi(values) if values else (math.nan, math.nan)
        means.append(sum(values) / len(values) if values else math.nan)
        lows.append(low)
        highs.append(high)
    return list(spend), means, lows, highs


def _money_axis(axes, axis: str = "y") -> None:
    target = axes.yaxis if axis == "y" else axes.xaxis
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))


def response_curve_chart(curves: dict[str, Curve], current: dict[str, float | None], *,
                         currency: str = "$") -> bytes | None:
    """Revenue caused against window spend per channel, mean and 94% HDI band; a dot marks
    today's spend."""
    if not curves:
        return None
    figure = Figure(figsize=(7.0, 3.8))
    axes = figure.add_subplot()
    for index, (name, (spend, mean, low, high)) in enumerate(curves.items()):
        colour = PALETTE[index % len(PALETTE)]
        axes.fill_between(spend, low, high, color=colour, alpha=0.15, linewidth=0)
        axes.plot(spend, mean, color=colour, label=name)
        now = current.get(name)
        if _finite(now) and spend[0] <= now <= spend[-1]:
            axes.plot([now], [_interpolate(spend, mean, now)], "o", color=colour)
    _money_axis(axes, "x")
    _money_axis(axes, "y")
    axes.set_xlabel(f"spend in the window ({currency}); dot = current spend")
    axes.set_ylabel(f"revenue caused ({currency})")
    axes.set_title("Response curves (mean, 94% HDI)", fontsize=11, loc="left")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return _png(figure)


def _interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    for (x0, y0), (x1, y1) in zip(zip(xs, ys, strict=True), zip(xs[1:], ys[1:], strict=True),
                                  strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def contribution_chart(series: dict[str, tuple[list[str], list, list, list]], *,
                       currency: str = "$") -> bytes | None:
    """Weekly revenue caused by each channel, mean with its band."""
    if not series:
        return None
    figure = Figure(figsize=(7.0, 3.4))
    axes = figure.add_subplot()
    for index, (name, (weeks, mean, low, high)) in enumerate(series.items()):
        colour = PALETTE[index % len(PALETTE)]
        positions = list(range(len(weeks)))
        if all(_finite(v) for v in low + high):
            axes.fill_between(positions, low, high, color=colour, alpha=0.12, linewidth=0)
        axes.plot(positions, mean, color=colour, linewidth=1.2, label=name)
    weeks = next(iter(series.values()))[0]
    step = max(1, len(weeks) // 6)
    axes.set_xticks(range(0, len(weeks), step), weeks[::step], fontsize=7)
    _money_axis(axes)
    axes.set_ylabel(f"revenue caused per week ({currency})")
    axes.set_title("Weekly contribution per channel (mean, 94% HDI)", fontsize=11, loc="left")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return _png(figure)


def event_study_chart(points: Sequence[tuple[float, float, float | None, float | None]], *,
                      currency: str = "$", interval: str = "95% CI") -> bytes | None:
    """Effect by months since joining; months before joining (placebo) shaded."""
    points = [p for p in points if _finite(p[0]) and _finite(p[1])]
    if not points:
        return None
    figure = Figure(figsize=(7.0, 3.2))
    axes = figure.add_subplot()
    months = [p[0] for p in points]
    if min(months) < 0:
        axes.axvspan(min(months) - 0.5, -0.5, color="#dddddd", alpha=0.6,
                     label="before joining (should be near 0)")
    axes.axhline(0, color="black", linewidth=0.8)
    banded = [p for p in points if _finite(p[2]) and _finite(p[3])]
    axes.fill_between([p[0] for p in banded], [p[2] for p in banded], [p[3] for p in banded],
                      color=OK_COLOUR, alpha=0.2, label=interval)
    axes.plot(months, [p[1] for p in points], "o-", color=OK_COLOUR, markersize=3,
              label="effect per member-month")
    axes.set_xlabel("months since joining")
    axes.set_ylabel(f"revenue ({currency})")
    axes.set_title("Event study", fontsize=11, loc="left")
    axes.legend(fontsize=7, loc="upper left")
    axes.grid(alpha=0.3)
    return _png(figure)
