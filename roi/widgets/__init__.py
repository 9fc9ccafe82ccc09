"""Notebook dashboards (ipywidgets) that read a run's results; they never fit a model.

Each accepts a finished run: its output folder, its ``results.json``, the loaded dict or a
:class:`roi.run.RunOutputs`.

>>> from roi.widgets import data_overview, lift_explorer, open_run
>>> results = open_run("../out")   # runs the job once if no run is there  # doctest: +SKIP
>>> lift_explorer(results)                  # doctest: +SKIP
"""

from roi.widgets._common import ExportReport, headline, open_run, sentence
from roi.widgets.budget import BudgetPanel, budget_panel
from roi.widgets.engagement import EngagementPanel, engagement_panel
from roi.widgets.lift import LiftExplorer, lift_explorer
from roi.widgets.overview import DataOverview, data_overview
from roi.widgets.paid_media import PaidMediaExplorer, paid_media_explorer
from roi.widgets.retention import RetentionExplorer, retention_explorer

__all__ = ["BudgetPanel", "DataOverview", "EngagementPanel", "ExportReport", "LiftExplorer",
           "PaidMediaExplorer", "RetentionExplorer", "budget_panel", "data_overview",
           "engagement_panel", "headline", "lift_explorer", "open_run", "paid_media_explorer",
           "retention_explorer", "sentence"]
