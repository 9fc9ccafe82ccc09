"""Sampling the media-mix model: nutpie (backend of :mod:`roi.inference.nuts`), PyMC NUTS as fallback.

By default (:func:`logp_backend`) nutpie samples the hand-written numba kernel of
:mod:`roi.paid_media.fast_logp` (:func:`kernel_model`): no PyMC graph is built or compiled (nor
PyMC, PyTensor or JAX imported), the kernel's machine code is compiled once per installation and
cached by numba, and each gradient costs about 42 us without a Python callback.
``ROI_MMM_LOGP=pytensor``, or a component the kernel does not implement (delayed adstock), takes
PyMC's graph as below.

A cold fit (empty caches; 4 chains x 1000+1000, 104 weeks, 4 channels; CPU seconds, issue 21)
spends about 3.7 s compiling the kernel (5.2 s before the density became the C callback itself,
see :mod:`roi.paid_media._fast_kernels`), 0.03 s when numba's cache has it; of the 3.7 s,
numba's own passes (bytecode to typed IR, type inference, lowering to LLVM IR) take about 2.0 s
and LLVM 1.6 s (per-function passes 0.46, module passes 0.38, machine code 0.53, parsing 0.24),
so LLVM's optimisation level barely matters (``NUMBA_OPT``): -O2 saves nothing measurable, -O1
about 0.1 s for a 38% slower gradient, -O0 0.5 s for a 15x slower one. Sampling takes about 4.0
s CPU on nutpie's two threads, 3.6 s of it in the kernel: 83,635 gradients per fit, warm-up
included (``n_steps`` counts the kept draws' 29,400 only), so a microsecond per gradient is
0.08 s of CPU; summarising about 0.7 s (the convergence gate 0.3 s, of which 0.13 s is ArviZ
compiling its numba variance in every process; contributions, curves and HDIs 0.4 s).

With JAX (the default nutpie backend) the graph's log-density is compiled once per (structure,
data, code) and kept on disk (:func:`roi.inference.nuts.compile_jax`): a fit of data seen before
loads it in well under a second, a new data set compiles in about 4 s. With the numba backend
:class:`CompiledCache` keeps one nutpie-compiled model per :func:`structure_key`; a new data set
of the same structure is swapped in with ``compiled.with_data(...)`` (no recompiling). The
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

import importlib.util
import os
import sys

import arviz as az
import numpy as np

from roi.inference.nuts import CompiledCache, check_complete, compile_jax, nutpie_backend
from roi.progress import progress_detail

COMPILED = CompiledCache()
LOGP_ENV = "ROI_MMM_LOGP"
LOGP_BACKENDS = ("numba", "pytensor")


def nutpie_available() -> bool:
    try:
        import nutpie  # noqa: F401
    except ImportError:
        return False
    return True


def compiled_model(build, *, key: tuple, model_key, inputs: dict[str, np.ndarray]):
    """(nutpie model ready to sample, whether it was compiled now).

    JAX: :func:`roi.inference.nuts.compile_jax` keyed by ``model_key()`` (everything the model
    depends on, data included); numba: :data:`COMPILED` keyed by the structure ``key`` with
    ``inputs`` swapped in.
    """
    if nutpie_backend() == "jax":
        return compile_jax(build, key=model_key())
    compiled, fresh = COMPILED.get(key, build)
    return compiled.with_data(**inputs), fresh


def logp_backend(*, adstock, saturation, community_adstock) -> str:
    """How the media-mix model's log-density is computed: ``numba`` (the hand-written kernel
    of :mod:`roi.paid_media.fast_logp`, default when the components are supported and numba
    imports) or ``pytensor`` (PyMC's graph, compiled as :func:`compiled_model` says).
    ``$ROI_MMM_LOGP`` chooses explicitly; ``numba`` for unsupported components falls back.
    """
    from roi.paid_media.fast_logp import supports

    chosen = os.environ.get(LOGP_ENV, "").strip().lower()
    if chosen and chosen not in LOGP_BACKENDS:
        raise ValueError(f"{LOGP_ENV} must be one of {LOGP_BACKENDS}, not {chosen!r}")
    if chosen == "pytensor" or importlib.util.find_spec("numba") is None:
        return "pytensor"
    ok = supports(adstock=adstock, saturation=saturation, community_adstock=community_adstock)
    return "numba" if ok else "pytensor"


def kernel_model(data, inputs: dict[str, np.ndarray], *, adstock, saturation,
                 community_adstock, roas_sigma: float):
    """(nutpie model on the numba kernel, whether the kernel was compiled or loaded now, i.e.
    by the first fit of the process)."""
    from roi.paid_media.fast_logp import nutpie_model

    fresh = "roi.paid_media._fast_kernels" not in sys.modules
    coords = {"channel": data.channels, "community": data.communities,
              "fourier_term": list(range(data.fourier.shape[1])),
              "control": data.control_names or ["none"]}
    return nutpie_model(inputs, adstock=adstock, saturation=saturation,
                        community_adstock=community_adstock, roas_sigma=roas_sigma,
                        coords=coords), fresh


def sample_nutpie(compiled, *, draws: int, tune: int, chains: int, seed: int,
                  target_accept: float = 0.8) -> az.InferenceData:
    """Sample ``compiled`` (seeded, chains on up to 2 threads)."""
    import nutpie

    progress_detail("sampling")
    idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains,
                          cores=min(chains, 2), seed=seed, progress_bar=False,
                          low_rank_modified_mass_matrix=True, target_accept=target_accept)
    check_complete(idata, draws=draws)   # Ctrl-C gives the draws so far: stop, don't fit on them
    return idata


def sample_pymc(model, *, draws: int, tune: int, chains: int, seed: int,
                target_accept: float = 0.8) -> az.InferenceData:
    """PyMC's own NUTS (used when nutpie cannot be imported).

    The data are frozen into the graph first: with shapes known, PyTensor can broadcast the
    one-test lift arrays (unfrozen, the gradient of the lift term fails at run time).
    """
    import pymc as pm
    from pymc.model.transform.optimization import freeze_dims_and_data

    with freeze_dims_and_data(model):
        return pm.sample(draws=draws, tune=tune, chains=chains, cores=min(chains, 2),
                         random_seed=seed, nuts_sampler="pymc", progressbar=False,
                         target_accept=target_accept, compute_convergence_checks=False)


def posterior_draws(idata: az.InferenceData) -> dict[str, np.ndarray]:
    """Every posterior variable with chains and draws stacked on axis 0 (chain order)."""
    post = idata.posterior.sortby("chain")
    return {name: post[name].to_numpy().reshape((-1,) + post[name].shape[2:])
            for name in post.data_vars}
