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

from roi.data.dialect import exact_sum

ATTRIBUTED = ("attributed, not causal: these customers joined the community before their "
              "first purchase; they may have bought anyway")


def prospects(dataset, panel: pd.DataFrame | None = None) -> dict[str, Any]:
    """The ``acquisition.prospects`` block, over every customer of ``dataset``: one
    ``GROUP BY`` per community and days to the first purchase (window revenue from the panel's
    statement in the database, so a sampled ``panel`` frame is not read; the argument is kept
    for callers)."""
    from roi.data.source import fetch_frame

    found = fetch_frame(dataset.engine, prospect_counts_select(dataset))
    found["community"] = found["community"].astype(str)
    by_community = {community: _prospect_summary(rows) for community, rows in
                    found.groupby("community", sort=True)}
    return {"rule": ATTRIBUTED, "customers": int(found["n"].sum()), **_prospect_summary(found),
            "by_community": by_community}


def prospect_counts_select(dataset) -> sa.Select:
    """Per community and days from the first join to ``first_seen``: prospects (linked members
    who joined before buying) and their revenue in the window (the panel's months)."""
    from roi.data import dialect

    members, life = dataset.tables["members"], dataset.tables["life"]
    first_join = sa.func.min(members.c.joined_at)
    found = (sa.select(life.c.customer_id, life.c.community,
                       dialect.day_diff(life.c.first_seen, first_join).label("days"))
             .select_from(members.join(life, members.c.customer_id == life.c.customer_id))
             .group_by(life.c.customer_id, life.c.community, life.c.first_seen)
             .having(first_join < life.c.first_seen).subquery("prospects"))
    revenue = panel_revenue_select(dataset, found).subquery("prospect_revenue")
    spent = sa.func.coalesce(revenue.c.revenue, 0.0)
    return (sa.select(found.c.community, found.c.days, sa.func.count().label("n"),
                      exact_sum(spent).label("revenue"))
            .select_from(found.outerjoin(revenue, revenue.c.customer_id == found.c.customer_id))
            .group_by(found.c.community, found.c.days))


def panel_revenue_select(dataset, customers: sa.FromClause) -> sa.Select:
    """``customer_id``, ``revenue``: what the customer-month panel sums to for each of
    ``customers`` (its complete calendar months from the first purchase to churn or the
    window's end), straight from ``orders`` (a semi-join, not the panel's statement)."""
    from roi.data import sql_parts

    life, orders = dataset.tables["life"], dataset.tables["orders"]
    months = sql_parts.complete_months(dataset.start, dataset.end)
    month = sql_parts.month_of(orders.c.order_date)
    return (sa.select(orders.c.customer_id,
                      exact_sum(orders.c.revenue).label("revenue"))
            .select_from(orders.join(life, life.c.customer_id == orders.c.customer_id))
            .where(orders.c.customer_id.in_(sa.select(customers.c.customer_id)),
                   month >= life.c.first_month_index, month <= life.c.end_month_index,
                   month >= months[0][0], month <= months[-1][0])
            .group_by(orders.c.customer_id))


def _prospect_summary(rows: pd.DataFrame) -> dict[str, Any]:
    """From counts per days-to-customer value: the median of those days as
    ``Series.median`` over the customers gives it."""
    n = int(rows["n"].sum())
    revenue = float(rows["revenue"].astype(float).sum())
    return {"customers": n,
            "median_days_to_first_purchase": _median_from_counts(
                rows["days"].to_numpy(float), rows["n"].to_numpy(np.int64)) if n else None,
            "revenue": revenue, "revenue_per_customer": revenue / n if n else None}


def _median_from_counts(values: np.ndarray, counts: np.ndarray) -> float:
    """Median of ``np.repeat(values, counts)`` (the mean of the two middle values when even).

    Examples
    --------
    >>> _median_from_counts(np.array([5.0, 1.0, 3.0]), np.array([1, 2, 1]))
    2.0
    """
    order = np.argsort(values, kind="stable")
    values, ends = values[order], np.cumsum(counts[order])
    n = int(ends[-1])
    upper = values[np.searchsorted(ends, n // 2, side="right")]
    if n % 2:
        return float(upper)
    return float((values[np.searchsorted(ends, n // 2 - 1, side="right")] + upper) / 2)


def referral_counts(panel: pd.DataFrame, referred: pd.DataFrame) -> pd.Series:
    """Referrals each panel row's customer made in that month (by the referred customer's
    first month), aligned with ``panel``."""
    counts = referred.groupby(["referred_by", "first_month_index"]).size()
    keys = pd.MultiIndex.from_arrays([panel["customer_id"].astype(str),
                                      panel["month_index"].astype("int64")])
    counts.index = counts.index.set_levels(counts.index.levels[0].astype(str), level=0)
    return pd.Series(counts.reindex(keys).fillna(0).to_numpy(np.int64), index=panel.index)


def referrals(dataset, panel: pd.DataFrame, *, member_months_by_community: dict[str, int],
              sample=None) -> dict[str, Any] | None:
    """The ``acquisition.referrals`` block (None without ``customers.referred_by``).

    Counts, revenue and churn of referred customers and the share referred by members come
    from ``GROUP BY`` statements over every customer of ``dataset``. The rates per
    customer-month and the DiD read ``panel``: with ``sample`` (a
    :class:`roi.data.sample.CustomerSample`, ``panel`` holding its customers) they are the
    sample's, the referrals its customers made counted among all referred customers, and
    they carry ``sample.sentence()`` in their warnings."""
    from roi.revenue_lift.did import StaggeredDiD

    made = referrals_made(dataset)
    if made is None:
        return None
    totals = referred_totals(dataset)
    active = panel.loc[panel["active"], ["customer_id", "month_index", "join_month_index",
                                         "member", "community", "churned"]].copy()
    active["referrals"] = _counts_on(active, made)
    member = active["member"]
    per_member = float(active.loc[member, "referrals"].mean()) if member.any() else None
    per_other = float(active.loc[~member, "referrals"].mean()) if (~member).any() else None
    did: dict[str, Any] | None
    fit = StaggeredDiD(control_group="never_treated", weights="member_months").fit(
        active, unit="customer_id", time="month_index", group="join_month_index",
        outcome="referrals")
    if sample is not None:
        fit.result_.diagnostics.warn(sample.sentence())
    did = ({"estimate": None, "refused": fit.result_.refused} if fit.result_.refused else
           {**fit.result_.to_contract(), "method": "did", "scale": "referrals per member-month",
            "warnings": list(fit.result_.diagnostics.warnings)})
    referred = totals["referred"]
    mean_revenue = totals["revenue"] / totals["with_rows"] if totals["with_rows"] else None
    out = {"rule": "a referral counts in the month of the referred customer's first_seen; "
                   "causal part: staggered DiD of referrals per customer-month, members "
                   "after joining against never-members",
           "referred_customers": referred,
           "referred_share_of_customers": referred / max(totals["customers"], 1),
           "referred_by_members_share": (totals["by_members"] / referred if referred
                                         else None),
           "revenue_of_referred": totals["revenue"],
           "revenue_per_referred_customer": mean_revenue,
           "churned_share_of_referred": (totals["churned"] / totals["with_rows"]
                                         if totals["with_rows"] else None),
           "referrals_per_member_month": per_member,
           "referrals_per_non_member_customer_month": per_other,
           "extra_referrals_per_member_month": did,
           "referral_revenue": _referral_revenue(did, mean_revenue, member_months_by_community)}
    if sample is not None:
        out["warnings"] = [f"referrals_per_member_month, referrals_per_non_member_customer_month "
                           f"and extra_referrals_per_member_month: {sample.sentence()}"]
    return out


def referrals_made(dataset) -> pd.Series | None:
    """Referrals per referrer and month of the referred customer's ``first_seen`` (one
    ``GROUP BY``, all customers; None without a ``referred_by`` column)."""
    from roi.data import sql_parts
    from roi.data.source import fetch_frame

    customers, life = dataset.tables["customers"], dataset.tables["life"]
    if "referred_by" not in customers.c:
        return None
    month = sql_parts.month_of(life.c.first_seen)
    found = fetch_frame(dataset.engine, sa.select(
        customers.c.referred_by, month.label("first_month_index"), sa.func.count().label("n"))
        .select_from(customers.join(life, customers.c.customer_id == life.c.customer_id))
        .where(customers.c.referred_by.is_not(None))
        .group_by(customers.c.referred_by, month))
    index = pd.MultiIndex.from_arrays([found["referred_by"].astype(str),
                                       found["first_month_index"].astype("int64")])
    return pd.Series(found["n"].to_numpy(np.int64), index=index)


def _counts_on(panel: pd.DataFrame, made: pd.Series) -> pd.Series:
    keys = pd.MultiIndex.from_arrays([panel["customer_id"].astype(str),
                                      panel["month_index"].astype("int64")])
    return pd.Series(made.reindex(keys).fillna(0).to_numpy(np.int64), index=panel.index)


def referred_totals(dataset) -> dict[str, Any]:
    """Over every customer of ``dataset``, from one ``GROUP BY`` per customer of the panel's
    statement: customers in the panel, referred customers (and those with panel rows), their
    window revenue and churn, and those whose referrer was a member in their first month."""
    from roi.data import sql_parts
    from roi.data.panel import panel_select
    from roi.data.source import fetch_frame

    customers, life = dataset.tables["customers"], dataset.tables["life"]
    referrer = life.alias("referrer_life")
    first = sql_parts.month_of(life.c.first_seen)
    referred = (sa.select(life.c.customer_id,
                          sa.case((referrer.c.join_month_index <= first, 1), else_=0)
                          .label("by_member"))
                .select_from(customers.join(life, customers.c.customer_id == life.c.customer_id)
                             .outerjoin(referrer,
                                        referrer.c.customer_id == customers.c.referred_by))
                .where(customers.c.referred_by.is_not(None)).subquery("referred"))
    panel = panel_select(dataset).order_by(None).subquery("referral_panel")
    per_customer = (sa.select(panel.c.customer_id,
                              exact_sum(panel.c.revenue).label("revenue"),
                              sa.func.max(sa.case((panel.c.churned, 1), else_=0))
                              .label("churned"))
                    .group_by(panel.c.customer_id).subquery("referral_customers"))
    mine = referred.c.customer_id.is_not(None)
    in_panel = (sa.select(sa.func.count().label("customers"),
                          sa.func.sum(sa.case((mine, 1), else_=0)).label("with_rows"),
                          exact_sum(sa.case((mine, per_customer.c.revenue), else_=0.0))
                          .label("revenue"),
                          sa.func.sum(sa.case((mine, per_customer.c.churned), else_=0))
                          .label("churned"))
                .select_from(per_customer.outerjoin(
                    referred, referred.c.customer_id == per_customer.c.customer_id)))
    row = fetch_frame(dataset.engine, in_panel).iloc[0]
    counts = fetch_frame(dataset.engine, sa.select(sa.func.count().label("referred"),
                                                   sa.func.sum(referred.c.by_member)
                                                   .label("by_members"))).iloc[0]
    return {"customers": int(row["customers"]), "with_rows": int(row["with_rows"] or 0),
            "revenue": float(row["revenue"] or 0.0), "churned": int(row["churned"] or 0),
            "referred": int(counts["referred"]), "by_members": int(counts["by_members"] or 0)}


def _referral_revenue(did: dict[str, Any] | None, value: float | None,
                      member_months: dict[str, int]) -> dict[str, Any] | None:
    if not did or did.get("estimate") is None or value is None:
        return None
    by_community = {c: {k: did[k] * months * value for k in ("estimate", "low", "high")}
                    | {"interval": did.get("interval")} for c, months in member_months.items()}
    return {"rule": "extra referrals per member-month (DiD, pooled over communities) x the "
                    "community's member-months x mean window revenue of a referred customer; "
                    "shown beside the community's return, never added to it",
            "revenue_per_referred_customer": value, "by_community": by_community}
