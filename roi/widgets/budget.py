"""Budget panel: paid channels and communities side by side, and sliders that move the money.

The table is the run's ``comparison`` (built from the results when the list is empty). Each
slider sets one channel's or community's spend in the window; the expected revenue change
(posterior mean with its 94% HDI, from :class:`roi.budget.BudgetModel`) follows live. With
"keep total fixed" a move on one slider is taken from (or given to) the others in proportion
to their room; "Optimise" shares the current paid total among the paid channels (each between
50% and 150% of its current spend) for the highest expected revenue.

The CSS classes ``roi-budget-slider`` (sliders), ``roi-budget-readout`` (each slider's spend and
% change) and ``roi-expected-revenue`` (the expected change) are what browser tests look for:
keep them. A value the browser sends back after Python set a slider (snapped to the step) is
not a move: the panel keeps its exact allocation, so Optimise with "keep total fixed" shows the
same total and gain as :meth:`roi.budget.BudgetModel.optimise`.

Examples
--------
>>> from roi.widgets import budget_panel
>>> results = {"paid_media": {"channels": {"a": {"spend": 100.0}},
...     "response_curves": {"multipliers": [0.0, 1.0, 2.0], "spend": {"a": [0.0, 100.0, 200.0]},
...                         "draws": {"a": [[0.0, 300.0, 400.0]]}}}}
>>> panel = budget_panel(results)
>>> panel.sliders["a"].value = 150.0
>>> "+$50.00" in panel.expected.value
True
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from roi.budget import BudgetModel
from roi.comparison import build_comparison
from roi.widgets._common import (
    MEMBER_COLOUR,
    OTHER_COLOUR,
    STYLE,
    csv_link,
    figure_output,
    finite,
    html_table,
    interval_text,
    money,
    results_of,
    symbol,
    warning_list,
)

SLIDER_CLASS = "roi-budget-slider"
EXPECTED_CLASS = "roi-expected-revenue"
READOUT_CLASS = "roi-budget-readout"
SLIDER_STEPS = 200
OPTIMISE_BOUNDS = (0.5, 1.5)


def signed_money(value: Any, currency: str | None = None) -> str:
    """``+$1.00`` / ``-$1.00``: a change always shows its sign.

    Examples
    --------
    >>> signed_money(1.0, "USD"), signed_money(-2.5, "USD"), signed_money(-1e-10, "USD")
    ('+$1.00', '-$2.50', '+$0.00')
    """
    if finite(value):  # to the cent first: a float residue of a kept total is no "-$0.00"
        value = round(float(value), 2) + 0.0
    text = money(value, currency)
    return f"+{text}" if finite(value) and value >= 0 else text


def comparison_html(rows: list[dict[str, Any]], currency: str | None = None) -> str:
    """The comparison rows as an HTML table (missing numbers as em dashes, notes listed)."""
    def dollars(value: Any) -> str:
        return money(value, currency)

    def per_dollar(value: Any) -> str:
        return f"{value:.2f}" if finite(value) else "—"

    body = []
    for row in rows:
        revenue = row.get("incremental_revenue") or {}
        ratio = row.get("revenue_per_dollar") or {}
        body.append([row["name"], row["kind"], dollars(row.get("cost")),
                     dollars(revenue.get("estimate")), interval_text(revenue or None, dollars),
                     per_dollar(ratio.get("estimate")), interval_text(ratio or None, per_dollar),
                     "; ".join(row.get("notes") or [])])
    header = ["name", "kind", "cost", "incremental revenue", "interval", "revenue per dollar",
              "interval", "notes"]
    return html_table(header, body)


def _flat(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Comparison rows with nested entries spread into columns (``revenue_per_dollar_low``)."""
    flat = []
    for row in rows:
        out: dict[str, Any] = {}
        for key, value in row.items():
            if isinstance(value, dict):
                out.update({f"{key}_{k}": v for k, v in value.items()
                            if not isinstance(v, dict)})
            else:
                out[key] = "; ".join(value) if isinstance(value, list) else value
        flat.append(out)
    return flat


class BudgetPanel(widgets.VBox):
    """Comparison table, one slider per channel/community, expected revenue change.

    Attributes
    ----------
    table : HTML
        The comparison of paid channels and communities.
    sliders : dict of FloatSlider
        Spend in the window by name (CSS class ``roi-budget-slider``).
    keep_total : Checkbox
        Hold the total spend fixed while a slider moves.
    optimise : Button
        Best split of the current paid total among the paid channels.
    expected : HTML
        Expected revenue change and its 94% HDI (CSS class ``roi-expected-revenue``).
    model : BudgetModel
    """

    def __init__(self, results: Any, *, seed: int = 0) -> None:
        self.results = results_of(results)
        self.currency = (self.results.get("data") or {}).get("currency") or "USD"
        self.model = BudgetModel.from_results(self.results, seed=seed)
        rows = self.results.get("comparison") or build_comparison(self.results)
        self.table = widgets.HTML(STYLE + "<h4>Cost and incremental revenue in the window</h4>"
                                  + comparison_html(rows, self.currency)
                                  + csv_link(_flat(rows), "comparison.csv"))
        # The allocation itself, exact: a slider shows it rounded to its step, and the browser
        # sends a snapped value back whenever Python sets one (an echo, not a user's move).
        self.allocation = {name: float(self.model.current[name]) for name in self.model.names}
        self.sliders = {name: self._slider(name) for name in self.model.names}
        self.readouts = {name: widgets.HTML() for name in self.model.names}
        for readout in self.readouts.values():
            readout.add_class(READOUT_CLASS)
        self.keep_total = widgets.Checkbox(value=False, description="keep total fixed")
        self.optimise = widgets.Button(description="Optimise", disabled=not self.model.paid,
                                       tooltip="best split of the paid total (50%-150% each)")
        self.optimise.on_click(self._optimise)
        self.expected = widgets.HTML()
        self.expected.add_class(EXPECTED_CLASS)
        self.notes = widgets.HTML()
        self._busy = False
        self._extra_notes: list[str] = []
        self.chart = widgets.Output()
        rows = [widgets.HBox([self.sliders[n], self.readouts[n]]) for n in self.sliders]
        super().__init__(children=[self.table, *rows,
                                   widgets.HBox([self.keep_total, self.optimise]),
                                   self.expected, self.notes, self.chart])
        self._update()

    def __repr__(self) -> str:  # text/plain outside a widget frontend
        return f"BudgetPanel: {self._summary_text(self._evaluate())}"

    def _slider(self, name: str) -> widgets.FloatSlider:
        low, high = self.model.spend_range(name)
        slider = widgets.FloatSlider(value=self.model.current[name], min=low, max=high,
                                     step=(high - low) / SLIDER_STEPS, description=name,
                                     readout=False, continuous_update=False,
                                     style={"description_width": "initial"},
                                     layout=widgets.Layout(width="480px"))
        slider.add_class(SLIDER_CLASS)
        slider.observe(self._moved, names="value")
        return slider

    def spend(self) -> dict[str, float]:
        """The allocation the sliders show (exact, not rounded to the sliders' step)."""
        return dict(self.allocation)

    def _set(self, values: dict[str, float]) -> None:
        """Move the allocation and the sliders without treating it as a user's move."""
        self._busy = True
        try:
            for name, value in values.items():
                self.allocation[name] = float(value)
                self.sliders[name].value = float(value)
        finally:
            self._busy = False

    def _moved(self, change: dict[str, Any]) -> None:
        slider = change["owner"]
        name = slider.description
        # Re-entrant: our own update, or the browser echoing a value we set, snapped to the
        # step (a user's move is at least one step): keep the exact allocation.
        if self._busy or abs(change["new"] - self.allocation[name]) < 0.51 * slider.step:
            return
        self._extra_notes = []
        delta = float(change["new"]) - self.allocation[name]
        self.allocation[name] = float(change["new"])
        if self.keep_total.value:
            self._rebalance(name, delta)
        self._update()

    def _rebalance(self, moved: str, delta: float) -> None:
        """Take ``delta`` from the other sliders in proportion to their room in that direction
        (so none hits its end early); what they cannot absorb is taken back from ``moved``."""
        others = [n for n in self.sliders if n != moved]
        ranges = {n: (self.sliders[n].min, self.sliders[n].max) for n in others}
        room = [(self.allocation[n] - ranges[n][0]) if delta > 0
                else (ranges[n][1] - self.allocation[n]) for n in others]
        absorbed = min(abs(delta), sum(room))
        values = {}
        for name, space in zip(others, room, strict=True):
            share = absorbed * space / sum(room) if sum(room) > 0 else 0.0
            values[name] = self.allocation[name] - share if delta > 0 else \
                self.allocation[name] + share
        if absorbed < abs(delta):
            values[moved] = self.allocation[moved] - (abs(delta) - absorbed) * (
                1 if delta > 0 else -1)
        self._set(values)

    def _optimise(self, _button: Any = None) -> None:
        current = self.model.current
        bounds = {}
        for name in self.model.paid:
            low, high = self.model.spend_range(name)
            bounds[name] = (max(low, OPTIMISE_BOUNDS[0] * current[name]),
                            min(high, OPTIMISE_BOUNDS[1] * current[name]))
        total = sum(self.allocation[n] for n in self.model.paid)
        try:
            best = self.model.optimise(total=total, bounds=bounds)
        except ValueError as exc:
            self._extra_notes = [f"Not optimised: {exc}"]
            self._update()
            return
        self._set({name: best["spend"][name] for name in self.model.paid})
        self.optimised = best
        self._extra_notes = [f"Optimised: the paid total {money(total, self.currency)} shared "
                             "for the highest expected revenue, each channel between 50% and "
                             "150% of its current spend."] + best["notes"]
        self._update()

    def _evaluate(self) -> dict[str, Any] | None:
        if not self.sliders:
            return None
        return self.model.evaluate(self.spend())

    def _summary_text(self, result: dict[str, Any] | None) -> str:
        if result is None:
            return "no channel or community can be moved (see the notes)"
        change = result["revenue_change"]
        total = sum(self.spend().values())
        moved = total - sum(self.model.current.values())
        return (f"expected revenue change {signed_money(change['estimate'], self.currency)} "
                f"({change['interval']} {signed_money(change['low'], self.currency)} to "
                f"{signed_money(change['high'], self.currency)}); total spend "
                f"{money(total, self.currency)} ({signed_money(moved, self.currency)})")

    def _update(self, _change: Any = None) -> None:
        result = self._evaluate()
        text = self._summary_text(result)
        self.expected.value = f"<p><b>{html.escape(text[0].upper() + text[1:])}</b></p>"
        notes = list(self.model.notes) + self._extra_notes + (result or {}).get("notes", [])
        self.notes.value = STYLE + warning_list(dict.fromkeys(notes))
        for name, readout in self.readouts.items():
            readout.value = self.readout(name)
        if result is not None:
            self.chart.outputs = (self._chart_output(result),)

    def readout(self, name: str) -> str:
        """``$12,345 (+10.0%)``: the slider's spend and its change from today's."""
        value, current = self.allocation[name], self.model.current[name]
        change = f" ({(value - current) / current:+.1%})" if current else ""
        return f"<span>{html.escape(money(value, self.currency) + change)}</span>"

    def _chart_output(self, result: dict[str, Any]) -> dict[str, Any]:
        """Spend today and in the scenario, side by side per channel and community."""
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter

        names = list(self.sliders)
        figure = Figure(figsize=(8, 0.5 + 0.35 * len(names)))
        ax = figure.add_subplot()
        rows = range(len(names))
        ax.barh([r + 0.2 for r in rows], [self.model.current[n] for n in names], height=0.4,
                color=OTHER_COLOUR, label="today")
        ax.barh([r - 0.2 for r in rows], [self.allocation[n] for n in names], height=0.4,
                color=MEMBER_COLOUR, label="scenario")
        ax.set_yticks(list(rows), names)
        ax.set_xlabel(f"spend in the window ({symbol(self.currency)})")
        # Thousands with the currency (not 300000), legend beside the axes: inside, it hid
        # the ends of the longest bars, which are the ones a user moves.
        unit = symbol(self.currency)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{unit}{v / 1000:,.0f}k"))
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        return figure_output(figure, "Scenario: " + self._summary_text(result))


def budget_panel(results: Any, *, seed: int = 0) -> BudgetPanel:
    """Comparison table and budget sliders over a run's results.

    Parameters
    ----------
    results : RunOutputs, dict or path
        The run (or its ``results.json`` dict, file or folder).
    seed : int
        Seed of the community revenue-per-dollar draws.

    Returns
    -------
    BudgetPanel
        A ``VBox`` with ``table``, ``sliders``, ``keep_total``, ``optimise`` and ``expected``.
    """
    return BudgetPanel(results, seed=seed)
