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

Examples
--------
>>> nutpie_backend() in ("jax", "numba")
True
"""

from __future__ import annotations

import importlib.util
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

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

    def with_data(self, **_inputs: Any) -> Any:
        return self.compiled
