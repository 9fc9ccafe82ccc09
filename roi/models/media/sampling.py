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

import arviz as az
import numpy as np

from roi.models.nuts import CompiledCache

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
