"""Long panel to the wide arrays the staggered DiD works on (helper of :mod:`roi.revenue_lift.did`).

The long table (one row per unit and period) becomes a ``units x periods`` outcome matrix with
NaN where a unit was not observed, plus one treatment cohort per unit. Periods are positions in
the sorted distinct time values, so any sortable time column works (integers, month indices,
dates) and "anticipation" counts periods, not time units.

Examples
--------
>>> import pandas as pd
>>> long = pd.DataFrame({"id": [1, 1, 2, 2], "t": [1, 2, 1, 2], "g": [2, 2, 0, 0],
...                      "y": [1.0, 3.0, 1.0, 1.5]})
>>> panel = wide_panel(long, unit="id", time="t", group="g", outcome="y", anticipation=0,
...                    drop_last_cohort=False)
>>> panel.outcome.tolist(), panel.cohort.tolist()
([[1.0, 3.0], [1.0, 1.5]], [1, -1])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from roi.revenue_lift.panel_input import never_treated

NEVER = -1
"""Cohort code of never-treated units (and of units first treated after the last period)."""


@dataclass
class WidePanel:
    """Outcome matrix and cohorts, one row per kept unit.

    Attributes
    ----------
    outcome : ndarray, shape (n_units, n_periods)
        Outcome, NaN where the unit was not observed.
    cohort : ndarray of int, shape (n_units,)
        Position of the first treated period, :data:`NEVER` for never treated.
    periods : ndarray
        Sorted distinct time values; position ``p`` is ``periods[p]``.
    cohort_labels : dict
        Cohort position -> the ``group`` value the user gave.
    dropped : dict
        Units left out, by reason (reported in the diagnostics).
    """

    outcome: np.ndarray
    cohort: np.ndarray
    periods: np.ndarray
    cohort_labels: dict[int, object]
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def n_units(self) -> int:
        return int(self.outcome.shape[0])


def wide_panel(data: pd.DataFrame, *, unit: str, time: str, group: str, outcome: str,
               anticipation: int, drop_last_cohort: bool) -> WidePanel:
    """Build the :class:`WidePanel`, dropping units that cannot enter any comparison.

    Dropped and counted: units first treated with no period before ``first period +
    anticipation`` (already treated when the panel starts), and units with fewer than two
    observed outcomes. With ``drop_last_cohort`` (not-yet-treated controls and no never-treated
    unit, as R ``did`` does) periods from the last cohort's start on are removed and that
    cohort becomes the control group.
    """
    missing = [c for c in (unit, time, group, outcome) if c not in data.columns]
    if missing:
        raise KeyError(f"StaggeredDiD: column(s) {missing} not in the data")
    rows = data[[unit, time, group, outcome]]
    if rows[time].isna().any():
        raise ValueError(f"StaggeredDiD: column {time!r} has {int(rows[time].isna().sum())} "
                         "empty values")
    periods = np.sort(rows[time].dropna().unique())
    unit_codes, unit_values = pd.factorize(rows[unit], sort=False)
    if (unit_codes < 0).any():
        raise ValueError(f"StaggeredDiD: column {unit!r} has {int((unit_codes < 0).sum())} "
                         "empty values")
    period_codes = np.searchsorted(periods, rows[time].to_numpy())
    _check_unique_rows(unit_codes, period_codes, len(periods), unit=unit, time=time)
    cohort, labels = _cohorts(rows[group], unit_codes, periods, group=group)
    matrix = np.full((len(unit_values), len(periods)), np.nan)
    matrix[unit_codes, period_codes] = rows[outcome].to_numpy(dtype=float, na_value=np.nan)
    panel = WidePanel(matrix, cohort, periods, labels,
                      {"rows_without_outcome": int(rows[outcome].isna().sum())})
    if drop_last_cohort and not (cohort == NEVER).any() and (cohort != NEVER).any():
        panel = _last_cohort_as_control(panel, anticipation=anticipation)
    return _drop_unusable_units(panel, anticipation=anticipation)


def _check_unique_rows(unit_codes: np.ndarray, period_codes: np.ndarray, n_periods: int, *,
                       unit: str, time: str) -> None:
    cell = unit_codes.astype(np.int64) * n_periods + period_codes
    counts = np.bincount(cell)
    if (counts > 1).any():
        raise ValueError(f"StaggeredDiD: {int((counts > 1).sum())} ({unit}, {time}) pairs "
                         "appear more than once; the panel needs one row per unit and period")


def _cohorts(group_values: pd.Series, unit_codes: np.ndarray,
             periods: np.ndarray, *, group: str) -> tuple[np.ndarray, dict[int, object]]:
    """One cohort position per unit; 0, NaN or a start after the last period = never."""
    first_row = np.unique(unit_codes, return_index=True)[1]
    per_unit = group_values.iloc[first_row].reset_index(drop=True)
    per_row = per_unit.iloc[unit_codes].reset_index(drop=True)
    given = group_values.reset_index(drop=True)
    differs = ~((given == per_row) | (given.isna() & per_row.isna()))
    if differs.any():
        raise ValueError(f"StaggeredDiD: column {group!r} (first treated period) changes "
                         f"within a unit on {int(differs.sum())} rows; it must be constant")
    if len(periods) == 0:   # no rows: nothing to compare (the fit refuses)
        return np.full(len(per_unit), NEVER, dtype=np.int64), {}
    never = never_treated(per_unit, periods=periods)   # the one rule (panel_input.py)
    filled = per_unit.astype(object).where(~never, periods[0]).to_numpy()
    filled = filled.astype(periods.dtype) if periods.dtype.kind in "iufM" else filled
    position = np.searchsorted(periods, filled, side="left")
    cohort = np.where(never, NEVER, position).astype(np.int64)
    labels = {int(p): per_unit.iloc[i] for p, i in
              zip(*np.unique(cohort, return_index=True), strict=True) if p != NEVER}
    return cohort, labels


def _last_cohort_as_control(panel: WidePanel, *, anticipation: int) -> WidePanel:
    """No never-treated unit: keep periods before the last cohort's start; it is the control."""
    last = int(panel.cohort.max())
    keep_periods = max(last - anticipation, 0)
    cohort = np.where(panel.cohort == last, NEVER, panel.cohort)
    labels = {p: v for p, v in panel.cohort_labels.items() if p != last}
    dropped = dict(panel.dropped, periods_from_last_cohort_on=len(panel.periods) - keep_periods)
    return WidePanel(panel.outcome[:, :keep_periods], cohort, panel.periods[:keep_periods],
                     labels, dropped)


def _drop_unusable_units(panel: WidePanel, *, anticipation: int) -> WidePanel:
    treated_at_start = (panel.cohort != NEVER) & (panel.cohort <= anticipation)
    too_few = (~np.isnan(panel.outcome)).sum(axis=1) < 2
    keep = ~treated_at_start & ~too_few
    dropped = dict(panel.dropped, units_treated_from_first_period=int(treated_at_start.sum()),
                   units_with_fewer_than_two_periods=int((too_few & ~treated_at_start).sum()))
    cohort = panel.cohort[keep]
    labels = {p: v for p, v in panel.cohort_labels.items() if (cohort == p).any()}
    return WidePanel(panel.outcome[keep], cohort, panel.periods, labels, dropped)


def member_event_times(data: pd.DataFrame, *, unit: str, time: str, group: str,
                       outcome: str) -> pd.DataFrame:
    """Every treated row from its first treated period on: ``unit``, ``e`` (periods since the start,
    counted on the grid of ``time`` as :func:`wide_panel` does) and the outcome.

    Rows of units that :func:`wide_panel` drops (no period before joining) are kept: these are
    the member-months an estimate per member-month must also speak for. Rows without an outcome
    are left out.

    Examples
    --------
    >>> long = pd.DataFrame({"id": [1, 1, 1, 2, 2], "t": [1, 2, 3, 2, 3], "g": [2, 2, 2, 1, 1],
    ...                      "y": [1.0, 2.0, 3.0, 4.0, None]})
    >>> member_event_times(long, unit="id", time="t", group="g", outcome="y").to_dict("list")
    {'unit': [1, 1, 2], 'e': [0, 1, 1], 'outcome': [2.0, 3.0, 4.0]}
    """
    periods = np.sort(data[time].dropna().unique())
    joined = data[group].reset_index(drop=True)
    never = never_treated(joined, periods=periods)
    filled = joined.astype(object).where(~never, periods[0]).to_numpy()
    filled = filled.astype(periods.dtype) if periods.dtype.kind in "iufM" else filled
    start = np.searchsorted(periods, filled, side="left")
    event = np.searchsorted(periods, data[time].to_numpy()) - start
    keep = ~never & (event >= 0) & data[outcome].notna().to_numpy()
    return pd.DataFrame({"unit": data[unit].to_numpy()[keep], "e": event[keep].astype(np.int64),
                         "outcome": data[outcome].to_numpy(dtype=float, na_value=np.nan)[keep]})
