"""The revenue cells model's hand-written numba density against PyMC's own
(roi/revenue_lift/fast_logp.py).

The kernel replaces PyMC's graph in every default fit of
:class:`roi.revenue_lift.bayes_revenue.BayesianHierarchicalLift`, so its log-density and
gradient must be PyMC's: compared at random unconstrained points on the bundled sample's cells
(15,758 cells), with and without a segment level, through the C callback nutpie calls. PyMC's
side is compiled with JAX. A fit on each path must give the same lift within Monte Carlo error.
"""

from __future__ import annotations

import os
from pathlib import Path

import arviz as az
import numpy as np
import pytest

os.environ.setdefault("PYTENSOR_FLAGS", "base_compiledir=" + os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "pytensor"))

from connectors import open_source  # noqa: E402
from roi.data import load_dataset  # noqa: E402
from roi.inference.kernel_callbacks import run_expand, run_logp  # noqa: E402
from roi.revenue_lift import fast_logp  # noqa: E402
from roi.revenue_lift.bayes_revenue import (  # noqa: E402
    MU_TAU_SD,
    BayesianHierarchicalLift,
    build_model,
    design,
    dispersion,
    lift_sums,
    model_inputs,
    posterior_draws,
    revenue_cells,
)

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
COLUMNS = {"unit": "customer_id", "time": "month_index", "group": "join_month_index",
           "outcome": "revenue"}
PRIOR = (2.0, 0.5)


@pytest.fixture(scope="module")
def panel():
    return load_dataset(open_source(str(SAMPLE))).customer_month_panel()


def _setup(panel, segment: str | None):
    keys = ["plan", "segment"]
    cells = revenue_cells(panel, **COLUMNS, covariates=keys)
    index = design(cells, covariates=keys, segment=segment)
    inputs = model_inputs(cells, index=index, phi=dispersion(cells))
    sizes = {"n_patterns": len(index["patterns"]), "n_communities": len(index["communities"]),
             "n_segments": len(index["segments"]), "segment": segment is not None}
    lay = fast_logp.layout(n_times=len(index["times"]), **sizes)
    buf = fast_logp.pack(inputs, **sizes, buildup_prior=PRIOR, mean_sd=MU_TAU_SD,
                         n_dim=lay.n_dim)
    return index, inputs, lay, buf


@pytest.mark.parametrize("segment", [None, "segment"])
def test_density_and_gradient_match_pymc(panel, segment):
    """Same log-density (every constant included: 1e-9 relative) and gradient (1e-9 relative
    to its largest entry) at random points, the Potential's scale (phi ~ 500) included."""
    from pymc.model.transform.optimization import freeze_dims_and_data

    from roi.revenue_lift._fast_kernels import logp_c

    index, inputs, lay, buf = _setup(panel, segment)
    model = freeze_dims_and_data(build_model(index, inputs, buildup_prior=PRIOR))
    assert sorted(v.name for v in model.value_vars) == sorted(
        lay.value_name(n, t) for n, t, _, _ in lay.free)
    logp, dlogp = model.compile_logp(mode="JAX"), model.compile_dlogp(mode="JAX")
    start = model.initial_point()
    offsets, at = {}, 0                  # PyMC's gradient: in the frozen model's order
    for var in model.value_vars:
        offsets[var.name] = slice(at, at + start[var.name].size)
        at += start[var.name].size
    rng = np.random.default_rng(1)
    for scale in (0.1, 0.4, 0.8):
        x = rng.normal(scale=scale, size=lay.n_dim)
        point = lay.point(x, shapes={k: v.shape for k, v in start.items()})
        value, grad, status = run_logp(logp_c, x, buf)
        theirs = np.asarray(dlogp(point))
        theirs = np.concatenate([theirs[offsets[lay.value_name(n, t)]]
                                 for n, t, _, _ in lay.free])
        assert status == 0
        assert value == pytest.approx(float(logp(point)), rel=1e-9)
        np.testing.assert_allclose(grad, theirs, rtol=1e-9, atol=1e-9 * np.abs(theirs).max())


def test_support_point_is_pymcs(panel):
    """The sampler starts where PyMC's would (each prior's mean, unconstrained)."""
    from pymc.initial_point import make_initial_point_fn

    index, inputs, lay, buf = _setup(panel, "segment")
    model = build_model(index, inputs, buildup_prior=PRIOR)
    theirs = make_initial_point_fn(model=model, jitter_rvs=set(), return_transformed=True)(0)
    expected = np.concatenate([np.ravel(theirs[lay.value_name(n, t)]) for n, t, _, _ in lay.free])
    np.testing.assert_allclose(fast_logp.support_point(lay, buf), expected, atol=1e-9)


def test_expanded_draws_are_pymcs(panel):
    """``expand_c`` writes the value variables, the constrained ``sigma_tau``, ``sigma_seg``,
    ``kappa`` and the deterministic ``tau = tau_community[:, None] + sigma_seg * w`` in PyMC's
    (community, segment) order."""
    from pymc.initial_point import make_initial_point_fn

    from roi.revenue_lift._fast_kernels import expand_c

    index, inputs, lay, buf = _setup(panel, "segment")
    model = build_model(index, inputs, buildup_prior=PRIOR)
    shapes = {k: np.shape(v) for k, v in make_initial_point_fn(
        model=model, jitter_rvs=set(), return_transformed=True)(0).items()}
    x = np.random.default_rng(4).normal(scale=0.5, size=lay.n_dim)
    point = lay.point(x, shapes=shapes)
    out = run_expand(expand_c, x, buf, n_expanded=sum(s for _, s, _ in lay.expanded()))
    sig = np.exp(point["sigma_seg_log__"])
    expected = np.concatenate([x, np.exp([point["sigma_tau_log__"]]), [sig],
                               np.exp([point["kappa_log__"]]),
                               (point["tau_community"][:, None] + sig * point["w"]).ravel()])
    assert shapes["w"] == (len(index["communities"]), len(index["segments"]))
    np.testing.assert_allclose(out, expected, rtol=1e-14)


@pytest.fixture(scope="module")
def both_paths(panel):
    """The bundled sample fitted through the kernel and through PyMC's graph."""
    fits = {}
    with pytest.MonkeyPatch.context() as patch:
        for backend in ("numba", "pytensor"):
            patch.setenv("ROI_REVENUE_LOGP", backend)
            fits[backend] = BayesianHierarchicalLift(
                draws=500, tune=500, chains=2, random_seed=3).fit(
                panel, **COLUMNS, covariates=["segment", "plan"])
    return fits


def _mcse(model: BayesianHierarchicalLift, draws: np.ndarray) -> float:
    return float(draws.std() / np.sqrt(az.ess(draws.reshape(model.chains, -1))))


def test_kernel_fit_agrees_with_pymc_fit(both_paths):
    """The overall lift's posterior mean within 3 Monte Carlo standard errors of the
    difference (ESS-based), its sd within 20%; the community log lifts within 4 MCSEs; the
    posterior has PyMC's variables and shapes."""
    kernel, pymc = both_paths["numba"], both_paths["pytensor"]
    assert kernel.result_.diagnostics.checks["logp_backend"] == "numba"
    assert pymc.result_.diagnostics.checks["logp_backend"] == "pytensor"
    assert set(pymc.idata_.posterior.data_vars) <= set(kernel.idata_.posterior.data_vars)
    for name in pymc.idata_.posterior.data_vars:
        assert kernel.idata_.posterior[name].shape == pymc.idata_.posterior[name].shape
    a, b = kernel.lift_draws()["all"], pymc.lift_draws()["all"]
    assert abs(a.mean() - b.mean()) < 3 * np.hypot(_mcse(kernel, a), _mcse(pymc, b))
    assert a.std() == pytest.approx(b.std(), rel=0.2)
    for fit in (kernel, pymc):
        assert fit.result_.estimate == pytest.approx(a.mean(), rel=0.25)
    ta = kernel.idata_.posterior["tau_community"].to_numpy()
    tb = pymc.idata_.posterior["tau_community"].to_numpy()
    for c in range(ta.shape[-1]):
        x, y = ta[..., c].ravel(), tb[..., c].ravel()
        assert abs(x.mean() - y.mean()) < 4 * np.hypot(_mcse(kernel, x), _mcse(pymc, y))


def test_segment_fit_on_the_kernel(panel):
    """With a segment: ``w`` comes back as (community, segment) and ``tau`` is
    ``tau_community + sigma_seg * w``, as PyMC's Deterministic; a by-segment table."""
    model = BayesianHierarchicalLift(draws=150, tune=150, chains=2, random_seed=2,
                                     segment="segment").fit(panel, **COLUMNS, covariates=["plan"])
    post = model.idata_.posterior
    assert model.result_.diagnostics.checks["logp_backend"] == "numba"
    assert post["w"].dims == ("chain", "draw", "community", "segment")
    expected = post["tau_community"] + post["sigma_seg"] * post["w"]
    np.testing.assert_allclose(post["tau"].transpose(*expected.dims), expected, rtol=1e-12)
    table = model.result_.tables["by_segment"]
    assert len(table) == len(model.index_["segments"]) > 1


def test_lift_kernel_equals_numpy(both_paths):
    """The currency lift per draw from the numba pass equals the numpy arrays' (same random
    numbers, chunked differently), 1e-10 relative."""
    model = both_paths["numba"]
    index, cells = model.index_, model.cells_
    members = cells[index["member"]]
    columns = np.hstack([np.ones((len(members), 1)),
                         (members["community"].astype(str).to_numpy()[:, None]
                          == np.array(index["communities"])[None, :]).astype(float)])
    common = {"index": index, "draws": posterior_draws(model.idata_), "phi": model.phi_,
              "columns": columns, "seed": 9}
    fast = lift_sums(cells, **common, kernel=True)
    slow = lift_sums(cells, **common, kernel=False, chunk_cells=2_000_000)
    np.testing.assert_allclose(fast, slow, rtol=1e-10)


def test_backend_choice(monkeypatch):
    from roi.revenue_lift.bayes_revenue import logp_backend

    monkeypatch.setenv("ROI_REVENUE_LOGP", "pytensor")
    assert logp_backend() == "pytensor"
    monkeypatch.setenv("ROI_REVENUE_LOGP", "numba")
    assert logp_backend() == "numba"
    monkeypatch.setenv("ROI_REVENUE_LOGP", "stan")
    with pytest.raises(ValueError, match="ROI_REVENUE_LOGP"):
        logp_backend()
