"""Notebook dashboards (ipywidgets) that read a run's results; they never fit a model.

>>> from roi.widgets import data_overview, lift_explorer, retention_explorer
"""

from roi.widgets.lift import LiftExplorer, lift_explorer
from roi.widgets.overview import DataOverview, data_overview
from roi.widgets.retention import RetentionExplorer, retention_explorer

__all__ = ["DataOverview", "LiftExplorer", "RetentionExplorer", "data_overview",
           "lift_explorer", "retention_explorer"]
