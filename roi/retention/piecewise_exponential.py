"""Community retention lift, frequentist: piecewise-exponential hazard on person-period cells.

The same cells as the Bayesian survival model (:mod:`roi.retention.bayes_survival`: piece of
time since first seen x member x community x covariate pattern -> churn ``events`` and at-risk
``exposure`` days), computed in the database at any number of customers
(:func:`roi.retention.cells_sql.person_period_cells_sql`) or in memory from a start-stop table
(:meth:`PiecewiseExponentialHazard.fit`, which builds them with the Bayesian model's builder and
calls :meth:`~PiecewiseExponentialHazard.fit_cells`: one implementation). Model, by maximum
likelihood (a Poisson GLM with a log-exposure offset, solved by Newton's method on the cells)::

    log E[events_j] = log exposure_j + alpha[piece_j] + x_j' beta + member_j * theta

``exp(theta)`` is the hazard ratio of churn for members against non-members with membership a
time-varying state, adjusted for covariates and for time since first seen: the estimand and
scale of :class:`~roi.retention.cox_time_varying.CoxTimeVarying` (whose baseline is free where
this one is constant within a piece; pieces at event-time quantiles keep that difference small,
see the bias of wide pieces in :mod:`roi.retention.bayes_survival`). Covariates enter as the
cells carry them: categories against their level with most exposure, numeric ones in quantile
bins. Per community, as Cox's ``by_group``: a second fit with one ``member:<community>`` term
per community in place of ``member`` (one model, shared baseline and covariates).

**Why the model-based (Poisson) standard errors are right.** Each customer's start-stop rows
split into pieces; with a hazard constant within a piece, a customer's likelihood is the product
over its pieces of ``h^d exp(-h t)`` (``d`` = churned in that piece, ``t`` = days at risk in
it), which is the Poisson likelihood of ``d`` with mean ``h t`` up to a factor without
parameters. The cells' Poisson likelihood is the product of those terms, so the MLE, the
observed information and the Wald intervals are the survival likelihood's own (the counting
process martingale argument, as for Cox's model-based SE), not a Poisson working assumption: the
``d`` of one customer are not independent Poisson counts, but the likelihood is the same
function. No dispersion is estimated (a Pearson ratio of 0/1 churns means nothing here), and
cluster-robust SEs would need per-customer scores the cells do not keep; Cox's default is the
model-based SE too.

Degenerate cells: a piece or covariate level without churn has its coefficient at minus
infinity; its cells then contribute nothing to the likelihood, so they are left out (exactly
the profile likelihood) and named in ``diagnostics.checks["dropped_no_events"]`` (with any term
aliased with earlier ones, as R leaves them out). A community whose members never churn gets
``refused`` in ``by_group``, as in Cox; a fit that does not converge (separation) says so.

Proportional hazards: a likelihood-ratio test of one member effect per piece against a single
one (``checks["ph_p"]["member"]``; ``checks["hr_by_piece"]``); below ``ph_alpha`` a warning
names the ratios in the first and last pieces.

Measured (issue 19; ``benchmarks/piecewise_vs_cox.py``, 2026-12-05: cells from the database,
covariates segment, region, acquisition_channel, plan and employees as the run passes them, 12
pieces at event-time quantiles; Cox on the start-stop table; true hazard ratio 0.70 in every
``truth.json``; hazard ratio (95% CI))::

    data/sample (3,000 customers, 4,120 rows, 5,690 cells, 249 member churns)
                            overall                 discord                 forum
    piecewise_exponential   0.7213 (0.6187-0.8410)  0.7261 (0.6058-0.8702)  0.7134 (0.5711-0.8912)
    cox_time_varying        0.7195 (0.6172-0.8387)  0.7240 (0.6043-0.8676)  0.7119 (0.5699-0.8893)
    world_200000_1 (200,000 customers, 273,439 rows, 10,053 cells, 15,802 member churns)
    piecewise_exponential   0.7011 (0.6879-0.7145)  0.7014 (0.6855-0.7176)  0.7007 (0.6821-0.7198)
    cox_time_varying        0.7011 (0.6880-0.7146)  0.7015 (0.6856-0.7178)  0.7006 (0.6820-0.7197)
    world_1000000_1 (1,002,916 customers, 1,367,342 rows, 11,263 cells)
    piecewise_exponential   0.7013 (0.6954-0.7073)  0.6992 (0.6921-0.7064)  0.7044 (0.6960-0.7130)
    cox_time_varying        0.7011 (0.6952-0.7071)  0.6990 (0.6919-0.7062)  0.7042 (0.6958-0.7127)

The log hazard ratios differ by at most 0.003 on the sample (under 4% of the overall standard
error, 0.078), 0.0002 at 200k (2% of 0.0097) and 0.0003 at 1M (7% of 0.0043); interval widths
by under 1%. ``fit_cells`` on the database's cells and ``fit`` on the table in memory give the
same coefficients (relative difference 0.0: the same cells). CPU seconds (2 shared cores): the
fit on the cells 0.08 s at 200k and 0.11 s at 1M, against 1.3 s and 11.1 s for
CoxTimeVarying on the start-stop table; the cells in the database 0.5 s and 2.1 s.

Examples
--------
>>> from roi.simulate import simulate_world
>>> from connectors import open_source
>>> from roi.data import load_dataset
>>> ds = load_dataset(open_source(simulate_world(n_customers=2000, seed=3).tables))
>>> model = PiecewiseExponentialHazard().fit(ds.survival_table(), covariates=["segment"],
...                                          community="community")
>>> model.result_.interval, sorted(model.result_.by_group)
('95% CI', ['discord', 'forum'])
"""

from __future__ import annotations

import time as clock
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from roi.results import CI95, Diagnostics, EffectResult
from roi.retention.bayes_survival import (
    cells_refusal_reason,
    encode_patterns,
    start_stop_cells,
)
from roi.retention.cox_time_varying import (
    ESTIMAND,
    Z95,
    community_terms,
    refusal_reason,
    refused_result,
)
from roi.revenue_lift._did_influence import single_threaded_blas

KEY_COLUMNS = ("piece", "member", "community", "events", "exposure")


@dataclass
class PoissonFit:
    """A Poisson GLM with offset fitted by Newton's method."""

    names: list[str]
    params: np.ndarray
    cov: np.ndarray
    loglik: float
    iterations: int
    newton_step: float         # last step, in standard errors
    converged: bool

    def table(self) -> pd.DataFrame:
        """Coefficients, SEs, z, p and exponentiated ratios with 95% CIs, one row per term."""
        se = np.sqrt(np.diag(self.cov))
        z = self.params / se
        with np.errstate(over="ignore"):
            return pd.DataFrame({"coef": self.params, "se": se, "z": z,
                                 "p": 2 * stats.norm.sf(abs(z)),
                                 "hazard_ratio": np.exp(self.params),
                                 "low": np.exp(self.params - Z95 * se),
                                 "high": np.exp(self.params + Z95 * se)},
                                index=pd.Index(self.names, name="term"))


def poisson_newton(D: np.ndarray, events: np.ndarray, exposure: np.ndarray, *,
                   names: Sequence[str], start: np.ndarray | None = None,
                   max_iter: int = 50, tol: float = 1e-10) -> PoissonFit:
    """Maximise ``sum(y * eta - exp(eta))`` with ``eta = log(exposure) + D @ b``.

    Newton steps with step halving when the log-likelihood falls; stops when the largest step
    is below ``tol`` standard errors. The covariance is the inverse observed information
    (equal to the expected one for the canonical log link).

    Examples
    --------
    >>> fit = poisson_newton(np.ones((2, 1)), np.array([3.0, 1.0]), np.array([10.0, 10.0]),
    ...                      names=["rate"])
    >>> round(float(np.exp(fit.params[0])), 4)
    0.2
    """
    offset = np.log(exposure)
    b = np.zeros(D.shape[1]) if start is None else np.asarray(start, dtype=float).copy()

    def loglik(params: np.ndarray) -> float:
        eta = offset + D @ params
        return float(events @ eta - np.exp(eta).sum())

    current, step_se, converged, iterations = loglik(b), np.inf, False, 0
    while iterations < max_iter:
        iterations += 1
        mu = np.exp(offset + D @ b)
        info = (D * mu[:, None]).T @ D
        try:
            step = np.linalg.solve(info, D.T @ (events - mu))
            step_se = float(np.max(np.abs(step) / np.sqrt(np.diag(np.linalg.inv(info)))))
        except np.linalg.LinAlgError:
            break      # separation (a term's MLE at infinity): not converged, said so
        if not np.isfinite(step_se):
            break
        scale = 1.0
        while scale > 1e-6 and not loglik(b + scale * step) >= current - 1e-12 * abs(current):
            scale /= 2     # overshoot (far from the optimum): shorter step
        b = b + scale * step
        current = loglik(b)
        if step_se < tol:
            converged = True
            break
    mu = np.exp(offset + D @ b)
    cov = np.linalg.pinv((D * mu[:, None]).T @ D)
    return PoissonFit(names=list(names), params=b, cov=cov, loglik=current,
                      iterations=iterations, newton_step=step_se, converged=converged)


def piece_indicators(piece: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """One 0/1 column per piece present (the pieces' baseline log hazards; no intercept)."""
    levels = np.unique(piece)
    return (piece[:, None] == levels[None, :]).astype(float), [f"piece[{k}]" for k in levels]


def without_silent_terms(D: np.ndarray, events: np.ndarray, *, names: Sequence[str],
                         keep: Sequence[str] = ()) -> tuple[np.ndarray, list[str], list[str]]:
    """Cells to fit and terms to drop: a 0/1 term none of whose cells has a churn has its MLE
    at minus infinity, where its cells add nothing to the likelihood; leaving them (and the
    term) out is the profile likelihood. Terms in ``keep`` are never dropped here."""
    silent = [j for j, name in enumerate(names) if name not in keep
              and events[D[:, j] > 0].sum() == 0]
    rows = ~np.any(D[:, silent] > 0, axis=1) if silent else np.ones(len(D), dtype=bool)
    return rows, [names[j] for j in silent], [n for j, n in enumerate(names) if j not in silent]


def independent_columns(D: np.ndarray) -> list[int]:
    """Columns of ``D`` kept in order, each only if not a combination of those before it (as R
    drops aliased terms): e.g. a piece where everyone at risk is a member makes that piece's
    member effect the piece's own baseline.

    Examples
    --------
    >>> independent_columns(np.array([[1.0, 0, 1], [0, 1, 0], [1, 0, 1]]))
    [0, 1]
    """
    gram = D.T @ D
    kept: list[int] = []
    for j in range(D.shape[1]):
        trial = [*kept, j]
        block = gram[np.ix_(trial, trial)]
        if np.linalg.matrix_rank(block, tol=1e-9 * max(1.0, float(np.trace(block)))) == len(trial):
            kept = trial
    return kept


class PiecewiseExponentialHazard:
    """Piecewise-exponential (Poisson) hazard model of churn on person-period cells.

    Parameters
    ----------
    intervals_days : "events" or sequence of float
        As :class:`~roi.retention.bayes_survival.BayesianPiecewiseSurvival`: ``pieces`` pieces
        at event-time quantiles (default), or boundaries in days since first seen from 0.
    pieces : int
        Pieces for ``"events"``.
    numeric_bins : int
        Quantile bins of numeric covariates in the cells.
    ph_alpha : float
        Below this p-value of the proportional-hazards test, a warning.

    Attributes
    ----------
    result_ : EffectResult
        ``piecewise_exponential``: member hazard ratio, 95% CI, ``by_group`` per community
        (``hazard_ratio``, ``low``, ``high``, ``interval``, ``events``, ``n_treated`` when
        known); ``tables`` ``coefficients`` and ``coefficients_by_community``.
    coefficients_ : DataFrame
        Every term of the pooled fit (``coef``, ``se``, ``z``, ``p``, ``hazard_ratio``, ``low``,
        ``high``).
    cells_ : DataFrame
        The cells fitted.

    Examples
    --------
    See the module docstring.
    """

    method = "piecewise_exponential"

    def __init__(self, *, intervals_days: Sequence[float] | str = "events", pieces: int = 12,
                 numeric_bins: int = 5, ph_alpha: float = 0.01) -> None:
        if isinstance(intervals_days, str) and intervals_days != "events":
            raise ValueError(f"intervals_days must be day boundaries or 'events', not "
                             f"{intervals_days!r}")
        self.intervals_days = (intervals_days if isinstance(intervals_days, str)
                               else tuple(intervals_days))
        self.pieces = pieces
        self.numeric_bins = numeric_bins
        self.ph_alpha = ph_alpha

    def fit(self, table: pd.DataFrame, *, covariates: Sequence[str] = (),
            community: str | None = None, id_col: str = "customer_id", start: str = "start",
            stop: str = "stop", event: str = "event",
            member: str = "member") -> PiecewiseExponentialHazard:
        """Build the cells from a start-stop table (the Bayesian model's builder) and fit them."""
        names = [id_col, start, stop, event, member, *covariates] + ([community] if community
                                                                    else [])
        self.refused_ = refusal_reason(table, columns=names, start=start, stop=stop,
                                       event=event, member=member)
        if self.refused_:
            self.result_ = refused_result(method=self.method, reason=self.refused_)
            return self
        cells = start_stop_cells(table, intervals_days=self.intervals_days, pieces=self.pieces,
                                 covariates=covariates, community=community, start=start,
                                 stop=stop, event=event, member=member,
                                 numeric_bins=self.numeric_bins)
        exposed = table[member].astype(bool)
        by_group = None
        if community is not None:
            labels = table.loc[exposed, community].astype("string").fillna("(unknown)")
            by_group = table.loc[exposed, id_col].groupby(labels.to_numpy()).nunique().to_dict()
        return self.fit_cells(cells, n_treated=int(table.loc[exposed, id_col].nunique()),
                              n_obs=int((table[stop] - table[start])[exposed].sum()),
                              n_rows=len(table), n_treated_by_group=by_group)

    def fit_cells(self, cells: pd.DataFrame, *, n_treated: int, n_obs: int,
                  n_rows: int | None = None,
                  n_treated_by_group: Mapping[str, int] | None = None,
                  ) -> PiecewiseExponentialHazard:
        """Fit person-period cells (:func:`roi.retention.cells_sql.person_period_cells_sql` or
        :func:`~roi.retention.bayes_survival.start_stop_cells`); covariates are the columns
        besides piece, member, community, events and exposure. ``n_treated`` (customers with
        member time), ``n_obs`` (member days at risk), ``n_rows`` (start-stop rows) and
        ``n_treated_by_group`` (customers with member time per community) are counts the cells
        do not hold."""
        began = clock.process_time()
        self.refused_ = cells_refusal_reason(cells)
        if self.refused_:
            self.result_ = refused_result(method=self.method, reason=self.refused_)
            return self
        # Small products, many of them: OpenBLAS threads waiting for a busy core made the
        # fits 20x slower on the shared 2-core machine (0.5 ms a Gram on one thread, 10-30 ms)
        with single_threaded_blas():
            self._fit_all(cells, n_treated=n_treated, n_obs=n_obs, n_rows=n_rows,
                          n_treated_by_group=n_treated_by_group)
        self.seconds_ = round(clock.process_time() - began, 3)
        return self

    def _fit_all(self, cells: pd.DataFrame, *, n_treated: int, n_obs: int, n_rows: int | None,
                 n_treated_by_group: Mapping[str, int] | None) -> None:
        cells = cells[cells["exposure"] > 0].reset_index(drop=True)
        self.cells_ = cells
        self.covariates_ = [c for c in cells.columns if c not in KEY_COLUMNS]
        X, terms, self.references_ = encode_patterns(cells, covariates=self.covariates_)
        P, piece_names = piece_indicators(cells["piece"].to_numpy(np.int64))
        member = cells["member"].to_numpy(dtype=float)
        y, exposure = cells["events"].to_numpy(float), cells["exposure"].to_numpy(float)
        fit, dropped = self._fit(np.column_stack([P, member, X]), y, exposure,
                                 names=[*piece_names, "member", *terms], keep=("member",))
        self.coefficients_ = fit.table()
        self.result_ = self._result(fit, n_treated=n_treated, n_obs=n_obs)
        checks = self.result_.diagnostics.checks
        checks.update({"cells": len(cells), "rows": n_rows, "events": int(y.sum()),
                       "member_events": int(y[member == 1].sum()),
                       "member_days": float(exposure[member == 1].sum()),
                       "non_member_days": float(exposure[member == 0].sum()),
                       "intervals_days": list(cells.attrs.get("intervals_days") or []),
                       "references": self.references_, "dropped_no_events": dropped,
                       "iterations": fit.iterations, "newton_step": fit.newton_step})
        self._proportional_hazards(P, piece_names, member, X, terms, y, exposure, main=fit)
        if set(cells.loc[member == 1, "community"].astype(str)) - {"(all)"}:
            self._fit_by_community(cells, P=P, piece_names=piece_names, X=X, terms=terms,
                                   n_treated_by_group=n_treated_by_group)

    @staticmethod
    def _fit(D: np.ndarray, y: np.ndarray, exposure: np.ndarray, *, names: list[str],
             keep: Sequence[str]) -> tuple[PoissonFit, list[str]]:
        rows, dropped, kept = without_silent_terms(D, y, names=names, keep=keep)
        columns = [names.index(n) for n in kept]
        D, y, exposure = D[rows][:, columns], y[rows], exposure[rows]
        identified = independent_columns(D)
        dropped += [n for j, n in enumerate(kept) if j not in identified]
        D, kept = D[:, identified], [kept[j] for j in identified]
        # Start at each piece's crude rate: a handful of Newton steps from there
        start = np.zeros(len(kept))
        for j, name in enumerate(kept):
            if name.startswith("piece["):
                on = D[:, j] > 0
                start[j] = np.log(y[on].sum() / exposure[on].sum())
        return poisson_newton(D, y, exposure, names=kept, start=start), dropped

    def _result(self, fit: PoissonFit, *, n_treated: int, n_obs: int) -> EffectResult:
        row = fit.table().loc["member"]
        diagnostics = Diagnostics(converged=fit.converged)
        if not fit.converged:
            diagnostics.warn(f"{self.method}: the Poisson fit did not converge (last Newton step "
                             f"{fit.newton_step:.2g} standard errors); do not rely on it.")
        result = EffectResult(method=self.method, estimand=ESTIMAND,
                              estimate=float(row["hazard_ratio"]), low=float(row["low"]),
                              high=float(row["high"]), interval=CI95, scale="hazard ratio",
                              n_treated=int(n_treated), n_obs=int(n_obs),
                              diagnostics=diagnostics, value_name="hazard_ratio")
        result.tables["coefficients"] = fit.table()
        return result

    def _proportional_hazards(self, P: np.ndarray, piece_names: list[str], member: np.ndarray,
                              X: np.ndarray, terms: list[str], y: np.ndarray,
                              exposure: np.ndarray, *, main: PoissonFit) -> None:
        """LR test of a member effect per piece against one member effect."""
        split = P * member[:, None]
        names = [*piece_names, *(f"member:{p}" for p in piece_names), *terms]
        fit, _ = self._fit(np.column_stack([P, split, X]), y, exposure, names=names, keep=())
        by_piece = {n.removeprefix("member:"): float(np.exp(v))
                    for n, v in zip(fit.names, fit.params, strict=True)
                    if n.startswith("member:")}
        df = len(by_piece) - 1
        statistic = max(0.0, 2 * (fit.loglik - main.loglik))
        p = float(stats.chi2.sf(statistic, df)) if df > 0 and fit.converged else None
        checks = self.result_.diagnostics.checks
        checks.update({"ph_p": {"member": p}, "hr_by_piece": by_piece})
        if p is not None and p < self.ph_alpha:
            first, last = list(by_piece.values())[0], list(by_piece.values())[-1]
            self.result_.diagnostics.warn(
                f"{self.method}: proportional hazards doubtful for membership (likelihood-ratio "
                f"test of one ratio per piece, p={p:.2g}): the hazard ratio is {first:.2f} in "
                f"the first piece and {last:.2f} in the last; read it as an average over "
                "follow-up.")

    def _fit_by_community(self, cells: pd.DataFrame, *, P: np.ndarray, piece_names: list[str],
                          X: np.ndarray, terms: list[str],
                          n_treated_by_group: Mapping[str, int] | None) -> None:
        members = community_terms(cells["member"], cells["community"].astype(str))
        y, exposure = cells["events"].to_numpy(float), cells["exposure"].to_numpy(float)
        names = [*piece_names, *members.columns, *terms]
        fit, dropped = self._fit(np.column_stack([P, members.to_numpy(), X]), y, exposure,
                                 names=names, keep=())
        table = fit.table()
        self.result_.tables["coefficients_by_community"] = table
        for term in members.columns:
            name = term.split(":", 1)[1]
            on = members[term].to_numpy() > 0
            entry = {"hazard_ratio": None, "low": None, "high": None, "interval": CI95,
                     "events": int(y[on].sum())}
            if n_treated_by_group is not None:
                entry["n_treated"] = int(n_treated_by_group.get(name, 0))
            if term in dropped:
                entry["refused"] = "not estimated: no churn events among its members"
                self.result_.diagnostics.warn(f"{self.method}: no hazard ratio for {name}: no "
                                              "churn events among its members.")
            else:
                entry.update({k: float(table.loc[term, k])
                              for k in ("hazard_ratio", "low", "high")})
                if not fit.converged:
                    entry["converged"] = False
            self.result_.by_group[name] = entry
        self.result_.by_group = dict(sorted(self.result_.by_group.items()))

    def summary(self) -> pd.DataFrame:
        """All coefficients with hazard ratios and 95% CIs (a refused fit: the one-row
        :meth:`EffectResult.summary`)."""
        if self.result_.refused:
            return self.result_.summary()
        return self.coefficients_
