"""The survival start-stop table, built by one SQL statement inside the source database.

Time is in days since the customer's ``first_seen``; a customer's last day counts, so
``stop = days(first_seen -> churn or window end) + 1`` and every interval has ``stop > start``.
Membership is a time-varying state that starts at ``max(joined_at, first_seen)``: a customer who
joins on day J has rows ``[entry, J)`` with ``member = 0`` and ``[J, stop]`` with ``member = 1``,
so survival before joining is never credited to the community (no immortal-time bias).
Customers first seen before the window start enter late (``start`` = days before the window,
left truncation). Columns: ``customer_id``, ``start``, ``stop``, ``event`` (churned at ``stop``),
``member``, ``community`` (first community joined), ``join_day``, and the covariates.
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from roi.data import dialect, sql_parts
from roi.data.source import fetch_frame
from roi.data.sql_parts import categorical_columns


def survival_select(dataset) -> sa.Select:
    life = dataset.tables["life"]
    stop = dialect.day_diff(sql_parts.effective_end(life, dataset.end), life.c.first_seen) + 1
    entry = sa.func.greatest(0, dialect.day_diff(sa.literal(dataset.start, sa.Date),
                                                 life.c.first_seen))
    join_day = dialect.day_diff(life.c.member_start, life.c.first_seen)
    event = sa.case((life.c.churn_date.is_not(None), 1), else_=0)
    covariates = [life.c[c] for c in dataset.covariates]
    base = (sa.select(life.c.customer_id, life.c.customer_key, entry.label("entry"), stop.label("stop"),
                      event.label("event"), join_day.label("join_day"), life.c.community,
                      *covariates)
            .subquery("survival_base"))
    joins_in_life = sa.and_(base.c.join_day.is_not(None), base.c.join_day < base.c.stop)
    pre_member = sa.select(
        base.c.customer_id, base.c.customer_key, base.c.entry.label("start"),
        sa.case((joins_in_life, base.c.join_day), else_=base.c.stop).label("stop"),
        sa.case((joins_in_life, 0), else_=base.c.event).label("event"),
        sa.literal(0).label("member"), *_rest(base, covariates),
    ).where(base.c.stop > base.c.entry,
            sa.or_(~joins_in_life, base.c.join_day > base.c.entry))
    as_member = sa.select(
        base.c.customer_id, base.c.customer_key, sa.func.greatest(base.c.join_day, base.c.entry).label("start"),
        base.c.stop, base.c.event, sa.literal(1).label("member"), *_rest(base, covariates),
    ).where(base.c.stop > base.c.entry, joins_in_life)
    union = sa.union_all(pre_member, as_member).subquery("start_stop")
    columns = [c for c in union.c if c.key != "customer_key"]
    return sa.select(*columns).order_by(union.c.customer_key, union.c.start)


def _rest(base: sa.Subquery, covariates: list) -> list:
    return [base.c.community, base.c.join_day, *(base.c[c.key] for c in covariates)]


def survival_table(dataset) -> pd.DataFrame:
    frame = fetch_frame(dataset.engine, survival_select(dataset),
                        categorical=categorical_columns(dataset))
    for column in ("start", "stop", "event", "member"):
        frame[column] = frame[column].astype("int64")
    frame["join_day"] = frame["join_day"].astype("Int64")
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.Int64Dtype | pd.Int32Dtype) and column != \
                "join_day" and not frame[column].isna().any():
            frame[column] = frame[column].astype("int64")
    return frame.reset_index(drop=True)
