"""Which backend nutpie compiles the PyMC models with, and compiling with it.

Every Bayesian model of the toolkit (revenue lift, survival, media mix) samples with nutpie.
nutpie turns the PyMC log-density and its gradient into machine code with one of two backends:

``jax`` (default when JAX is installed, and it is a dependency)
    The graph is traced and compiled by XLA: 1.5-3.5 s per model, every time (measured on 2
    cores: media-mix model 3.3 s, revenue cells 1.5 s). The data are frozen into the compiled
    function, so a new data set means a new compile, which is cheap.
``numba``
    The graph is compiled by numba: faster gradients (the media-mix model samples 4 x 1000 draws
    in 5.6 s against 19.7 s with JAX) but 25-70 s to compile in a fresh process and about
    12 s with a warm cache, because nutpie's wrapper around the compiled graph cannot be
    cached on disk. A compiled model can take new data of the same shapes
    (``compiled.with_data``), so callers keep it per model structure.

Compiling dominated every run, test and notebook (each is a fresh process), so JAX is the
default; ``ROI_NUTPIE_BACKEND=numba`` (or ``jax``) chooses explicitly, e.g. for a long
interactive session that refits one structure many times.

:func:`compile_jax` (the media-mix model's path when its hand-written numba kernel,
:mod:`roi.paid_media.fast_logp`, is switched off or does not cover its components) is a faster
way to the same JAX sampler: the
log-density and its gradient are one XLA function with one flat array in and one out (nutpie's
own JAX wrapper passes and returns a list of arrays per call: 0.35 ms per gradient against
0.12 ms here), dispatched synchronously, and exported to an on-disk cache with XLA's compiled
code beside it, so a process that fits data it has seen before loads the model in about 0.5 s
without importing PyMC. Same seed, same draws, whether the model was compiled or loaded.

Examples
--------
>>> nutpie_backend() in ("jax", "numba")
True
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

BACKENDS = ("jax", "numba")
ENV = "ROI_NUTPIE_BACKEND"


def nutpie_backend() -> str:
    """The backend to compile with: ``$ROI_NUTPIE_BACKEND`` if set, else ``jax`` when it can be
    imported, else ``numba``."""
    chosen = os.environ.get(ENV, "").strip().lower()
    if chosen and chosen not in BACKENDS:
        raise ValueError(f"{ENV} must be one of {BACKENDS}, not {chosen!r}")
    if chosen:
        return chosen
    return "jax" if importlib.util.find_spec("jax") is not None else "numba"


def takes_new_data(backend: str) -> bool:
    """Whether a compiled model accepts new data (``with_data``) instead of a recompile."""
    return backend == "numba"


def compile_kwargs(backend: str) -> dict[str, str]:
    """Keyword arguments of ``nutpie.compile_pymc_model`` (and of PyMC's
    ``nuts_sampler_kwargs``) for ``backend``."""
    if backend == "jax":
        # CPU only: without this JAX probes for accelerators and warns on every import.
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        return {"backend": "jax", "gradient_backend": "jax"}
    return {"backend": "numba"}


def compile_nutpie(model, *, backend: str | None = None) -> Any:
    """``nutpie.compile_pymc_model`` with the chosen backend."""
    import nutpie

    return nutpie.compile_pymc_model(model, **compile_kwargs(backend or nutpie_backend()))


def check_complete(idata, *, draws: int) -> None:
    """Stop when sampling was interrupted: nutpie catches ``KeyboardInterrupt`` (Ctrl-C, or the
    run's SIGTERM handler) and returns the draws so far, which would otherwise become an
    unconverged model in the outputs.

    Raises
    ------
    roi.interrupts.Interrupted
        A signal was received, or fewer than ``draws`` draws per chain came back.
    """
    import signal

    from roi.interrupts import Interrupted, raise_if_interrupted

    raise_if_interrupted()
    obtained = int(idata.posterior.sizes.get("draw", 0))
    if obtained < draws:
        raise Interrupted(signal.SIGINT)


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
        :mod:`roi.inference.nuts`) nothing is stored: every call compiles ``build()``.
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

    def with_data(self, **_inputs: Any) -> Any:
        return self.compiled


# --------------------------------------------------------------------------- fast JAX models

CACHE_ENV = "ROI_JAX_CACHE"
CACHE_ENTRIES = 64                    # models kept on disk (oldest removed first)
_CACHE_FORMAT = 1
_LOADED: OrderedDict[str, Any] = OrderedDict()   # digest -> model, refits in the same process


def jax_cache_dir() -> Path:
    """Where compiled JAX models are kept across processes: ``$ROI_JAX_CACHE``, else
    ``$XDG_CACHE_HOME/roi/jax`` (``~/.cache/roi/jax``)."""
    chosen = os.environ.get(CACHE_ENV, "").strip()
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(base) / "roi" / "jax"


def configure_jax(cache_dir: Path | None = None) -> None:
    """CPU only, 64-bit floats, synchronous dispatch (each call returns a finished result:
    a third less latency per gradient than asynchronous dispatch on CPU) and XLA's persistent
    compilation cache under ``cache_dir / "xla"`` unless the process already chose one."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    if cache_dir is not None and not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(Path(cache_dir) / "xla"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _digest(key: Any) -> str:
    from importlib.metadata import version

    versions = (_CACHE_FORMAT, *(version(p) for p in ("jax", "jaxlib", "nutpie", "pymc",
                                                       "pytensor")))
    hasher = hashlib.sha256(repr(versions).encode())
    _feed(hasher, key)
    return hasher.hexdigest()[:32]


def _feed(hasher, value: Any) -> None:
    """Hash nested tuples/lists/dicts of scalars, strings and numpy arrays (values and shape)."""
    if isinstance(value, np.ndarray):
        hasher.update(f"array{value.dtype}{value.shape}".encode())
        hasher.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        for k in sorted(value):
            hasher.update(repr(k).encode())
            _feed(hasher, value[k])
    elif isinstance(value, list | tuple):
        hasher.update(f"seq{len(value)}".encode())
        for item in value:
            _feed(hasher, item)
    else:
        hasher.update(repr(value).encode())


def compile_jax(build: Callable[[], Any], *, key: Any,
                cache_dir: Path | None = None) -> tuple[Any, bool]:
    """(nutpie model, whether it was built now) for the PyMC model ``build()`` identified by
    ``key``, its log-density and gradient compiled by JAX and called from nutpie with one flat
    array in and one out.

    ``key`` must determine the model completely (structure, priors, data arrays and the code
    that builds it): the compiled functions are exported (``jax.export``) to ``cache_dir``
    (default :func:`jax_cache_dir`) under a hash of ``key`` and the library versions, and XLA's
    own compilation cache lives beside them, so a later process with the same key neither
    imports PyMC nor compiles anything. The first build also goes through the exported
    functions, so a model built now and one loaded later give identical draws.
    """
    cache_dir = jax_cache_dir() if cache_dir is None else Path(cache_dir)
    configure_jax(cache_dir)
    digest = _digest(key)
    if digest in _LOADED:
        _LOADED.move_to_end(digest)
        return _LOADED[digest], False
    fresh = not (cache_dir / f"{digest}.json").exists()
    if not fresh:
        try:
            model = _load(cache_dir, digest)
        except Exception:                     # unreadable entry (e.g. cut short): build again
            fresh = True
    if fresh:
        _export(build(), cache_dir=cache_dir, digest=digest)
        _prune(cache_dir, keep=CACHE_ENTRIES)
        model = _load(cache_dir, digest)
    _LOADED[digest] = model
    while len(_LOADED) > 8:
        _LOADED.popitem(last=False)
    return model, fresh


def _prune(cache_dir: Path, *, keep: int) -> None:
    """Remove all but the ``keep`` newest exported models and, in XLA's cache beside them, all
    but the ``4 * keep`` newest compiled functions (a few per model)."""
    def newest_first(paths):
        def mtime(path):
            try:
                return path.stat().st_mtime
            except OSError:           # removed meanwhile by another process
                return 0.0
        return sorted(paths, key=mtime, reverse=True)

    for meta in newest_first(cache_dir.glob("*.json"))[keep:]:
        for part in (meta, meta.with_suffix(".logp.bin"), meta.with_suffix(".expand.bin")):
            part.unlink(missing_ok=True)
    for entry in newest_first((cache_dir / "xla").glob("*"))[4 * keep:]:
        entry.unlink(missing_ok=True)


def _export(model, *, cache_dir: Path, digest: str) -> None:
    """Build the log-density (+ gradient) and expansion functions of ``model`` and write them."""
    import jax
    import jax.numpy as jnp
    from nutpie.compile_pymc import _make_functions, _prepare_dims_and_coords
    from pymc.initial_point import make_initial_point_fn
    from pymc.model.transform.optimization import freeze_dims_and_data

    from roi.outputs import atomic_target

    model = freeze_dims_and_data(model)
    start = make_initial_point_fn(model=model, jitter_rvs=set(), return_transformed=True)
    n_dim, n_expanded, logp_pt, expand_pt, _, shape_info = _make_functions(
        model, mode="JAX", compute_grad=False, join_expanded=True,
        pymc_initial_point_fn=start)
    raw_logp, raw_expand = logp_pt.vm.jit_fn._fun, expand_pt.vm.jit_fn._fun

    def logp_and_grad(x):
        value, grad = jax.value_and_grad(lambda v: raw_logp(v)[0])(x)
        return jnp.concatenate([value[None], grad])

    def expand(x):
        return raw_expand(x)[0]

    point = jax.ShapeDtypeStruct((n_dim,), jnp.float64)
    names, slices, shapes = shape_info
    first = start(0)
    support = np.concatenate([np.ravel(first[name]) for name in names[:len(model.free_RVs)]])
    dims, coords = _prepare_dims_and_coords(model, shape_info)
    meta = {"n_dim": int(n_dim), "n_expanded": int(n_expanded), "names": list(names),
            "slices": [[int(s.start), int(s.stop)] for s in slices],
            "shapes": [[int(n) for n in shape] for shape in shapes],
            "dims": {k: list(v) for k, v in dims.items()},
            "coords": {k: [_plain(v) for v in index] for k, index in coords.items()},
            "support_point": support.tolist()}
    cache_dir.mkdir(parents=True, exist_ok=True)
    for part, fn in (("logp", logp_and_grad), ("expand", expand)):
        exported = jax.export.export(jax.jit(fn))(point)
        with atomic_target(cache_dir / f"{digest}.{part}.bin") as temporary:
            temporary.write_bytes(bytes(exported.serialize()))
    with atomic_target(cache_dir / f"{digest}.json") as temporary:
        temporary.write_text(json.dumps(meta))


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _load(cache_dir: Path, digest: str) -> Any:
    """The nutpie model of the functions :func:`_export` wrote."""
    import jax
    import pandas as pd
    from nutpie.compiled_pyfunc import from_pyfunc

    meta = json.loads((cache_dir / f"{digest}.json").read_text())
    logp_and_grad, expand = (
        jax.jit(jax.export.deserialize(bytearray(
            (cache_dir / f"{digest}.{part}.bin").read_bytes())).call)
        for part in ("logp", "expand"))
    names, shapes = meta["names"], [tuple(s) for s in meta["shapes"]]
    slices = [slice(a, b) for a, b in meta["slices"]]
    support = np.asarray(meta["support_point"], dtype=np.float64)

    def make_logp_fn():
        def logp(x, **_shared):
            out = np.asarray(logp_and_grad(x))
            return float(out[0]), out[1:]
        return logp

    def make_expand_fn(*_seeds):
        def expand_point(x, **_shared):
            out = np.asarray(expand(x))
            return {name: out[part].reshape(shape)
                    for name, part, shape in zip(names, slices, shapes, strict=True)}
        return expand_point

    def initial_point(seed):
        # pymc's default: the support point, every free variable jittered by U(-1, 1)
        return support + np.random.default_rng(seed).uniform(-1.0, 1.0, len(support))

    return from_pyfunc(
        ndim=meta["n_dim"], make_logp_fn=make_logp_fn, make_expand_fn=make_expand_fn,
        make_initial_point_fn=initial_point, expanded_dtypes=[np.dtype("float64")] * len(names),
        expanded_shapes=shapes, expanded_names=names,
        dims={k: tuple(v) for k, v in meta["dims"].items()},
        coords={k: pd.Index(v) for k, v in meta["coords"].items()})
