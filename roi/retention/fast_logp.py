"""The Bayesian survival model's log-density and its gradient written out by hand in numba.

The model of :mod:`roi.retention.bayes_survival` is a Poisson log-linear model on a few
thousand person-period cells with about 20 parameters. Through PyMC and JAX each of the
~100,000 gradients of a 4 x 1000+1000 fit is a Python callback into XLA, and every fit compiles
its graph anew. Here the same density (same priors, the log Jacobian of ``sigma``'s log
transform, the pooled prior of :mod:`roi.inference.pooling` as PyMC's MvNormal, the Poisson
likelihood with its ``-log(events!)`` constant: every normalising constant included) and its
reverse-mode gradient are one numba function behind a C pointer that nutpie's Rust sampler
calls directly (:mod:`roi.inference.kernel_model`), reading a flat buffer (:func:`pack`).

The compiled code does not depend on the data (sizes and prior constants are in the buffer's
header), so numba compiles it once per installation and keeps it in its on-disk cache: a first
fit compiles in a few seconds, every later process loads it in a fraction of one. The tests
compare density and gradient with PyMC's at random points (``tests/test_survival_fast_logp.py``).

Unconstrained parameters, in PyMC's order: ``alpha_c`` (pieces), ``beta`` (terms),
``sigma_log__``, ``theta`` (communities). Expanded draws: those, ``sigma`` and the deterministic
``alpha`` (the reference pattern's log baseline), named and shaped as PyMC's.

Examples
--------
>>> lay = layout(n_pieces=3, n_terms=2, n_communities=2)
>>> lay.n_dim, [name for name, _, _ in lay.expanded()]
(8, ['alpha_c', 'beta', 'sigma_log__', 'theta', 'sigma', 'alpha'])
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

from roi.inference.kernel_model import Layout, kernel_nutpie_model
from roi.inference.pooling import SPREAD_PRIOR

HEADER = 16          # floats before the cell arrays (see :func:`pack`)
ALPHA_SD, BETA_SD = 2.0, 1.0


def layout(*, n_pieces: int, n_terms: int, n_communities: int) -> Layout:
    """The parameter layout of :func:`roi.retention.bayes_survival.build_model`, and the
    deterministic ``alpha`` the kernel's ``expand_c`` adds."""
    return Layout([("alpha_c", None, n_pieces, "piece"), ("beta", None, n_terms, "term"),
                   ("sigma", "log", 1, None), ("theta", None, n_communities, "community")],
                  derived=[("alpha", n_pieces, "piece")])


def pack(data: dict[str, np.ndarray], *, mean_sd: float, n_dim: int) -> np.ndarray:
    """The flat float64 buffer the compiled functions read (``data``:
    :func:`roi.retention.bayes_survival.model_data`).

    Header: sizes, prior constants and the likelihood's constant ``sum events x log exposure -
    log(events!)``. Then per cell its (piece, community) pair (``piece x (G + 1)`` + 0 for a
    non-member cell, 1 + the community's index for a member cell), covariate pattern and
    exposure; the centred patterns; the events per piece, per
    community and ``events . centred covariates`` (the parts of the likelihood linear in the
    parameters); the centre.
    """
    X, events, exposure = data["X_centred"], data["events"], data["exposure"]
    N, K = X.shape
    P, G = data["n_pieces"], data["n_groups"]
    patterns, pattern = np.unique(X, axis=0, return_inverse=True)
    member = data["group"] >= 0
    header = np.zeros(HEADER)
    median, log_sd = SPREAD_PRIOR
    constant = float(events @ np.log(exposure) - gammaln(events + 1.0).sum())
    header[1:14] = (N, P, K, G, n_dim, data["rate"], ALPHA_SD, BETA_SD, mean_sd,
                    math.log(median), log_sd, constant, len(patterns))
    pair = data["piece"] * (G + 1) + data["group"] + 1
    parts = [header, pair, np.ravel(pattern), exposure, patterns,
             np.bincount(data["piece"], weights=events, minlength=P),
             np.bincount(data["group"][member], weights=events[member], minlength=G),
             events @ X, data["center"]]
    buf = np.concatenate([np.ascontiguousarray(a, dtype=np.float64).ravel() for a in parts])
    buf[0] = len(buf)
    return buf


def support_point(lay: Layout, buf: np.ndarray) -> np.ndarray:
    """PyMC's starting point: each prior's mean, unconstrained (LogNormal: ``mu + s^2 / 2``)."""
    values = {"alpha_c": buf[6], "beta": 0.0, "sigma": buf[10] + buf[11] ** 2 / 2, "theta": 0.0}
    return np.concatenate([np.full(size, values[name]) for name, _, size, _ in lay.free])


def nutpie_model(data: dict[str, np.ndarray], *, mean_sd: float, coords: dict[str, list]):
    """A nutpie model (``nutpie.sample`` takes it like a compiled PyMC model) whose density and
    gradient are :func:`roi.retention._fast_kernels.logp_c` on this cell table's buffer.

    ``coords``: ``piece``, ``term`` and ``community`` labels, as the PyMC model's.
    """
    lay = layout(n_pieces=data["n_pieces"], n_terms=data["X_centred"].shape[1],
                 n_communities=data["n_groups"])
    buf = pack(data, mean_sd=mean_sd, n_dim=lay.n_dim)
    from roi.retention._fast_kernels import expand_c, logp_c

    return kernel_nutpie_model(logp_c=logp_c, expand_c=expand_c, buf=buf, lay=lay,
                               coords=coords, support_point=support_point(lay, buf))
