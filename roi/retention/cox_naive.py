"""The naive retention number: a static Cox model of ever-members against never-members.

This is the comparison community dashboards make, and it is biased by construction: a customer
has to survive until the day they join to become a member, so all the churn-free time *before*
joining is credited to the community (immortal-time bias) and the hazard ratio comes out too
favourable. It is reported as ``naive`` in ``results.json`` for contrast only; the causal number
is :class:`roi.retention.cox_time_varying.CoxTimeVarying`, which counts pre-join time as
non-member time.

The start-stop table is collapsed to one row per customer: entry = first ``start`` (left
truncation is kept, it is not the bias this number illustrates), time = last ``stop``, event =
churned at that stop, ``ever_member`` = member in any interval, covariates and community from
the customer's first row with a value. Same engine as the time-varying model (statsmodels
``PHReg``, Efron ties). No covariates by default, as dashboards show; pass ``covariates`` to
adjust.

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"customer_id": [1, 1, 2, 3, 3, 4, 5, 6, 6, 7],
...                       "start": [0, 30, 0, 0, 5, 0, 0, 0, 40, 0],
...                       "stop": [30, 200, 20, 5, 90, 60, 300, 40, 100, 150],
...                       "event": [0, 1, 1, 0, 1, 1, 0, 0, 0, 1],
...                       "member": [0, 1, 0, 0, 1, 0, 0, 0, 1, 0]})
>>> model = NaiveCox().fit(table)
>>> model.result_.method, model.result_.value_name, model.summary().index.tolist()
('naive', 'hazard_ratio', ['ever_member'])
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from roi.retention.cox_time_varying import (
    add_by_group,
    community_terms,
    design_matrix,
    fit_cox,
    hazard_ratio_result,
    refusal_reason,
    refused_result,
    warm_start,
)

WARNING = ("naive: ever-members are credited with the time before they joined (immortal-time "
           "bias), so this hazard ratio overstates the community's effect; shown for contrast.")


class NaiveCox:
    """Static Cox PH of churn on an ever-member indicator (one row per customer).

    Parameters
    ----------
    ties : {"efron", "breslow"}
        Handling of churns on the same day.
    max_levels : int
        Largest number of levels accepted for a categorical covariate.

    Attributes
    ----------
    result_ : EffectResult
        Hazard ratio of ``ever_member`` (``method="naive"``), per-community in ``by_group``.
    coefficients_ : DataFrame
        All coefficients with hazard ratios and 95% CIs.
    customers_ : DataFrame
        The one-row-per-customer table the model was fitted on.

    Examples
    --------
    See the module docstring.
    """

    method = "naive"

    def __init__(self, *, ties: str = "efron", max_levels: int = 50) -> None:
        self.ties = ties
        self.max_levels = max_levels

    def fit(self, table: pd.DataFrame, *, covariates: Sequence[str] = (),
            id_col: str = "customer_id", start: str = "start", stop: str = "stop",
            event: str = "event", member: str = "member",
            community: str | None = None) -> NaiveCox:
        """Fit on the start-stop table (collapsed here to one row per customer)."""
        extra = [*covariates] + ([community] if community else [])
        reason = refusal_reason(table, columns=[id_col, start, stop, event, member, *extra],
                                start=start, stop=stop, event=event, member=member)
        if reason:
            self.result_ = refused_result(method=self.method, reason=reason)
            return self
        per = collapse_to_customers(table, id_col=id_col, start=start, stop=stop, event=event,
                                    member=member, keep=extra)
        if per["ever_member"].astype(bool).all():
            self.result_ = refused_result(method=self.method, reason="every customer is an "
                                          "ever-member: there are no never-members to compare")
            return self
        covs, info = design_matrix(per, columns=covariates, max_levels=self.max_levels)
        arrays = {"start": per["entry"].to_numpy(dtype=float),
                  "stop": per["time"].to_numpy(dtype=float),
                  "event": per["event"].to_numpy(dtype=int)}
        fit = fit_cox(pd.concat([per["ever_member"].astype(float), covs], axis=1), **arrays,
                      ties=self.ties)
        self.customers_ = per
        self.coefficients_ = fit.table()
        ever = per["ever_member"].astype(bool)
        self.result_ = hazard_ratio_result(fit, term="ever_member", method=self.method,
                                           n_treated=int(ever.sum()),
                                           n_obs=int((per["time"] - per["entry"])[ever].sum()))
        self.result_.tables["coefficients"] = self.coefficients_
        self.result_.diagnostics.warn(WARNING)
        self.result_.diagnostics.checks.update({
            "customers": len(per), "events": int(per["event"].sum()),
            "ever_member_events": int(per.loc[ever, "event"].sum()),
            "references": info["references"], "dropped_constant": info["dropped_constant"]})
        if community is not None:
            terms = community_terms(per["ever_member"], per[community], prefix="ever_member")
            by = fit_cox(pd.concat([terms, covs], axis=1), **arrays, ties=self.ties,
                         initial=warm_start(fit, n_terms=terms.shape[1]))
            self.result_.tables["coefficients_by_community"] = by.table()
            add_by_group(self.result_, by, prefix="ever_member", ids=per.index.to_series(),
                         exposed=ever, churned=per["event"].astype(bool), labels=per[community])
        return self

    def summary(self) -> pd.DataFrame:
        """All coefficients with hazard ratios and 95% CIs (a refused fit: the one-row
        :meth:`EffectResult.summary` with the reason in ``result_.refused``)."""
        if self.result_.refused:
            return self.result_.summary()
        return self.coefficients_


def collapse_to_customers(table: pd.DataFrame, *, id_col: str, start: str, stop: str,
                          event: str, member: str, keep: Sequence[str] = ()) -> pd.DataFrame:
    """One row per customer: ``entry``, ``time``, ``event``, ``ever_member`` and ``keep`` columns.

    Examples
    --------
    >>> table = pd.DataFrame({"customer_id": [1, 1, 2], "start": [0, 10, 0],
    ...                       "stop": [10, 50, 30], "event": [0, 1, 0], "member": [0, 1, 0]})
    >>> collapse_to_customers(table, id_col="customer_id", start="start", stop="stop",
    ...                       event="event", member="member").reset_index()
       customer_id  entry  time  event  ever_member
    0            1      0    50      1            1
    1            2      0    30      0            0
    """
    ordered = table.sort_values([id_col, start], kind="stable")
    grouped = ordered.groupby(id_col, sort=False)
    per = pd.DataFrame({"entry": grouped[start].first(), "time": grouped[stop].last(),
                        "event": grouped[event].last().astype(int),
                        "ever_member": grouped[member].max().astype(int)})
    for name in keep:
        per[name] = grouped[name].first()
    return per
