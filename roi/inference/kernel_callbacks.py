"""numba pieces shared by the C callbacks of the hand-written densities
(:mod:`roi.inference.kernel_model`): the callbacks' signatures, the decorator that compiles them,
the status a log-density callback returns, and the two callbacks run on arrays from Python (the
tests' and benchmarks' way in).

Each kernel (:mod:`roi.paid_media._fast_kernels`, :mod:`roi.revenue_lift._fast_kernels`,
:mod:`roi.retention._fast_kernels`) writes its density and gradient as the body of the
``logp_c`` callback itself, not as an ``@njit`` function the callback calls: numba compiles a
called ``@njit`` function twice (once as its own dispatcher, with machine code and a Python
wrapper, and again linked into the callback), which for a whole density is seconds of a cold
compile. Small helpers (:func:`logp_status`, a prior's log-density) cost little either way.

Imports numba: imported by the kernels only, never by :mod:`roi.inference.kernel_model`.

Examples
--------
>>> import numpy as np
>>> int(logp_status(-1.5, np.zeros(3))), int(logp_status(-1.5, np.array([0.0, np.nan])))
(0, 3)
"""

from __future__ import annotations

import ctypes
import math

import numba
import numpy as np
from numba import types
from numba.core.compiler_lock import global_compiler_lock

jit = numba.njit(cache=True, error_model="numpy")
PTR = types.CPointer(types.float64)
# nutpie's callbacks: logp(dim, x, grad, logp, data) and expand(dim, n_expanded, x, out, data)
LOGP_SIGNATURE = types.int64(types.uint64, PTR, PTR, PTR, PTR)
EXPAND_SIGNATURE = types.int64(types.uint64, types.uint64, PTR, PTR, PTR)


def cfunc(signature):
    """``numba.cfunc(signature, cache=True, error_model="numpy")``, compiled (with the ``@jit``
    helpers it calls) without LLVM's loop vectorizer: the kernels' loops are short or gather
    through index arrays, and without it a cold compile takes less CPU and a gradient is no
    slower (figures in each kernel's module), same results to the bit. numba reads the setting
    while it compiles, under its global lock: set and restored inside that lock, so no other
    numba user (PyTensor's numba backend, another kernel) sees it."""
    def decorate(function):
        with global_compiler_lock:
            saved = numba.config.LOOP_VECTORIZE
            numba.config.LOOP_VECTORIZE = 0
            try:
                return numba.cfunc(signature, cache=True, error_model="numpy")(function)
            finally:
                numba.config.LOOP_VECTORIZE = saved
    return decorate


@jit
def logp_status(value, grad):
    """What a log-density callback returns once it has written ``value`` and ``grad``: 0, or
    3 for a non-finite gradient, 4 for a non-finite value (nutpie then rejects the point)."""
    for i in range(len(grad)):
        if not math.isfinite(grad[i]):
            return 3
    if not math.isfinite(value):
        return 4
    return 0


def _pointer(array: np.ndarray):
    return array.ctypes.data_as(ctypes.POINTER(ctypes.c_double))


def run_logp(logp_c, x: np.ndarray, buf: np.ndarray, *,
             python: bool = False) -> tuple[float, np.ndarray, int]:
    """(log-density, gradient, status) of the callback ``logp_c`` at ``x`` on ``buf``: the
    compiled code as nutpie calls it, or (``python``) its source run as plain Python on the
    same arrays (``numba.carray`` of ctypes pointers), the ``@jit`` helpers compiled."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    buf = np.ascontiguousarray(buf, dtype=np.float64)
    grad, value = np.zeros(len(x)), np.zeros(1)
    call = logp_c.__wrapped__ if python else logp_c.ctypes
    status = call(len(x), _pointer(x), _pointer(grad), _pointer(value), _pointer(buf))
    return float(value[0]), grad, int(status)


def run_expand(expand_c, x: np.ndarray, buf: np.ndarray, *, n_expanded: int,
               python: bool = False) -> np.ndarray:
    """The expanded draw (:meth:`roi.inference.kernel_model.Layout.expanded`, flat) the callback
    ``expand_c`` writes for ``x``; ``python`` as in :func:`run_logp`."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    buf = np.ascontiguousarray(buf, dtype=np.float64)
    out = np.zeros(n_expanded)
    call = expand_c.__wrapped__ if python else expand_c.ctypes
    status = call(len(x), n_expanded, _pointer(x), _pointer(out), _pointer(buf))
    if status != 0:
        raise ValueError(f"expand_c returned {status} (x has {len(x)} values)")
    return out
