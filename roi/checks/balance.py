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
        x, treated = np.asarray(features, float), np.asarray(treated, bool)
        base = np.ones(len(x)) if base_weights is None else np.asarray(base_weights, float)
        sd = np.sqrt((x[treated].var(axis=0) + x[~treated].var(axis=0)) / 2)
        sd = np.where(sd > 0, sd, np.nan)
        treated_mean = _mean(x[treated], base[treated])
        before = (treated_mean - _mean(x[~treated], base[~treated])) / sd
        after = (treated_mean - _mean(x[~treated], np.asarray(weights, float)[~treated])) / sd
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


def _mean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (w[:, None] * x).sum(axis=0) / w.sum()
