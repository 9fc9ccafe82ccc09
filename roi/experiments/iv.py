"""Two-stage least squares with classical or customer-clustered standard errors.

Hand-written (numpy only) so that the invitation experiment needs no extra dependency; checked
against statsmodels' ``IV2SLS`` and Wooldridge's published Example 15.1 (``mroz``: log wage on
education instrumented by father's education, 0.0592 with SE 0.0351), and its clustered
standard errors against ``linearmodels`` (tests/test_experiments.py).

Clustered covariance is the CR1 sandwich of Stata's ``ivregress 2sls, vce(cluster)``:
``G/(G-1) * (n-1)/(n-k) * B^-1 (sum_g s_g s_g') B^-1`` with ``B = Xhat'Xhat`` and cluster score
``s_g = sum_{i in g} xhat_i u_i`` (``u`` the structural residual, with the *actual* regressors).

Examples
--------
>>> rng = np.random.default_rng(0)
>>> z = rng.integers(0, 2, 2000).astype(float)
>>> d = (rng.random(2000) < 0.2 + 0.5 * z).astype(float)
>>> y = 1.0 + 3.0 * d + rng.normal(size=2000)
>>> fit = two_stage_least_squares(y, endog=d[:, None], instruments=z[:, None])
>>> round(float(fit.params[1]), 1)
3.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class IVFit:
    """Coefficients (constant and exogenous first, then endogenous), covariance, first stage.

    ``first_stage_f`` is the Wald statistic of the excluded instruments in the first stage
    divided by their number (cluster-robust when clustered); one per endogenous regressor.
    """

    params: np.ndarray
    cov: np.ndarray
    nobs: int
    n_clusters: int | None
    first_stage_f: np.ndarray
    df_resid: int

    @property
    def se(self) -> np.ndarray:
        return np.sqrt(np.diag(self.cov))

    def interval(self, index: int, *, alpha: float = 0.05) -> tuple[float, float]:
        """Normal interval of coefficient ``index``."""
        z = float(stats.norm.ppf(1 - alpha / 2))
        return (float(self.params[index] - z * self.se[index]),
                float(self.params[index] + z * self.se[index]))


def two_stage_least_squares(y: np.ndarray, *, endog: np.ndarray, instruments: np.ndarray,
                            exog: np.ndarray | None = None, clusters: np.ndarray | None = None,
                            add_constant: bool = True) -> IVFit:
    """2SLS of ``y`` on ``[1, exog, endog]`` with instruments ``[1, exog, instruments]``.

    Parameters
    ----------
    y : array (n,)
    endog, instruments : arrays (n, p) and (n, q), q >= p
    exog : array (n, r), optional
        Exogenous regressors (their own instruments).
    clusters : array (n,), optional
        Cluster labels (customers); None gives the classical covariance ``s^2 (Xhat'Xhat)^-1``
        with ``s^2 = u'u / (n - k)``.
    add_constant : bool
        Prepend a column of ones to the exogenous regressors.
    """
    y = np.asarray(y, float)
    n = len(y)
    exog_parts = [np.ones((n, 1))] if add_constant else []
    if exog is not None:
        exog_parts.append(np.asarray(exog, float).reshape(n, -1))
    exog_all = np.hstack(exog_parts) if exog_parts else np.zeros((n, 0))
    endog = np.asarray(endog, float).reshape(n, -1)
    instruments = np.asarray(instruments, float).reshape(n, -1)
    if instruments.shape[1] < endog.shape[1]:
        raise ValueError("2SLS needs at least as many instruments as endogenous regressors")
    x = np.hstack([exog_all, endog])
    z = np.hstack([exog_all, instruments])
    fitted = z @ np.linalg.solve(z.T @ z, z.T @ x)   # Xhat = P_Z X
    bread = np.linalg.inv(fitted.T @ x)
    params = bread @ (fitted.T @ y)
    residual = y - x @ params
    cov = _covariance(fitted, residual, bread, clusters=clusters)
    groups = None if clusters is None else len(np.unique(clusters))
    first = [_first_stage_f(endog[:, j], z, n_excluded=instruments.shape[1], clusters=clusters)
             for j in range(endog.shape[1])]
    return IVFit(params, cov, n, groups, np.array(first), n - x.shape[1])


def _covariance(regressors: np.ndarray, residual: np.ndarray, bread: np.ndarray, *,
                clusters: np.ndarray | None) -> np.ndarray:
    """Classical or CR1 clustered covariance of a (2S)LS fit; ``bread`` = (Xhat'X)^-1."""
    n, k = regressors.shape
    if clusters is None:
        return float(residual @ residual) / (n - k) * bread
    _, codes = np.unique(clusters, return_inverse=True)
    groups = int(codes.max()) + 1
    scores = np.zeros((groups, k))
    np.add.at(scores, codes, regressors * residual[:, None])
    factor = groups / (groups - 1) * (n - 1) / (n - k)
    return factor * bread @ (scores.T @ scores) @ bread.T


def _first_stage_f(endog: np.ndarray, z: np.ndarray, *, n_excluded: int,
                   clusters: np.ndarray | None) -> float:
    """Wald statistic of the excluded instruments (the last ``n_excluded`` columns of ``z``)
    in the OLS of ``endog`` on ``z``, divided by ``n_excluded``."""
    bread = np.linalg.inv(z.T @ z)
    coef = bread @ (z.T @ endog)
    cov = _covariance(z, endog - z @ coef, bread, clusters=clusters)
    tail = slice(z.shape[1] - n_excluded, z.shape[1])
    pi, block = coef[tail], cov[tail, tail]
    # An instrument that is the regressor itself (the ITT as 2SLS with z for z) fits exactly:
    # no residual, no sampling error, an infinitely strong first stage. Exact zeros or a
    # rounding-level remainder, depending on the CPU's summation order, are both that case.
    scale = float(np.abs(endog).max()) if endog.size else 0.0
    residual = endog - z @ coef
    if not np.any(np.abs(residual) > 1e-9 * max(scale, 1.0)):
        return float("inf")
    return float(pi @ np.linalg.solve(block, pi) / n_excluded)
