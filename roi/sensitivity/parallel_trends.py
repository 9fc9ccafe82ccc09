"""Parallel-trends sensitivity after Rambachan & Roth (2023): relative magnitudes.

An event study estimates ``beta = tau + delta``: effects ``tau`` (zero before joining) plus the
difference in trends ``delta`` between members and controls, normalised to 0 in the reference
period (the month before joining). Parallel trends assumes ``delta_post = 0``. Rambachan & Roth
relax it to ``Delta^RM(Mbar)``: after joining, ``delta`` may move between consecutive months by
at most ``Mbar`` times the largest such move seen before joining (the pre-join moves are
estimated by the placebo coefficients). The target is ``theta = l' tau_post``; here ``l``
weights each month since joining by its member-months, so ``theta`` is the headline lift (the
member-month weighted average of the event-time effects equals the DiD's ``simple`` average).

**Identified set.** With ``Mpre = max_s |delta_{s+1} - delta_s|`` over the pre-join months, the
worst case moves ``delta`` by ``Mbar Mpre`` every month from the reference on, so
``theta in [l'beta_post - Mbar B Mpre, l'beta_post + Mbar B Mpre]`` with
``B = sum_u |sum_{t >= u} l_t|`` (``B = 1`` for the first month, ``1 + mean months since
joining`` for member-month weights: a bias that may grow every month adds up).

**Confidence interval** (``alpha = 0.05``). HonestDiD computes the union, over the month ``s``
and sign of the largest pre-join move, of ARP conditional-least-favourable (C-LF) test
inversions on a grid. We take the same union with a simpler piece: under "the largest move is
at ``s`` with sign ``+-``" the identified set's ends are the *linear* functions
``l'beta_post -+ Mbar B (D beta)_s`` of ``beta``, and the piece's interval is each end's own
normal 95% limit (``z_{0.975}`` times the standard error of that linear function, which counts
the sampling error of the pre-join move). The union over all ``(s, sign)`` contains the true
piece's interval, so coverage is at least 95% under ``Delta^RM(Mbar)``: conservative. On
HonestDiD's published Medicaid example (``tests/test_sensitivity.py``) it contains every
published C-LF interval (``Mbar`` 0 to 2, first-year and average effects) and is 2-13% wider.

**Breakdown** ``Mbar``: the smallest ``Mbar`` at which the interval includes 0 (the interval's
lower end never rises with ``Mbar``, so bisection finds it); 0 when it already does under
parallel trends.

**Which months** (:func:`from_event_study`). HonestDiD leaves both choices to the user: the
pre-periods are the ``betahat`` entries passed (its maintainers suggest trimming far leads,
e.g. ``min_e = -6``), the target is ``l_vec`` (by default the first post period). Defaults
here: the reference is the :data:`MAX_LEADS` placebo months nearest to joining with
:data:`MIN_TREATED`+ treated customers, and the target is every post-join month
(``horizon=None``), i.e. the headline the bounds are reported beside; ``horizon=h`` bounds the
average over the first ``h`` months since joining instead (fewer months for a divergence to add
up over, but a different number from the headline). On the sample (3,000 customers, 24
months) the breakdown is 0.017 with the defaults; 12 leads 0.010; the first 6 or 12 months
0.036 and 0.012; the first 1 or 3 months 0 (the ramping effect is not yet significant): no
window rescues it, because the lift's own interval nearly touches zero (lower end 8.6 of 43.9)
and each placebo month has a standard error of 22-26. Whether the largest pre-join move is an
observed divergence or noise is therefore reported with it: the joint Wald test of the
placebo months used (``pre_divergence_p_value``; 0.21 on the sample), and the summary says so
when the breakdown is below 1 and that test does not reject.

Examples
--------
>>> beta = np.array([0.01, -0.01, 0.0, 0.5, 0.7])   # placebo differences, then 3 effects
>>> study = EventStudy(beta=beta[:2].tolist() + beta[2:].tolist(), sigma=np.eye(5) * 1e-4,
...                    n_pre=2, pre_differences=True, weights=[1, 1, 1])
>>> result = relative_magnitudes(study, m_grid=(0.0, 1.0))
>>> [round(b.high - b.low, 3) for b in result.bounds]
[0.023, 0.122]
>>> round(result.breakdown_m, 2)
6.75
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

M_GRID = (0.0, 0.5, 1.0, 1.5, 2.0)
"""``Mbar`` values reported (HonestDiD's usual grid)."""
M_SEARCH_MAX = 1000.0
"""Largest ``Mbar`` the breakdown search tries; beyond it the breakdown is reported as None."""
MAX_LEADS = 6
"""Placebo months nearest to joining that form the relative-magnitudes reference."""
MIN_TREATED = 30
"""Treated unit-periods a placebo month needs to enter the reference."""


@dataclass
class EventStudy:
    """Event-time estimates and their covariance, ready for the sensitivity.

    Parameters
    ----------
    beta : array of float
        ``n_pre`` pre-join coefficients (earliest first), then the post-join ones.
    sigma : 2-d array
        Their covariance (same order).
    n_pre : int
        How many of ``beta`` are pre-join.
    pre_differences : bool
        True when the pre-join coefficients already are month-on-month moves (a DiD with a
        *varying* base period: each placebo compares a month with the one before); False when
        they are levels against the reference month (a *universal* base, or TWFE; the last
        pre-join coefficient is then the month before the reference).
    weights : array of float
        ``l``: weights of the post-join coefficients (normalised to sum 1).
    positions : array of int, optional
        Months since the reference period of each post-join coefficient minus 1 (default
        ``0, 1, ...``); a gap (anticipation months left out) adds moves without effects.
    """

    beta: np.ndarray
    sigma: np.ndarray
    n_pre: int
    pre_differences: bool
    weights: np.ndarray
    positions: np.ndarray | None = None
    labels: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.beta = np.asarray(self.beta, dtype=float)
        self.sigma = np.asarray(self.sigma, dtype=float)
        self.weights = np.asarray(self.weights, dtype=float)
        n_post = len(self.beta) - self.n_pre
        if self.n_pre < 1 or n_post < 1:
            raise ValueError(f"need at least one pre-join and one post-join coefficient, got "
                             f"{self.n_pre} and {n_post}")
        if self.sigma.shape != (len(self.beta),) * 2:
            raise ValueError(f"sigma must be {len(self.beta)} x {len(self.beta)}, got "
                             f"{self.sigma.shape}")
        if len(self.weights) != n_post or self.weights.sum() <= 0:
            raise ValueError(f"weights need {n_post} values with a positive sum")
        if not (np.isfinite(self.beta).all() and np.isfinite(self.sigma).all()):
            raise ValueError("beta and sigma must be finite")
        self.weights = self.weights / self.weights.sum()
        self.positions = (np.arange(n_post) if self.positions is None
                          else np.asarray(self.positions, dtype=int))

    @property
    def estimate(self) -> float:
        """``l' beta_post``: the estimate under parallel trends."""
        return float(self.weights @ self.beta[self.n_pre:])

    def pre_moves(self) -> np.ndarray:
        """``D``: rows give each pre-join month-on-month move of ``delta`` as a linear
        function of ``beta`` (the last ends at the reference month, where ``delta = 0``)."""
        moves = np.zeros((self.n_pre, len(self.beta)))
        if self.pre_differences:
            moves[:, :self.n_pre] = np.eye(self.n_pre)
            return moves
        for s in range(self.n_pre):
            moves[s, s] = -1.0
            if s + 1 < self.n_pre:
                moves[s, s + 1] = 1.0
        return moves

    def accumulation(self) -> float:
        """``B``: how many worst-case monthly moves ``l' delta_post`` adds up
        (``sum_u |sum_{t >= u} l_t|`` over months from the reference on)."""
        per_month = np.zeros(int(self.positions.max()) + 1)
        np.add.at(per_month, self.positions, self.weights)
        return float(np.abs(np.cumsum(per_month[::-1])[::-1]).sum())


@dataclass(frozen=True)
class RMBound:
    """Interval and identified set of ``theta`` at one ``Mbar``."""

    m: float
    low: float
    high: float
    identified_low: float
    identified_high: float


@dataclass(frozen=True)
class RelativeMagnitudes:
    """Result of :func:`relative_magnitudes`."""

    estimate: float
    max_pre_move: float
    accumulation: float
    bounds: list[RMBound]
    breakdown_m: float | None
    alpha: float
    n_pre: int
    n_post: int
    pre_p_value: float | None = None
    horizon: int | None = None

    def summary(self, *, what: str = "the lift") -> str:
        """The plain sentence of the issue: when would the conclusion break down? With a
        breakdown below 1 and placebo months that show no significant divergence, it says
        that the small value reflects their noise, not an observed divergence."""
        sign = "positive" if self.estimate > 0 else "negative"
        if self.horizon is not None:
            what = f"{what} over the first {self.horizon} months after joining"
        if self.breakdown_m is None:
            return (f"{what.capitalize()} stays {sign} however much post-join trends diverge "
                    f"(up to {M_SEARCH_MAX:g}x the largest pre-join divergence).")
        if self.breakdown_m == 0:
            return (f"{what.capitalize()} is not distinguishable from zero even if members "
                    "and non-members kept parallel trends after joining.")
        sentence = (f"{what.capitalize()} stays {sign} unless post-join trends diverge more "
                    f"than {self.breakdown_m:.2g}x the largest pre-join divergence")
        if self.breakdown_m < 1 and self.pre_p_value is not None \
                and self.pre_p_value >= self.alpha:
            return sentence + (
                f"; the {self.n_pre} months before joining show no significant divergence "
                f"(joint test p = {self.pre_p_value:.2f}), so this reflects how noisy they "
                "are, not a divergence seen in the data.")
        return sentence + "."

    def to_contract(self) -> dict:
        """``breakdown_m``, ``bounds`` [{m, low, high}] and ``summary`` for results.json."""
        return {"breakdown_m": self.breakdown_m,
                "bounds": [{"m": b.m, "low": b.low, "high": b.high} for b in self.bounds],
                "max_pre_divergence": self.max_pre_move, "leads": self.n_pre,
                "pre_divergence_p_value": self.pre_p_value, "horizon": self.horizon,
                "summary": self.summary()}


def scale_contract(block: dict, factor: float) -> dict:
    """A :meth:`RelativeMagnitudes.to_contract` block in units ``factor`` times larger: the
    bounds and the largest pre-join move scale, ``Mbar``, the breakdown, the test and the
    sentence do not. The DiD's event study covers members with a month before joining, its
    headline all members (:mod:`roi.revenue_lift.member_coverage` scales it by ``factor``), so
    its bounds are scaled alike.

    Examples
    --------
    >>> scale_contract({"breakdown_m": 1.4, "max_pre_divergence": 2.0,
    ...                 "bounds": [{"m": 0.0, "low": 1.0, "high": 3.0}]}, 1.5)["bounds"]
    [{'m': 0.0, 'low': 1.5, 'high': 4.5}]
    """
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"scale factor must be positive and finite, got {factor!r}")
    out = dict(block)
    out["bounds"] = [{**b, "low": factor * b["low"], "high": factor * b["high"]}
                     for b in block.get("bounds", [])]
    if out.get("max_pre_divergence") is not None:
        out["max_pre_divergence"] = factor * out["max_pre_divergence"]
    out["scale_factor"] = factor
    return out


def rm_interval(study: EventStudy, m_bar: float, *, alpha: float = 0.05) -> tuple[float, float]:
    """Conservative ``1 - alpha`` interval of ``theta`` under ``Delta^RM(m_bar)`` (module doc).

    Examples
    --------
    >>> s = EventStudy(beta=[0.0, 1.0], sigma=np.eye(2) * 0.01, n_pre=1,
    ...                pre_differences=True, weights=[1.0])
    >>> [round(v, 3) for v in rm_interval(s, 0.0)]
    [0.804, 1.196]
    """
    if m_bar < 0:
        raise ValueError(f"Mbar must be >= 0, got {m_bar!r}")
    z = float(stats.norm.ppf(1 - alpha / 2))
    target = np.zeros(len(study.beta))
    target[study.n_pre:] = study.weights
    moves = study.pre_moves()
    # One row per (s, sign): the identified set's lower end under that piece; the upper ends
    # are the same rows with the opposite sign, so both signs cover both ends.
    ends = target[None, :] + m_bar * study.accumulation() * np.vstack([moves, -moves])
    values = ends @ study.beta
    errors = z * np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", ends, study.sigma, ends), 0.0))
    return float(np.min(values - errors)), float(np.max(values + errors))


def rm_identified_set(study: EventStudy, m_bar: float) -> tuple[float, float]:
    """The identified set at the point estimates (no sampling error)."""
    width = m_bar * study.accumulation() * float(np.max(np.abs(study.pre_moves() @ study.beta)))
    return study.estimate - width, study.estimate + width


def breakdown_m(study: EventStudy, *, alpha: float = 0.05, tol: float = 1e-6) -> float | None:
    """Smallest ``Mbar`` whose interval includes 0; 0.0 if parallel trends' does, None if
    none up to :data:`M_SEARCH_MAX` does."""
    def includes_zero(m: float) -> bool:
        low, high = rm_interval(study, m, alpha=alpha)
        return low <= 0.0 <= high

    if includes_zero(0.0):
        return 0.0
    high = 1.0
    while not includes_zero(high):
        if high >= M_SEARCH_MAX:
            return None
        high = min(2.0 * high, M_SEARCH_MAX)
    low = 0.0
    while high - low > tol * max(high, 1.0):
        middle = 0.5 * (low + high)
        low, high = (low, middle) if includes_zero(middle) else (middle, high)
    return high


def pre_divergence_test(study: EventStudy) -> float | None:
    """p-value of the joint Wald test that every pre-join move is zero (chi-squared with one
    degree of freedom per move); None when their covariance is singular."""
    moves = study.pre_moves()
    values, covariance = moves @ study.beta, moves @ study.sigma @ moves.T
    try:
        statistic = float(values @ np.linalg.solve(covariance, values))
    except np.linalg.LinAlgError:
        return None
    return float(stats.chi2.sf(statistic, len(values))) if statistic >= 0 else None


def relative_magnitudes(study: EventStudy, *, m_grid: tuple[float, ...] = M_GRID,
                        alpha: float = 0.05, horizon: int | None = None) -> RelativeMagnitudes:
    """Intervals and identified sets over ``m_grid``, the breakdown ``Mbar`` and the joint
    test of the pre-join moves (``horizon`` only labels a study cut by
    :func:`from_event_study`)."""
    bounds = [RMBound(float(m), *rm_interval(study, m, alpha=alpha),
                      *rm_identified_set(study, m)) for m in m_grid]
    return RelativeMagnitudes(
        estimate=study.estimate,
        max_pre_move=float(np.max(np.abs(study.pre_moves() @ study.beta))),
        accumulation=study.accumulation(), bounds=bounds,
        breakdown_m=breakdown_m(study, alpha=alpha), alpha=alpha, n_pre=study.n_pre,
        n_post=len(study.beta) - study.n_pre, pre_p_value=pre_divergence_test(study),
        horizon=horizon)


def from_event_study(dynamic: pd.DataFrame, vcov: pd.DataFrame, *,
                     base_period: str = "varying", anticipation: int = 0,
                     min_treated: int = MIN_TREATED, max_leads: int = MAX_LEADS,
                     horizon: int | None = None) -> EventStudy:
    """An :class:`EventStudy` from a staggered DiD's event-time table and covariance
    (:class:`roi.revenue_lift.did.StaggeredDiD` ``dynamic_`` and ``dynamic_vcov_``).

    Post-join months are ``e >= 0`` (``0 <= e < horizon`` with a ``horizon``) weighted by
    ``n_treated`` (member-months), so without a horizon the target is the DiD's headline
    (module doc, "Which months"). Pre-join months are the placebo leads (``e < -anticipation``) with
    at least ``min_treated`` treated unit-periods, the ``max_leads`` nearest to joining: the
    earliest leads rest on a handful of customers whose analytic SEs are far too small (see
    :func:`roi.revenue_lift._did_aggregate.event_pretrend_wald`), and their noise would pass for a
    trend. With a universal base only a contiguous run of leads is usable.
    """
    if base_period not in ("varying", "universal"):
        raise ValueError(f"base_period must be 'varying' or 'universal', got {base_period!r}")
    if horizon is not None and horizon < 1:
        raise ValueError(f"horizon must be a positive number of months, got {horizon!r}")
    table = dynamic[np.isfinite(dynamic["att"]) & (dynamic["n_treated"] > 0)]
    post = table[(table["e"] >= 0) & (table["e"] < (horizon or np.inf))].sort_values("e")
    reference = -1 - anticipation
    leads = table[(table["e"] <= reference - (base_period == "universal"))]
    leads = leads.sort_values("e", ascending=False)
    usable = leads["n_treated"].to_numpy() >= min_treated
    if base_period == "universal":  # levels need a contiguous run from the reference down
        contiguous = leads["e"].to_numpy() == reference - 1 - np.arange(len(leads))
        usable = np.logical_and.accumulate(usable & contiguous)
    leads = leads[usable].head(max_leads).sort_values("e")
    if leads.empty or post.empty:
        raise ValueError(f"event study: need a lead with {min_treated}+ treated unit-periods "
                         f"and a post-join month (leads usable: {len(leads)}, post: {len(post)})")
    events = [*leads["e"].astype(int), *post["e"].astype(int)]
    return EventStudy(beta=np.r_[leads["att"], post["att"]],
                      sigma=vcov.loc[events, events].to_numpy(), n_pre=len(leads),
                      pre_differences=base_period == "varying",
                      weights=post["n_treated"].to_numpy(dtype=float),
                      positions=post["e"].to_numpy(dtype=int) + anticipation, labels=events)


def event_study_sensitivity(dynamic: pd.DataFrame, vcov: pd.DataFrame, *,
                            base_period: str = "varying", anticipation: int = 0,
                            alpha: float = 0.05, max_leads: int = MAX_LEADS,
                            horizon: int | None = None) -> RelativeMagnitudes | None:
    """:func:`relative_magnitudes` of a DiD event study; None when it has no usable lead."""
    try:
        study = from_event_study(dynamic, vcov, base_period=base_period,
                                 anticipation=anticipation, max_leads=max_leads,
                                 horizon=horizon)
    except ValueError:
        return None
    result = relative_magnitudes(study, alpha=alpha, horizon=horizon)
    return result if math.isfinite(result.estimate) else None
