"""numba kernels of :mod:`roi.retention.fast_logp`: the Bayesian survival model's log-density
with its hand-written reverse-mode gradient, and the C entry points nutpie calls.

Imported on first use: importing compiles the two C callbacks, or loads them from numba's
on-disk cache (``NUMBA_CACHE_DIR``, default ``__pycache__`` beside this file). The buffer
layout (header, then the cell arrays) is :func:`roi.retention.fast_logp.pack`'s.

The density is the body of :func:`logp_c` (:mod:`roi.inference.kernel_callbacks`): a cold
compile (empty ``NUMBA_CACHE_DIR``) takes 1.65 s CPU, against 2.35 s when the callback called an
``@njit`` density; a gradient costs the same (26 us on world_20000_1's 8,494 cells, both
versions timed alternately in one process) and is the same to the bit.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from roi.inference.kernel_callbacks import (
    EXPAND_SIGNATURE,
    LOGP_SIGNATURE,
    cfunc,
    jit,
    logp_status,
)

HEADER = 16
_LOG_2PI = math.log(2.0 * math.pi)


@jit
def _offsets(buf):
    """Sizes (cells N, pieces P, terms K, communities G, patterns U) and where each array of
    :func:`roi.retention.fast_logp.pack` starts."""
    N, P, K, G, U = int(buf[1]), int(buf[2]), int(buf[3]), int(buf[4]), int(buf[13])
    o_pair = HEADER                 # per cell: piece x (G + 1) + (0 non-member, 1 + community)
    o_pattern = o_pair + N          # per cell: its covariate pattern
    o_exp = o_pattern + N           # per cell: exposure
    o_x = o_exp + N                 # centred covariate indicators of the patterns (U, K)
    o_yp = o_x + U * K              # events per piece (P), per community (G), events . x (K)
    o_yg = o_yp + P
    o_yx = o_yg + G
    o_center = o_yx + K             # exposure-weighted mean pattern (K)
    return N, P, K, G, U, o_pair, o_pattern, o_exp, o_x, o_yp, o_yg, o_yx, o_center


@jit
def _pooled_prior(x, grad, o_theta, G, o_sigma, mean_sd):
    """MvNormal(0, sigma^2 I + mean_sd^2 J) log-density of ``theta`` (roi.inference.pooling),
    with its gradient added to ``grad`` (``theta`` and ``sigma``'s log)."""
    v = math.exp(2.0 * x[o_sigma])            # sigma^2
    m2 = mean_sd * mean_sd
    w = v + G * m2                            # the eigenvalue along the ones vector
    total, squares = 0.0, 0.0
    for g in range(G):
        total += x[o_theta + g]
        squares += x[o_theta + g] * x[o_theta + g]
    # inverse covariance: (I - m2 / w J) / v; log determinant: (G - 1) log v + log w
    quad = (squares - m2 * total * total / w) / v
    lp = -0.5 * G * _LOG_2PI - 0.5 * ((G - 1) * math.log(v) + math.log(w)) - 0.5 * quad
    for g in range(G):
        grad[o_theta + g] -= (x[o_theta + g] - m2 * total / w) / v
    dv = (-0.5 * (G - 1) / v - 0.5 / w + 0.5 * squares / (v * v)
          - 0.5 * m2 * total * total * (2.0 * v + G * m2) / (v * v * w * w))
    grad[o_sigma] += 2.0 * v * dv              # d v / d log sigma = 2 v
    return lp


@cfunc(LOGP_SIGNATURE)
def logp_c(dim, x_, grad_, logp_, data_):
    """nutpie's log-density callback: the log-density at ``x`` (unconstrained: ``alpha_c`` P,
    ``beta`` K, ``sigma_log__``, ``theta`` G; every constant of PyMC's included) into
    ``logp_[0]``, its gradient into ``grad``; returns :func:`logp_status` (-1: ``dim`` is not
    the buffer's). The whole density is this function (see
    :mod:`roi.inference.kernel_callbacks`)."""
    buf = numba.carray(data_, (int(numba.carray(data_, (1,))[0]),))
    if dim != int(buf[5]):
        return -1
    x, grad = numba.carray(x_, (dim,)), numba.carray(grad_, (dim,))
    N, P, K, G, U, o_pair, o_pattern, o_exp, o_x, o_yp, o_yg, o_yx, _ = _offsets(buf)
    o_beta, o_sigma = P, P + K
    o_theta = o_sigma + 1
    for i in range(len(grad)):
        grad[i] = 0.0
    # ---- priors: Normal alpha_c, beta; LogNormal sigma with its log Jacobian (a Normal of
    # log sigma); the pooled community effects
    lp = buf[12]          # sum of events x log exposure - log(events!) of the Poisson terms
    for p in range(P):
        z = (x[p] - buf[6]) / buf[7]
        lp -= 0.5 * z * z + math.log(buf[7]) + 0.5 * _LOG_2PI
        grad[p] -= z / buf[7]
    for k in range(K):
        z = x[o_beta + k] / buf[8]
        lp -= 0.5 * z * z + math.log(buf[8]) + 0.5 * _LOG_2PI
        grad[o_beta + k] -= z / buf[8]
    z = (x[o_sigma] - buf[10]) / buf[11]
    lp -= 0.5 * z * z + math.log(buf[11]) + 0.5 * _LOG_2PI
    grad[o_sigma] -= z / buf[11]
    lp += _pooled_prior(x, grad, o_theta, G, o_sigma, buf[9])
    # ---- Poisson likelihood of the cells. The log mean of cell j is log exposure_j
    # + alpha_c[piece] + theta[community] (member cells) + the centred pattern . beta: the
    # ``events x log mean`` terms are linear in the parameters (sums of events per piece,
    # community and covariate, packed once; ``events x log exposure`` is in the constant) and
    # the mean is exposure x exp(alpha_c + theta) of its (piece, community) pair x exp(pattern .
    # beta): a call takes P x (G + 1) + U exponentials instead of one per cell.
    for p in range(P):
        lp += x[p] * buf[o_yp + p]
        grad[p] += buf[o_yp + p]
    for g in range(G):
        lp += x[o_theta + g] * buf[o_yg + g]
        grad[o_theta + g] += buf[o_yg + g]
    for k in range(K):
        lp += x[o_beta + k] * buf[o_yx + k]
        grad[o_beta + k] += buf[o_yx + k]
    H = G + 1                       # non-member, then the communities
    scale = np.empty(P * H)         # exp(alpha_c[p] + theta[h]) per (piece, community) pair
    for p in range(P):
        for h in range(H):
            scale[p * H + h] = math.exp(x[p] + (x[o_theta + h - 1] if h > 0 else 0.0))
    pattern = np.empty(U)
    for u in range(U):
        eta = 0.0
        for k in range(K):
            eta += buf[o_x + u * K + k] * x[o_beta + k]
        pattern[u] = math.exp(eta)
    by_pair, by_pattern = np.zeros(P * H), np.zeros(U)
    for j in range(N):
        ph, u = int(buf[o_pair + j]), int(buf[o_pattern + j])
        mu = buf[o_exp + j] * scale[ph] * pattern[u]
        by_pair[ph] += mu
        by_pattern[u] += mu
    for p in range(P):              # d mu / d eta = mu
        for h in range(H):
            mu = by_pair[p * H + h]
            lp -= mu
            grad[p] -= mu
            if h > 0:
                grad[o_theta + h - 1] -= mu
    for u in range(U):
        for k in range(K):
            grad[o_beta + k] -= by_pattern[u] * buf[o_x + u * K + k]
    logp_[0] = lp
    return logp_status(lp, grad)


@cfunc(EXPAND_SIGNATURE)
def expand_c(dim, expanded, x_, out_, data_):
    """nutpie's expansion callback (the draws kept): the unconstrained values, ``sigma``, then
    the reference pattern's log baseline ``alpha = alpha_c - center . beta``
    (:func:`roi.retention.fast_logp.layout`)."""
    buf = numba.carray(data_, (int(numba.carray(data_, (1,))[0]),))
    if dim != int(buf[5]):
        return -1
    x, out = numba.carray(x_, (dim,)), numba.carray(out_, (expanded,))
    o_center = _offsets(buf)[-1]
    P, K = int(buf[2]), int(buf[3])
    n_dim = len(x)
    for i in range(n_dim):
        out[i] = x[i]
    out[n_dim] = math.exp(x[P + K])
    shift = 0.0
    for k in range(K):
        shift += buf[o_center + k] * x[P + k]
    for p in range(P):
        out[n_dim + 1 + p] = x[p] - shift
    return 0

