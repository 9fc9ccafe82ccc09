"""The nutpie backend rule (roi/inference/nuts.py), the compiled-model cache that follows it and
the on-disk JAX models of ``compile_jax``."""

from __future__ import annotations

import numpy as np
import pytest

from roi.inference import nuts


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


def _tiny_model(mu: float):
    import pymc as pm

    with pm.Model(coords={"k": ["a", "b"]}) as model:
        scale = pm.HalfNormal("scale", 1.0)
        loc = pm.Normal("loc", mu, 1.0, dims="k")
        pm.Normal("y", loc.sum(), scale, observed=[0.3, 0.5, 0.1])
    return model


def test_compile_jax_exports_and_reloads_the_same_sampler(tmp_path, monkeypatch):
    """Compiled once per key; a later process (here: the in-memory copy forgotten) loads it
    from disk without building the model, and the same seed gives identical draws."""
    import nutpie

    monkeypatch.setattr(nuts, "_LOADED", nuts.OrderedDict())
    built = []

    def build():
        built.append(1)
        return _tiny_model(0.0)

    first, fresh = nuts.compile_jax(build, key=("tiny", 0.0), cache_dir=tmp_path)
    assert fresh and len(built) == 1 and len(list(tmp_path.glob("*.json"))) == 1
    again, fresh_again = nuts.compile_jax(build, key=("tiny", 0.0), cache_dir=tmp_path)
    assert again is first and not fresh_again
    nuts._LOADED.clear()
    loaded, fresh_loaded = nuts.compile_jax(build, key=("tiny", 0.0), cache_dir=tmp_path)
    assert not fresh_loaded and len(built) == 1
    settings = {"draws": 30, "tune": 30, "chains": 2, "cores": 1, "seed": 3,
                "progress_bar": False}
    # Exact on purpose: both samplers run on this CPU in this test (README, Reproducibility).
    a, b = nutpie.sample(first, **settings), nutpie.sample(loaded, **settings)
    for name in ("scale", "loc", "scale_log__"):
        assert (a.posterior[name].values == b.posterior[name].values).all(), name
    assert list(a.posterior["loc"].coords["k"].values) == ["a", "b"]
    assert (a.posterior["scale"].values > 0).all()
    _, fresh_other = nuts.compile_jax(lambda: _tiny_model(1.0), key=("tiny", 1.0),
                                      cache_dir=tmp_path)
    assert fresh_other and len(list(tmp_path.glob("*.json"))) == 2


def test_compile_jax_gradient_matches_pymc(tmp_path, monkeypatch):
    monkeypatch.setattr(nuts, "_LOADED", nuts.OrderedDict())
    model = _tiny_model(0.5)
    compiled, _ = nuts.compile_jax(lambda: model, key=("tiny", 0.5, "grad"), cache_dir=tmp_path)
    point = np.array([0.2, -0.1, 0.4])              # scale_log__, loc[a], loc[b]
    logp, grad = compiled._make_logp_func()(point)
    expected = model.compile_logp()({"scale_log__": 0.2, "loc": np.array([-0.1, 0.4])})
    assert logp == pytest.approx(float(expected), rel=1e-10)
    dlogp = model.compile_dlogp()({"scale_log__": 0.2, "loc": np.array([-0.1, 0.4])})
    np.testing.assert_allclose(grad, dlogp, rtol=1e-10)


def test_digest_sees_array_values():
    a = nuts._digest(("m", {"x": np.zeros(3)}))
    assert a == nuts._digest(("m", {"x": np.zeros(3)}))
    assert a != nuts._digest(("m", {"x": np.array([0.0, 0.0, 1e-12])}))
    assert a != nuts._digest(("m", {"x": np.zeros((3, 1))}))


def test_compile_jax_rebuilds_an_unreadable_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(nuts, "_LOADED", nuts.OrderedDict())
    nuts.compile_jax(lambda: _tiny_model(2.0), key=("tiny", 2.0), cache_dir=tmp_path)
    (bin_file,) = tmp_path.glob("*.logp.bin")
    bin_file.write_bytes(b"cut short")
    nuts._LOADED.clear()
    model, fresh = nuts.compile_jax(lambda: _tiny_model(2.0), key=("tiny", 2.0),
                                    cache_dir=tmp_path)
    assert fresh and bin_file.read_bytes() != b"cut short"
    assert model._make_logp_func()(np.zeros(3))[1].shape == (3,)
