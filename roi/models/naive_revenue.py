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
import statsmodels.api as sm

from roi.results import CI95, Diagnostics, EffectResult


class NaiveRevenueGap:
    """Mean revenue per customer-month of ever-members minus never-members."""

    def fit(self, panel: pd.DataFrame, *, unit: str = "customer_id", outcome: str = "revenue",
            join_time: str = "join_month_index", active: str | None = None,
            group: str | None = None) -> NaiveRevenueGap:
        """Fit on a tidy panel; ``active`` selects rows (e.g. whole-month customers)."""
        rows = panel[panel[active].astype(bool)] if active else panel
        ever = rows[join_time].notna()
        self.result_ = self._gap(rows, ever, unit=unit, outcome=outcome)
        if group is not None:
            for name in sorted(rows.loc[ever, group].dropna().unique()):
                keep = ~ever | (rows[group] == name)
                sub = self._gap(rows[keep], ever[keep], unit=unit, outcome=outcome)
                self.result_.by_group[str(name)] = sub.to_contract()
        return self

    def _gap(self, rows: pd.DataFrame, ever: pd.Series, *, unit: str,
             outcome: str) -> EffectResult:
        if ever.all() or not ever.any():
            return _refused("no never-members" if ever.any() else "no members")
        design = sm.add_constant(ever.astype(float).to_numpy(), has_constant="add")
        codes = pd.factorize(rows[unit])[0]
        fit = sm.OLS(rows[outcome].to_numpy(dtype=float), design).fit(
            cov_type="cluster", cov_kwds={"groups": codes})
        low, high = fit.conf_int(alpha=0.05)[1]
        return EffectResult(method="naive", estimand="community_revenue_lift",
                            estimate=float(fit.params[1]), low=float(low), high=float(high),
                            interval=CI95, scale="currency per customer-month",
                            n_treated=int(rows.loc[ever.to_numpy(), unit].nunique()),
                            n_obs=int(np.sum(ever)))

    def summary(self) -> pd.DataFrame:
        return self.result_.summary()


def _refused(missing: str) -> EffectResult:
    """No comparison possible: null numbers, not converged, the reason in the warnings."""
    reason = f"{missing} among the customer-months to compare with"
    diagnostics = Diagnostics(converged=False, checks={"refused": reason})
    diagnostics.warn(f"naive: not estimated: {reason}.")
    nan = float("nan")
    return EffectResult(method="naive", estimand="community_revenue_lift", estimate=nan,
                        low=nan, high=nan, interval=CI95, scale="currency per customer-month",
                        diagnostics=diagnostics)
