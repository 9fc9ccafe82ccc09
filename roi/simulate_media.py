"""A weekly media world with known ROAS, noisy the way real customer data is noisy.

``simulate_media_world`` returns a :class:`MediaWorld`: a ``WeeklySeries`` (what
:meth:`roi.paid_media.MediaMixModel.fit` reads) and ``truth`` (ROAS, marginal ROAS and curve
parameters per channel, community revenue). Nothing is at the customer-order row level, so a
50,000-customer, 104-week world takes well under a second.

Mechanics (defaults in :class:`MediaWorldParams`)
-------------------------------------------------
Customers
    ``n_customers`` are active in week 0; each week a customer churns with probability
    ``weekly_churn`` and ``n_customers * weekly_churn * growth`` new customers arrive (Poisson),
    so the active base drifts up slowly. Customer i orders at its own rate
    ``lambda_i ~ Gamma(rate_shape, orders_per_week / rate_shape)`` per week.
Organic revenue
    Orders in week t ``~ Poisson(season_t * promo_t * shock_t * sum_{i active} lambda_i)`` and
    revenue is the sum of that many ``Gamma(value_shape, order_value / value_shape)`` order
    values: the noise of a real order stream of that many customers (about 1.5% of weekly
    revenue at 30,000 customers). ``season_t`` = exp of two yearly Fourier pairs,
    ``promo_t`` = ``promo_lift`` in promotion weeks (the ``promo`` column of ``totals``, a
    control), ``shock_t`` = unobserved lognormal demand shocks with sd ``shock_sd``.
Paid media
    Four channels with flighting (bursts on air, weeks dark; ``dark_share`` per channel) and
    lognormal week-to-week spend. Expected caused revenue ``beta_c * hill(adstock(spend_c))``,
    geometric adstock ``a_t = spend_t + decay * a_{t-1}``, ``hill(a) = a**s / (a**s + K**s)``
    with ``K = half * mean(a)``. Spend and ``beta_c`` are set so that paid media brings
    ``paid_share`` of expected revenue split by ``revenue_split`` and channel c's ROAS is
    exactly ``roas[c]``. Caused revenue is realised as Poisson orders of gamma values.
Communities
    Active members per week grow with the base and spike in event weeks; each active member-week
    adds ``member_week_revenue[g]`` of revenue spread over the following weeks by a normalised
    geometric carry-over (``community_decay``), realised as orders too. Costs are weekly.

Examples
--------
>>> world = simulate_media_world(seed=1, n_customers=20_000)
>>> world.weekly.spend.shape
(104, 4)
>>> round(world.truth["roas"]["search"], 2)
2.5
>>> 0.17 < world.truth["paid_share_of_revenue"] < 0.23
True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from roi.data.weekly import WeeklySeries


@dataclass(frozen=True)
class MediaWorldParams:
    """Every number of the media world (see the module docstring for their roles)."""

    n_customers: int = 30_000
    weeks: int = 104
    start: str = "2024-01-01"
    orders_per_week: float = 0.25
    rate_shape: float = 1.0
    order_value: float = 80.0
    value_shape: float = 2.0
    weekly_churn: float = 0.004
    growth: float = 1.3
    season: tuple[float, ...] = (0.12, 0.06, 0.04, -0.03)
    promo_weeks_per_year: int = 4
    promo_lift: float = 1.25
    shock_sd: float = 0.01
    channels: tuple[str, ...] = ("search", "social", "display", "video")
    roas: tuple[float, ...] = (2.5, 1.6, 0.8, 1.2)
    revenue_split: tuple[float, ...] = (0.40, 0.25, 0.15, 0.20)
    paid_share: float = 0.20
    adstock_decay: tuple[float, ...] = (0.2, 0.5, 0.7, 0.4)
    hill_half: tuple[float, ...] = (1.0, 0.8, 1.2, 0.7)
    hill_shape: tuple[float, ...] = (1.0, 1.5, 2.0, 1.2)
    dark_share: tuple[float, ...] = (0.0, 0.3, 0.5, 0.4)
    spend_noise_sd: float = 0.4
    media_order_value: float = 120.0
    communities: tuple[str, ...] = ("discord", "forum")
    member_share: tuple[float, ...] = (0.04, 0.02)
    member_week_revenue: tuple[float, ...] = (6.0, 10.0)
    community_decay: float = 0.5
    community_cost_per_week: tuple[float, ...] = (1500.0, 800.0)


@dataclass
class MediaWorld:
    """A simulated weekly series with its truth; ``params`` reproduce it."""

    weekly: WeeklySeries
    truth: dict[str, Any]
    params: MediaWorldParams
    seed: int
    expected_media: np.ndarray   # (week, channel) expected caused revenue
    expected_revenue: np.ndarray  # (week,) expected total revenue given the drawn shocks

    def true_lift(self, *, channel: str, start: str, end: str, spend_change: float) -> float:
        """Expected revenue change in weeks ``start``..``end`` when the channel's spend in those
        weeks changes by ``spend_change`` in total (spread evenly), by the true curve."""
        spend = self.weekly.spend[channel].to_numpy(float)
        inside = _weeks_inside(self.weekly.spend.index, start, end)
        moved = spend + inside * spend_change / inside.sum()
        curve = self.truth["media_params"][channel]
        base, alt = (_response(s, decay=curve["decay"], half=curve["half_saturation"],
                               shape=curve["shape"], beta=curve["beta"])
                     for s in (spend, np.maximum(moved, 0.0)))
        return float(((alt - base) * inside).sum())


def simulate_media_world(*, seed: int, n_customers: int | None = None,
                         params: MediaWorldParams | None = None) -> MediaWorld:
    """Simulate the weekly series of a brand with known paid-media ROAS.

    Parameters
    ----------
    seed : int
        Seed of every draw; the same seed and params give identical numbers.
    n_customers : int, optional
        Overrides ``params.n_customers`` (sets the noise scale).
    params : MediaWorldParams, optional
        All other settings.

    Examples
    --------
    >>> world = simulate_media_world(seed=3, n_customers=20_000)
    >>> sorted(world.truth["roas"]) == sorted(world.weekly.spend.columns)
    True
    """
    p = params or MediaWorldParams()
    if n_customers is not None:
        p = dataclasses.replace(p, n_customers=int(n_customers))
    rng = np.random.default_rng(seed)
    weeks = pd.date_range(p.start, periods=p.weeks, freq="W-MON", name="week")
    base = _customer_base(rng, p)
    drivers = _organic_drivers(rng, weeks, p)
    organic_expected = drivers * base["order_rate"] * p.order_value
    spend, expected_media, media_truth = _plan_media(rng, organic_expected.sum(), p)
    members, community_expected, community_truth = _communities(rng, base["active"], p)
    orders, revenue = _organic_orders(rng, drivers * base["order_rate"], p)
    media_orders, media_revenue = _caused_orders(rng, expected_media.sum(axis=1)
                                                 + community_expected.sum(axis=1), p)
    totals = pd.DataFrame({"revenue": np.round(revenue + media_revenue, 2),
                           "orders": (orders + media_orders).astype("int64"),
                           "active_customers": base["active"].astype("int64"),
                           "promo": base_promo(weeks, p)}, index=weeks)
    weekly = _weekly_series(totals, spend, members, weeks, p)
    truth = _truth(p, seed, spend=spend, expected_media=expected_media,
                   organic=organic_expected, community=community_expected,
                   media_truth=media_truth, community_truth=community_truth)
    expected = organic_expected + expected_media.sum(axis=1) + community_expected.sum(axis=1)
    return MediaWorld(weekly=weekly, truth=truth, params=p, seed=seed,
                      expected_media=expected_media, expected_revenue=expected)


def base_promo(weeks: pd.DatetimeIndex, p: MediaWorldParams) -> np.ndarray:
    """Promotion indicator: the last ``promo_weeks_per_year`` weeks starting in November."""
    november, years = np.asarray(weeks.month == 11), np.asarray(weeks.year)
    promo = np.zeros(len(weeks))
    for year in np.unique(years):
        idx = np.flatnonzero(november & (years == year))
        promo[idx[-p.promo_weeks_per_year:]] = 1.0
    return promo


def _customer_base(rng: np.random.Generator, p: MediaWorldParams) -> dict[str, np.ndarray]:
    """Active customers and the sum of their order rates per week (cohort bookkeeping)."""
    arrivals = np.concatenate([[p.n_customers],
                               rng.poisson(p.n_customers * p.weekly_churn * p.growth,
                                           p.weeks - 1)])
    active, rate = np.zeros(p.weeks), np.zeros(p.weeks)
    for week, count in enumerate(arrivals):
        lam = rng.gamma(p.rate_shape, p.orders_per_week / p.rate_shape, count)
        life = rng.geometric(p.weekly_churn, count)           # weeks until churn, >= 1
        stop = np.minimum(week + life, p.weeks)
        np.add.at(active, week, count)
        np.add.at(rate, week, lam.sum())
        ends = stop < p.weeks
        np.add.at(active, stop[ends], -1)
        np.add.at(rate, stop[ends], -lam[ends])
    return {"active": np.cumsum(active), "order_rate": np.maximum(np.cumsum(rate), 0.0)}


def _organic_drivers(rng: np.random.Generator, weeks: pd.DatetimeIndex,
                     p: MediaWorldParams) -> np.ndarray:
    """season x promo x unobserved shock multiplying the customers' order rates."""
    years = (weeks - pd.Timestamp("2000-01-03")).days.to_numpy() / 365.25
    log_season = np.zeros(len(weeks))
    for k, (a, b) in enumerate(zip(p.season[::2], p.season[1::2], strict=True), start=1):
        log_season += a * np.sin(2 * np.pi * k * years) + b * np.cos(2 * np.pi * k * years)
    promo = np.where(base_promo(weeks, p) > 0, p.promo_lift, 1.0)
    shock = rng.lognormal(-p.shock_sd ** 2 / 2, p.shock_sd, len(weeks)) if p.shock_sd else 1.0
    return np.exp(log_season) * promo * shock


def _organic_orders(rng: np.random.Generator, expected_orders: np.ndarray,
                    p: MediaWorldParams) -> tuple[np.ndarray, np.ndarray]:
    orders = rng.poisson(expected_orders)
    return orders, _order_values(rng, orders, p.order_value, p.value_shape)


def _caused_orders(rng: np.random.Generator, expected_revenue: np.ndarray,
                   p: MediaWorldParams) -> tuple[np.ndarray, np.ndarray]:
    orders = rng.poisson(np.maximum(expected_revenue, 0.0) / p.media_order_value)
    return orders, _order_values(rng, orders, p.media_order_value, p.value_shape)


def _order_values(rng: np.random.Generator, orders: np.ndarray, mean: float,
                  shape: float) -> np.ndarray:
    """Sum of ``orders`` Gamma(shape, mean / shape) values (a Gamma(orders * shape) draw)."""
    safe = np.maximum(orders, 1) * shape
    return np.where(orders > 0, rng.gamma(safe, mean / shape), 0.0)


def _plan_media(rng: np.random.Generator, organic_total: float, p: MediaWorldParams):
    """Flighted spend, expected caused revenue (week, channel) and per-channel truth."""
    media_total = organic_total * p.paid_share / (1.0 - p.paid_share)
    split = np.asarray(p.revenue_split) / np.sum(p.revenue_split)
    spend = np.zeros((p.weeks, len(p.channels)))
    expected = np.zeros_like(spend)
    truth = {}
    for c, name in enumerate(p.channels):
        target = media_total * split[c]
        on_air = _flighting(rng, p.weeks, p.dark_share[c])
        raw = on_air * rng.lognormal(-p.spend_noise_sd ** 2 / 2, p.spend_noise_sd, p.weeks)
        spend[:, c] = np.round(raw * (target / p.roas[c]) / raw.sum(), 2)
        stock = _adstock(spend[:, c], p.adstock_decay[c])
        half = p.hill_half[c] * float(stock.mean())
        response = _hill(stock, half, p.hill_shape[c])
        beta = target / response.sum()
        expected[:, c] = beta * response
        bumped = _response(spend[:, c] * 1.01, decay=p.adstock_decay[c], half=half,
                           shape=p.hill_shape[c], beta=beta)
        truth[name] = {"decay": p.adstock_decay[c], "half_saturation": half,
                       "shape": p.hill_shape[c], "beta": float(beta),
                       "spend": float(spend[:, c].sum()),
                       "expected_revenue": float(expected[:, c].sum()),
                       "dark_weeks": int((spend[:, c] == 0).sum()),
                       "marginal_roas": float((bumped.sum() - expected[:, c].sum())
                                              / (0.01 * spend[:, c].sum()))}
    return spend, expected, truth


def _flighting(rng: np.random.Generator, n_weeks: int, dark_share: float) -> np.ndarray:
    """On-air weeks: alternating bursts (mean 5 weeks) and dark runs, random phase."""
    if dark_share <= 0:
        return np.ones(n_weeks)
    mean_off = 5.0 * dark_share / (1.0 - dark_share)
    runs = np.column_stack([1 + rng.poisson(4.0, n_weeks),
                            1 + rng.poisson(max(mean_off - 1, 0.0), n_weeks)]).ravel()
    pattern = np.repeat(np.tile([1.0, 0.0], n_weeks), runs)
    phase = int(rng.integers(0, 6))
    return pattern[phase:phase + n_weeks]


def _adstock(spend: np.ndarray, decay: float) -> np.ndarray:
    stock, carried = np.empty_like(spend, dtype=float), 0.0
    for week, amount in enumerate(spend):
        carried = amount + decay * carried
        stock[week] = carried
    return stock


def _hill(stock: np.ndarray, half: float, shape: float) -> np.ndarray:
    return stock ** shape / (stock ** shape + half ** shape)


def _response(spend: np.ndarray, *, decay: float, half: float, shape: float,
              beta: float) -> np.ndarray:
    return beta * _hill(_adstock(spend, decay), half, shape)


def _weeks_inside(weeks: pd.DatetimeIndex, start: str, end: str) -> np.ndarray:
    return ((weeks >= pd.Timestamp(start)) & (weeks <= pd.Timestamp(end))).astype(float)


def _communities(rng: np.random.Generator, active: np.ndarray, p: MediaWorldParams):
    """Active members (week, community), expected revenue they cause, and truth."""
    n_weeks, n_groups = p.weeks, len(p.communities)
    ramp = np.linspace(0.6, 1.2, n_weeks)
    events = 1.0 + 0.5 * (rng.random((n_weeks, n_groups)) < 0.08)
    mean = active[:, None] * np.asarray(p.member_share) * ramp[:, None] * events
    members = rng.poisson(mean).astype(float)
    lags = np.arange(8.0)
    weights = p.community_decay ** lags / (p.community_decay ** lags).sum()
    stock = np.zeros_like(members)
    for lag, w in enumerate(weights):
        stock[lag:] += w * members[: n_weeks - lag]
    expected = stock * np.asarray(p.member_week_revenue)
    truth = {name: {"incremental_revenue": float(expected[:, g].sum()),
                    "member_week_revenue": p.member_week_revenue[g],
                    "cost": p.community_cost_per_week[g] * n_weeks}
             for g, name in enumerate(p.communities)}
    return members, expected, truth


def _weekly_series(totals: pd.DataFrame, spend: np.ndarray, members: np.ndarray,
                   weeks: pd.DatetimeIndex, p: MediaWorldParams) -> WeeklySeries:
    spend_frame = pd.DataFrame(spend, index=weeks, columns=list(p.channels))
    active = pd.DataFrame(members, index=weeks, columns=list(p.communities))
    cost = pd.DataFrame(np.tile(p.community_cost_per_week, (len(weeks), 1)), index=weeks,
                        columns=list(p.communities))
    empty = pd.DataFrame(index=weeks)
    return WeeklySeries(totals=totals, spend=spend_frame, impressions=empty.copy(),
                        clicks=empty.copy(), members=(active * 2.5).round(),
                        active_members=active, activity=active * 3.0, cost=cost)


def _truth(p: MediaWorldParams, seed: int, *, spend, expected_media, organic, community,
           media_truth, community_truth) -> dict[str, Any]:
    paid = float(expected_media.sum())
    total = paid + float(organic.sum()) + float(community.sum())
    return {"seed": seed, "n_customers": p.n_customers, "weeks": p.weeks,
            "roas": {name: float(expected_media[:, c].sum() / spend[:, c].sum())
                     for c, name in enumerate(p.channels)},
            "marginal_roas": {name: media_truth[name]["marginal_roas"] for name in p.channels},
            "media_params": media_truth, "communities": community_truth,
            "paid_share_of_revenue": paid / total,
            "channel_share_of_revenue": {name: float(expected_media[:, c].sum() / total)
                                         for c, name in enumerate(p.channels)}}
