"""Randomized invitation experiments (issue 17, part 2): the ``community_experiment`` block.

:mod:`roi.experiments.iv` is a small two-stage least squares with customer-clustered SEs;
:mod:`roi.experiments.invitations` builds the follow-up customer-months and the estimands.
"""

from roi.experiments.invitations import analyse_experiment, community_experiment
from roi.experiments.iv import IVFit, two_stage_least_squares

__all__ = ["IVFit", "analyse_experiment", "community_experiment", "two_stage_least_squares"]
