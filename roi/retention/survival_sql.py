"""Retention curves' sufficient statistics from ``GROUP BY`` queries inside the database.

A Kaplan–Meier curve needs, per group, only how many customers leave observation, churn and
enter at each time (:func:`roi.retention.survival_curves.kaplan_meier_counts`). The landmark
curves of :class:`~roi.retention.survival_curves.RetentionCurves` group customers by their
membership at the landmark, so :func:`retention_counts` returns those counts per landmark,
group and day (a few thousand rows whatever the number of customers) from the start-stop table
the data layer builds (:func:`roi.data.survival.survival_select`), and
:meth:`RetentionCurves.fit_counts <roi.retention.survival_curves.RetentionCurves.fit_counts>`
gives the same curves as the in-memory fit.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import sqlalchemy as sa

from roi.data.source import fetch_frame
from roi.retention.survival_curves import DAYS_PER_MONTH


def retention_counts(engine: sa.Engine, table: sa.FromClause, *,
                     landmarks_months: Sequence[float] = (3, 6, 12),
                     days_per_month: float = DAYS_PER_MONTH, id_col: str = "customer_id",
                     start: str = "start", stop: str = "stop", event: str = "event",
                     member: str = "member", community: str | None = None) -> pd.DataFrame:
    """Counts per landmark, group, kind (exit, death, entry) and day; see the module doc.

    ``table`` is a start-stop table (one row per customer interval) as
    :meth:`RetentionCurves.fit <roi.retention.survival_curves.RetentionCurves.fit>` takes it;
    the groups are those of ``fit`` (``all`` at landmark 0, ``member``, ``non-member`` and
    ``member: <community>`` at each landmark).
    """
    rows = table.alias("survival_rows")
    ends = _ends(rows, id_col=id_col, start=start, stop=stop, event=event)
    everyone = fetch_frame(engine, sa.select(
        ends.c.entry, ends.c.last, ends.c.churned, sa.func.count().label("n"))
        .group_by(ends.c.entry, ends.c.last, ends.c.churned))
    parts = [_kinds(everyone, entry=everyone["entry"]).assign(landmark_month=0, group="all")]
    for month in landmarks_months:
        day = month * days_per_month
        side = [rows.c[community].label("community")] if community else []
        at = (sa.select(rows.c[id_col].label("id"), rows.c[member].label("member"), *side)
              .where(rows.c[start] <= day, rows.c[stop] > day).subquery("at_landmark"))
        keys = [at.c.member, *([at.c.community] if community else []), ends.c.last,
                ends.c.churned]
        found = fetch_frame(engine, sa.select(*keys, sa.func.count().label("n"))
                            .select_from(at.join(ends, ends.c.id == at.c.id)).group_by(*keys))
        found["last"] = found["last"] - day
        parts += _landmark_parts(found, month=month, community=community is not None)
    return pd.concat(parts, ignore_index=True)


def _ends(rows: sa.FromClause, *, id_col: str, start: str, stop: str,
          event: str) -> sa.Subquery:
    """Per customer: first entry, last stop, and the event of the interval ending there."""
    last = (sa.select(rows.c[id_col].label("id"), sa.func.min(rows.c[start]).label("entry"),
                      sa.func.max(rows.c[stop]).label("last"))
            .group_by(rows.c[id_col]).subquery("last_stop"))
    churned = sa.func.max(sa.cast(rows.c[event], sa.Integer)).label("churned")
    return (sa.select(last.c.id, last.c.entry, last.c.last, churned)
            .select_from(last.join(rows, sa.and_(rows.c[id_col] == last.c.id,
                                                 rows.c[stop] == last.c.last)))
            .group_by(last.c.id, last.c.entry, last.c.last).subquery("ends"))


def _kinds(found: pd.DataFrame, *, entry: pd.Series | float) -> pd.DataFrame:
    """Exit, death and entry counts per time from rows of (last, churned, n)."""
    frame = found.assign(entry=entry)
    exits = frame.groupby("last")["n"].sum()
    deaths = frame[frame["churned"] == 1].groupby("last")["n"].sum()
    entries = frame.groupby("entry")["n"].sum()
    return pd.concat([pd.DataFrame({"kind": kind, "time": part.index.to_numpy(dtype=float),
                                    "n": part.to_numpy()})
                      for kind, part in (("exit", exits), ("death", deaths),
                                         ("entry", entries))], ignore_index=True)


def _landmark_parts(found: pd.DataFrame, *, month: float,
                    community: bool) -> list[pd.DataFrame]:
    is_member = found["member"].astype(bool)
    parts = [_kinds(found[is_member], entry=0.0).assign(landmark_month=month, group="member"),
             _kinds(found[~is_member], entry=0.0).assign(landmark_month=month,
                                                         group="non-member")]
    if community:
        names = found["community"].astype("string").fillna("(unknown)")
        for name in sorted(set(names[is_member])):
            rows = found[is_member & (names == name)]
            parts.append(_kinds(rows, entry=0.0).assign(landmark_month=month,
                                                        group=f"member: {name}"))
    return parts
