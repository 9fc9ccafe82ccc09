"""numba kernels of :mod:`roi.paid_media.fast_logp`: the media-mix model's log-density with
its hand-written reverse-mode gradient, and the C entry points nutpie calls.

Imported on first use: importing compiles the two C callbacks, or loads them from numba's
on-disk cache (``NUMBA_CACHE_DIR``, default ``__pycache__`` beside this file). The buffer
layout (header, then the model inputs) is :func:`roi.paid_media.fast_logp.pack`'s.
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
    run_logp,
)

HEADER = 24
_LOG_2PI = math.log(2.0 * math.pi)
_LOG_TINY = math.log(1e-30)   # components._TINY: log of the stand-in for 0 inside the Hill power
# Compiled without LLVM's loop vectorizer (kernel_callbacks.cfunc): the loops are short
# (channels, lags, 104 weeks); without it the cold compile took 0.27 s less CPU (3.7 against
# 4.0 s) and a gradient 1.7 us less (42 against 44 us), same results to the bit.


@jit
def _normal(x, mu, sigma):
    z = (x - mu) / sigma
    return -0.5 * z * z - math.log(sigma) - 0.5 * _LOG_2PI, -z / sigma


@jit
def _beta_logodds(u, a, b):
    """Beta(a, b) log-density of sigmoid(u) plus the logodds Jacobian, and d/du."""
    d = 1.0 / (1.0 + math.exp(-u))
    e = math.log1p(math.exp(-abs(u)))       # softplus(v) = max(v, 0) + log1p(exp(-|v|))
    log_d, log_1md = -(max(-u, 0.0) + e), -(max(u, 0.0) + e)
    betaln = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return a * log_d + b * log_1md - betaln, a * (1.0 - d) - b * d, d


@jit
def _half_normal_log(u, s):
    """HalfNormal(s) log-density of exp(u) plus the log Jacobian, and d/du."""
    r = math.exp(u) / s
    return 0.5 * math.log(2.0 / math.pi) - math.log(s) - 0.5 * r * r + u, 1.0 - r * r


@jit
def _saturate(kind, z, k, H, log_h):
    """(response, d/dz, d/du1, d/du2) of the saturation at ``z``.

    Hill (``kind`` 0): ``k`` the shape, ``H = half**k``, ``u1, u2 = log half, log shape``.
    Logistic: ``k`` is lam, ``u1 = log lam`` (``H``, ``log_h`` unused).
    """
    if kind == 0:
        positive = z > 0
        lz = math.log(z) if positive else _LOG_TINY
        p = math.exp(k * lz)
        q = p * H / ((p + H) * (p + H))
        dz = k * q / z if positive else 0.0
        return p / (p + H), dz, -k * q, k * q * (lz - log_h)
    e = math.exp(-k * z)
    s = 2.0 * e / ((1.0 + e) * (1.0 + e))
    return (1.0 - e) / (1.0 + e), k * s, k * z * s, 0.0


@jit
def _geometric(w, raw, at, n_lags, d, normalize):
    """Weights ``d**l`` (divided by their sum when ``normalize``) into ``w[at:at + n_lags]``
    (``raw`` keeps the powers); returns their sum."""
    acc, total = 1.0, 0.0
    for lag in range(n_lags):
        raw[at + lag] = acc
        total += acc
        acc *= d
    for lag in range(n_lags):
        w[at + lag] = raw[at + lag] / total if normalize else raw[at + lag]
    return total


@jit
def _geometric_back(dw, w, raw, at, n_lags, total, d, normalize):
    """d(loss)/d(logit decay) from d(loss)/d(weights) in ``dw[at:at + n_lags]``."""
    inner = 0.0
    if normalize:
        for lag in range(n_lags):
            inner += dw[at + lag] * w[at + lag]
    dd = 0.0
    for lag in range(1, n_lags):
        draw = (dw[at + lag] - inner) / total if normalize else dw[at + lag]
        dd += draw * lag * raw[at + lag - 1]      # d(d**l)/dd = l * d**(l-1)
    return dd * d * (1.0 - d)


@cfunc(LOGP_SIGNATURE)
def logp_c(dim, x_, grad_, logp_, data_):
    """nutpie's log-density callback: the log-density at ``x`` (unconstrained) into
    ``logp_[0]``, its gradient into ``grad``; returns :func:`logp_status` (-1: ``dim`` is not
    the buffer's).

    The whole kernel is this one function, on purpose: a cfunc calling an ``@njit`` function
    compiles that function twice (once as its own dispatcher, with machine code and a Python
    wrapper, and again linked into the cfunc), 1.5 s of a 5.8 s cold compile.
    Arrays are flat (row-major offsets into ``buf``), so numba compiles one array type only.
    """
    buf = numba.carray(data_, (int(numba.carray(data_, (1,))[0]),))
    if dim != int(buf[22]):
        return -1
    x, grad = numba.carray(x_, (dim,)), numba.carray(grad_, (dim,))
    T, C, L, G, Lg = int(buf[1]), int(buf[2]), int(buf[3]), int(buf[4]), int(buf[5])
    F, K, N, kind = int(buf[6]), int(buf[7]), int(buf[8]), int(buf[9])
    norm_media, norm_comm = buf[10] > 0.5, buf[11] > 0.5
    o_y = HEADER                       # revenue (T)
    o_cust = o_y + T                   # customers (T)
    o_seas = o_cust + T                # seasonal (T, F)
    o_ctrl = o_seas + T * F            # controls (T, K)
    o_sl = o_ctrl + T * K              # spend_lagged (L, T, C)
    o_st = o_sl + L * T * C            # spend_total (C)
    o_ml = o_st + C                    # members_lagged (Lg, T, G)
    o_ll = o_ml + Lg * T * G           # lift_lagged (L, T, N)
    o_mask = o_ll + L * T * N          # lift_mask (T, N)
    o_lch = o_mask + T * N             # lift_channel, lift_observed, lift_se (N each)
    n_sat = 2 if kind == 0 else 1
    o_roas = 2 + F + K                 # offsets into x
    o_decay, o_sat = o_roas + C, o_roas + 2 * C
    o_theta = o_sat + n_sat * C
    o_cdecay, o_sigma = o_theta + G, o_theta + 2 * G

    for i in range(len(grad)):
        grad[i] = 0.0
    # ---- priors (with the Jacobians of the log / logodds transforms)
    lp, d = _normal(x[0], 1.0, 0.3)
    lp += buf[23]                     # the inert lift test's constant (fast_logp.pack)
    grad[0] += d
    rate = math.exp(x[1])
    term, d = _half_normal_log(x[1], 2.0)
    lp += term
    grad[1] += d
    for j in range(2, 2 + F + K):
        term, d = _normal(x[j], 0.0, 0.2)
        lp += term
        grad[j] += d
    for c in range(C):
        term, d = _normal(x[o_roas + c], buf[12], buf[13])   # LogNormal + log Jacobian
        lp += term
        grad[o_roas + c] += d
        if kind == 0:
            term, d = _normal(x[o_sat + c], buf[16], buf[17])
            lp += term
            grad[o_sat + c] += d
            term, d = _normal(x[o_sat + C + c], buf[18], buf[19])
            lp += term
            grad[o_sat + C + c] += d
        else:
            a, b, u = buf[16], buf[17], x[o_sat + c]        # Gamma(a, b) + log Jacobian
            lp += a * math.log(b) - math.lgamma(a) + a * u - b * math.exp(u)
            grad[o_sat + c] += a - b * math.exp(u)
    for g in range(G):
        term, d = _normal(x[o_theta + g], 0.0, 0.5)
        lp += term
        grad[o_theta + g] += d
    sigma = math.exp(x[o_sigma])
    term, d = _half_normal_log(x[o_sigma], 0.1)
    lp += term
    grad[o_sigma] += d

    # ---- media: adstock (sum over lags of weight x lagged spend), saturation, ROAS scaling
    W, raws = np.empty(L * C), np.empty(L * C)         # (channel, lag)
    totals, decays = np.empty(C), np.empty(C)
    for c in range(C):
        term, d, decays[c] = _beta_logodds(x[o_decay + c], buf[14], buf[15])
        lp += term
        grad[o_decay + c] += d
        totals[c] = _geometric(W, raws, c * L, L, decays[c], norm_media)
    stock = np.zeros(T * C)
    for lag in range(L):
        for t in range(T):
            for c in range(C):
                stock[t * C + c] += W[c * L + lag] * buf[o_sl + (lag * T + t) * C + c]
    norm = np.zeros(C)
    for t in range(T):
        for c in range(C):
            norm[c] += stock[t * C + c] / T
    sk, sH = np.empty(C), np.empty(C)       # Hill: shape, half**shape; logistic: lam
    for c in range(C):
        sk[c] = math.exp(x[o_sat + C + c]) if kind == 0 else math.exp(x[o_sat + c])
        sH[c] = math.exp(sk[c] * x[o_sat + c]) if kind == 0 else 0.0
    resp, rz = np.empty(T * C), np.empty(T * C)
    r1, r2 = np.empty(T * C), np.empty(T * C)
    S = np.zeros(C)
    for t in range(T):
        for c in range(C):
            i = t * C + c
            resp[i], rz[i], r1[i], r2[i] = _saturate(kind, stock[i] / norm[c], sk[c], sH[c],
                                                     x[o_sat + c])
            S[c] += resp[i]
    beta = np.empty(C)
    for c in range(C):
        beta[c] = math.exp(x[o_roas + c]) * buf[o_st + c] / S[c]
    contrib = np.zeros(T)
    mean_contrib = 0.0
    for t in range(T):
        for c in range(C):
            contrib[t] += resp[t * C + c] * beta[c]
        mean_contrib += contrib[t] / T

    # ---- communities: adstocked active members, centred, times theta
    WG, graws = np.empty(Lg * G), np.empty(Lg * G)     # (community, lag)
    gtotals, gdecays = np.empty(G), np.empty(G)
    for g in range(G):
        term, d, gdecays[g] = _beta_logodds(x[o_cdecay + g], buf[20], buf[21])
        lp += term
        grad[o_cdecay + g] += d
        gtotals[g] = _geometric(WG, graws, g * Lg, Lg, gdecays[g], norm_comm)
    gstock = np.zeros(T * G)
    for lag in range(Lg):
        for t in range(T):
            for g in range(G):
                gstock[t * G + g] += WG[g * Lg + lag] * buf[o_ml + (lag * T + t) * G + g]
    comm = np.zeros(T)
    for g in range(G):
        mean = 0.0
        for t in range(T):
            mean += gstock[t * G + g] / T
        for t in range(T):
            gstock[t * G + g] -= mean
            comm[t] += gstock[t * G + g] * x[o_theta + g]

    # ---- likelihood of weekly revenue
    gmu = np.empty(T)            # d lp / d mu_t
    dsig, gbar = 0.0, 0.0
    for t in range(T):
        mu = x[0] + rate * buf[o_cust + t] + contrib[t] - mean_contrib + comm[t]
        for j in range(F):
            mu += buf[o_seas + t * F + j] * x[2 + j]
        for k in range(K):
            mu += buf[o_ctrl + t * K + k] * x[2 + F + k]
        r = (buf[o_y + t] - mu) / sigma
        lp += -0.5 * r * r - math.log(sigma) - 0.5 * _LOG_2PI
        gmu[t] = r / sigma
        gbar += gmu[t] / T
        dsig += r * r - 1.0
    grad[o_sigma] += dsig

    # ---- lift tests: predicted revenue change of each test's spend change
    dbeta, dresp = np.zeros(C), np.zeros(T * C)
    moved, cz = np.zeros(T * N), np.zeros(T * N)
    c1, c2 = np.zeros(T * N), np.zeros(T * N)
    dpred = np.zeros(N)
    for n in range(N):
        c = int(buf[o_lch + n])
        total = 0.0
        for t in range(T):
            extra = 0.0
            for lag in range(L):
                extra += W[c * L + lag] * buf[o_ll + (lag * T + t) * N + n]
            m = stock[t * C + c] + extra
            i = t * N + n
            moved[i] = m / norm[c] if m > 0 else 0.0
            changed, cz[i], c1[i], c2[i] = _saturate(kind, moved[i], sk[c], sH[c],
                                                     x[o_sat + c])
            total += (changed - resp[t * C + c]) * buf[o_mask + i]
        term, d = _normal(buf[o_lch + N + n], beta[c] * total, buf[o_lch + 2 * N + n])
        lp += term
        dpred[n] = -d                  # d/dpred of the Normal log-density at the observation
        dbeta[c] += dpred[n] * total
        for t in range(T):
            dresp[t * C + c] -= dpred[n] * beta[c] * buf[o_mask + t * N + n]

    # ---- gradient: baseline
    for t in range(T):
        grad[0] += gmu[t]
        grad[1] += gmu[t] * buf[o_cust + t] * rate
        for j in range(F):
            grad[2 + j] += gmu[t] * buf[o_seas + t * F + j]
        for k in range(K):
            grad[2 + F + k] += gmu[t] * buf[o_ctrl + t * K + k]
    # ---- gradient: communities
    dwg = np.zeros(Lg * G)
    for g in range(G):
        th = x[o_theta + g]
        for t in range(T):
            gc = gmu[t] - gbar
            grad[o_theta + g] += gc * gstock[t * G + g]
            for lag in range(Lg):
                dwg[g * Lg + lag] += th * gc * buf[o_ml + (lag * T + t) * G + g]
        grad[o_cdecay + g] += _geometric_back(dwg, WG, graws, g * Lg, Lg, gtotals[g],
                                              gdecays[g], norm_comm)
    # ---- gradient: media
    for t in range(T):
        gc = gmu[t] - gbar
        for c in range(C):
            dbeta[c] += gc * resp[t * C + c]
            dresp[t * C + c] += gc * beta[c]
    for c in range(C):
        grad[o_roas + c] += dbeta[c] * beta[c]          # beta is proportional to roas
        dS = -dbeta[c] * beta[c] / S[c]
        for t in range(T):
            dresp[t * C + c] += dS
    dstock, dnorm = np.zeros(T * C), np.zeros(C)
    dW = np.zeros(L * C)
    for t in range(T):
        for c in range(C):
            i = t * C + c
            dz = dresp[i] * rz[i]
            grad[o_sat + c] += dresp[i] * r1[i]
            if kind == 0:
                grad[o_sat + C + c] += dresp[i] * r2[i]
            dstock[i] += dz / norm[c]
            dnorm[c] -= dz * stock[i] / (norm[c] * norm[c])
    for n in range(N):
        c = int(buf[o_lch + n])
        for t in range(T):
            i = t * N + n
            dch = dpred[n] * beta[c] * buf[o_mask + i]
            grad[o_sat + c] += dch * c1[i]
            if kind == 0:
                grad[o_sat + C + c] += dch * c2[i]
            if moved[i] > 0:
                dm = dch * cz[i] / norm[c]
                dstock[t * C + c] += dm
                dnorm[c] -= dm * moved[i]
                for lag in range(L):
                    dW[c * L + lag] += dm * buf[o_ll + (lag * T + t) * N + n]
    for lag in range(L):
        for t in range(T):
            for c in range(C):
                dW[c * L + lag] += (dstock[t * C + c] + dnorm[c] / T) * \
                    buf[o_sl + (lag * T + t) * C + c]
    for c in range(C):
        grad[o_decay + c] += _geometric_back(dW, W, raws, c * L, L, totals[c], decays[c],
                                             norm_media)
    logp_[0] = lp
    return logp_status(lp, grad)


@cfunc(EXPAND_SIGNATURE)
def expand_c(dim, expanded, x_, out_, data_):
    """nutpie's expansion callback (the draws kept): the unconstrained values, then the
    transformed ones on their natural scale (:meth:`roi.inference.kernel_model.Layout.expanded`)."""
    buf = numba.carray(data_, (int(numba.carray(data_, (1,))[0]),))
    if dim != int(buf[22]):
        return -1
    x, out = numba.carray(x_, (dim,)), numba.carray(out_, (expanded,))
    C, G, F, K, kind = int(buf[2]), int(buf[4]), int(buf[6]), int(buf[7]), int(buf[9])
    n_dim = len(x)
    for i in range(n_dim):
        out[i] = x[i]
    n_sat = 2 if kind == 0 else 1
    o_roas = 2 + F + K
    o_decay, o_sat = o_roas + C, o_roas + 2 * C
    o_cdecay, o_sigma = o_sat + n_sat * C + G, o_sat + n_sat * C + 2 * G
    i = n_dim
    out[i] = math.exp(x[1])                                  # rate
    i += 1
    for c in range(C):
        out[i + c] = math.exp(x[o_roas + c])
        out[i + C + c] = 1.0 / (1.0 + math.exp(-x[o_decay + c]))
    i += 2 * C
    for c in range(n_sat * C):
        out[i + c] = math.exp(x[o_sat + c])
    i += n_sat * C
    for g in range(G):
        out[i + g] = 1.0 / (1.0 + math.exp(-x[o_cdecay + g]))
    i += G
    out[i] = math.exp(x[o_sigma])
    return 0


def logp_grad(x: np.ndarray, grad: np.ndarray, buf: np.ndarray) -> float:
    """:func:`logp_c`'s code run as plain Python on arrays (the tests' reference): returns the
    log-density at ``x`` and writes the gradient into ``grad``.

    >>> buf = np.zeros(HEADER)
    >>> buf[0], buf[22] = HEADER, 5          # length; a buffer for 5 parameters
    >>> logp_grad(np.zeros(3), np.zeros(3), buf)
    Traceback (most recent call last):
    ...
    ValueError: logp_c returned -1 (x has 3 values, the buffer is for 5)
    """
    value, grad[:], code = run_logp(logp_c, x, buf, python=True)
    if code < 0:
        raise ValueError(f"logp_c returned {code} (x has {len(x)} values, the buffer is for "
                         f"{int(buf[22])})")
    return value
