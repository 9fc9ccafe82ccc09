"""Paid-media models: adstock/saturation components and the Bayesian media-mix model."""

from roi.models.media.components import (
    DelayedAdstock,
    GeometricAdstock,
    HillSaturation,
    LogisticSaturation,
)
from roi.models.media.mmm import MediaMixModel

__all__ = ["DelayedAdstock", "GeometricAdstock", "HillSaturation", "LogisticSaturation",
           "MediaMixModel"]
