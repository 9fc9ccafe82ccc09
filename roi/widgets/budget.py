"""Budget panel: paid channels and communities side by side, and sliders that move the money.

The table is the run's ``comparison`` (built from the results when the list is empty). Each
slider sets one channel's or community's spend in the window; the expected revenue change
(posterior mean with its 94% HDI, from :class:`roi.budget.BudgetModel`) follows live. With
"keep total fixed" a move on one slider is taken from (or given to) the others in proportion
to their room; "Optimise" shares the current paid total among the paid channels (each between
50% and 150% of its current spend) for the highest expected revenue.

The CSS classes ``roi-budget-slider`` (sliders) and ``roi-expected-revenue`` (the expected
change) are what browser tests look for: keep them.

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
    STYLE,
    finite,
    html_table,
    interval_text,
    money,
    results_of,
    warning_list,
)

SLIDER_CLASS = "roi-budget-slider"
EXPECTED_CLASS = "roi-expected-revenue"
SLIDER_STEPS = 200
OPTIMISE_BOUNDS = (0.5, 1.5)


def signed_money(value: Any, currency: str | None = None) -> str:
    """``+$1.00`` / ``-$1.00``: a change always shows its sign.

    Examples
    --------
    >>> signed_money(1.0, "USD"), signed_money(-2.5, "USD")
    ('+$1.00', '-$2.50')
    """
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
                                  + comparison_html(rows, self.currency))
        self.sliders = {name: self._slider(name) for name in self.model.names}
        self.keep_total = widgets.Checkbox(value=False, description="keep total fixed")
        self.optimise = widgets.Button(description="Optimise", disabled=not self.model.paid,
                                       tooltip="best split of the paid total (50%-150% each)")
        self.optimise.on_click(self._optimise)
        self.expected = widgets.HTML()
        self.expected.add_class(EXPECTED_CLASS)
        self.notes = widgets.HTML()
        self._busy = False
        self._extra_notes: list[str] = []
        super().__init__(children=[self.table, *self.sliders.values(),
                                   widgets.HBox([self.keep_total, self.optimise]),
                                   self.expected, self.notes])
        self._update()

    def __repr__(self) -> str:  # text/plain outside a widget frontend
        return f"BudgetPanel: {self._summary_text(self._evaluate())}"

    def _slider(self, name: str) -> widgets.FloatSlider:
        low, high = self.model.spend_range(name)
        slider = widgets.FloatSlider(value=self.model.current[name], min=low, max=high,
                                     step=(high - low) / SLIDER_STEPS, description=name,
                                     readout_format=",.0f", continuous_update=True,
                                     style={"description_width": "initial"},
                                     layout=widgets.Layout(width="480px"))
        slider.add_class(SLIDER_CLASS)
        slider.observe(self._moved, names="value")
        return slider

    def spend(self) -> dict[str, float]:
        """The allocation the sliders show."""
        return {name: float(s.value) for name, s in self.sliders.items()}

    def _moved(self, change: dict[str, Any]) -> None:
        if self._busy:
            return
        self._extra_notes = []
        if self.keep_total.value:
            self._rebalance(change["owner"], change["new"] - change["old"])
        self._update()

    def _rebalance(self, moved: widgets.FloatSlider, delta: float) -> None:
        """Take ``delta`` from the other sliders in proportion to their room in that direction
        (so none hits its end early); what they cannot absorb is taken back from ``moved``."""
        others = [s for s in self.sliders.values() if s is not moved]
        room = [(s.value - s.min) if delta > 0 else (s.max - s.value) for s in others]
        absorbed = min(abs(delta), sum(room))
        self._busy = True
        try:
            for slider, space in zip(others, room, strict=True):
                share = absorbed * space / sum(room) if sum(room) > 0 else 0.0
                slider.value = slider.value - share if delta > 0 else slider.value + share
            if absorbed < abs(delta):
                moved.value = moved.value - (abs(delta) - absorbed) * (1 if delta > 0 else -1)
        finally:
            self._busy = False

    def _optimise(self, _button: Any = None) -> None:
        current = self.model.current
        bounds = {}
        for name in self.model.paid:
            low, high = self.model.spend_range(name)
            bounds[name] = (max(low, OPTIMISE_BOUNDS[0] * current[name]),
                            min(high, OPTIMISE_BOUNDS[1] * current[name]))
        total = sum(self.sliders[n].value for n in self.model.paid)
        try:
            best = self.model.optimise(total=total, bounds=bounds)
        except ValueError as exc:
            self._extra_notes = [f"Not optimised: {exc}"]
            self._update()
            return
        self._busy = True
        try:
            for name in self.model.paid:
                self.sliders[name].value = best["spend"][name]
        finally:
            self._busy = False
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
