"""Notebook dashboards (ipywidgets) that read a run's results; they never fit a model.

>>> from roi.widgets import data_overview, lift_explorer, paid_media_explorer, retention_explorer
"""

from roi.widgets._common import ExportReport
from roi.widgets.budget import BudgetPanel, budget_panel  # noqa: F401 - public, like __all__
from roi.widgets.lift import LiftExplorer, lift_explorer
from roi.widgets.overview import DataOverview, data_overview
from roi.widgets.paid_media import PaidMediaExplorer, paid_media_explorer
from roi.widgets.retention import RetentionExplorer, retention_explorer

__all__ = ["DataOverview", "ExportReport", "LiftExplorer", "PaidMediaExplorer",
           "RetentionExplorer", "data_overview", "lift_explorer", "paid_media_explorer",
           "retention_explorer"]
