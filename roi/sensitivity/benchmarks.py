"""Observed benchmarks for the robustness value: how strong is each observed covariate?

Cinelli & Hazlett (2020, section 6) bound a hidden confounder by comparison with an observed
one: "a hidden factor ``k`` times as strong as ``plan``" is a factor whose partial R2 with the
treatment is ``k`` times ``plan``'s (given the other covariates) and with the outcome ``k``
times ``plan``'s (given the treatment and the other covariates).
:func:`roi.sensitivity.omitted_variable.ovb_bounds` turns those two partial R2s into the
adjusted estimate; this module measures them for the toolkit's design.

What the regression is, here. Regression adjustment and AIPW (``roi/revenue_lift/``) compare,
per join cohort ``g``, members with pre-join history against never-members over the same
calendar window, and impute each member-month's untreated revenue as the customer's own
pre-join mean ``H`` plus month effects plus covariates. A static covariate's effect on the
*level* of revenue is therefore differenced out; what a covariate (or a hidden factor) can
still bias is the *change* after ``g``. So the benchmark regressions, on the same stacked
design (same ``lookback`` and ``min_history``), are per unit of each cohort's comparison:

* outcome: the unit's mean over its observed months from ``g`` on of ``y - H - c_t`` (``c_t``
  the controls' mean of ``y - H`` in month ``t``: the month effects), regressed on membership
  of the cohort, the covariates and cohort fixed effects;
* treatment: membership of the cohort on the covariates and cohort fixed effects (a linear
  probability model, as sensemakr's ``lm``).

A categorical covariate is one benchmark (its dummies as a group: partial R2 from the residual
sums of squares with and without them). The **pre-join revenue** (the history features the
designs build: mean, its square root and ``log1p``, months observed) is the further benchmark
``"pre-join revenue"``: it is no regressor of the adjustment (it is its baseline), so its
partial R2s come from the same regressions with the history added. It is the best observed
proxy of the trait members select on, so "as strong as the pre-join revenue" is the stern
benchmark: much of its partial R2 with the change is regression to the mean of a baseline
averaged over a few noisy months (sample: 0.32; three months of unit-variance noise: 0.55),
which a hidden factor would not share. The covariates, which the simulated worlds let shift
only the level, are the mild one (sample: all partial R2s below 0.002).

Approximation (as for the robustness value itself): the partial R2s come from these unit-level
OLS regressions while the estimate's t-statistic uses the estimator's cluster-robust SE.
Customers beyond :data:`MAX_CUSTOMERS` are subsampled (seeded) before the design is built: the
partial R2s are shares of variance, which a random subsample estimates well.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(3)
>>> n = 400
>>> plan = rng.choice(["basic", "pro"], n)
>>> g = np.where(rng.random(n) < np.where(plan == "pro", 0.5, 0.2), 4.0, np.nan)
>>> rows = pd.DataFrame([(i, t) for i in range(n) for t in range(1, 7)], columns=["id", "t"])
>>> rows["g"], rows["plan"] = g[rows["id"]], plan[rows["id"]]
>>> rows["y"] = 10 + 2.0 * (rows["t"] >= rows["g"]) + rng.normal(0, 1, len(rows))
>>> table = benchmark_partial_r2(rows, unit="id", time="t", group="g", outcome="y",
...                              covariates=["plan"])
>>> table["benchmark"].tolist()
['plan', 'pre-join revenue']
>>> member = ~np.isnan(g)   # one cohort, one covariate: the squared correlation
>>> [round(float(v), 4) for v in (table.loc[0, "r2_membership"],
...                                np.corrcoef(member, plan == "pro")[0, 1]**2)]
[0.0462, 0.0462]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from roi.revenue_lift.regression_adjustment import (
    HISTORY,
    CohortStack,
    StackedDesign,
    stacked_design,
)

PRE_JOIN_REVENUE = "pre-join revenue"
"""Label of the history benchmark."""
MAX_CUSTOMERS = 50_000
"""Customers the benchmark regressions use at most (a seeded random subsample beyond)."""


def benchmark_partial_r2(data: pd.DataFrame, *, unit: str, time: str, group: str, outcome: str,
                         covariates: list[str], active: str | None = None, lookback: int = 12,
                         min_history: int = 1, seed: int = 0) -> pd.DataFrame:
    """Per benchmark (each covariate, then the pre-join revenue): ``r2_membership`` (partial
    R2 with membership given the other covariates) and ``r2_revenue`` (with the post-join
    change in revenue given membership and the other covariates), ``terms`` (columns in the
    group) and ``rows`` (unit rows of the regressions). Empty without any comparison."""
    data = _subsample(data, unit=unit, seed=seed)
    design = stacked_design(data, unit=unit, time=time, group=group, outcome=outcome,
                            covariates=covariates, active=active, lookback=lookback,
                            min_history=min_history)
    return benchmark_table(design, covariates=covariates)


def benchmark_table(design: StackedDesign, *, covariates: list[str]) -> pd.DataFrame:
    """:func:`benchmark_partial_r2` of a stacked design (of the customers it keeps)."""
    columns: list[str] = ["benchmark", "r2_membership", "r2_revenue", "terms", "rows"]
    if not design.cohorts or design.lookback < 1:
        return pd.DataFrame(columns=columns)
    treated, features, change, cohort = _unit_rows(design.stacks())
    if treated.sum() < 2 or (~treated).sum() < 2:
        return pd.DataFrame(columns=columns)
    n_covariates = len(design.feature_names) - len(HISTORY)
    names = design.feature_names[:n_covariates]
    groups = {c: [i for i, name in enumerate(names) if _owner(name, covariates) == c]
              for c in covariates}
    groups = {c: index for c, index in groups.items() if index}
    history = list(range(n_covariates, features.shape[1]))
    d, y = _within(treated.astype(float)[:, None], cohort)[:, 0], _within(change[:, None],
                                                                          cohort)[:, 0]
    x = _within(features, cohort)
    covs = list(range(n_covariates))
    rows = []
    for label, index in [*groups.items(), (PRE_JOIN_REVENUE, history)]:
        base = covs if label != PRE_JOIN_REVENUE else covs + history
        others = [i for i in base if i not in index]
        rows.append({"benchmark": label,
                     "r2_membership": _partial_r2(d, x[:, others], x[:, index]),
                     "r2_revenue": _partial_r2(y, np.column_stack([d, x[:, others]]),
                                               x[:, index]),
                     "terms": len(index), "rows": len(d)})
    return pd.DataFrame(rows, columns=columns)


def _subsample(data: pd.DataFrame, *, unit: str, seed: int) -> pd.DataFrame:
    keep = sampled_units(data[unit].unique(), seed=seed)
    return data if keep is None else data[data[unit].isin(keep)]


def sampled_units(units: Any, *, seed: int) -> np.ndarray | None:
    """The customers the regressions keep (``units``: the data's distinct customers, in order
    of appearance), or None for all of them."""
    if len(units) <= MAX_CUSTOMERS:
        return None
    return np.random.default_rng(seed).choice(units, MAX_CUSTOMERS, replace=False)


def _owner(name: str, covariates: list[str]) -> str | None:
    """The covariate a design column belongs to (``plan_pro`` -> ``plan``; the longest
    matching name, so that ``region`` and ``region_code`` stay apart)."""
    owners = [c for c in covariates if name == c or name.startswith(f"{c}_")]
    return max(owners, key=len) if owners else None


def _unit_rows(stacks) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per unit of every cohort's comparison with a post month: membership, features, mean
    post-join change ``y - H - c_t`` and the cohort's number."""
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for number, stack in enumerate(stacks):
        parts.append(_stack_rows(stack, number))
    treated, features, change, cohort = (np.concatenate([p[i] for p in parts])
                                         for i in range(4))
    return treated.astype(bool), features, change, cohort


def _stack_rows(stack: CohortStack, number: int) -> tuple[np.ndarray, ...]:
    change = stack.outcome - stack.level[:, None]
    control = stack.control_cells
    counts = control.sum(axis=0)
    month = np.where(counts > 0, np.where(control, change, 0.0).sum(axis=0)
                     / np.maximum(counts, 1), 0.0)
    usable = stack.observed & (counts > 0)[None, :]
    months = usable.sum(axis=1)
    keep = months > 0
    mean = np.where(usable, change - month[None, :], 0.0).sum(axis=1)[keep] / months[keep]
    return (stack.treated[keep], stack.features[keep], mean,
            np.full(int(keep.sum()), number))


def _within(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Columns minus their group means (cohort fixed effects, by Frisch-Waugh-Lovell)."""
    frame = pd.DataFrame(values)
    return (frame - frame.groupby(groups).transform("mean")).to_numpy(float)


def _rss(y: np.ndarray, x: np.ndarray) -> float:
    """Residual sum of squares of OLS of ``y`` on ``x``, by the normal equations (a few
    columns over many rows; the pseudo-inverse tolerates an all-zero dummy)."""
    if x.shape[1] == 0:
        return float(y @ y)
    xty = x.T @ y
    beta = np.linalg.pinv(x.T @ x) @ xty
    return float(max(y @ y - beta @ xty, 0.0))


def _partial_r2(y: np.ndarray, others: np.ndarray, group: np.ndarray) -> float:
    """Partial R2 of ``group`` with ``y`` given ``others``: the share of the residual sum of
    squares without the group that the group removes (``t^2 / (t^2 + dof)`` for one column)."""
    reduced = _rss(y, others)
    full = _rss(y, np.column_stack([others, group]))
    return float(max(reduced - full, 0.0) / reduced) if reduced > 0 else 0.0
