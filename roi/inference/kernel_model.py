"""Hand-written numba log-densities as nutpie models: the plumbing every kernel shares.

A model whose log-density and gradient are written out by hand (the media-mix model's
:mod:`roi.paid_media.fast_logp`, the revenue cells', the survival cells') is, for nutpie, two
numba C callbacks (``logp(dim, x, grad, logp, data)`` and ``expand(dim, n_expanded, x, out,
data)``) and a flat float64 buffer holding the data and the prior constants. nutpie's Rust
sampler calls the callbacks directly: no Python, no GIL, so the chains run in parallel and a
gradient costs microseconds. :class:`Layout` names the unconstrained parameters, their
transforms and dims, and the quantities derived from them that the expand callback adds (PyMC's
``Deterministic``); :func:`kernel_nutpie_model` wraps callbacks and buffer into the object
``nutpie.sample`` takes (the same class nutpie builds from a PyMC model), so the draws come
back with PyMC's names (``sigma_log__`` and ``sigma``), shapes and coordinates. The numba side
(callback signatures, status, running a callback from Python) is
:mod:`roi.inference.kernel_callbacks`.

Examples
--------
>>> lay = Layout([("beta", None, 2, "term"), ("sigma", "log", 1, None),
...               ("w", None, 6, ("group", "segment"))], derived=[("mu", 2, "term")])
>>> lay.n_dim, [name for name, _, _ in lay.expanded()]
(9, ['beta', 'sigma_log__', 'w', 'sigma', 'mu'])
>>> lay.shapes({"term": ["a", "b"], "group": [1, 2, 3], "segment": ["x", "y"]})
{'beta': (2,), 'sigma_log__': (), 'w': (3, 2), 'sigma': (), 'mu': (2,)}
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

Dims = str | tuple[str, ...] | None


@dataclass
class Layout:
    """Names, dims and transforms of the unconstrained vector and of the expanded draws.

    ``free``: (name, transform or None, size, dims) in the order of the vector; a transformed
    parameter ``p`` is sampled as ``p_<transform>__`` and expanded to ``p`` too. ``derived``:
    (name, size, dims) of the quantities the kernel's expand callback writes after those. Dims:
    None, one dim's name, or a tuple of names for a multi-dimensional variable (flat here,
    row-major as PyMC ravels it; its shape comes from the coordinates' lengths, :meth:`shapes`).
    """

    free: list[tuple[str, str | None, int, Dims]]
    derived: list[tuple[str, int, Dims]] = field(default_factory=list)

    @property
    def n_dim(self) -> int:
        return sum(size for _, _, size, _ in self.free)

    def value_name(self, name: str, transform: str | None) -> str:
        return name if transform is None else f"{name}_{transform}__"

    def expanded(self) -> list[tuple[str, int, Dims]]:
        """(name, size, dims): every value variable, the constrained transformed ones, then the
        derived quantities."""
        out = [(self.value_name(n, t), s, None if t else d) for n, t, s, d in self.free]
        return (out + [(n, s, d) for n, t, s, d in self.free if t is not None]
                + list(self.derived))

    def shapes(self, coords: dict[str, list]) -> dict[str, tuple[int, ...]]:
        """Each expanded draw's shape: a size-1 variable without dims is 0-d, one with several
        dims takes their coordinates' lengths (their product must be its size)."""
        out = {}
        for name, size, dims in self.expanded():
            if isinstance(dims, tuple):
                out[name] = tuple(len(coords[d]) for d in dims)
                if math.prod(out[name]) != size:
                    raise ValueError(f"Layout: {name} has {size} values, dims {dims} "
                                     f"{out[name]}")
            else:
                out[name] = (size,) if dims or size != 1 else ()
        return out

    def point(self, x: np.ndarray, *, shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
        """The unconstrained vector ``x`` as PyMC's point: value name -> array of
        ``shapes[value name]`` (e.g. ``model.initial_point()``'s shapes), to compare a kernel
        with ``model.compile_logp()`` at the same point."""
        out, start = {}, 0
        for name, transform, size, _ in self.free:
            value = self.value_name(name, transform)
            out[value] = np.asarray(x[start:start + size]).reshape(shapes[value])
            start += size
        return out

    def offsets(self) -> dict[str, int]:
        """Start of each free parameter (by name) in the unconstrained vector."""
        out, start = {}, 0
        for name, _, size, _ in self.free:
            out[name] = start
            start += size
        return out


def kernel_nutpie_model(*, logp_c, expand_c, buf: np.ndarray, lay: Layout,
                        coords: dict[str, list], support_point: np.ndarray):
    """A nutpie model (``nutpie.sample`` takes it like a compiled PyMC model) whose density and
    gradient are the numba C callback ``logp_c`` reading ``buf``; ``expand_c`` writes the
    expanded draws (:meth:`Layout.expanded`, shaped by :meth:`Layout.shapes`).
    Each chain starts where PyMC's would by default: ``support_point`` (each prior's mean,
    unconstrained) with every value jittered by U(-1, 1) from the chain's seed."""
    import pandas as pd
    from nutpie.compile_pymc import CompiledPyMCModel

    expanded = lay.expanded()
    names = [name for name, _, _ in expanded]
    shapes = list(lay.shapes(coords).values())
    slices, start = [], 0
    for _, size, _ in expanded:
        slices.append(slice(start, start + size))
        start += size
    dims = {name: d if isinstance(d, tuple) else (d,) for name, _, d in expanded if d}
    used = {d for names_ in dims.values() for d in names_}
    return CompiledPyMCModel(
        dims=dims,
        compiled_logp_func=logp_c, compiled_expand_func=expand_c,
        initial_point_func=lambda seed: support_point + np.random.default_rng(seed).uniform(
            -1.0, 1.0, lay.n_dim),
        shared_data={}, user_data=buf,
        n_expanded=start, shape_info=(names, slices, shapes), logp_func=None, expand_func=None,
        _n_dim=lay.n_dim, _shapes=dict(zip(names, shapes, strict=True)),
        _coords={k: pd.Index(v) for k, v in coords.items() if k in used})
