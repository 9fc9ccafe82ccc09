"""Paid-media models: adstock/saturation components, the Bayesian media-mix model, lift-test
calibration and the fast regression baseline."""

from roi.models.media.components import (
    DelayedAdstock,
    GeometricAdstock,
    HillSaturation,
    LogisticSaturation,
)
from roi.models.media.lift_tests import LiftTest
from roi.models.media.mmm import MediaMixModel
from roi.models.media.regression_baseline import RegressionBaseline

__all__ = ["DelayedAdstock", "GeometricAdstock", "HillSaturation", "LiftTest",
           "LogisticSaturation", "MediaMixModel", "RegressionBaseline"]
