"""Engagement depth, programmes and referrals in the simulated world (issue 20), with truth.

Off by default: :class:`roi.simulate.WorldParams` ``engagement=None`` draws nothing here, so the
sample world and every default world keep their exact tables. ``engagement=EngagementKnobs(...)``
adds, on top of the usual world:

Depth classes
    Each customer gets a hidden depth class (``tier_shares``; independent of the engagement
    trait ``u`` and of churn). While a member, the class multiplies the activity rate
    (``tier_activity``) and the revenue effect ``tau_c`` (``tier_tau``). The tiers a user sees
    are *observed*: the activity ``count`` summed over the customer's rows dated in
    ``[membership start, membership start + window_days)``, cut at ``thresholds`` (the rule of
    :mod:`roi.engagement.tiers`); a class-0 member can look like a participant and the reverse.
    The truth is computed per observed tier, so misclassification never biases it.
Programmes
    ``program_share`` of members enter programme ``program`` on the first day of a month at
    least ``program_min_months`` after the month membership started (uniform over the months
    left, while still a customer). From that month on expected revenue is multiplied by
    ``1 + program_tau`` (on top of membership). The ``programs`` table lists the entries;
    ``community_costs`` gains monthly rows of category ``program`` (the first community of the
    member), scaled so that programme lift / cost = ``program_lift_per_dollar``.
Referrals
    ``referral_rate`` > 0: every customer-month, a customer refers
    ``Poisson(referral_rate * exp(referral_engagement_log * u) * exposure * ratio)`` new
    customers, ``ratio = referral_member_ratio`` in months at or after the membership start
    month (else 1). Each referral is given to a customer first seen in that month who has no
    referrer yet (dropped and counted when none is left); ``customers.referred_by`` holds the
    referrer's ``customer_id``.

Truth (``truth["community_engagement"]``)
-----------------------------------------
``tiers``: per observed tier ``members``, ``att_per_member_month`` (expected revenue with
membership minus without, over whole member-months whose first day is on or after the end of
the window: the months the tier's DiD counts), ``member_months``, ``lift_revenue``,
``share_of_lift``, ``hazard_ratio`` (the world's ``churn_hazard_ratio``: depth does not change
churn). ``programs``: per programme ``members``, ``att_per_member_month`` (expected extra
revenue of being in the programme against being a member outside it, over whole months from
the programme's start month), ``member_months``, ``lift_revenue``, ``cost``,
``revenue_per_dollar``. ``acquisition``: ``customers_joined_before_first_seen``, and with
referrals ``referred_customers``, ``referrals_unassigned``, ``att_referrals_per_member_month``
(expected extra referrals per member-month caused by membership), and the expected referrals
per member-month and per non-member customer-month.

Examples
--------
>>> from roi.simulate import simulate_world
>>> world = simulate_world(n_customers=400, months=12, seed=1,
...                        engagement=EngagementKnobs(program_share=0.3, referral_rate=0.02))
>>> sorted(world.truth["community_engagement"])
['acquisition', 'knobs', 'programs', 'tiers']
>>> "referred_by" in world.tables["customers"], "programs" in world.tables
(True, True)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

NEVER = np.iinfo(np.int32).max


@dataclass(frozen=True)
class EngagementKnobs:
    """The issue-20 knobs of the simulated world (see the module docstring).

    Attributes
    ----------
    tier_names : tuple of str
        Names of the observed tiers, lowest first (one more than ``thresholds``).
    tier_shares, tier_activity, tier_tau : tuple of float
        Per hidden depth class: share of customers, activity-rate multiplier, multiplier of
        the community's ``tau``.
    window_days : int
        The tier window after the membership start.
    thresholds : tuple of float
        Activity counts in the window that start the 2nd, 3rd... tier.
    program, program_share, program_tau : str, float, float
        Programme name, share of members entering it, its multiplicative revenue effect.
    program_min_months : int
        Months after the membership start month before a member can enter.
    program_lift_per_dollar : float
        Programme lift revenue / programme cost.
    referral_rate, referral_member_ratio, referral_engagement_log : float
        Referrals per customer-month at ``u = 0`` outside membership, the multiplier while a
        member, the log effect of ``u`` (self-selection of referrers into membership).
    """

    tier_names: tuple[str, ...] = ("lurker", "participant", "superfan")
    tier_shares: tuple[float, ...] = (0.5, 0.35, 0.15)
    tier_activity: tuple[float, ...] = (0.1, 1.5, 8.0)
    tier_tau: tuple[float, ...] = (0.5, 1.0, 2.5)
    window_days: int = 30
    thresholds: tuple[float, ...] = (1.0, 10.0)
    program: str = "ambassador"
    program_share: float = 0.0
    program_tau: float = 0.3
    program_min_months: int = 2
    program_lift_per_dollar: float = 2.0
    referral_rate: float = 0.0
    referral_member_ratio: float = 2.0
    referral_engagement_log: float = 1.0

    def __post_init__(self) -> None:
        if not len(self.tier_shares) == len(self.tier_activity) == len(self.tier_tau):
            raise ValueError("EngagementKnobs: tier_shares, tier_activity and tier_tau need one "
                             "value per depth class")
        if len(self.tier_names) != len(self.thresholds) + 1:
            raise ValueError("EngagementKnobs: tier_names needs one name more than thresholds")


@dataclass
class EngagementDraw:
    """Per customer draws, and per panel row parts the panel builder fills in."""

    knobs: EngagementKnobs
    depth: np.ndarray            # hidden depth class
    program_month: np.ndarray    # month index of programme entry (NEVER: none)
    referral_rate: np.ndarray    # referrals per non-member customer-month
    program_lift: np.ndarray | None = None   # per panel row, expected programme revenue
    parts: dict[str, Any] = field(default_factory=dict)


def draw_engagement(rng: np.random.Generator, people, cal, p) -> EngagementDraw:
    """Depth classes, programme entries and referral rates of every customer."""
    k: EngagementKnobs = p.engagement
    n = people.customers.n
    shares = np.asarray(k.tier_shares, float)
    depth = rng.choice(len(shares), size=n, p=shares / shares.sum())
    start_month = cal.month_of(np.minimum(people.start, cal.n_days - 1))
    first = start_month + k.program_min_months
    left = np.maximum(cal.n_months - first, 0)
    month = first + np.floor(rng.random(n) * left).astype(np.int64)
    enter = people.member & (rng.random(n) < k.program_share) & (left > 0)
    enter &= people.churn_day >= cal.month_start[np.minimum(month, cal.n_months - 1)]
    u = people.customers.engagement
    rate = k.referral_rate * np.exp(k.referral_engagement_log * u)
    return EngagementDraw(k, depth, np.where(enter, month, NEVER), rate)


def adjust_panel_lift(draw: EngagementDraw, *, who: np.ndarray, month: np.ndarray,
                      since_start: np.ndarray, mu0: np.ndarray,
                      lift: np.ndarray) -> np.ndarray:
    """The membership lift scaled by the depth class, plus the programme's lift (kept on
    ``draw.program_lift`` for the truth)."""
    k = draw.knobs
    lift = lift * np.asarray(k.tier_tau, float)[draw.depth[who]]
    in_program = month >= draw.program_month[who]
    draw.program_lift = np.where(in_program, (mu0 + lift) * k.program_tau, 0.0)
    return lift + draw.program_lift


def activity_multiplier(draw: EngagementDraw, customer: np.ndarray) -> np.ndarray:
    """Activity-rate multiplier of each member row (prospects, ``customer < 0``: 1)."""
    rates = np.asarray(draw.knobs.tier_activity, float)[draw.depth[np.maximum(customer, 0)]]
    return np.where(customer >= 0, rates, 1.0)


def panel_truth(draw: EngagementDraw, panel, people, cal, *,
                rng: np.random.Generator) -> None:
    """Per customer sums the truth needs, and the referral draws (while the panel exists)."""
    k, n = draw.knobs, people.customers.n
    window_end = np.where(people.member, people.start + k.window_days, NEVER)
    counted = panel.whole & (panel.since_start >= 0)
    after = counted & (cal.month_start[panel.month] >= window_end[panel.customer])
    draw.parts["tier_lift"] = np.bincount(panel.customer[after], panel.lift[after], n)
    draw.parts["tier_months"] = np.bincount(panel.customer[after], minlength=n)
    programme = panel.whole & (panel.month >= draw.program_month[panel.customer])
    draw.parts["program_lift"] = np.bincount(panel.customer[programme],
                                             draw.program_lift[programme], n)
    draw.parts["program_months"] = np.bincount(panel.customer[programme], minlength=n)
    if k.referral_rate > 0:
        _draw_referrals(draw, panel, people, cal, rng=rng, counted=counted)


def _draw_referrals(draw: EngagementDraw, panel, people, cal, *, rng: np.random.Generator,
                    counted: np.ndarray) -> None:
    k, n = draw.knobs, people.customers.n
    member_month = panel.since_start >= 0
    base = draw.referral_rate[panel.customer]
    expected = base * panel.exposure * np.where(member_month, k.referral_member_ratio, 1.0)
    events = rng.poisson(expected)
    referrer = np.repeat(panel.customer, events)
    month = np.repeat(panel.month, events)
    referred_by = np.full(n, -1, np.int64)
    first_month = cal.month_of(people.customers.first_seen)
    unassigned = 0
    for m in np.unique(month):   # a loop over months
        candidates = rng.permutation(np.flatnonzero(first_month == m))
        givers = rng.permutation(referrer[month == m])
        take = min(len(candidates), len(givers))
        ok = givers[:take] != candidates[:take]
        referred_by[candidates[:take][ok]] = givers[:take][ok]
        unassigned += len(givers) - int(ok.sum())
    non_member = panel.whole & ~member_month
    draw.parts["referrals"] = {
        "referred_by": referred_by, "unassigned": unassigned,
        "att": float((base * (k.referral_member_ratio - 1.0))[counted].mean())
        if counted.any() else None,
        "member_rate": float((base * k.referral_member_ratio)[counted].mean())
        if counted.any() else None,
        "non_member_rate": float(base[non_member].mean()) if non_member.any() else None}


def observed_tiers(activity: pd.DataFrame, members: pd.DataFrame, member_customer: np.ndarray,
                   people, cal, knobs: EngagementKnobs) -> np.ndarray:
    """Observed tier code per customer (-1: not a member) by the rule of
    :mod:`roi.engagement.tiers`, from the written tables."""
    n = people.customers.n
    by_member = pd.Series(member_customer, index=members["member_id"].astype(str).to_numpy())
    customer = np.full(len(activity), -1, np.int64)
    has_id = activity["customer_id"].notna().to_numpy()
    ids = activity.loc[has_id, "customer_id"].astype(str).str[1:].astype(np.int64).to_numpy()
    customer[has_id] = ids - 1
    via = activity.loc[~has_id, "member_id"].astype(str).to_numpy()
    customer[~has_id] = by_member.reindex(via).fillna(-1).to_numpy(np.int64)
    day = ((activity["date"].to_numpy().astype("datetime64[D]") - cal.start)
           .astype(np.int64))
    ok = customer >= 0
    start = np.where(ok, people.start[np.maximum(customer, 0)], NEVER)
    inside = ok & people.member[np.maximum(customer, 0)] & (day >= start) \
        & (day < start + knobs.window_days)
    counts = np.bincount(customer[inside], activity["count"].to_numpy(float)[inside], n)
    tier = np.searchsorted(np.asarray(knobs.thresholds, float), counts, side="right")
    return np.where(people.member, tier, -1)


def finish(draw: EngagementDraw, *, tables: dict[str, pd.DataFrame], member_customer: np.ndarray,
           people, cal, p, customer_ids, rng: np.random.Generator) -> dict[str, Any]:
    """Add the ``programs`` table, programme costs and ``referred_by``; return the truth."""
    k = draw.knobs
    tier = observed_tiers(tables["activity"], tables["members"], member_customer, people, cal, k)
    truth: dict[str, Any] = {"knobs": dataclasses.asdict(k), "tiers": _tier_truth(draw, tier, p)}
    truth["programs"] = _programs(draw, tables, people, cal, p, customer_ids, rng=rng)
    acquisition: dict[str, Any] = {"customers_joined_before_first_seen": int(
        (people.member & (people.joined < people.customers.first_seen)).sum())}
    referrals = draw.parts.get("referrals")
    if referrals is not None:
        referred_by = referrals["referred_by"]
        ids = np.asarray(customer_ids.to_pylist(), dtype=object)
        tables["customers"]["referred_by"] = pd.array(
            np.where(referred_by >= 0, ids[np.maximum(referred_by, 0)], None), dtype="string")
        acquisition.update({
            "referred_customers": int((referred_by >= 0).sum()),
            "referrals_unassigned": int(referrals["unassigned"]),
            "att_referrals_per_member_month": referrals["att"],
            "expected_referrals_per_member_month": referrals["member_rate"],
            "expected_referrals_per_non_member_customer_month": referrals["non_member_rate"]})
    truth["acquisition"] = acquisition
    return truth


def _tier_truth(draw: EngagementDraw, tier: np.ndarray, p) -> dict[str, Any]:
    k = draw.knobs
    lift, months = draw.parts["tier_lift"], draw.parts["tier_months"]
    total = float(lift.sum())
    out = {}
    for code, name in enumerate(k.tier_names):
        mine = tier == code
        n_months = int(months[mine].sum())
        revenue = float(lift[mine].sum())
        out[name] = {"members": int(mine.sum()), "member_months": n_months,
                     "att_per_member_month": revenue / n_months if n_months else None,
                     "lift_revenue": revenue,
                     "share_of_lift": revenue / total if total else None,
                     "hazard_ratio": p.churn_hazard_ratio}
    return out


def _programs(draw: EngagementDraw, tables: dict[str, pd.DataFrame], people, cal, p,
              customer_ids, *, rng: np.random.Generator) -> dict[str, Any]:
    k = draw.knobs
    entered = np.flatnonzero(draw.program_month < NEVER)
    if not entered.size:
        return {}
    tables["programs"] = pd.DataFrame({
        "customer_id": pd.array(customer_ids.take(entered).to_pylist(), dtype="string"),
        "program": pd.array([k.program] * entered.size, dtype="string"),
        "started_at": cal.timestamps(cal.month_start[draw.program_month[entered]])})
    lift = float(draw.parts["program_lift"].sum())
    months = int(draw.parts["program_months"].sum())
    cost = lift / k.program_lift_per_dollar
    community = np.asarray(p.communities, object)[people.community[entered]]
    share = pd.Series(1.0, index=community).groupby(level=0).sum() / entered.size
    rows = []
    for name, weight in share.items():   # a loop over communities
        monthly = rng.dirichlet(np.full(cal.n_months, 20.0)) * cost * weight
        rows.append(pd.DataFrame({
            "date": cal.timestamps(cal.month_start[:-1]),
            "community": pd.Series([name] * cal.n_months, dtype="string[pyarrow]"),
            "category": pd.Series([k.program] * cal.n_months, dtype="string[pyarrow]"),
            "cost": np.round(monthly, 2)}))
    costs = pd.concat([tables["community_costs"], *rows], ignore_index=True)
    tables["community_costs"] = costs.sort_values(["date", "community", "category"],
                                                  ignore_index=True)
    real_cost = float(sum(r["cost"].sum() for r in rows))
    return {k.program: {"members": int(entered.size), "member_months": months,
                        "att_per_member_month": lift / months if months else None,
                        "lift_revenue": lift, "cost": real_cost,
                        "revenue_per_dollar": lift / real_cost if real_cost else None}}
