"""Paid-media models: adstock/saturation components, the Bayesian media-mix model, lift-test
calibration and the fast regression baseline."""

from roi.paid_media.components import (
    DelayedAdstock,
    GeometricAdstock,
    HillSaturation,
    LogisticSaturation,
)
from roi.paid_media.lift_tests import LiftTest
from roi.paid_media.mmm import MediaMixModel
from roi.paid_media.regression_baseline import RegressionBaseline

__all__ = ["DelayedAdstock", "GeometricAdstock", "HillSaturation", "LiftTest",
           "LogisticSaturation", "MediaMixModel", "RegressionBaseline"]
