"""Fast Cox proportional-hazards engine: the estimates of statsmodels ``PHReg`` in one sweep.

Maximises the Cox log partial likelihood with Efron or Breslow ties over counting-process rows,
with exactly ``PHReg``'s risk-set convention: a row with entry time ``e`` and exit time ``t`` is
at risk at event time ``u`` when ``e <= u <= t`` (:func:`roi.retention.cox_time_varying.
counting_process_entry` shifts ``start`` so that this reads ``start < u <= stop``). Rows at risk
at no event time carry no information and are left out.

Algorithm: the distinct event times ``u_0 < ... < u_{K-1}`` are sorted once; each row gets the
index of the last event time ``<= t`` (where it enters the risk set when sweeping backwards in
time) and of the first event time ``>= e`` (after which it leaves). One backward sweep per
Newton step keeps the risk-set sums of ``exp(xb)``, ``x exp(xb)`` and ``x x' exp(xb)`` by adding
rows as they enter and subtracting them as they leave, and takes log-likelihood, score and
Hessian from them: O(n p^2) per Newton step in compiled code (numba, cached on disk). ``PHReg``
does the same sweep in Python with one pass each for the log-likelihood, score and Hessian,
which is where its time goes on a million rows.

Newton-Raphson with step halving (the step is halved while the log-likelihood would drop);
converged when the largest step is below ``tol`` (``PHReg``'s criterion, ``1e-8`` there; the
step is then applied, so the returned coefficients are Newton-exact to about ``tol**2``).

Cluster-robust covariance: as ``PHReg.fit(groups=...)`` computes it, ``H^-1 (sum_g U_g U_g') H^-1``
with ``H`` the Hessian of the chosen ties method and ``U_g`` the sum over the group's rows of the
Breslow-type score residuals (Lin & Wei 1989; ``PHReg.score_residuals``), with no small-sample
factor. Two differences from statsmodels 0.15, both where ``PHReg`` is wrong: a row whose
interval contains no event time has score residual 0 here (``PHReg``'s set bookkeeping never
removes such a row, so it keeps counting it at risk at all earlier event times), and a row at
risk at no event time also gets 0 (``PHReg`` gives it NaN, which makes its whole robust
covariance NaN). On data without such rows the two agree to rounding.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> x = rng.normal(size=(200, 2))
>>> time = rng.exponential(np.exp(-x @ np.array([0.5, -0.3])))
>>> fit = fit_cox_engine(x, time=time, status=np.ones(200, dtype=int))
>>> fit.converged, fit.params.round(2).tolist()
(True, [0.48, -0.33])
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

jit = numba.njit(cache=True)


@dataclass(frozen=True)
class RiskSets:
    """Counting-process bookkeeping for one (time, status, entry), independent of covariates.

    ``rows`` are the informative rows sorted by the event time at which they enter the
    backward sweep, events first within it; bucket ``k`` holds positions
    ``enter[k]:enter[k+1]`` of that order, its first ``deaths[k]`` are the events at
    ``times[k]``. ``leave[leave_at[k]:leave_at[k+1]]`` are the positions of rows whose first
    event time at risk is ``times[k+1]`` (they leave the sweep after ``times[k+1]``).
    ``first``/``last`` are each sorted row's first and last event-time index at risk.
    """

    rows: np.ndarray
    times: np.ndarray
    deaths: np.ndarray
    enter: np.ndarray
    leave: np.ndarray
    leave_at: np.ndarray
    first: np.ndarray
    last: np.ndarray
    status: np.ndarray


def risk_sets(time: np.ndarray, status: np.ndarray,
              entry: np.ndarray | None = None) -> RiskSets:
    """Sort the rows once for the backward sweep (``PHReg``'s risk set: ``entry <= u <= time``).

    Examples
    --------
    >>> rs = risk_sets(np.array([1.0, 2.0, 3.0]), np.array([1, 1, 0]))
    >>> rs.times.tolist(), rs.deaths.tolist(), rs.first.tolist(), rs.last.tolist()
    ([1.0, 2.0], [1, 1], [0, 0, 0], [0, 1, 1])
    """
    time = np.asarray(time, dtype=float)
    status = np.asarray(status).astype(bool)
    entry = np.zeros(len(time)) if entry is None else np.asarray(entry, dtype=float)
    times = np.unique(time[status])
    last = np.searchsorted(times, time, side="right") - 1
    first = np.searchsorted(times, entry, side="left")
    keep = np.flatnonzero(first <= last)
    # Events first within their entry bucket, so each bucket starts with its tied deaths.
    rows = keep[np.lexsort((~status[keep], last[keep]))]
    n_times = len(times)
    enter = np.searchsorted(last[rows], np.arange(n_times + 1), side="left")
    deaths = np.bincount(last[rows][status[rows]], minlength=n_times)
    first_sorted = first[rows]
    leaving = np.flatnonzero(first_sorted > 0)
    leave = leaving[np.argsort(first_sorted[leaving] - 1, kind="stable")]
    leave_at = np.searchsorted(first_sorted[leave] - 1, np.arange(n_times + 1), side="left")
    return RiskSets(rows=rows.astype(np.int64), times=times, deaths=deaths.astype(np.int64),
                    enter=enter.astype(np.int64), leave=leave.astype(np.int64),
                    leave_at=leave_at.astype(np.int64), first=first_sorted.astype(np.int64),
                    last=last[rows].astype(np.int64), status=status[rows].astype(np.int64))


@jit
def _add_row(x, i, sign, w, s1, s2):  # pragma: no cover - compiled
    p = x.shape[1]
    for a in range(p):
        wa = sign * w * x[i, a]
        s1[a] += wa
        for b in range(a + 1):
            s2[a, b] += wa * x[i, b]


@jit
def _sweep(x, w, lp, deaths, enter, leave, leave_at, efron):  # pragma: no cover - compiled
    """Log partial likelihood, score and Hessian (lower triangle filled) in one backward sweep."""
    p = x.shape[1]
    n_times = len(deaths)
    s0 = 0.0
    s1 = np.zeros(p)
    s2 = np.zeros((p, p))
    f1 = np.zeros(p)
    f2 = np.zeros((p, p))
    mean = np.zeros(p)
    loglik = 0.0
    score = np.zeros(p)
    hess = np.zeros((p, p))
    for k in range(n_times - 1, -1, -1):
        for i in range(enter[k], enter[k + 1]):
            s0 += w[i]
            _add_row(x, i, 1.0, w[i], s1, s2)
        for j in range(leave_at[k], leave_at[k + 1]):
            i = leave[j]
            s0 -= w[i]
            _add_row(x, i, -1.0, w[i], s1, s2)
        m = deaths[k]
        f0 = 0.0
        f1[:] = 0.0
        f2[:] = 0.0
        for i in range(enter[k], enter[k] + m):
            loglik += lp[i]
            for a in range(p):
                score[a] += x[i, a]
            if efron:
                f0 += w[i]
                _add_row(x, i, 1.0, w[i], f1, f2)
        reps = m if efron else 1
        weight = 1.0 if efron else float(m)
        for r in range(reps):
            frac = r / m if efron else 0.0
            c0 = s0 - frac * f0
            loglik -= weight * np.log(c0)
            for a in range(p):
                mean[a] = (s1[a] - frac * f1[a]) / c0
                score[a] -= weight * mean[a]
            for a in range(p):
                for b in range(a + 1):
                    hess[a, b] -= weight * ((s2[a, b] - frac * f2[a, b]) / c0
                                            - mean[a] * mean[b])
    return loglik, score, hess


@jit
def _score_residuals(x, w, deaths, enter, leave, leave_at, first, last,
                     status):  # pragma: no cover - compiled
    """Breslow-type score residuals per sorted row (as ``PHReg.score_residuals``)."""
    n, p = x.shape
    n_times = len(deaths)
    s0 = 0.0
    s1 = np.zeros(p)
    means = np.zeros((n_times, p))
    hazard = np.zeros(n_times)
    for k in range(n_times - 1, -1, -1):
        for i in range(enter[k], enter[k + 1]):
            s0 += w[i]
            for a in range(p):
                s1[a] += w[i] * x[i, a]
        for j in range(leave_at[k], leave_at[k + 1]):
            i = leave[j]
            s0 -= w[i]
            for a in range(p):
                s1[a] -= w[i] * x[i, a]
        hazard[k] = deaths[k] / s0
        for a in range(p):
            means[k, a] = s1[a] / s0
    # Cumulative hazard and hazard-weighted means from the first event time, with a leading 0.
    cum_h = np.zeros(n_times + 1)
    cum_g = np.zeros((n_times + 1, p))
    for k in range(n_times):
        cum_h[k + 1] = cum_h[k] + hazard[k]
        for a in range(p):
            cum_g[k + 1, a] = cum_g[k, a] + means[k, a] * hazard[k]
    resid = np.zeros((n, p))
    for i in range(n):
        lo, hi = first[i], last[i] + 1
        dh = cum_h[hi] - cum_h[lo]
        for a in range(p):
            r = -w[i] * (x[i, a] * dh - (cum_g[hi, a] - cum_g[lo, a]))
            if status[i]:
                r += x[i, a] - means[last[i], a]
            resid[i, a] = r
    return resid


@jit
def _group_sums(resid, groups, n_groups):  # pragma: no cover - compiled
    out = np.zeros((n_groups, resid.shape[1]))
    for i in range(resid.shape[0]):
        for a in range(resid.shape[1]):
            out[groups[i], a] += resid[i, a]
    return out


@dataclass
class EngineFit:
    """Coefficients, covariance, log partial likelihood and Newton diagnostics."""

    params: np.ndarray
    cov: np.ndarray
    naive_cov: np.ndarray
    loglik: float
    score: np.ndarray
    hessian: np.ndarray
    step: np.ndarray
    iterations: int
    converged: bool
    message: str


class CoxProblem:
    """A Cox partial likelihood on fixed data: ``evaluate(params) -> (loglik, score, hessian)``.

    Examples
    --------
    >>> problem = CoxProblem(np.array([[0.0], [1.0], [1.0]]), time=np.array([1.0, 2.0, 3.0]),
    ...                      status=np.array([1, 1, 0]))
    >>> round(problem.evaluate(np.zeros(1))[0], 4)  # -log 3 - log 2
    -1.7918
    """

    def __init__(self, x: np.ndarray, *, time: np.ndarray, status: np.ndarray,
                 entry: np.ndarray | None = None, ties: str = "efron") -> None:
        if ties not in ("efron", "breslow"):
            raise ValueError(f"ties must be 'efron' or 'breslow', not {ties!r}")
        self.sets = risk_sets(time, status, entry)
        self.x = np.ascontiguousarray(np.asarray(x, dtype=float)[self.sets.rows])
        self.efron = ties == "efron"

    def _weights(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lp = self.x @ params
        lp -= lp.max() if len(lp) else 0.0  # exp never overflows; the likelihood is unchanged
        return lp, np.exp(lp)

    def evaluate(self, params: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Log partial likelihood, score and Hessian at ``params``."""
        s = self.sets
        lp, w = self._weights(np.asarray(params, dtype=float))
        loglik, score, hess = _sweep(self.x, w, lp, s.deaths, s.enter, s.leave, s.leave_at,
                                     self.efron)
        hess = np.tril(hess) + np.tril(hess, -1).T
        return float(loglik), score, hess

    def score_residuals(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score residuals of the informative rows and their positions in the caller's rows
        (rows at risk at no event time have residual 0 and are not listed)."""
        s = self.sets
        _, w = self._weights(np.asarray(params, dtype=float))
        sorted_resid = _score_residuals(self.x, w, s.deaths, s.enter, s.leave, s.leave_at,
                                        s.first, s.last, s.status)
        return sorted_resid, s.rows

    def robust_cov(self, params: np.ndarray, hessian: np.ndarray,
                   groups: np.ndarray) -> np.ndarray:
        """``PHReg``'s cluster-robust sandwich ``H^-1 (sum_g U_g U_g') H^-1``."""
        codes, labels = _codes(groups)
        resid, rows = self.score_residuals(params)
        per_group = _group_sums(resid, codes[rows], len(labels))
        inverse = np.linalg.inv(hessian)
        return inverse @ (per_group.T @ per_group) @ inverse


def _codes(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, codes = np.unique(np.asarray(groups), return_inverse=True)
    return codes.astype(np.int64).ravel(), labels


def _newton_step(score: np.ndarray, hess: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(-hess, score)
    except np.linalg.LinAlgError:  # a column without information (all zero, say)
        return np.linalg.lstsq(-hess, score, rcond=None)[0]


def newton(problem: CoxProblem, start: np.ndarray, *, tol: float = 1e-9,
           maxiter: int = 100) -> tuple[np.ndarray, float, np.ndarray, np.ndarray, np.ndarray,
                                        int, str]:
    """Newton-Raphson with step halving; returns params, loglik, score, Hessian, last step,
    iterations and a message (``"converged"`` or why not)."""
    params = np.asarray(start, dtype=float).copy()
    loglik, score, hess = problem.evaluate(params)
    flat = 0
    for iteration in range(1, maxiter + 1):
        step = _newton_step(score, hess)
        if not np.all(np.isfinite(step)):
            return params, loglik, score, hess, step, iteration, "non-finite Newton step"
        if np.max(np.abs(step), initial=0.0) <= tol:
            # Quadratic convergence: after this step the error is about tol**2.
            return params + step, loglik, score, hess, step, iteration, "converged"
        size = 1.0
        while True:
            trial = params + size * step
            new = problem.evaluate(trial)
            if np.isfinite(new[0]) and new[0] >= loglik - 1e-12 * (1.0 + abs(loglik)):
                break
            size /= 2
            if size < 1e-10:
                return params, loglik, score, hess, step, iteration, "step halving failed"
        gain = new[0] - loglik
        params, (loglik, score, hess) = trial, new
        # A coefficient running off to infinity (no events in a group: separation) moves by
        # about 1 per step while the log-likelihood stops changing; stop after a few such steps.
        flat = flat + 1 if gain <= 1e-13 * (1.0 + abs(loglik)) else 0
        if flat >= 5:
            return params, loglik, score, hess, step, iteration, (
                "the log-likelihood stopped improving while coefficients keep moving "
                "(a coefficient diverges)")
    return params, loglik, score, hess, step, maxiter, "maximum number of iterations reached"


def fit_cox_engine(x: np.ndarray, *, time: np.ndarray, status: np.ndarray,
                   entry: np.ndarray | None = None, ties: str = "efron",
                   groups: np.ndarray | None = None, start_params: np.ndarray | None = None,
                   tol: float = 1e-9, maxiter: int = 100) -> EngineFit:
    """Fit a Cox model: the arguments and estimates of ``PHReg(time, x, status, entry,
    ties).fit(groups, start_params)``.

    Examples
    --------
    See the module docstring.
    """
    x = np.asarray(x, dtype=float)
    problem = CoxProblem(x, time=time, status=status, entry=entry, ties=ties)
    start = np.zeros(x.shape[1]) if start_params is None else np.asarray(start_params, float)
    params, loglik, score, hess, step, iterations, message = newton(problem, start, tol=tol,
                                                                    maxiter=maxiter)
    with np.errstate(all="ignore"):
        try:
            naive = np.linalg.inv(-hess)
        except np.linalg.LinAlgError:
            naive = np.full_like(hess, np.nan)
        cov = naive if groups is None else problem.robust_cov(params, hess, groups)
    return EngineFit(params=params, cov=cov, naive_cov=naive, loglik=loglik, score=score,
                     hessian=hess, step=step, iterations=iterations,
                     converged=message == "converged", message=message)
