"""Retention revenue: the extra customer-months membership's lower churn hazard adds, in money.

Estimand (as ``retention_*_by_community`` in :func:`roi.simulate.simulate_world`'s truth): for
each member, from the day membership started (``J``, days since first seen) to the window's end
(``E``), the expected customer-days under the member hazard minus those under the counterfactual
non-member hazard (the member hazard divided by the hazard ratio), *given the member was a
customer at J*, whatever happened afterwards::

    extra_i = integral_J^E [S_i(t | J; HR_g) - S_i(t | J; 1)] dt,
    S_i(t | J; h) = exp(-h * exp(eta_i) * (Lambda0(t) - Lambda0(J)))

summed per community of first join, divided by 30.4375 for customer-months. ``Lambda0`` is a
piecewise-constant baseline (pieces of time since first seen), ``eta_i`` the member's covariate
linear predictor. Each piece has a closed form, so the cost is members x pieces per draw.

Hazard model, two sources:

* :class:`~roi.retention.bayes_survival.BayesianPiecewiseSurvival`: its posterior draws of baseline,
  covariate effects and community log-HRs, jointly; interval = 94% HDI.
* :class:`~roi.retention.cox_time_varying.CoxTimeVarying` fitted with ``community``: covariate
  coefficients at their estimates, community log-HRs drawn from Normal(coef, se) (parametric
  bootstrap), and for each draw the piecewise baseline that maximises the Poisson likelihood given
  them (``events_k / sum_rows days_rk exp(x_r beta + member_r theta_g)``, the Breslow estimator
  on pieces); point = the coefficient estimates; interval = 2.5-97.5% of the draws ("95% CI").

Money: each extra month of a member is valued at the member's **own revenue per active member
month** (panel rows with ``member`` and ``active``; the community's mean for a member with none)
**minus the revenue-lift ATT** of its community when given (``lift_att``): what a member spends per month without the lift, which the
lift estimate already counts. Without ``lift_att`` the value includes the lift (an upper bound).
The members' values are averaged with weights equal to their expected extra days (at the point
estimate, or the posterior mean; days lost when the hazard ratio is above 1), because the extra months come mostly from members with high
churn hazards, who spend less than the long-lived members that dominate member-month averages
(at 20,000 customers: 303 vs 370 per month). The weighted mean's standard error is drawn with
the hazard draws. Paid-media orders stay in the value unless ``shared_revenue_per_month`` takes
them out: in the simulated world they are a fixed pool shared among whoever is a customer (56 per
customer-month at 20,000 customers), so retention does not add them and the truth leaves them out.

The window end ``E`` is exact when ``end_day`` (customer_id -> days from first seen to the
window's last day, plus one: the ``stop`` scale) is given, e.g. from
:func:`window_end_days`; otherwise it is ``stop`` for customers still active, and for churned
members their ``stop`` plus the days from the middle of their churn month (panel ``churned``) to
the window's end (error at most half a month each; changes the total by under 1% at 20,000
customers).

Measured on a 20,000-customer world (seed 1; true lift ATT and paid-media share passed): extra
customer-months discord / forum 2,897 / 1,862 (Cox) and 2,855 / 1,902 (Bayes) against the true
2,849 / 2,009; retention revenue 714k / 465k (Cox) and 702k / 475k (Bayes) against 737k / 514k;
about 4 s for 200 draws.

Examples
--------
>>> import numpy as np
>>> extra = extra_days(np.array([0.0]), np.array([365.0]), bounds=np.array([0.0]),
...                    log_rate=np.log([[0.001]]), log_hr=np.log([0.7]))
>>> round(float(extra[0]), 2)  # (1 - e^-0.2555) / 0.0007 - (1 - e^-0.365) / 0.001
16.3
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from roi.results import CI95, HDI94
from roi.retention.bayes_survival import (
    DEFAULT_INTERVALS,
    BayesianPiecewiseSurvival,
    hdi_entry,
    pattern_columns,
    piece_exposure,
)
from roi.retention.cox_time_varying import CoxTimeVarying, design_matrix

DAYS_PER_MONTH = 30.4375


@dataclass
class HazardDraws:
    """Draws of a piecewise hazard for each member: the non-member log hazard per day is
    ``log_base`` (draws x pieces) + ``eta`` (draws or 1 x members), the member log-HR ``log_hr``
    (draws x members)."""

    bounds: np.ndarray
    log_base: np.ndarray
    eta: np.ndarray
    log_hr: np.ndarray
    point: int | None
    interval: str
    source: str


def extra_days(join: np.ndarray, end: np.ndarray, *, bounds: np.ndarray, log_rate: np.ndarray,
               log_hr: np.ndarray) -> np.ndarray:
    """Expected extra customer-days from ``join`` to ``end`` per member (one draw).

    ``log_rate`` is members x pieces (log non-member hazard per day in each piece), ``log_hr``
    one value per member. See the module docstring for an example.
    """
    return extra_days_in_segments(segment_lengths(join, end, bounds=bounds),
                                  rate=np.exp(log_rate), hazard_ratio=np.exp(log_hr))


def segment_lengths(join: np.ndarray, end: np.ndarray, *, bounds: np.ndarray) -> np.ndarray:
    """Days of ``(join, end]`` in each piece, members x pieces.

    Examples
    --------
    >>> segment_lengths(np.array([10.0]), np.array([50.0]), bounds=np.array([0.0, 30.0])).tolist()
    [[20.0, 20.0]]
    """
    lo = np.asarray(bounds, dtype=float)
    hi = np.append(lo[1:], np.inf)
    return (np.clip(hi, join[:, None], end[:, None])
            - np.clip(lo, join[:, None], end[:, None]))


def extra_days_in_segments(length: np.ndarray, *, rate: np.ndarray,
                           hazard_ratio: np.ndarray) -> np.ndarray:
    """Integral of member minus non-member survival over the segments (closed form per piece)."""

    def days_alive(r: np.ndarray) -> np.ndarray:
        used = r * length
        before = np.cumsum(used, axis=1) - used
        return (np.exp(-before) * -np.expm1(-used) / r).sum(axis=1)

    return days_alive(rate * hazard_ratio[:, None]) - days_alive(rate)


def window_end_days(first_seen: pd.Series, *, window_end: dt.date | str) -> pd.Series:
    """Days from first seen to the window's last day, plus one (the ``stop`` of a survivor).

    Examples
    --------
    >>> window_end_days(pd.Series(["2024-12-01"], index=["C1"]), window_end="2024-12-31").tolist()
    [31]
    """
    end = pd.Timestamp(window_end)
    return (end - pd.to_datetime(first_seen)).dt.days + 1


def member_rows(table: pd.DataFrame, *, panel: pd.DataFrame | None,
                end_day: pd.Series | None, id_col: str = "customer_id",
                community: str = "community") -> pd.DataFrame:
    """One row per member: its member row of the start-stop table plus ``join`` and ``end``."""
    position = np.flatnonzero(table["member"].to_numpy() == 1)
    rows = table.iloc[position].assign(row=position).drop_duplicates(id_col).set_index(id_col)
    rows["join"] = rows["start"].astype(float)
    rows[community] = rows[community].astype("string").fillna("(unknown)")
    if end_day is not None:
        rows["end"] = end_day.reindex(rows.index).astype(float).to_numpy()
    else:
        rows["end"] = rows["stop"].astype(float) + _days_after_churn(rows, panel, id_col=id_col)
    if rows["end"].isna().any():
        raise ValueError(f"end_day: missing for {int(rows['end'].isna().sum())} member(s)")
    return rows


def _days_after_churn(rows: pd.DataFrame, panel: pd.DataFrame | None, *,
                      id_col: str) -> np.ndarray:
    churned = rows["event"].to_numpy() == 1
    if not churned.any():
        return np.zeros(len(rows))
    if panel is None:
        raise ValueError("retention_revenue needs end_day or the panel for churned members")
    last = pd.Timestamp(panel["month"].max()) + pd.offsets.MonthEnd(0)
    month = panel.loc[panel["churned"].astype(bool)].drop_duplicates(id_col).set_index(id_col)
    churn_mid = pd.to_datetime(month["month"].reindex(rows.index)) + pd.Timedelta(days=14)
    gap = (last - churn_mid).dt.days.to_numpy(dtype=float)
    return np.where(churned, np.nan_to_num(gap, nan=0.0), 0.0)


def term_indicators(frame: pd.DataFrame, *, names: Sequence[str]) -> np.ndarray:
    """Columns ``name[level]`` (1 where the category equals ``level``) for given term names.

    Examples
    --------
    >>> term_indicators(pd.DataFrame({"plan": ["a", "b"]}), names=["plan[b]"]).tolist()
    [[0.0], [1.0]]
    """
    columns = []
    for term in names:
        name, _, level = term.partition("[")
        columns.append((frame[name].astype("string") == level[:-1]).to_numpy(dtype=float))
    return np.column_stack(columns) if columns else np.zeros((len(frame), 0))


def bayes_hazard_draws(model: BayesianPiecewiseSurvival, members: pd.DataFrame, *,
                       community: str, max_draws: int = 400, seed: int = 0) -> HazardDraws:
    """Joint posterior draws for each member (at most ``max_draws``, thinned at random)."""
    post = model.idata_.posterior.stack(sample=("chain", "draw"))
    n = post.sizes["sample"]
    pick = np.sort(np.random.default_rng(seed).choice(n, size=min(n, max_draws), replace=False))
    alpha = post["alpha"].to_numpy()[:, pick].T                      # draws x pieces
    beta = post["beta"].to_numpy().reshape(-1, n)[:, pick].T         # draws x terms
    theta = post["theta"].to_numpy()[:, pick].T                      # draws x communities
    cats, _ = pattern_columns(members, covariates=model.covariates_, edges=model.edges_)
    X = term_indicators(cats, names=model.term_names_)
    group = pd.Categorical(members[community], categories=model.groups_).codes
    if (group < 0).any():
        raise ValueError("members in a community the model did not see")
    eta = beta @ X.T                                                  # draws x members
    return HazardDraws(bounds=np.asarray(getattr(model, "intervals_days_", model.intervals_days),
                                         dtype=float),
                       log_base=alpha, eta=eta, log_hr=theta[:, group],
                       point=None, interval=HDI94, source=model.method)


def cox_hazard_draws(model: CoxTimeVarying, table: pd.DataFrame, members: pd.DataFrame, *,
                     covariates: Sequence[str], community: str,
                     intervals_days: Sequence[float] = DEFAULT_INTERVALS, n_draws: int = 400,
                     seed: int = 0) -> HazardDraws:
    """Community log-HRs drawn from the Cox fit; piecewise Breslow baseline for each draw.

    Draw 0 is the point estimate (coefficients as fitted).
    """
    coefs = model.result_.tables.get("coefficients_by_community")
    if coefs is None:
        raise ValueError("fit CoxTimeVarying with community=... to value retention")
    beta = coefs.loc[[t for t in coefs.index if not t.startswith("member:")], "coef"]
    design, _ = design_matrix(table, columns=covariates)
    eta_rows = design[beta.index].to_numpy(float) @ beta.to_numpy()
    bounds = np.asarray(intervals_days, dtype=float)
    days, piece = piece_exposure(table["start"].to_numpy(), table["stop"].to_numpy(),
                                 bounds=bounds)
    events = np.bincount(piece, weights=table["event"].to_numpy(float), minlength=len(bounds))
    groups = sorted(t.split(":", 1)[1] for t in coefs.index if t.startswith("member:"))
    label = np.where(table["member"].to_numpy() == 1,
                     table[community].astype("string").fillna("(unknown)"), "")
    weighted = days * np.exp(eta_rows)[:, None]
    base = weighted[label == ""].sum(axis=0)
    by_group = np.vstack([weighted[label == g].sum(axis=0) for g in groups])  # groups x pieces
    rng = np.random.default_rng(seed)
    mean = coefs.loc[[f"member:{g}" for g in groups], "coef"].to_numpy()
    se = coefs.loc[[f"member:{g}" for g in groups], "se"].to_numpy()
    theta = mean + se * rng.standard_normal((n_draws, len(groups)))
    theta[0] = mean
    # A refused community's coefficient is not identified (one member, no churn): its standard
    # error is huge and its draws overflow the baseline of every community. Hold it at its
    # point estimate; retention_revenue reports no money for it.
    refused = [bool(model.result_.by_group.get(g, {}).get("refused")) for g in groups]
    theta[:, refused] = mean[refused]
    alpha = np.log(events) - np.log(base + np.exp(theta) @ by_group)  # draws x pieces
    group = pd.Categorical(members[community], categories=groups).codes
    return HazardDraws(bounds=bounds, log_base=alpha,
                       eta=eta_rows[members["row"].to_numpy()][None, :],
                       log_hr=theta[:, group], point=0, interval=CI95, source=model.method)


def member_values(panel: pd.DataFrame, *, lift_att: float | Mapping[str, float] | None,
                  id_col: str = "customer_id", community: str = "community") -> pd.DataFrame:
    """Each member's revenue per active member-month, minus the lift ATT of its community.

    ``months`` is how many active member-months the mean rests on (0: the member has none, and
    the community's mean per active member-month stands in).

    Examples
    --------
    >>> panel = pd.DataFrame({"customer_id": [1, 1, 2, 3], "revenue": [10.0, 20.0, 30.0, 0.0],
    ...                       "member": [True, True, True, True],
    ...                       "active": [True, True, True, False], "community": ["a"] * 4})
    >>> member_values(panel, lift_att={"a": 5.0})["value"].tolist()
    [10.0, 25.0, 15.0]
    """
    # Only the columns used, the community as categorical codes: 4M member rows at 1M customers
    rows = panel.loc[panel["member"].astype(bool), [id_col, community, "active", "revenue"]]
    names = rows[community].astype("category")
    if "(unknown)" not in names.cat.categories:
        names = names.cat.add_categories("(unknown)")
    names = names.fillna("(unknown)")
    active = rows["active"].astype(bool).to_numpy()
    per = pd.DataFrame({"community": names.groupby(rows[id_col], observed=True).first()
                                          .astype("string"),
                        "revenue": rows["revenue"].where(active, 0.0).groupby(
                            rows[id_col], observed=True).sum(),
                        "months": pd.Series(active, index=rows.index).groupby(
                            rows[id_col], observed=True).sum().astype(float)})
    totals = per.groupby("community")[["revenue", "months"]].sum()
    fallback = (totals["revenue"] / totals["months"]).reindex(per["community"]).to_numpy()
    own = per["revenue"] / per["months"].where(per["months"] > 0)
    lift = per["community"].map(lambda g: lift_att.get(g, 0.0) if isinstance(lift_att, Mapping)
                                else float(lift_att or 0.0)).astype(float)
    per["value"] = own.fillna(pd.Series(fallback, index=per.index)) - lift
    return per


def weighted_value(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Weighted mean of per-member values and its standard error (independent members).

    Weights that sum to zero (no member gains or loses a day: hazard ratio 1) fall back to
    equal weights instead of giving NaN.

    Examples
    --------
    >>> mean, se = weighted_value(np.array([1.0, 3.0]), np.array([1.0, 1.0]))
    >>> mean, round(se, 3)
    (2.0, 0.707)
    >>> weighted_value(np.array([1.0, 3.0]), np.zeros(2))[0]
    2.0
    """
    total = weights.sum()
    w = weights / total if total > 0 else np.full(len(values), 1.0 / max(len(values), 1))
    mean = float(w @ values)
    return mean, float(np.sqrt((w**2 * (values - mean) ** 2).sum()))


def _community_values(panel: pd.DataFrame, members: pd.DataFrame, *, extra: np.ndarray,
                      group: np.ndarray, names: list[str], lift_att: Any, id_col: str,
                      community: str) -> pd.DataFrame:
    """Value per extra month per community: member values weighted by their extra days."""
    per = member_values(panel, lift_att=lift_att, id_col=id_col, community=community)
    values = per["value"].reindex(members.index)
    if values.isna().any():
        fallback = per.groupby("community")["value"].mean()
        values = values.fillna(members[community].map(fallback)).fillna(per["value"].mean())
    rows = {}
    for i, name in enumerate(names):
        mine = group == i
        # |extra|: at a hazard ratio above 1 every member *loses* days, and those lost months
        # are valued like gained ones (clipping at 0 left no weight and a NaN value).
        mean, se = weighted_value(values.to_numpy()[mine], np.abs(extra[mine]))
        rows[name] = {"value": mean, "se": se, "members_valued": int(mine.sum())}
    return pd.DataFrame(rows).T.astype(float)


def _summarise(draws: np.ndarray, *, point: int | None, interval: str) -> dict[str, Any]:
    if interval == HDI94:
        entry = hdi_entry(draws)
        return {"estimate": entry["hazard_ratio"], "low": entry["low"], "high": entry["high"],
                "interval": HDI94}
    low, high = np.percentile(draws, [2.5, 97.5])
    estimate = draws[point] if point is not None else draws.mean()
    return {"estimate": float(estimate), "low": float(low), "high": float(high),
            "interval": CI95}


def refused_money(reason: str) -> dict[str, Any]:
    """What :func:`retention_revenue` returns when the hazard model refused to estimate: no
    numbers (null, never zero: zero would read as 'no retention value') and the reason."""
    empty = {"estimate": None, "low": None, "high": None, "interval": None}
    return {"by_community": {}, "source": None, "interval": None, "value": [],
            "total": {"extra_customer_months": dict(empty), "revenue": dict(empty)},
            "refused": "retention revenue not estimated: "
                       + reason.removeprefix("not estimated: ")}


def retention_revenue(table: pd.DataFrame, panel: pd.DataFrame, *,
                      model: CoxTimeVarying | BayesianPiecewiseSurvival,
                      covariates: Sequence[str] | None = None, community: str = "community",
                      lift_att: float | Mapping[str, float] | None = None,
                      end_day: pd.Series | None = None, shared_revenue_per_month: float = 0.0,
                      n_draws: int = 200, seed: int = 0,
                      id_col: str = "customer_id") -> dict[str, Any]:
    """Extra customer-months and retention revenue per community and in total, with intervals.

    Parameters
    ----------
    table, panel : DataFrame
        The start-stop table and the customer-month panel of the same dataset.
    model : CoxTimeVarying or BayesianPiecewiseSurvival
        Fitted on ``table`` with ``community=community`` (and, for Cox, ``covariates``).
    covariates : sequence of str, optional
        The Cox model's covariates (the Bayesian model remembers its own).
    lift_att : float or dict, optional
        Revenue-lift ATT per member-month (per community) to take out of the value.
    end_day : Series, optional
        customer_id -> days from first seen to the window's last day + 1 (exact window ends).
    shared_revenue_per_month : float
        Revenue per customer-month that a customer's staying does not add (a fixed pool shared
        by whoever is a customer, e.g. paid-media orders in the simulated world); subtracted
        from the value of an extra month.
    n_draws, seed : int
        Draws of the hazard model (parametric bootstrap for Cox, posterior for Bayes).

    Returns
    -------
    dict
        ``by_community``: ``{name: {"extra_customer_months": {estimate, low, high, interval},
        "revenue": {...}, "members": n, "value_per_month": v}}``, ``total`` (same two entries),
        ``interval``, ``source``, ``value`` (the per-community value table as records).

    Examples
    --------
    See ``tests/test_retention_value.py``.
    """
    if getattr(model, "refused_", None):
        return refused_money(model.refused_)
    members = member_rows(table, panel=panel, end_day=end_day, id_col=id_col,
                          community=community)
    # A community whose hazard ratio the model refused (e.g. one member, no churn) has no
    # identified hazard: its draws overflow and would turn every interval into NaN.
    refused = {name: entry["refused"] for name, entry in model.result_.by_group.items()
               if isinstance(entry, Mapping) and entry.get("refused")}
    left_out = members[community].isin(list(refused))
    if left_out.all():
        return refused_money("the hazard ratio of every community was refused")
    counts = members.loc[left_out, community].value_counts()
    out = _retention_money(members[~left_out], model=model, table=table, panel=panel,
                           covariates=covariates, community=community, lift_att=lift_att,
                           shared_revenue_per_month=shared_revenue_per_month,
                           n_draws=n_draws, seed=seed, id_col=id_col)
    empty = {"estimate": None, "low": None, "high": None, "interval": None}
    for name, reason in refused.items():
        out["by_community"][name] = {
            "extra_customer_months": dict(empty), "revenue": dict(empty),
            "members": int(counts.get(name, 0)),
            "refused": "retention revenue not estimated: "
                       + reason.removeprefix("not estimated: ")}
    if refused:
        out["total"]["left_out"] = sorted(refused)
    return out


def _retention_money(members: pd.DataFrame, *, model, table: pd.DataFrame,
                     panel: pd.DataFrame, covariates: Sequence[str] | None, community: str,
                     lift_att: float | Mapping[str, float] | None,
                     shared_revenue_per_month: float, n_draws: int, seed: int,
                     id_col: str) -> dict[str, Any]:
    """:func:`retention_revenue` on the members of the communities with a hazard ratio."""
    if isinstance(model, BayesianPiecewiseSurvival):
        hazard = bayes_hazard_draws(model, members, community=community, max_draws=n_draws,
                                    seed=seed)
    else:
        hazard = cox_hazard_draws(model, table, members, covariates=covariates or (),
                                  community=community, n_draws=n_draws, seed=seed)
    names = sorted(members[community].unique())
    group = pd.Categorical(members[community], categories=names).codes
    length = segment_lengths(members["join"].to_numpy(float), members["end"].to_numpy(float),
                             bounds=hazard.bounds)
    months = np.zeros((len(hazard.log_base), len(names)))
    point_extra = np.zeros(len(members))
    base, scale, ratio = np.exp(hazard.log_base), np.exp(hazard.eta), np.exp(hazard.log_hr)
    for d in range(len(base)):
        rate = base[d][None, :] * scale[min(d, len(scale) - 1)][:, None]
        extra = extra_days_in_segments(length, rate=rate, hazard_ratio=ratio[d])
        months[d] = np.bincount(group, weights=extra, minlength=len(names)) / DAYS_PER_MONTH
        if hazard.point is None or d == hazard.point:
            point_extra += extra / (1 if hazard.point is not None else len(hazard.log_base))
    value = _community_values(panel, members, extra=point_extra, group=group, names=names,
                              lift_att=lift_att, id_col=id_col, community=community)
    rng = np.random.default_rng(seed + 1)
    value["value"] -= shared_revenue_per_month
    per_month = value["value"].to_numpy() + value["se"].to_numpy() * rng.standard_normal(
        months.shape)
    if hazard.point is not None:
        per_month[hazard.point] = value["value"].to_numpy()
    revenue = months * per_month
    summary = {"interval": hazard.interval, "point": hazard.point}
    out = {"by_community": {}, "source": hazard.source, "interval": hazard.interval,
           "value": value.reset_index(names="community").to_dict("records")}
    for i, name in enumerate(names):
        out["by_community"][name] = {
            "extra_customer_months": _summarise(months[:, i], **summary),
            "revenue": _summarise(revenue[:, i], **summary),
            "members": int((group == i).sum()), "value_per_month": float(value["value"].iloc[i])}
    out["total"] = {"extra_customer_months": _summarise(months.sum(axis=1), **summary),
                    "revenue": _summarise(revenue.sum(axis=1), **summary)}
    return out
