"""Community-led acquisition (issue 20, part 3): prospects who joined before buying, and
referrals.

Prospects. Linked members whose first join came before their ``first_seen`` (the customers
``data.members_before_customer`` counts): per community of that first join, how many, how long
from joining to becoming a customer, and what they spent in the window. **Attributed, not
causal**: they might have bought anyway; nothing here says the community made them buy.

Referrals (optional ``customers.referred_by``, the referrer's ``customer_id``). Descriptive:
referred customers, their revenue per customer-month and churn, the share referred by
customers who were members on the referred customer's ``first_seen``; referrals per
member-month against per non-member customer-month. Causal: a staggered DiD
(:class:`roi.revenue_lift.did.StaggeredDiD`, never-members as controls, member-month weights)
on referrals made per customer-month (a referral counts in the month of the referred
customer's ``first_seen``): the extra referrals a member makes because of membership.

Referral revenue rule (shown separately from the community's return, never added to it):
extra referrals per member-month (the DiD) x the community's member-months x the mean revenue
in the window of a referred customer. It assumes a referral membership caused is worth what an
average referred customer spent.

Examples
--------
>>> import pandas as pd
>>> panel = pd.DataFrame({"customer_id": ["a", "a", "b"], "month_index": [1, 2, 2]})
>>> referred = pd.DataFrame({"customer_id": ["c"], "referred_by": ["a"],
...                          "first_month_index": [2]})
>>> referral_counts(panel, referred).tolist()
[0, 1, 0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

ATTRIBUTED = ("attributed, not causal: these customers joined the community before their "
              "first purchase; they may have bought anyway")


def prospects(dataset, panel: pd.DataFrame) -> dict[str, Any]:
    """The ``acquisition.prospects`` block."""
    from roi.data import dialect
    from roi.data.source import fetch_frame

    members, life = dataset.tables["members"], dataset.tables["life"]
    first_join = sa.func.min(members.c.joined_at)
    query = (sa.select(life.c.customer_id, life.c.community,
                       dialect.day_diff(life.c.first_seen, first_join).label("days_to_customer"))
             .select_from(members.join(life, members.c.customer_id == life.c.customer_id))
             .group_by(life.c.customer_id, life.c.community, life.c.first_seen)
             .having(first_join < life.c.first_seen))
    frame = fetch_frame(dataset.engine, query)
    revenue = panel.groupby("customer_id", observed=True)["revenue"].sum()
    frame["revenue"] = frame["customer_id"].map(revenue).fillna(0.0)
    by_community = {}
    for community, rows in frame.groupby(frame["community"].astype(str), observed=True):
        by_community[community] = _prospect_summary(rows)
    return {"rule": ATTRIBUTED, "customers": len(frame), **_prospect_summary(frame),
            "by_community": by_community}


def _prospect_summary(rows: pd.DataFrame) -> dict[str, Any]:
    days = rows["days_to_customer"].astype(float)
    return {"customers": len(rows),
            "median_days_to_first_purchase": float(days.median()) if len(rows) else None,
            "revenue": float(rows["revenue"].sum()),
            "revenue_per_customer": float(rows["revenue"].mean()) if len(rows) else None}


def referred_customers(dataset) -> pd.DataFrame | None:
    """``customer_id``, ``referred_by``, ``first_month_index``, ``first_seen`` of referred
    customers (None without a ``referred_by`` column)."""
    from roi.data import sql_parts
    from roi.data.source import fetch_frame

    customers, life = dataset.tables["customers"], dataset.tables["life"]
    if "referred_by" not in customers.c:
        return None
    query = (sa.select(life.c.customer_id, customers.c.referred_by, life.c.first_seen,
                       sql_parts.month_of(life.c.first_seen).label("first_month_index"))
             .select_from(customers.join(life, customers.c.customer_id == life.c.customer_id))
             .where(customers.c.referred_by.is_not(None)))
    return fetch_frame(dataset.engine, query)


def referral_counts(panel: pd.DataFrame, referred: pd.DataFrame) -> pd.Series:
    """Referrals each panel row's customer made in that month (by the referred customer's
    first month), aligned with ``panel``."""
    counts = referred.groupby(["referred_by", "first_month_index"]).size()
    keys = pd.MultiIndex.from_arrays([panel["customer_id"].astype(str),
                                      panel["month_index"].astype("int64")])
    counts.index = counts.index.set_levels(counts.index.levels[0].astype(str), level=0)
    return pd.Series(counts.reindex(keys).fillna(0).to_numpy(np.int64), index=panel.index)


def referrals(dataset, panel: pd.DataFrame, *, member_months_by_community: dict[str, int]
              ) -> dict[str, Any] | None:
    """The ``acquisition.referrals`` block (None without ``customers.referred_by``)."""
    from roi.revenue_lift.did import StaggeredDiD

    referred = referred_customers(dataset)
    if referred is None:
        return None
    active = panel.loc[panel["active"], ["customer_id", "month_index", "join_month_index",
                                         "member", "community", "churned"]].copy()
    active["referrals"] = referral_counts(active, referred)
    member = active["member"]
    per_member = float(active.loc[member, "referrals"].mean()) if member.any() else None
    per_other = float(active.loc[~member, "referrals"].mean()) if (~member).any() else None
    did: dict[str, Any] | None
    fit = StaggeredDiD(control_group="never_treated", weights="member_months").fit(
        active, unit="customer_id", time="month_index", group="join_month_index",
        outcome="referrals")
    did = ({"estimate": None, "refused": fit.result_.refused} if fit.result_.refused else
           {**fit.result_.to_contract(), "method": "did", "scale": "referrals per member-month",
            "warnings": list(fit.result_.diagnostics.warnings)})
    revenue = _referred_revenue(panel, referred)
    return {"rule": "a referral counts in the month of the referred customer's first_seen; "
                    "causal part: staggered DiD of referrals per customer-month, members "
                    "after joining against never-members",
            "referred_customers": len(referred),
            "referred_share_of_customers": len(referred) / max(panel["customer_id"].nunique(), 1),
            "referred_by_members_share": _by_members_share(panel, referred),
            "revenue_of_referred": float(revenue.sum()),
            "revenue_per_referred_customer": float(revenue.mean()) if len(revenue) else None,
            "churned_share_of_referred": _churned_share(panel, referred),
            "referrals_per_member_month": per_member,
            "referrals_per_non_member_customer_month": per_other,
            "extra_referrals_per_member_month": did,
            "referral_revenue": _referral_revenue(did, revenue, member_months_by_community)}


def _referred_revenue(panel: pd.DataFrame, referred: pd.DataFrame) -> pd.Series:
    mine = panel["customer_id"].isin(referred["customer_id"])
    return panel.loc[mine].groupby("customer_id", observed=True)["revenue"].sum()


def _by_members_share(panel: pd.DataFrame, referred: pd.DataFrame) -> float | None:
    """Share of referrals whose referrer was a member in the referred customer's first month."""
    if not len(referred):
        return None
    joins = panel.drop_duplicates("customer_id").set_index("customer_id")["join_month_index"]
    joined = referred["referred_by"].map(joins).astype("Float64")
    return float((joined <= referred["first_month_index"]).fillna(False).mean())


def _churned_share(panel: pd.DataFrame, referred: pd.DataFrame) -> float | None:
    mine = panel["customer_id"].isin(referred["customer_id"])
    churned = panel.loc[mine].groupby("customer_id", observed=True)["churned"].any()
    return float(churned.mean()) if len(churned) else None


def _referral_revenue(did: dict[str, Any] | None, revenue: pd.Series,
                      member_months: dict[str, int]) -> dict[str, Any] | None:
    if not did or did.get("estimate") is None or not len(revenue):
        return None
    value = float(revenue.mean())
    by_community = {c: {k: did[k] * months * value for k in ("estimate", "low", "high")}
                    | {"interval": did.get("interval")} for c, months in member_months.items()}
    return {"rule": "extra referrals per member-month (DiD, pooled over communities) x the "
                    "community's member-months x mean window revenue of a referred customer; "
                    "shown beside the community's return, never added to it",
            "revenue_per_referred_customer": value, "by_community": by_community}
