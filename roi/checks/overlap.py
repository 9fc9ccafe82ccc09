"""Overlap check: propensity distribution by group, trimming, a warning when overlap is poor.

Examples
--------
>>> import numpy as np
>>> p = np.array([0.2, 0.5, 0.995, 0.1, 0.3, 0.005])
>>> check = OverlapCheck().run(p, treated=np.array([True, True, True, False, False, False]))
>>> check.trimmed_, check.passed_
({'treated': 1, 'control': 1}, False)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

QUANTILES = (0.0, 0.01, 0.05, 0.5, 0.95, 0.99, 1.0)


class OverlapCheck:
    """Propensity quantiles by group, units outside ``[low, high]`` and an overlap verdict.

    Parameters
    ----------
    low, high : float
        Trimming bounds: units with a propensity outside them are left out of the estimate.
    max_treated_trimmed : float
        Share of treated units trimmed above which overlap is called poor.
    min_effective_share : float
        Kish effective sample size of the weighted controls, as a share of the controls,
        below which overlap is called poor (a few controls carry the comparison).
    trims : bool
        Whether the estimator leaves units outside ``[low, high]`` out (IPW, AIPW) or keeps
        them and extrapolates its outcome model to them (regression adjustment); only the
        wording of the warnings changes.

    Severity (the same for every estimator, docs/CONTRACT.md): poor overlap is a warning whose
    text starts with ``"Poor overlap:"``, shown beside the number; ``checks["overlap"]["passed"]``
    is False. It does not fail the convergence gate (``converged`` stays True): the estimate is
    computed as defined, and the warning says how far it leans on few or extrapolated controls.

    Attributes
    ----------
    table_ : DataFrame
        Propensity quantiles (rows) by group (columns ``treated``, ``control``).
    trimmed_ : dict
        Units trimmed per group. ``keep_`` is the mask of units kept.
    warnings_ : list of str
    passed_ : bool
    """

    def __init__(self, *, low: float = 0.01, high: float = 0.99,
                 max_treated_trimmed: float = 0.05, min_effective_share: float = 0.05,
                 trims: bool = True) -> None:
        if not 0 <= low < high <= 1:
            raise ValueError(f"need 0 <= low < high <= 1, got {low}, {high}")
        self.low, self.high, self.trims = low, high, trims
        self.max_treated_trimmed, self.min_effective_share = (max_treated_trimmed,
                                                              min_effective_share)

    def run(self, propensity: np.ndarray, *, treated: np.ndarray) -> OverlapCheck:
        """Tabulate ``propensity`` by ``treated`` (boolean per unit); returns ``self``."""
        p, treated = np.asarray(propensity, float), np.asarray(treated, bool)
        self.keep_ = (p >= self.low) & (p <= self.high)
        self.table_ = pd.DataFrame({name: np.quantile(p[mask], QUANTILES) if mask.any()
                                    else np.full(len(QUANTILES), np.nan)
                                    for name, mask in (("treated", treated),
                                                       ("control", ~treated))},
                                   index=pd.Index(QUANTILES, name="quantile"))
        self.trimmed_ = {"treated": int((treated & ~self.keep_).sum()),
                         "control": int((~treated & ~self.keep_).sum())}
        self.treated_share_trimmed_ = self.trimmed_["treated"] / max(int(treated.sum()), 1)
        self.effective_share_ = _effective_share(p[~treated & self.keep_])
        self.warnings_ = self._warnings()
        self.passed_ = not self.warnings_
        return self

    def _warnings(self) -> list[str]:
        out = []
        fate = ("are left out" if self.trims else
                "have no comparable controls (the outcome model extrapolates to them)")
        if self.treated_share_trimmed_ > self.max_treated_trimmed:
            out.append(f"Poor overlap: {self.treated_share_trimmed_:.1%} of members have a "
                       f"propensity outside [{self.low}, {self.high}] and {fate}.")
        if self.effective_share_ < self.min_effective_share:
            carry = ("a few controls carry the comparison" if self.trims else
                     "few controls resemble the members, so the outcome model extrapolates")
            out.append(f"Poor overlap: the {'weighted ' if self.trims else 'odds-weighted '}"
                       f"controls' effective sample size is {self.effective_share_:.1%} of the "
                       f"controls; {carry}.")
        return out

    def to_checks(self) -> dict[str, Any]:
        """Figures for ``Diagnostics.checks``."""
        return {"bounds": [self.low, self.high], "trimmed": self.trimmed_,
                "treated_share_trimmed": self.treated_share_trimmed_,
                "control_effective_share": self.effective_share_,
                "quantiles": self.table_.to_dict(), "passed": self.passed_}


def _effective_share(p_control: np.ndarray) -> float:
    """Kish effective sample size of ATT weights p / (1 - p), as a share of the controls."""
    if p_control.size == 0:
        return 0.0
    w = p_control / np.clip(1 - p_control, 1e-12, None)
    return float(w.sum() ** 2 / (w**2).sum() / p_control.size)
