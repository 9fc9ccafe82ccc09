"""Community revenue lift, Bayesian: a hierarchical log-link model on customer-month cells.

Cells
-----
Active customer-months (the contract's member-month condition) are summed into cells of
**join cohort** (month of joining; never-members are their own cohort) x **first-seen cohort**
(first month of the customer) x **last-seen month** (the customer's last month in the window:
churn month or the window's end) x **community** x **covariate pattern** x **calendar month**,
keeping ``n`` (customer-months), the sum and the sum of squares of revenue. The cost of
sampling grows with the number of cells, which is bounded by the calendar, not by customers.

Why these keys (measured; see ``/work/shared/FINDINGS.md`` for the rule "compare each join
cohort with itself"). Members self-select on a stable trait, so every cell group
``(join cohort, first-seen cohort, community)`` gets its own level and the lift is identified by
each group's change after joining against the calendar-month effects. Join cohort alone is not
enough when customers arrive over the window: before joining, a join cohort's cells fill up with
later arrivals, who are more selected (a customer who stayed a non-member for long has a lower
trait), so its pre-join mean drifts up and the lift is overstated (76.6 against the truth 36.3 on
the bundled sample, 68.4 against 34.9 on a 20,000-customer world). Adding the first-seen cohort
fixes the membership of each group but not churn: non-members churn, members cannot churn before
they join, and churn depends on covariates that also drive revenue, so the calendar effects
would carry the non-members' survivor drift (27.2 against 34.9). Covariate patterns in the cells
(``covariates``, e.g. segment and plan) remove it: 36.1 against 34.9 (discord 44.9/42.3, forum
22.7/23.5), from a quasi-Poisson maximum-likelihood fit of the same mean model. But patterns
remove only the drift that observed covariates explain: when churn depends on the hidden trait
too (engaged customers churn less and join more), or simply because the never-members of a
first-seen cohort mix customers who churn early (before they could join; less selected) with
customers who stay and never join (low trait), a group's surviving customers become more or
less engaged month after month, the calendar effects absorb that drift and the lift appears to
grow with time since joining (``kappa`` ran to about 4 months against the simulator's 1.44, and
the lift was overstated: 50.1 against the truth 35.5 on a 20,000-customer world, HDI missing it).
The **last-seen month** key makes every group's membership fixed over its whole life (everyone
in it is present from its first to its last month), so composition cannot drift and each
group's level absorbs its hidden trait: 43.2 (34.2-52.2) on the same world, where the additive
DiD gives 47.0 (that seed's data run high). The test bed (``roi/testbed.py``,
``tests/test_testbed.py``) checks it over seeds, with churn that depends on the hidden trait.
Groups multiply (the level of each is integrated out, so the sampler's dimension does not).

Mean model (cell ``j`` of group ``g``, pattern ``x``, calendar month ``t``, months since joining
``e``; revenue is multiplicative, seasonality scales with a customer's level)::

    log mu_j = a[g] + gamma[t] + beta[x] + member_j * tau[c, s] * (1 - exp(-(e + 1) / kappa))
    a[g]      flat on the log scale, integrated out (below)   # one level per group
    gamma[t]  ~ Normal(0, 1), gamma[first month] = 0
    beta[x]   ~ Normal(0, 1), beta[most frequent pattern] = 0
    tau[c]    ~ Normal(mu_tau, sigma_tau)          # partial pooling (sampled centred, mu_tau
    mu_tau    ~ Normal(0, 0.3)                     #   integrated out; see _tau)
    sigma_tau ~ LogNormal(log 0.1, 0.5)            # boundary-avoiding: 2-3 communities
    kappa     ~ LogNormal(log 2, 0.5)              # build-up time scale, months (0.75-5.3)
    (segment) tau[c, s] = tau[c] + sigma_seg * w[c, s], sigma_seg ~ HalfNormal(0.1)

``e`` is 0 in the month of joining, so the build-up is ``1 - exp(-1/kappa)`` there. The
``kappa`` prior says "the effect builds up over a few months, not years": on 3,000 customers a
LogNormal(log 2, 1) let ``kappa`` drift to 9 months with a large ``tau`` (a near-linear ramp)
and overstated the lift (47.8 against 36.3).

Likelihood (customer heterogeneity)
-----------------------------------
A customer's monthly revenue is a compound Poisson sum of order values mixed over customers'
levels: skewed, with zero months and refunds, so many small cells are zero or tiny. A Normal
on the cell mean with a variance tied to ``mu`` biases the mean through its ``log sigma`` term
and a Gamma cannot take zero cells. The model uses the **quasi-Poisson** likelihood of the cell
sums, ``sum_j (total_j * log mu_j - n_j * mu_j) / phi``: its score is unbiased for any
distribution with the mean model above, and it is the likelihood whose group levels can be
integrated out exactly. With a flat prior on each ``a[g]``, integrating it out leaves the
conditional (multinomial) form, a ``pm.Potential``::

    log L = (sum_j total_j * r_j - sum_g S_g * log sum_{j in g} n_j * exp(r_j)) / phi

(``r_j`` = ``log mu_j - a[g]``, ``S_g`` the group's revenue; groups with ``S_g <= 0`` are left
out), so the sampler sees about 35 parameters however many groups there are (a first version
that sampled the 402 levels of the bundled sample took 120 s for 2 x 300 draws and did not
converge). For the currency lift each draw takes the level from its conditional posterior
``exp(a[g]) ~ Gamma(S_g / phi, rate = sum_{j in g} n_j exp(r_j) / phi)``.

``phi`` (variance over mean of a customer-month) is estimated from the **within-cell** sums of
squares, ``sum SS_j / sum (n_j - 1) ybar_j`` over cells with two or more customer-months and a
positive mean: the spread between customer-months, customer heterogeneity included. The
posterior is then approximately normal around the quasi-likelihood estimate with covariance
``phi`` times the inverse Fisher information. A customer's months fall in one group, whose level
absorbs the customer's own; ``diagnostics.checks["phi_pearson"]`` (Pearson dispersion left at
the posterior mean) shows how much: 424 against ``phi`` 501 on the bundled sample, 408 against
441 on a 4,000-customer world, so the intervals are slightly conservative. Serial correlation
of a customer's months beyond its level (none in the simulator) would make them optimistic.

Currency
--------
Per posterior draw, the lift of a member cell is ``n_j * (mu_j - mu_j * exp(-effect_j))``:
actual (modelled) minus the same cell without membership. The ATT per member-month is their sum
over member cells divided by the member-months; per community and per event time likewise.
Members with no pre-join month (joined in their first month) enter the ATT with the effect learnt
from the others. Point estimates are posterior means, intervals 94% HDIs.

Measured (2 cores; ``covariates=["segment", "plan"]``; defaults 4 x 1000 draws, 500 tuning
steps, ``target_accept`` 0.9, JAX)
-------------------------------------------------------------------------------------------
Bundled sample (3,000 customers, 35,449 active customer-months -> 12,156 cells, 402 groups),
total revenue: ATT 36.9 (94% HDI 12.7-57.7) against the truth 36.3 and the naive gap 171.5;
discord 42.6 (truth 43.9), forum 27.4 (truth 23.6); no divergence, 9.9 leapfrog steps per draw,
20 s sampling. Simulated 20,000 customers (33,500 cells), ``organic_revenue`` (what ``roi run``
fits, see :data:`roi.revenue_lift.block.MULTIPLICATIVE_OUTCOME`): seed 2 32.1 (23.0-41.2) against 34.9, seed 1
50.2 (41.1-58.8) against 35.5 (the HDI misses; the additive DiD gives 47.0 (31.7-62.3) there);
about 37 s including a 1.5 s compile (``benchmarks/revenue_lift.py``). Before the
reparametrisation of :func:`_tau` the same fit needed ``target_accept`` 0.99 and took 148 s.
(These figures predate the last-seen key, which made 15,758 cells of the sample and 49,489 of
the seed-1 world; that world's current figures are in the next paragraph.) Caveat: ``kappa`` comes out at about 4 months where the simulator's build-up is
``1 - 0.5 ** (e + 1)`` (``kappa`` 1.44), and a free share for the month of joining did not
move it (3.9), so the lift is estimated to build up too slowly and to reach a higher plateau.

Measured, hand-written kernel against PyMC's graph (issue 21; ``benchmarks/bayes_revenue_logp.py``,
``world_20000_1``, 49,489 cells, 4 x 1000 draws after 1000 tuning steps; the 2 cores were
shared with other jobs, so CPU seconds are the steadier figure): the same posterior, ATT 43.1
(33.5-51.9) against 43.2 (34.4-53.1) through JAX (truth 35.5), about 67,000 leapfrog steps
either way (7.2-7.3 per draw, no divergence). A density + gradient costs 164 us of CPU in the
kernel against about 1.7 ms per step through PyMC and JAX (a Python callback into XLA per
step); the fit took 22 s wall and 15 s CPU (sampling 16 s wall) against 98 s wall and 117 s
CPU (sampling 93 s). The currency lift per draw (:func:`lift_sums`, 8,000 draws x 49,489
cells) went from about 17 s of numpy to a numba pass of a few seconds. numba compiles the
kernels once per installation (3.4 s of CPU) and caches them on disk (0.5 s to load, numba's
import included). ``roi run`` on that world: 45 s of CPU (59 s wall) against 147 s with
``ROI_REVENUE_LOGP=pytensor``.

Sampler and gate: nutpie, by default on the hand-written numba density of
:mod:`roi.revenue_lift.fast_logp` (:func:`logp_backend`; no PyMC graph is built or compiled);
``ROI_REVENUE_LOGP=pytensor`` samples PyMC's graph with the backend of
:mod:`roi.inference.nuts` (JAX: compiled per fit in about 2 s; numba: compiled once per
structure, cells swapped in as data); ``diagnostics.checks["logp_backend"]`` says which.
Without nutpie, PyMC NUTS on the graph. :func:`roi.checks.convergence.convergence_gate` on
every sampled parameter; a failed gate sets ``diagnostics.converged = False`` with warnings.

Examples
--------
>>> import pandas as pd
>>> rows = pd.DataFrame({"id": [1, 1, 1, 2, 2, 2], "t": [1, 2, 3, 1, 2, 3],
...                      "g": [2, 2, 2, None, None, None], "y": [10., 12., 14., 5., 6., 7.],
...                      "community": ["a", "a", "a", None, None, None],
...                      "active": [True] * 6})
>>> cells = revenue_cells(rows, unit="id", time="t", group="g", outcome="y")
>>> cells[["cohort", "time", "member", "n", "total"]].values.tolist()[:2]
[[2.0, 1, False, 1, 10.0], [2.0, 2, True, 1, 12.0]]
"""

from __future__ import annotations

import importlib.util
import os
import time as clock
from collections.abc import Callable, Sequence
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from roi.checks.convergence import convergence_gate
from roi.inference.nuts import CompiledCache, check_complete, nutpie_backend
from roi.inference.pooling import add_pooled_mean, pooled_effects
from roi.results import HDI94, Diagnostics, EffectResult, hdi_entry, refused_effect
from roi.retention.bayes_survival import pattern_columns, sorted_categorical
from roi.revenue_lift.panel_input import check_group_column, first_treated_numbers

ESTIMAND = "community_revenue_lift"
SCALE = "currency per member-month"
NEVER = "(never)"
ALL = "(all)"
# Compiled nutpie models by structure (months, patterns, communities, segments, prior): with
# numba a new cell table of the same structure is swapped in as data instead of compiling again
# (one structure at a time: a compiled model holds its data); JAX compiles every fit.
COMPILED = CompiledCache(size=1)
SAMPLED = ("gamma_raw", "beta_raw", "tau_community", "sigma_tau", "kappa", "sigma_seg", "w")
LOGP_ENV = "ROI_REVENUE_LOGP"
LOGP_BACKENDS = ("numba", "pytensor")
# The cell table's own columns; the others are its covariate keys, in order
CELL_COLUMNS = ("cohort", "first", "last", "community", "time", "n", "total", "total_sq",
                "member", "event_time")


def revenue_cells(data: pd.DataFrame, *, unit: str, time: str, group: str, outcome: str,
                  community: str | None = "community", active: str | None = "active",
                  covariates: Sequence[str] = (), numeric_bins: int = 3) -> pd.DataFrame:
    """Sum active customer-months into cells with ``n``, ``total`` and ``total_sq`` of revenue.

    Keys: ``cohort`` (the join period ``group``, NaN for never-members), ``first`` (the unit's
    first period in ``data``, active or not), ``community`` (``(never)`` for never-members),
    the ``covariates`` as categories (numeric ones in ``numeric_bins`` quantile bins, as in
    :func:`roi.retention.bayes_survival.pattern_columns`) and ``time``. Also ``member`` (``time >=
    cohort``) and ``event_time`` (``time - cohort``, NaN for never-members).

    Examples
    --------
    See the module docstring.
    """
    span = data.groupby(unit, sort=False, observed=True)[time]
    first = span.transform("min").to_numpy()
    last = span.transform("max").to_numpy()
    mask = data[active].to_numpy(bool) if active else np.ones(len(data), bool)
    columns = list(dict.fromkeys([time, group, outcome, *covariates,
                                  *([community] if community else [])]))
    rows = data.loc[mask, columns]   # only what the cells use (the panel can be 13M rows)
    periods = pd.unique(data[time].to_numpy())
    # 0, NaN or after the last period: never a member (the rule of every estimator)
    cohort = pd.Series(first_treated_numbers(rows[group], periods=periods), index=rows.index)
    cohort = cohort.where(cohort > 0)
    keys = pd.DataFrame({"cohort": cohort.to_numpy(), "first": first[mask], "last": last[mask],
                         "community": _community_labels(rows, community,
                                                        member=cohort.notna().to_numpy())})
    patterns, _ = pattern_columns(rows, covariates=covariates, numeric_bins=numeric_bins)
    for name in patterns.columns:
        keys[name] = patterns[name].to_numpy()
    keys["time"] = rows[time].to_numpy()
    # Categorical keys with sorted labels: the cells come out in the order of the labels
    grouped = keys.groupby(list(keys.columns), dropna=False, sort=True, observed=True)
    cell = grouped.ngroup().to_numpy()
    value = rows[outcome].to_numpy(float)
    cells = grouped.size().rename("n").reset_index()
    cells["total"] = np.bincount(cell, weights=value, minlength=len(cells))
    cells["total_sq"] = np.bincount(cell, weights=value**2, minlength=len(cells))
    cells["community"] = cells["community"].astype("string")
    for name in patterns.columns:
        cells[name] = cells[name].astype(str)
    cells["member"] = (cells["time"] >= cells["cohort"]).to_numpy(dtype=bool)
    cells["event_time"] = cells["time"] - cells["cohort"]
    return cells


def _community_labels(rows: pd.DataFrame, community: str | None, *,
                      member: np.ndarray) -> pd.Categorical:
    """Per row: the community's name for members (``(unknown)`` when missing), ``(never)`` for
    never-members, ``(all)`` without a community column; categorical with sorted labels."""
    if community is None:
        return pd.Categorical.from_codes(np.zeros(len(rows), int), categories=[ALL])
    names = rows[community].astype("category")
    labels = [str(c) for c in names.cat.categories] + ["(unknown)", NEVER]
    codes = names.cat.codes.to_numpy().astype(np.int64)
    codes = np.where(codes < 0, len(labels) - 2, codes)
    return sorted_categorical(np.where(member, codes, len(labels) - 1), labels)


def dispersion(cells: pd.DataFrame) -> float:
    """Quasi-Poisson dispersion ``phi`` (variance / mean of a customer-month) from within-cell
    sums of squares: ``sum SS_j / sum (n_j - 1) ybar_j`` over cells with two or more
    customer-months and a positive mean.

    Examples
    --------
    >>> cells = pd.DataFrame({"n": [2, 2], "total": [4.0, 8.0], "total_sq": [10.0, 36.0]})
    >>> round(dispersion(cells), 3)
    1.0
    """
    n, total = cells["n"].to_numpy(float), cells["total"].to_numpy(float)
    mean = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
    within = cells["total_sq"].to_numpy(float) - total * mean
    use = (n >= 2) & (mean > 0)
    if not use.any():
        raise ValueError("revenue cells: no cell with two customer-months and positive revenue "
                         "to estimate the dispersion from")
    return float(within[use].sum() / ((n[use] - 1) * mean[use]).sum())


def design(cells: pd.DataFrame, *, covariates: Sequence[str],
           segment: str | None) -> dict[str, Any]:
    """Integer indices of every cell into the model's effects, and their labels."""
    group_keys = cells[["cohort", "first", "last", "community"]].astype(str).agg("|".join, axis=1)
    group, group_labels = pd.factorize(group_keys)
    times = np.sort(cells["time"].unique())
    pattern_keys = (cells[list(covariates)].astype(str).agg("|".join, axis=1) if covariates
                    else pd.Series("", index=cells.index))
    # The most frequent pattern is the reference (its beta is 0): the best-measured baseline.
    order = cells.groupby(pattern_keys)["n"].sum().sort_values(ascending=False).index
    member = cells["member"].to_numpy(dtype=bool)
    communities = sorted(cells.loc[member, "community"].astype(str).unique())
    segments = (sorted(cells.loc[member, segment].astype(str).unique()) if segment else [ALL])
    return {
        "group": group, "groups": list(group_labels),
        "group_total": np.bincount(group, weights=cells["total"].to_numpy(float)),
        "time": np.searchsorted(times, cells["time"].to_numpy()), "times": times.tolist(),
        "pattern": pd.Categorical(pattern_keys, categories=order).codes,
        "patterns": list(order), "member": member,
        "community": np.maximum(pd.Categorical(cells["community"].astype(str),
                                               categories=communities).codes, 0),
        "communities": communities, "segments": segments,
        "segment": (np.maximum(pd.Categorical(cells[segment].astype(str),
                                              categories=segments).codes, 0)
                    if segment else np.zeros(len(cells), dtype=int)),
        "event_time": np.nan_to_num(cells["event_time"].to_numpy(float), nan=0.0),
    }


def grid(cells: pd.DataFrame, *, index: dict[str, Any]) -> dict[str, np.ndarray]:
    """Cells laid out densely as rows (group x pattern) by calendar months.

    Groups whose revenue sums to <= 0 are left out (they say nothing about a positive mean).
    The model then needs only broadcasting and two short gathers per row, which compile to
    fast code, instead of gathers and a scatter over every cell.
    """
    keep = index["group_total"][index["group"]] > 0
    row_key = index["group"][keep].astype(np.int64) * len(index["patterns"]) + \
        index["pattern"][keep]
    rows, row = np.unique(row_key, return_inverse=True)
    group, _ = pd.factorize(rows // len(index["patterns"]))
    shape = (len(rows), len(index["times"]))
    out = {name: np.zeros(shape) for name in ("n", "total", "event_time", "member")}
    at = (row, index["time"][keep])
    out["n"][at] = cells["n"].to_numpy(float)[keep]
    out["total"][at] = cells["total"].to_numpy(float)[keep]
    out["event_time"][at] = index["event_time"][keep]
    out["member"][at] = index["member"][keep]
    flat = index["community"] * len(index["segments"]) + index["segment"]
    lift_of_row = np.zeros(len(rows), dtype=int)
    lift_of_row[row] = flat[keep]
    out.update(row_group=group, row_pattern=(rows % len(index["patterns"])).astype(int),
               row_lift=lift_of_row,
               group_total=np.bincount(group, weights=out["total"].sum(axis=1)))
    return out


def structure_key(index: dict[str, Any], *, buildup_prior: tuple[float, float]) -> tuple:
    """What a compiled model depends on; everything else is swappable ``pm.Data``."""
    return (len(index["times"]), len(index["patterns"]), len(index["communities"]),
            len(index["segments"]), tuple(buildup_prior))


def model_inputs(cells: pd.DataFrame, *, index: dict[str, Any],
                 phi: float) -> dict[str, np.ndarray]:
    """Every ``pm.Data`` array of :func:`build_model`, by name."""
    g = grid(cells, index=index)
    return {**{k: g[k] for k in ("n", "total", "event_time", "member", "group_total")},
            **{k: g[k].astype("int64") for k in ("row_group", "row_pattern", "row_lift")},
            "phi": np.array(phi)}


def build_model(index: dict[str, Any], inputs: dict[str, np.ndarray], *,
                buildup_prior: tuple[float, float]):
    """The PyMC model of the module docstring: group levels integrated out (conditional
    quasi-Poisson likelihood as a Potential), on the dense layout of :func:`grid`. Every
    array is a ``pm.Data``, so one compiled model serves any cell table of the same structure
    (nutpie's ``compiled.with_data(**inputs)``)."""
    import pymc as pm
    import pytensor.tensor as pt

    coords = {"time": index["times"], "pattern": index["patterns"],
              "community": index["communities"], "segment": index["segments"]}
    with pm.Model(coords=coords) as model:
        d = {name: pm.Data(name, value) for name, value in inputs.items()}
        gamma_raw = pm.Normal("gamma_raw", 0.0, 1.0, shape=len(index["times"]) - 1)
        beta_raw = pm.Normal("beta_raw", 0.0, 1.0, shape=len(index["patterns"]) - 1)
        gamma = pt.concatenate([pt.zeros(1), gamma_raw])
        beta = pt.concatenate([pt.zeros(1), beta_raw])
        tau = _tau(index)
        median, sd = buildup_prior
        kappa = pm.LogNormal("kappa", mu=np.log(median), sigma=sd)
        ramp = 1.0 - pt.exp(-(d["event_time"] + 1.0) / kappa)
        effect = d["member"] * tau.flatten()[d["row_lift"]][:, None] * ramp
        rest = gamma[None, :] + beta[d["row_pattern"]][:, None] + effect
        row_weight = pt.sum(d["n"] * pt.exp(rest), axis=1)
        weight = pt.zeros_like(d["group_total"])[d["row_group"]].inc(row_weight)
        # Conditional (multinomial) form of the Poisson likelihood: exact after integrating
        # each group's level out under a flat prior on its log; tempered by 1 / phi.
        loglik = pt.sum(d["total"] * rest) - pt.dot(d["group_total"], pt.log(weight))
        pm.Potential("quasi_loglik", loglik / d["phi"])
    return model


def logp_backend() -> str:
    """How nutpie gets the model's log-density: ``numba`` (the hand-written kernel of
    :mod:`roi.revenue_lift.fast_logp`, default when numba imports) or ``pytensor`` (PyMC's
    graph, compiled with the backend of :mod:`roi.inference.nuts`). ``$ROI_REVENUE_LOGP``
    chooses explicitly.

    Examples
    --------
    >>> logp_backend() in LOGP_BACKENDS
    True
    """
    chosen = os.environ.get(LOGP_ENV, "").strip().lower()
    if chosen and chosen not in LOGP_BACKENDS:
        raise ValueError(f"{LOGP_ENV} must be one of {LOGP_BACKENDS}, not {chosen!r}")
    if chosen == "pytensor" or importlib.util.find_spec("numba") is None:
        return "pytensor"
    return "numba"


def sample_model(build, *, key: tuple, inputs: dict[str, np.ndarray], sampler: str,
                 draws: int, tune: int, chains: int, random_seed: int, target_accept: float,
                 kernel: Callable[[], Any] | None = None) -> tuple[az.InferenceData, str]:
    """Sample with nutpie or PyMC NUTS; returns the posterior and the sampler used.

    nutpie samples ``kernel()`` (a model on a hand-written density) when given, else PyMC's
    ``build()`` compiled once per structure ``key`` with ``inputs`` swapped in.
    """
    try:
        import nutpie
    except ImportError:
        nutpie = None
    if sampler == "nutpie" and nutpie is not None:
        if kernel is not None:
            compiled = kernel()
        else:
            compiled, _ = COMPILED.get(key, build)
            compiled = compiled.with_data(**inputs)
        idata = nutpie.sample(compiled, draws=draws, tune=tune,
                              chains=chains, cores=min(chains, 2), seed=random_seed,
                              progress_bar=False, low_rank_modified_mass_matrix=True,
                              target_accept=target_accept)
        check_complete(idata, draws=draws)   # Ctrl-C gives the draws so far: stop, don't fit
        return idata, "nutpie"
    import pymc as pm

    with build():
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=min(chains, 2),
                          random_seed=random_seed, target_accept=target_accept,
                          progressbar=False, compute_convergence_checks=False)
    check_complete(idata, draws=draws)
    return idata, "pymc" if sampler == "pymc" else "pymc (nutpie could not be imported)"


MU_TAU_SD = 0.3                      # prior sd of the mean community log lift


def _tau(index: dict[str, Any]):
    """Community (x segment) log lifts, partially pooled (:mod:`roi.inference.pooling`: centred,
    their mean ``mu_tau ~ Normal(0, 0.3)`` integrated out and drawn after sampling, spread
    ``sigma_tau ~ LogNormal(log 0.1, 0.5)``).

    Measured with this model, 4 x 1000 draws after 300 tuning steps at ``target_accept`` 0.9:

    ==============================  ==================  =====================
    parametrisation                 bundled sample      20,000 customers
    ==============================  ==================  =====================
    non-centred, HalfNormal(0.1)    0 divergences       13 (at 0.99: 31 steps)
    centred, mu integrated, HN      --                  9 (at sigma ~ 0.009)
    centred, mu integrated, Gamma   26 (sigma ~ 0.005)  0
    pooling.pooled_effects          0, 9.9 steps        0, 11.6 steps
    ==============================  ==================  =====================
    """
    import pymc as pm

    tau_c, _ = pooled_effects("tau_community", spread_name="sigma_tau", dims="community",
                              k=len(index["communities"]), mean_sd=MU_TAU_SD)
    if index["segments"] == [ALL]:
        return pm.Deterministic("tau", tau_c[:, None], dims=("community", "segment"))
    sigma_seg = pm.HalfNormal("sigma_seg", 0.1)
    w = pm.Normal("w", 0.0, 1.0, dims=("community", "segment"))
    return pm.Deterministic("tau", tau_c[:, None] + sigma_seg * w, dims=("community", "segment"))


def entry(values: np.ndarray) -> dict[str, Any]:
    """Posterior mean and 94% HDI of currency draws (:func:`roi.results.hdi_entry`).

    Examples
    --------
    >>> entry(np.random.default_rng(0).normal(30.0, 1.0, 4000))["interval"]
    '94% HDI'
    """
    return hdi_entry(values)


def posterior_draws(idata: az.InferenceData) -> dict[str, np.ndarray]:
    """Stacked draws (chain x draw first) of the terms of the mean model."""
    post = idata.posterior
    total = post.sizes["chain"] * post.sizes["draw"]   # not -1: no covariate, no beta_raw
    flat = {name: post[name].to_numpy().reshape(total, *post[name].shape[2:])
            for name in ("gamma_raw", "beta_raw", "tau", "kappa")}
    zeros = np.zeros((flat["kappa"].shape[0], 1))
    flat["gamma"] = np.hstack([zeros, flat.pop("gamma_raw")])
    flat["beta"] = np.hstack([zeros, flat.pop("beta_raw")])
    return flat


def lift_sums(cells: pd.DataFrame, *, index: dict[str, Any], draws: dict[str, np.ndarray],
              phi: float, columns: np.ndarray, seed: int, chunk_cells: int = 4_000_000,
              kernel: bool | None = None) -> np.ndarray:
    """Per draw, the lift ``n * mu * (1 - exp(-effect))`` of member cells summed by ``columns``.

    Each group's level is drawn from its conditional posterior given the other terms,
    ``Gamma(S_g / phi, rate = W_g / phi)`` with ``S_g`` its revenue and ``W_g`` the sum of
    ``n_j * exp(rest_j)`` over its cells (0 for groups whose revenue sums to <= 0).
    ``columns`` is a (member cells x K) 0/1 matrix (overall, per community ...); the result is
    (draws x K). Draws are processed in chunks so memory stays near ``chunk_cells`` floats.
    ``kernel`` (default: when numba imports) computes each chunk's member lifts in one numba
    pass (:func:`roi.revenue_lift._fast_kernels.member_lifts`; 8,000 draws of 49,489 cells in
    a few seconds where the numpy arrays below take about 17 s) from the same random numbers.
    """
    from scipy import sparse

    if kernel is None:
        kernel = importlib.util.find_spec("numba") is not None
    rng = np.random.default_rng(seed)
    n, m = cells["n"].to_numpy(float), index["member"]
    to_group = sparse.csr_matrix((n, (np.arange(len(n)), index["group"])))
    shape = np.maximum(index["group_total"], 0.0) / phi
    total = draws["kappa"].shape[0]
    step = max(1, chunk_cells // len(n))
    out = np.empty((total, columns.shape[1]))
    lifts = _member_lifts(cells, index=index, draws=draws, phi=phi) if kernel else None
    for lo in range(0, total, step):    # a loop over chunks of draws
        s = slice(lo, lo + step)
        if lifts is not None:
            size = (len(range(total)[s]), len(shape))
            out[s] = lifts(s, rng.gamma(np.where(shape > 0, shape, 1.0), 1.0, size=size)) @ columns
            continue
        ramp = 1.0 - np.exp(-(index["event_time"][None, :] + 1.0) / draws["kappa"][s, None])
        effect = draws["tau"][s][:, index["community"], index["segment"]] * ramp * m
        rest = draws["gamma"][s][:, index["time"]] + draws["beta"][s][:, index["pattern"]]
        rest = rest + effect
        weight = (to_group.T @ np.exp(rest).T).T
        level = rng.gamma(np.where(shape > 0, shape, 1.0), 1.0, size=weight.shape)
        level = np.where(shape > 0, level * phi / np.maximum(weight, 1e-300), 0.0)
        mu = level[:, index["group"][m]] * np.exp(rest[:, m])
        out[s] = (n[m] * mu * -np.expm1(-effect[:, m])) @ columns
    return out


def _member_lifts(cells: pd.DataFrame, *, index: dict[str, Any], draws: dict[str, np.ndarray],
                  phi: float):
    """``lifts(draw_slice, gamma_variates)``: (draws x member cells) lifts by the numba kernel,
    the cells laid out once (codes: distinct (lift, months since joining) of member cells)."""
    from roi.revenue_lift._fast_kernels import member_lifts

    m = index["member"]
    lift = index["community"] * len(index["segments"]) + index["segment"]
    codes, inverse = np.unique(np.stack([lift[m], index["event_time"][m]]), axis=1,
                               return_inverse=True)
    code = np.full(len(m), codes.shape[1])
    code[m] = inverse.ravel()
    at = np.full(len(m), -1)
    at[m] = np.arange(m.sum())
    table = np.stack([cells["n"].to_numpy(float), index["time"], index["pattern"],
                      index["group"], code, at]).astype(np.float64)
    positive = index["group_total"] > 0
    tau = draws["tau"].reshape(len(draws["kappa"]), -1)

    def lifts(s: slice, level: np.ndarray) -> np.ndarray:
        out = np.empty((level.shape[0], int(m.sum())))
        member_lifts(np.ascontiguousarray(draws["gamma"][s]),
                     np.ascontiguousarray(draws["beta"][s]), np.ascontiguousarray(tau[s]),
                     np.ascontiguousarray(draws["kappa"][s]), level, positive, phi, table,
                     np.ascontiguousarray(codes, dtype=np.float64), out)
        return out

    return lifts


def _indicator(labels: np.ndarray, levels: Sequence[Any]) -> np.ndarray:
    return (np.asarray(labels)[:, None] == np.asarray(levels)[None, :]).astype(float)


def member_units(data: pd.DataFrame, *, unit: str, time: str, group: str,
                 active: str | None = "active") -> int:
    """Units with at least one (active) member period: the ``n_treated`` of
    :class:`BayesianHierarchicalLift`'s result, which the cells do not hold
    (:func:`roi.revenue_lift.cells_sql.member_units_sql` counts it in the database).

    Examples
    --------
    >>> rows = pd.DataFrame({"id": [1, 1, 2, 2], "t": [1, 2, 1, 2], "g": [2, 2, None, None],
    ...                      "active": [True] * 4})
    >>> member_units(rows, unit="id", time="t", group="g")
    1
    """
    cohort = first_treated_numbers(data[group], periods=pd.unique(data[time].to_numpy()))
    with np.errstate(invalid="ignore"):
        member = (cohort > 0) & (data[time].to_numpy() >= cohort)
    if active is not None:
        member &= data[active].to_numpy(bool)
    return int(data.loc[member, unit].nunique())


class BayesianHierarchicalLift:
    """Bayesian hierarchical community revenue lift (ATT per member-month) on revenue cells.

    :meth:`fit` builds the cells from the panel in memory; :meth:`fit_cells` fits a cell table
    built elsewhere (``roi run`` computes it in the database:
    :func:`roi.revenue_lift.cells_sql.revenue_cells_sql`).

    Parameters
    ----------
    draws, tune, chains : int
        Posterior draws and tuning steps per chain, and the number of chains.
    sampler : {"nutpie", "pymc"}
        NUTS implementation; ``nutpie`` falls back to ``pymc`` if it cannot be imported.
    random_seed : int
        Seed of the sampler: the same seed gives the same numbers.
    segment : str, optional
        Column whose levels get their own lift within each community (partially pooled around
        the community's); it is added to the cell keys. ``by_segment`` table.
    target_accept : float
        NUTS target acceptance rate.
    buildup_prior : (float, float)
        Median (months) and log-scale sd of the LogNormal prior of the build-up time ``kappa``.
    numeric_bins : int
        Quantile bins for numeric covariates in the cell keys.

    Attributes
    ----------
    result_ : EffectResult
        ATT per member-month (posterior mean, 94% HDI), ``by_group`` per community; ``tables``:
        ``by_community``, ``by_event_time``, ``cells``, ``posterior`` (and ``by_segment``).
    idata_ : arviz.InferenceData
        The posterior.
    cells_ : DataFrame
        The cells the model was fitted on.
    phi_ : float
        The quasi-Poisson dispersion used (within-cell variance over mean).
    index_ : dict
        Cell indices into the model's terms and their labels (groups, months, patterns).

    Examples
    --------
    >>> from connectors import open_source
    >>> from roi.data import load_dataset
    >>> panel = load_dataset(open_source("data/sample")).customer_month_panel()
    >>> model = BayesianHierarchicalLift(draws=300, tune=300, chains=2).fit(
    ...     panel, unit="customer_id", time="month_index", group="join_month_index",
    ...     outcome="revenue", covariates=["segment", "plan"])   # doctest: +SKIP
    >>> model.result_.interval, sorted(model.result_.by_group)   # doctest: +SKIP
    ('94% HDI', ['discord', 'forum'])
    """

    method = "bayesian"

    def __init__(self, *, draws: int = 1000, tune: int = 500, chains: int = 4,
                 sampler: str = "nutpie", random_seed: int = 0, segment: str | None = None,
                 target_accept: float = 0.9, buildup_prior: tuple[float, float] = (2.0, 0.5),
                 numeric_bins: int = 3) -> None:
        if sampler not in ("nutpie", "pymc"):
            raise ValueError(f"sampler must be 'nutpie' or 'pymc', not {sampler!r}")
        self.draws, self.tune, self.chains = draws, tune, chains
        self.sampler, self.random_seed, self.segment = sampler, random_seed, segment
        self.target_accept = target_accept
        self.buildup_prior = buildup_prior
        self.numeric_bins = numeric_bins

    def fit(self, data: pd.DataFrame, *, unit: str, time: str, group: str, outcome: str,
            community: str | None = "community", active: str | None = "active",
            covariates: Sequence[str] = ()) -> BayesianHierarchicalLift:
        """Build the cells from a tidy unit-period table and sample the posterior.

        ``time`` is an integer period (consecutive months, e.g. ``month_index``); ``group`` is
        the unit's join period on that grid (NaN or 0: never a member). Only rows with
        ``active`` true are summed (whole customer-months); pass the whole panel so that each
        unit's first period (its first-seen cohort) is its first row. ``covariates`` (the few
        that drive both revenue and churn, e.g. segment and plan) become cell keys: every
        pattern multiplies the cells, so keep them few and categorical.
        """
        began = clock.perf_counter()
        if isinstance(covariates, str):
            raise ValueError("BayesianHierarchicalLift: covariates are cell keys (a list of "
                             f"column names, few and categorical), not a formula: {covariates!r}")
        keys = list(dict.fromkeys([*covariates, *([self.segment] if self.segment else [])]))
        needed = [unit, time, group, outcome, *keys, *(c for c in (community, active) if c)]
        missing = [c for c in needed if c not in data.columns]
        if missing:
            raise ValueError(f"BayesianHierarchicalLift: missing column(s) {missing}")
        check_group_column(data, group=group, estimator="BayesianHierarchicalLift")
        cells = revenue_cells(data, unit=unit, time=time, group=group, outcome=outcome,
                              community=community, active=active, covariates=keys,
                              numeric_bins=self.numeric_bins)
        members = member_units(data, unit=unit, time=time, group=group, active=active)
        return self.fit_cells(cells, n_treated=members, group=group, began=began)

    def fit_cells(self, cells: pd.DataFrame, *, n_treated: int, group: str = "group",
                  began: float | None = None) -> BayesianHierarchicalLift:
        """Sample the posterior from a cell table (:func:`revenue_cells`, or
        :func:`roi.revenue_lift.cells_sql.revenue_cells_sql` computed in the database) built
        with this model's covariates and segment as keys; everything :meth:`fit` does after
        building the cells.

        ``n_treated`` is the number of units with an active member period
        (:func:`member_units`, or :func:`~roi.revenue_lift.cells_sql.member_units_sql`), the one
        number of the result the cells do not hold; ``group`` names the join column in the
        refusal's reason; ``began`` (a ``time.perf_counter()``) starts ``fit_seconds_``.
        """
        began = clock.perf_counter() if began is None else began
        keys = [c for c in cells.columns if c not in CELL_COLUMNS]
        if self.segment and self.segment not in keys:
            raise ValueError(f"BayesianHierarchicalLift: segment {self.segment!r} is not a key "
                             "of the cells")
        self.covariates_ = keys
        if not cells["member"].any():
            self.cells_ = cells
            self.result_ = refused_effect(
                method="bayesian", estimand=ESTIMAND, interval=HDI94, scale=SCALE,
                reason=f"no active member-month in the data (column {group!r}: 0, NaN or after "
                       "the last period = never a member)")
            return self
        self.cells_, self.phi_ = cells, dispersion(cells)
        self.index_ = design(cells, covariates=keys, segment=self.segment)
        inputs = model_inputs(cells, index=self.index_, phi=self.phi_)
        sampled = clock.perf_counter()
        logp = logp_backend() if self.sampler == "nutpie" else "pytensor"
        self.idata_, used = sample_model(
            lambda: build_model(self.index_, inputs, buildup_prior=self.buildup_prior),
            key=structure_key(self.index_, buildup_prior=self.buildup_prior), inputs=inputs,
            sampler=self.sampler, draws=self.draws, tune=self.tune, chains=self.chains,
            random_seed=self.random_seed, target_accept=self.target_accept,
            kernel=(lambda: self._kernel_model(inputs)) if logp == "numba" else None)
        if used != "nutpie":
            logp = "pytensor"
        # A model compiled for another cell table carries that table's labels: use ours.
        self.idata_.posterior = self.idata_.posterior.assign_coords(
            community=self.index_["communities"], segment=self.index_["segments"])
        add_pooled_mean(self.idata_.posterior, effects="tau_community", spread="sigma_tau",
                        name="mu_tau", mean_sd=MU_TAU_SD, seed=self.random_seed)
        diagnostics = convergence_gate(self.idata_, draws=self.draws, chains=self.chains,
                                       method="bayesian_revenue", var_names=SAMPLED)
        diagnostics.checks.update({
            "sampler": used, "cells": len(cells), "groups": len(self.index_["groups"]),
            "logp_backend": logp,
            "nutpie_backend": (nutpie_backend() if used == "nutpie" and logp == "pytensor"
                               else None),
            "rows_active": int(cells["n"].sum()), "phi": self.phi_,
            "phi_pearson": pearson_dispersion(cells, index=self.index_,
                                              draws=posterior_draws(self.idata_)),
            "covariates": keys})
        # Timings stay out of the diagnostics so that reruns reproduce results.json exactly.
        self.fit_seconds_ = {"cells_and_model": sampled - began,
                             "sampling": clock.perf_counter() - sampled}
        if used != self.sampler:
            diagnostics.warn(f"bayesian_revenue: sampled with {used}.")
        self.result_ = self._result(diagnostics, n_treated=int(n_treated))
        return self

    def _kernel_model(self, inputs: dict[str, np.ndarray]):
        """nutpie model on the hand-written numba density (:mod:`roi.revenue_lift.fast_logp`)."""
        from roi.revenue_lift.fast_logp import nutpie_model

        return nutpie_model(self.index_, inputs, buildup_prior=self.buildup_prior,
                            mean_sd=MU_TAU_SD)

    def lift_draws(self) -> dict[str, np.ndarray]:
        """Per-draw lift per member-month: ``"all"``, each community, ``"e=<k>"`` per event time
        and ``"segment=<level>"`` per segment (chains stacked)."""
        index, cells = self.index_, self.cells_
        members = cells[index["member"]]
        labels = {"all": np.ones((len(members), 1))}
        labels["community"] = _indicator(members["community"].astype(str), index["communities"])
        self.event_times_ = np.sort(members["event_time"].unique()).astype(int)
        labels["event"] = _indicator(members["event_time"].astype(int), self.event_times_)
        if self.segment:
            labels["segment"] = _indicator(members[self.segment].astype(str), index["segments"])
        columns = np.hstack(list(labels.values()))
        names = (["all"] + list(index["communities"]) + [f"e={e}" for e in self.event_times_]
                 + [f"segment={s}" for s in (index["segments"] if self.segment else [])])
        sums = lift_sums(cells, index=index, draws=posterior_draws(self.idata_), phi=self.phi_,
                         columns=columns, seed=self.random_seed)
        weights = members["n"].to_numpy(float) @ columns
        self.member_months_ = dict(zip(names, weights.astype(int).tolist(), strict=True))
        return {name: sums[:, k] / weights[k] for k, name in enumerate(names)}

    def _result(self, diagnostics: Diagnostics, *, n_treated: int) -> EffectResult:
        draws = self.lift_draws()
        overall = entry(draws["all"])
        result = EffectResult(method=self.method, estimand=ESTIMAND, estimate=overall["estimate"],
                              low=overall["low"], high=overall["high"], interval=HDI94,
                              scale=SCALE, n_treated=n_treated,
                              n_obs=self.member_months_["all"], diagnostics=diagnostics)
        tau = self.idata_.posterior["tau_community"]
        rows = []
        for name in self.index_["communities"]:
            result.by_group[name] = entry(draws[name])
            lift = np.expm1(tau.sel(community=name).to_numpy().ravel())
            rows.append({"community": name, "member_months": self.member_months_[name],
                         **result.by_group[name], "lift_share": float(lift.mean())})
        result.tables["by_community"] = pd.DataFrame(rows)
        result.tables["by_event_time"] = self._event_table(draws)
        if self.segment:
            result.tables["by_segment"] = pd.DataFrame([
                {self.segment: s, "member_months": self.member_months_[f"segment={s}"],
                 **entry(draws[f"segment={s}"])} for s in self.index_["segments"]])
        result.tables["cells"] = self.cells_
        names = [v for v in ("mu_tau", "sigma_tau", "tau_community", "kappa", "sigma_seg")
                 if v in self.idata_.posterior]
        result.tables["posterior"] = az.summary(self.idata_, var_names=names, hdi_prob=0.94)
        return result

    def _event_table(self, draws: dict[str, np.ndarray]) -> pd.DataFrame:
        """ATT per member-month by months since joining, with the modelled build-up share."""
        kappa = self.idata_.posterior["kappa"].to_numpy().ravel()
        rows = [{"event_time": int(e), "member_months": self.member_months_[f"e={e}"],
                 **entry(draws[f"e={e}"]),
                 "build_up": float(np.mean(1.0 - np.exp(-(e + 1.0) / kappa)))}
                for e in self.event_times_]
        return pd.DataFrame(rows)

    def summary(self) -> pd.DataFrame:
        """The overall ATT and one row per community: member-months, estimate, 94% HDI (a
        refused fit: the one-row :meth:`EffectResult.summary`)."""
        if self.result_.refused:
            return self.result_.summary()
        overall = {"community": "(all)", "member_months": self.result_.n_obs,
                   "estimate": self.result_.estimate, "low": self.result_.low,
                   "high": self.result_.high, "interval": self.result_.interval}
        table = pd.concat([pd.DataFrame([overall]), self.result_.tables["by_community"]],
                          ignore_index=True)
        table["converged"] = self.result_.diagnostics.converged
        return table.set_index("community")


def pearson_dispersion(cells: pd.DataFrame, *, index: dict[str, Any],
                       draws: dict[str, np.ndarray]) -> float:
    """Pearson ``X2 / (cells - parameters)`` of the cells at the posterior mean: the dispersion
    left after the group levels, to compare with the within-cell ``phi`` the model used."""
    mean = {name: value.mean(axis=0, keepdims=True) for name, value in draws.items()}
    ramp = 1.0 - np.exp(-(index["event_time"] + 1.0) / mean["kappa"][0])
    effect = mean["tau"][0][index["community"], index["segment"]] * ramp * index["member"]
    rest = mean["gamma"][0][index["time"]] + mean["beta"][0][index["pattern"]] + effect
    n, total = cells["n"].to_numpy(float), cells["total"].to_numpy(float)
    weight = np.bincount(index["group"], weights=n * np.exp(rest))
    expected = n * np.exp(rest) * index["group_total"][index["group"]] / weight[index["group"]]
    use = expected > 0
    terms = len(index["groups"]) + len(index["times"]) + len(index["patterns"]) + 2
    return float(((total - expected)[use] ** 2 / expected[use]).sum()
                 / max(1, use.sum() - terms))
