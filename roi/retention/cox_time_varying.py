"""Community retention lift: Cox model with membership as a time-varying covariate.

The hazard ratio of churn for members against non-members (contract section 2), with membership
a state that starts at ``joined_at``: the model reads the start-stop table of
:mod:`roi.data.survival` (one row per customer interval, ``start``/``stop`` in days since first
seen, ``event`` = churned at ``stop``, ``member`` 0/1), so the time a customer survived *before*
joining counts as non-member time and the community is never credited with it (no immortal-time
bias, unlike :mod:`roi.retention.cox_naive`). Rows with ``start > 0`` are late entries (left
truncation) and are handled by the same counting-process risk sets: a row is at risk at day ``t``
when ``start < t <= stop`` (as R ``coxph(Surv(start, stop, event) ~ ...)``). Ties: Efron.
Categorical covariates get one indicator per level against the most frequent level.

Proportional hazards is checked with scaled Schoenfeld residuals (Grambsch & Therneau; the test
R's ``cox.zph`` used before survival 3.0 and lifelines' ``proportional_hazard_test`` use), with
Efron-weighted risk-set means and time transformed by ``1 - KM(t)``. A membership term whose
p-value is below ``ph_alpha`` gets a warning that names how far the hazard ratio drifts from early
to late follow-up.

Engine: :mod:`roi.retention.cox_engine` (numba), which gives statsmodels ``PHReg``'s estimates
(coefficients, model-based and cluster-robust SEs, log partial likelihood equal to 1e-8 relative,
``tests/test_cox_engine.py``) from one compiled backward sweep per Newton step; ``PHReg`` stays
selectable (``fit_cox(engine="statsmodels")`` or ``ROI_COX_ENGINE=statsmodels``). Measured on
2 shared cores (load average 5-7, so wall times are noisy; CPU seconds are the comparison),
Python 3.11, Efron ties. The first four rows are the earlier measurements that chose ``PHReg``
over lifelines (synthetic start-stop tables, 13 terms); the rest are ``world_20000_1`` (27,159
rows, 6,123 churns) and ``world_1000000_1`` (1,367,342 rows, 304,743 churns, 1,002,916
customers, 11 terms) of ``benchmarks/output``, survival table from the data layer. Peak RSS is
the whole process, with the table loaded (0.18 GiB at 20k, 0.32 GiB at 1M before the fit):

===================================================  =========  ============  =========  ========
what                                                 customers  CPU s         wall s     peak RSS
===================================================  =========  ============  =========  ========
lifelines CoxTimeVaryingFitter, one fit              99,295     --            62 / 158   0.35 GiB
                                                                              loaded
statsmodels PHReg, one fit                           99,295     --            5.7        0.33 GiB
statsmodels PHReg, one fit                           1,002,916  --            23 / 33    1.7 GiB
``CoxTimeVarying.fit`` with community (PHReg)        1,002,434  --            79 loaded  1.9 GiB
PHReg, one fit                                       20,000     0.91          0.95       0.19 GiB
cox_engine, one fit                                  20,000     0.32          0.33       0.29 GiB
PHReg, one fit, clustered by customer                20,000     3.6           17         0.21 GiB
cox_engine, one fit, clustered by customer           20,000     0.42          1.7        0.30 GiB
PHReg, one fit                                       1,000,000  15.5          20.1       0.82 GiB
cox_engine, one fit                                  1,000,000  2.8           2.9        0.77 GiB
cox_engine, one fit, clustered by customer           1,000,000  2.9           5.7        0.98 GiB
``CoxTimeVarying.fit`` with community (PHReg)        1,000,000  33.9          41.6       1.57 GiB
``CoxTimeVarying.fit`` with community (cox_engine)   1,000,000  8.8           13.0       1.49 GiB
``NaiveCox.fit`` with community (PHReg)              1,000,000  12.5          12.8       --
``NaiveCox.fit`` with community (cox_engine)         1,000,000  2.4           2.9        --
===================================================  =========  ============  =========  ========

lifelines rescans every row at every distinct event time (time ~ rows x event days), so at 1M
customers it would take about 10 minutes (extrapolated, not run). ``PHReg`` sweeps the risk set
once per Newton step too, but in Python and three times per step (log-likelihood, score,
Hessian); its clustered SEs rebuild the risk set as a Python set at every event time, too slow to
run at 1M. The engine does one sweep per step (about 0.3 s at 1M with 11 terms; sorting the rows
once costs about 0.5 s; compiling once, cached on disk, 2.2 s CPU). With the engine, the two
fits are 5.7 s of ``CoxTimeVarying.fit``'s 1M time (profiled), the Schoenfeld test 3.1 s and
the design matrix 2.8 s. The 1M estimates of the two engines agree to 2e-9 relative (hazard ratio
0.70109). The engine's memory above the table is the sorted copy of the design (n x terms) and,
for clustered SEs, the score residuals (n x terms); numba itself adds about 0.1 GiB.

Caveat handled here: ``PHReg`` counts a row as at risk at its own ``entry`` time (``entry <= t``),
so a churn on day J would count a customer who joins on day J twice (the row ending at J and the
row starting at J) and a late entrant on its first day. Entry is therefore passed as ``start``
plus half the smallest gap between distinct times, which reproduces ``start < t`` exactly
(checked against lifelines on the Stanford heart-transplant data; without it the transplant
coefficient is -0.055 instead of -0.010). lifelines is the independent implementation in the
tests.

Examples
--------
>>> from lifelines.datasets import load_stanford_heart_transplants
>>> heart = load_stanford_heart_transplants().rename(
...     columns={"id": "customer_id", "transplant": "member"})
>>> model = CoxTimeVarying().fit(heart, covariates=["age", "year", "surgery"])
>>> round(model.result_.estimate, 3), model.result_.interval
(0.99, '95% CI')
>>> model.summary().loc["member", ["coef", "se"]].round(4).tolist()
[-0.0103, 0.3138]
"""

from __future__ import annotations

import os
import time as clock
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from roi.results import CI95, Diagnostics, EffectResult, refused_effect
from roi.retention.survival_curves import kaplan_meier, survival_at

ESTIMAND = "community_retention_lift"
Z95 = float(stats.norm.ppf(0.975))
ENGINES = {"numba": "roi.retention.cox_engine (PHReg's estimates; Efron ties)",
           "statsmodels": "statsmodels PHReg (Efron ties)"}


@dataclass
class CoxFit:
    """A fitted Cox model on the original covariate scale."""

    names: list[str]
    params: np.ndarray
    cov: np.ndarray
    converged: bool
    newton_step: float
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))

    def table(self) -> pd.DataFrame:
        """Coefficients, SEs, z, p and hazard ratios with 95% CIs, one row per term."""
        se = self.se
        z = self.params / se
        with np.errstate(over="ignore"):  # a diverging term gives inf; callers refuse it
            return pd.DataFrame({"coef": self.params, "se": se, "z": z,
                                 "p": 2 * stats.norm.sf(abs(z)),
                                 "hazard_ratio": np.exp(self.params),
                                 "low": np.exp(self.params - Z95 * se),
                                 "high": np.exp(self.params + Z95 * se)},
                                index=pd.Index(self.names, name="term"))


def counting_process_entry(start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """Entry times that make ``PHReg``'s ``entry <= t`` risk set equal ``start < t``.

    Examples
    --------
    >>> counting_process_entry(np.array([0, 10]), np.array([10, 30])).tolist()
    [5.0, 15.0]
    """
    distinct = np.unique(np.concatenate([start, stop]).astype(float))
    gap = float(np.diff(distinct).min()) if len(distinct) > 1 else 1.0
    return np.asarray(start, dtype=float) + gap / 2


def fit_cox(X: pd.DataFrame, *, stop: np.ndarray, event: np.ndarray,
            start: np.ndarray | None = None, ties: str = "efron",
            groups: np.ndarray | None = None, initial: np.ndarray | None = None,
            engine: str | None = None) -> CoxFit:
    """Fit a Cox model on standardised columns and map back to ``X``'s scale.

    ``start`` gives counting-process rows (left truncation, time-varying covariates);
    ``groups`` gives cluster-robust (sandwich) standard errors; ``initial`` are starting
    coefficients on ``X``'s scale (a warm start saves Newton steps on large tables).
    ``engine`` is ``"numba"`` (:mod:`roi.retention.cox_engine`, the default) or
    ``"statsmodels"`` (``PHReg``: same estimates, slower); the environment variable
    ``ROI_COX_ENGINE`` sets the default. ``extra`` holds the engine, the log partial
    likelihood and the number of Newton steps.

    Examples
    --------
    >>> from lifelines.datasets import load_rossi
    >>> rossi = load_rossi()
    >>> fit = fit_cox(rossi[["fin", "age", "race", "wexp", "mar", "paro", "prio"]],
    ...               stop=rossi["week"].to_numpy(), event=rossi["arrest"].to_numpy())
    >>> fit.table().loc["fin", ["coef", "se"]].round(4).tolist()
    [-0.3794, 0.1914]
    """
    began = clock.perf_counter()
    engine = engine or os.environ.get("ROI_COX_ENGINE", "numba")
    if engine not in ("numba", "statsmodels"):
        raise ValueError(f"engine must be 'numba' or 'statsmodels', not {engine!r}")
    x = X.to_numpy(dtype=float)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    entry = None if start is None else counting_process_entry(start, stop)
    start_params = None if initial is None else np.asarray(initial) * scale
    fitter = _fit_phreg if engine == "statsmodels" else _fit_engine
    params, cov, step, converged, extra = fitter(
        x / scale, stop=np.asarray(stop, dtype=float), event=np.asarray(event, dtype=int),
        entry=entry, ties=ties, groups=groups, start_params=start_params)
    newton_step = float(np.max(np.abs(step))) if len(step) else 0.0
    converged = (converged and bool(np.all(np.isfinite(params)) and np.all(np.isfinite(cov)))
                 and newton_step < 1e-3)
    return CoxFit(names=list(X.columns), params=params / scale, cov=cov / np.outer(scale, scale),
                  converged=converged, newton_step=newton_step,
                  seconds=clock.perf_counter() - began, extra={"engine": engine, **extra})


def _fit_engine(x: np.ndarray, *, stop: np.ndarray, event: np.ndarray, entry: np.ndarray | None,
                ties: str, groups: np.ndarray | None,
                start_params: np.ndarray | None) -> tuple[Any, ...]:
    """:func:`roi.retention.cox_engine.fit_cox_engine`; the step is the last Newton step in
    standard errors (an upper bound on the remaining one: it has been applied)."""
    from roi.retention.cox_engine import fit_cox_engine

    res = fit_cox_engine(x, time=stop, status=event, entry=entry, ties=ties, groups=groups,
                         start_params=start_params)
    with np.errstate(invalid="ignore", divide="ignore"):
        step = res.step / np.sqrt(np.diag(res.naive_cov))
    step = np.where(np.isnan(step), np.inf, step)
    return res.params, res.cov, step, res.converged, {
        "loglik": res.loglik, "iterations": res.iterations, "message": res.message}


def _fit_phreg(x: np.ndarray, *, stop: np.ndarray, event: np.ndarray, entry: np.ndarray | None,
               ties: str, groups: np.ndarray | None,
               start_params: np.ndarray | None) -> tuple[Any, ...]:
    """statsmodels ``PHReg``; the step is the remaining Newton step in standard errors."""
    model = PHReg(stop, x, status=event, entry=entry, ties=ties)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        res = model.fit(groups=groups, start_params=start_params)
    params = np.asarray(res.params)
    cov = np.asarray(res.cov_params())
    naive = cov if groups is None else np.linalg.pinv(-model.hessian(params))
    step = naive @ model.score(params) / np.sqrt(np.diag(naive))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return params, cov, step, converged, {"loglik": float(model.loglike(params))}


def warm_start(main: CoxFit, *, n_terms: int) -> np.ndarray:
    """Start a split-by-community fit at the pooled one: each community term at the pooled value.

    Examples
    --------
    >>> main = CoxFit(names=["member", "age"], params=np.array([-0.3, 0.1]), cov=np.eye(2),
    ...               converged=True, newton_step=0.0, seconds=0.0)
    >>> warm_start(main, n_terms=2).tolist()
    [-0.3, -0.3, 0.1]
    """
    return np.concatenate([np.repeat(main.params[0], n_terms), main.params[1:]])


def design_matrix(frame: pd.DataFrame, *, columns: Sequence[str],
                  max_levels: int = 50) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Numeric design for covariates: numbers as they are, one indicator per non-reference level.

    The reference level of a categorical is its most frequent one; a missing categorical value is
    its own level ``(missing)``; a missing number is an error (nothing is dropped silently).
    Columns that do not vary are dropped and reported in ``info["dropped_constant"]``.

    Examples
    --------
    >>> frame = pd.DataFrame({"plan": ["a", "b", "a"], "spend": [1.0, 2.0, 3.0]})
    >>> list(design_matrix(frame, columns=["plan", "spend"])[0].columns)
    ['plan[b]', 'spend']
    """
    parts, references = [], {}
    for name in columns:
        column = frame[name]
        if _is_categorical(column):
            part, references[name] = _indicators(column, name=name, max_levels=max_levels)
        else:
            part = _numeric(column, name=name)
        parts.append(part)
    design = (pd.concat(parts, axis=1) if parts else pd.DataFrame(index=frame.index))
    values = design.to_numpy(dtype=float)
    constant = [c for c, lo, hi in zip(design.columns, values.min(axis=0, initial=np.inf),
                                       values.max(axis=0, initial=-np.inf), strict=True)
                if lo == hi]
    info = {"references": references, "dropped_constant": constant}
    return design.drop(columns=constant), info


def _is_categorical(column: pd.Series) -> bool:
    return (isinstance(column.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(column)
            or pd.api.types.is_string_dtype(column))


def _indicators(column: pd.Series, *, name: str,
                max_levels: int) -> tuple[pd.DataFrame, str]:
    values = column.astype("string").fillna("(missing)")
    counts = values.value_counts(sort=False)
    if len(counts) > max_levels:
        raise ValueError(f"survival table: covariate {name!r} has {len(counts)} levels (more than "
                         f"max_levels={max_levels}); group rare levels or leave it out")
    reference = sorted(counts.index, key=lambda level: (-counts[level], level))[0]
    levels = sorted(level for level in counts.index if level != reference)
    data = {f"{name}[{level}]": (values == level).to_numpy(dtype=float) for level in levels}
    return pd.DataFrame(data, index=column.index), reference


def _numeric(column: pd.Series, *, name: str) -> pd.DataFrame:
    values = pd.to_numeric(column, errors="coerce").astype(float)
    bad = int(values.isna().sum())
    if bad:
        examples = column[values.isna()].head(3).tolist()
        raise ValueError(f"survival table: covariate {name!r} has {bad} missing or non-numeric "
                         f"value(s), e.g. {examples}; fill or drop them before fitting")
    return values.to_frame(name)


def community_terms(indicator: pd.Series, community: pd.Series, *,
                    prefix: str = "member") -> pd.DataFrame:
    """Membership split by community: ``member:<name>`` = member and in that community.

    Examples
    --------
    >>> community_terms(pd.Series([0, 1, 1]), pd.Series([None, "forum", "discord"]))
       member:discord  member:forum
    0             0.0           0.0
    1             0.0           1.0
    2             1.0           0.0
    """
    on = indicator.to_numpy(dtype=float)
    names = community.astype("string").fillna("(unknown)").to_numpy()
    levels = sorted(set(names[on > 0]))
    data = {f"{prefix}:{level}": on * (names == level) for level in levels}
    return pd.DataFrame(data, index=indicator.index, dtype=float)


def schoenfeld_residuals(X: np.ndarray, *, params: np.ndarray, stop: np.ndarray,
                         event: np.ndarray,
                         start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Schoenfeld residuals with Efron-weighted risk-set means, one row per event.

    Returns the residuals (events x terms, in the order of the event rows) and the event times.
    Vectorised: risk-set sums come from reverse cumulative sums over rows sorted by ``stop`` and
    by ``start`` (at risk at ``t``: ``start < t <= stop``).

    Examples
    --------
    >>> resid, times = schoenfeld_residuals(np.array([[0.0], [1.0], [1.0]]), params=np.zeros(1),
    ...                                     stop=np.array([1, 2, 3]), event=np.array([1, 1, 0]))
    >>> resid.ravel().round(3).tolist(), times.tolist()
    ([-0.667, 0.0], [1.0, 2.0])
    """
    ev = np.asarray(event).astype(bool)
    stop = np.asarray(stop, dtype=float)
    linear = X @ params
    phi = np.exp(linear - linear.max())
    weights = np.column_stack([phi, phi[:, None] * X])
    times, inverse, ties = np.unique(stop[ev], return_inverse=True, return_counts=True)
    risk = _risk_set_sums(weights, stop=stop, start=start, times=times)
    tied = np.zeros_like(risk)
    np.add.at(tied, inverse, weights[ev])
    first = np.cumsum(ties) - ties
    group = np.repeat(np.arange(len(times)), ties)
    fraction = (np.arange(len(group)) - first[group]) / ties[group]
    steps = risk[group] - fraction[:, None] * tied[group]
    means = np.add.reduceat(steps[:, 1:] / steps[:, :1], first, axis=0) / ties[:, None]
    return X[ev] - means[inverse], stop[ev]


def _risk_set_sums(weights: np.ndarray, *, stop: np.ndarray, start: np.ndarray | None,
                   times: np.ndarray) -> np.ndarray:
    def at_or_after(keys: np.ndarray) -> np.ndarray:
        order = np.argsort(keys, kind="stable")
        sums = np.cumsum(weights[order][::-1], axis=0)[::-1]
        sums = np.vstack([sums, np.zeros((1, weights.shape[1]))])
        return sums[np.searchsorted(keys[order], times, side="left")]

    total = at_or_after(stop)
    if start is not None:
        total = total - at_or_after(np.asarray(start, dtype=float))
    return total


def proportional_hazards_test(X: np.ndarray, *, fit: CoxFit, stop: np.ndarray,
                              event: np.ndarray, start: np.ndarray | None = None,
                              transform: str = "km") -> pd.DataFrame:
    """Grambsch–Therneau test of proportional hazards from scaled Schoenfeld residuals.

    ``transform`` is the time scale the residuals are correlated with: ``km`` (1 - Kaplan–Meier,
    R's default), ``rank``, ``identity`` or ``log``. ``hr_early`` and ``hr_late`` are the hazard
    ratios implied by the fitted drift at the 10th and 90th percentiles of churn times.

    Examples
    --------
    >>> from lifelines.datasets import load_rossi
    >>> rossi = load_rossi()
    >>> X = rossi[["fin", "age", "race", "wexp", "mar", "paro", "prio"]]
    >>> arrays = {"stop": rossi["week"].to_numpy(), "event": rossi["arrest"].to_numpy()}
    >>> fit = fit_cox(X, **arrays)
    >>> test = proportional_hazards_test(X.to_numpy(float), fit=fit, **arrays)
    >>> test.loc["age", ["statistic", "p"]].round(4).tolist()
    [11.0303, 0.0009]
    """
    resid, times = schoenfeld_residuals(X, params=fit.params, stop=stop, event=event, start=start)
    events = len(times)
    g = _time_scale(times, stop=stop, event=event, start=start, transform=transform)
    g = g - g.mean()
    gg = float(g @ g)
    test = g @ (events * resid @ fit.cov)
    statistic = test**2 / (events * np.diag(fit.cov) * gg)
    order = np.argsort(times, kind="stable")
    g_early, g_late = np.interp(np.quantile(times, [0.1, 0.9]), times[order], g[order])
    overall = float(test @ np.linalg.solve(fit.cov, test) / (events * gg))
    table = pd.DataFrame({"statistic": statistic, "df": 1, "p": stats.chi2.sf(statistic, 1),
                          "hr_early": np.exp(fit.params + test / gg * g_early),
                          "hr_late": np.exp(fit.params + test / gg * g_late)},
                         index=pd.Index(fit.names, name="term"))
    table.loc["GLOBAL"] = [overall, len(fit.names), stats.chi2.sf(overall, len(fit.names)),
                           np.nan, np.nan]
    return table


def _time_scale(times: np.ndarray, *, stop: np.ndarray, event: np.ndarray,
                start: np.ndarray | None, transform: str) -> np.ndarray:
    if transform == "km":
        km = kaplan_meier(stop, event, entry=start)
        return 1.0 - survival_at(km, times)["survival"].to_numpy()
    if transform == "rank":
        return stats.rankdata(times)
    if transform == "identity":
        return times.astype(float)
    if transform == "log":
        return np.log(times)
    raise ValueError(f"transform must be km, rank, identity or log, not {transform!r}")


def check_start_stop(table: pd.DataFrame, *, columns: Sequence[str], start: str, stop: str,
                     event: str, member: str) -> None:
    """Clear errors for a start-stop table that cannot be fitted (names column, rule, count)."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"survival table: missing column(s) {missing}")
    rules = {f"{stop} > {start}": ~(table[stop] > table[start]),
             f"{event} is 0 or 1": ~table[event].isin([0, 1, True, False]),
             f"{member} is 0 or 1": ~table[member].isin([0, 1, True, False])}
    for rule, broken in rules.items():
        if broken.any():
            examples = table.loc[broken, [start, stop, event, member]].head(3).to_dict("records")
            raise ValueError(f"survival table: {int(broken.sum())} row(s) break the rule {rule}, "
                             f"e.g. {examples}")
    if not table[event].astype(bool).any():
        raise NotIdentified("no churn events in the survival table, so no hazard (and no "
                            "hazard ratio) can be estimated")
    if not table[member].astype(bool).any():
        raise NotIdentified("no member time in the survival table, so members cannot be "
                            "compared with non-members")
    if table[member].astype(bool).all():
        raise NotIdentified("no non-member time in the survival table (everyone is a member "
                            "throughout), so members cannot be compared with non-members")


def refusal_reason(table: pd.DataFrame, *, columns: Sequence[str], start: str, stop: str,
                   event: str, member: str) -> str | None:
    """Why the survival models must refuse ``table`` (no events, no member or no non-member
    time), or None when it can be fitted; a malformed table still raises ``ValueError``.

    Examples
    --------
    >>> t = pd.DataFrame({"id": [1, 2], "start": [0, 0], "stop": [5, 6], "event": [0, 0],
    ...                   "member": [0, 1]})
    >>> refusal_reason(t, columns=list(t), start="start", stop="stop", event="event",
    ...                member="member")[:15]
    'no churn events'
    """
    try:
        check_start_stop(table, columns=columns, start=start, stop=stop, event=event,
                         member=member)
    except NotIdentified as exc:
        return str(exc)
    return None


class NotIdentified(ValueError):
    """The data cannot identify the estimate at all (no churn events, no member time). The
    estimators catch it and return :func:`refused_result` instead of a number."""


def refused_result(*, method: str, reason: str, interval: str = CI95) -> EffectResult:
    """A hazard-ratio result that says why there is no estimate: null numbers,
    ``converged = False``, the reason in ``warnings`` and in ``checks["refused"]``."""
    return refused_effect(method=method, estimand=ESTIMAND, reason=reason, interval=interval,
                          scale="hazard ratio", value_name="hazard_ratio")


def hazard_ratio_result(fit: CoxFit, *, term: str, method: str, n_treated: int | None,
                        n_obs: int | None) -> EffectResult:
    """The ``EffectResult`` for one hazard-ratio term of a fitted Cox model."""
    row = fit.table().loc[term]
    diagnostics = Diagnostics(converged=fit.converged)
    if not fit.converged:
        diagnostics.warn(f"{method}: the Cox fit did not converge (remaining Newton step "
                         f"{fit.newton_step:.2g} standard errors); do not rely on it.")
    return EffectResult(method=method, estimand=ESTIMAND, estimate=float(row["hazard_ratio"]),
                        low=float(row["low"]), high=float(row["high"]), interval=CI95,
                        scale="hazard ratio", n_treated=n_treated, n_obs=n_obs,
                        diagnostics=diagnostics, value_name="hazard_ratio")


def add_by_group(result: EffectResult, fit: CoxFit, *, prefix: str, ids: pd.Series,
                 exposed: pd.Series, churned: pd.Series, labels: pd.Series) -> None:
    """Per-community hazard ratios (terms ``<prefix>:<name>``) into ``result.by_group``.

    A community whose members never churn, or whose interval is not finite (one member, say),
    gets null numbers and ``refused`` with the reason: its coefficient runs off to infinity and
    no number would be honest. When the joint per-community fit does not converge, every entry
    says ``converged: false``; the pooled hazard ratio comes from its own fit and keeps its
    status."""
    table = fit.table()
    names = labels.astype("string").fillna("(unknown)")
    for term in [t for t in fit.names if t.startswith(f"{prefix}:")]:
        name = term.split(":", 1)[1]
        rows = exposed & (names == name)
        entry = {"hazard_ratio": float(table.loc[term, "hazard_ratio"]),
                 "low": float(table.loc[term, "low"]), "high": float(table.loc[term, "high"]),
                 "interval": CI95, "n_treated": int(ids[rows].nunique()),
                 "events": int(churned[rows].sum())}
        result.by_group[name] = _refuse_degenerate(result, entry, name=name)
        if not fit.converged:
            result.by_group[name]["converged"] = False
    if not fit.converged:
        result.diagnostics.warn(f"{result.method}: the per-community Cox fit did not converge; "
                                "the per-community hazard ratios are not reliable (the pooled "
                                "one comes from its own fit).")


def _refuse_degenerate(result: EffectResult, entry: dict[str, Any], *,
                       name: str) -> dict[str, Any]:
    numbers = (entry["hazard_ratio"], entry["low"], entry["high"])
    finite = all(np.isfinite(v) and v > 0 for v in numbers)
    if entry["events"] and finite:
        if entry["events"] < 10:
            result.diagnostics.warn(f"{result.method}: only {entry['events']} churn event(s) "
                                    f"among members of {name}; its hazard ratio is unreliable.")
        return entry
    reason = (f"no churn events among its {entry['n_treated']} member(s)" if not entry["events"]
              else f"the interval is not finite ({entry['n_treated']} member(s))")
    result.diagnostics.warn(f"{result.method}: no hazard ratio for {name}: {reason}.")
    return {**entry, "hazard_ratio": None, "low": None, "high": None,
            "refused": f"not estimated: {reason}"}


class CoxTimeVarying:
    """Cox PH with time-varying membership on a start-stop table, adjusted for covariates.

    Parameters
    ----------
    ties : {"efron", "breslow"}
        Handling of churns on the same day.
    robust : bool
        Cluster-robust (sandwich) standard errors by customer. Off by default: with
        non-overlapping intervals per customer the model-based SE is the usual one (R ``coxph``).
    ph_alpha : float
        A membership term whose proportional-hazards test p-value is below this gets a warning.
    ph_transform : {"km", "rank", "identity", "log"}
        Time scale of the Schoenfeld test.
    max_levels : int
        Largest number of levels accepted for a categorical covariate.

    Attributes
    ----------
    result_ : EffectResult
        Hazard ratio of ``member`` (``value_name="hazard_ratio"``); ``n_treated`` = customers
        with member time, ``n_obs`` = member-days at risk. Per-community ratios (each with
        ``hazard_ratio``, ``low``, ``high``, ``interval``, ``n_treated``, ``events``) in
        ``by_group``, from a second fit with one ``member:<community>`` term per community;
        ``tables`` holds ``coefficients``, ``ph_test`` and, with a community column,
        ``coefficients_by_community``; ``diagnostics.checks`` the counts, the reference levels,
        the PH p-values and the fit time.
    coefficients_ : DataFrame
        All coefficients (``coef``, ``se``, ``z``, ``p``, ``hazard_ratio``, ``low``, ``high``).
    ph_test_ : DataFrame
        Scaled Schoenfeld test per term and ``GLOBAL``.

    Examples
    --------
    See the module docstring.
    """

    method = "cox_time_varying"

    def __init__(self, *, ties: str = "efron", robust: bool = False, ph_alpha: float = 0.01,
                 ph_transform: str = "km", max_levels: int = 50) -> None:
        self.ties = ties
        self.robust = robust
        self.ph_alpha = ph_alpha
        self.ph_transform = ph_transform
        self.max_levels = max_levels

    def fit(self, table: pd.DataFrame, *, covariates: Sequence[str] | str = (),
            id_col: str = "customer_id", start: str = "start", stop: str = "stop",
            event: str = "event", member: str = "member",
            community: str | None = None) -> CoxTimeVarying:
        """Fit on a start-stop table; ``covariates`` are column names (numbers or categories)
        or a formula right-hand side in patsy syntax (``"age + I(age**2) + C(plan)"``)."""
        if isinstance(covariates, str):
            from roi.revenue_lift.panel_input import formula_covariates

            table, covariates = formula_covariates(table, covariates,
                                                   estimator=type(self).__name__)
        names = [id_col, start, stop, event, member, *covariates] + ([community] if community
                                                                    else [])
        self.refused_ = refusal_reason(table, columns=names, start=start, stop=stop,
                                       event=event, member=member)
        if self.refused_:
            self.result_ = refused_result(method=self.method, reason=self.refused_)
            return self
        covs, info = design_matrix(table, columns=covariates, max_levels=self.max_levels)
        arrays = {"start": table[start].to_numpy(dtype=float),
                  "stop": table[stop].to_numpy(dtype=float),
                  "event": table[event].to_numpy(dtype=int)}
        groups = pd.factorize(table[id_col])[0] if self.robust else None
        design = pd.concat([table[member].astype(float).rename("member"), covs], axis=1)
        fit = fit_cox(design, **arrays, ties=self.ties, groups=groups)
        self.coefficients_ = fit.table()
        self.ph_test_ = proportional_hazards_test(design.to_numpy(dtype=float), fit=fit,
                                                  transform=self.ph_transform, **arrays)
        exposed = table[member].astype(bool)
        self.result_ = hazard_ratio_result(
            fit, term="member", method=self.method, n_treated=int(table.loc[exposed, id_col]
                                                                  .nunique()),
            n_obs=int((table[stop] - table[start])[exposed].sum()))
        self._record(table, fit=fit, info=info, id_col=id_col, exposed=exposed, event=event,
                     start=start, stop=stop)
        if community is not None:
            self._fit_by_community(table, covs=covs, arrays=arrays, groups=groups, main=fit,
                                   id_col=id_col, exposed=exposed, event=event,
                                   community=community)
        return self

    def _record(self, table: pd.DataFrame, *, fit: CoxFit, info: dict[str, Any], id_col: str,
                exposed: pd.Series, event: str, start: str, stop: str) -> None:
        result, ph = self.result_, self.ph_test_
        days = table[stop] - table[start]
        result.tables.update({"coefficients": self.coefficients_, "ph_test": ph})
        result.diagnostics.checks.update({
            "engine": ENGINES[fit.extra.get("engine", "numba")], "newton_step": fit.newton_step,
            "customers": int(table[id_col].nunique()), "rows": len(table),
            "events": int(table[event].sum()), "member_events": int(table[event][exposed].sum()),
            "member_days": float(days[exposed].sum()), "non_member_days": float(days[~exposed]
                                                                                .sum()),
            "covariate_terms": fit.names[1:], "references": info["references"],
            "dropped_constant": info["dropped_constant"],
            "ph_p": {k: float(v) for k, v in ph["p"].items()}})
        if info["dropped_constant"]:
            result.diagnostics.warn(f"{self.method}: covariate term(s) that do not vary were left "
                                    f"out: {', '.join(info['dropped_constant'])}.")
        member_events = result.diagnostics.checks["member_events"]
        if member_events < 20:
            result.diagnostics.warn(f"{self.method}: only {member_events} churn events among "
                                    "members; the hazard ratio is imprecise.")
        _warn_proportional_hazards(result.diagnostics, ph, alpha=self.ph_alpha,
                                   method=self.method)

    def _fit_by_community(self, table: pd.DataFrame, *, covs: pd.DataFrame,
                          arrays: dict[str, np.ndarray], groups: np.ndarray | None, main: CoxFit,
                          id_col: str, exposed: pd.Series, event: str, community: str) -> None:
        terms = community_terms(table[exposed.name].astype(float), table[community])
        fit = fit_cox(pd.concat([terms, covs], axis=1), **arrays, ties=self.ties, groups=groups,
                      initial=warm_start(main, n_terms=terms.shape[1]))
        self.result_.tables["coefficients_by_community"] = fit.table()
        add_by_group(self.result_, fit, prefix="member", ids=table[id_col], exposed=exposed,
                     churned=table[event].astype(bool), labels=table[community])

    def summary(self) -> pd.DataFrame:
        """All coefficients with hazard ratios and 95% CIs (a refused fit: the one-row
        :meth:`EffectResult.summary` with the reason in ``result_.refused``)."""
        if self.result_.refused:
            return self.result_.summary()
        return self.coefficients_


def _warn_proportional_hazards(diagnostics: Diagnostics, ph: pd.DataFrame, *, alpha: float,
                               method: str) -> None:
    terms = ph.drop(index="GLOBAL")
    if terms.loc["member", "p"] < alpha:
        row = terms.loc["member"]
        diagnostics.warn(
            f"{method}: proportional hazards doubtful for membership (scaled Schoenfeld test "
            f"p={row['p']:.2g}): the hazard ratio drifts from {row['hr_early']:.2f} early to "
            f"{row['hr_late']:.2f} late in follow-up; read it as an average over follow-up.")
    others = [t for t in terms.index[terms["p"] < alpha] if t != "member"]
    if others:
        diagnostics.warn(f"{method}: proportional hazards doubtful for covariate term(s) "
                         f"{', '.join(others)} (p < {alpha:g}); consider stratifying on them.")
