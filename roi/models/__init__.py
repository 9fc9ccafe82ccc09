"""Every estimator of the toolkit, importable from one place.

The estimators live in one folder per question they answer (as pymc-marketing splits ``mmm/``
and ``clv/``):

* :mod:`roi.revenue_lift` -- what membership adds to revenue (DiD, regression adjustment,
  IPW/AIPW, the Bayesian hierarchical lift, the naive gap);
* :mod:`roi.retention` -- what membership does to churn (time-varying Cox, Bayesian
  piecewise-exponential survival, curves, retained revenue);
* :mod:`roi.paid_media` -- the return of each paid channel (media-mix model, regression
  baseline, adstock and saturation components, lift tests);
* :mod:`roi.experiments` and :mod:`roi.sensitivity` -- randomized invitations and how fragile
  each number is.

Shared plumbing sits below them (:mod:`roi.inference` samplers and pooling, :mod:`roi.checks`
diagnostics, :mod:`roi.results` the result type). This module only re-exports, lazily, so that
``from roi.models import StaggeredDiD`` does not import PyMC.

Examples
--------
>>> from roi.models import StaggeredDiD, MediaMixModel   # doctest: +SKIP
"""
from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "StaggeredDiD": "roi.revenue_lift.did",
    "NoTreatedUnits": "roi.revenue_lift.did",
    "MultiplicativeDiD": "roi.revenue_lift.did_multiplicative",
    "RegressionAdjustment": "roi.revenue_lift.regression_adjustment",
    "IPW": "roi.revenue_lift.weighting",
    "AIPW": "roi.revenue_lift.weighting",
    "BayesianHierarchicalLift": "roi.revenue_lift.bayes_revenue",
    "NaiveRevenueGap": "roi.revenue_lift.naive_revenue",
    "CoxTimeVarying": "roi.retention.cox_time_varying",
    "NaiveCox": "roi.retention.cox_naive",
    "BayesianPiecewiseSurvival": "roi.retention.bayes_survival",
    "PiecewiseExponentialHazard": "roi.retention.piecewise_exponential",
    "RetentionCurves": "roi.retention.survival_curves",
    "MediaMixModel": "roi.paid_media.mmm",
    "RegressionBaseline": "roi.paid_media.regression_baseline",
    "LiftTest": "roi.paid_media.lift_tests",
    "GeometricAdstock": "roi.paid_media.components",
    "DelayedAdstock": "roi.paid_media.components",
    "HillSaturation": "roi.paid_media.components",
    "LogisticSaturation": "roi.paid_media.components",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'roi.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)


def __dir__() -> list[str]:
    return __all__
