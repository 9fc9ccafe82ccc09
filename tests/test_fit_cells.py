"""The Bayesian models fitted on cells computed in the database (issue 19) against the same
models fitted on the frames in memory: ``fit_cells`` on ``revenue_cells_sql`` /
``person_period_cells_sql`` against ``fit`` on the customer-month panel / start-stop table of
data/sample, same seed, 2 chains x 200 draws.

* Survival: the cells are equal bit for bit (exposure days rounded to the exact sums' 9
  decimals) and in the same (key) order, so the draws are identical (1e-12 stated).
* Revenue: the cells are in the same order, their sums equal to about 1e-16 relative; NUTS
  amplifies that, so the design and inputs agree to 1e-12 and the posterior within Monte Carlo
  error.
"""

from __future__ import annotations

import numpy as np
import pytest

from roi.config import SamplerSettings
from tests.conftest import SAMPLE

SHORT = SamplerSettings(draws=200, tune=200, chains=2)
RTOL = 1e-12


@pytest.fixture(scope="module")
def sample():
    from connectors import open_source
    from roi.data import load_dataset

    return load_dataset(open_source(str(SAMPLE)))


def _same_posterior(database, memory, names):
    for name in names:
        np.testing.assert_allclose(database.idata_.posterior[name].to_numpy(),
                                   memory.idata_.posterior[name].to_numpy(), rtol=RTOL,
                                   atol=1e-12, err_msg=name)


def _same_result(database, memory):
    a, b = database.result_, memory.result_
    assert (a.n_treated, a.n_obs) == (b.n_treated, b.n_obs)
    np.testing.assert_allclose([a.estimate, a.low, a.high], [b.estimate, b.low, b.high],
                               rtol=RTOL)
    assert sorted(a.by_group) == sorted(b.by_group)
    assert a.diagnostics.checks == b.diagnostics.checks or _checks_close(a, b)


def _checks_close(a, b) -> bool:
    for key, value in b.diagnostics.checks.items():
        other = a.diagnostics.checks[key]
        if isinstance(value, float):
            np.testing.assert_allclose(other, value, rtol=RTOL, err_msg=key)
        else:
            assert other == value, key
    return True


def test_revenue_fit_cells_on_database_cells_equals_fit_on_the_panel(sample):
    """The revenue sums differ in the last bits (exact DECIMAL sums against float sums, about
    1e-16 relative), and NUTS amplifies any difference (chaotic trajectories: the first draw
    after 200 tuning steps already differs by about 3e-4): so the design and inputs are
    compared to 1e-12 and the posteriors within Monte Carlo error (posterior means within
    half a posterior sd)."""
    from roi.revenue_lift.bayes_revenue import BayesianHierarchicalLift, design, model_inputs
    from roi.revenue_lift.block import BAYES_COLUMNS, bayes_keys, bayesian_cells_in_database

    def model():
        return BayesianHierarchicalLift(draws=SHORT.draws, tune=SHORT.tune,
                                        chains=SHORT.chains, random_seed=3)

    cells = bayesian_cells_in_database(sample, sampler=SHORT)
    database = model().fit_cells(cells.cells, n_treated=cells.n_treated)
    memory = model().fit(sample.customer_month_panel(), covariates=bayes_keys(sample.covariates),
                         **BAYES_COLUMNS)
    assert len(database.cells_) == len(memory.cells_) > 1000
    assert database.covariates_ == memory.covariates_ == ["segment", "plan"]
    np.testing.assert_allclose(database.phi_, memory.phi_, rtol=1e-12)
    for name, value in model_inputs(memory.cells_, index=memory.index_,
                                    phi=memory.phi_).items():
        np.testing.assert_allclose(model_inputs(database.cells_, index=database.index_,
                                                phi=database.phi_)[name], value, rtol=1e-12,
                                   err_msg=name)
    assert design(database.cells_, covariates=["segment", "plan"], segment=None).keys() == \
        memory.index_.keys()
    a, b = database.result_, memory.result_
    assert (a.n_treated, a.n_obs) == (b.n_treated, b.n_obs) and 0 < a.n_treated < a.n_obs
    assert a.diagnostics.checks["rows_active"] == b.diagnostics.checks["rows_active"]
    for name in ("tau_community", "kappa", "sigma_tau"):
        one, other = (m.idata_.posterior[name] for m in (database, memory))
        sd = float(other.std(("chain", "draw")).max())
        assert float(abs(one.mean(("chain", "draw")) - other.mean(("chain", "draw"))).max()) \
            < 0.5 * sd, name
    spread = (b.high - b.low) / (2 * 1.88)      # the ATT's posterior sd, from its 94% HDI
    assert abs(a.estimate - b.estimate) < 0.5 * spread
    assert sorted(a.by_group) == sorted(b.by_group)


def test_survival_fit_cells_on_database_cells_equals_fit_on_the_table(sample):
    from roi.retention.bayes_survival import BayesianPiecewiseSurvival
    from roi.retention.block import survival_cells_in_database

    def model():
        return BayesianPiecewiseSurvival(draws=SHORT.draws, tune=SHORT.tune,
                                         chains=SHORT.chains, random_seed=3)

    cells = survival_cells_in_database(sample, sampler=SHORT)
    database = model().fit_cells(cells.cells, n_treated=cells.n_treated, n_obs=cells.n_obs,
                                 n_rows=cells.n_rows)
    memory = model().fit(sample.survival_table(), covariates=list(sample.covariates),
                         community="community")
    assert database.intervals_days_ == memory.intervals_days_
    assert database.edges_ == memory.edges_ and database.term_names_ == memory.term_names_
    _same_posterior(database, memory, ["alpha_c", "beta", "theta", "sigma"])
    _same_result(database, memory)


def test_survival_fit_cells_refuses_as_fit_does():
    import pandas as pd

    from roi.retention.bayes_survival import BayesianPiecewiseSurvival, cells_refusal_reason

    cells = pd.DataFrame({"piece": [0, 0], "member": [0, 1], "community": ["x", "a"],
                          "events": [2.0, 1.0], "exposure": [5.0, 3.0]})
    assert cells_refusal_reason(cells) is None
    assert cells_refusal_reason(cells.assign(events=0.0)).startswith("no churn events")
    assert cells_refusal_reason(cells[cells["member"] == 0]).startswith("no member time")
    assert cells_refusal_reason(cells[cells["member"] == 1]).startswith("no non-member time")
    fitted = BayesianPiecewiseSurvival().fit_cells(cells.assign(events=0.0), n_treated=1,
                                                   n_obs=3)
    assert fitted.result_.refused and np.isnan(fitted.result_.estimate)


def test_the_run_fits_the_bayesian_models_on_database_cells(sample_run):
    """``roi run`` (the shared sample run, 4 x 1000 draws) takes both models' cells from the
    database: the survival model's posterior is the in-memory fit's (same bits in, same draws
    out), and the revenue model's cells and counts are those of the panel in memory."""
    from roi.retention.bayes_survival import BayesianPiecewiseSurvival
    from roi.revenue_lift.bayes_revenue import member_units, revenue_cells
    from roi.revenue_lift.block import BAYES_COLUMNS, bayes_keys
    from tests.conftest import SAMPLE_RUN

    dataset = sample_run.dataset
    run = sample_run.retention["bayesian"]
    memory = BayesianPiecewiseSurvival(
        draws=SAMPLE_RUN["draws"], tune=SAMPLE_RUN["tune"], chains=SAMPLE_RUN["chains"],
        random_seed=SAMPLE_RUN["seed"]).fit(dataset.survival_table(),
                                            covariates=list(dataset.covariates),
                                            community="community").result_
    np.testing.assert_allclose([run.estimate, run.low, run.high],
                               [memory.estimate, memory.low, memory.high], rtol=RTOL)
    assert (run.n_treated, run.n_obs) == (memory.n_treated, memory.n_obs)
    assert run.diagnostics.checks["rows"] == memory.diagnostics.checks["rows"] > 1000
    panel = dataset.customer_month_panel()
    revenue = sample_run.revenue["bayesian"]
    cells = revenue_cells(panel, covariates=bayes_keys(dataset.covariates), **BAYES_COLUMNS)
    assert revenue.diagnostics.checks["cells"] == len(cells)
    assert revenue.diagnostics.checks["rows_active"] == int(cells["n"].sum())
    assert revenue.n_treated == member_units(panel, unit="customer_id", time="month_index",
                                             group="join_month_index")
    assert revenue.n_obs == int(cells.loc[cells["member"], "n"].sum())
