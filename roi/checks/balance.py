"""Balance check: standardised mean differences of covariates before and after weighting.

SMD = (treated mean - control mean) / sqrt((treated variance + control variance) / 2), with the
unweighted variances in the denominator both times (so only the means move), as in
Austin (2009) and cobalt's default.

Examples
--------
>>> import numpy as np
>>> x = np.array([[1.0], [2.0], [3.0], [0.0], [1.0], [2.0]])
>>> treated = np.array([True, True, True, False, False, False])
>>> check = BalanceCheck().run(x, treated=treated, weights=np.array([1, 1, 1, 0.5, 1, 2.0]),
...                            names=["x"])
>>> check.table_.round(3).to_dict("list")
{'smd_before': [1.225], 'smd_after': [0.7]}
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class BalanceCheck:
    """SMD per covariate before and after weighting; warns when any |SMD| after > threshold.

    Attributes
    ----------
    table_ : DataFrame
        Indexed by covariate: ``smd_before``, ``smd_after``.
    max_smd_after_ : float
    warnings_ : list of str
    passed_ : bool
    """

    def __init__(self, *, threshold: float = 0.1) -> None:
        self.threshold = threshold

    def run(self, features: np.ndarray, *, treated: np.ndarray, weights: np.ndarray,
            names: list[str], base_weights: np.ndarray | None = None) -> BalanceCheck:
        """``weights`` apply to controls (treated weight is taken as ``base_weights`` or 1)."""
        moments = BalanceMoments().add(features, treated=treated, weights=weights,
                                       base_weights=base_weights)
        return self.run_moments(moments, names=names)

    def run_moments(self, moments: BalanceMoments, *, names: list[str]) -> BalanceCheck:
        """The check from sums accumulated block by block (see :class:`BalanceMoments`)."""
        treated, control = moments.sums["treated"], moments.sums["control"]
        sd = np.sqrt((_variance(treated) + _variance(control)) / 2)
        sd = np.where(sd > 0, sd, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            treated_mean = treated["base_x"] / treated["base"]
            before = (treated_mean - control["base_x"] / control["base"]) / sd
            after = (treated_mean - control["weight_x"] / control["weight"]) / sd
        self.table_ = pd.DataFrame({"smd_before": before, "smd_after": after},
                                   index=pd.Index(names, name="covariate"))
        self.max_smd_after_ = float(np.nanmax(np.abs(after))) if len(names) else 0.0
        bad = self.table_.index[np.abs(self.table_["smd_after"]) > self.threshold].tolist()
        self.warnings_ = ([f"Covariates still imbalanced after weighting (|SMD| > "
                           f"{self.threshold}): {', '.join(map(str, bad))}."] if bad else [])
        self.passed_ = not bad
        return self

    def to_checks(self) -> dict[str, Any]:
        """Figures for ``Diagnostics.checks``."""
        return {"threshold": self.threshold, "max_abs_smd_after": self.max_smd_after_,
                "smd": self.table_.to_dict("index"), "passed": self.passed_}


class BalanceMoments:
    """Per group (treated, control): count, sums and sums of squares of the features, and their
    base-weighted and weighted sums, added one block of units at a time (a stacked design of
    1M customers would not hold every cohort's features at once).

    Examples
    --------
    >>> x = np.array([[1.0], [3.0], [0.0], [2.0]])
    >>> moments = BalanceMoments().add(x, treated=np.array([True, True, False, False]),
    ...                                weights=np.ones(4))
    >>> float(moments.sums["treated"]["x"][0]), int(moments.sums["control"]["n"])
    (4.0, 2)
    """

    def __init__(self) -> None:
        self.sums: dict[str, dict[str, Any]] = {}

    def add(self, features: np.ndarray, *, treated: np.ndarray, weights: np.ndarray,
            base_weights: np.ndarray | None = None) -> BalanceMoments:
        x, treated = np.asarray(features, float), np.asarray(treated, bool)
        base = np.ones(len(x)) if base_weights is None else np.asarray(base_weights, float)
        weights = np.asarray(weights, float)
        for group, rows in (("treated", treated), ("control", ~treated)):
            part = {"n": int(rows.sum()), "x": x[rows].sum(axis=0),
                    "square": (x[rows] ** 2).sum(axis=0), "base": base[rows].sum(),
                    "base_x": base[rows] @ x[rows], "weight": weights[rows].sum(),
                    "weight_x": weights[rows] @ x[rows]}
            if group in self.sums:
                part = {key: self.sums[group][key] + value for key, value in part.items()}
            self.sums[group] = part
        return self


def _variance(part: dict[str, Any]) -> np.ndarray:
    """Population variance from the sums; exactly zero for a constant feature."""
    n = part["n"]
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = part["x"] / n
        variance = part["square"] / n - mean**2
    # cancellation leaves a constant feature at ~1e-17 instead of 0
    return np.where(variance > 1e-12 * np.maximum(mean**2, 1.0), variance, 0.0)
