"""Retention curves: Kaplan–Meier for everyone, and landmark curves for members vs non-members.

A plain Kaplan–Meier curve of ever-members against never-members credits members with the time
before they joined (a customer must survive until joining to become a member: immortal-time bias).
Landmark curves avoid it: at a landmark (3, 6, 12 months after first seen) take the customers who
are still customers and under observation, split them by their membership *at the landmark*, and
follow both groups from the landmark on. Customers who join later stay in the non-member group
(a conservative, intention-to-treat comparison).

Time is in days on the start-stop table of :mod:`roi.data.survival` (``start``, ``stop`` days since
first seen, ``event`` = churned at ``stop``, ``member`` time-varying 0/1). Months are converted with
``days_per_month`` (30.4375 by default). Intervals: pointwise 95% confidence intervals from
Greenwood's variance on the log(-log) scale (the "exponential Greenwood" interval of lifelines
and R ``survfit(conf.type="log-log")``). At-risk sets follow the counting-process convention: a
customer who enters at day ``e`` is at risk at days ``t`` with ``e < t <= stop``.

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"customer_id": [1, 2, 2, 3, 4, 4, 5],
...                       "start": [0, 0, 20, 0, 0, 50, 0],
...                       "stop": [40, 20, 400, 150, 50, 300, 500],
...                       "event": [1, 0, 0, 1, 0, 1, 0], "member": [0, 0, 1, 0, 0, 1, 0]})
>>> curves = RetentionCurves(landmarks_months=(1,), horizons_months=(6,)).fit(table)
>>> curves.retention_[["landmark_month", "group", "customers", "retention"]].round(3)
   landmark_month       group  customers  retention
0               0         all          5        0.6
1               1      member          1        1.0
2               1  non-member          4        0.5
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from roi.results import CI95

DAYS_PER_MONTH = 30.4375
Z95 = float(stats.norm.ppf(0.975))


def kaplan_meier(time: np.ndarray, event: np.ndarray, *,
                 entry: np.ndarray | None = None) -> pd.DataFrame:
    """Kaplan–Meier survival with Greenwood variance and log(-log) 95% intervals.

    Parameters
    ----------
    time : array of float
        Time of churn or censoring.
    event : array of bool or 0/1
        1 when the customer churned at ``time``.
    entry : array of float, optional
        Delayed entry (left truncation): at risk only for ``entry < t <= time``.

    Returns
    -------
    DataFrame
        One row per distinct observed time: ``time``, ``at_risk``, ``events``, ``survival``,
        ``greenwood`` (cumulative variance term, so SE = survival * sqrt(greenwood)), ``low``,
        ``high``.

    Examples
    --------
    >>> km = kaplan_meier(np.array([2, 3, 3, 5, 6]), np.array([1, 1, 0, 1, 0]))
    >>> km["survival"].round(3).tolist()
    [0.8, 0.6, 0.3, 0.3]
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event).astype(bool)
    entry = np.zeros_like(time) if entry is None else np.asarray(entry, dtype=float)
    times, exits = np.unique(time, return_counts=True)
    deaths = np.bincount(np.searchsorted(times, time[event]), minlength=len(times))
    entries, entered = np.unique(entry, return_counts=True)
    return kaplan_meier_counts(times, exits=exits, deaths=deaths, entries=entries,
                               entered=entered)


def kaplan_meier_counts(times: np.ndarray, *, exits: np.ndarray, deaths: np.ndarray,
                        entries: np.ndarray, entered: np.ndarray) -> pd.DataFrame:
    """:func:`kaplan_meier` from counts: per distinct exit time (sorted) the customers leaving
    (``exits``) and churning (``deaths``) then, per distinct entry time (sorted) those entering
    (``entered``). The sufficient statistics of the curve: a ``GROUP BY`` returns them
    (:func:`roi.retention.survival_sql.retention_counts`).

    Examples
    --------
    >>> km = kaplan_meier_counts(np.array([2, 3, 5, 6]), exits=np.array([1, 2, 1, 1]),
    ...                          deaths=np.array([1, 1, 1, 0]), entries=np.array([0]),
    ...                          entered=np.array([5]))
    >>> km["survival"].round(3).tolist()
    [0.8, 0.6, 0.3, 0.3]
    """
    times, exits, deaths = (np.asarray(a) for a in (times, exits, deaths))
    left_before = np.concatenate([[0], np.cumsum(exits)[:-1]])   # exits at earlier times
    entered_cum = np.concatenate([[0], np.cumsum(entered)])
    entered_by = entered_cum[np.searchsorted(entries, times, side="left")]   # entries before
    at_risk = (int(np.sum(exits)) - left_before) - (int(np.sum(entered)) - entered_by)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - deaths / at_risk, 1.0)
        terms = np.where(at_risk > deaths, deaths / (at_risk * (at_risk - deaths)), 0.0)
    survival = np.cumprod(factor)
    greenwood = np.cumsum(terms)
    low, high = _loglog_bounds(survival, greenwood)
    return pd.DataFrame({"time": times, "at_risk": at_risk, "events": deaths,
                         "survival": survival, "greenwood": greenwood, "low": low, "high": high})


def _loglog_bounds(survival: np.ndarray, greenwood: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        log_s = np.log(survival)
        spread = Z95 * np.sqrt(greenwood) / log_s
        low = np.exp(-np.exp(np.log(-log_s) - spread))
        high = np.exp(-np.exp(np.log(-log_s) + spread))
    low = np.where(survival >= 1.0, 1.0, np.where(survival <= 0.0, 0.0, low))
    high = np.where(survival >= 1.0, 1.0, np.where(survival <= 0.0, 0.0, high))
    return low, high


def survival_at(curve: pd.DataFrame, times: Sequence[float]) -> pd.DataFrame:
    """Read a Kaplan–Meier table as a right-continuous step function at ``times``.

    Before the first observed time the survival is 1; after the last observed time (no one left
    under observation), or for an empty group, the value is NaN rather than an extrapolation.

    Examples
    --------
    >>> km = kaplan_meier(np.array([2, 3, 3, 5, 6]), np.array([1, 1, 0, 1, 0]))
    >>> survival_at(km, [1, 3, 4, 9])["survival"].round(2).tolist()
    [1.0, 0.6, 0.6, nan]
    """
    at = np.asarray(times, dtype=float)
    idx = np.searchsorted(curve["time"].to_numpy(), at, side="right") - 1
    cols = ["survival", "greenwood", "low", "high"]
    values = np.vstack([[1.0, 0.0, 1.0, 1.0], curve[cols].to_numpy(dtype=float)])
    out = pd.DataFrame(values[idx + 1], columns=cols)
    out.loc[(at > curve["time"].max()) | curve.empty, cols] = np.nan
    out.insert(0, "time", at)
    return out


class RetentionCurves:
    """Kaplan–Meier retention for all customers and landmark curves by membership.

    Parameters
    ----------
    landmarks_months : sequence of float
        Landmarks, in months since first seen, at which membership is read.
    horizons_months : sequence of float
        Retention is reported this many months after each landmark (after first seen for the
        overall curve, ``landmark_month = 0``, group ``all``).
    days_per_month : float
        Conversion from the table's days to months.

    Attributes
    ----------
    curves_ : DataFrame
        ``landmark_month``, ``group``, ``day`` (since the landmark), ``month``, ``at_risk``,
        ``events``, ``survival``, ``low``, ``high``: pointwise 95% confidence band.
    retention_ : DataFrame
        ``landmark_month``, ``group``, ``horizon_month``, ``customers`` (at the landmark),
        ``retention``, ``low``, ``high``, ``interval``.
    difference_ : DataFrame
        Member minus non-member retention per landmark and horizon, with a 95% CI (Greenwood
        standard errors, independent groups).

    Examples
    --------
    See the module docstring.
    """

    def __init__(self, *, landmarks_months: Sequence[float] = (3, 6, 12),
                 horizons_months: Sequence[float] = (6, 12),
                 days_per_month: float = DAYS_PER_MONTH) -> None:
        self.landmarks_months = tuple(landmarks_months)
        self.horizons_months = tuple(horizons_months)
        self.days_per_month = days_per_month

    def fit(self, table: pd.DataFrame, *, id_col: str = "customer_id", start: str = "start",
            stop: str = "stop", event: str = "event", member: str = "member",
            community: str | None = None) -> RetentionCurves:
        """Compute the curves from a start-stop table (one row per customer interval)."""
        missing = [c for c in (id_col, start, stop, event, member, community)
                   if c is not None and c not in table.columns]
        if missing:
            raise ValueError(f"survival table: missing column(s) {missing}")
        ends = _customer_ends(table, id_col=id_col, start=start, stop=stop, event=event)
        groups = [(0, "all", ends)]
        for month in self.landmarks_months:
            groups += _landmark_groups(table, ends, day=month * self.days_per_month,
                                       month=month, id_col=id_col, start=start, stop=stop,
                                       member=member, community=community)
        counts = pd.concat([_counts(frame).assign(landmark_month=month, group=name)
                            for month, name, frame in groups], ignore_index=True)
        return self.fit_counts(counts, order=[(month, name) for month, name, _ in groups])

    def fit_counts(self, counts: pd.DataFrame, *,
                   order: Sequence[tuple[float, str]] | None = None) -> RetentionCurves:
        """The curves from counts alone: ``landmark_month``, ``group``, ``kind`` ("exit",
        "death" or "entry"), ``time`` and ``n`` (customers leaving, churning, entering at that
        time). :meth:`fit` builds them; :func:`roi.retention.survival_sql.retention_counts`
        returns them from a ``GROUP BY`` in the database. ``order``: the groups' order in the
        tables (default: as they first appear)."""
        keys = ["landmark_month", "group"]
        order = order or list(dict.fromkeys(zip(counts["landmark_month"], counts["group"],
                                                strict=True)))
        by_group = dict(iter(counts.groupby(keys, sort=False)))
        curves, retention = [], []
        for month, name in order:
            rows = by_group.get((month, name), counts.head(0))
            km = _km_of_counts(rows)
            customers = int(rows.loc[rows["kind"] == "exit", "n"].sum())
            curves.append(km.assign(landmark_month=month, group=name))
            retention.append(self._retention(km, month=month, name=name, customers=customers))
        self.curves_ = self._tidy_curves(pd.concat(curves, ignore_index=True))
        self.retention_ = pd.concat(retention, ignore_index=True)
        self.difference_ = _differences(self.retention_)
        return self

    def _retention(self, km: pd.DataFrame, *, month: float, name: str,
                   customers: int) -> pd.DataFrame:
        horizons = np.asarray(self.horizons_months, dtype=float)
        at = survival_at(km, horizons * self.days_per_month)
        return pd.DataFrame({"landmark_month": month, "group": name, "horizon_month": horizons,
                             "customers": customers, "retention": at["survival"],
                             "se": at["survival"] * np.sqrt(at["greenwood"]),
                             "low": at["low"], "high": at["high"], "interval": CI95})

    def _tidy_curves(self, curves: pd.DataFrame) -> pd.DataFrame:
        curves = curves.rename(columns={"time": "day"})
        curves["month"] = curves["day"] / self.days_per_month
        return curves[["landmark_month", "group", "day", "month", "at_risk", "events",
                       "survival", "low", "high"]]

    def summary(self) -> pd.DataFrame:
        """Retention at each landmark and horizon, by group, with intervals."""
        return self.retention_


def _counts(frame: pd.DataFrame) -> pd.DataFrame:
    """A group's exits, churns and entries per time (the counts :meth:`fit_counts` reads)."""
    parts = []
    for kind, times in (("exit", frame["time"]), ("death", frame.loc[frame["event"].astype(bool),
                                                                    "time"]),
                        ("entry", frame["entry"])):
        values, n = np.unique(times.to_numpy(dtype=float), return_counts=True)
        parts.append(pd.DataFrame({"kind": kind, "time": values, "n": n}))
    return pd.concat(parts, ignore_index=True)


def _km_of_counts(rows: pd.DataFrame) -> pd.DataFrame:
    def of(kind: str) -> pd.Series:
        part = rows[rows["kind"] == kind]
        return part.groupby("time")["n"].sum().sort_index()

    exits, deaths, entries = of("exit"), of("death"), of("entry")
    return kaplan_meier_counts(exits.index.to_numpy(dtype=float), exits=exits.to_numpy(),
                               deaths=deaths.reindex(exits.index, fill_value=0).to_numpy(),
                               entries=entries.index.to_numpy(dtype=float),
                               entered=entries.to_numpy())


def _customer_ends(table: pd.DataFrame, *, id_col: str, start: str, stop: str,
                   event: str) -> pd.DataFrame:
    """One row per customer: first entry, last stop, and whether that stop is a churn."""
    ordered = table.sort_values([id_col, stop], kind="stable")
    grouped = ordered.groupby(id_col, sort=False)
    ends = pd.DataFrame({"entry": grouped[start].min(), "last": grouped[stop].last(),
                         "churned": grouped[event].last()})
    return ends.rename(columns={"last": "time", "churned": "event"})


def _landmark_groups(table: pd.DataFrame, ends: pd.DataFrame, *, day: float, month: float,
                     id_col: str, start: str, stop: str, member: str,
                     community: str | None) -> list[tuple[float, str, pd.DataFrame]]:
    """Customers under observation and still customers at ``day``, split by membership then."""
    cols = [id_col, member] + ([community] if community else [])
    at = table.loc[(table[start] <= day) & (table[stop] > day), cols].set_index(id_col)
    rows = ends.loc[at.index]
    frame = pd.DataFrame({"entry": 0.0, "time": rows["time"].to_numpy() - day,
                          "event": rows["event"].to_numpy(),
                          "is_member": at[member].to_numpy().astype(bool)})
    out = [(month, "member", frame[frame["is_member"]]),
           (month, "non-member", frame[~frame["is_member"]])]
    if community:
        is_member = frame["is_member"].to_numpy()
        names = at[community].astype("string").fillna("(unknown)").to_numpy()
        for name in sorted(set(names[is_member])):
            out.append((month, f"member: {name}", frame[is_member & (names == name)]))
    return out


def _differences(retention: pd.DataFrame) -> pd.DataFrame:
    keys = ["landmark_month", "horizon_month"]
    members = retention[retention["group"] == "member"].set_index(keys)
    others = retention[retention["group"] == "non-member"].set_index(keys)
    gap = members["retention"] - others["retention"]
    se = np.sqrt(members["se"] ** 2 + others["se"] ** 2)
    return pd.DataFrame({"member_minus_non_member": gap, "low": gap - Z95 * se,
                         "high": gap + Z95 * se, "interval": CI95}).reset_index()
