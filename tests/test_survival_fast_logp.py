"""The Bayesian survival model's hand-written numba density against PyMC's own
(roi/retention/fast_logp.py).

The kernel replaces PyMC's graph in every default fit, so its log-density and gradient must be
PyMC's: compared at random unconstrained points on small cell tables (with and without
covariates, one and three communities), through the C callbacks nutpie calls; PyMC's side is
compiled with JAX. A small fit on each path must give
the same pooled hazard ratio within Monte Carlo error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from roi.inference.kernel_callbacks import run_expand, run_logp
from roi.retention import fast_logp
from roi.retention.bayes_survival import (
    MU_SD,
    BayesianPiecewiseSurvival,
    build_model,
    encode_patterns,
    model_data,
    person_period_cells,
)

BOUNDS = (0, 60, 180, 365)


def start_stop_table(n: int, *, communities: int, seed: int) -> pd.DataFrame:
    """A start-stop table: exponential churn (0.2% a day, x1.4 on plan b, x0.7 as a member),
    40% of customers join a community part-way through follow-up, censored at 30-700 days."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        plan = rng.choice(["a", "b", "c"])
        size = float(rng.lognormal(3, 1))
        follow = rng.uniform(30, 700)
        joins = rng.uniform() < 0.4
        join = rng.uniform(0, follow) if joins else follow
        rate = 0.002 * (1.4 if plan == "b" else 1.0)
        churn = rng.exponential(1 / rate)
        if churn > join and joins:
            churn = join + rng.exponential(1 / (rate * 0.7))
        stop, event = round(min(churn, follow)) + 1, int(churn < follow)
        cut = round(join) + 1 if joins and join < stop - 1 else stop
        community = f"c{rng.integers(communities)}" if cut < stop else None
        base = {"customer_id": i, "plan": plan, "size": size, "community": community}
        rows.append({**base, "start": 0, "stop": cut, "event": event if cut == stop else 0,
                     "member": 0})
        if cut < stop:
            rows.append({**base, "start": cut, "stop": stop, "event": event, "member": 1})
    return pd.DataFrame(rows)


def cells_and_design(*, communities: int, covariates: list[str], seed: int = 0):
    table = start_stop_table(400, communities=communities, seed=seed)
    cells = person_period_cells(table, intervals_days=BOUNDS, covariates=covariates,
                                community="community", numeric_bins=3)
    X, _, _ = encode_patterns(cells, covariates=covariates)
    groups = sorted(set(cells.loc[cells["member"] == 1, "community"].astype(str)))
    return cells, X, groups


CASES = {"covariates-3-communities": (3, ["plan", "size"]),
         "no-covariates-1-community": (1, []),
         "covariates-1-community": (1, ["plan"])}


@pytest.mark.parametrize("case", list(CASES))
def test_density_and_gradient_match_pymc(case):
    """Same log-density and gradient, to 1e-9 relative, at random points."""
    from roi.retention import _fast_kernels

    communities, covariates = CASES[case]
    cells, X, groups = cells_and_design(communities=communities, covariates=covariates)
    assert len(groups) == communities
    data = model_data(cells, X=X, groups=groups)
    lay = fast_logp.layout(n_pieces=data["n_pieces"], n_terms=X.shape[1],
                           n_communities=len(groups))
    buf = fast_logp.pack(data, mean_sd=MU_SD, n_dim=lay.n_dim)
    model = build_model(cells, X=X, groups=groups)
    logp, dlogp = model.compile_logp(mode="JAX"), model.compile_dlogp(mode="JAX")
    start = model.initial_point()
    assert [v.name for v in model.value_vars] == [lay.value_name(n, t) for n, t, _, _ in lay.free]
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = fast_logp.support_point(lay, buf) + rng.normal(scale=0.5, size=lay.n_dim)
        point = lay.point(x, shapes={k: v.shape for k, v in start.items()})
        value, grad, status = run_logp(_fast_kernels.logp_c, x, buf)
        theirs = np.asarray(dlogp(point))
        assert status == 0
        assert value == pytest.approx(float(logp(point)), rel=1e-9)
        np.testing.assert_allclose(grad, theirs, rtol=1e-9, atol=1e-9 * np.abs(theirs).max())


def test_support_point_and_expanded_draws_are_pymcs():
    """The sampler starts where PyMC's would; ``sigma`` and ``alpha`` are PyMC's."""
    from pymc.initial_point import make_initial_point_fn

    from roi.retention import _fast_kernels

    cells, X, groups = cells_and_design(communities=3, covariates=["plan", "size"])
    data = model_data(cells, X=X, groups=groups)
    lay = fast_logp.layout(n_pieces=data["n_pieces"], n_terms=X.shape[1],
                           n_communities=len(groups))
    buf = fast_logp.pack(data, mean_sd=MU_SD, n_dim=lay.n_dim)
    model = build_model(cells, X=X, groups=groups)
    theirs = make_initial_point_fn(model=model, jitter_rvs=set(), return_transformed=True)(0)
    expected = np.concatenate([np.ravel(theirs[lay.value_name(n, t)]) for n, t, _, _ in lay.free])
    np.testing.assert_allclose(fast_logp.support_point(lay, buf), expected, atol=1e-12)

    x = np.random.default_rng(2).normal(size=lay.n_dim)
    out = run_expand(_fast_kernels.expand_c, x, buf,
                     n_expanded=sum(size for _, size, _ in lay.expanded()))
    P, K = data["n_pieces"], X.shape[1]
    np.testing.assert_allclose(out[:lay.n_dim], x)
    assert out[lay.n_dim] == pytest.approx(np.exp(x[P + K]))
    np.testing.assert_allclose(out[lay.n_dim + 1:], x[:P] - data["center"] @ x[P:P + K],
                               rtol=1e-12)


@pytest.fixture(scope="module")
def both_paths():
    """The same small table fitted through the kernel and through PyMC's graph."""
    table = start_stop_table(1500, communities=2, seed=4)
    fits = {}
    with pytest.MonkeyPatch.context() as patch:
        for backend in ("numba", "pytensor"):
            patch.setenv("ROI_SURVIVAL_LOGP", backend)
            fits[backend] = BayesianPiecewiseSurvival(
                intervals_days=BOUNDS, draws=400, tune=400, chains=2, random_seed=5,
                target_accept=0.9).fit(table, covariates=["plan"], community="community")
    return fits


def test_kernel_fit_agrees_with_pymc_fit(both_paths):
    """Pooled HR and per-community HRs agree within Monte Carlo error (4 MCSEs of the
    difference); each fit records its backend; the kernel's has no divergence (2 chains x 400
    draws are too few for the r-hat gate on either path)."""
    kernel, pymc = both_paths["numba"], both_paths["pytensor"]
    assert kernel.result_.diagnostics.checks["logp_backend"] == "numba"
    assert pymc.result_.diagnostics.checks["logp_backend"] == "pytensor"
    assert kernel.result_.diagnostics.checks["divergences"] == 0
    for name in ("alpha", "alpha_c", "beta", "theta", "sigma", "mu"):
        assert kernel.idata_.posterior[name].shape == pymc.idata_.posterior[name].shape
    a, b = kernel.pooled_log_hr_draws(), pymc.pooled_log_hr_draws()
    # MCSE from the bulk ESS of each fit's draws
    import arviz as az

    def mcse(fit, draws):
        ess = float(az.ess(draws.reshape(fit.chains, -1)))
        return draws.std() / np.sqrt(ess)

    assert abs(a.mean() - b.mean()) < 4 * np.hypot(mcse(kernel, a), mcse(pymc, b))
    assert a.std() == pytest.approx(b.std(), rel=0.2)
    for g in kernel.groups_:
        assert (kernel.result_.by_group[g]["hazard_ratio"]
                == pytest.approx(pymc.result_.by_group[g]["hazard_ratio"], rel=0.03))


def test_logp_backend_follows_the_environment(monkeypatch):
    from roi.retention.bayes_survival import logp_backend

    monkeypatch.setenv("ROI_SURVIVAL_LOGP", "pytensor")
    assert logp_backend("nutpie") == "pytensor"
    monkeypatch.delenv("ROI_SURVIVAL_LOGP")
    assert logp_backend("nutpie") == "numba" and logp_backend("pymc") == "pytensor"
    monkeypatch.setenv("ROI_SURVIVAL_LOGP", "jax")
    with pytest.raises(ValueError, match="ROI_SURVIVAL_LOGP"):
        logp_backend("nutpie")
