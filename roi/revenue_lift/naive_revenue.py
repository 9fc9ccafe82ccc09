"""The naive community revenue number that dashboards report: ever-members vs never-members.

It is biased by construction (the best customers are the ones who join) and is always shown next
to the causal estimates so the reader sees how far they move. Interval: 95% CI from OLS of revenue
on an ever-member indicator with errors clustered by customer.

Examples
--------
>>> import pandas as pd
>>> panel = pd.DataFrame({"customer_id": ["a", "a", "b", "b", "c", "c"],
...                       "revenue": [10.0, 12.0, 5.0, 7.0, 4.0, 6.0],
...                       "join_month_index": [1, 1, None, None, None, None]})
>>> round(NaiveRevenueGap().fit(panel).result_.estimate, 2)
5.5
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from roi.results import CI95, Diagnostics, EffectResult
from roi.revenue_lift.panel_input import never_treated


class NaiveRevenueGap:
    """Mean revenue per customer-month of ever-members minus never-members."""

    def fit(self, panel: pd.DataFrame, *, unit: str = "customer_id", outcome: str = "revenue",
            join_time: str = "join_month_index", active: str | None = None,
            group: str | None = None, time: str | None = None,
            community: str | None = None) -> NaiveRevenueGap:
        """Fit on a tidy panel; ``active`` selects rows (e.g. whole-month customers).

        ``join_time`` is the first treated period: 0, NaN or (with ``time``) a period after the
        last one means never a member, as in every estimator
        (:func:`roi.revenue_lift.panel_input.never_treated`). ``community`` (or its older name
        ``group``) adds one gap per community.
        """
        group = community or group
        columns = list(dict.fromkeys([unit, outcome, join_time, *([group] if group else []),
                                      *([time] if time else [])]))
        # Only the columns used: a 13M-row panel is not copied whole (twice per community).
        rows = panel.loc[panel[active].astype(bool), columns] if active else panel[columns]
        periods = pd.unique(panel[time].to_numpy()) if time else None
        ever = ~never_treated(rows[join_time], periods=periods)
        units = pd.factorize(rows[unit])[0]
        outcomes = rows[outcome].to_numpy(dtype=float)
        self.result_ = _gap(outcomes, ever, units)
        if group is not None:
            for name in sorted(rows.loc[ever, group].dropna().unique()):
                keep = ~ever | (rows[group] == name).to_numpy()
                sub = _gap(outcomes[keep], ever[keep], pd.factorize(units[keep])[0])
                self.result_.by_group[str(name)] = sub.to_contract()
        return self

    def summary(self) -> pd.DataFrame:
        return self.result_.summary()


def _gap(outcomes: np.ndarray, ever: np.ndarray, units: np.ndarray) -> EffectResult:
    """Difference in means with the cluster-robust SE of OLS on ``[1, ever]``.

    For that design the OLS slope is ``mean(ever) - mean(never)`` and each row's term of the
    sandwich is its residual over its group's size (minus for never-members), summed by unit;
    statsmodels' small-sample factor ``G / (G - 1) * (N - 1) / (N - 2)`` and normal quantiles,
    as ``sm.OLS(...).fit(cov_type="cluster")`` (a test checks the equality). Written out because
    statsmodels holds several copies of a 10M-row design.
    """
    if ever.all() or not ever.any():
        return _refused("no never-members" if ever.any() else "no members")
    n_ever, n_never = int(ever.sum()), int((~ever).sum())
    mean_ever, mean_never = outcomes[ever].mean(), outcomes[~ever].mean()
    terms = np.where(ever, (outcomes - mean_ever) / n_ever, -(outcomes - mean_never) / n_never)
    by_unit = np.bincount(units, weights=terms)
    n, clusters = len(outcomes), len(by_unit)
    se = np.sqrt(np.sum(by_unit**2) * clusters / (clusters - 1) * (n - 1) / (n - 2))
    estimate = float(mean_ever - mean_never)
    z = stats.norm.ppf(0.975)
    return EffectResult(method="naive", estimand="community_revenue_lift", estimate=estimate,
                        low=estimate - z * se, high=estimate + z * se, interval=CI95,
                        scale="currency per customer-month",
                        n_treated=int(len(np.unique(units[ever]))), n_obs=n_ever)


def _refused(missing: str) -> EffectResult:
    """No comparison possible: null numbers, not converged, the reason in the warnings."""
    reason = f"{missing} among the customer-months to compare with"
    diagnostics = Diagnostics(converged=False, checks={"refused": reason})
    diagnostics.warn(f"naive: not estimated: {reason}.")
    nan = float("nan")
    return EffectResult(method="naive", estimand="community_revenue_lift", estimate=nan,
                        low=nan, high=nan, interval=CI95, scale="currency per customer-month",
                        diagnostics=diagnostics)
