"""Randomized invitation experiments (encouragement design): ITT, CACE, churn, compliance.

Estimands (shared/CONTRACT.md section 6): each assigned customer is followed from the month
after ``assigned_at`` to the end of the window; months after churn count as zero revenue and
zero membership (so retention is part of the effect). On these customer-months:

* ITT on revenue: invite-arm mean minus holdout-arm mean of revenue per customer-month (OLS of
  revenue on the arm, SEs clustered by customer);
* ITT on membership: the same for member-months (membership of the experiment's community as
  the customer's first community; any membership when the experiment names no community);
* CACE per member-month: 2SLS of revenue on membership instrumented by the arm, clustered by
  customer (:mod:`roi.experiments.iv`), which equals ITT revenue / ITT membership; the
  first-stage F of the arm says how strong the instrument is (below 10: weak);
* ITT on churn: Cox hazard ratio of the invite arm (statsmodels PHReg, Efron ties) on months
  from assignment to churn, censored at the window's end;
* compliance: share of each arm with at least one member-month in the follow-up.

Examples
--------
>>> from roi.simulate import simulate_world                       # doctest: +SKIP
>>> world = simulate_world(n_customers=3000, experiment_share=1.0)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from roi.experiments.iv import two_stage_least_squares

WEAK_F = 10.0
MIN_PER_ARM = 30
DEFAULT_NAME = "invitations"


def followed_months(panel: pd.DataFrame, invitations: pd.DataFrame, *,
                    community: str | None, end_month: int
                    ) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """The follow-up of one experiment.

    ``panel`` is the customer-month panel (``customer_id``, ``month_index``, ``revenue``,
    ``member``, ``community``, ``churned``); ``invitations`` one row per assigned customer.

    Returns
    -------
    rows : DataFrame
        Customer-months from the month after ``assigned_at`` to ``end_month``:
        ``customer_id``, ``invite`` (0/1), ``month_index``, ``revenue`` and ``member`` (0/1;
        both 0 after churn, where the panel has no row).
    churn : Series
        Month of churn per churned customer.
    assigned : DataFrame
        The invitations with months to follow, with ``start`` (first month followed) and
        ``invite``.
    """
    assigned = invitations.assign(
        start=_month_index(invitations["assigned_at"]) + 1,
        invite=(invitations["arm"] == "invite").astype(float))
    # As the row accounting counts them: analysed customers with months to follow
    customers = pd.Index(pd.unique(panel["customer_id"])).astype(str)   # not per row: 13M
    analysed = assigned["customer_id"].astype(str).isin(customers)
    assigned = assigned[analysed & (assigned["start"] <= end_month)]
    months = end_month - assigned["start"].to_numpy() + 1
    grid = pd.DataFrame({
        "customer_id": np.repeat(assigned["customer_id"].to_numpy(), months),
        "invite": np.repeat(assigned["invite"].to_numpy(), months),
        "month_index": np.concatenate([np.arange(s, end_month + 1) for s in assigned["start"]])
        if len(assigned) else np.zeros(0, int)})
    rows = panel.loc[panel["customer_id"].isin(assigned["customer_id"]),
                     ["customer_id", "month_index", "revenue", "member", "community",
                      "churned"]]
    rows = rows.assign(customer_id=rows["customer_id"].astype(str),
                       month_index=rows["month_index"].astype(int))
    grid["customer_id"] = grid["customer_id"].astype(str)
    merged = grid.merge(rows, on=["customer_id", "month_index"], how="left")
    member = merged["member"].astype("boolean").fillna(False).astype(bool)
    if community is not None:
        member &= merged["community"].astype(object).eq(community).fillna(False)
    churn = rows.loc[rows["churned"].astype(bool)].groupby("customer_id")["month_index"].min()
    return pd.DataFrame({"customer_id": merged["customer_id"], "invite": merged["invite"],
                         "month_index": merged["month_index"],
                         "revenue": merged["revenue"].fillna(0.0).astype(float),
                         "member": member.astype(float)}), churn, assigned


def _month_index(dates: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(dates)
    return (stamps.dt.year * 12 + stamps.dt.month - 1).to_numpy()


def analyse_experiment(panel: pd.DataFrame, invitations: pd.DataFrame, *,
                       name: str, community: str | None, end_month: int,
                       alpha: float = 0.05) -> dict[str, Any]:
    """One experiment's entry of ``community_experiment.experiments`` (contract section 6)."""
    rows, churn, assigned = followed_months(panel, invitations, community=community,
                                            end_month=end_month)
    arm = assigned["invite"].to_numpy() == 1
    entry: dict[str, Any] = {
        "name": name, "community": community,
        "customers": {"invite": int(arm.sum()), "holdout": int((~arm).sum())},
        "followed_customer_months": int(len(rows)), "warnings": []}
    if arm.sum() < 2 or (~arm).sum() < 2 or rows["member"].nunique() < 2:
        entry["warnings"].append("not estimated: each arm needs customers with months to "
                                 "follow, and some of them members")
        return {**entry, **_empty_effects()}
    member_any = rows.groupby("customer_id")["member"].max()
    by_arm = member_any.groupby(rows.groupby("customer_id")["invite"].first()).mean()
    entry["compliance"] = {"invite": float(by_arm.get(1.0, 0.0)),
                           "holdout": float(by_arm.get(0.0, 0.0))}
    clusters = rows["customer_id"].to_numpy()
    z = rows[["invite"]].to_numpy()
    itt = {outcome: two_stage_least_squares(rows[outcome].to_numpy(), endog=z, instruments=z,
                                            clusters=clusters)
           for outcome in ("revenue", "member")}
    iv = two_stage_least_squares(rows["revenue"].to_numpy(), endog=rows[["member"]].to_numpy(),
                                 instruments=z, clusters=clusters)
    entry["itt_revenue_per_customer_month"] = _entry(itt["revenue"], alpha=alpha)
    entry["itt_member_months_per_customer_month"] = _entry(itt["member"], alpha=alpha)
    entry["cace_per_member_month"] = _entry(iv, alpha=alpha)
    entry["first_stage_f"] = float(iv.first_stage_f[0])
    entry["itt_churn_hazard_ratio"] = _churn_hazard_ratio(assigned, churn, end_month=end_month,
                                                          alpha=alpha)
    entry["warnings"] += _warnings(entry)
    return entry


def _entry(fit, *, alpha: float) -> dict[str, Any]:
    low, high = fit.interval(-1, alpha=alpha)
    return {"estimate": float(fit.params[-1]), "low": low, "high": high,
            "interval": f"{100 * (1 - alpha):g}% CI", "se": float(fit.se[-1])}


def _empty_effects() -> dict[str, Any]:
    empty = {"estimate": None, "low": None, "high": None, "interval": "95% CI"}
    return {"compliance": {"invite": None, "holdout": None},
            "itt_revenue_per_customer_month": dict(empty),
            "itt_member_months_per_customer_month": dict(empty),
            "cace_per_member_month": dict(empty), "itt_churn_hazard_ratio": dict(empty),
            "first_stage_f": None}


def _churn_hazard_ratio(assigned: pd.DataFrame, churn: pd.Series, *, end_month: int,
                        alpha: float) -> dict[str, Any]:
    """Cox hazard ratio of the invite arm. Months are the time scale; a churn in month ``m``
    is at ``m - start + 0.5`` (mid-month), censoring at the window's end after every churn."""
    from scipy import stats
    from statsmodels.duration.hazard_regression import PHReg

    churn_month = assigned["customer_id"].astype(str).map(churn).to_numpy(dtype=float)
    start = assigned["start"].to_numpy() - 1          # the assignment month
    event = np.isfinite(churn_month) & (churn_month >= start)
    duration = np.where(event, churn_month - start + 0.5, end_month - start + 1.0)
    if event.sum() < 5:
        return {"estimate": None, "low": None, "high": None, "interval": "95% CI",
                "events": int(event.sum())}
    fit = PHReg(duration, assigned[["invite"]].to_numpy(), status=event.astype(int),
                ties="efron").fit()
    z = float(stats.norm.ppf(1 - alpha / 2))
    coef, se = float(fit.params[0]), float(fit.bse[0])
    return {"estimate": float(np.exp(coef)), "low": float(np.exp(coef - z * se)),
            "high": float(np.exp(coef + z * se)), "interval": f"{100 * (1 - alpha):g}% CI",
            "events": int(event.sum())}


def _warnings(entry: dict[str, Any]) -> list[str]:
    out = []
    f = entry.get("first_stage_f")
    if f is not None and f < WEAK_F:
        out.append(f"Weak instrument: first-stage F {f:.1f} < {WEAK_F:g}; the CACE interval "
                   "is unreliable (the invitation barely changed joining).")
    customers = entry["customers"]
    if min(customers.values()) < MIN_PER_ARM:
        out.append(f"Few customers in an arm ({customers['invite']} invited, "
                   f"{customers['holdout']} held out).")
    compliance = entry.get("compliance") or {}
    if (compliance.get("invite") or 0) <= (compliance.get("holdout") or 0):
        out.append("The invite arm did not join more than the holdout arm: no CACE to read.")
    return out


def experiment_groups(invitations: pd.DataFrame) -> list[tuple[str, str | None, pd.DataFrame]]:
    """(name, community, rows) per experiment and community named in ``invitations``."""
    frame = invitations.copy()
    frame["experiment"] = (frame["experiment"].astype(object).fillna(DEFAULT_NAME)
                           if "experiment" in frame else DEFAULT_NAME)
    frame["community"] = (frame["community"].astype(object) if "community" in frame
                          else None)
    groups = []
    for (name, community), rows in frame.groupby(["experiment", "community"], dropna=False,
                                                 sort=True):
        community = None if community is None or pd.isna(community) else str(community)
        groups.append((str(name), community, rows))
    return groups


def community_experiment(panel: pd.DataFrame, invitations: pd.DataFrame, *,
                         end_month: int) -> dict[str, Any]:
    """The ``community_experiment`` block: one entry per experiment and community."""
    return {"experiments": [analyse_experiment(panel, rows, name=name, community=community,
                                               end_month=end_month)
                            for name, community, rows in experiment_groups(invitations)]}
