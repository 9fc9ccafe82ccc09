"""Canonical data layer: schema, validation, typing and the three in-database aggregations."""

from roi.data.dataset import DataOptions, Dataset, load_dataset
from roi.data.errors import DataProblem, DataValidationError, RoiError, SourceError
from roi.data.schema import TABLE_NAMES, TABLES
from roi.data.source import CanonicalSource, mask_url

__all__ = ["TABLES", "TABLE_NAMES", "CanonicalSource", "DataOptions", "DataProblem",
           "DataValidationError", "Dataset", "RoiError", "SourceError", "load_dataset",
           "mask_url"]
