"""A sample world: synthetic brand data whose causal truth is known.

``simulate_world`` draws the six canonical tables of ``shared/CONTRACT.md`` (customers, orders,
members, activity, ad_spend, community_costs) from a documented generative model and returns them
with ``truth``, the quantities every estimator of the toolkit should recover. All draws are
vectorised numpy (1,000,000 customers take about a minute); the same seed gives identical tables.

Mechanics (all defaults live in :class:`WorldParams`)
-----------------------------------------------------
Time
    The window is ``months`` whole calendar months from ``start`` (a first of a month). Days are
    counted from ``start``; weeks are the complete Monday-to-Sunday weeks inside the window.
Customers
    ``customer_id`` "C000001" ..., ``email`` "c000001@example.com", covariates ``segment``,
    ``region``, ``acquisition_channel``, ``plan`` (pro more likely in larger segments) and
    ``employees`` (log-normal around a segment median). ``first_seen`` is inside the window: a
    launch cohort in the first week, most of the rest in the first two thirds of the window, the
    remainder later. Each customer has an unobserved engagement trait ``u ~ Normal(0, sd)`` that
    is never written to the tables (it is in ``World.latent``).
Revenue
    Expected revenue of customer i in a whole calendar month t is
    ``mu_it = base * exp(beta'x_i + u_i) * season(t) * (1 + tau_c * ramp(k))`` where the last
    factor applies from the month membership starts (k = months since that month, 0 in it) and
    ``ramp(k) = 1 - ramp_rate ** (k + 1)``. In partial months (first and churn month) it is
    scaled by the share of the month's days the customer was a customer. Orders per month are
    Poisson (about 1.2 in a whole month, more for engaged customers), values are gamma with the
    mean that makes expected net revenue exactly ``mu_it``; dates are uniform over the customer's
    days in the month. Refunds: 1.5% of these orders get a second, negative row of 30-100% of the
    order's value within a week (capped at the month's last day as a customer); order values are
    scaled up so that expected revenue net of refunds is still ``mu_it``. Organic orders and their
    refunds have ``channel`` "direct".
Communities
    Each month from ``first_seen`` on, a customer who has not joined joins with probability
    ``expit(logit(join_base_monthly) + join_engagement_log_odds * u_i + gamma'x_i)``: strong
    self-selection on the unobserved trait. The joiner picks one community (discord 60%, forum
    40%); 10% of members later join the other one too (at least a month later; it changes
    nothing: the FIRST community is the treatment). 3% of joiners joined before they bought
    (``joined_at`` up to 120 days before ``first_seen``); membership then starts at
    ``first_seen``. Membership is absorbing in the world: ``left_at`` (set for 10% of member rows)
    ends activity, never the effect on revenue or churn. Member rows carry ``customer_id`` 70% of
    the time, otherwise only a messy ``email`` (mixed case, surrounding spaces) that matches the
    customer's e-mail once trimmed and lower-cased. Prospects who never bought (5% of member rows)
    have an e-mail that matches no customer.
Churn
    Continuous-time hazard, piecewise constant per customer:
    ``h(t) = churn_base_monthly * exp(delta'x_i) * HR ** member_i(t)`` per month (30.44 days),
    where ``member_i(t)`` switches to 1 on the day membership starts. It depends on observed
    covariates only (not on ``u``). A join drawn after the customer churned does not happen.
    ``churned_at`` is the churn day; empty if the customer is still a customer at the window end.
Activity
    Each member row has weekly rows (dated on the Monday, or the window start) per kind
    (post, comment, reaction, event) with ``count >= 1``, from ``joined_at`` to ``left_at`` or the
    window end, at a rate that rises with ``u``. The row has ``customer_id`` when the member row
    has it, otherwise ``member_id``.
Paid media
    One ``ad_spend`` row per channel and complete week (dated on the Monday): flighted spend
    (search always on, display and video in bursts), ``impressions``, ``clicks``, ``campaign``.
    Expected weekly revenue caused by channel c is ``beta_c * hill(adstock(spend_c))`` with
    geometric adstock ``a_w = spend_w + decay * a_{w-1}`` (``a`` = 0 before the window) and
    ``hill(a) = a**s / (a**s + K**s)``. It is realised as extra orders (count Poisson of expected
    revenue / ``media_order_value``, gamma values with that mean) on days of the week, each given
    to a customer drawn uniformly among those who are customers that day, with ``channel`` = the
    channel's name. Spend and ``beta`` are calibrated so that paid media brings ``paid_share`` of
    expected revenue and each channel's average ROAS is near ``media_roas``.
Community costs
    Monthly rows (dated on the first of the month) per community and category (platform, staff,
    perks, events), scaled so that the community's true revenue lift divided by its cost is
    ``community_lift_per_dollar``.

``truth`` (JSON-serialisable)
-----------------------------
``seed``, ``params`` (``WorldParams`` as a dict), ``window`` (``start``, ``end``, ``months``,
``weeks``), ``counts`` (rows per table).

``att_per_member_month``
    Average over member-months of expected revenue with membership minus without
    (``mu0_it * tau_c * ramp(k)``), exact from the simulated means (not from Poisson noise). A
    member-month is, as in CONTRACT section 2, a calendar month at or after the month membership
    started (``max(joined_at, first_seen)`` of the first community joined) during which the
    customer was a customer for the whole month (first seen before the month began, not churned
    before it ended). Paid-media orders go to random customers and do not change it.
``att_from_month_after_joining``, ``att_from_month_after_joining_by_community``
    The same average over member-months from the month after the membership start month on
    (the join month left out): what a join-month-adjusted DiD estimates.
``att_by_community``, ``member_months``, ``member_months_by_community``
    The same per community of first join, and the number of member-months.
``lift_revenue_by_community``
    ``att_by_community * member_months_by_community``: revenue the lift adds on member-months.
``tau_by_community``, ``ramp``
    The effect at full strength per community; ``ramp`` holds the formula, ``k``'s meaning and
    ``values`` (ramp(0) ... ramp(11)).
``parallel_trends``
    ``holds`` (False when ``WorldParams.member_trend`` is not 0), ``member_trend`` and what it
    does: joiners' untreated revenue drifts linearly against never-members' (time-varying
    selection), so a DiD's lift is biased by the drift after joining; the truth above uses the
    drifted untreated revenue (it is the real counterfactual).
``naive_gap_per_month``
    Realised mean revenue (all orders, including paid-media orders and refunds) per whole
    customer-month of ever-members minus that of never-members: the biased dashboard number.
``ever_member_share``
    Share of customers who became members (while customers).
``revenue_baseline_monthly``, ``revenue_covariate_effects``, ``seasonality``
    ``base`` (expected monthly revenue of the reference customer with ``u = 0``), the log effects
    ``beta`` (keys ``"covariate=level"`` against the first level, and ``"log_employees"`` per unit
    of ``ln(employees / employees_reference)``), and the 12 calendar-month multipliers.
``churn_hazard_ratio``, ``churn_baseline_monthly_hazard``, ``churn_covariate_effects``
    ``HR`` of members, the monthly hazard of the reference customer, log-hazard effects ``delta``.
``retention_revenue_by_community``, ``retention_extra_customer_months_by_community``
    Expected revenue (valued without the lift, which the lift term already counts) and customer
    months that membership's lower churn adds inside the window, given each member's realised
    membership start, in closed form from the piecewise-exponential survival.
``community_cost``, ``community_revenue_per_dollar``
    Total cost per community in the window and (lift + retention revenue) / cost.
``roas``, ``marginal_roas``
    Per channel: expected caused revenue in the window / spend in the window (this is the
    expectation; realised media orders differ by Poisson noise), and the extra expected revenue
    from scaling the channel's whole spend by 1% divided by 1% of its spend.
``media_params``
    Per channel: ``adstock`` (type, decay, normalised = false), ``saturation`` (type hill,
    ``half_saturation`` in currency of adstocked weekly spend, ``shape``), ``beta`` (weekly
    revenue at full saturation), ``spend``, ``expected_revenue``, ``dark_weeks``.
``paid_share_of_revenue``
    Expected paid-media revenue / expected total revenue.
``media_orders_unassigned``
    Media orders dropped because no customer existed on their day (0 unless the world is tiny).
``membership``
    Shares of member rows by identity (``customer_id``, e-mail only, prospects) and the number of
    customers who joined before their first purchase.

Examples
--------
>>> from roi.simulate import simulate_world
>>> world = simulate_world(n_customers=300, months=12, seed=1)
>>> sorted(world.tables)
['activity', 'ad_spend', 'community_costs', 'customers', 'members', 'orders']
>>> world.truth["churn_hazard_ratio"]
0.7
>>> world.truth["naive_gap_per_month"] > world.truth["att_per_member_month"] > 0
True
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

TABLE_NAMES = ("customers", "orders", "members", "activity", "ad_spend", "community_costs")
NEVER = np.iinfo(np.int32).max  # day offset meaning "does not happen in the window"
DAYS_PER_MONTH = 365.25 / 12
MIN_TREND_FACTOR = 0.1  # floor of WorldParams.member_trend's drift factor (revenue stays > 0)
_STREAMS = ("customers", "joins", "churn", "orders", "media", "media_orders", "members",
            "activity", "costs", "triggers", "invitations", "engagement")
# (new streams go last: spawned children keep their keys, so default worlds do not change)
_COVARIATES = ("segment", "region", "acquisition_channel", "plan")


@dataclass(frozen=True)
class WorldParams:
    """Every knob of the sample world, with its default.

    Covariate effects are pairs ``("covariate=level", effect)`` against the first level of the
    covariate, or ``("log_employees", effect)`` per unit of ``ln(employees / employees_reference)``.

    Attributes
    ----------
    segments, regions, acquisition_channels : tuple of (level, share)
        Levels of the categorical covariates and their shares among customers.
    plans : tuple of str
        Plan levels (basic, pro); pro is drawn with ``pro_share_by_segment``.
    pro_share_by_segment : tuple of float
        Probability of the second plan per segment.
    employees_median_by_segment : tuple of float
        Median ``employees`` per segment; log-normal with ``employees_log_sd`` around it.
    employees_log_sd, employees_reference : float
        Spread of ``ln(employees)``; the reference size of the covariate effects.
    launch_share, launch_days : float, int
        Share of customers first seen in the first ``launch_days`` days (the launch cohort).
    early_share, early_window_fraction : float
        Of the others, the share first seen before ``early_window_fraction`` of the window.
    engagement_sd : float
        Standard deviation of the unobserved engagement trait ``u``.
    base_monthly_revenue : float
        Expected monthly revenue of the reference customer with ``u = 0`` (before season).
    revenue_log_effects : tuple of (str, float)
        Log effects of covariates on revenue.
    season_amplitude, season_peak_month : float
        ``season = 1 + amplitude * cos(2 pi (month - peak) / 12)``, month 1..12 (11.5: Q4 peak).
    orders_per_month : float
        Mean orders in a whole month (over ``u``).
    order_rate_engagement : float
        Log effect of ``u`` on order frequency (revenue per order falls to compensate).
    order_value_shape : float
        Gamma shape of order values (coefficient of variation ``1/sqrt(shape)``).
    refund_share, refund_fraction, refund_delay_days : float, (float, float), int
        Share of orders refunded, range of the refunded fraction of the value, maximum delay.
    communities, community_shares : tuple of str, tuple of float
        Communities and the shares of first joins.
    tau : tuple of float
        Multiplicative revenue effect at full strength, per community.
    ramp_rate : float
        ``ramp(k) = 1 - ramp_rate ** (k + 1)``.
    member_trend : float
        Time-varying selection that breaks parallel trends (0: parallel trends hold). The
        revenue a joiner would have had without membership changes by this share of its
        start-month level per month, before and after joining, against never-members:
        ``mu0_it *= max(1 + member_trend * (t - start_month_i), 0.1)``. A linear drift: the
        moves after joining equal those before (relative magnitude 1), which a DiD reads as
        effect; the sensitivity must report the lift as fragile.
    join_after_purchase : float
        Joining triggered by purchases (0: off). This share of the joiners who join as
        customers join *because* of an order: an extra order (the customer's usual order
        value, ``channel`` direct) placed 0 to ``join_purchase_lag_days`` days before the join
        day (not before ``first_seen``), so the join month (or, for about a quarter, the month
        before) has revenue that caused the joining rather than came from it. A DiD counting
        the join month as effect is biased upwards; ``truth["att_from_month_after_joining"]``
        is the effect it should recover with the join month left out.
    join_purchase_lag_days : int
        Longest delay between the triggering order and the join.
    experiment_share : float
        A randomized invitation experiment (0: none). This share of the customers who are
        customers and not yet members on the first day of month ``experiment_month`` is
        assigned, ``experiment_invite_share`` of them to ``invite`` (the rest ``holdout``);
        an invited customer joins the first community within 30 days with probability
        ``experiment_uptake`` (compliers; a later organic join is moved earlier), and every
        assigned customer's first community is the first one. The ``invitations`` table
        (``customer_id``, ``assigned_at``, ``arm``, ``community``, ``experiment``) lists those
        still customers on that day; ``truth["experiment"]`` holds the ITT on revenue per
        customer-month and on member-months and the CACE per member-month, from expected
        revenue under both arms for every assigned customer (months after churn count zero).
    experiment_month, experiment_invite_share, experiment_uptake : int, float, float
        Month index of assignment; share invited; probability an invited customer joins.
    join_base_monthly : float
        Monthly join probability of the reference customer with ``u = 0``.
    join_engagement_log_odds : float
        Log-odds of joining per unit of ``u`` (the self-selection).
    join_log_odds_effects : tuple of (str, float)
        Log-odds effects of observed covariates on joining.
    second_community_share : float
        Share of members who later also join another community.
    left_share : float
        Share of member rows with a ``left_at`` (does not end the effect).
    customer_id_share : float
        Share of customers' member rows that carry ``customer_id`` (the rest: messy e-mail only).
    prospect_share : float
        Share of member rows that are prospects who never bought.
    pre_customer_join_share, pre_customer_join_max_days : float, int
        Share of joiners who joined before ``first_seen``, and how long before at most.
    churn_base_monthly : float
        Monthly churn hazard of the reference customer, non-member.
    churn_hazard_ratio : float
        Hazard ratio of churn while a member.
    churn_log_effects : tuple of (str, float)
        Log-hazard effects of observed covariates.
    churn_engagement_log : float
        Log-hazard effect of ``u`` on churn (0: churn does not depend on the hidden trait; a
        negative value makes engaged customers, who also join more, churn less).
    community_engagement_log_odds : tuple of float
        Per community, the log-odds of choosing it per unit of ``u`` (empty: the first community
        is drawn from ``community_shares`` whatever ``u``; e.g. ``(1.0, -1.0)`` sends engaged
        joiners to the first community, so join rates differ by community and by trait).
    activity_per_week : float
        Mean activity actions per member-week at ``u = 0``.
    activity_engagement_log : float
        Log effect of ``u`` on the activity rate.
    activity_kinds : tuple of (str, float)
        Kinds of activity and their shares.
    media_channels : tuple of str
        Paid channels. The following tuples have one value per channel.
    paid_share : float
        Expected paid-media revenue as a share of all expected revenue.
    media_revenue_split : tuple of float
        Split of paid-media revenue between channels.
    media_roas : tuple of float
        Average ROAS each channel is calibrated to.
    adstock_decay : tuple of float
        Geometric adstock decay per week.
    hill_half_saturation : tuple of float
        Half-saturation point as a multiple of the channel's mean adstocked weekly spend.
    hill_shape : tuple of float
        Hill exponent.
    dark_week_share : tuple of float
        Expected share of weeks without spend (flighting; 0 = always on).
    spend_noise_sd : float
        Log-normal noise of weekly spend in weeks on air.
    cost_per_mille, click_through : tuple of float
        Cost of 1000 impressions and click-through rate per channel.
    media_order_value : float
        Mean value of a paid-media order.
    community_lift_per_dollar : tuple of float
        True lift revenue / cost per community, which sets the cost level.
    cost_category_shares : tuple of (str, float)
        Split of community cost between categories.
    events_every_months : int
        Event costs fall every this many months.
    engagement : roi.simulate_engagement.EngagementKnobs, optional
        Engagement depth, programmes and referrals (issue 20; None: off, nothing drawn, and
        the key is left out of ``truth["params"]``); ``truth["community_engagement"]``.

    Examples
    --------
    >>> params = WorldParams(tau=(0.25, 0.10), churn_hazard_ratio=0.8)
    >>> simulate_world(n_customers=200, months=6, params=params).truth["tau_by_community"]
    {'discord': 0.25, 'forum': 0.1}
    """

    segments: tuple[tuple[str, float], ...] = (("smb", 0.6), ("mid", 0.3), ("enterprise", 0.1))
    regions: tuple[tuple[str, float], ...] = (("na", 0.45), ("emea", 0.30), ("apac", 0.15),
                                              ("latam", 0.10))
    acquisition_channels: tuple[tuple[str, float], ...] = (
        ("search", 0.30), ("social", 0.25), ("referral", 0.15), ("organic", 0.30))
    plans: tuple[str, ...] = ("basic", "pro")
    pro_share_by_segment: tuple[float, ...] = (0.2, 0.4, 0.7)
    employees_median_by_segment: tuple[float, ...] = (8.0, 80.0, 800.0)
    employees_log_sd: float = 0.7
    employees_reference: float = 50.0
    launch_share: float = 0.3
    launch_days: int = 7
    early_share: float = 0.7
    early_window_fraction: float = 2 / 3
    engagement_sd: float = 0.5
    base_monthly_revenue: float = 100.0
    revenue_log_effects: tuple[tuple[str, float], ...] = (
        ("segment=mid", 0.6), ("segment=enterprise", 1.3), ("region=emea", -0.05),
        ("region=apac", -0.10), ("region=latam", -0.25), ("acquisition_channel=social", -0.10),
        ("acquisition_channel=referral", 0.15), ("acquisition_channel=organic", 0.05),
        ("plan=pro", 0.40), ("log_employees", 0.08))
    season_amplitude: float = 0.2
    season_peak_month: float = 11.5
    orders_per_month: float = 1.2
    order_rate_engagement: float = 0.3
    order_value_shape: float = 2.0
    refund_share: float = 0.015
    refund_fraction: tuple[float, float] = (0.3, 1.0)
    refund_delay_days: int = 7
    communities: tuple[str, ...] = ("discord", "forum")
    community_shares: tuple[float, ...] = (0.6, 0.4)
    tau: tuple[float, ...] = (0.15, 0.08)
    ramp_rate: float = 0.5
    member_trend: float = 0.0
    join_after_purchase: float = 0.0
    join_purchase_lag_days: int = 7
    experiment_share: float = 0.0
    experiment_month: int = 6
    experiment_invite_share: float = 0.5
    experiment_uptake: float = 0.4
    join_base_monthly: float = 0.028
    join_engagement_log_odds: float = 3.0
    join_log_odds_effects: tuple[tuple[str, float], ...] = (
        ("segment=enterprise", 0.2), ("plan=pro", 0.3), ("acquisition_channel=referral", 0.3),
        ("acquisition_channel=organic", 0.15))
    second_community_share: float = 0.10
    left_share: float = 0.10
    customer_id_share: float = 0.70
    prospect_share: float = 0.05
    pre_customer_join_share: float = 0.03
    pre_customer_join_max_days: int = 120
    churn_base_monthly: float = 0.03
    churn_hazard_ratio: float = 0.70
    churn_log_effects: tuple[tuple[str, float], ...] = (
        ("segment=mid", -0.3), ("segment=enterprise", -0.6), ("plan=pro", -0.2),
        ("acquisition_channel=social", 0.2), ("acquisition_channel=referral", -0.2),
        ("region=latam", 0.15), ("log_employees", -0.05))
    churn_engagement_log: float = 0.0
    community_engagement_log_odds: tuple[float, ...] = ()
    activity_per_week: float = 0.25
    activity_engagement_log: float = 1.0
    activity_kinds: tuple[tuple[str, float], ...] = (
        ("post", 0.15), ("comment", 0.30), ("reaction", 0.50), ("event", 0.05))
    media_channels: tuple[str, ...] = ("search", "social", "display", "video")
    paid_share: float = 0.20
    media_revenue_split: tuple[float, ...] = (0.45, 0.25, 0.12, 0.18)
    media_roas: tuple[float, ...] = (3.0, 1.8, 0.9, 1.3)
    adstock_decay: tuple[float, ...] = (0.2, 0.5, 0.7, 0.4)
    hill_half_saturation: tuple[float, ...] = (0.6, 1.0, 1.4, 0.8)
    hill_shape: tuple[float, ...] = (1.0, 1.5, 2.0, 1.2)
    dark_week_share: tuple[float, ...] = (0.0, 0.1, 0.45, 0.6)
    spend_noise_sd: float = 0.35
    cost_per_mille: tuple[float, ...] = (30.0, 8.0, 3.0, 12.0)
    click_through: tuple[float, ...] = (0.04, 0.01, 0.002, 0.004)
    media_order_value: float = 150.0
    community_lift_per_dollar: tuple[float, ...] = (3.0, 2.0)
    cost_category_shares: tuple[tuple[str, float], ...] = (
        ("platform", 0.10), ("staff", 0.55), ("perks", 0.20), ("events", 0.15))
    events_every_months: int = 3
    engagement: Any = None

    def __post_init__(self) -> None:
        per_community = ("community_shares", "tau", "community_lift_per_dollar")
        per_channel = ("media_revenue_split", "media_roas", "adstock_decay",
                       "hill_half_saturation", "hill_shape", "dark_week_share",
                       "cost_per_mille", "click_through")
        if self.community_engagement_log_odds:
            per_community = (*per_community, "community_engagement_log_odds")
        for names, keys in ((per_community, self.communities), (per_channel, self.media_channels)):
            for name in names:
                if len(getattr(self, name)) != len(keys):
                    raise ValueError(f"WorldParams.{name} needs one value per entry of "
                                     f"{keys!r}, got {getattr(self, name)!r}")
        if not 0.0 <= self.paid_share < 1.0:
            raise ValueError(f"WorldParams.paid_share must be in [0, 1), got {self.paid_share}")
        if self.churn_hazard_ratio <= 0 or self.churn_base_monthly <= 0:
            raise ValueError("WorldParams churn hazard and hazard ratio must be positive")

    def levels(self) -> dict[str, tuple[str, ...]]:
        """Levels of each categorical covariate, the reference level first."""
        return {"segment": tuple(k for k, _ in self.segments),
                "region": tuple(k for k, _ in self.regions),
                "acquisition_channel": tuple(k for k, _ in self.acquisition_channels),
                "plan": tuple(self.plans)}


@dataclass
class World:
    """A simulated world: canonical tables, known truth and the hidden per-customer traits.

    Attributes
    ----------
    tables : dict of str to pandas.DataFrame
        The six canonical tables (text as pandas ``string``, dates as ``datetime64[ns]``).
    truth : dict
        Known causal quantities, JSON-serialisable (see the module docstring).
    latent : pandas.DataFrame
        Per customer: ``customer_id``, ``engagement`` (u), ``revenue_level`` (expected monthly
        revenue before season and membership: ``mu0 = revenue_level * seasonality[month]``),
        ``order_rate``, ``churn_rate_monthly``, ``join_prob_monthly``, ``member``,
        ``membership_start`` and ``community`` (first joined). Never written by :meth:`write`.
    """

    tables: dict[str, pd.DataFrame]
    truth: dict[str, Any]
    latent: pd.DataFrame

    def write(self, folder: str | Path, fmt: str = "csv") -> list[Path]:
        """Write ``<table>.csv`` or ``<table>.parquet`` for each table, and ``truth.json``.

        Parameters
        ----------
        folder : str or Path
            Created if missing; existing files of the same names are replaced.
        fmt : {"csv", "parquet"}
            CSV dates are ``YYYY-MM-DD``; Parquet dates are ``date32``.

        Returns
        -------
        list of Path
            The files written.

        Examples
        --------
        >>> import tempfile
        >>> world = simulate_world(n_customers=100, months=6, seed=3)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     [path.name for path in world.write(folder)][-1]
        'truth.json'
        """
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name in (*TABLE_NAMES, *(t for t in self.tables if t not in TABLE_NAMES)):
            path = folder / f"{name}.{fmt}"
            if fmt == "csv":
                self.tables[name].to_csv(path, index=False, date_format="%Y-%m-%d")
            else:
                pq.write_table(_arrow_with_dates(self.tables[name]), path)
            written.append(path)
        truth_path = folder / "truth.json"
        truth_path.write_text(json.dumps(self.truth, indent=2) + "\n")
        return [*written, truth_path]


def simulate_world(*, n_customers: int = 3000, months: int = 24, start: str = "2023-01-01",
                   seed: int = 7, params: WorldParams | None = None, **knobs: Any) -> World:
    """Simulate a brand's customers, community, paid media and costs with known truth.

    Parameters
    ----------
    n_customers : int
        Customers first seen in the window.
    months : int
        Whole calendar months in the window (at least 2).
    start : str
        First day of the window; must be the first day of a month.
    seed : int
        Seed of all random draws; the same seed gives identical tables and truth.
    params : WorldParams, optional
        Base parameters (default ``WorldParams()``).
    **knobs
        Any :class:`WorldParams` field, overriding ``params`` (e.g. ``tau=(0.3, 0.1)``).

    Returns
    -------
    World
        ``tables``, ``truth`` and ``latent``.

    Examples
    --------
    >>> world = simulate_world(n_customers=500, months=12, seed=2, churn_hazard_ratio=0.5)
    >>> world.truth["churn_hazard_ratio"], len(world.tables["customers"])
    (0.5, 500)
    """
    if n_customers < 1:
        raise ValueError(f"n_customers must be at least 1, got {n_customers}")
    p = dataclasses.replace(params or WorldParams(), **knobs)
    cal = _make_calendar(start, months)
    rngs = dict(zip(_STREAMS, np.random.default_rng(seed).spawn(len(_STREAMS)), strict=True))
    people = _simulate_people(rngs, n_customers, cal, p)
    sales = _simulate_sales(rngs, people, cal, p)
    return _assemble(rngs, people, sales, cal, p, seed)


# --------------------------------------------------------------------------- calendar


@dataclass(frozen=True)
class _Calendar:
    start: np.datetime64       # first day of the window
    month_start: np.ndarray    # day offsets of each month's first day, then the window's length
    week_start: np.ndarray     # day offsets of the Mondays of complete weeks
    start_weekday: int         # Monday = 0

    @property
    def n_days(self) -> int:
        return int(self.month_start[-1])

    @property
    def n_months(self) -> int:
        return len(self.month_start) - 1

    @property
    def month_days(self) -> np.ndarray:
        return np.diff(self.month_start)

    @property
    def month_of_year(self) -> np.ndarray:
        first = self.start.astype("datetime64[M]").astype(int)
        return (first + np.arange(self.n_months)) % 12 + 1

    def month_of(self, days: np.ndarray) -> np.ndarray:
        return (np.searchsorted(self.month_start, days, side="right") - 1).astype(np.int32)

    def monday_of(self, days: np.ndarray) -> np.ndarray:
        return np.maximum(days - (days + self.start_weekday) % 7, 0)

    def timestamps(self, days: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
        safe = np.where(missing, 0, days) if missing is not None else days
        stamps = (self.start + safe.astype("timedelta64[D]")).astype("datetime64[ns]")
        if missing is not None:
            stamps[missing] = np.datetime64("NaT")
        return stamps


def _make_calendar(start: str, months: int) -> _Calendar:
    stamp = pd.Timestamp(start)
    if stamp.day != 1 or stamp != stamp.normalize():
        raise ValueError(f"start must be the first day of a month, got {start!r}")
    if months < 2:
        raise ValueError(f"months must be at least 2, got {months}")
    first = np.datetime64(stamp.date(), "D")
    firsts = (np.datetime64(stamp.date(), "M") + np.arange(months + 1)).astype("datetime64[D]")
    month_start = (firsts - first).astype(np.int64)
    first_monday = (7 - stamp.weekday()) % 7
    week_start = np.arange(first_monday, month_start[-1] - 6, 7)
    return _Calendar(first, month_start, week_start, stamp.weekday())


def _season(month_of_year: np.ndarray, p: WorldParams) -> np.ndarray:
    angle = 2 * np.pi * (month_of_year - p.season_peak_month) / 12
    return 1.0 + p.season_amplitude * np.cos(angle)


# --------------------------------------------------------------------------- customers


@dataclass(frozen=True)
class _Customers:
    codes: dict[str, np.ndarray]   # covariate -> level code
    employees: np.ndarray
    engagement: np.ndarray         # u, unobserved
    first_seen: np.ndarray         # day offset
    revenue_level: np.ndarray      # base * exp(beta'x + u)
    order_rate: np.ndarray         # expected orders in a whole month
    churn_rate: np.ndarray         # monthly hazard without membership
    join_prob: np.ndarray          # monthly probability of joining

    @property
    def n(self) -> int:
        return len(self.first_seen)


@dataclass(frozen=True)
class _People:
    customers: _Customers
    joined: np.ndarray      # day joined the first community (NEVER: no join in the window)
    start: np.ndarray       # membership start max(joined, first_seen) (NEVER: not a member)
    community: np.ndarray   # first community (meaningful where member)
    churn_day: np.ndarray   # NEVER: still a customer at the window end
    member: np.ndarray      # became a member while a customer
    design: dict[str, Any] | None = None   # the invitation experiment (experiment_share > 0)


def _draw_customers(rng: np.random.Generator, n: int, cal: _Calendar,
                    p: WorldParams) -> _Customers:
    levels = p.levels()
    codes = {name: rng.choice(len(pairs), size=n, p=_shares(pairs)).astype(np.int8)
             for name, pairs in (("segment", p.segments), ("region", p.regions),
                                 ("acquisition_channel", p.acquisition_channels))}
    pro_share = np.asarray(p.pro_share_by_segment)[codes["segment"]]
    codes["plan"] = (rng.random(n) < pro_share).astype(np.int8)
    median = np.asarray(p.employees_median_by_segment)[codes["segment"]]
    employees = np.maximum(1, np.rint(median * np.exp(p.employees_log_sd * rng.normal(size=n))))
    log_employees = np.log(employees / p.employees_reference)
    u = rng.normal(0.0, p.engagement_sd, size=n)

    def effects(pairs: tuple[tuple[str, float], ...]) -> np.ndarray:
        return _covariate_effects(pairs, codes, levels, log_employees)

    k = p.order_rate_engagement
    join_logit = (_logit(p.join_base_monthly) + p.join_engagement_log_odds * u
                  + effects(p.join_log_odds_effects))
    return _Customers(
        codes=codes, employees=employees.astype(np.int64), engagement=u,
        first_seen=_draw_first_seen(rng, n, cal, p),
        revenue_level=p.base_monthly_revenue * np.exp(effects(p.revenue_log_effects) + u),
        order_rate=p.orders_per_month * np.exp(k * u - (k * p.engagement_sd) ** 2 / 2),
        churn_rate=p.churn_base_monthly * np.exp(effects(p.churn_log_effects)
                                                  + p.churn_engagement_log * u),
        join_prob=1.0 / (1.0 + np.exp(-join_logit)))


def _covariate_effects(pairs: tuple[tuple[str, float], ...], codes: dict[str, np.ndarray],
                       levels: dict[str, tuple[str, ...]],
                       log_employees: np.ndarray) -> np.ndarray:
    """Sum of ``effect * indicator`` over ``("covariate=level", effect)`` pairs."""
    total = np.zeros(len(log_employees))
    for key, effect in pairs:
        if key == "log_employees":
            total += effect * log_employees
            continue
        name, _, level = key.partition("=")
        if level not in levels.get(name, ()):
            raise ValueError(f"unknown covariate effect {key!r}; covariates: {levels}")
        total += effect * (codes[name] == levels[name].index(level))
    return total


def _draw_first_seen(rng: np.random.Generator, n: int, cal: _Calendar,
                     p: WorldParams) -> np.ndarray:
    """Launch cohort in the first days, most others early in the window, the rest later."""
    launch_end = min(p.launch_days, cal.n_days - 2)
    early_end = max(launch_end + 1, round(p.early_window_fraction * cal.n_days))
    rest = 1.0 - p.launch_share
    group = rng.choice(3, size=n, p=[p.launch_share, rest * p.early_share,
                                     rest * (1.0 - p.early_share)])
    low = np.array([0, launch_end, early_end])[group]
    high = np.array([launch_end, early_end, cal.n_days])[group]
    return (low + np.floor(rng.random(n) * (high - low))).astype(np.int64)


def _shares(pairs: Sequence[tuple[str, float]] | Sequence[float]) -> np.ndarray:
    values = np.array([pair[1] if isinstance(pair, tuple) else pair for pair in pairs], float)
    return values / values.sum()


def _logit(probability: float) -> float:
    return math.log(probability / (1.0 - probability))


# --------------------------------------------------------------------------- joins and churn


def _simulate_people(rngs: dict[str, np.random.Generator], n: int, cal: _Calendar,
                     p: WorldParams) -> _People:
    customers = _draw_customers(rngs["customers"], n, cal, p)
    joined, start, community = _draw_joins(rngs["joins"], customers, cal, p)
    design = None
    if p.experiment_share > 0:
        joined, start, community, design = _assign_invitations(
            rngs["invitations"], customers, joined=joined, start=start, community=community,
            cal=cal, p=p)
    budget = rngs["churn"].exponential(size=customers.n)
    churn_day = _churn_from_budget(budget, customers, start, cal, p)
    member = (start < NEVER) & (start <= churn_day)
    if design is not None:
        design = _experiment_outcomes(design, budget, customers, churn_day=churn_day,
                                      community=community, cal=cal, p=p)
    return _People(customers, np.where(member, joined, NEVER), np.where(member, start, NEVER),
                   community, churn_day, member, design)


def _assign_invitations(rng: np.random.Generator, customers: _Customers, *, joined: np.ndarray,
                        start: np.ndarray, community: np.ndarray, cal: _Calendar,
                        p: WorldParams) -> tuple[np.ndarray, ...]:
    """Randomize customers into invite/holdout; invited compliers join within 30 days."""
    if not 0 < p.experiment_month < cal.n_months - 1:
        raise ValueError(f"WorldParams.experiment_month must be in 1..{cal.n_months - 2}, "
                         f"got {p.experiment_month}")
    day = int(cal.month_start[p.experiment_month])
    eligible = (customers.first_seen < day) & (start >= day)
    assigned = eligible & (rng.random(customers.n) < p.experiment_share)
    invite = assigned & (rng.random(customers.n) < p.experiment_invite_share)
    complier = assigned & (rng.random(customers.n) < p.experiment_uptake)
    complier_day = day + np.floor(rng.random(customers.n) * 30).astype(np.int64)
    start0 = start.copy()
    moved = invite & complier & (complier_day < start)
    joined = np.where(moved, complier_day, joined)
    start = np.where(moved, complier_day, start)
    community = np.where(assigned, 0, community)
    design = {"day": day, "assigned": np.flatnonzero(assigned), "invite": invite,
              "complier_start": np.where(complier, np.minimum(complier_day, start0), start0),
              "start0": start0}
    return joined, start, community, design


def _experiment_outcomes(design: dict[str, Any], budget: np.ndarray, customers: _Customers, *,
                         churn_day: np.ndarray, community: np.ndarray, cal: _Calendar,
                         p: WorldParams) -> dict[str, Any]:
    """Expected outcomes of every assigned customer under both arms (same churn draw), over
    the months after assignment; keeps those still customers on the assignment day."""
    idx = design["assigned"]
    idx = idx[churn_day[idx] >= design["day"]]
    months = np.arange(p.experiment_month + 1, cal.n_months)
    by_arm = {}
    for arm, start in (("invite", design["complier_start"]), ("holdout", design["start0"])):
        churn = _churn_from_budget(budget, customers, start, cal, p)[idx]
        start_month = np.where(start[idx] < NEVER,
                               cal.month_of(np.minimum(start[idx], cal.n_days - 1)), NEVER)
        first = cal.month_start[months][None, :]
        last = cal.month_start[months + 1][None, :] - 1
        alive_days = np.clip(np.minimum(churn[:, None], last) - first + 1, 0, None)
        exposure = alive_days / cal.month_days[months][None, :]
        since = months[None, :] - start_month[:, None]
        ramp = np.where(since >= 0, 1.0 - p.ramp_rate ** (np.maximum(since, 0) + 1), 0.0)
        mu0 = customers.revenue_level[idx][:, None] * _season(cal.month_of_year, p)[months]
        tau = np.asarray(p.tau)[community[idx]][:, None]
        by_arm[arm] = {"revenue": (mu0 * (1 + tau * ramp) * exposure).sum(axis=1),
                       "member_months": ((since >= 0) & (alive_days > 0)).sum(axis=1),
                       "alive_days": alive_days.sum(axis=1)}
    return {**design, "kept": idx, "months": len(months), "by_arm": by_arm}


def _experiment_truth(design: dict[str, Any], media_per_customer_day: float) -> dict[str, Any]:
    """ITT and CACE of the invitation over the assigned customers (both potential arms)."""
    arms, n = design["by_arm"], len(design["kept"])
    months = max(design["months"], 1)
    extra_days = arms["invite"]["alive_days"] - arms["holdout"]["alive_days"]
    revenue = (arms["invite"]["revenue"] - arms["holdout"]["revenue"]
               + media_per_customer_day * extra_days)
    itt_revenue = float(revenue.sum() / (n * months)) if n else None
    itt_member = float((arms["invite"]["member_months"] - arms["holdout"]["member_months"]
                        ).sum() / (n * months)) if n else None
    invite = design["invite"][design["kept"]]
    return {"customers": {"invite": int(invite.sum()), "holdout": int((~invite).sum())},
            "followed_months": design["months"],
            "itt_revenue_per_customer_month": itt_revenue,
            "itt_member_months_per_customer_month": itt_member,
            "cace_per_member_month": (itt_revenue / itt_member
                                      if itt_revenue is not None and itt_member else None),
            "note": "expected revenue under both arms for every assigned customer, paid-media "
                    "orders included at their average per customer-day; months after churn "
                    "count zero"}


def _draw_joins(rng: np.random.Generator, customers: _Customers, cal: _Calendar,
                p: WorldParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Potential join day, membership start and first community (before churn is known)."""
    fs = customers.first_seen
    month = cal.month_of(fs) + rng.geometric(customers.join_prob) - 1
    has_join = month < cal.n_months
    month = np.minimum(month, cal.n_months - 1)
    low = np.maximum(cal.month_start[month], fs)
    high = cal.month_start[month + 1]
    joined = low + np.floor(rng.random(customers.n) * (high - low)).astype(np.int64)
    eligible = has_join & (fs >= 7)   # the launch cohort had no time to join before buying
    pick = p.pre_customer_join_share * has_join.sum() / max(eligible.sum(), 1)
    before = eligible & (rng.random(customers.n) < pick)
    lead = 1 + np.floor(rng.random(customers.n)
                        * np.minimum(p.pre_customer_join_max_days, fs)).astype(np.int64)
    joined = np.where(before, fs - lead, joined)
    joined = np.where(has_join, joined, NEVER)
    start = np.where(has_join, np.maximum(joined, fs), NEVER)
    community = _draw_community(rng, customers.engagement, p)
    return joined, start, community


def _draw_community(rng: np.random.Generator, u: np.ndarray, p: WorldParams) -> np.ndarray:
    """First community: from ``community_shares``, tilted by ``u`` per community when
    ``community_engagement_log_odds`` is set (the default draw is kept as it was, so default
    worlds do not change)."""
    if not p.community_engagement_log_odds:
        return rng.choice(len(p.communities), size=len(u), p=_shares(p.community_shares))
    weight = _shares(p.community_shares)[None, :] * np.exp(
        np.outer(u, p.community_engagement_log_odds))
    cumulative = np.cumsum(weight / weight.sum(axis=1, keepdims=True), axis=1)
    pick = (rng.random(len(u))[:, None] > cumulative).sum(axis=1)
    return np.minimum(pick, len(p.communities) - 1)


def _draw_churn_days(rng: np.random.Generator, customers: _Customers, start: np.ndarray,
                     cal: _Calendar, p: WorldParams) -> np.ndarray:
    """Churn day from a piecewise-exponential hazard that drops by HR from ``start`` on."""
    return _churn_from_budget(rng.exponential(size=customers.n), customers, start, cal, p)


def _churn_from_budget(budget: np.ndarray, customers: _Customers, start: np.ndarray,
                       cal: _Calendar, p: WorldParams) -> np.ndarray:
    """Churn day for a drawn unit-exponential ``budget`` (the same draw gives each customer's
    churn under another membership start: the experiment's counterfactual arm)."""
    rate = customers.churn_rate / DAYS_PER_MONTH
    until_start = np.where(start < NEVER, start - customers.first_seen, np.inf)
    before = budget / rate
    with np.errstate(invalid="ignore"):
        after = until_start + (budget - rate * until_start) / (rate * p.churn_hazard_ratio)
    lifetime = np.where(before < until_start, before, after)
    day = customers.first_seen + np.floor(lifetime)
    return np.where(day < cal.n_days, day, NEVER).astype(np.int64)


# --------------------------------------------------------------------------- panel and orders


@dataclass(frozen=True)
class _Panel:
    """One row per customer and calendar month of life in the window."""

    customer: np.ndarray    # customer index
    month: np.ndarray       # month index in the window
    first_day: np.ndarray   # first and last day as a customer in the month (inclusive)
    last_day: np.ndarray
    exposure: np.ndarray    # share of the month's days as a customer
    whole: np.ndarray       # customer for the whole month (CONTRACT's member-month condition)
    since_start: np.ndarray  # months since membership start month (-1 before / never)
    mu0: np.ndarray         # expected revenue of a whole month without membership
    lift: np.ndarray        # expected revenue added by membership (mu1 - mu0)
    row_start: np.ndarray   # per customer, index of its first row


def _build_panel(people: _People, cal: _Calendar, p: WorldParams, *,
                 engagement: Any = None) -> _Panel:
    c = people.customers
    first_month = cal.month_of(c.first_seen)
    last_alive = np.minimum(people.churn_day, cal.n_days - 1)
    n_rows = cal.month_of(last_alive) - first_month + 1
    row_start = np.concatenate([[0], np.cumsum(n_rows)[:-1]])
    who = np.repeat(np.arange(c.n, dtype=np.int32), n_rows)
    month = (np.arange(len(who)) - row_start[who] + first_month[who]).astype(np.int32)
    first_day = np.maximum(cal.month_start[month], c.first_seen[who])
    last_day = np.minimum(cal.month_start[month + 1] - 1, last_alive[who])
    start_month = np.where(people.member, cal.month_of(np.minimum(people.start, cal.n_days)),
                           cal.n_months + 1)
    since_start = np.maximum(month - start_month[who], -1).astype(np.int32)
    ramp = np.where(since_start >= 0, 1.0 - p.ramp_rate ** (np.maximum(since_start, 0) + 1), 0.0)
    mu0 = c.revenue_level[who] * _season(cal.month_of_year, p)[month]
    if p.member_trend:  # skipped at 0 so that default worlds keep their exact numbers
        drift = np.where(people.member[who], month - start_month[who], 0)
        mu0 = mu0 * np.maximum(1.0 + p.member_trend * drift, MIN_TREND_FACTOR)
    lift = mu0 * np.asarray(p.tau)[people.community[who]] * ramp
    if engagement is not None:   # depth scales the lift; a programme adds its own
        from roi.simulate_engagement import adjust_panel_lift

        lift = adjust_panel_lift(engagement, who=who, month=month, since_start=since_start,
                                 mu0=mu0, lift=lift)
    return _Panel(
        customer=who, month=month, first_day=first_day, last_day=last_day,
        exposure=(last_day - first_day + 1) / cal.month_days[month],
        whole=(c.first_seen[who] < cal.month_start[month])
        & (people.churn_day[who] >= cal.month_start[month + 1]),
        since_start=since_start, mu0=mu0,
        lift=lift, row_start=row_start)


@dataclass(frozen=True)
class _Orders:
    customer: np.ndarray
    day: np.ndarray
    revenue: np.ndarray
    channel: np.ndarray   # 0 = direct, 1 + c = media channel c

    @staticmethod
    def concat(parts: Sequence[_Orders]) -> _Orders:
        return _Orders(*(np.concatenate([getattr(part, f.name) for part in parts])
                         for f in dataclasses.fields(_Orders)))


def _draw_organic_orders(rng: np.random.Generator, panel: _Panel, customers: _Customers,
                         p: WorldParams) -> _Orders:
    """Poisson orders per customer-month, gamma values, plus refunds; net mean = mu1 * exposure."""
    rate = customers.order_rate[panel.customer]
    counts = rng.poisson(rate * panel.exposure)
    row = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    del counts
    gross = 1.0 - p.refund_share * float(np.mean(p.refund_fraction))
    mean_value = (panel.mu0[row] + panel.lift[row]) / rate[row] / gross
    value = _cents(rng.gamma(p.order_value_shape, mean_value / p.order_value_shape))
    del mean_value
    width = panel.last_day[row] - panel.first_day[row] + 1
    day = panel.first_day[row] + np.floor(rng.random(len(row)) * width).astype(np.int64)
    del width
    refunded = np.flatnonzero(rng.random(len(row)) < p.refund_share)
    low, high = p.refund_fraction
    refund = -_cents(rng.uniform(low, high, len(refunded)) * value[refunded])
    delay = rng.integers(0, p.refund_delay_days + 1, len(refunded))
    refund_day = np.minimum(day[refunded] + delay, panel.last_day[row[refunded]])
    customer = panel.customer[row]
    return _Orders(np.concatenate([customer, customer[refunded]]),
                   np.concatenate([day, refund_day]).astype(np.int32),
                   np.concatenate([value, refund]),
                   np.zeros(len(row) + len(refunded), np.int8))


def _trigger_orders(rng: np.random.Generator, people: _People, cal: _Calendar,
                    p: WorldParams) -> _Orders:
    """The orders that made customers join (``WorldParams.join_after_purchase``): one per
    triggered joiner, 0 to ``join_purchase_lag_days`` days before the join day, valued like
    the customer's usual order without membership in that month."""
    c = people.customers
    joined_as_customer = people.member & (people.joined >= c.first_seen)
    who = np.flatnonzero(joined_as_customer & (rng.random(c.n) < p.join_after_purchase))
    lag = rng.integers(0, p.join_purchase_lag_days + 1, len(who))
    day = np.maximum(people.joined[who] - lag, c.first_seen[who])
    season = _season(cal.month_of_year, p)[cal.month_of(day)]
    mean_value = c.revenue_level[who] * season / c.order_rate[who]
    value = _cents(rng.gamma(p.order_value_shape, mean_value / p.order_value_shape))
    return _Orders(who.astype(np.int32), day.astype(np.int32), value,
                   np.zeros(len(who), np.int8))


def _cents(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.round(values, 2), 0.01)


# --------------------------------------------------------------------------- paid media


@dataclass(frozen=True)
class _MediaPlan:
    spend: np.ndarray      # (channel, week)
    expected: np.ndarray   # (channel, week) expected caused revenue
    params: dict[str, dict[str, Any]]


def _plan_media(rng: np.random.Generator, cal: _Calendar, p: WorldParams,
                organic_expected: float) -> _MediaPlan:
    """Weekly spend with flighting, calibrated response curves and their truth."""
    n_weeks = len(cal.week_start)
    media_total = organic_expected * p.paid_share / (1.0 - p.paid_share)
    split = _shares(p.media_revenue_split)
    spend = np.zeros((len(p.media_channels), n_weeks))
    expected = np.zeros_like(spend)
    params = {}
    for c, name in enumerate(p.media_channels):
        target = media_total * split[c]
        on_air = _flighting(rng, n_weeks, p.dark_week_share[c])
        raw = on_air * rng.lognormal(-p.spend_noise_sd ** 2 / 2, p.spend_noise_sd, n_weeks)
        spend[c] = np.round(raw * (target / p.media_roas[c]) / raw.sum(), 2)
        expected[c], params[name] = _channel_response(spend[c], target, c, p)
    return _MediaPlan(spend, expected, params)


def _channel_response(spend: np.ndarray, target: float, c: int,
                      p: WorldParams) -> tuple[np.ndarray, dict[str, Any]]:
    decay, shape = p.adstock_decay[c], p.hill_shape[c]
    stock = _adstock(spend, decay)
    half = p.hill_half_saturation[c] * float(stock.mean())
    response = _hill(stock, half, shape)
    beta = target / response.sum() if response.sum() > 0 else 0.0
    expected = beta * response
    bumped = beta * _hill(_adstock(spend * 1.01, decay), half, shape)
    total_spend = float(spend.sum())
    truth = {
        "adstock": {"type": "geometric", "decay": decay, "normalised": False},
        "saturation": {"type": "hill", "half_saturation": half, "shape": shape},
        "beta": float(beta), "spend": total_spend, "expected_revenue": float(expected.sum()),
        "dark_weeks": int((spend == 0).sum()),
        "roas": float(expected.sum() / total_spend) if total_spend else None,
        "marginal_roas": (float((bumped.sum() - expected.sum()) / (0.01 * total_spend))
                          if total_spend else None),
    }
    return expected, truth


def _adstock(spend: np.ndarray, decay: float) -> np.ndarray:
    stock = np.empty_like(spend)
    carried = 0.0
    for week, amount in enumerate(spend):   # a loop over weeks, not customers
        carried = amount + decay * carried
        stock[week] = carried
    return stock


def _hill(stock: np.ndarray, half: float, shape: float) -> np.ndarray:
    if half <= 0:
        return np.zeros_like(stock)
    return stock ** shape / (stock ** shape + half ** shape)


def _flighting(rng: np.random.Generator, n_weeks: int, dark_share: float) -> np.ndarray:
    """On-air weeks: alternating bursts (mean 5 weeks) and dark runs, random phase."""
    if dark_share <= 0:
        return np.ones(n_weeks, bool)
    mean_on = 5.0
    mean_off = mean_on * dark_share / (1.0 - dark_share)
    on_runs = 1 + rng.poisson(mean_on - 1, n_weeks)
    off_runs = 1 + rng.poisson(max(mean_off - 1, 0.0), n_weeks)
    runs = np.column_stack([on_runs, off_runs]).ravel()
    pattern = np.repeat(np.tile([True, False], n_weeks), runs)
    phase = int(rng.integers(0, int(mean_on + mean_off)))
    on_air = pattern[phase:phase + n_weeks]
    if not on_air.any():
        on_air[: max(1, n_weeks // 4)] = True
    return on_air


def _draw_media_orders(rng: np.random.Generator, plan: _MediaPlan, people: _People,
                       cal: _Calendar, p: WorldParams) -> tuple[_Orders, int]:
    """Poisson(expected revenue / order value) orders per channel-week, to random customers."""
    counts = rng.poisson(plan.expected / p.media_order_value).ravel()
    cell = np.repeat(np.arange(len(counts)), counts)
    channel, week = np.divmod(cell, len(cal.week_start))
    day = cal.week_start[week] + rng.integers(0, 7, len(cell))
    shape = p.order_value_shape
    value = _cents(rng.gamma(shape, p.media_order_value / shape, len(cell)))
    last_alive = np.minimum(people.churn_day, cal.n_days - 1)
    customer = _pick_alive(rng, day, people.customers.first_seen, last_alive)
    kept = customer >= 0
    orders = _Orders(customer[kept].astype(np.int32), day[kept].astype(np.int32), value[kept],
                     (channel[kept] + 1).astype(np.int8))
    return orders, int((~kept).sum())


def _pick_alive(rng: np.random.Generator, day: np.ndarray, first_seen: np.ndarray,
                last_alive: np.ndarray, max_rounds: int = 200) -> np.ndarray:
    """For each day, a customer drawn uniformly among those who are customers that day (-1: none).

    Draws among customers first seen by that day and keeps those not churned yet (rejection).
    """
    by_first_seen = np.argsort(first_seen, kind="stable")
    seen = np.searchsorted(first_seen[by_first_seen], day, side="right")
    chosen = np.full(len(day), -1, np.int64)
    pending = np.flatnonzero(seen > 0)
    for _ in range(max_rounds):
        if pending.size == 0:
            break
        draw = by_first_seen[np.floor(rng.random(pending.size) * seen[pending]).astype(np.int64)]
        alive = last_alive[draw] >= day[pending]
        chosen[pending[alive]] = draw[alive]
        pending = pending[~alive]
    return chosen


# --------------------------------------------------------------------------- sales and truth


@dataclass(frozen=True)
class _Sales:
    orders: _Orders
    media: _MediaPlan
    media_unassigned: int
    organic_expected: float    # expected revenue of all organic orders (net of refunds)
    lift: dict[str, Any]       # revenue-lift truth, computed while the panel exists


def _simulate_sales(rngs: dict[str, np.random.Generator], people: _People, cal: _Calendar,
                    p: WorldParams) -> _Sales:
    """Orders and media; the customer-month panel is dropped once the lift truth is known."""
    engagement = None
    if p.engagement is not None:   # issue 20 (off by default: no draw, default worlds unchanged)
        from roi.simulate_engagement import draw_engagement

        engagement = draw_engagement(rngs["engagement"], people, cal, p)
    panel = _build_panel(people, cal, p, engagement=engagement)
    organic = _draw_organic_orders(rngs["orders"], panel, people.customers, p)
    if p.join_after_purchase > 0:
        organic = _Orders.concat([organic, _trigger_orders(rngs["triggers"], people, cal, p)])
    organic_expected = float(((panel.mu0 + panel.lift) * panel.exposure).sum())
    plan = _plan_media(rngs["media"], cal, p, organic_expected)
    paid, unassigned = _draw_media_orders(rngs["media_orders"], plan, people, cal, p)
    orders = _Orders.concat([organic, paid])
    del organic, paid
    lift = _lift_truth(panel, orders, people, cal, p)
    if engagement is not None:
        from roi.simulate_engagement import panel_truth

        panel_truth(engagement, panel, people, cal, rng=rngs["engagement"])
        lift["_engagement"] = engagement   # popped by _assemble
    return _Sales(orders, plan, unassigned, organic_expected, lift)


def _lift_truth(panel: _Panel, orders: _Orders, people: _People, cal: _Calendar,
                p: WorldParams) -> dict[str, Any]:
    counted = panel.whole & (panel.since_start >= 0)
    lift = panel.lift[counted]
    community = people.community[panel.customer[counted]]
    n_by = np.bincount(community, minlength=len(p.communities))
    sum_by = np.bincount(community, weights=lift, minlength=len(p.communities))
    row = (panel.row_start[orders.customer] + cal.month_of(orders.day)
           - cal.month_of(people.customers.first_seen[orders.customer]))
    realised = np.bincount(row, weights=orders.revenue, minlength=len(panel.customer))
    ever = people.member[panel.customer]
    after = counted & (panel.since_start >= 1)
    community_after = people.community[panel.customer[after]]
    n_after = np.bincount(community_after, minlength=len(p.communities))
    sum_after = np.bincount(community_after, weights=panel.lift[after],
                            minlength=len(p.communities))
    return {
        # The join-month-adjusted estimand (issue 17): member-months from the month after
        # the membership start month on.
        "att_from_month_after_joining": _mean_or_none(float(sum_after.sum()), int(after.sum())),
        "att_from_month_after_joining_by_community": {
            name: _mean_or_none(sum_after[c], n_after[c]) for c, name in enumerate(p.communities)},
        "att_per_member_month": _mean_or_none(lift.sum(), lift.size),
        "att_by_community": {name: _mean_or_none(sum_by[c], n_by[c])
                             for c, name in enumerate(p.communities)},
        "member_months": int(lift.size),
        "member_months_by_community": {name: int(n_by[c]) for c, name in enumerate(p.communities)},
        "lift_revenue_by_community": {name: float(sum_by[c])
                                      for c, name in enumerate(p.communities)},
        "naive_gap_per_month": _difference_of_means(realised[panel.whole & ever],
                                                    realised[panel.whole & ~ever]),
        "ever_member_share": float(people.member.mean()),
    }


def _retention_truth(people: _People, cal: _Calendar, p: WorldParams) -> dict[str, Any]:
    """Expected extra customer-days in the window from the lower churn hazard of members."""
    idx = np.flatnonzero(people.member)
    start = people.start[idx]
    start_month = cal.month_of(start)
    n_months = cal.n_months - start_month
    offsets = np.concatenate([[0], np.cumsum(n_months)[:-1]])
    who = np.repeat(np.arange(len(idx)), n_months)
    month = start_month[who] + np.arange(len(who)) - offsets[who]
    since = np.maximum(cal.month_start[month], start[who]) - start[who]
    until = cal.month_start[month + 1] - start[who]
    rate = people.customers.churn_rate[idx][who] / DAYS_PER_MONTH
    extra_days = (_survival_integral(rate * p.churn_hazard_ratio, since, until)
                  - _survival_integral(rate, since, until))
    mu0_per_day = (people.customers.revenue_level[idx][who]
                   * _season(cal.month_of_year, p)[month] / cal.month_days[month])
    community = people.community[idx][who]
    k = len(p.communities)
    revenue = np.bincount(community, weights=extra_days * mu0_per_day, minlength=k)
    months = np.bincount(community, weights=extra_days, minlength=k) / DAYS_PER_MONTH
    return {"retention_revenue_by_community": dict(zip(p.communities, map(float, revenue),
                                                       strict=True)),
            "retention_extra_customer_months_by_community": dict(zip(
                p.communities, map(float, months), strict=True))}


def _survival_integral(rate: np.ndarray, since: np.ndarray, until: np.ndarray) -> np.ndarray:
    """Integral of exp(-rate * t) for t from ``since`` to ``until``."""
    return (np.exp(-rate * since) - np.exp(-rate * until)) / rate


def _mean_or_none(total: float, count: int) -> float | None:
    return float(total / count) if count else None


def _difference_of_means(first: np.ndarray, second: np.ndarray) -> float | None:
    if first.size == 0 or second.size == 0:
        return None
    return float(first.mean() - second.mean())


# --------------------------------------------------------------------------- members, activity


@dataclass(frozen=True)
class _MemberRows:
    customer: np.ndarray     # customer index, -1 for prospects
    community: np.ndarray
    joined: np.ndarray
    left: np.ndarray         # NEVER: no left_at
    with_id: np.ndarray      # row carries customer_id (else e-mail only)
    engagement: np.ndarray
    number: np.ndarray       # member number within its community
    activity_rate: np.ndarray | None = None   # activity-rate multiplier (issue 20 depth)


def _draw_member_rows(rng: np.random.Generator, people: _People, cal: _Calendar,
                      p: WorldParams) -> _MemberRows:
    idx = np.flatnonzero(people.member)
    k = len(p.communities)
    second = (rng.random(idx.size) < p.second_community_share) & (k > 1)
    second_day = people.start[idx] + 31 + rng.integers(0, 365, idx.size)
    second &= second_day <= np.minimum(people.churn_day[idx], cal.n_days - 1)
    other = (people.community[idx] + 1 + rng.integers(0, max(k - 1, 1), idx.size)) % k
    n_prospects = round(p.prospect_share / (1.0 - p.prospect_share) * (idx.size + second.sum()))
    customer = np.concatenate([idx, idx[second], np.full(n_prospects, -1)])
    community = np.concatenate([people.community[idx], other[second],
                                rng.choice(k, size=n_prospects, p=_shares(p.community_shares))])
    joined = np.concatenate([people.joined[idx], second_day[second],
                             rng.integers(0, cal.n_days, n_prospects)])
    left = joined + 30 + rng.integers(0, 365, joined.size)
    left = np.where((rng.random(joined.size) < p.left_share) & (left < cal.n_days), left, NEVER)
    engagement = np.concatenate([people.customers.engagement[customer[customer >= 0]],
                                 rng.normal(0.0, p.engagement_sd, n_prospects)])
    with_id = (customer >= 0) & (rng.random(customer.size) < p.customer_id_share)
    number = np.zeros(customer.size, np.int64)
    for c in range(k):   # a loop over communities
        mine = np.flatnonzero(community == c)
        number[mine] = rng.permutation(mine.size) + 1
    order = np.lexsort((number, community, joined))
    return _MemberRows(customer[order], community[order], joined[order], left[order],
                       with_id[order], engagement[order], number[order])


def _draw_activity(rng: np.random.Generator, rows: _MemberRows, cal: _Calendar,
                   p: WorldParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weekly activity counts: (member row, Monday day offset, kind, count), sorted by date."""
    begin = np.maximum(rows.joined, 0)
    end = np.minimum(rows.left, cal.n_days - 1)
    length = np.maximum(end - begin + 1, 0)
    rate = p.activity_per_week * np.exp(p.activity_engagement_log * rows.engagement)
    if rows.activity_rate is not None:
        rate = rate * rows.activity_rate
    events = rng.poisson(rate * length / 7.0)
    row = np.repeat(np.arange(len(events), dtype=np.int64), events)
    day = begin[row] + np.floor(rng.random(row.size) * length[row]).astype(np.int64)
    n_kinds = len(p.activity_kinds)
    kind = rng.choice(n_kinds, size=row.size, p=_shares(p.activity_kinds))
    key = (cal.monday_of(day) * len(events) + row) * n_kinds + kind
    unique, count = np.unique(key, return_counts=True)
    week_row, kind = np.divmod(unique, n_kinds)
    monday, row = np.divmod(week_row, len(events))
    return row, monday, kind, count


# --------------------------------------------------------------------------- tables


def _assemble(rngs: dict[str, np.random.Generator], people: _People, sales: _Sales,
              cal: _Calendar, p: WorldParams, seed: int) -> World:
    width = max(6, len(str(people.customers.n)))
    customer_ids = _numbered("C", np.arange(1, people.customers.n + 1), width)
    emails = _numbered("c", np.arange(1, people.customers.n + 1), width, "@example.com")
    member_rows = _draw_member_rows(rngs["members"], people, cal, p)
    lift = sales.lift
    engagement = lift.pop("_engagement", None)
    if engagement is not None:
        from roi.simulate_engagement import activity_multiplier

        member_rows = dataclasses.replace(member_rows, activity_rate=activity_multiplier(
            engagement, member_rows.customer))
    costs = _community_costs(rngs["costs"], lift["lift_revenue_by_community"], member_rows,
                             cal, p)
    tables = {
        "customers": _customers_table(people, customer_ids, emails, cal, p),
        "orders": _orders_table(sales.orders, customer_ids, cal, p),
        "members": _members_table(rngs["members"], member_rows, customer_ids, emails, cal, p),
        "activity": _activity_table(rngs["activity"], member_rows, customer_ids, cal, p),
        "ad_spend": _ad_spend_table(rngs["media"], sales.media, cal, p),
        "community_costs": costs,
    }
    if people.design is not None:
        tables["invitations"] = _invitations_table(people.design, customer_ids, cal, p)
    engagement_truth = None
    if engagement is not None:
        from roi.simulate_engagement import finish

        engagement_truth = finish(engagement, tables=tables, member_customer=member_rows.customer,
                                  people=people, cal=cal, p=p, customer_ids=customer_ids,
                                  rng=rngs["engagement"])
    truth = _truth(people, sales, tables, lift, cal, p, seed)
    if engagement_truth is not None:
        truth["community_engagement"] = engagement_truth
    if people.design is not None:
        alive_days = float((np.minimum(people.churn_day, cal.n_days - 1)
                            - people.customers.first_seen + 1).clip(0).sum())
        truth["experiment"] = _experiment_truth(
            people.design, float(sales.media.expected.sum()) / max(alive_days, 1.0))
    truth["membership"] = _membership_counts(member_rows, people)
    return World(tables, truth, _latent_frame(people, customer_ids, cal, p))


def _invitations_table(design: dict[str, Any], customer_ids: pa.Array, cal: _Calendar,
                       p: WorldParams) -> pd.DataFrame:
    idx = design["kept"]
    return pd.DataFrame({
        "customer_id": pd.array(customer_ids.take(pa.array(idx)).to_pylist(), dtype="string"),
        "assigned_at": np.repeat(cal.timestamps(np.array([design["day"]])), len(idx)),
        "arm": pd.array(np.where(design["invite"][idx], "invite", "holdout"), dtype="string"),
        "community": pd.array([p.communities[0]] * len(idx), dtype="string"),
        "experiment": pd.array(["invite-2023"] * len(idx), dtype="string")})


def _numbered(prefix: str, numbers: np.ndarray, width: int, suffix: str = "") -> pa.Array:
    """Strings ``prefix + zero-padded number + suffix``, built without a Python loop over rows."""
    rest = np.array(numbers, np.int64)
    head, tail = prefix.encode(), suffix.encode()
    body = np.empty((rest.size, len(head) + width + len(tail)), np.uint8)
    body[:, :len(head)] = np.frombuffer(head, np.uint8)
    body[:, len(head) + width:] = np.frombuffer(tail, np.uint8)
    for position in range(len(head) + width - 1, len(head) - 1, -1):   # a loop over digits
        rest, digit = np.divmod(rest, 10)
        body[:, position] = digit + ord("0")
    offsets = np.arange(rest.size + 1, dtype=np.int64) * body.shape[1]
    strings = pa.LargeStringArray.from_buffers(rest.size, pa.py_buffer(offsets),
                                               pa.py_buffer(body))
    return strings.cast(pa.string()) if offsets[-1] < 2 ** 31 - 1 else strings


def _text(values: pa.Array | Sequence[str], index: np.ndarray,
          missing: np.ndarray | None = None) -> pd.Series:
    """``values[index]`` as a pandas string Series; ``missing`` rows are <NA>."""
    dictionary = values if isinstance(values, pa.Array) else pa.array(list(values), pa.string())
    taken = dictionary.take(pa.array(np.asarray(index, np.int64), mask=missing))
    return pd.Series(pd.arrays.ArrowStringArray(taken))


def _customers_table(people: _People, customer_ids: pa.Array, emails: pa.Array, cal: _Calendar,
                     p: WorldParams) -> pd.DataFrame:
    c = people.customers
    everyone = np.arange(c.n)
    frame = pd.DataFrame({
        "customer_id": _text(customer_ids, everyone),
        "first_seen": cal.timestamps(c.first_seen),
        "churned_at": cal.timestamps(people.churn_day, missing=people.churn_day == NEVER),
        "email": _text(emails, everyone),
    })
    for name, levels in p.levels().items():
        frame[name] = _text(levels, c.codes[name])
    frame["employees"] = c.employees
    return frame


def _orders_table(orders: _Orders, customer_ids: pa.Array, cal: _Calendar,
                  p: WorldParams, *, first_number: int = 1,
                  width: int | None = None) -> pd.DataFrame:
    """``first_number`` and ``width`` number the orders of one part of a chunked world."""
    day = orders.day.astype(np.uint16) if cal.n_days < 2 ** 16 else orders.day
    order = np.argsort(day, kind="stable")   # radix sort; within a day, generation order
    width = width or max(7, len(str(order.size)))
    channel_names = ("direct", *p.media_channels)
    numbers = np.arange(first_number, first_number + order.size)
    return pd.DataFrame({
        "order_id": _text(_numbered("O", numbers, width),
                          np.arange(order.size)),
        "customer_id": _text(customer_ids, orders.customer[order]),
        "order_date": cal.timestamps(orders.day[order]),
        "revenue": orders.revenue[order],
        "currency": _text(["USD"], np.zeros(order.size, np.int64)),
        "channel": _text(channel_names, orders.channel[order]),
    })


def _members_table(rng: np.random.Generator, rows: _MemberRows, customer_ids: pa.Array,
                   emails: pa.Array, cal: _Calendar, p: WorldParams, *,
                   width: int | None = None, prospects_before: int = 0) -> pd.DataFrame:
    """``width`` and ``prospects_before`` number the rows of one part of a chunked world."""
    prospect = rows.customer < 0
    width = width or max(6, len(str(rows.customer.size)))
    prospect_emails = _numbered("p", prospects_before + np.cumsum(prospect), width,
                                "@example.com")
    clean = pc.if_else(pa.array(prospect), prospect_emails,
                       emails.take(pa.array(np.maximum(rows.customer, 0))))
    email = _messy(rng, clean)
    member_ids = pc.binary_join_element_wise(
        pa.array(np.asarray(p.communities, object)[rows.community], pa.string()),
        _numbered("", rows.number, width), "-")
    return pd.DataFrame({
        "member_id": _text(member_ids, np.arange(rows.customer.size)),
        "community": _text(p.communities, rows.community),
        "customer_id": _text(customer_ids, np.maximum(rows.customer, 0), missing=~rows.with_id),
        "email": _text(email, np.arange(rows.customer.size), missing=rows.with_id),
        "joined_at": cal.timestamps(rows.joined),
        "left_at": cal.timestamps(rows.left, missing=rows.left == NEVER),
    })


def _messy(rng: np.random.Generator, emails: pa.Array) -> pa.Array:
    """Mixed case and surrounding spaces; trimming and lower-casing restores the e-mail."""
    n = len(emails)
    case = rng.integers(0, 3, n)
    cased = pc.if_else(pa.array(case == 1), pc.utf8_upper(emails),
                       pc.if_else(pa.array(case == 2), pc.utf8_capitalize(emails), emails))
    pads = pa.array(["", " ", "  "])
    before = pads.take(pa.array(rng.integers(0, 3, n)))
    after = pads.take(pa.array(rng.integers(0, 3, n)))
    return pc.binary_join_element_wise(before, cased, after, "")


def _activity_table(rng: np.random.Generator, rows: _MemberRows, customer_ids: pa.Array,
                    cal: _Calendar, p: WorldParams, *, width: int | None = None) -> pd.DataFrame:
    row, monday, kind, count = _draw_activity(rng, rows, cal, p)
    width = width or max(6, len(str(rows.customer.size)))
    member_ids = pc.binary_join_element_wise(
        pa.array(np.asarray(p.communities, object)[rows.community], pa.string()),
        _numbered("", rows.number, width), "-")
    with_id = rows.with_id[row]
    return pd.DataFrame({
        "community": _text(p.communities, rows.community[row]),
        "date": cal.timestamps(monday),
        "customer_id": _text(customer_ids, np.maximum(rows.customer[row], 0), missing=~with_id),
        "member_id": _text(member_ids, row, missing=with_id),
        "kind": _text([k for k, _ in p.activity_kinds], kind),
        "count": count.astype(np.int64),
    })


def _ad_spend_table(rng: np.random.Generator, plan: _MediaPlan, cal: _Calendar,
                    p: WorldParams) -> pd.DataFrame:
    n_channels, n_weeks = plan.spend.shape
    channel = np.tile(np.arange(n_channels), n_weeks)
    week = np.repeat(np.arange(n_weeks), n_channels)
    spend = plan.spend[channel, week]
    noise = rng.lognormal(0.0, 0.1, spend.size)
    impressions = np.rint(spend / np.asarray(p.cost_per_mille)[channel] * 1000 * noise)
    clicks = rng.binomial(impressions.astype(np.int64), np.asarray(p.click_through)[channel])
    dates = cal.timestamps(cal.week_start[week])
    quarter = pd.DatetimeIndex(dates).quarter.to_numpy()
    campaign = [f"{p.media_channels[c]}-{stamp.year}q{q}"
                for c, stamp, q in zip(channel, pd.DatetimeIndex(dates), quarter, strict=True)]
    return pd.DataFrame({
        "date": dates,
        "channel": _text(p.media_channels, channel),
        "campaign": pd.Series(campaign, dtype="string[pyarrow]"),
        "spend": spend,
        "impressions": impressions.astype(np.int64),
        "clicks": clicks.astype(np.int64),
    })


def _community_costs(rng: np.random.Generator, lift_revenue: dict[str, float],
                     rows: _MemberRows | None, cal: _Calendar, p: WorldParams, *,
                     enrolled_by_community: np.ndarray | None = None) -> pd.DataFrame:
    """Monthly costs per community and category, scaled to ``community_lift_per_dollar``
    (``enrolled_by_community``: :func:`_enrolled` summed over the parts of a chunked world)."""
    months = np.arange(cal.n_months)
    categories = [name for name, _ in p.cost_category_shares]
    shares = _shares(p.cost_category_shares)
    if enrolled_by_community is None:
        enrolled_by_community = _enrolled(rows, cal, p)
    frames = []
    for c, community in enumerate(p.communities):   # a loop over communities
        total = lift_revenue[community] / p.community_lift_per_dollar[c]
        enrolled = enrolled_by_community[c]
        for category, share in zip(categories, shares, strict=True):
            weight = _cost_weights(rng, category, months, enrolled, p)
            frames.append(pd.DataFrame({
                "date": cal.timestamps(cal.month_start[:-1]),
                "community": pd.Series([community] * months.size, dtype="string[pyarrow]"),
                "category": pd.Series([category] * months.size, dtype="string[pyarrow]"),
                "cost": np.round(total * share * weight / weight.sum(), 2)}))
    costs = pd.concat(frames, ignore_index=True)
    return costs.sort_values(["date", "community", "category"], ignore_index=True)


def _enrolled(rows: _MemberRows, cal: _Calendar, p: WorldParams) -> np.ndarray:
    """``(community, month)``: member rows enrolled at some point of each month."""
    out = np.zeros((len(p.communities), cal.n_months), np.int64)
    for c in range(len(p.communities)):   # a loop over communities
        mine = rows.community == c
        out[c] = ((rows.joined[mine][None, :] < cal.month_start[1:, None])
                  & (rows.left[mine][None, :] >= cal.month_start[:-1, None])).sum(axis=1)
    return out


def _cost_weights(rng: np.random.Generator, category: str, months: np.ndarray,
                  enrolled: np.ndarray, p: WorldParams) -> np.ndarray:
    if category == "staff":
        return np.clip(1.0 + 0.05 * rng.normal(size=months.size), 0.5, None)
    if category == "perks":
        return enrolled + 1.0
    if category == "events":
        every = p.events_every_months
        events = (months % every == every - 1).astype(float)
        return events if events.any() else np.ones(months.size)
    return np.ones(months.size)


def _latent_frame(people: _People, customer_ids: pa.Array, cal: _Calendar,
                  p: WorldParams) -> pd.DataFrame:
    c = people.customers
    return pd.DataFrame({
        "customer_id": _text(customer_ids, np.arange(c.n)),
        "engagement": c.engagement,
        "revenue_level": c.revenue_level,
        "order_rate": c.order_rate,
        "churn_rate_monthly": c.churn_rate,
        "join_prob_monthly": c.join_prob,
        "member": people.member,
        "membership_start": cal.timestamps(people.start, missing=~people.member),
        "community": _text(p.communities, people.community, missing=~people.member),
    })


# --------------------------------------------------------------------------- truth


def _truth(people: _People | None, sales: _Sales, tables: dict[str, pd.DataFrame],
           lift: dict[str, Any], cal: _Calendar, p: WorldParams, seed: int, *,
           retention: dict[str, Any] | None = None) -> dict[str, Any]:
    """``retention``: :func:`_retention_truth` summed over a chunked world's parts."""
    retention = retention or _retention_truth(people, cal, p)
    cost = tables["community_costs"].groupby("community")["cost"].sum()
    community_cost = {name: float(cost.get(name, 0.0)) for name in p.communities}
    media = sales.media.params
    media_expected = float(sales.media.expected.sum())
    organic = sales.organic_expected
    end = cal.timestamps(np.array([cal.n_days - 1]))[0]
    truth: dict[str, Any] = {
        "seed": seed,
        "window": {"start": str(cal.start), "end": str(end)[:10], "months": cal.n_months,
                   "weeks": len(cal.week_start)},
        "counts": {name: len(frame) for name, frame in tables.items()},
        **lift,
        "tau_by_community": dict(zip(p.communities, p.tau, strict=True)),
        "parallel_trends": {
            "holds": p.member_trend == 0, "member_trend": p.member_trend,
            "effect": "joiners' revenue without membership drifts linearly against "
                      "never-members' by member_trend x its level in the month membership "
                      "starts, per month (factor floored at 0.1); a DiD counts the drift after "
                      "joining as lift (biased upwards when > 0)"},
        "ramp": {"formula": f"1 - {p.ramp_rate}**(k + 1)",
                 "k": "calendar months since the month membership started (0 in that month)",
                 "values": [1.0 - p.ramp_rate ** (k + 1) for k in range(12)]},
        "revenue_baseline_monthly": p.base_monthly_revenue,
        "revenue_covariate_effects": dict(p.revenue_log_effects),
        "seasonality": _season(np.arange(1, 13), p).tolist(),
        "churn_hazard_ratio": p.churn_hazard_ratio,
        "churn_baseline_monthly_hazard": p.churn_base_monthly,
        "churn_covariate_effects": dict(p.churn_log_effects),
        **retention,
        "community_cost": community_cost,
        "community_revenue_per_dollar": {
            name: (lift["lift_revenue_by_community"][name]
                   + retention["retention_revenue_by_community"][name]) / community_cost[name]
            if community_cost[name] > 0 else None for name in p.communities},
        "roas": {name: media[name].pop("roas") for name in p.media_channels},
        "marginal_roas": {name: media[name].pop("marginal_roas") for name in p.media_channels},
        "media_params": media,
        "paid_share_of_revenue": media_expected / (media_expected + organic),
        "media_orders_unassigned": sales.media_unassigned,
        "params": {key: value for key, value in dataclasses.asdict(p).items()
                   if not (key == "engagement" and value is None)},
    }
    return truth


def _membership_counts(rows: _MemberRows, people: _People) -> dict[str, Any]:
    n_rows = max(rows.customer.size, 1)
    customer_rows = rows.customer >= 0
    before = int((people.member & (people.joined < people.customers.first_seen)).sum())
    return {"rows": int(rows.customer.size),
            "share_with_customer_id": float(rows.with_id.sum() / n_rows),
            "share_email_only": float((customer_rows & ~rows.with_id).sum() / n_rows),
            "share_prospects": float((~customer_rows).sum() / n_rows),
            "customers_joined_before_first_seen": before}


def _arrow_with_dates(frame: pd.DataFrame) -> pa.Table:
    """Arrow table with timestamps as ``date32`` and text as plain strings."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, column in enumerate(table.schema):
        if pa.types.is_timestamp(column.type):
            table = table.set_column(i, column.name, pc.cast(table.column(i), pa.date32()))
        elif pa.types.is_large_string(column.type):
            table = table.set_column(i, column.name, pc.cast(table.column(i), pa.string()))
    return table


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m roi.simulate --out DIR [--customers N --months M --seed S --format F]``."""
    parser = argparse.ArgumentParser(prog="python -m roi.simulate", description=(
        "Write a simulated world (six canonical tables + truth.json) to a folder."))
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--start", default="2023-01-01", help="first day of a month")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--chunk-customers", type=int, help=(
        "simulate this many customers at a time and append each chunk to Parquet (bounded "
        "memory for large worlds; same model, other draws: roi.simulate_chunked)"))
    args = parser.parse_args(argv)
    if args.chunk_customers:
        if args.format != "parquet":
            parser.error("--chunk-customers writes Parquet: add --format parquet")
        from roi.simulate_chunked import write_world_chunked  # it imports this module

        truth = write_world_chunked(args.out, n_customers=args.customers, months=args.months,
                                    start=args.start, seed=args.seed,
                                    chunk_customers=args.chunk_customers)
        counts = ", ".join(f"{name} {n}" for name, n in truth["counts"].items())
        print(f"wrote {len(truth['counts']) + 1} files to {args.out} in "
              f"{truth['chunks']['n']} chunks: {counts}")
        return 0
    world = simulate_world(n_customers=args.customers, months=args.months, start=args.start,
                           seed=args.seed)
    paths = world.write(args.out, fmt=args.format)
    counts = ", ".join(f"{name} {n}" for name, n in world.truth["counts"].items())
    print(f"wrote {len(paths)} files to {args.out}: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
