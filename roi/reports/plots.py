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

import numpy as np
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


KIND_COLOURS = {"paid": "#1f5f99", "community": "#e07b00"}
KindRow = tuple[str, str, float | None, float | None, float | None, bool]


def per_dollar_chart(rows: Sequence[KindRow], *, break_even: float, currency: str = "$",
                     label: str = "") -> bytes | None:
    """Revenue per dollar of each paid channel and community with its interval, coloured by
    kind, and the break-even line. ``rows`` are ``(name, kind, estimate, low, high,
    converged)``; an unconverged row is drawn hollow in red."""
    rows = [row for row in rows if _finite(row[2])]
    if not rows:
        return None
    figure = Figure(figsize=(7.0, 0.42 * len(rows) + 1.4))
    axes = figure.add_subplot()
    for position, (_, kind, estimate, low, high, ok) in enumerate(reversed(rows)):
        colour = KIND_COLOURS.get(kind, "#7f8c8d") if ok else BAD_COLOUR
        if _finite(low) and _finite(high):
            axes.plot([low, high], [position, position], color=colour, linewidth=2.5)
        axes.plot([estimate], [position], "o", color=colour, markersize=8,
                  markerfacecolor=colour if ok else "white")
    axes.set_yticks(range(len(rows)), [f"{name} ({kind})" + ("" if ok else " NOT CONVERGED")
                                       for name, kind, *_, ok in reversed(rows)])
    axes.axvline(break_even, color=BAD_COLOUR, linestyle="--", linewidth=1.2)
    axes.text(break_even, len(rows) - 0.45, f" break-even {currency}{break_even:.2f}",
              color=BAD_COLOUR, fontsize=8, va="bottom")
    for kind, colour in KIND_COLOURS.items():
        axes.plot([], [], "o-", color=colour, label=kind)
    axes.legend(fontsize=8, loc="best")
    axes.set_xlabel(label or f"revenue per {currency}1 spent (interval)")
    axes.set_ylim(-0.7, len(rows) - 0.1)
    axes.grid(axis="x", alpha=0.3)
    axes.set_title(f"Revenue per {currency}1: paid channels and communities", fontsize=11,
                   loc="left")
    return _png(figure)


def share_chart(rows: Sequence[tuple[str, str, float | None, float | None]]) -> bytes | None:
    """Share of spend against share of incremental revenue, per channel and community.
    ``rows`` are ``(name, kind, spend, revenue)``; shares are of the rows' totals."""
    rows = [r for r in rows if _finite(r[2]) and _finite(r[3]) and r[2] >= 0]
    spend, effect = sum(r[2] for r in rows), sum(max(r[3], 0.0) for r in rows)
    if not rows or spend <= 0 or effect <= 0:
        return None
    figure = Figure(figsize=(7.0, 0.45 * len(rows) + 1.3))
    axes = figure.add_subplot()
    positions = list(range(len(rows)))[::-1]
    axes.barh([p + 0.2 for p in positions], [r[2] / spend for r in rows], height=0.38,
              color="#b0b7bf", label="share of spend")
    axes.barh([p - 0.2 for p in positions], [max(r[3], 0.0) / effect for r in rows],
              height=0.38, color=[KIND_COLOURS.get(r[1], OK_COLOUR) for r in rows],
              label="share of incremental revenue (colour = kind)")
    axes.set_yticks(positions, [f"{r[0]} ({r[1]})" for r in rows])
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0%}"))
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(axis="x", alpha=0.3)
    axes.set_title("Share of spend vs share of effect (estimates)", fontsize=11, loc="left")
    return _png(figure)


def response_multiples(curves: dict[str, Curve], current: dict[str, float | None], *,
                       currency: str = "$",
                       optimal: dict[str, float | None] | None = None) -> bytes | None:
    """One small panel per channel: revenue caused against spend, mean and 94% HDI band, a
    vertical line at today's spend and a dashed one at the recommended spend (``optimal``,
    the budget optimiser's), panels with their own scales so bands never overlap."""
    optimal = optimal or {}
    if not curves:
        return None
    columns = 2 if len(curves) > 1 else 1
    rows = math.ceil(len(curves) / columns)
    figure = Figure(figsize=(7.0, 2.3 * rows + 0.4))
    for index, (name, (spend, mean, low, high)) in enumerate(curves.items()):
        axes = figure.add_subplot(rows, columns, index + 1)
        colour = PALETTE[index % len(PALETTE)]
        axes.fill_between(spend, low, high, color=colour, alpha=0.2, linewidth=0)
        axes.plot(spend, mean, color=colour)
        now = current.get(name)
        if _finite(now):
            axes.axvline(now, color="black", linestyle=":", linewidth=1)
            if spend[0] <= now <= spend[-1]:
                axes.plot([now], [_interpolate(spend, mean, now)], "o", color="black",
                          markersize=4)
        best = optimal.get(name)
        if _finite(best) and spend[0] <= best <= spend[-1]:
            axes.axvline(best, color=KIND_COLOURS["community"], linestyle="--", linewidth=1.2)
        axes.set_title(name, fontsize=9, loc="left")
        axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k"))
        axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k"))
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
    marked = "; dashed = recommended" if optimal else ""
    figure.suptitle(f"Response curves: revenue caused ({currency}) against spend in the window "
                    f"(94% HDI; dotted = current spend{marked})", fontsize=9, x=0.01, ha="left")
    figure.tight_layout()
    return _png(figure)


def stacked_contribution_chart(series: dict[str, tuple[list[str], list, list, list]], *,
                               currency: str = "$") -> bytes | None:
    """Weekly revenue caused, stacked by channel (posterior means): the decomposition."""
    if not series:
        return None
    weeks = next(iter(series.values()))[0]
    layers = {name: [v if _finite(v) else 0.0 for v in mean]
              for name, (w, mean, _, _) in series.items() if w == weeks}
    if not layers:
        return None
    figure = Figure(figsize=(7.0, 3.2))
    axes = figure.add_subplot()
    positions = list(range(len(weeks)))
    axes.stackplot(positions, *layers.values(), labels=list(layers),
                   colors=[PALETTE[i % len(PALETTE)] for i in range(len(layers))], alpha=0.85)
    step = max(1, len(weeks) // 6)
    axes.set_xticks(range(0, len(weeks), step), weeks[::step], fontsize=7)
    _money_axis(axes)
    axes.set_ylabel(f"revenue caused per week ({currency})")
    axes.set_title("Contribution by channel per week (stacked means)", fontsize=11, loc="left")
    axes.legend(fontsize=7, loc="upper left", ncols=min(4, len(layers)))
    axes.grid(alpha=0.3)
    return _png(figure)


CurvePoint = tuple[float, float, float | None, float | None]


def retention_curve_chart(curves: dict[str, dict[str, list[CurvePoint]]], *,
                          interval: str = "95% CI") -> bytes | None:
    """Share still a customer by months since the landmark, one panel per landmark, a line and
    band per group (members, non-members). ``curves[landmark][group]`` are ``(month, share,
    low, high)``."""
    curves = {k: {g: sorted(p for p in pts if _finite(p[0]) and _finite(p[1]))
                  for g, pts in groups.items()} for k, groups in curves.items()}
    curves = {k: {g: p for g, p in groups.items() if p} for k, groups in curves.items()}
    curves = {k: groups for k, groups in curves.items() if groups}
    if not curves:
        return None
    figure = Figure(figsize=(7.0, 2.8), layout="constrained")
    panels = figure.subplots(1, len(curves), sharey=True, squeeze=False)[0]
    colours = {"member": KIND_COLOURS["community"], "non-member": "#7f8c8d",
               "all": OK_COLOUR}
    for axes, (landmark, groups) in zip(panels, curves.items(), strict=True):
        for index, (group, points) in enumerate(groups.items()):
            colour = colours.get(group, PALETTE[index % len(PALETTE)])
            banded = [p for p in points if _finite(p[2]) and _finite(p[3])]
            axes.fill_between([p[0] for p in banded], [p[2] for p in banded],
                              [p[3] for p in banded], color=colour, alpha=0.2, linewidth=0)
            axes.plot([p[0] for p in points], [p[1] for p in points], "o-", color=colour,
                      markersize=3, label=group)
        axes.set_title(f"still here {landmark} months after first seen", fontsize=8, loc="left")
        axes.set_xlabel("months since the landmark", fontsize=8)
        axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
    panels[0].set_ylabel(f"share still a customer ({interval})", fontsize=8)
    panels[0].legend(fontsize=7, loc="lower left")
    return _png(figure)


def event_study_multiples(studies: dict[str, Sequence[tuple]], *, currency: str = "$",
                          interval: str = "95% CI") -> bytes | None:
    """One small event-study panel per community (its own DiD against never-members), on a
    shared scale so communities can be compared; months before joining shaded."""
    studies = {name: [p for p in points if _finite(p[0]) and _finite(p[1])]
               for name, points in studies.items()}
    studies = {name: points for name, points in studies.items() if points}
    if not studies:
        return None
    columns = 2 if len(studies) > 1 else 1
    rows = math.ceil(len(studies) / columns)
    figure = Figure(figsize=(7.0, 2.2 * rows + 0.4), layout="constrained")
    panels = figure.subplots(rows, columns, sharex=True, sharey=True, squeeze=False).ravel()
    for axes, (name, points) in zip(panels, studies.items(), strict=False):
        months = [p[0] for p in points]
        if min(months) < 0:
            axes.axvspan(min(months) - 0.5, -0.5, color="#dddddd", alpha=0.6)
        axes.axhline(0, color="black", linewidth=0.8)
        banded = [p for p in points if _finite(p[2]) and _finite(p[3])]
        axes.fill_between([p[0] for p in banded], [p[2] for p in banded],
                          [p[3] for p in banded], color=KIND_COLOURS["community"], alpha=0.2)
        axes.plot(months, [p[1] for p in points], "o-", color=KIND_COLOURS["community"],
                  markersize=2)
        axes.set_title(name, fontsize=9, loc="left")
        axes.tick_params(labelsize=7)
        axes.grid(alpha=0.3)
    for axes in panels[len(studies):]:
        axes.set_visible(False)
    cut = _robust_limits(studies)
    if cut is not None:
        panels[0].set_ylim(*cut)   # shared: sets every panel
    figure.supxlabel("months since joining (shaded: before joining, should be near 0)"
                     + ("; scale cut at the 2nd-98th percentile of the bands: months with "
                        "few members run off the panel" if cut is not None else ""),
                     fontsize=8)
    figure.supylabel(f"effect per member-month ({currency}, {interval})", fontsize=8)
    return _png(figure)


def _robust_limits(studies: dict[str, Sequence[tuple]]) -> tuple[float, float] | None:
    """Shared y-limits from the 2nd-98th percentiles of every band and estimate, or None when
    they would not cut by more than half: with 30 communities, a few months with a handful of
    members (bands of +-4,000) flattened every other panel to a line."""
    values = np.array([v for points in studies.values() for p in points
                       for v in (p[1], p[2], p[3]) if _finite(v)], dtype=float)
    if values.size < 20:
        return None
    low, high = np.percentile(values, [2, 98])
    pad = 0.1 * (high - low)
    low, high = min(low - pad, 0.0), max(high + pad, 0.0)
    if high - low >= 0.5 * (values.max() - values.min()):
        return None
    return float(low), float(high)


FitWeek = tuple[str, float | None, float | None, float | None, float | None]


def model_fit_chart(weeks: Sequence[FitWeek], *, r_squared: float | None,
                    mape: float | None, currency: str = "$",
                    interval: str = "94% HDI") -> bytes | None:
    """Actual weekly revenue (dots) against the model's prediction (line) and its band, with
    R-squared and MAPE in the title: ``weeks`` are ``(week, actual, predicted, low, high)``."""
    points = [w for w in weeks if _finite(w[1]) and _finite(w[2])]
    if len(points) < 2:
        return None
    figure = Figure(figsize=(7.0, 3.0))
    axes = figure.add_subplot()
    positions = list(range(len(points)))
    banded = [(i, w) for i, w in zip(positions, points, strict=True)
              if _finite(w[3]) and _finite(w[4])]
    if banded:
        axes.fill_between([i for i, _ in banded], [w[3] for _, w in banded],
                          [w[4] for _, w in banded], color=OK_COLOUR, alpha=0.18, linewidth=0,
                          label=f"predicted, {interval}")
    axes.plot(positions, [w[2] for w in points], color=OK_COLOUR, linewidth=1.4,
              label="predicted (mean)")
    axes.plot(positions, [w[1] for w in points], "o", color="black", markersize=2.5,
              label="actual")
    step = max(1, len(points) // 6)
    axes.set_xticks(positions[::step], [w[0] for w in points][::step], fontsize=7)
    _money_axis(axes)
    axes.tick_params(axis="y", labelsize=7)
    axes.set_ylabel(f"revenue per week ({currency})", fontsize=8)
    stats = [f"R\u00b2 {r_squared:.2f}" if _finite(r_squared) else "",
             f"MAPE {mape:.1%}" if _finite(mape) else ""]
    axes.set_title("Model fit: actual vs predicted weekly revenue"
                   + (f" ({', '.join(s for s in stats if s)})" if any(stats) else ""),
                   fontsize=10, loc="left")
    axes.legend(fontsize=7, loc="upper left", ncols=3)
    axes.grid(alpha=0.3)
    return _png(figure)


Decay = tuple[list[float], list[float], list[float], float | None]


def adstock_multiples(decays: dict[str, Decay], *, max_lag: int = 12,
                      interval: str = "94% HDI") -> bytes | None:
    """One small panel per channel: share of an ad's effect landing each week after the spend
    (mean bars, interval whiskers) and the half-life in the title. ``decays`` maps a channel to
    ``(mean, low, high, half_life_weeks)`` per lag."""
    decays = {k: v for k, v in decays.items() if v[0]}
    if not decays:
        return None
    columns = 2 if len(decays) > 1 else 1
    rows = math.ceil(len(decays) / columns)
    figure = Figure(figsize=(7.0, 1.9 * rows + 0.5))
    for index, (name, (mean, low, high, half)) in enumerate(decays.items()):
        axes = figure.add_subplot(rows, columns, index + 1)
        lags = list(range(min(len(mean), max_lag + 1)))
        colour = PALETTE[index % len(PALETTE)]
        axes.bar(lags, [mean[k] for k in lags], color=colour, alpha=0.75, width=0.7)
        if len(low) >= len(lags) and len(high) >= len(lags):
            axes.errorbar(lags, [mean[k] for k in lags],
                          yerr=[[max(0.0, mean[k] - low[k]) for k in lags],
                                [max(0.0, high[k] - mean[k]) for k in lags]],
                          fmt="none", ecolor="black", elinewidth=0.8, capsize=1.5)
        said = f"half of the effect within {half:.1f} weeks" if _finite(half) else ""
        axes.set_title(f"{name}: {said}" if said else name, fontsize=8, loc="left")
        axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
        axes.tick_params(labelsize=7)
        axes.set_xlabel("weeks after the spend", fontsize=7)
        axes.grid(axis="y", alpha=0.3)
    figure.suptitle(f"How long an ad's effect lasts: share of it landing each week ({interval})",
                    fontsize=9, x=0.01, ha="left")
    figure.tight_layout()
    return _png(figure)


def budget_chart(rows: Sequence[tuple[str, float | None, float | None]], *,
                 currency: str = "$") -> bytes | None:
    """Current against recommended spend per channel (grouped horizontal bars)."""
    rows = [r for r in rows if _finite(r[1]) and _finite(r[2])]
    if not rows:
        return None
    figure = Figure(figsize=(7.0, 0.55 * len(rows) + 1.1))
    axes = figure.add_subplot()
    positions = list(range(len(rows)))[::-1]
    axes.barh([p + 0.2 for p in positions], [r[1] for r in rows], height=0.38,
              color="#b0b7bf", label="current")
    axes.barh([p - 0.2 for p in positions], [r[2] for r in rows], height=0.38,
              color=OK_COLOUR, label="recommended")
    axes.set_yticks(positions, [r[0] for r in rows], fontsize=8)
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{currency}{v / 1000:,.0f}k"))
    axes.tick_params(axis="x", labelsize=7)
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(axis="x", alpha=0.3)
    axes.set_title("Spend in the window: current vs recommended", fontsize=10, loc="left")
    return _png(figure)
