"""Data overview: where the data came from, how much of it, which window, what was excluded.

Examples
--------
>>> from roi.widgets import data_overview
>>> box = data_overview({"data": {"customers": 3, "orders": 9, "members": 2,
...                                "start": "2024-01-01", "end": "2024-06-30"}})
>>> "2024-01-01 to 2024-06-30" in box.table.value
True
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from roi.widgets._common import (
    STYLE,
    ExportReport,
    export_folder,
    html_table,
    results_of,
    warning_list,
)


def _rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    identity = data.get("identity") or {}
    churn = data.get("churn") or {}
    rows = [("source", data.get("source", "—")),
            ("window", f"{data.get('start', '?')} to {data.get('end', '?')}"),
            ("currency", data.get("currency") or "—")]
    rows += [(name, f"{data[name]:,}") for name in ("customers", "orders", "members")
             if isinstance(data.get(name), int)]
    rows += [(name, f"{count:,}") for name, count in (data.get("other_tables") or {}).items()]
    if identity:
        by_id, by_email = (identity.get("linked_by_customer_id", 0),
                           identity.get("linked_by_email", 0))
        rows.append(("member link rate",
                     f"{identity.get('link_rate', 0):.1%} ({by_id:,} by customer_id, "
                     f"{by_email:,} by e-mail, {identity.get('unlinked', 0):,} unlinked)"))
    if "members_before_customer" in data:
        rows.append(("members who joined before buying", f"{data['members_before_customer']:,}"))
    if churn:
        rule = churn.get("rule", "?")
        if "inactivity_days" in churn:
            rule += f" ({churn['inactivity_days']} days without an order)"
        rows.append(("churn rule", rule))
        if "churned_customers" in churn:
            rows.append(("churned customers", f"{churn['churned_customers']:,}"))
    for key in ("communities", "channels"):
        if data.get(key):
            rows.append((key, ", ".join(map(str, data[key]))))
    excluded = data.get("excluded") or {}
    rows += [(f"excluded: {reason}", f"{count:,}") for reason, count in excluded.items()]
    if not excluded:
        rows.append(("excluded", "none"))
    return rows


def _warnings(results: dict[str, Any]) -> list[str]:
    found = [f"data: {note}" for note in (results.get("data") or {}).get("notes", [])]
    for model, diagnostics in (results.get("diagnostics") or {}).items():
        if not diagnostics.get("converged", True):
            found.append(f"{model}: did not converge; its estimate is not used.")
        found += [f"{model}: {w}" for w in diagnostics.get("warnings", [])]
    return found


class DataOverview(widgets.VBox):
    """The run's ``data`` block and every warning, as one HTML widget (``.table``), and an
    "Export report" button (``.export``)."""

    def __init__(self, results_or_outputs: Any) -> None:
        results = results_of(results_or_outputs)
        self.results = results
        self.warnings = _warnings(results)
        body = STYLE + "<h4>Data</h4>" + html_table(["", "value"], _rows(results.get("data", {})))
        body += "<h4>Warnings</h4>" + (warning_list(self.warnings) or "<p>none</p>")
        self.table = widgets.HTML(value=body)
        self.export = ExportReport(results, folder=export_folder(results_or_outputs))
        super().__init__(children=[self.table, self.export])

    def __repr__(self) -> str:  # the text/plain form outside a widget frontend
        data = self.results.get("data", {})
        return (f"DataOverview: {data.get('source', '?')}, {data.get('start', '?')} to "
                f"{data.get('end', '?')}, {data.get('customers', '?'):,} customers, "
                f"{len(self.warnings)} warning(s)")


def data_overview(results_or_outputs: Any) -> DataOverview:
    """Sources, counts, window, link rate, exclusions and warnings of a run, as an HTML table.

    Parameters
    ----------
    results_or_outputs : RunOutputs, dict or path
        What :func:`roi.run.run_models` returned, its ``results`` dict, or ``results.json``
        (the file or the folder holding it).

    Returns
    -------
    DataOverview
        A ``VBox``; its ``table`` attribute is the ``HTML`` widget.
    """
    return DataOverview(results_or_outputs)
