"""Pieces shared by the three aggregations: calendars and each customer's first membership."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa

from roi.data import dialect

FAR_FUTURE = dt.date(9999, 12, 31)


def complete_months(start: dt.date, end: dt.date) -> list[tuple[int, dt.date, dt.date]]:
    """Calendar months wholly inside [start, end]: (month_index, first day, next month's first)."""
    first = start if start.day == 1 else _next_month(start.replace(day=1))
    months = []
    while True:
        following = _next_month(first)
        if following - dt.timedelta(days=1) > end:
            return months
        months.append((first.year * 12 + first.month - 1, first, following))
        first = following


def complete_weeks(start: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    """Monday-to-Sunday weeks wholly inside [start, end]: (Monday, next Monday)."""
    monday = start + dt.timedelta(days=(7 - start.weekday()) % 7)
    weeks = []
    while monday + dt.timedelta(days=6) <= end:
        weeks.append((monday, monday + dt.timedelta(days=7)))
        monday += dt.timedelta(days=7)
    return weeks


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def month_calendar(start: dt.date, end: dt.date) -> sa.FromClause:
    rows = complete_months(start, end)
    if not rows:
        raise ValueError(f"the window {start} to {end} holds no complete calendar month")
    return sa.values(sa.column("month_index", sa.Integer), sa.column("month_start", sa.Date),
                     sa.column("next_month_start", sa.Date), name="calendar_months").data(rows)


def week_calendar(start: dt.date, end: dt.date) -> sa.FromClause:
    rows = complete_weeks(start, end)
    if not rows:
        raise ValueError(f"the window {start} to {end} holds no complete week")
    return sa.values(sa.column("week_start", sa.Date), sa.column("next_week_start", sa.Date),
                     name="calendar_weeks").data(rows)


def first_membership(life: sa.FromClause, members: sa.FromClause, *,
                     end: dt.date) -> sa.Subquery:
    """Per linked customer: first community joined and when membership starts.

    Membership starts at ``max(joined_at, first_seen)``: community-led prospects who joined
    before they bought are members from their first day as customers. A join after the
    customer's life in the window (after churn or after the window's end) is no membership:
    such customers are non-members in every aggregation (counted in ``data.excluded``).
    """
    starts = sa.func.greatest(members.c.joined_at, life.c.first_seen)
    rank = sa.func.row_number().over(partition_by=members.c.customer_id,
                                     order_by=(starts, members.c.community))
    linked = members.join(life, sa.and_(members.c.customer_id == life.c.customer_id,
                                        members.c.joined_at <= effective_end(life, end)))
    ranked = (sa.select(members.c.customer_id, members.c.community, starts.label("member_start"),
                        rank.label("rank"))
              .select_from(linked).subquery("ranked_memberships"))
    # PostgreSQL has no COUNT(DISTINCT) OVER: count communities in a grouped subquery.
    counts = (sa.select(members.c.customer_id,
                        sa.func.count(sa.distinct(members.c.community)).label("n_communities"))
              .select_from(linked).group_by(members.c.customer_id).subquery("community_counts"))
    return (sa.select(ranked.c.customer_id, ranked.c.community, ranked.c.member_start,
                      counts.c.n_communities)
            .select_from(ranked.join(counts, counts.c.customer_id == ranked.c.customer_id))
            .where(ranked.c.rank == 1).subquery("first_membership"))


def customer_summary(life: sa.FromClause, members: sa.FromClause, *,
                     end: dt.date) -> sa.Select:
    """One row per customer with everything the panel and survival table need precomputed:
    first membership (community, start, number of communities) and month indices."""
    membership = first_membership(life, members, end=end)
    return (sa.select(*life.c, membership.c.community, membership.c.member_start,
                      membership.c.n_communities,
                      month_of(life.c.first_seen).label("first_month_index"),
                      month_of(effective_end(life, end)).label("end_month_index"),
                      month_of(membership.c.member_start).label("join_month_index"))
            .select_from(life.outerjoin(membership,
                                        membership.c.customer_id == life.c.customer_id)))


def effective_end(life: sa.FromClause, end: dt.date) -> sa.ColumnElement:
    """Last day of a customer's life in the window: churn date, else the window end."""
    return sa.func.coalesce(life.c.churn_date, sa.literal(end, sa.Date))


def month_of(column: sa.ColumnElement) -> sa.ColumnElement:
    return dialect.month_index(column)


def categorical_columns(dataset) -> tuple[str, ...]:
    """Columns returned as pandas categoricals: the community and categorical covariates."""
    return ("community", *(c for c, kind in dataset.covariates.items()
                           if kind == "categorical"))


def count_distinct(column: sa.ColumnElement, *, keys: Sequence[sa.ColumnElement] = (),
                   where: sa.ColumnElement | None = None, label: str = "n") -> sa.Select:
    """``SELECT keys..., COUNT(DISTINCT column) AS label ... GROUP BY keys`` written as a
    ``GROUP BY`` of the distinct values, then a count: DuckDB spills a grouping to disk, but
    not a DISTINCT aggregate's state, which ran out of memory at 10M customers. ``keys`` are
    labelled expressions (or columns); the result has their names."""
    names = [k.name if isinstance(k, sa.Label) else k.key for k in keys]
    raw = [k.element if isinstance(k, sa.Label) else k for k in keys]
    inner = sa.select(*(e.label(n) for e, n in zip(raw, names, strict=True)),
                      column.label("value"))
    if where is not None:
        inner = inner.where(where)
    values = inner.group_by(*raw, column).subquery("distinct_values")
    outer = [values.c[n] for n in names]
    return (sa.select(*outer, sa.func.count().label(label)).select_from(values)
            .group_by(*outer))
