"""The convergence gate every Bayesian model passes before its numbers are trusted.

r-hat <= 1.01, bulk ESS >= ``min(400, max(100, draws * chains / 4))`` and no divergent
transitions; otherwise ``converged`` is False and each failure is a warning that reports and
``results.json`` show next to the number.
"""

from __future__ import annotations

from collections.abc import Sequence

import arviz as az

from roi.results import Diagnostics


def ess_threshold(*, draws: int, chains: int) -> float:
    return min(400.0, max(100.0, draws * chains / 4))


def convergence_gate(idata: az.InferenceData, *, draws: int, chains: int, method: str,
                     var_names: Sequence[str] | None = None,
                     divergence_advice: str = "the posterior may be biased.") -> Diagnostics:
    """Check ``idata`` (all posterior variables, or ``var_names`` present in it)."""
    names = list(idata.posterior.data_vars) if var_names is None else [
        v for v in var_names if v in idata.posterior and idata.posterior[v].size]
    # Unrounded: a rounded r-hat of 1.01 can hide 1.014.
    summary = az.summary(idata, var_names=names, kind="diagnostics", round_to="none")
    need = ess_threshold(draws=draws, chains=chains)
    stats = idata.sample_stats
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    rhat, ess = float(summary["r_hat"].max()), float(summary["ess_bulk"].min())
    diagnostics = Diagnostics(checks={"max_r_hat": rhat, "min_ess_bulk": ess,
                                      "ess_threshold": need, "divergences": divergences})
    if not rhat <= 1.01:
        bad = summary.index[~(summary["r_hat"] <= 1.01)].tolist()[:5]
        diagnostics.warn(f"{method}: r-hat up to {rhat:.3f} (> 1.01) for {bad}; chains "
                         "disagree, run longer.")
    if not ess >= need:
        bad = summary.index[~(summary["ess_bulk"] >= need)].tolist()[:5]
        diagnostics.warn(f"{method}: bulk ESS down to {ess:.0f} (< {need:.0f}) for {bad}; "
                         "run more draws.")
    if divergences:
        diagnostics.warn(f"{method}: {divergences} divergent transition(s); {divergence_advice}")
    diagnostics.converged = not diagnostics.warnings
    return diagnostics
