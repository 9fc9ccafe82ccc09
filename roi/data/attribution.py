"""Can the ratio-form revenue models tell paid-media orders from organic ones?

The multiplicative estimators (ratio DiD, Bayesian hierarchical lift) fit ``organic_revenue``:
orders whose ``channel`` is not a paid channel of ``ad_spend``. Paid-media orders are an additive
part of revenue that does not scale with a customer's own level, so a ratio model that sees them
is biased upwards (+34% on total revenue over 20 simulated worlds, see ``roi/run.py``). When
ad spend is recorded but no order is attributed to one of its channels (no ``channel`` column,
as most CRM exports, or channels that never match), ``organic_revenue`` silently equals total
revenue and the ratio forms cannot be right: the run refuses them with :attr:`reason`. The
same holds without an ``ad_spend`` table at all: nothing says whether paid media ran and which
orders it brought (an ``ad_spend`` table whose spend is all zero says no paid media ran).

Examples
--------
>>> RevenueAttribution(spend=1000.0, has_channel=False, attributed_orders=0).reason[:40]
'ad_spend records 1,000 of paid media but'
>>> RevenueAttribution(spend=0.0, has_channel=False, attributed_orders=0).reason is None
True
>>> RevenueAttribution(spend=0.0, has_channel=True, attributed_orders=0,
...                    has_ad_spend=False).reason[:30]
'there is no ad_spend table, so'
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa


@dataclass(frozen=True)
class RevenueAttribution:
    """Paid spend in the data and how many orders carry one of its channels."""

    spend: float
    has_channel: bool
    attributed_orders: int
    has_ad_spend: bool = True

    @property
    def reason(self) -> str | None:
        """Why the ratio forms are refused on this data, or None when they can be fitted
        (orders attributed to paid channels, or no paid spend recorded at all)."""
        if not self.has_ad_spend:
            return ("there is no ad_spend table, so nothing says whether paid media ran and "
                    "which orders it brought; paid-media orders do not scale with a customer's "
                    "level and bias a ratio model upwards. Supply ad_spend (all-zero spend if no "
                    "paid media ran) and give orders a `channel` naming the ad_spend channel of "
                    "each paid-attributed order; the additive estimators (did, regression, aipw) "
                    "do not need it")
        if self.spend <= 0 or self.attributed_orders > 0:
            return None
        why = ("orders have no `channel` column" if not self.has_channel
               else "no order's `channel` names an ad_spend channel")
        return (f"ad_spend records {self.spend:,.0f} of paid media but {why}, so paid-media "
                "orders cannot be told from organic ones; a ratio model fitted on revenue that "
                "includes them is biased upwards (paid orders do not scale with a customer's "
                "level). Give orders a `channel` naming the ad_spend channel of each "
                "paid-attributed order to fit it; the additive estimators (did, regression, aipw) "
                "do not need attribution")

    def to_contract(self) -> dict[str, float | int | bool]:
        return {"ad_spend_table": self.has_ad_spend, "ad_spend": self.spend,
                "orders_have_channel": self.has_channel,
                "orders_attributed_to_paid_channels": self.attributed_orders}


def revenue_attribution(dataset) -> RevenueAttribution:
    """Total ad spend and the count of orders attributed to an ad_spend channel, counted inside
    the database (one query each)."""
    orders, spend = dataset.tables["orders"], dataset.tables.get("ad_spend")
    has_channel = "channel" in orders.c
    if spend is None:
        return RevenueAttribution(spend=0.0, has_channel=has_channel, attributed_orders=0,
                                  has_ad_spend=False)
    with dataset.engine.connect() as connection:
        total = connection.execute(sa.select(sa.func.coalesce(sa.func.sum(spend.c.spend), 0.0))
                                   ).scalar_one()
        attributed = 0
        if has_channel:
            paid = sa.select(spend.c.channel).where(spend.c.spend > 0).distinct()
            attributed = connection.execute(
                sa.select(sa.func.count()).select_from(orders)
                .where(orders.c.channel.in_(paid.scalar_subquery()))).scalar_one()
    return RevenueAttribution(spend=float(total), has_channel=has_channel,
                              attributed_orders=int(attributed))
