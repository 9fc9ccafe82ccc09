"""numba kernels of :mod:`roi.revenue_lift.fast_logp`: the revenue cells model's log-density
with its hand-written reverse-mode gradient, and the C entry points nutpie calls.

Imported on first use: importing compiles the two C callbacks, or loads them from numba's
on-disk cache (``NUMBA_CACHE_DIR``, default ``__pycache__`` beside this file). The buffer
layout (header, then the data arrays) is :func:`roi.revenue_lift.fast_logp.pack`'s; the
offsets are recomputed here from the header's sizes (:func:`_offsets`).

The density is the body of :func:`logp_c` (:mod:`roi.inference.kernel_callbacks`): a cold
compile (empty ``NUMBA_CACHE_DIR``) takes 2.4 s CPU, against 3.35 s when the callback called an
``@njit`` density; a gradient costs the same (166 us on world_20000_1's 49,480 cells, both
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

HEADER = 24
_LOG_2PI = math.log(2.0 * math.pi)


@jit
def _normal(x, mu, sigma):
    z = (x - mu) / sigma
    return -0.5 * z * z - math.log(sigma) - 0.5 * _LOG_2PI, -z / sigma


@jit
def _offsets(buf):
    """Start of each data array in ``buf``: time, pattern and code totals, code lift and event
    time, group totals, each group's first row, per row (group x pattern) its pattern and
    first cell, then per cell n and month x code (``t * (Q + 1) + q``, stored as int64 bits:
    no conversion in the inner loops)."""
    T, P, G, N, Q, R = (int(buf[2]), int(buf[3]), int(buf[7]), int(buf[8]), int(buf[9]),
                        int(buf[17]))
    o_tt = HEADER
    o_pt = o_tt + T
    o_qt = o_pt + P
    o_ql = o_qt + Q
    o_qe = o_ql + Q
    o_gt = o_qe + Q
    o_gr = o_gt + G
    o_rp = o_gr + G + 1
    o_rc = o_rp + R
    o_n = o_rc + R + 1
    return o_tt, o_pt, o_qt, o_ql, o_qe, o_gt, o_gr, o_rp, o_rc, o_n, o_n + N


@jit
def _pooled(x, grad, at, k, u, m):
    """Centred MvNormal(0, s^2 I + m^2 J) log-density of ``x[at:at + k]`` (``s = exp(u)``):
    adds d/dx to ``grad``, returns (value, d/du). Closed forms: det = s^(2(k-1)) (s^2 + k m^2),
    inverse = (I - m^2 / (s^2 + k m^2) J) / s^2."""
    v = math.exp(2.0 * u)
    den = v + k * m * m
    a, b = 0.0, 0.0
    for i in range(k):
        a += x[at + i] * x[at + i]
        b += x[at + i]
    quad = (a - m * m * b * b / den) / v
    value = -0.5 * k * _LOG_2PI - 0.5 * ((k - 1) * math.log(v) + math.log(den)) - 0.5 * quad
    for i in range(k):
        grad[at + i] -= (x[at + i] - m * m * b / den) / v
    d_v = -0.5 * ((k - 1) / v + 1.0 / den) - 0.5 * (-quad / v + m * m * b * b / (den * den * v))
    return value, 2.0 * v * d_v


@cfunc(LOGP_SIGNATURE)
def logp_c(dim, x_, grad_, logp_, data_):
    """nutpie's log-density callback: the log-density at ``x`` (unconstrained) into
    ``logp_[0]``, its gradient into ``grad``; returns :func:`logp_status` (-1: ``dim`` is not
    the buffer's). The whole density is this function (see
    :mod:`roi.inference.kernel_callbacks`).

    ``x``: ``gamma_raw`` (T-1), ``beta_raw`` (P-1), ``sigma_tau_log__``, ``tau_community`` (C),
    with a segment ``sigma_seg_log__`` and ``w`` (C x S), then ``kappa_log__``.
    """
    buf = numba.carray(data_, (int(numba.carray(data_, (1,))[0]),))
    if dim != int(buf[1]):
        return -1
    x, grad = numba.carray(x_, (dim,)), numba.carray(grad_, (dim,))
    T, P, C, S = int(buf[2]), int(buf[3]), int(buf[4]), int(buf[5])
    seg, G, Q = buf[6] > 0.5, int(buf[7]), int(buf[9])
    phi = buf[10]
    o_tt, o_pt, o_qt, o_ql, o_qe, o_gt, o_gr, o_rp, o_rc, o_n, o_tq = _offsets(buf)
    o_beta, o_spread = T - 1, T - 1 + P - 1
    o_tau = o_spread + 1
    o_seg, o_w = o_tau + C, o_tau + C + 1
    o_kappa = o_w + C * S if seg else o_tau + C
    for i in range(len(grad)):
        grad[i] = 0.0

    # ---- priors (log transforms: LogNormal + Jacobian is the Normal of the log)
    lp = 0.0
    for i in range(o_spread):               # gamma_raw, beta_raw ~ Normal(0, 1)
        term, d = _normal(x[i], 0.0, 1.0)
        lp += term
        grad[i] += d
    term, d = _normal(x[o_spread], buf[13], buf[14])
    lp += term
    grad[o_spread] += d
    term, d = _pooled(x, grad, o_tau, C, x[o_spread], buf[15])
    lp += term
    grad[o_spread] += d
    term, d = _normal(x[o_kappa], buf[11], buf[12])
    lp += term
    grad[o_kappa] += d
    K = C * S
    tau = np.empty(K)
    sig = 0.0
    if seg:                                 # HalfNormal(s) + Jacobian; w ~ Normal(0, 1)
        sig = math.exp(x[o_seg])
        s = buf[16]
        lp += 0.5 * math.log(2.0 / math.pi) - math.log(s) - 0.5 * (sig / s) ** 2 + x[o_seg]
        grad[o_seg] += 1.0 - (sig / s) ** 2
        for i in range(K):
            term, d = _normal(x[o_w + i], 0.0, 1.0)
            lp += term
            grad[o_w + i] += d
            tau[i] = x[o_tau + i // S] + sig * x[o_w + i]
    else:
        for i in range(K):
            tau[i] = x[o_tau + i]

    # ---- per-evaluation tables: exp of the month, pattern and (lift, event time) terms
    kappa = math.exp(x[o_kappa])
    eg, eb = np.empty(T), np.empty(P)
    eg[0], eb[0] = 1.0, 1.0                 # the reference month and pattern
    for t in range(1, T):
        eg[t] = math.exp(x[t - 1])
    for p in range(1, P):
        eb[p] = math.exp(x[o_beta + p - 1])
    ramp, dramp, em = np.empty(Q), np.empty(Q), np.empty(Q + 1)
    em[Q] = 1.0                             # code Q: a non-member cell
    lin = 0.0                               # sum of total x (log mu - level) over the cells
    for q in range(Q):
        e1 = buf[o_qe + q] + 1.0
        decay = math.exp(-e1 / kappa)
        ramp[q], dramp[q] = 1.0 - decay, -decay * e1 / kappa    # d ramp / d log kappa
        effect = tau[int(buf[o_ql + q])] * ramp[q]
        em[q] = math.exp(effect)
        lin += buf[o_qt + q] * effect
    for t in range(1, T):
        lin += buf[o_tt + t] * x[t - 1]
    for p in range(1, P):
        lin += buf[o_pt + p] * x[o_beta + p - 1]

    # ---- conditional quasi-Poisson: sum_g S_g log W_g, W_g = sum over its cells n exp(rest)
    # exp(rest_j) = exp(gamma[t] + effect[q]) x exp(beta[p]), the pattern's factor once per
    # row (a group's cells of one pattern are contiguous): one gather per cell
    Q1 = Q + 1
    etq = np.empty(T * Q1)
    for t in range(T):
        for q in range(Q1):
            etq[t * Q1 + q] = eg[t] * em[q]
    N = int(buf[8])
    n, tq = buf[o_n:o_n + N], buf[o_tq:o_tq + N].view(np.int64)   # int64 bits (pack)
    rowsum, ctq, cp = np.empty(int(buf[17])), np.zeros(T * Q1), np.zeros(P)
    for g in range(G):
        r0, r1 = int(buf[o_gr + g]), int(buf[o_gr + g + 1])
        w = 0.0
        for r in range(r0, r1):
            acc = 0.0
            for j in range(int(buf[o_rc + r]), int(buf[o_rc + r + 1])):
                acc += n[j] * etq[tq[j]]
            rowsum[r] = acc
            w += eb[int(buf[o_rp + r])] * acc
        lin -= buf[o_gt + g] * math.log(w)
        share = buf[o_gt + g] / w           # d(S_g log W_g) / d rest_j = share * n_j exp(rest_j)
        for r in range(r0, r1):
            p = int(buf[o_rp + r])
            f = share * eb[p]
            cp[p] += f * rowsum[r]
            for j in range(int(buf[o_rc + r]), int(buf[o_rc + r + 1])):
                k = tq[j]
                ctq[k] += f * n[j] * etq[k]
    lp += lin / phi

    # ---- gradient of the likelihood
    ct, cq = np.zeros(T), np.zeros(Q1)
    for t in range(T):
        for q in range(Q1):
            ct[t] += ctq[t * Q1 + q]
            cq[q] += ctq[t * Q1 + q]
    for t in range(1, T):
        grad[t - 1] += (buf[o_tt + t] - ct[t]) / phi
    for p in range(1, P):
        grad[o_beta + p - 1] += (buf[o_pt + p] - cp[p]) / phi
    dtau = np.zeros(K)
    for q in range(Q):
        d = (buf[o_qt + q] - cq[q]) / phi
        lift = int(buf[o_ql + q])
        dtau[lift] += d * ramp[q]
        grad[o_kappa] += d * tau[lift] * dramp[q]
    for i in range(K):
        grad[o_tau + i // S] += dtau[i]
        if seg:
            grad[o_w + i] += sig * dtau[i]
            grad[o_seg] += sig * x[o_w + i] * dtau[i]
    logp_[0] = lp
    return logp_status(lp, grad)


@cfunc(EXPAND_SIGNATURE)
def expand_c(dim, expanded, x_, out_, data_):
    """nutpie's expansion callback (the draws kept): the unconstrained values, ``sigma_tau``
    (, ``sigma_seg``) and ``kappa``, then PyMC's deterministic ``tau`` (community x segment:
    ``tau_community`` (+ ``sigma_seg * w``)), as
    :func:`roi.revenue_lift.fast_logp.layout` lists them."""
    buf = numba.carray(data_, (int(numba.carray(data_, (1,))[0]),))
    if dim != int(buf[1]):
        return -1
    x, out = numba.carray(x_, (dim,)), numba.carray(out_, (expanded,))
    T, P, C, S, seg = int(buf[2]), int(buf[3]), int(buf[4]), int(buf[5]), buf[6] > 0.5
    for i in range(dim):
        out[i] = x[i]
    o_spread = T + P - 2
    o_tau = o_spread + 1
    out[dim] = math.exp(x[o_spread])
    at = dim + 2
    if seg:
        sig = math.exp(x[o_tau + C])
        out[dim + 1] = sig
        out[dim + 2] = math.exp(x[o_tau + C + 1 + C * S])
        at = dim + 3
        for i in range(C * S):      # the order and arithmetic of PyMC's Deterministic
            out[at + i] = x[o_tau + i // S] + sig * x[o_tau + C + 1 + i]
    else:
        out[dim + 1] = math.exp(x[o_tau + C])
        for i in range(C * S):
            out[at + i] = x[o_tau + i // S]
    return 0


@jit
def member_lifts(gamma, beta, tau, kappa, level, positive, phi, cells, codes, out):
    """Per draw ``d`` and member cell, the lift ``n mu (1 - exp(-effect))`` into ``out[d]``
    (:func:`roi.revenue_lift.bayes_revenue.lift_sums`, same arithmetic in one pass per draw).

    ``gamma`` (D x T), ``beta`` (D x P), ``tau`` (D x lifts), ``kappa`` (D); ``level`` (D x G)
    standard Gamma(S_g / phi) variates, made the group levels here (0 where ``positive``, the
    group's revenue > 0, is false); ``cells`` (6 x N): n, month, pattern, group, code (Q for
    non-members), column in ``out`` (-1 for non-members); ``codes`` (2 x Q): lift and months
    since joining.
    """
    N, Q, G = cells.shape[1], codes.shape[1], level.shape[1]
    T, P = gamma.shape[1], beta.shape[1]
    eg, eb = np.empty(T), np.empty(P)
    eff, em = np.zeros(Q + 1), np.ones(Q + 1)
    v, weight = np.empty(N), np.empty(G)
    for d in range(gamma.shape[0]):
        for t in range(T):
            eg[t] = math.exp(gamma[d, t])
        for p in range(P):
            eb[p] = math.exp(beta[d, p])
        for q in range(Q):
            ramp = 1.0 - math.exp(-(codes[1, q] + 1.0) / kappa[d])
            eff[q] = tau[d, int(codes[0, q])] * ramp
            em[q] = math.exp(eff[q])
        weight[:] = 0.0
        for j in range(N):
            v[j] = eg[int(cells[1, j])] * eb[int(cells[2, j])] * em[int(cells[4, j])]
            weight[int(cells[3, j])] += cells[0, j] * v[j]
        for g in range(G):
            level[d, g] = level[d, g] * phi / max(weight[g], 1e-300) if positive[g] else 0.0
        for j in range(N):
            at = int(cells[5, j])
            if at >= 0:
                q = int(cells[4, j])
                out[d, at] = cells[0, j] * level[d, int(cells[3, j])] * v[j] * \
                    -math.expm1(-eff[q])
