"""The customer-month panel, built by one SQL statement inside the source database.

One row per customer and complete calendar month of the window from the month of ``first_seen``
to the month of churn (or the window's end). Columns:

``customer_id``, ``month`` (first day), ``month_index`` (year*12 + month-1), ``revenue`` (sum of
orders, refunds negative, 0 without orders), ``organic_revenue`` (the same without orders whose
``channel`` is a paid channel of ``ad_spend``: what the multiplicative lift models fit, see
:mod:`roi.revenue_lift.bayes_revenue`), ``orders``, ``active`` (customer for the whole month:
first seen before the month began and not churned before it ended, the contract's member-month
condition), ``member`` (month at or after the month membership started; absorbing),
``join_month_index`` (NULL for never-members), ``months_since_join``, ``community`` (first
community joined), ``n_communities``, ``churned`` (churn date falls in the month),
``first_month_index``, and the covariates.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from roi.data import dialect, sql_parts
from roi.data.source import fetch_frame
from roi.data.sql_parts import categorical_columns


def panel_select(dataset, *, with_key: bool = False) -> sa.Select:
    """The customer-month panel's statement, in customer and month order. ``with_key`` adds
    life's integer ``customer_key`` (grouping by it inside the database is cheaper than by the
    text id)."""
    life = dataset.tables["life"]
    calendar = sql_parts.month_calendar(dataset.start, dataset.end)
    stored = dataset.tables.get(MONTHLY)
    if stored is not None:
        # Computed once by load_dataset, keyed by the integer customer_key: every panel
        # aggregate joins it instead of re-grouping all orders by a text id.
        revenue, key, life_key = stored, stored.c.customer_key, life.c.customer_key
    else:
        revenue = monthly_revenue_select(dataset.tables, start=dataset.start, end=dataset.end
                                         ).subquery("monthly_revenue")
        key, life_key = revenue.c.customer_id, life.c.customer_id
    in_life = sa.and_(calendar.c.month_index >= life.c.first_month_index,
                      calendar.c.month_index <= life.c.end_month_index)
    joins = (calendar.join(life, in_life)
             .outerjoin(revenue, sa.and_(key == life_key,
                                         revenue.c.month_index == calendar.c.month_index)))
    active = sa.and_(life.c.first_seen < calendar.c.month_start,
                     sa.or_(life.c.churn_date.is_(None),
                            life.c.churn_date >= calendar.c.next_month_start))
    join_month = life.c.join_month_index
    member = sa.and_(join_month.is_not(None), calendar.c.month_index >= join_month)
    churned = sa.and_(life.c.churn_date.is_not(None),
                      life.c.churn_date >= calendar.c.month_start,
                      life.c.churn_date < calendar.c.next_month_start)
    covariates = [life.c[c] for c in dataset.covariates]
    return (sa.select(life.c.customer_id, calendar.c.month_start.label("month"),
                      calendar.c.month_index,
                      sa.func.coalesce(revenue.c.revenue, 0.0).label("revenue"),
                      sa.func.coalesce(revenue.c.organic_revenue, 0.0).label("organic_revenue"),
                      sa.func.coalesce(revenue.c.orders, 0).label("orders"),
                      active.label("active"), member.label("member"),
                      join_month.label("join_month_index"),
                      (calendar.c.month_index - join_month).label("months_since_join"),
                      life.c.community, life.c.n_communities,
                      churned.label("churned"), life.c.first_month_index, *covariates,
                      *([life.c.customer_key] if with_key else []))
            .select_from(joins)
            .order_by(life.c.customer_key, calendar.c.month_index))


MONTHLY = "orders_monthly"
"""Key of :attr:`Dataset.tables` holding each customer's revenue per month when stored."""


def monthly_revenue_select(tables: dict[str, sa.FromClause], *, start: dt.date, end: dt.date,
                           life: sa.FromClause | None = None) -> sa.Select:
    """Revenue, organic revenue and orders per customer and month of orders.

    With ``life`` (a table with ``customer_id`` and ``customer_key``): per ``customer_key``,
    for customers of ``life`` and complete months of the window only (what the panel joins),
    the form :func:`roi.data.load_dataset` stores once. Without: per ``customer_id``, every
    month (a warehouse, where nothing is stored, runs it inside the panel's statement).
    """
    orders = tables["orders"]
    order_month = sql_parts.month_of(orders.c.order_date)
    sums = (dialect.exact_sum(orders.c.revenue).label("revenue"),
            dialect.exact_sum(_organic(tables, orders)).label("organic_revenue"),
            sa.func.count().label("orders"))
    if life is None:
        return (sa.select(orders.c.customer_id, order_month.label("month_index"), *sums)
                .group_by(orders.c.customer_id, order_month))
    months = sql_parts.complete_months(start, end)
    in_months = sa.and_(orders.c.order_date >= sa.literal(months[0][1], sa.Date),
                        orders.c.order_date < sa.literal(months[-1][2], sa.Date))
    return (sa.select(life.c.customer_key, order_month.label("month_index"), *sums)
            .select_from(orders.join(life, life.c.customer_id == orders.c.customer_id))
            .where(in_months)
            .group_by(life.c.customer_key, order_month))


def _organic(tables: dict[str, sa.FromClause], orders: sa.FromClause) -> sa.ColumnElement:
    """An order's revenue unless its ``channel`` is one of the paid channels of ``ad_spend``
    (then 0). Without a ``channel`` column or an ``ad_spend`` table every order is organic."""
    spend = tables.get("ad_spend")
    if "channel" not in orders.c or spend is None:
        return orders.c.revenue
    paid = orders.c.channel.in_(sa.select(spend.c.channel).distinct().scalar_subquery())
    return sa.case((paid, 0.0), else_=orders.c.revenue)


def customer_month_panel(dataset) -> pd.DataFrame:
    frame = fetch_frame(dataset.engine, panel_select(dataset),
                        categorical=categorical_columns(dataset))
    return _tidy(frame)


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Stable dtypes whatever the engine, converting in place (the panel can be 13M rows):
    bools, int32 months, nullable Int32 where NULL means never-member, datetime64 months."""
    wanted = {"active": "bool", "member": "bool", "churned": "bool", "month_index": "int32",
              "orders": "int32", "first_month_index": "int32", "join_month_index": "Int32",
              "months_since_join": "Int32", "n_communities": "Int32", "revenue": "float64",
              "organic_revenue": "float64",
              "month": "datetime64[ns]"}
    for column, dtype in wanted.items():
        if str(frame[column].dtype) != dtype:
            frame[column] = frame[column].astype(dtype)
    return frame
