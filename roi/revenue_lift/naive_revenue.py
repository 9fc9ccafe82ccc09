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
        names = (sorted(rows.loc[ever, group].dropna().unique()) if group is not None else [])
        code = np.full(len(rows), -1)   # ever-members' community position; -1 never-members
        for position, name in enumerate(names):
            code[ever & (rows[group] == name).to_numpy()] = position
        return self.fit_sums(gap_sums(outcomes, units=units, ever=ever, community=code,
                                      communities=names))

    def fit_sums(self, sums: pd.DataFrame) -> NaiveRevenueGap:
        """Fit from :func:`gap_sums` (or the same sums from one ``GROUP BY`` in the database,
        :func:`roi.revenue_lift.did_sql.naive_gap_sums`): the overall gap, and one per
        community when ``sums`` has rows per community."""
        never = sums[~sums["ever"]]
        self.result_ = _gap(never, sums[sums["ever"]])
        for name, rows in sums[sums["ever"]].groupby("community", sort=True, dropna=True):
            self.result_.by_group[str(name)] = _gap(never, rows).to_contract()
        return self

    def summary(self) -> pd.DataFrame:
        return self.result_.summary()


SUMS = ("units", "rows", "total", "unit_total_sq", "unit_total_rows", "unit_rows_sq")
"""Columns of :func:`gap_sums`: per unit ``i`` with ``m_i`` rows and outcome sum ``S_i``, summed
over the group's units: count, ``m``, ``S``, ``S^2``, ``S m`` and ``m^2``."""


def gap_sums(outcomes: np.ndarray, *, units: np.ndarray, ever: np.ndarray,
             community: np.ndarray, communities: list) -> pd.DataFrame:
    """The sums the gap and its clustered SE need, per never-members and per community of
    ever-members (``community`` a position in ``communities``, -1 for never-members and for
    ever-members without one); columns ``ever``, ``community`` and :data:`SUMS`."""
    rows = np.bincount(units)
    total = np.bincount(units, weights=outcomes)
    first = np.unique(units, return_index=True)[1]
    key = np.where(ever[first], community[first] + 1, -1)   # -1 never, 0 no community, 1+ name
    table = pd.DataFrame({"key": key, "units": 1, "rows": rows, "total": total,
                          "unit_total_sq": total**2, "unit_total_rows": total * rows,
                          "unit_rows_sq": rows.astype(float)**2}).groupby("key").sum()
    labels = {-1: None, 0: None, **{i + 1: name for i, name in enumerate(communities)}}
    return pd.DataFrame({"ever": table.index >= 0,
                         "community": [labels[k] for k in table.index],
                         **{name: table[name].to_numpy() for name in SUMS}})


def _gap(never: pd.DataFrame, ever: pd.DataFrame) -> EffectResult:
    """Difference in means with the cluster-robust SE of OLS on ``[1, ever]``, from the sums.

    For that design the OLS slope is ``mean(ever) - mean(never)`` and each row's term of the
    sandwich is its residual over its group's size (minus for never-members), summed by unit:
    ``(S_i - m_i mean) / n``, whose squares sum to ``(sum S^2 - 2 mean sum S m + mean^2 sum
    m^2) / n^2`` per group; statsmodels' small-sample factor ``G / (G - 1) * (N - 1) / (N - 2)``
    and normal quantiles, as ``sm.OLS(...).fit(cov_type="cluster")`` (a test checks the
    equality). Written out because statsmodels holds several copies of a 10M-row design.
    """
    parts = [frame[list(SUMS)].sum() for frame in (ever, never)]
    if parts[0]["rows"] == 0 or parts[1]["rows"] == 0:
        return _refused("no never-members" if parts[0]["rows"] else "no members")
    squares = 0.0
    for part in parts:
        mean = part["total"] / part["rows"]
        squares += (part["unit_total_sq"] - 2 * mean * part["unit_total_rows"]
                    + mean**2 * part["unit_rows_sq"]) / part["rows"] ** 2
    n, clusters = parts[0]["rows"] + parts[1]["rows"], parts[0]["units"] + parts[1]["units"]
    se = np.sqrt(max(squares, 0.0) * clusters / (clusters - 1) * (n - 1) / (n - 2))
    estimate = float(parts[0]["total"] / parts[0]["rows"] - parts[1]["total"] / parts[1]["rows"])
    z = stats.norm.ppf(0.975)
    return EffectResult(method="naive", estimand="community_revenue_lift", estimate=estimate,
                        low=estimate - z * se, high=estimate + z * se, interval=CI95,
                        scale="currency per customer-month",
                        n_treated=int(parts[0]["units"]), n_obs=int(parts[0]["rows"]))


def _refused(missing: str) -> EffectResult:
    """No comparison possible: null numbers, not converged, the reason in the warnings."""
    reason = f"{missing} among the customer-months to compare with"
    diagnostics = Diagnostics(converged=False, checks={"refused": reason})
    diagnostics.warn(f"naive: not estimated: {reason}.")
    nan = float("nan")
    return EffectResult(method="naive", estimand="community_revenue_lift", estimate=nan,
                        low=nan, high=nan, interval=CI95, scale="currency per customer-month",
                        diagnostics=diagnostics)
