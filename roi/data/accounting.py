"""Row accounting: where every row read from every source went (``data.row_accounting``).

Each table's rows are ``used`` (they reach an aggregation), ``excluded`` with a reason, or the
run was refused. Every number is a COUNT run in the source database, and ``used`` is counted
from the same conditions the aggregations apply (not as the remainder), so a row lost without
a reason shows as ``read != used + sum(excluded)``: :func:`unbalanced` names such tables.

What ``used`` means per table:

* ``customers``: alive at some point of the window (rows in the survival table).
* ``orders``: in the customer-month panel (a complete calendar month of the window).
* ``members``: the membership of a customer analysed in the window, joined no later than the
  customer's churn or the window's end.
* ``activity``: in a complete week of the weekly series.
* ``ad_spend``: dated inside the window (partial edge weeks count in the nearest complete week).
* ``community_costs``: the period it covers overlaps the weekly series.
* ``invitations``: the customer is analysed and was assigned before the window's last month
  (it has months to follow); others are ``invitations_no_months_to_follow``.
* ``programs``: linked to an analysed customer who is a member (membership started no later
  than the customer's churn or the window's end), started inside the window; others are
  ``programs_unlinked``, ``programs_not_a_member`` or ``programs_outside_window``.

Examples
--------
>>> from connectors import open_source
>>> from roi.data import load_dataset
>>> dataset = load_dataset(open_source("data/sample"))         # doctest: +SKIP
>>> dataset.report["row_accounting"]["orders"]["read"]          # doctest: +SKIP
60306
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from roi.data import sql_parts
from roi.data.panel import MONTHLY
from roi.data.source import execute_scalar_rows


def _count(engine: sa.Engine, source: sa.FromClause, *where) -> int:
    query = sa.select(sa.func.count()).select_from(source)
    if where:
        query = query.where(*where)
    return int(execute_scalar_rows(engine, query)[0][0])


def _counts(engine: sa.Engine, source: sa.FromClause, *conditions) -> list[int]:
    """Rows meeting each condition, in one scan (orders and activity are the big tables)."""
    query = sa.select(*(sa.func.coalesce(sa.func.sum(sa.case((c, 1), else_=0)), 0)
                        for c in conditions)).select_from(source)
    return [int(n) for n in execute_scalar_rows(engine, query)[0]]


def _day(value) -> sa.ColumnElement:
    return sa.literal(value, sa.Date)


def row_accounting(dataset, *, read: dict[str, int],
                   excluded: dict[str, int]) -> dict[str, dict[str, Any]]:
    """``{table: {"read", "used", "excluded": {reason: n}}}`` for every table present.

    Parameters
    ----------
    read : dict
        Rows of each raw source table (counted before typing).
    excluded : dict
        Counts already known when loading (duplicates, exclusion options), by reason; reasons
        are prefixed with their table's name.
    """
    builders = {"customers": _customers, "orders": _orders, "members": _members,
                "activity": _activity, "ad_spend": _ad_spend,
                "community_costs": _community_costs, "invitations": _invitations,
                "programs": _programs}
    accounting = {}
    for table, n_read in read.items():
        used, reasons = builders[table](dataset)
        known = {k: v for k, v in excluded.items() if k.startswith(table + "_")}
        reasons = {k: v for k, v in {**known, **reasons}.items() if v}
        accounting[table] = {"read": n_read, "used": used, "excluded": reasons}
    return accounting


def unbalanced(accounting: dict[str, dict[str, Any]]) -> list[str]:
    """Tables whose rows do not add up (a row lost without a reason): should be empty."""
    return [table for table, entry in accounting.items()
            if entry["read"] != entry["used"] + sum(entry["excluded"].values())]


def _customers(dataset) -> tuple[int, dict[str, int]]:
    engine, life = dataset.engine, dataset.tables["life"]
    start = _day(dataset.start)
    before = _count(engine, life, life.c.churn_date < start)
    after = _count(engine, dataset.tables["customers"]) - _count(engine, life)
    used = _count(engine, life, sa.or_(life.c.churn_date.is_(None), life.c.churn_date >= start))
    return used, {"customers_first_seen_after_window": after,
                  "customers_churned_before_window": before}


def _orders(dataset) -> tuple[int, dict[str, int]]:
    """Kept orders in the panel: a complete month, within the customer's months of life."""
    engine, orders, life = dataset.engine, dataset.tables["orders"], dataset.tables["life"]
    months = sql_parts.complete_months(dataset.start, dataset.end)
    first, following = _day(months[0][1]), _day(months[-1][2])
    in_months = sa.and_(orders.c.order_date >= first, orders.c.order_date < following)
    monthly = dataset.tables.get(MONTHLY)
    if monthly is not None:
        # The stored monthly sums hold the orders of complete months per customer: summing
        # their counts over the customer's months of life reads them, not every order again.
        in_life = sa.and_(monthly.c.customer_key == life.c.customer_key,
                          monthly.c.month_index >= life.c.first_month_index,
                          monthly.c.month_index <= life.c.end_month_index)
        used = execute_scalar_rows(engine, sa.select(sa.func.coalesce(
            sa.func.sum(monthly.c.orders), 0)).select_from(monthly.join(life, in_life)))[0][0]
        return int(used), {"orders_outside_complete_months": _count(engine, orders,
                                                                     sa.not_(in_months))}
    month = sql_parts.month_of(orders.c.order_date)
    in_life = sa.and_(orders.c.customer_id == life.c.customer_id,
                      month >= life.c.first_month_index, month <= life.c.end_month_index)
    used, outside = _counts(engine, orders.outerjoin(life, in_life),
                            sa.and_(in_months, life.c.customer_id.is_not(None)),
                            sa.not_(in_months))
    return used, {"orders_outside_complete_months": outside}


def _members(dataset) -> tuple[int, dict[str, int]]:
    engine, members, life = dataset.engine, dataset.tables["members"], dataset.tables["life"]
    linked = members.outerjoin(life, members.c.customer_id == life.c.customer_id)
    start, end = _day(dataset.start), _day(dataset.end)
    life_end = sql_parts.effective_end(life, dataset.end)   # never NULL: NOT() stays boolean
    outside = sa.or_(life.c.customer_id.is_(None), life_end < start)
    known = sa.and_(members.c.customer_id.is_not(None), sa.not_(outside))
    after_window = sa.and_(known, members.c.joined_at > end)
    after_churn = sa.and_(known, members.c.joined_at <= end,
                          members.c.joined_at > life.c.churn_date)
    used = _count(engine, linked, known, members.c.joined_at <= life_end)
    return used, {
        "members_duplicate_row": _count(engine, dataset.source.tables["members"])
        - _count(engine, members),
        "members_unlinked": _count(engine, members, members.c.customer_id.is_(None)),
        "members_customer_outside_window": _count(
            engine, linked, members.c.customer_id.is_not(None), outside),
        "members_joined_after_window": _count(engine, linked, after_window),
        "members_joined_after_churn": _count(engine, linked, after_churn)}


def _weeks_bounds(dataset) -> tuple[sa.ColumnElement, sa.ColumnElement]:
    weeks = sql_parts.complete_weeks(dataset.start, dataset.end)
    return _day(weeks[0][0]), _day(weeks[-1][1])


def _activity(dataset) -> tuple[int, dict[str, int]]:
    activity = dataset.tables["activity"]
    first, following = _weeks_bounds(dataset)
    inside = sa.and_(activity.c.date >= first, activity.c.date < following)
    used, outside = _counts(dataset.engine, activity, inside, sa.not_(inside))
    return used, {"activity_outside_complete_weeks": outside}


def _ad_spend(dataset) -> tuple[int, dict[str, int]]:
    spend = dataset.tables["ad_spend"]
    inside = sa.and_(spend.c.date >= _day(dataset.start), spend.c.date <= _day(dataset.end))
    return (_count(dataset.engine, spend, inside),
            {"ad_spend_outside_window": _count(dataset.engine, spend, sa.not_(inside))})


def _community_costs(dataset) -> tuple[int, dict[str, int]]:
    """A cost row is used when the period of its booking (community, category, date) overlaps
    the weekly series' complete weeks; the weekly cost is spread over those days."""
    from roi.data.weekly import cost_category, cost_periods

    costs = dataset.tables["community_costs"]
    periods = cost_periods(costs)
    first, following = _weeks_bounds(dataset)
    rows = costs.join(periods, sa.and_(costs.c.community == periods.c.community,
                                       cost_category(costs) == periods.c.category,
                                       costs.c.date == periods.c.period_start))
    overlaps = sa.and_(periods.c.period_start < following, periods.c.period_end > first)
    return (_count(dataset.engine, rows, overlaps),
            {"community_costs_outside_window": _count(dataset.engine, rows, sa.not_(overlaps))})


def _invitations(dataset) -> tuple[int, dict[str, int]]:
    """An assignment is used when its customer is analysed (in the survival table) and at
    least one complete month of the window follows the month of ``assigned_at``."""
    engine, invitations, life = (dataset.engine, dataset.tables["invitations"],
                                 dataset.tables["life"])
    months = sql_parts.complete_months(dataset.start, dataset.end)
    last_month_start = _day(months[-1][1])
    linked = invitations.outerjoin(life, invitations.c.customer_id == life.c.customer_id)
    followed = sa.and_(life.c.customer_id.is_not(None),
                       invitations.c.assigned_at < last_month_start)
    used, other = _counts(engine, linked, followed, sa.not_(followed))
    return used, {"invitations_no_months_to_follow": other}


def _programs(dataset) -> tuple[int, dict[str, int]]:
    """A programme row is used when it links to an analysed member and started inside the
    window (the programme DiD of :mod:`roi.engagement.programs` reads exactly these)."""
    engine, programs, life = (dataset.engine, dataset.tables["programs"],
                              dataset.tables["life"])
    linked = programs.outerjoin(life, programs.c.customer_id == life.c.customer_id)
    known = life.c.customer_id.is_not(None)
    member = sa.and_(known, life.c.member_start.is_not(None))
    inside = sa.and_(programs.c.started_at >= _day(dataset.start),
                     programs.c.started_at <= _day(dataset.end))
    used, unlinked, not_member, outside = _counts(
        engine, linked, sa.and_(member, inside), sa.not_(known),
        sa.and_(known, life.c.member_start.is_(None)), sa.and_(member, sa.not_(inside)))
    return used, {"programs_unlinked": unlinked, "programs_not_a_member": not_member,
                  "programs_outside_window": outside}
