"""The media-mix model's hand-written numba density against PyMC's own (roi/paid_media/fast_logp.py).

The kernel replaces PyMC's graph in every default fit, so its log-density and gradient must be
PyMC's: compared at random unconstrained points, with lift tests, both saturations and both
adstock normalisations. The kernel runs as plain Python here (``py_func``), the same code numba
compiles; PyMC's side is compiled with JAX (fast to compile).
"""

from __future__ import annotations

import numpy as np
import pytest

from roi.paid_media import GeometricAdstock, HillSaturation, LogisticSaturation, fast_logp
from roi.paid_media.lift_tests import LiftTest
from roi.paid_media.model import build_model, model_inputs, prepare
from roi.simulate_media import simulate_media_world

CASES = {
    "hill": (GeometricAdstock(l_max=26), HillSaturation(), 0),
    "logistic-normalised-lift": (GeometricAdstock(l_max=8, normalize=True),
                                 LogisticSaturation(), 2),
}


@pytest.fixture(scope="module")
def world():
    return simulate_media_world(seed=2, n_customers=5_000)


def _lift_tests(weekly, n: int) -> list[LiftTest]:
    weeks = weekly.spend.index
    tests = [LiftTest(channel="social", start=str(weeks[30].date()), end=str(weeks[33].date()),
                      spend_change=20_000.0, revenue_change=30_000.0, standard_error=8_000.0),
             LiftTest(channel="search", start=str(weeks[70].date()), end=str(weeks[72].date()),
                      spend_change=-9_000.0, revenue_change=-15_000.0, standard_error=6_000.0)]
    return tests[:n]


@pytest.mark.parametrize("case", list(CASES))
def test_density_and_gradient_match_pymc(world, case):
    """Same log-density (up to a constant below 1e-5) and gradient (1e-9 relative)."""
    from pymc.model.transform.optimization import freeze_dims_and_data

    from roi.paid_media import _fast_kernels

    adstock, saturation, n_tests = CASES[case]
    community = GeometricAdstock(l_max=8, normalize=True)
    data = prepare(world.weekly, controls=("promo",))
    inputs = model_inputs(data, adstock=adstock, community_adstock=community,
                          lift_tests=_lift_tests(world.weekly, n_tests), roas_median=1.7)
    lay = fast_logp.layout(n_channels=len(data.channels), n_communities=len(data.communities),
                           n_fourier_terms=data.fourier.shape[1], n_controls=1,
                           saturation=saturation)
    buf = fast_logp.pack(inputs, adstock=adstock, saturation=saturation,
                         community_adstock=community, roas_sigma=0.7, n_dim=lay.n_dim)
    model = freeze_dims_and_data(build_model(data, inputs, adstock=adstock,
                                             saturation=saturation, community_adstock=community,
                                             roas_sigma=0.7))
    logp, dlogp = model.compile_logp(mode="JAX"), model.compile_dlogp(mode="JAX")
    start = model.initial_point()
    offsets, at = {}, 0
    for var in model.value_vars:
        offsets[var.name] = slice(at, at + start[var.name].size)
        at += start[var.name].size
    assert at == lay.n_dim
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.normal(scale=0.6, size=lay.n_dim)
        point = lay.point(x, shapes={k: v.shape for k, v in start.items()})
        grad = np.zeros(lay.n_dim)
        value = _fast_kernels.logp_grad(x, grad, buf)
        theirs = np.asarray(dlogp(point))
        theirs = np.concatenate([theirs[offsets[lay.value_name(n, t)]]
                                 for n, t, _, _ in lay.free])
        assert value == pytest.approx(float(logp(point)), abs=1e-5)
        np.testing.assert_allclose(grad, theirs, rtol=1e-9, atol=1e-9 * np.abs(theirs).max())


def test_support_point_is_pymcs(world):
    """The sampler starts where PyMC's would (each prior's mean, unconstrained)."""
    adstock, saturation, _ = CASES["hill"]
    community = GeometricAdstock(l_max=8, normalize=True)
    data = prepare(world.weekly)
    inputs = model_inputs(data, adstock=adstock, community_adstock=community, lift_tests=[],
                          roas_median=2.0)
    lay = fast_logp.layout(n_channels=len(data.channels), n_communities=len(data.communities),
                           n_fourier_terms=data.fourier.shape[1], n_controls=1,
                           saturation=saturation)
    buf = fast_logp.pack(inputs, adstock=adstock, saturation=saturation,
                         community_adstock=community, roas_sigma=0.8, n_dim=lay.n_dim)
    model = build_model(data, inputs, adstock=adstock, saturation=saturation,
                        community_adstock=community, roas_sigma=0.8)
    from pymc.initial_point import make_initial_point_fn

    theirs = make_initial_point_fn(model=model, jitter_rvs=set(), return_transformed=True)(0)
    expected = np.concatenate([np.ravel(theirs[lay.value_name(n, t)]) for n, t, _, _ in lay.free])
    np.testing.assert_allclose(fast_logp.support_point(lay, buf), expected, atol=1e-6)


def test_compiled_kernel_is_the_python_code(world):
    """nutpie's C callbacks (compiled) against the same code run as Python: density and
    gradient within 1e-12 (relative), the expanded draws the transforms of ``x``."""
    from roi.inference.kernel_callbacks import run_expand, run_logp
    from roi.paid_media import _fast_kernels

    adstock, saturation, _ = CASES["logistic-normalised-lift"]
    community = GeometricAdstock(l_max=8, normalize=True)
    data = prepare(world.weekly, controls=("promo",))
    inputs = model_inputs(data, adstock=adstock, community_adstock=community,
                          lift_tests=_lift_tests(world.weekly, 2), roas_median=1.7)
    lay = fast_logp.layout(n_channels=len(data.channels), n_communities=len(data.communities),
                           n_fourier_terms=data.fourier.shape[1], n_controls=1,
                           saturation=saturation)
    buf = fast_logp.pack(inputs, adstock=adstock, saturation=saturation,
                         community_adstock=community, roas_sigma=0.7, n_dim=lay.n_dim)

    rng = np.random.default_rng(1)
    n_expanded = sum(size for _, size, _ in lay.expanded())
    for _ in range(3):
        x = fast_logp.support_point(lay, buf) + rng.uniform(-1, 1, lay.n_dim)
        value, grad, status = run_logp(_fast_kernels.logp_c, x, buf)
        ref, ref_grad, _ = run_logp(_fast_kernels.logp_c, x, buf, python=True)
        assert status == 0
        assert value == pytest.approx(ref, rel=1e-12)
        np.testing.assert_allclose(grad, ref_grad, rtol=1e-12, atol=1e-12 * np.abs(ref_grad).max())
        out = run_expand(_fast_kernels.expand_c, x, buf, n_expanded=n_expanded)
        transformed = {"log": np.exp, "logodds": lambda u: 1 / (1 + np.exp(-u))}
        expected = [x] + [transformed[t](x[lay.offsets()[name] + np.arange(size)])
                          for name, t, size, _ in lay.free if t is not None]
        np.testing.assert_allclose(out, np.concatenate(expected), rtol=1e-14)
