"""The numba Cox engine (roi/retention/cox_engine.py) against statsmodels ``PHReg``.

Coefficients, model-based and cluster-robust SEs and the log partial likelihood must equal
``PHReg``'s to 1e-8 relative on right-censored data (rossi), on counting-process data with tied
times and time-varying covariates (the Stanford heart-transplant start-stop table and the
sample's survival table), with Efron and Breslow ties; the robust score residuals also equal a
brute-force loop over event times where ``PHReg``'s bookkeeping is wrong (a row whose interval
holds no event time).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines.datasets import load_rossi, load_stanford_heart_transplants
from statsmodels.duration.hazard_regression import PHReg

from roi.retention.cox_engine import CoxProblem, fit_cox_engine
from roi.retention.cox_time_varying import counting_process_entry, design_matrix, fit_cox

RTOL = 1e-8


def _rossi() -> dict:
    rossi = load_rossi()
    columns = ["fin", "age", "race", "wexp", "mar", "paro", "prio"]
    x = rossi[columns].to_numpy(dtype=float)
    return {"x": x / x.std(axis=0), "time": rossi["week"].to_numpy(dtype=float),
            "status": rossi["arrest"].to_numpy(dtype=int), "entry": None,
            "groups": np.arange(len(rossi)) // 3}


def _heart() -> dict:
    heart = load_stanford_heart_transplants()
    x = heart[["age", "year", "surgery", "transplant"]].to_numpy(dtype=float)
    return {"x": x / x.std(axis=0), "time": heart["stop"].to_numpy(dtype=float),
            "status": heart["event"].to_numpy(dtype=int),
            "entry": counting_process_entry(heart["start"].to_numpy(), heart["stop"].to_numpy()),
            "groups": heart["id"].to_numpy()}


def _sample() -> dict:
    import connectors
    from roi.data import load_dataset

    dataset = load_dataset(connectors.open_source("data/sample"))
    table = dataset.survival_table()
    covs, _ = design_matrix(table, columns=list(dataset.covariates))
    x = pd.concat([table["member"].astype(float), covs], axis=1).to_numpy(dtype=float)
    return {"x": x / x.std(axis=0), "time": table["stop"].to_numpy(dtype=float),
            "status": table["event"].to_numpy(dtype=int),
            "entry": counting_process_entry(table["start"].to_numpy(), table["stop"].to_numpy()),
            "groups": pd.factorize(table["customer_id"])[0]}


DATA = {"rossi": _rossi, "heart": _heart, "sample": _sample}


@pytest.fixture(scope="module", params=list(DATA))
def data(request) -> dict:
    return DATA[request.param]()


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_engine_equals_phreg(data, ties):
    model = PHReg(data["time"], data["x"], status=data["status"], entry=data["entry"], ties=ties)
    naive = model.fit()
    robust = model.fit(groups=data["groups"])
    fit = fit_cox_engine(data["x"], time=data["time"], status=data["status"],
                         entry=data["entry"], ties=ties)
    clustered = fit_cox_engine(data["x"], time=data["time"], status=data["status"],
                               entry=data["entry"], ties=ties, groups=data["groups"])
    assert fit.converged and clustered.converged
    np.testing.assert_allclose(fit.params, naive.params, rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(fit.loglik, model.loglike(naive.params), rtol=1e-12)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.cov)), naive.bse, rtol=RTOL)
    np.testing.assert_allclose(np.sqrt(np.diag(clustered.cov)), robust.bse, rtol=RTOL)
    np.testing.assert_allclose(clustered.cov, robust.cov_params(), rtol=RTOL, atol=1e-14)
    # One sweep gives PHReg's score and Hessian at any point, not only at the optimum.
    point = naive.params * 0.5
    _, score, hess = CoxProblem(data["x"], time=data["time"], status=data["status"],
                                entry=data["entry"], ties=ties).evaluate(point)
    np.testing.assert_allclose(score, model.score(point), rtol=RTOL, atol=1e-9)
    np.testing.assert_allclose(hess, model.hessian(point), rtol=RTOL)


def test_fit_cox_engines_agree_with_warm_start_and_groups():
    heart = load_stanford_heart_transplants()
    X = heart[["transplant", "age", "year", "surgery"]].astype(float)
    arrays = {"start": heart["start"].to_numpy(), "stop": heart["stop"].to_numpy(),
              "event": heart["event"].to_numpy()}
    fits = {engine: fit_cox(X, **arrays, groups=heart["id"].to_numpy(), engine=engine,
                            initial=np.array([-0.1, 0.03, -0.1, -0.6]))
            for engine in ("numba", "statsmodels")}
    assert fits["numba"].converged and fits["statsmodels"].converged
    assert fits["numba"].newton_step < 1e-6
    np.testing.assert_allclose(fits["numba"].params, fits["statsmodels"].params, rtol=RTOL)
    np.testing.assert_allclose(fits["numba"].cov, fits["statsmodels"].cov, rtol=RTOL)
    np.testing.assert_allclose(fits["numba"].extra["loglik"], fits["statsmodels"].extra["loglik"],
                               rtol=1e-12)


def test_env_var_selects_statsmodels(monkeypatch):
    rossi = load_rossi()
    monkeypatch.setenv("ROI_COX_ENGINE", "statsmodels")
    fit = fit_cox(rossi[["fin", "prio"]], stop=rossi["week"].to_numpy(),
                  event=rossi["arrest"].to_numpy())
    assert fit.extra["engine"] == "statsmodels"
    with pytest.raises(ValueError, match="engine must be"):
        fit_cox(rossi[["fin"]], stop=rossi["week"].to_numpy(), event=rossi["arrest"].to_numpy(),
                engine="lifelines")


def _brute_score_residuals(x, *, time, status, entry, params):
    """Breslow score residuals by a loop over event times with explicit risk sets."""
    w = np.exp(x @ params)
    resid = np.zeros_like(x)
    for u in np.unique(time[status == 1]):
        at_risk = (entry <= u) & (u <= time)
        mean = (w[at_risk] @ x[at_risk]) / w[at_risk].sum()
        dying = (time == u) & (status == 1)
        hazard = dying.sum() / w[at_risk].sum()
        resid[dying] += x[dying] - mean
        resid[at_risk] -= (w[at_risk] * hazard)[:, None] * (x[at_risk] - mean)
    return resid


def test_robust_score_residuals_where_phreg_keeps_rows_at_risk():
    """Rows (3, 4] and (10, 11] hold no event time, the last row starts after the last event:
    they carry no score. PHReg would keep the first two at risk at every earlier event time
    and give the last NaN; the engine equals the brute-force loop."""
    start = np.array([0, 0, 0, 3, 0, 2, 0, 1, 10, 12], dtype=float)
    stop = np.array([2, 3, 5, 4, 5, 7, 9, 9, 11, 13], dtype=float)
    status = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 0])
    x = np.column_stack([np.arange(10) % 2, np.linspace(-1, 1, 10)]).astype(float)
    entry = counting_process_entry(start, stop)
    params = np.array([0.3, -0.2])
    problem = CoxProblem(x, time=stop, status=status, entry=entry, ties="breslow")
    sorted_resid, rows = problem.score_residuals(params)
    resid = np.zeros_like(x)
    resid[rows] = sorted_resid
    brute = _brute_score_residuals(x, time=stop, status=status, entry=entry, params=params)
    np.testing.assert_allclose(resid, brute, rtol=1e-12, atol=1e-14)
    assert np.all(resid[[3, 8, 9]] == 0)
    with np.errstate(all="ignore"):
        phreg = PHReg(stop, x, status=status, entry=entry).score_residuals(params)
    assert np.isnan(phreg[9]).all() and not np.allclose(phreg[:9], brute[:9])


def test_diverging_coefficient_stops_early_and_is_not_converged():
    """A covariate only ever 1 for rows that never die: its coefficient runs off to -inf. The
    engine stops once the likelihood is flat (PHReg runs its 100 steps) and reports it."""
    rossi = load_rossi()
    X = rossi[["fin", "age", "prio"]].astype(float)
    X["never"] = ((rossi["arrest"] == 0) & (rossi.index % 3 == 0)).astype(float)
    arrays = {"stop": rossi["week"].to_numpy(), "event": rossi["arrest"].to_numpy()}
    fit = fit_cox(X, **arrays)
    reference = fit_cox(X, **arrays, engine="statsmodels")
    assert not fit.converged and not reference.converged
    assert fit.extra["iterations"] < 60 and fit.params[3] < -20
    np.testing.assert_allclose(fit.params[:3], reference.params[:3], rtol=1e-6)
