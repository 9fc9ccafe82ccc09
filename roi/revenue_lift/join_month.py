"""Joining after a purchase: detect the join-month spike and estimate the lift without it.

Customers often join right after buying (the order confirmation links the Discord). Then the
join month's revenue caused the joining, and a DiD that counts it as effect is biased upwards;
a purchase late in the month before joining also inflates the DiD's base period. The event
study shows it: month 0 far above the months after it, and month -1 above the months before.

:func:`join_month_spike` tests both on the DiD's event study with its covariance
(``StaggeredDiD.dynamic_`` and ``dynamic_vcov_``): the contrast of month 0 with the mean of
months 1-3, and of month -1 with the mean of months -2 to -4, each one-sided at 1%, using only
event times with at least ``min_treated`` treated unit-periods. A lift that falls after the
join month for another reason (a novelty effect that fades) also trips it; the adjusted
estimate is then still the honest number for the months after joining.

:func:`join_month_adjusted` is the contract's ``community_revenue_lift.join_month_adjusted``
block: the DiD with the join month left out of the effect and ``anticipation=1`` (the month
before joining kept out of the base period), the detection, and the rule.

Examples
--------
>>> import pandas as pd
>>> dynamic = pd.DataFrame({"e": [-2, -1, 0, 1, 2], "att": [0.0, 0.0, 9.0, 2.0, 2.0],
...                         "n_treated": [100] * 5})
>>> vcov = pd.DataFrame(0.01 * np.eye(5), index=dynamic["e"], columns=dynamic["e"])
>>> join_month_spike(dynamic, vcov)["detected"]
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

SPIKE_LEVEL = 0.01
LATER_MONTHS = (1, 2, 3)
EARLIER_MONTHS = (-2, -3, -4)
RULE = ("Average lift per member-month from the month after joining (the join month left out "
        "of the effect, the month before joining kept out of the base period: anticipation 1). "
        "When the event study shows a join-month spike (month 0 above months 1-3, or month -1 "
        "above months -2 to -4, one-sided p < 0.01), joining follows purchases and the bottom "
        "line uses this estimate instead of the preferred one.")


def join_month_spike(dynamic: pd.DataFrame, vcov: pd.DataFrame, *, level: float = SPIKE_LEVEL,
                     min_treated: int = 30) -> dict[str, Any]:
    """Test the event study for the signature of joining after a purchase.

    Parameters
    ----------
    dynamic : DataFrame
        Event study with columns ``e``, ``att`` and ``n_treated`` (``StaggeredDiD.dynamic_``).
    vcov : DataFrame
        Covariance of its ``att`` indexed by ``e`` on both axes (``dynamic_vcov_``).
    level : float
        One-sided level of each of the two tests.
    min_treated : int
        Fewest treated unit-periods for an event time to enter a contrast.

    Returns
    -------
    dict
        ``month0`` and ``month_before``: each {``difference``, ``se``, ``z``, ``p_value``}
        (None when a contrast cannot be formed), and ``detected`` (either rejects).
    """
    usable = dynamic[(dynamic["n_treated"] >= min_treated) & np.isfinite(dynamic["att"])]
    att = dict(zip(usable["e"].astype(int), usable["att"], strict=True))
    tests = {"month0": _contrast(att, vcov, 0, LATER_MONTHS),
             "month_before": _contrast(att, vcov, -1, EARLIER_MONTHS)}
    detected = any(t is not None and t["p_value"] < level for t in tests.values())
    return {**tests, "detected": bool(detected), "level": level}


def _contrast(att: dict[int, float], vcov: pd.DataFrame, target: int,
              others: tuple[int, ...]) -> dict[str, float] | None:
    """``att[target] - mean(att[others])`` with its standard error and one-sided p-value."""
    kept = [e for e in others if e in att]
    if target not in att or not kept:
        return None
    events = [target, *kept]
    weights = np.array([1.0] + [-1.0 / len(kept)] * len(kept))
    values = np.array([att[e] for e in events])
    block = vcov.loc[events, events].to_numpy(dtype=float)
    variance = float(weights @ block @ weights)
    if not np.isfinite(variance) or variance <= 0:
        return None
    difference = float(weights @ values)
    z = difference / np.sqrt(variance)
    return {"difference": difference, "se": float(np.sqrt(variance)), "z": float(z),
            "p_value": float(stats.norm.sf(z))}


def join_month_adjusted(unadjusted, adjusted) -> dict[str, Any]:
    """The ``join_month_adjusted`` block from the DiD's result and the adjusted fit's result.

    ``unadjusted`` and ``adjusted`` are :class:`roi.results.EffectResult` (``adjusted`` may be
    None when it could not be fitted: null numbers, detection still reported).
    """
    table, vcov = (unadjusted.tables.get("dynamic"), unadjusted.tables.get("dynamic_vcov"))
    spike = (join_month_spike(table, vcov) if table is not None and vcov is not None
             else {"month0": None, "month_before": None, "detected": False})
    numbers = {"estimate": None, "low": None, "high": None, "interval": "95% CI"}
    if adjusted is not None and adjusted.diagnostics.converged:
        numbers = {k: adjusted.to_contract()[k] for k in numbers}
    return {**numbers, "rule": RULE, "detected": spike["detected"], "method": "did",
            "anticipation": 1, "member_months": None if adjusted is None else adjusted.n_obs,
            "unadjusted": unadjusted.to_contract().get("estimate"),
            "tests": {"month0": spike["month0"], "month_before": spike["month_before"]}}


def warning_text(block: dict[str, Any]) -> str:
    """The run's warning when the spike is detected: both numbers and which one is used."""
    def money(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.2f}"

    return (f"Joining follows purchases: the event study spikes in the join month, so the DiD "
            f"lift ({money(block.get('unadjusted'))} per member-month) counts revenue that "
            f"caused joining; the bottom line uses the join-month-adjusted lift "
            f"({money(block.get('estimate'))} per member-month, from the month after joining).")
