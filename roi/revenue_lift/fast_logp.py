"""The revenue cells model's log-density and its gradient written out by hand in numba.

:func:`roi.revenue_lift.bayes_revenue.build_model` has about 35 parameters and tens of
thousands of cells. Through PyMC and JAX each of nutpie's gradients is a Python callback into
XLA, about 1 ms; here the same density (same priors, log-transform Jacobians and normalising
constants, the conditional quasi-Poisson ``Potential``) and its reverse-mode gradient are one
numba function behind a C pointer that nutpie's Rust sampler calls directly
(:func:`roi.inference.kernel_model.kernel_nutpie_model`): no Python, no GIL.

The data are the cells of :func:`~roi.revenue_lift.bayes_revenue.model_inputs`' dense grid
with ``n > 0`` (:func:`sparse_cells`), sorted by group and by row (group x pattern), each with
its month and "code" (the distinct (community x segment lift, months since joining) pairs of
member cells; non-members have none). Per evaluation the kernel exponentiates only a table of
month x code terms and the patterns' terms (``exp(rest_j)`` is one table entry per cell times
its row's pattern factor), then makes two passes over the cells: the group sums ``W_g`` and
the shares ``S_g n_j exp(rest_j) / W_g`` that the gradient gathers by month x code and by
pattern. The linear part ``sum_j total_j rest_j`` is a sum over months, patterns and codes of
revenue totals computed once in :func:`pack`.

The compiled code does not depend on the data (sizes and prior constants are in the buffer's
header), so numba compiles it once per installation and keeps it in its on-disk cache.

Unconstrained parameters, in PyMC's order: ``gamma_raw`` (T-1), ``beta_raw`` (P-1),
``sigma_tau_log__``, ``tau_community`` (C); with a segment ``sigma_seg_log__`` and ``w``
(community x segment); ``kappa_log__``. Expanded draws: those, ``sigma_tau`` (, ``sigma_seg``),
``kappa`` and the deterministic ``tau`` (community x segment), named and shaped as PyMC's.

Examples
--------
>>> lay = layout(n_times=3, n_patterns=2, n_communities=2, n_segments=1, segment=False)
>>> lay.n_dim, list(lay.offsets())
(7, ['gamma_raw', 'beta_raw', 'sigma_tau', 'tau_community', 'kappa'])
>>> lay.expanded()[-1]
('tau', 2, ('community', 'segment'))
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from roi.inference.kernel_model import Layout, kernel_nutpie_model
from roi.inference.pooling import SPREAD_PRIOR

HEADER = 24          # floats before the data arrays (see :func:`pack`)
SEGMENT_SD = 0.1     # bayes_revenue._tau: sigma_seg ~ HalfNormal(0.1)
ALL_SEGMENTS = "(all)"   # bayes_revenue.ALL: the one segment level without a segment column


def layout(*, n_times: int, n_patterns: int, n_communities: int, n_segments: int,
           segment: bool) -> Layout:
    """The parameter layout, in the order of PyMC's value variables, and the deterministic
    ``tau`` the kernel's ``expand_c`` adds."""
    free = [("gamma_raw", None, n_times - 1, "gamma_raw_dim_0"),
            ("beta_raw", None, n_patterns - 1, "beta_raw_dim_0"),
            ("sigma_tau", "log", 1, None), ("tau_community", None, n_communities, "community")]
    if segment:
        free += [("sigma_seg", "log", 1, None),
                 ("w", None, n_communities * n_segments, ("community", "segment"))]
    return Layout(free + [("kappa", "log", 1, None)],
                  derived=[("tau", n_communities * n_segments, ("community", "segment"))])


def sparse_cells(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The cells of the dense grid with ``n > 0``, sorted by group, row (group x pattern) and
    month, with their code: the distinct (lift, months since joining) pairs of member cells
    (``codes``, 2 x Q), ``Q`` for non-members."""
    n = inputs["n"]
    row, time = np.nonzero(n > 0)
    order = np.lexsort((time, row, inputs["row_group"][row]))
    row, time = row[order], time[order]
    member = inputs["member"][row, time] > 0.5
    pairs = np.stack([inputs["row_lift"][row][member], inputs["event_time"][row, time][member]])
    codes, inverse = np.unique(pairs, axis=1, return_inverse=True)
    code = np.full(len(row), codes.shape[1], dtype=np.int64)
    code[member] = inverse.ravel()
    first = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])     # each row's first cell
    return {"row": row, "time": time, "code": code, "codes": codes, "first": first,
            "n": n[row, time], "total": inputs["total"][row, time]}


def pack(inputs: dict[str, np.ndarray], *, n_patterns: int, n_communities: int,
         n_segments: int, segment: bool, buildup_prior: tuple[float, float], mean_sd: float,
         n_dim: int) -> np.ndarray:
    """The flat float64 buffer the compiled functions read: a header (sizes, ``phi``, prior
    constants), then the cells of ``inputs`` (:func:`model_inputs`' dense grid) as
    :func:`sparse_cells` lists them (layout: ``_fast_kernels._offsets``)."""
    c = sparse_cells(inputs)
    T, G, Q = inputs["n"].shape[1], len(inputs["group_total"]), c["codes"].shape[1]
    rows = c["row"][c["first"]]
    header = np.zeros(HEADER)
    header[1:11] = (n_dim, T, n_patterns, n_communities, n_segments, float(segment), G,
                    len(c["row"]), Q, float(inputs["phi"]))
    median, sd = buildup_prior
    header[11:18] = (math.log(median), sd, math.log(SPREAD_PRIOR[0]), SPREAD_PRIOR[1], mean_sd,
                     SEGMENT_SD, len(rows))
    parts = [header,
             np.bincount(c["time"], weights=c["total"], minlength=T),
             np.bincount(inputs["row_pattern"][c["row"]], weights=c["total"],
                         minlength=n_patterns),
             np.bincount(c["code"], weights=c["total"], minlength=Q + 1)[:Q],
             c["codes"][0], c["codes"][1], inputs["group_total"],
             np.searchsorted(inputs["row_group"][rows], np.arange(G + 1)),
             inputs["row_pattern"][rows], np.append(c["first"], len(c["row"])),
             c["n"], np.zeros(len(c["row"]))]
    buf = np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts])
    buf[0] = len(buf)
    # month x code per cell as int64 bits (the kernel views them as integers)
    buf[len(buf) - len(c["row"]):] = (c["time"] * (Q + 1) + c["code"]).astype(np.int64).view(
        np.float64)
    return buf


def support_point(lay: Layout, buf: np.ndarray) -> np.ndarray:
    """PyMC's starting point (each prior's mean, on the unconstrained scale; HalfNormal:
    its scale)."""
    values = {"gamma_raw": 0.0, "beta_raw": 0.0, "tau_community": 0.0, "w": 0.0,
              "sigma_tau": buf[13] + buf[14] ** 2 / 2, "kappa": buf[11] + buf[12] ** 2 / 2,
              "sigma_seg": math.log(buf[16])}
    return np.concatenate([np.full(size, values[name]) for name, _, size, _ in lay.free])


def nutpie_model(index: dict[str, Any], inputs: dict[str, np.ndarray], *,
                 buildup_prior: tuple[float, float], mean_sd: float):
    """A nutpie model (``nutpie.sample`` takes it like a compiled PyMC model) whose density
    and gradient are :func:`roi.revenue_lift._fast_kernels.logp_c` on these cells; the draws
    have PyMC's names and shapes (``w`` and ``tau`` community x segment)."""
    from roi.revenue_lift._fast_kernels import expand_c, logp_c

    segment = index["segments"] != [ALL_SEGMENTS]
    sizes = {"n_patterns": len(index["patterns"]), "n_communities": len(index["communities"]),
             "n_segments": len(index["segments"]), "segment": segment}
    lay = layout(n_times=len(index["times"]), **sizes)
    buf = pack(inputs, **sizes, buildup_prior=buildup_prior, mean_sd=mean_sd, n_dim=lay.n_dim)
    coords = {"gamma_raw_dim_0": list(range(len(index["times"]) - 1)),
              "beta_raw_dim_0": list(range(len(index["patterns"]) - 1)),
              "community": list(index["communities"]), "segment": list(index["segments"])}
    return kernel_nutpie_model(logp_c=logp_c, expand_c=expand_c, buf=buf, lay=lay,
                               coords=coords, support_point=support_point(lay, buf))

