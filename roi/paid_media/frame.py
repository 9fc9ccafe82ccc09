"""Weekly rows in, model arrays out: the media-mix model's input checks and scaling.

:func:`prepare_frame` turns a plain DataFrame (one row per week: a date column, the target,
one spend column per channel, optional controls, active customers and community activity) into
the :class:`~roi.paid_media.model.MediaData` the model reads. :func:`media_frame` builds that
DataFrame from the canonical ``WeeklySeries``, so the canonical run and a user's own data take
the same path.

Rules (each broken rule is a ``ValueError`` naming the column, the rule, the row count and
examples): every named column exists and is numeric; no NaN; dates parse, are unique and one
week apart (rows are sorted by date first); spend is never negative; the target's mean is
positive; active customers are >= 0, not all zero; at least ``MIN_WEEKS`` weeks. A channel
whose spend is zero in every week is left out with a named warning (``dropped_channels``); a
channel whose spend never varies is kept (its ROAS then comes from the prior and lift tests;
``constant_channels``).

Units: spend and the target stay in the data's own units (the model divides them by their
means internally), so ROAS is "target per unit of spend" in those units.

Examples
--------
>>> import numpy as np, pandas as pd
>>> df = pd.DataFrame({"week": pd.date_range("2024-01-01", periods=30, freq="W-MON"),
...                    "sales": 100.0 + np.arange(30), "tv": np.tile([0.0, 5.0], 15)})
>>> data = prepare_frame(df, date="week", target="sales", channels=["tv"])
>>> data.channels, data.spend.shape
(['tv'], (30, 1))
>>> prepare_frame(df.assign(tv=-1.0), date="week", target="sales", channels=["tv"])
Traceback (most recent call last):
...
ValueError: channel spend column 'tv': spend must be >= 0; 30 of 30 rows break it, e.g. 2024-01-01 (-1.0), 2024-01-08 (-1.0), 2024-01-15 (-1.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from roi.paid_media.model import MediaData, fourier_terms

MIN_WEEKS = 8   # fewer weeks cannot separate a baseline, seasonality and carry-over

Columns = Sequence[str] | Mapping[str, str] | None


def named_columns(columns: Columns) -> dict[str, str]:
    """``{name: column}`` from a list of columns (name = column) or a mapping.

    Examples
    --------
    >>> named_columns(["tv", "radio"])
    {'tv': 'tv', 'radio': 'radio'}
    >>> named_columns({"tv": "spend:tv"})
    {'tv': 'spend:tv'}
    """
    if columns is None:
        return {}
    if isinstance(columns, str):
        return {columns: columns}
    if isinstance(columns, Mapping):
        return {str(k): str(v) for k, v in columns.items()}
    return {str(c): str(c) for c in columns}


def media_frame(weekly, *, controls: Sequence[str] = ()) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The weekly DataFrame and ``fit`` keywords of a canonical ``WeeklySeries``.

    Columns are ``week``, the totals (``revenue``, ``active_customers``, controls ...),
    ``spend:<channel>``, ``active_members:<community>`` and ``cost:<community>``
    (:meth:`WeeklySeries.to_frame`).

    Examples
    --------
    >>> from roi.simulate_media import simulate_media_world
    >>> frame, columns = media_frame(simulate_media_world(seed=1, n_customers=20_000).weekly)
    >>> columns["channels"]["search"], columns["customers"], len(frame)
    ('spend:search', 'active_customers', 104)
    """
    frame = weekly.to_frame().rename_axis("week").reset_index()
    communities = [str(c) for c in weekly.active_members.columns]
    costs = {g: f"cost:{g}" for g in communities if g in weekly.cost.columns}
    return frame, {"date": "week", "target": "revenue",
                   "channels": {str(c): f"spend:{c}" for c in weekly.spend.columns},
                   "controls": list(controls), "customers": "active_customers",
                   "communities": {g: f"active_members:{g}" for g in communities},
                   "community_costs": costs}


def prepare_frame(data: pd.DataFrame, *, date: str, target: str, channels: Columns,
                  controls: Sequence[str] = (), customers: str | None = None,
                  communities: Columns = None, community_costs: Columns = None,
                  n_fourier: int = 2, trend: bool = False) -> MediaData:
    """Check the weekly rows and build :class:`MediaData` (see the module docstring).

    ``channels`` and ``communities`` are lists of columns or ``{name: column}`` mappings;
    ``community_costs`` maps a community to its weekly cost column. Without ``customers`` the
    baseline is a level (plus trend, seasonality and controls). ``trend`` adds a linear time
    control named ``trend``.
    """
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"MediaMixModel.fit expects a DataFrame of weekly rows (or a "
                        f"WeeklySeries), not {type(data).__name__}")
    spend_cols, member_cols = named_columns(channels), named_columns(communities)
    cost_cols, controls = named_columns(community_costs), [str(c) for c in controls]
    if not spend_cols:
        raise ValueError("channels: name at least one spend column")
    frame = _with_date_column(data, date)
    _require_columns(frame, date=date, target=target, channels=spend_cols, controls=controls,
                     customers=customers, communities=member_cols, costs=cost_cols)
    frame = _weekly_dates(frame, date)
    numeric = {"target": [target], "channel spend": list(spend_cols.values()),
               "control": controls, "customers": [customers] if customers else [],
               "community": list(member_cols.values()), "community cost": list(cost_cols.values())}
    for role, cols in numeric.items():
        for col in cols:
            _check_numeric(frame, col, role=role, date=date)
    weeks = pd.DatetimeIndex(frame[date], name="week")
    for col in spend_cols.values():
        _check_rule(frame, col, frame[col] >= 0, role="channel spend", rule="spend must be >= 0",
                    date=date)
    if not frame[target].mean() > 0:
        raise ValueError(f"target column {target!r}: its mean must be positive (the model "
                         f"measures effects as shares of it); mean is {frame[target].mean():g}")
    if customers:
        _check_rule(frame, customers, frame[customers] >= 0, role="customers",
                    rule="active customers must be >= 0", date=date)
        if not frame[customers].sum() > 0:
            raise ValueError(f"customers column {customers!r}: zero in every week; leave "
                             "customers out instead")
    return _media_data(frame, weeks, target=target, spend_cols=spend_cols, controls=controls,
                       customers=customers, member_cols=member_cols, cost_cols=cost_cols,
                       n_fourier=n_fourier, trend=trend)


def _media_data(frame: pd.DataFrame, weeks: pd.DatetimeIndex, *, target: str,
                spend_cols: dict[str, str], controls: list[str], customers: str | None,
                member_cols: dict[str, str], cost_cols: dict[str, str], n_fourier: int,
                trend: bool) -> MediaData:
    spend = pd.DataFrame({name: frame[col].to_numpy(float) for name, col in spend_cols.items()})
    kept = [c for c in spend.columns if spend[c].sum() > 0]
    n = len(frame)
    control_values = [frame[c].to_numpy(float) for c in controls]
    control_names = list(controls)
    if trend:
        if "trend" in control_names:
            raise ValueError("controls: a column named 'trend' clashes with trend=True; rename it")
        control_values.append(np.arange(n, dtype=float))   # weeks since the first; standardised later
        control_names.append("trend")
    members = np.column_stack([frame[c].to_numpy(float) for c in member_cols.values()]
                              ) if member_cols else np.zeros((n, 0))
    cost = np.array([float(frame[cost_cols[g]].sum()) if g in cost_cols else 0.0
                     for g in member_cols])
    return MediaData(
        weeks=weeks, revenue=frame[target].to_numpy(float), spend=spend[kept].to_numpy(),
        customers=(frame[customers].to_numpy(float) if customers else np.ones(n)),
        members=members, fourier=fourier_terms(weeks, n_pairs=n_fourier),
        controls=(np.column_stack(control_values) if control_values else np.zeros((n, 0))),
        channels=[str(c) for c in kept], communities=list(member_cols),
        control_names=control_names, community_cost=cost,
        dropped_channels=[str(c) for c in spend.columns if c not in kept],
        constant_channels=[str(c) for c in kept if np.ptp(spend[c].to_numpy()) == 0])


def _with_date_column(data: pd.DataFrame, date: str) -> pd.DataFrame:
    """The rows with ``date`` as a column (it may be the index's name)."""
    if date not in data.columns and data.index.name == date:
        return data.reset_index()
    return data


def _require_columns(frame: pd.DataFrame, **roles: Any) -> None:
    missing = []
    for role, value in roles.items():
        cols = (list(value.values()) if isinstance(value, Mapping)
                else [value] if isinstance(value, str) else list(value or []))
        missing += [f"{role}={c!r}" for c in cols if c not in frame.columns]
    if missing:
        have = ", ".join(map(repr, list(frame.columns)[:12]))
        raise ValueError(f"column(s) not in the data: {', '.join(missing)}; the data has "
                         f"{have}{' ...' if frame.shape[1] > 12 else ''}")


def _weekly_dates(frame: pd.DataFrame, date: str) -> pd.DataFrame:
    """Rows sorted by date; refuses unparseable, duplicate or non-weekly dates."""
    parsed = pd.to_datetime(frame[date], errors="coerce")
    bad = parsed.isna()
    if bad.any():
        examples = frame.loc[bad, date].astype(str).head(3).tolist()
        raise ValueError(f"date column {date!r}: every row needs a date; {int(bad.sum())} of "
                         f"{len(frame)} rows are missing or unparseable, e.g. {examples}")
    frame = frame.assign(**{date: parsed}).sort_values(date, kind="stable")
    duplicated = frame[date].duplicated(keep=False)
    if duplicated.any():
        examples = sorted({d.strftime("%Y-%m-%d") for d in frame.loc[duplicated, date]})[:3]
        raise ValueError(f"date column {date!r}: one row per week; {int(duplicated.sum())} rows "
                         f"share a date, e.g. {examples} (aggregate them first)")
    if len(frame) < MIN_WEEKS:
        raise ValueError(f"date column {date!r}: at least {MIN_WEEKS} weeks are needed, the data "
                         f"has {len(frame)}")
    steps = frame[date].diff().iloc[1:]
    off = steps != pd.Timedelta(days=7)
    if off.any():
        after = frame[date].shift().iloc[1:][off]
        examples = [f"{a:%Y-%m-%d} -> {b:%Y-%m-%d}" for a, b in
                    zip(after.head(3), frame[date].iloc[1:][off].head(3), strict=True)]
        raise ValueError(f"date column {date!r}: rows must be consecutive weeks, 7 days apart; "
                         f"{int(off.sum())} of {len(steps)} steps are not, e.g. {examples} "
                         "(fill missing weeks with zero spend, aggregate daily rows to weeks)")
    return frame.reset_index(drop=True)


def _check_numeric(frame: pd.DataFrame, col: str, *, role: str, date: str) -> None:
    if not pd.api.types.is_numeric_dtype(frame[col]) or pd.api.types.is_bool_dtype(frame[col]):
        if pd.api.types.is_bool_dtype(frame[col]):
            frame[col] = frame[col].astype(float)   # a 0/1 flag (promotion week) is fine
            return
        raise ValueError(f"{role} column {col!r}: must be numeric, is {frame[col].dtype} "
                         f"(e.g. {frame[col].astype(str).head(3).tolist()})")
    finite = np.isfinite(frame[col].to_numpy(float))
    _check_rule(frame, col, pd.Series(finite, index=frame.index), role=role,
                rule="no missing (NaN) or infinite values", date=date)


def _check_rule(frame: pd.DataFrame, col: str, ok: pd.Series, *, role: str, rule: str,
                date: str) -> None:
    if ok.all():
        return
    rows = frame.loc[~ok, [date, col]].head(3)
    examples = ", ".join(f"{d:%Y-%m-%d} ({v})" for d, v in rows.itertuples(index=False))
    raise ValueError(f"{role} column {col!r}: {rule}; {int((~ok).sum())} of {len(frame)} rows "
                     f"break it, e.g. {examples}")
