"""Community retention lift, Bayesian: piecewise-exponential survival on person-period cells.

The start-stop table of :mod:`roi.data.survival` (``start``/``stop`` in days since first seen,
``event`` = churned at ``stop``, ``member`` time-varying 0/1, ``community`` first joined) is split
at the boundaries ``intervals_days`` of time since first seen and summed into cells of
(time piece x member x community x covariate pattern): churn ``events`` and at-risk ``exposure``
days. A row is at risk on ``start < t <= stop`` (the counting-process convention of the Cox
models), so the exposure it gives a piece ``(b_k, b_k+1]`` is the overlap of the two intervals and
its churn falls in the piece that holds ``stop``. With a hazard constant within a piece, the
likelihood of the rows equals (up to a constant) the Poisson likelihood of the cells, so the cost
of sampling grows with the number of cells, not customers. Numeric covariates are cut into
``numeric_bins`` quantile bins (their levels enter as categories) so that cells stay few.

Model (log hazard per day of cell j; ``g`` = community of a member cell)::

    events_j ~ Poisson(exposure_j * exp(alpha_c[piece_j] + (x_j - xbar)' beta
                                        + member_j * theta[g_j]))
    alpha_c[k] ~ Normal(log(total events / total exposure), 2)   # at the mean pattern xbar
    beta     ~ Normal(0, 1)          # covariate hazard ratios 0.14-7.4 (95% prior)
    theta[g] ~ Normal(mu, sigma)     # partial pooling (roi.inference.pooling: sampled centred,
    mu       ~ Normal(0, 0.5)        #   mu integrated out and drawn afterwards); pooled member
                                     #   HR 0.38-2.7 (95% prior), centred on no effect
    sigma    ~ LogNormal(log 0.1, 0.5)   # communities' HRs typically within x/ 1.1-1.25

Covariates are centred at their exposure-weighted mean ``xbar`` (``alpha_c``; the reference
pattern's log baseline ``alpha = alpha_c - xbar' beta`` is kept as a deterministic), and nutpie
adapts a low-rank mass matrix: both remove the intercept/covariate correlations that otherwise
leave the baseline with a bulk ESS near 60 in 600 draws. The hierarchy: a non-centred one with a
HalfNormal(0.1) scale left 2-5 divergences at ``target_accept`` 0.9-0.95 on a 20,000-customer
world with 2 communities and needed 0.99 (33 s for 4 x 600+600); the centred form of
:mod:`roi.inference.pooling` with a boundary-avoiding LogNormal spread samples at 0.9, but on the
bundled sample 1 of 10 seeds (seed 5, 4 x 1000+1000) left one divergent transition there, so the
default is 0.95 (seeds 5, 11, 12: none; r-hat <= 1.0035, bulk ESS >= 4600).

The **pooled hazard ratio** reported as the estimate is ``exp(sum_g w_g theta[g])`` with ``w_g``
the share of member exposure days in community g: the average effect on the members observed
(the quantity the time-varying Cox ``member`` term estimates). ``exp(mu)``, the ratio expected
for a new community, is in ``diagnostics.checks["hr_new_community"]`` and is wider with few
communities. Per community, ``exp(theta[g])`` goes to ``by_group``. Point estimates are posterior
means of the hazard ratio; intervals are 94% highest-density intervals.

Sampler: nutpie by default, PyMC NUTS if nutpie cannot be imported (said in ``diagnostics``).
nutpie samples the hand-written numba log-density and gradient of
:mod:`roi.retention.fast_logp` (:func:`logp_backend`; no PyMC graph is built or compiled; the
kernel's machine code is compiled once per installation and cached by numba); with
``ROI_SURVIVAL_LOGP=pytensor`` it samples PyMC's graph (``pm.sample(nuts_sampler="nutpie")``,
compiled with the backend of :mod:`roi.inference.nuts`). ``diagnostics.checks["logp_backend"]``
says which. Convergence gate: any r-hat above 1.01, any bulk ESS
below ``min(400, max(100, draws * chains / 4))`` (400 is the usual rule for 4 chains x 1000 draws;
a short run gets a threshold of a quarter of its draws, never below 100, so 20 draws always
fail), or any divergence sets ``diagnostics.converged = False`` with warnings. The gate reads
the sampled parameters (``alpha_c``, ``beta``, ``theta``, ``sigma``), unrounded.

Measured (issue 21; ``benchmarks/survival_kernel.py``, the run's 4 chains x 1000+1000 at
target_accept 0.95 on ``benchmarks/output/world_20000_1``: 27,159 rows -> 8,494 cells in
12 pieces, 13 covariate terms, 2 communities; 2 shared cores under a load of 6-8, so CPU time
is the steadier figure): PyMC's graph through JAX 38-45 s wall, 41-48 s CPU (111,281 leapfrog
steps: 0.37 ms CPU per step, JAX compile included); the numba kernel 9.9-10.1 s wall, 3.8 s
CPU (115,271 steps, 28 us per gradient alone; a cold compile of the kernel 4.8 s wall, 2.3 s
CPU, a cached load 0.8 s), both 14 steps per draw, no divergence. Pooled HR 0.7066 (94% HDI
0.6665-0.7482) on the kernel, 0.7067 (0.6664-0.7438) on PyMC's graph, the time-varying Cox
0.7054 (95% CI 0.6641-0.7492), the truth 0.70. In ``roi run`` on that world (load 8-10) the
retention step took 16.6 s with the kernel against 77.2 s with ``ROI_SURVIVAL_LOGP=pytensor``
(whole run 51 s CPU against 89 s).

**Width of the pieces** (issue 18: the member log HR sat 0.12-0.15 below Cox's on a published
data set). Within a piece the hazard is held constant; where it falls fast inside a piece and
membership starts later in follow-up, the non-member days sit early in the piece (above its
average hazard), the member days late (below it), and the difference is credited to membership:
the log HR is biased **down**. ``benchmarks/bayes_survival_vs_cox.py`` (2 chains x 800+800):
on 5 simulated worlds with a Weibull(0.5) baseline and true log HR -0.357, Cox -0.381 on
average, the fixed pieces ``DEFAULT_INTERVALS`` (0, 30, 91, 182, 365, 547 days; the default
until issue 18) -0.462 (0.070-0.092 below Cox on every seed), ``intervals_days="events"`` (12
pieces at event-time quantiles) -0.386 (0.003-0.007 below Cox); on the Stanford heart transplant
data (transplant as member) Cox 0.127, fixed pieces -0.048, ``"events"`` 0.077 (what is left is
the N(0, 0.5)-scale prior's shrinkage on 103 patients). On the 20,000-customer world (slowly
changing monthly churn) both agree with Cox (0.7054): fixed 0.706, ``"events"`` 0.707 (94% HDI
0.668-0.746; 5,990 cells instead of 2,999). ``"events"`` is therefore the default.

Examples
--------
>>> import pandas as pd
>>> table = pd.DataFrame({"customer_id": [1, 1, 2, 3], "start": [0, 40, 0, 0],
...                       "stop": [40, 120, 70, 200], "event": [0, 1, 1, 0],
...                       "member": [0, 1, 0, 0], "community": ["a", "a", None, None]})
>>> cells = person_period_cells(table, intervals_days=(0, 60), community="community")
>>> int(cells["events"].sum()), float(cells["exposure"].sum())
(2, 390.0)
"""

from __future__ import annotations

import importlib.util
import os
import time as clock
from collections.abc import Sequence
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from roi.checks.convergence import convergence_gate
from roi.inference.nuts import check_complete, compile_kwargs, nutpie_backend
from roi.inference.pooling import add_pooled_mean, pooled_effects
from roi.results import HDI94, Diagnostics, EffectResult
from roi.results import hdi_entry as _entry
from roi.retention.cox_time_varying import refusal_reason, refused_result

ESTIMAND = "community_retention_lift"
NON_MEMBER = "(non-member)"
DEFAULT_INTERVALS = (0, 30, 91, 182, 365, 547)
MU_SD = 0.5                      # prior sd of the pooled member log hazard ratio
LOGP_ENV = "ROI_SURVIVAL_LOGP"
LOGP_BACKENDS = ("numba", "pytensor")
EXPOSURE_DECIMALS = 9            # the scale of roi.data.dialect.exact_sum's DECIMAL(38, 9)



def piece_exposure(start: np.ndarray, stop: np.ndarray, *,
                   bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Days at risk of each row in each piece, and the piece that holds each row's ``stop``.

    Examples
    --------
    >>> days, piece = piece_exposure(np.array([0, 40]), np.array([40, 120]),
    ...                              bounds=np.array([0, 60]))
    >>> days.tolist(), piece.tolist()
    ([[40.0, 0.0], [20.0, 60.0]], [0, 1])
    """
    lo = np.asarray(bounds, dtype=float)
    hi = np.append(lo[1:], np.inf)
    start = np.asarray(start, dtype=float)[:, None]
    stop = np.asarray(stop, dtype=float)[:, None]
    days = np.clip(np.minimum(stop, hi) - np.maximum(start, lo), 0.0, None)
    piece = np.searchsorted(lo, stop[:, 0], side="left") - 1
    return days, np.clip(piece, 0, len(lo) - 1)


def pattern_columns(table: pd.DataFrame, *, covariates: Sequence[str], numeric_bins: int = 5,
                    edges: dict[str, list[float]] | None = None) -> tuple[pd.DataFrame,
                                                                          dict[str, list[float]]]:
    """Covariates as categories: numeric ones cut at quantile ``edges`` (labels ``q1`` ...).

    ``edges`` (inner cut points per numeric covariate) are computed when not given and returned,
    so the same bins can be applied to other rows.

    Examples
    --------
    >>> frame = pd.DataFrame({"plan": ["a", "b", "c"], "size": [1.0, 5.0, 9.0]})
    >>> cats, edges = pattern_columns(frame, covariates=["plan", "size"], numeric_bins=2)
    >>> cats["size"].tolist(), edges["size"]
    (['q1', 'q2', 'q2'], [5.0])
    """
    edges = dict(edges or {})
    out = {}
    for name in covariates:
        column = table[name]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            if column.isna().any():
                raise ValueError(f"survival table: {int(column.isna().sum())} missing value(s) "
                                 f"in numeric covariate {name!r}")
            distinct = np.unique(column.to_numpy(float))
            if name not in edges and len(distinct) <= numeric_bins:
                # few values (a 0/1 flag): each its own level. Quantile cuts would merge them
                # (a flag with 17% ones has every quintile at 0, so one bin: dropped silently).
                codes = np.searchsorted(distinct, column.to_numpy(float))
                out[name] = sorted_categorical(codes, [f"{v:g}" for v in distinct])
                continue
            if name not in edges:
                inner = np.linspace(0, 1, numeric_bins + 1)[1:-1]
                edges[name] = np.unique(np.quantile(column.to_numpy(float), inner)).tolist()
            codes = np.searchsorted(np.asarray(edges[name], dtype=float), column.to_numpy(float),
                                    side="right")
            out[name] = sorted_categorical(codes, [f"q{i + 1}" for i in range(len(edges[name])
                                                                              + 1)])
        elif isinstance(column.dtype, pd.CategoricalDtype):
            # codes, not 13M strings: the same categorical as the text path below
            codes = column.cat.codes.to_numpy().astype(np.int64)
            labels = [str(c) for c in column.cat.categories] + ["(missing)"]
            out[name] = sorted_categorical(np.where(codes < 0, len(labels) - 1, codes), labels,
                                            dtype="string")
        else:
            out[name] = pd.Categorical(column.astype("string").fillna("(missing)"))
    return pd.DataFrame(out, index=table.index), edges


def sorted_categorical(codes: np.ndarray, labels: list[str], *,
                        dtype: str = "object") -> pd.Categorical:
    """Labels ``labels[codes]`` as a categorical of the labels that occur, sorted as text (what
    ``pd.Categorical`` of the strings gives), built from the codes."""
    ordered = sorted(set(labels))
    position = np.array([ordered.index(label) for label in labels])
    categories = pd.Index(ordered, dtype=dtype)
    return pd.Categorical.from_codes(position[codes],
                                     categories=categories).remove_unused_categories()


def person_period_cells(table: pd.DataFrame, *, intervals_days: Sequence[float] =
                        DEFAULT_INTERVALS, covariates: Sequence[str] = (),
                        community: str | None = None, start: str = "start", stop: str = "stop",
                        event: str = "event", member: str = "member", numeric_bins: int = 5,
                        edges: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """Sum the start-stop rows into cells: ``piece, member, community, covariates`` ->
    ``events``, ``exposure`` (days). Non-member cells have community ``(non-member)``; the
    numeric bins used are in ``cells.attrs["edges"]``.

    Examples
    --------
    See the module docstring.
    """
    bounds = np.asarray(intervals_days, dtype=float)
    if bounds[0] != 0 or np.any(np.diff(bounds) <= 0):
        raise ValueError("intervals_days must start at 0 and increase")
    days, piece = piece_exposure(table[start].to_numpy(), table[stop].to_numpy(), bounds=bounds)
    is_member = table[member].to_numpy(dtype=int)
    keys, edges = pattern_columns(table, covariates=covariates, numeric_bins=numeric_bins,
                                  edges=edges)
    names = (table[community].astype("string").fillna("(unknown)") if community
             else pd.Series("(all)", index=table.index, dtype="string"))
    keys.insert(0, "community", pd.Categorical(np.where(is_member == 1, names, NON_MEMBER)))
    keys.insert(0, "member", is_member)
    codes = np.column_stack([pd.factorize(keys[c])[0] for c in keys.columns])
    unique, row_cell = np.unique(codes, axis=0, return_inverse=True)
    first = np.zeros(len(unique), dtype=int)
    first[row_cell[::-1]] = np.arange(len(row_cell))[::-1]
    n_pieces = len(bounds)
    exposure = np.zeros((len(unique), n_pieces))
    np.add.at(exposure, row_cell, days)
    events = np.zeros((len(unique), n_pieces))
    np.add.at(events, (row_cell, piece), table[event].to_numpy(dtype=float))
    base = keys.iloc[first].reset_index(drop=True)
    cells = base.loc[base.index.repeat(n_pieces)].reset_index(drop=True)
    cells.insert(0, "piece", np.tile(np.arange(n_pieces), len(unique)))
    cells["events"] = events.ravel()
    # Days with the boundaries' one decimal: rounded to the database's exact sums' 9 decimals
    # (roi.data.dialect.exact_sum), so either source gives the same bits, hence the same draws
    cells["exposure"] = np.round(exposure.ravel(), EXPOSURE_DECIMALS)
    cells = cells[cells["exposure"] > 0].reset_index(drop=True)
    cells.attrs["edges"] = {name: [float(v) for v in cut] for name, cut in edges.items()}
    return cells


def start_stop_cells(table: pd.DataFrame, *, intervals_days: Sequence[float] | str = "events",
                     pieces: int = 12, covariates: Sequence[str] = (),
                     community: str | None = None, start: str = "start", stop: str = "stop",
                     event: str = "event", member: str = "member",
                     numeric_bins: int = 5) -> pd.DataFrame:
    """The cells the piecewise-exponential models fit, from a start-stop table in memory: what
    :func:`roi.retention.cells_sql.person_period_cells_sql` returns from the database (pieces
    at event-time quantiles for ``"events"``, key order, ``attrs["edges"]`` and
    ``attrs["intervals_days"]``)."""
    bounds = (event_quantile_bounds(table[stop], table[event], pieces=pieces)
              if intervals_days == "events" else intervals_days)
    cells = person_period_cells(table, intervals_days=bounds, covariates=covariates,
                                community=community, start=start, stop=stop, event=event,
                                member=member, numeric_bins=numeric_bins)
    # Key order, as the database returns them (roi.retention.cells_sql): either source
    # gives the same design, so the same draws
    edges = cells.attrs["edges"]
    cells = sorted_cells(cells, covariates=covariates)
    cells.attrs["edges"] = edges
    cells.attrs["intervals_days"] = tuple(float(b) for b in bounds)
    return cells


def sorted_cells(cells: pd.DataFrame, *, covariates: Sequence[str]) -> pd.DataFrame:
    """Person-period cells in key order (member, community, covariate labels as text, piece):
    the order :func:`roi.retention.cells_sql.person_period_cells_sql` returns, and how to
    compare it with the in-memory table (which follows the rows' order)."""
    keys = ["member", "community", *covariates, "piece"]
    order = cells[keys].astype({k: str for k in keys if k not in ("member", "piece")})
    index = order.sort_values(keys, kind="stable").index
    return cells.loc[index].reset_index(drop=True)


def encode_patterns(cells: pd.DataFrame, *, covariates: Sequence[str],
                    references: dict[str, str] | None = None) -> tuple[np.ndarray, list[str],
                                                                        dict[str, str]]:
    """Indicator design ``name[level]`` against a reference level (default: most exposure).

    Examples
    --------
    >>> cells = pd.DataFrame({"plan": ["a", "b", "a"], "exposure": [5.0, 1.0, 1.0]})
    >>> X, names, refs = encode_patterns(cells, covariates=["plan"])
    >>> X.tolist(), names, refs
    ([[0.0], [1.0], [0.0]], ['plan[b]'], {'plan': 'a'})
    """
    references = dict(references or {})
    columns, names = [], []
    for name in covariates:
        values = cells[name].astype("string")
        if name not in references:
            weight = cells.groupby(values, observed=True)["exposure"].sum()
            references[name] = str(weight.idxmax())
        for level in sorted(set(values.dropna()) - {references[name]}):
            columns.append((values == level).to_numpy(dtype=float))
            names.append(f"{name}[{level}]")
    X = np.column_stack(columns) if columns else np.zeros((len(cells), 0))
    return X, names, references


def model_data(cells: pd.DataFrame, *, X: np.ndarray, groups: list[str]) -> dict[str, Any]:
    """The arrays both log-density paths read (the PyMC model of :func:`build_model` and the
    numba kernel of :mod:`roi.retention.fast_logp`): per cell its piece, community index (-1
    for a non-member cell), events, exposure and covariates centred at their exposure-weighted
    mean ``center``; ``rate`` is the prior mean of ``alpha_c``."""
    weight = cells["exposure"].to_numpy(dtype=float)
    center = weight @ X / weight.sum() if X.shape[1] else np.zeros(0)
    member_cells = cells["member"].to_numpy() == 1
    codes = pd.Categorical(cells["community"], categories=groups).codes
    events = cells["events"].to_numpy(dtype=float)
    return {"piece": cells["piece"].to_numpy(dtype=np.int64),
            "group": np.where(member_cells, codes, -1).astype(np.int64),
            "events": events, "exposure": weight, "X_centred": X - center, "center": center,
            "rate": float(np.log(events.sum() / weight.sum())),
            "n_pieces": int(cells["piece"].max()) + 1, "n_groups": len(groups)}


def build_model(cells: pd.DataFrame, *, X: np.ndarray, groups: list[str]):
    """The PyMC model of the module docstring on a cell table (``X``: covariate indicators)."""
    import pymc as pm

    data = model_data(cells, X=X, groups=groups)
    member_cells = data["group"] >= 0
    g = np.where(member_cells, data["group"], 0)
    coords = {"piece": np.arange(data["n_pieces"]), "term": np.arange(X.shape[1]),
              "community": groups}
    with pm.Model(coords=coords) as model:
        alpha_c = pm.Normal("alpha_c", mu=data["rate"], sigma=2.0, dims="piece")
        beta = pm.Normal("beta", mu=0.0, sigma=1.0, dims="term")
        theta, _ = pooled_effects("theta", spread_name="sigma", dims="community",
                                  k=len(groups), mean_sd=MU_SD)
        pm.Deterministic("alpha", alpha_c - pm.math.dot(data["center"], beta), dims="piece")
        log_rate = (alpha_c[data["piece"]] + pm.math.dot(data["X_centred"], beta)
                    + member_cells * theta[g] + np.log(data["exposure"]))
        pm.Poisson("events", mu=pm.math.exp(log_rate), observed=data["events"])
    return model


def logp_backend(sampler: str) -> str:
    """How the model's log-density is computed: ``numba`` (the hand-written kernel of
    :mod:`roi.retention.fast_logp`; default when nutpie samples and numba imports) or
    ``pytensor`` (PyMC's graph, compiled by nutpie with :mod:`roi.inference.nuts`'s backend).
    ``$ROI_SURVIVAL_LOGP`` chooses explicitly.

    Examples
    --------
    >>> logp_backend("pymc")
    'pytensor'
    """
    chosen = os.environ.get(LOGP_ENV, "").strip().lower()
    if chosen and chosen not in LOGP_BACKENDS:
        raise ValueError(f"{LOGP_ENV} must be one of {LOGP_BACKENDS}, not {chosen!r}")
    if sampler != "nutpie" or chosen == "pytensor" or importlib.util.find_spec("numba") is None:
        return "pytensor"
    return "numba"


def nutpie_available() -> bool:
    """Whether nutpie imports."""
    return importlib.util.find_spec("nutpie") is not None


def sample_kernel(data: dict[str, Any], *, groups: list[str], draws: int, tune: int,
                  chains: int, random_seed: int, target_accept: float) -> az.InferenceData:
    """nutpie on the numba kernel (:mod:`roi.retention.fast_logp`), settings as :func:`sample`'s
    nutpie path; no PyMC graph is built."""
    import nutpie

    from roi.retention.fast_logp import nutpie_model

    coords = {"piece": list(range(data["n_pieces"])),
              "term": list(range(data["X_centred"].shape[1])), "community": list(groups)}
    compiled = nutpie_model(data, mean_sd=MU_SD, coords=coords)
    idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains,
                          cores=min(chains, 2), seed=random_seed, target_accept=target_accept,
                          progress_bar=False, low_rank_modified_mass_matrix=True)
    check_complete(idata, draws=draws)   # Ctrl-C gives the draws so far: stop, don't fit on them
    return idata


def sample(model, *, sampler: str, draws: int, tune: int, chains: int, random_seed: int,
           target_accept: float) -> tuple[az.InferenceData, str]:
    """Sample with nutpie (or PyMC NUTS when asked or when nutpie is missing)."""
    import pymc as pm

    used = sampler
    if sampler == "nutpie":
        try:
            import nutpie  # noqa: F401
        except ImportError:
            used = "pymc (nutpie could not be imported)"
    nuts = "nutpie" if used == "nutpie" else "pymc"
    extra = ({"nuts_sampler_kwargs": {"low_rank_modified_mass_matrix": True,
                                      **compile_kwargs(nutpie_backend())}}
             if nuts == "nutpie" else {})
    with model:
        idata = pm.sample(draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                          nuts_sampler=nuts, target_accept=target_accept, progressbar=False,
                          cores=min(chains, 2), compute_convergence_checks=False, **extra)
    return idata, used


def event_quantile_bounds(stop: pd.Series, event: pd.Series, *,
                          pieces: int) -> tuple[float, ...]:
    """Piece boundaries at quantiles of the event times (about as many events in each piece).

    With a baseline hazard that changes fast (high early churn), wide fixed pieces bias the
    member hazard ratio downward when membership starts later in follow-up: the non-member
    days sit early in each piece, where the hazard is higher than the piece's average
    (``benchmarks/bayes_survival_vs_cox.py``; issue 18).

    Examples
    --------
    >>> event_quantile_bounds(pd.Series([1.0, 2, 3, 4, 5, 6]), pd.Series([1] * 6), pieces=3)
    (0.0, 2.7, 4.3)
    """
    times = stop.to_numpy(float)[event.astype(bool).to_numpy()]
    if times.size == 0 or pieces < 2:
        return (0.0,)
    cuts = np.unique(np.round(np.quantile(times, np.linspace(0, 1, pieces + 1)[1:-1]), 1))
    return (0.0, *[float(c) for c in cuts if c > 0])


def hdi_entry(values: np.ndarray) -> dict[str, Any]:
    """Posterior mean of a hazard ratio with its 94% HDI.

    Examples
    --------
    >>> hdi_entry(np.exp(np.random.default_rng(0).normal(-0.3, 0.01, 4000)))["interval"]
    '94% HDI'
    """
    return _entry(values, key="hazard_ratio")


def cells_refusal_reason(cells: pd.DataFrame) -> str | None:
    """Why the model must refuse these person-period cells (no churn event, no member or no
    non-member time), in the words of :func:`~roi.retention.cox_time_varying.refusal_reason`
    on the rows: it reads a stand-in table with one row per member status the cells hold.

    Examples
    --------
    >>> cells = pd.DataFrame({"member": [0, 1], "events": [0.0, 0.0], "exposure": [5.0, 3.0]})
    >>> cells_refusal_reason(cells)[:15]
    'no churn events'
    """
    statuses = sorted(set(cells.loc[cells["exposure"] > 0, "member"].astype(int)))
    churned = bool(cells["events"].sum() > 0)
    stand_in = pd.DataFrame({"start": 0.0, "stop": 1.0, "member": statuses,
                             "event": [int(churned)] + [0] * (len(statuses) - 1)})
    if stand_in.empty:
        return "no rows in the survival table"
    return refusal_reason(stand_in, columns=list(stand_in), start="start", stop="stop",
                          event="event", member="member")


class BayesianPiecewiseSurvival:
    """Bayesian piecewise-exponential churn model with community-pooled membership effects.

    :meth:`fit` builds the cells from the start-stop table in memory; :meth:`fit_cells` fits
    cells built elsewhere (``roi run`` computes them in the database:
    :func:`roi.retention.cells_sql.person_period_cells_sql`); the same cells give the same
    draws either way (exposure rounded to the database's 9 decimals, cells in key order).

    Parameters
    ----------
    intervals_days : "events" or sequence of float
        ``"events"`` (default): ``pieces`` pieces cut at quantiles of the event times (see the
        module notes on the bias of wide pieces where the hazard changes fast); or piece
        boundaries in days since first seen, starting at 0 (e.g. ``DEFAULT_INTERVALS``); the
        last piece is open. The boundaries used are in ``intervals_days_``.
    pieces : int
        Number of pieces for ``intervals_days="events"``.
    draws, tune, chains : int
        Posterior draws and tuning steps per chain, and the number of chains.
    sampler : {"nutpie", "pymc"}
        NUTS implementation; ``nutpie`` falls back to ``pymc`` if it cannot be imported.
    random_seed : int
        Seed of the sampler.
    target_accept : float
        NUTS target acceptance rate.
    numeric_bins : int
        Quantile bins for numeric covariates in the cell table.

    Attributes
    ----------
    result_ : EffectResult
        Pooled hazard ratio (member-exposure-weighted mean of community log-HRs, exponentiated),
        94% HDI, ``by_group`` per community; ``tables``: ``posterior`` (summary of all terms),
        ``cells`` size in ``diagnostics.checks``.
    idata_ : arviz.InferenceData
        The posterior.
    cells_ : DataFrame
        The person-period cells the model was fitted on.
    term_names_, references_, edges_, groups_ :
        Covariate indicator names, reference levels, numeric bin edges, communities.

    Examples
    --------
    >>> from roi.simulate import simulate_world
    >>> from connectors import open_source
    >>> from roi.data import load_dataset
    >>> ds = load_dataset(open_source(simulate_world(n_customers=2000, seed=3).tables))
    >>> model = BayesianPiecewiseSurvival(draws=300, tune=300, chains=2).fit(
    ...     ds.survival_table(), covariates=["segment", "plan"], community="community")
    >>> model.result_.interval, sorted(model.result_.by_group)
    ('94% HDI', ['discord', 'forum'])
    """

    method = "bayes_piecewise"

    def __init__(self, *, intervals_days: Sequence[float] | str = "events",
                 draws: int = 600, tune: int = 600, chains: int = 4, sampler: str = "nutpie",
                 random_seed: int = 0, target_accept: float = 0.95,
                 numeric_bins: int = 5, pieces: int = 12) -> None:
        if sampler not in ("nutpie", "pymc"):
            raise ValueError(f"sampler must be 'nutpie' or 'pymc', not {sampler!r}")
        if isinstance(intervals_days, str) and intervals_days != "events":
            raise ValueError(f"intervals_days must be day boundaries or 'events', not "
                             f"{intervals_days!r}")
        self.intervals_days = (intervals_days if isinstance(intervals_days, str)
                               else tuple(intervals_days))
        self.pieces = pieces
        self.draws, self.tune, self.chains = draws, tune, chains
        self.sampler = sampler
        self.random_seed = random_seed
        self.target_accept = target_accept
        self.numeric_bins = numeric_bins

    def fit(self, table: pd.DataFrame, *, covariates: Sequence[str] = (),
            community: str | None = None, id_col: str = "customer_id", start: str = "start",
            stop: str = "stop", event: str = "event",
            member: str = "member") -> BayesianPiecewiseSurvival:
        """Build the cells from a start-stop table and sample the posterior."""
        began = clock.perf_counter()
        names = [id_col, start, stop, event, member, *covariates] + ([community] if community
                                                                    else [])
        self.refused_ = refusal_reason(table, columns=names, start=start, stop=stop,
                                       event=event, member=member)
        if self.refused_:
            self.result_ = refused_result(method=self.method, reason=self.refused_,
                                          interval=HDI94)
            return self
        cells = start_stop_cells(table, intervals_days=self.intervals_days, pieces=self.pieces,
                                 covariates=covariates, community=community, start=start,
                                 stop=stop, event=event, member=member,
                                 numeric_bins=self.numeric_bins)
        exposed = table[member].astype(bool)
        return self.fit_cells(cells, n_treated=int(table.loc[exposed, id_col].nunique()),
                              n_obs=int((table[stop] - table[start])[exposed].sum()),
                              n_rows=len(table), began=began)

    def fit_cells(self, cells: pd.DataFrame, *, n_treated: int, n_obs: int,
                  n_rows: int | None = None,
                  began: float | None = None) -> BayesianPiecewiseSurvival:
        """Sample the posterior from person-period cells (:func:`person_period_cells`, or
        :func:`roi.retention.cells_sql.person_period_cells_sql` computed in the database);
        everything :meth:`fit` does after building them.

        The piece boundaries are ``cells.attrs["intervals_days"]`` (else this model's fixed
        ``intervals_days``), the covariates the cell columns between ``community`` and
        ``events``. ``n_treated`` (customers with member time) and ``n_obs`` (member days at
        risk) are the result's counts the cells do not hold
        (:func:`~roi.retention.cells_sql.member_exposure_sql`); ``n_rows``, the start-stop rows
        summed, goes to ``diagnostics.checks["rows"]``; ``began`` (a ``time.perf_counter()``)
        starts ``seconds_``. Refuses as :meth:`fit` does: no churn event, no member or no
        non-member time.
        """
        began = clock.perf_counter() if began is None else began
        self.refused_ = cells_refusal_reason(cells)
        if self.refused_:
            self.result_ = refused_result(method=self.method, reason=self.refused_,
                                          interval=HDI94)
            return self
        covariates = [c for c in cells.columns
                      if c not in ("piece", "member", "community", "events", "exposure")]
        self.covariates_ = covariates
        self.intervals_days_ = cells.attrs.get("intervals_days")
        if self.intervals_days_ is None:
            if self.intervals_days == "events":
                raise ValueError("fit_cells: the cells carry no attrs['intervals_days'] (their "
                                 "piece boundaries)")
            self.intervals_days_ = self.intervals_days
        X, self.term_names_, self.references_ = encode_patterns(cells, covariates=covariates)
        self.cells_, self.edges_ = cells, cells.attrs.get("edges", {})
        self.groups_ = sorted(set(cells.loc[cells["member"] == 1, "community"].astype(str)))
        settings = {"draws": self.draws, "tune": self.tune, "chains": self.chains,
                    "random_seed": self.random_seed, "target_accept": self.target_accept}
        self.logp_backend_ = logp_backend(self.sampler)
        if self.logp_backend_ == "numba" and nutpie_available():
            data = model_data(cells, X=X, groups=self.groups_)
            sampled = clock.perf_counter()
            self.idata_, used = sample_kernel(data, groups=self.groups_, **settings), "nutpie"
        else:
            self.logp_backend_ = "pytensor"
            model = build_model(cells, X=X, groups=self.groups_)
            sampled = clock.perf_counter()
            self.idata_, used = sample(model, sampler=self.sampler, **settings)
        add_pooled_mean(self.idata_.posterior, effects="theta", spread="sigma", name="mu",
                        mean_sd=MU_SD, seed=self.random_seed)
        diagnostics = convergence_gate(
            self.idata_, draws=self.draws, chains=self.chains, method="bayes_piecewise",
            var_names=("alpha_c", "beta", "theta", "sigma"),
            divergence_advice="raise target_accept or the result may be biased.")
        # Wall-clock times stay out of the results (a rerun must reproduce them byte for byte).
        self.seconds_ = {"cells_and_model": round(sampled - began, 3),
                         "sampling": round(clock.perf_counter() - sampled, 3)}
        diagnostics.checks.update({"sampler": used, "cells": len(cells), "rows": n_rows,
                                   "nutpie_backend": (nutpie_backend() if used == "nutpie"
                                                      and self.logp_backend_ == "pytensor"
                                                      else None),
                                   "logp_backend": self.logp_backend_,
                                   "events": int(cells["events"].sum()),
                                   "references": self.references_})
        if used != self.sampler:
            diagnostics.warn(f"bayes_piecewise: sampled with {used}.")
        self.result_ = self._result(diagnostics=diagnostics, n_treated=n_treated, n_obs=n_obs)
        return self

    def log_hr_draws(self) -> dict[str, np.ndarray]:
        """Posterior draws of each community's member log hazard ratio (chains stacked)."""
        theta = self.idata_.posterior["theta"].stack(sample=("chain", "draw"))
        return {g: theta.sel(community=g).to_numpy() for g in self.groups_}

    def pooled_log_hr_draws(self) -> np.ndarray:
        """Draws of the member-exposure-weighted mean of the community log hazard ratios."""
        members = self.cells_[self.cells_["member"] == 1]
        weight = members.groupby(members["community"].astype(str))["exposure"].sum()
        weight = weight / weight.sum()
        draws = self.log_hr_draws()
        return sum(weight[g] * draws[g] for g in self.groups_)

    def _result(self, *, diagnostics: Diagnostics, n_treated: int, n_obs: int) -> EffectResult:
        pooled = hdi_entry(np.exp(self.pooled_log_hr_draws()))
        result = EffectResult(method=self.method, estimand=ESTIMAND,
                              estimate=pooled["hazard_ratio"], low=pooled["low"],
                              high=pooled["high"], interval=HDI94, scale="hazard ratio",
                              n_treated=int(n_treated), n_obs=int(n_obs),
                              diagnostics=diagnostics, value_name="hazard_ratio")
        members = self.cells_[self.cells_["member"] == 1]
        events = members.groupby(members["community"].astype(str))["events"].sum()
        for g, draws in self.log_hr_draws().items():
            result.by_group[g] = {**hdi_entry(np.exp(draws)), "events": int(events[g])}
        result.by_group = dict(sorted(result.by_group.items()))
        hyper = self.idata_.posterior["mu"].to_numpy().ravel()
        result.tables["posterior"] = az.summary(self.idata_, var_names=["alpha", "beta", "mu",
                                                                        "sigma", "theta"],
                                                hdi_prob=0.94)
        result.diagnostics.checks["hr_new_community"] = hdi_entry(np.exp(hyper))
        return result

    def summary(self) -> pd.DataFrame:
        """Posterior summary (mean, sd, 94% HDI, ESS, r-hat) of every parameter (a refused
        fit: the one-row :meth:`EffectResult.summary`)."""
        if self.result_.refused:
            return self.result_.summary()
        return self.result_.tables["posterior"]
