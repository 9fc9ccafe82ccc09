"""Lift-test (experiment) calibration of the media-mix model.

A lift test says: in weeks ``start``..``end`` (Mondays inside the interval) the channel's spend was
changed by ``spend_change`` in total (spread evenly over those weeks; negative for a hold-out),
and revenue in the same weeks changed by ``revenue_change`` with standard error
``standard_error``. The model adds the likelihood term::

    revenue_change ~ Normal(predicted change, standard_error)
    predicted change = sum_{t in test weeks} beta_c * [sat((stock_t + d_t) / norm_c)
                                                      - sat(stock_t / norm_c)]

with ``d = adstock(spend change)`` (adstock is linear) on the model's own response curve, so an
experiment moves ROAS, carry-over and saturation together. Revenue carried over after ``end``
is not counted: it is not what a test over those weeks measures.

Examples
--------
>>> tests = as_lift_tests([{"channel": "social", "start": "2024-06-03", "end": "2024-06-24",
...                         "spend_change": 20000, "revenue_change": 15000,
...                         "standard_error": 2000}])
>>> tests[0].channel, tests[0].to_record()["end"]
('social', '2024-06-24')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

FIELDS = ("channel", "start", "end", "spend_change", "revenue_change", "standard_error")


@dataclass(frozen=True)
class LiftTest:
    """One experiment on one channel (see the module docstring).

    Examples
    --------
    >>> LiftTest(channel="search", start="2024-03-04", end="2024-03-25",
    ...          spend_change=-10000.0, revenue_change=-21000.0, standard_error=4000.0).weeks(
    ...     pd.date_range("2024-03-04", periods=6, freq="W-MON")).tolist()
    [1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    """

    channel: str
    start: str
    end: str
    spend_change: float
    revenue_change: float
    standard_error: float

    def __post_init__(self) -> None:
        if not self.standard_error > 0:
            raise ValueError(f"lift test on {self.channel!r}: standard_error must be > 0")
        if pd.Timestamp(self.end) < pd.Timestamp(self.start):
            raise ValueError(f"lift test on {self.channel!r}: end before start")
        if self.spend_change == 0:
            raise ValueError(f"lift test on {self.channel!r}: spend_change is 0")

    def weeks(self, weeks: pd.DatetimeIndex) -> np.ndarray:
        """1.0 for the model weeks inside the test, else 0.0."""
        inside = (weeks >= pd.Timestamp(self.start)) & (weeks <= pd.Timestamp(self.end))
        return np.asarray(inside, dtype=float)

    def to_record(self) -> dict[str, Any]:
        """The ``paid_media.lift_tests`` entry of ``results.json``."""
        out = asdict(self)
        for key in ("start", "end"):
            out[key] = pd.Timestamp(out[key]).strftime("%Y-%m-%d")
        for key in FIELDS[3:]:
            out[key] = float(out[key])
        return out


def as_lift_tests(tests: pd.DataFrame | Iterable[LiftTest | Mapping[str, Any]] | None
                  ) -> list[LiftTest]:
    """Lift tests from a DataFrame (columns ``FIELDS``), dicts or :class:`LiftTest` objects."""
    if tests is None:
        return []
    if isinstance(tests, pd.DataFrame):
        missing = [f for f in FIELDS if f not in tests.columns]
        if missing:
            raise ValueError(f"lift tests: missing column(s) {missing}; need {list(FIELDS)}")
        tests = tests[list(FIELDS)].to_dict("records")
    out = []
    for test in tests:
        if isinstance(test, LiftTest):
            out.append(test)
        else:
            out.append(LiftTest(**{f: test[f] for f in FIELDS}))
    return out


def lift_arrays(tests: list[LiftTest], *, weeks: pd.DatetimeIndex, channels: list[str],
                scale: float) -> dict[str, np.ndarray]:
    """Model inputs: per-test weekly spend change (week, test), window mask, channel index,
    observed change and standard error (both divided by ``scale``, the mean weekly revenue).

    Examples
    --------
    >>> t = LiftTest(channel="b", start="2024-01-08", end="2024-01-15", spend_change=10.0,
    ...              revenue_change=4.0, standard_error=1.0)
    >>> arrays = lift_arrays([t], weeks=pd.date_range("2024-01-01", periods=3, freq="W-MON"),
    ...                      channels=["a", "b"], scale=2.0)
    >>> arrays["lift_spend"][:, 0].tolist(), arrays["lift_channel"].tolist()
    ([0.0, 5.0, 5.0], [1])
    """
    n_weeks = len(weeks)
    spend = np.zeros((n_weeks, len(tests)))
    mask = np.zeros((n_weeks, len(tests)))
    for k, test in enumerate(tests):
        if test.channel not in channels:
            raise ValueError(f"lift test on {test.channel!r}: no such channel with spend "
                             f"(channels: {channels})")
        inside = test.weeks(weeks)
        if not inside.any():
            raise ValueError(f"lift test on {test.channel!r} ({test.start}..{test.end}) has no "
                             "week inside the model window")
        mask[:, k] = inside
        spend[:, k] = inside * test.spend_change / inside.sum()
    return {"lift_spend": spend, "lift_mask": mask,
            "lift_channel": np.array([channels.index(t.channel) for t in tests], dtype="int64"),
            "lift_observed": np.array([t.revenue_change for t in tests], float) / scale,
            "lift_se": np.array([t.standard_error for t in tests], float) / scale}
