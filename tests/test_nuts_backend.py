"""The nutpie backend rule (roi/models/nuts.py) and the compiled-model cache that follows it."""

from __future__ import annotations

import pytest

from roi.models import nuts


def test_backend_from_environment(monkeypatch):
    monkeypatch.setenv(nuts.ENV, "numba")
    assert nuts.nutpie_backend() == "numba"
    monkeypatch.setenv(nuts.ENV, "JAX")
    assert nuts.nutpie_backend() == "jax"
    monkeypatch.setenv(nuts.ENV, "c")
    with pytest.raises(ValueError, match="ROI_NUTPIE_BACKEND must be one of"):
        nuts.nutpie_backend()
    monkeypatch.delenv(nuts.ENV)
    assert nuts.nutpie_backend() == "jax"   # jax is a dependency


def test_compile_arguments():
    assert nuts.compile_kwargs("jax") == {"backend": "jax", "gradient_backend": "jax"}
    assert nuts.compile_kwargs("numba") == {"backend": "numba"}


@pytest.mark.parametrize(("backend", "compiles"), [("numba", 2), ("jax", 3)])
def test_cache_reuses_only_models_that_take_new_data(monkeypatch, backend, compiles):
    """numba models are kept per structure key (new data swapped in); JAX models hold their
    data, so every call compiles and ``with_data`` gives the model built from it."""
    made = []

    def fake_compile(model, *, backend):
        made.append((model, backend))
        return f"compiled {model}"

    monkeypatch.setenv(nuts.ENV, backend)
    monkeypatch.setattr(nuts, "compile_nutpie", fake_compile)
    cache = nuts.CompiledCache(size=4)
    first, fresh = cache.get(("a",), lambda: "model a")
    again, fresh_again = cache.get(("a",), lambda: "model a2")
    cache.get(("b",), lambda: "model b")
    assert len(made) == compiles
    assert fresh and (fresh_again == (backend == "jax"))
    if backend == "jax":
        assert again.with_data(x=1) == "compiled model a2" and len(cache) == 0
    else:
        assert again is first and len(cache) == 2
