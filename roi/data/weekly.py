"""The weekly series every media-mix model needs, aggregated inside the source database.

Complete Monday-to-Sunday weeks of the window. ``WeeklySeries.totals`` holds revenue, orders and
active customers (customers at the week's Monday); the wide tables ``spend``, ``impressions``,
``clicks`` (week x channel) and ``members`` (enrolled at the Monday), ``active_members`` (distinct
members with activity), ``activity`` (sum of counts), ``cost`` (week x community) hold the rest.
Community costs are spread evenly over the days of the period each covers (from its ``date`` to
the next cost row of the same community and category; the last row covers as long as the one
before it, or 30 days); rows of one community, category and date are added first. Ad spend dated
in a partial week at either edge of the window counts in the nearest complete week; spend dated
outside the window is left out (and counted in ``data.row_accounting``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from roi.data import dialect, sql_parts
from roi.data.source import fetch_frame


@dataclass
class WeeklySeries:
    totals: pd.DataFrame
    spend: pd.DataFrame
    impressions: pd.DataFrame
    clicks: pd.DataFrame
    members: pd.DataFrame
    active_members: pd.DataFrame
    activity: pd.DataFrame
    cost: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        """One wide frame: ``revenue`` ..., ``spend:<channel>``, ``cost:<community>`` ..."""
        parts = [self.totals]
        for name in ("spend", "impressions", "clicks", "members", "active_members", "activity",
                     "cost"):
            part = getattr(self, name)
            parts.append(part.rename(columns=lambda key, n=name: f"{n}:{key}"))
        return pd.concat(parts, axis=1)


def weekly_series(dataset) -> WeeklySeries:
    calendar = sql_parts.week_calendar(dataset.start, dataset.end)
    weeks = pd.DatetimeIndex([pd.Timestamp(w) for w, _ in
                              sql_parts.complete_weeks(dataset.start, dataset.end)], name="week")
    totals = _fetch(dataset, _totals_select(dataset, calendar)).set_index("week").reindex(weeks)
    totals = totals.fillna(0.0)
    totals["orders"] = totals["orders"].astype("int64")
    totals["active_customers"] = totals["active_customers"].astype("int64")
    tables = dataset.tables
    spend = _wide(dataset, _spend_select(tables.get("ad_spend"), calendar, dataset=dataset),
                  weeks)
    members = _wide(dataset, _members_select(tables["members"], calendar), weeks)
    activity = _wide(dataset, _activity_select(tables.get("activity"), calendar), weeks)
    cost = _wide(dataset, _cost_select(tables.get("community_costs"), calendar), weeks)
    return WeeklySeries(totals=totals, spend=spend.get("spend", _empty(weeks)),
                        impressions=spend.get("impressions", _empty(weeks)),
                        clicks=spend.get("clicks", _empty(weeks)),
                        members=members.get("members", _empty(weeks)),
                        active_members=activity.get("active_members", _empty(weeks)),
                        activity=activity.get("activity", _empty(weeks)),
                        cost=cost.get("cost", _empty(weeks)))


def _fetch(dataset, query: sa.Select) -> pd.DataFrame:
    frame = fetch_frame(dataset.engine, query)
    frame["week"] = pd.to_datetime(frame["week"])
    return frame


def _empty(weeks: pd.DatetimeIndex) -> pd.DataFrame:
    return pd.DataFrame(index=weeks)


def _wide(dataset, query: sa.Select | None, weeks: pd.DatetimeIndex) -> dict[str, pd.DataFrame]:
    """Long (week, key, measures...) -> one week x key table per measure, zeros where absent."""
    if query is None:
        return {}
    frame = _fetch(dataset, query)
    measures = [c for c in frame.columns if c not in ("week", "key")]
    out = {}
    for measure in measures:
        wide = frame.pivot_table(index="week", columns="key", values=measure, aggfunc="sum",
                                  observed=True)
        wide = wide.reindex(weeks).fillna(0.0).astype("float64")
        wide.columns = [str(c) for c in wide.columns]
        wide.columns.name = None
        out[measure] = wide.sort_index(axis=1)
    return out


def _totals_select(dataset, calendar: sa.FromClause) -> sa.Select:
    orders, life = dataset.tables["orders"], dataset.tables["life"]
    week = dialect.week_start(orders.c.order_date)
    revenue = (sa.select(week.label("week_start"), dialect.exact_sum(orders.c.revenue).label("revenue"),
                         sa.func.count().label("orders"))
               .group_by(week).subquery("weekly_revenue"))
    alive = _alive_select(life, calendar).subquery("weekly_alive")
    return (sa.select(calendar.c.week_start.label("week"),
                      sa.func.coalesce(revenue.c.revenue, 0.0).label("revenue"),
                      sa.func.coalesce(revenue.c.orders, 0).label("orders"),
                      sa.func.coalesce(alive.c.active_customers, 0).label("active_customers"))
            .select_from(calendar
                         .outerjoin(revenue, revenue.c.week_start == calendar.c.week_start)
                         .outerjoin(alive, alive.c.week_start == calendar.c.week_start)))


def _alive_select(life: sa.FromClause, calendar: sa.FromClause) -> sa.Select:
    """Customers at each Monday: first seen by then, not churned by then. Counted from
    customers per first-seen day minus customers per churn day up to the Monday (a churn
    never precedes first_seen), so the join is weeks x distinct days, not weeks x customers
    (100 weeks x 10M customers)."""
    changes = sa.union_all(
        sa.select(life.c.first_seen.label("day"), sa.literal(1).label("step")),
        sa.select(life.c.churn_date.label("day"), sa.literal(-1).label("step"))
        .where(life.c.churn_date.is_not(None))).subquery("alive_changes")
    by_day = (sa.select(changes.c.day, sa.func.sum(changes.c.step).label("step"))
              .group_by(changes.c.day).subquery("alive_steps"))
    return (sa.select(calendar.c.week_start,
                      sa.cast(sa.func.sum(by_day.c.step), sa.BigInteger)
                      .label("active_customers"))
            .select_from(calendar.join(by_day, by_day.c.day <= calendar.c.week_start))
            .group_by(calendar.c.week_start))


def _spend_select(spend: sa.FromClause | None, calendar: sa.FromClause, *,
                  dataset) -> sa.Select | None:
    if spend is None:
        return None
    week = spend_week(spend.c.date, dataset.start, dataset.end)
    measures = [dialect.exact_sum(spend.c.spend).label("spend")]
    for name in ("impressions", "clicks"):
        if name in spend.c:
            measures.append(dialect.exact_sum(spend.c[name]).label(name))
    inner = (sa.select(week.label("week"), spend.c.channel.label("key"), *measures)
             .group_by(week, spend.c.channel).subquery("weekly_spend"))
    return (sa.select(inner).select_from(inner.join(calendar,
                                                     calendar.c.week_start == inner.c.week)))


def spend_week(date: sa.ColumnElement, start, end) -> sa.ColumnElement:
    """The complete week a spend date counts in: its own, or the nearest complete week for a
    date in a partial week at the window's edges (monthly rows dated the 1st keep their money);
    NULL outside the window."""
    weeks = sql_parts.complete_weeks(start, end)
    first, last = weeks[0][0], weeks[-1][0]
    day = sa.literal
    return sa.case((sa.or_(date < day(start, sa.Date), date > day(end, sa.Date)), sa.null()),
                   (date < day(first, sa.Date), day(first, sa.Date)),
                   (date >= day(weeks[-1][1], sa.Date), day(last, sa.Date)),
                   else_=dialect.week_start(date))


def _members_select(members: sa.FromClause, calendar: sa.FromClause) -> sa.Select:
    left = (sa.func.coalesce(members.c.left_at, sa.literal(sql_parts.FAR_FUTURE, sa.Date))
            if "left_at" in members.c else sa.literal(sql_parts.FAR_FUTURE, sa.Date))
    enrolled = sa.and_(members.c.joined_at <= calendar.c.week_start, left > calendar.c.week_start)
    return (sa.select(calendar.c.week_start.label("week"), members.c.community.label("key"),
                      sa.func.count().label("members"))
            .select_from(calendar.join(members, enrolled))
            .group_by(calendar.c.week_start, members.c.community))


def _activity_select(activity: sa.FromClause | None,
                     calendar: sa.FromClause) -> sa.Select | None:
    if activity is None:
        return None
    week = dialect.week_start(activity.c.date)
    # Two groupings instead of COUNT(DISTINCT member_key) per week and community: DuckDB spills
    # a grouping to disk but not a DISTINCT aggregate (82M activity rows overflow 1 GB).
    exact = sa.Numeric(38, 9)
    per_member = (sa.select(week.label("week"), activity.c.community.label("key"),
                            activity.c.member_key,
                            sa.func.sum(sa.cast(activity.c["count"], exact)).label("n"))
                  .group_by(week, activity.c.community, activity.c.member_key)
                  .subquery("weekly_member_activity"))
    inner = (sa.select(per_member.c.week, per_member.c.key,
                       sa.func.count(per_member.c.member_key).label("active_members"),
                       sa.cast(sa.func.sum(per_member.c.n), sa.Double).label("activity"))
             .group_by(per_member.c.week, per_member.c.key).subquery("weekly_activity"))
    return sa.select(inner).select_from(inner.join(calendar,
                                                    calendar.c.week_start == inner.c.week))


def cost_category(costs: sa.FromClause) -> sa.ColumnElement:
    return (sa.func.coalesce(costs.c.category, "") if "category" in costs.c
            else sa.literal(""))


def cost_periods(costs: sa.FromClause) -> sa.Subquery:
    """One row per community, category and date (costs booked on one date added, so a second
    row never gets a zero-length period) with the period it covers."""
    category = cost_category(costs)
    booked = (sa.select(costs.c.community, category.label("category"), costs.c.date,
                        dialect.exact_sum(costs.c.cost).label("cost"))
              .group_by(costs.c.community, category, costs.c.date).subquery("cost_bookings"))
    window = {"partition_by": (booked.c.community, booked.c.category),
              "order_by": booked.c.date}
    previous_gap = dialect.day_diff(booked.c.date, sa.func.lag(booked.c.date).over(**window))
    period_end = sa.func.coalesce(sa.func.lead(booked.c.date).over(**window),
                                  booked.c.date + sa.func.coalesce(previous_gap, 30))
    return sa.select(booked.c.community, booked.c.category, booked.c.cost,
                     booked.c.date.label("period_start"),
                     period_end.label("period_end")).subquery("cost_periods")


def _cost_select(costs: sa.FromClause | None, calendar: sa.FromClause) -> sa.Select | None:
    if costs is None:
        return None
    periods = cost_periods(costs)
    overlap_start = sa.func.greatest(periods.c.period_start, calendar.c.week_start)
    overlap_end = sa.func.least(periods.c.period_end, calendar.c.next_week_start)
    share = (sa.cast(dialect.day_diff(overlap_end, overlap_start), sa.Double)
             / sa.cast(dialect.day_diff(periods.c.period_end, periods.c.period_start), sa.Double))
    overlaps = sa.and_(periods.c.period_start < calendar.c.next_week_start,
                       periods.c.period_end > calendar.c.week_start,
                       periods.c.period_end > periods.c.period_start)
    return (sa.select(calendar.c.week_start.label("week"), periods.c.community.label("key"),
                      dialect.exact_sum(periods.c.cost * share).label("cost"))
            .select_from(calendar.join(periods, overlaps))
            .group_by(calendar.c.week_start, periods.c.community))
