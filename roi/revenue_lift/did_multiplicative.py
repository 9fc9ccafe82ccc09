"""Multiplicative (ratio, Poisson-style) staggered DiD: community revenue lift in currency.

Revenue is multiplicative: a customer's seasonal swings and growth scale with their level, and
members spend more than never-members before they join (they self-select). Parallel trends in
*levels* then fail: in a peak month the members' revenue rises by more currency than the
controls' even without any effect. This estimator assumes parallel trends in logs of *means*
instead. For cohort ``g`` (month of joining) and month ``t`` the counterfactual mean is the
cohort's base-month mean grown as the never-members' mean grew::

    E[Y_t(0) | g] = E[Y_base | g] * E[Y_t | C] / E[Y_base | C]

(``base = g - 1``; the "varying" placebo cells before joining use ``t - 1``). The group-time
effect is reported in currency, ``ATT(g, t) = E[Y_t | g] - E[Y_t(0) | g]``; its influence
function comes from the delta method on the four means, clustered by customer. The cells are
averaged as in :class:`roi.revenue_lift.did.StaggeredDiD` (same options, same tables, same pre-trend
tests); ``weights="member_months"`` gives the contract's ATT per member-month.

The headline number (``result_``) is the contract's average over *all* member-months, also
those of members with no month before joining (customers who joined in their first month; in
the sample world 40% of member-months, and the most engaged customers), whom no before/after
comparison covers. Under this model a lift is a share of revenue, so it travels across
customers of different levels: at each month since joining ``e`` the estimated share
``att_e / actual_e`` (over the comparable members) is applied to the revenue of every
member-month at ``e``, and the sum is divided by the number of member-months. Months from
``pool_from`` on share one pooled share (the lift has ramped up; few comparisons reach them).
The standard error treats each month's revenue total as given (the estimand is defined on the
realised member-months) and propagates the influence functions of the ``att_e``.

When the assumption fails. Revenue that does not scale with a customer's level breaks parallel
trends in ratios: in the simulator, paid-media orders go to random customers (the same amount
per customer-day, shrinking per customer as the base grows), and on *all* revenue this
estimator overstated the lift by 34% on average over 20 default worlds of 3,000 customers
(60.9 [44.8, 77.1] against 35.5 on a 20,000-customer world), against -4% on organic revenue
(orders of no paid channel, which membership does not move). Fit it on organic revenue; on a
revenue total with such a part, the additive :class:`roi.revenue_lift.did.StaggeredDiD` is safer.

Means, not logs of each customer's revenue: months with zero revenue are common and the
estimand is in currency, so ``E[log Y]`` would be neither defined nor the target.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> units, months = np.arange(600), np.arange(1, 9)
>>> panel = pd.DataFrame([(u, t) for u in units for t in months], columns=["id", "month"])
>>> panel["joined"] = np.where(panel["id"] % 3 == 0, 5, 0)
>>> level = np.where(panel["joined"] > 0, 200.0, 50.0)          # members spend 4x more
>>> season = 1 + 0.5 * np.sin(panel["month"])                    # swings scale with level
>>> member = panel["month"] >= np.where(panel["joined"] > 0, panel["joined"], 99)
>>> noise = rng.gamma(400, 1 / 400, len(panel))
>>> panel["revenue"] = level * season * np.where(member, 1.1, 1.0) * noise
>>> truth = (0.1 * level * season)[member].mean()                # currency per member-month
>>> fit = MultiplicativeDiD(weights="member_months").fit(
...     panel, unit="id", time="month", group="joined", outcome="revenue")
>>> fit.result_.method, round(fit.result_.estimate), round(truth)
('did_multiplicative', 21, 21)
>>> round(float(fit.group_time_.query("post")["att_ratio"].mean()), 2)   # the 10% lift
0.1
>>> from roi.revenue_lift.did import StaggeredDiD                      # levels: badly biased
>>> round(StaggeredDiD().fit(panel, unit="id", time="month", group="joined",
...                          outcome="revenue").result_.estimate)
86
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd

from roi.results import EffectResult
from roi.revenue_lift._did_aggregate import interval_table, member_month_weighted, nan_form
from roi.revenue_lift._did_influence import LinearForm
from roi.revenue_lift._did_panel import member_event_times
from roi.revenue_lift.did import BasePeriod, ControlGroup, StaggeredDiD, Weights
from roi.revenue_lift.panel_input import panel_scale


class MultiplicativeDiD(StaggeredDiD):
    """Callaway & Sant'Anna staggered DiD with parallel trends in logs of means.

    The cells and tables are those of ``StaggeredDiD(scale="multiplicative")``; the headline
    ``result_`` (method ``did_multiplicative``) is the lift per member-month over all
    member-months (see the module notes).

    Parameters
    ----------
    control_group : {"never_treated", "not_yet_treated"}
        As in :class:`roi.revenue_lift.did.StaggeredDiD`.
    base_period : {"varying", "universal"}
        As in :class:`roi.revenue_lift.did.StaggeredDiD`.
    anticipation : int
        Periods before joining in which customers may already react.
    weights : {"member_months", "cohort_size"}
        Weights of the cells in the ``simple_`` and ``dynamic_`` tables (the headline number
        always weights by member-months).
    pool_from : int
        Months since joining from which one pooled lift share is used.
    alpha : float
        1 - confidence level of the pointwise intervals.

    Attributes
    ----------
    group_time_, simple_, dynamic_, group_, overall_, pretrend_, pretrend_event_, vcov_
        As in :class:`roi.revenue_lift.did.StaggeredDiD`; ``group_time_.att_ratio`` is the
        proportional lift of each cell, ``counterfactual`` its counterfactual mean.
    lift_ : DataFrame
        Per month since joining (the last row pools ``e >= pool_from``): ``lift_share``
        (lift / actual revenue of comparable members), ``member_months`` and ``revenue`` of all
        members, ``member_months_compared`` (treated units observed in the cells), ``att``.
    result_ : EffectResult
        Lift in currency per member-month over all member-months, 95% CI.

    Examples
    --------
    >>> import pandas as pd
    >>> long = pd.DataFrame({"id": [1, 1, 2, 2, 3, 3], "t": [1, 2] * 3, "g": [2, 2, 0, 0, 0, 0],
    ...                      "y": [10.0, 30.0, 1.0, 2.0, 3.0, 6.0]})
    >>> fit = MultiplicativeDiD().fit(long, unit="id", time="t", group="g", outcome="y")
    >>> fit.group_time_[["counterfactual", "att", "att_ratio"]].round(2).to_dict("records")
    [{'counterfactual': 20.0, 'att': 10.0, 'att_ratio': 0.5}]
    """

    method_name = "did_multiplicative"

    def __init__(self, *, control_group: ControlGroup = "never_treated",
                 base_period: BasePeriod = "varying", anticipation: int = 0,
                 weights: Weights = "member_months", pool_from: int = 6,
                 alpha: float = 0.05) -> None:
        super().__init__(control_group=control_group, base_period=base_period,
                         anticipation=anticipation, scale="multiplicative", weights=weights,
                         alpha=alpha)
        if int(pool_from) != pool_from or pool_from < 1:
            raise ValueError(f"pool_from must be a whole number >= 1, got {pool_from!r}")
        self.pool_from = int(pool_from)

    def fit(self, data: pd.DataFrame, *, outcome: str, unit: str, time: str, group: str,
            covariates: Sequence[str] | str | None = None) -> Self:
        """Group-time ratio DiD, then the lift over all member-months; returns ``self`` (a
        refused ``result_`` when no treated unit can be compared, as :class:`StaggeredDiD`)."""
        # The cells (StaggeredDiD.fit calls fit_aggregates without events), then the headline
        super().fit(data, unit=unit, time=time, group=group, outcome=outcome,
                    covariates=covariates)
        if self.result_.refused:
            return self
        members = member_event_times(data, unit=unit, time=time, group=group, outcome=outcome)
        self._all_member_months_headline(MemberEventSums.from_members(members))
        self.result_.scale = panel_scale(unit=unit, time=time, outcome=outcome)
        return self

    def fit_aggregates(self, aggregates, *, group: str = "group",
                       events: MemberEventSums | None = None) -> Self:
        """Fit from the sums per cohort and observation pattern
        (:meth:`StaggeredDiD.fit_aggregates`) and the member-months' sums by months since
        joining (``events``; e.g. from a ``GROUP BY`` in the database): the same results as
        :meth:`fit`. Without ``events`` only the cells and their averages are fitted (what
        :meth:`fit` does before it adds the headline over all member-months)."""
        super().fit_aggregates(aggregates, group=group)
        if self.result_.refused:
            self.lift_ = pd.DataFrame()
        elif events is not None:
            self._all_member_months_headline(events)
        return self

    def _all_member_months_headline(self, events: MemberEventSums) -> None:
        form, self.lift_ = self._all_member_months(events)
        row = interval_table([form], self.parts_.moments, alpha=self.alpha).iloc[0]
        self.headline_se_ = float(row["se"])
        self.result_ = self._headline(row, n_obs=events.n_obs, n_members=events.n_units)

    def summary(self) -> pd.DataFrame:
        """The headline over all member-months (``all_member_months``, = ``result_``) above the
        aggregations of the compared cells (see :meth:`StaggeredDiD.summary`)."""
        table = super().summary()
        if self.result_.refused:
            return table
        r = self.result_
        head = pd.DataFrame({"att": [r.estimate], "se": [self.headline_se_],
                             "low": [r.low], "high": [r.high], "interval": [r.interval]},
                            index=pd.Index(["all_member_months"], name=table.index.name))
        return pd.concat([head, table]).rename_axis(table.index.name)

    def _all_member_months(self, events: MemberEventSums) -> tuple[LinearForm, pd.DataFrame]:
        """Sum over months since joining of (revenue there) x (lift share there) / count."""
        cells, estimates, forms, moments = self.parts_
        post = estimates.valid & (cells.period >= cells.cohort)
        cell_bin = np.minimum(cells.event_time, self.pool_from)
        member_bin = np.minimum(events.table["e"].to_numpy(), self.pool_from)
        months = events.table["member_months"].to_numpy()
        totals = events.table["revenue"].to_numpy(dtype=float)
        actual = estimates.att + estimates.counterfactual
        if not post.any() or events.n_obs == 0:  # nothing to compare (warned by the base fit)
            return nan_form(len(forms), moments.by_cohort.shape[1]), pd.DataFrame(
                columns=["e", "lift_share", "member_months", "revenue",
                         "member_months_compared", "att"])
        total, rows = None, []
        for b in np.unique(member_bin):
            keep = post & (cell_bin == b)
            keep = keep if keep.any() else post  # no comparison reaches these months: pooled
            chosen = np.flatnonzero(keep)
            counts = estimates.n_treated[chosen]
            lift = member_month_weighted([forms[k] for k in chosen], counts=counts,
                                         cells=chosen, n_units=moments.n_units)
            mean_actual = float(counts @ actual[chosen] / counts.sum())
            revenue = float(totals[member_bin == b].sum())
            in_bin = int(months[member_bin == b].sum())
            part = lift.scaled(revenue / mean_actual / events.n_obs)
            total = part if total is None else total + part
            rows.append({"e": int(b), "lift_share": lift.value / mean_actual,
                         "member_months": in_bin, "revenue": revenue,
                         "member_months_compared": int(counts.sum()),
                         "att": revenue * lift.value / mean_actual / in_bin})
        return total, pd.DataFrame(rows)

    def _headline(self, row: pd.Series, *, n_obs: int, n_members: int) -> EffectResult:
        identified = self.result_
        compared = int(self.lift_["member_months_compared"].sum())
        diagnostics = identified.diagnostics
        diagnostics.checks.update(member_months=n_obs, member_months_compared=compared,
                                  compared_only=identified.to_contract())
        uncovered = 1.0 - self.simple_["n_obs"].iloc[0] / n_obs
        if uncovered > 0.05:
            diagnostics.warn(f"{uncovered:.0%} of member-months are of members no before/after "
                             "comparison covers (no month as a customer before joining); they "
                             "get the proportional lift of comparable members at the same "
                             "months since joining.")
        tables = dict(identified.tables, lift_by_event=self.lift_)
        return EffectResult(method=self.method_name, estimand="community_revenue_lift",
                            estimate=float(row["att"]), low=float(row["low"]),
                            high=float(row["high"]), interval=self.interval_label,
                            scale="currency per member-month", n_treated=n_members,
                            n_obs=n_obs, tables=tables, diagnostics=diagnostics)


@dataclass(frozen=True)
class MemberEventSums:
    """The member-months the headline speaks for, summed by months since joining: ``table``
    with ``e``, ``member_months`` and ``revenue`` (the outcome's sum), one row per ``e``, and
    ``n_units`` (members with such a month). From the rows in memory
    (:meth:`from_members`) or a ``GROUP BY`` in the database
    (:mod:`roi.revenue_lift.aggregates_sql`).

    Examples
    --------
    >>> members = pd.DataFrame({"unit": [1, 1, 2], "e": [0, 1, 1], "outcome": [2.0, 3.0, 4.0]})
    >>> sums = MemberEventSums.from_members(members)
    >>> sums.table.to_dict("list"), sums.n_obs, sums.n_units
    ({'e': [0, 1], 'member_months': [1, 2], 'revenue': [2.0, 7.0]}, 3, 2)
    """

    table: pd.DataFrame
    n_units: int

    @property
    def n_obs(self) -> int:
        return int(self.table["member_months"].sum())

    @classmethod
    def from_members(cls, members: pd.DataFrame) -> MemberEventSums:
        """From :func:`roi.revenue_lift._did_panel.member_event_times`' rows."""
        table = (members.groupby("e", sort=True)["outcome"].agg(["size", "sum"])
                 .rename(columns={"size": "member_months", "sum": "revenue"}).reset_index())
        table["e"] = table["e"].astype(np.int64)
        table["member_months"] = table["member_months"].astype(np.int64)
        return cls(table=table, n_units=int(members["unit"].nunique()))
