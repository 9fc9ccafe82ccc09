"""Sampling the media-mix model: nutpie (backend of :mod:`roi.models.nuts`), PyMC NUTS as fallback.

With the numba backend :class:`CompiledCache` keeps one nutpie-compiled model per
:func:`structure_key`; a new data set of the same structure is swapped in with
``compiled.with_data(...)`` (no recompiling). With JAX (the default) every fit compiles, in
about 3 s. The
module-level :data:`COMPILED` is shared by every :class:`MediaMixModel` of the process.

Determinism: nutpie gives every chain its own seeded stream; identical seeds give identical draws
whatever the thread scheduling. The sampler's output is put in chain order and the fit result
depends only on (data, settings, seed).

Examples
--------
>>> cache = CompiledCache()
>>> len(cache)
0
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import arviz as az
import numpy as np

from roi.models.nuts import compile_nutpie, nutpie_backend, takes_new_data


class CompiledCache:
    """Least-recently-used store of compiled nutpie models (``size`` structures)."""

    def __init__(self, *, size: int = 4) -> None:
        self.size = size
        self._store: OrderedDict[tuple, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: tuple, build: Callable[[], Any]) -> tuple[Any, bool]:
        """(compiled model, whether it was compiled now) for ``key``.

        With a backend whose compiled models cannot take new data (JAX, see
        :mod:`roi.models.nuts`) nothing is stored: every call compiles ``build()``.
        """
        backend = nutpie_backend()
        if not takes_new_data(backend):
            return _FrozenData(compile_nutpie(build(), backend=backend)), True
        if key in self._store:
            self._store.move_to_end(key)
            return self._store[key], False
        compiled = compile_nutpie(build(), backend=backend)
        self._store[key] = compiled
        while len(self._store) > self.size:
            self._store.popitem(last=False)
        return compiled, True


class _FrozenData:
    """A model compiled with its data in it: ``with_data`` gives the model back (the caller
    built it from the same inputs)."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled

    def with_data(self, **_inputs: np.ndarray) -> Any:
        return self.compiled


COMPILED = CompiledCache()


def nutpie_available() -> bool:
    try:
        import nutpie  # noqa: F401
    except ImportError:
        return False
    return True


def sample_nutpie(compiled, inputs: dict[str, np.ndarray], *, draws: int, tune: int,
                  chains: int, seed: int) -> az.InferenceData:
    """Sample ``compiled`` with ``inputs`` swapped in (seeded, chains on up to 2 threads)."""
    import nutpie

    return nutpie.sample(compiled.with_data(**inputs), draws=draws, tune=tune, chains=chains,
                         cores=min(chains, 2), seed=seed, progress_bar=False,
                         low_rank_modified_mass_matrix=True)


def sample_pymc(model, *, draws: int, tune: int, chains: int, seed: int) -> az.InferenceData:
    """PyMC's own NUTS (used when nutpie cannot be imported)."""
    import pymc as pm

    with model:
        return pm.sample(draws=draws, tune=tune, chains=chains, cores=min(chains, 2),
                         random_seed=seed, nuts_sampler="pymc", progressbar=False,
                         compute_convergence_checks=False)


def posterior_draws(idata: az.InferenceData) -> dict[str, np.ndarray]:
    """Every posterior variable with chains and draws stacked on axis 0 (chain order)."""
    post = idata.posterior.sortby("chain")
    return {name: post[name].to_numpy().reshape((-1,) + post[name].shape[2:])
            for name in post.data_vars}
