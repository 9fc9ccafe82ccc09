"""Which estimate the bottom line uses, chosen by evidence, and why in one sentence.

Revenue lift (currency per member-month)
----------------------------------------
An estimate can be preferred only when it was fitted, passed its gate (converged, finite, not
refused). Among those, by evidence:

1. ``did`` (additive staggered DiD) when its event-time pre-trend test does not reject at 5%:
   it compares each join cohort with itself before joining and with never-members, removing
   self-selection on a stable trait, and assumes nothing about the form of revenue.
2. ``did_multiplicative`` when its own pre-trend test does not reject and the additive one is
   not usable or rejects: revenue that scales with a customer's level trends in proportion, so
   the ratio form's parallel trends are the ones the data support.
3. ``aipw``, then ``regression`` (each customer's own pre-join revenue as the baseline, with
   covariates), when neither DiD form is usable.
4. ``bayesian`` (hierarchical ratio model on cells) when nothing above is usable: it has no
   pre-trend test of its own.
5. Otherwise the first usable DiD whose pre-trend test rejects, with that caveat in the reason.

Retention (hazard ratio): the first usable of ``cox_time_varying`` (membership as a
time-varying state, no immortal time), ``piecewise_exponential`` (the same estimand from
person-period cells summed over every customer in the database), ``bayesian`` (piecewise
exponential, 94% HDI), skipping any computed on a random sample of customers
(``checks["customer_sample"]``, :func:`roi.results.mark_on_sample`) while one computed on all
customers is usable: above the run's row budget the Cox model reads a sample, and the
piecewise-exponential model, which agrees with it within a fraction of a standard error on
the test worlds, is preferred.

Examples
--------
>>> from roi.results import EffectResult, Diagnostics
>>> did = EffectResult("did", "community_revenue_lift", 40.0, 30.0, 50.0, "95% CI",
...                    diagnostics=Diagnostics(checks={"pretrend_event": {"p_value": 0.4}}))
>>> choose_revenue({"did": did}).method
'did'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from roi.results import EffectResult

PRETREND_LEVEL = 0.05
REVENUE_ORDER = ("did", "did_multiplicative", "aipw", "regression", "bayesian")
RETENTION_ORDER = ("cox_time_varying", "piecewise_exponential", "bayesian")

_WHY = {
    "did": "it compares each join cohort with itself before joining and with never-members, "
           "which removes self-selection on a stable trait, and assumes nothing about the form "
           "of revenue",
    "did_multiplicative": "revenue that scales with a customer's level trends in proportion, "
                          "so the ratio form's parallel trends are the ones the data support",
    "aipw": "neither difference-in-differences form is usable, and AIPW compares members with "
            "their own pre-join revenue, weighting controls by the propensity to join",
    "regression": "neither difference-in-differences form nor AIPW is usable; regression "
                  "adjustment compares members with their own pre-join revenue",
    "bayesian": "no frequentist estimator is usable; the hierarchical model has no pre-trend "
                "test of its own",
    "cox_time_varying": "membership enters as a state that starts when a customer joins, so no "
                        "member is credited with time before joining (no immortal-time bias)",
    "piecewise_exponential": "it estimates the time-varying Cox model's hazard ratio (membership "
                             "as a state from the join date, no immortal-time bias) from "
                             "person-period cells summed in the database over every customer",
}


@dataclass(frozen=True)
class Choice:
    """The preferred method (None: nothing usable) and the sentence that says why."""

    method: str | None
    reason: str


def usable(result: EffectResult | None) -> bool:
    """Fitted, passed its gate, a finite number, not refused."""
    return (result is not None and result.diagnostics.converged and not result.refused
            and result.estimate is not None and math.isfinite(result.estimate))


def pretrend_p(result: EffectResult) -> float | None:
    """The event-time pre-trend test's p-value, None when it could not be computed."""
    test = result.diagnostics.checks.get("pretrend_event") or {}
    value = test.get("p_value")
    return None if value is None or not math.isfinite(value) else float(value)


def choose_revenue(estimates: dict[str, EffectResult]) -> Choice:
    """The revenue-lift estimate the bottom line uses (rule in the module docstring)."""
    ok = {m: r for m, r in estimates.items() if m in REVENUE_ORDER and usable(r)}
    p = {m: pretrend_p(ok[m]) for m in ("did", "did_multiplicative") if m in ok}
    passes = {m: v is None or v >= PRETREND_LEVEL for m, v in p.items()}
    if passes.get("did"):
        return Choice("did", f"did passed its gate and {_pretrend_words(p['did'])}; {_WHY['did']}.")
    if passes.get("did_multiplicative"):
        against = ("the additive DiD " + (f"fails its pre-trend test (p = {p['did']:.3g})"
                                          if "did" in p else "is not usable"))
        return Choice("did_multiplicative",
                      f"did_multiplicative passed its gate and "
                      f"{_pretrend_words(p['did_multiplicative'])} while {against}; "
                      f"{_WHY['did_multiplicative']}.")
    if not p:
        for method in ("aipw", "regression", "bayesian"):
            if method in ok:
                return Choice(method, f"{method} passed its gate; {_WHY[method]}.")
    for method in ("did", "did_multiplicative"):
        if method in p:
            return Choice(method, f"{method} is the best available but its pre-trend test "
                                  f"rejects (p = {p[method]:.3g}): members' revenue already "
                                  "moved differently before joining, so treat the lift with "
                                  "caution (see its sensitivity).")
    return Choice(None, "no causal revenue-lift estimator passed its gate: only the naive "
                        "comparison is shown, and it is biased upwards.")


def choose_retention(estimates: dict[str, EffectResult]) -> Choice:
    """The hazard ratio the bottom line uses: the first usable of :data:`RETENTION_ORDER`
    computed on all customers, else the first usable one (rule in the module docstring).

    Examples
    --------
    >>> from roi.results import Diagnostics
    >>> def hr(method, **checks):
    ...     return EffectResult(method, "community_retention_lift", 0.7, 0.6, 0.8, "95% CI",
    ...                         diagnostics=Diagnostics(checks=checks), value_name="hazard_ratio")
    >>> choose_retention({"cox_time_varying": hr("cox_time_varying", customer_sample={}),
    ...                   "piecewise_exponential": hr("piecewise_exponential")}).method
    'piecewise_exponential'
    """
    ok = [m for m in RETENTION_ORDER if usable(estimates.get(m))]
    whole = [m for m in ok if not on_sample(estimates[m])]
    if whole:
        method = whole[0]
        skipped = ok[:ok.index(method)]
        why = _WHY.get(method, "the time-varying Cox model is not usable")
        if skipped:
            return Choice(method, f"{method} passed its gate and is computed on all customers, "
                                  f"while {' and '.join(skipped)} read a random sample of them; "
                                  f"{why}.")
        return Choice(method, f"{method} passed its gate; {why}.")
    if ok:
        why = _WHY.get(ok[0], "the time-varying Cox model is not usable")
        return Choice(ok[0], f"{ok[0]} passed its gate (computed on a random sample of "
                             f"customers, its interval the sample's); {why}.")
    return Choice(None, "no retention model passed its gate.")


def on_sample(result: EffectResult) -> bool:
    """Computed on a random sample of customers (:func:`roi.results.mark_on_sample`)."""
    return "customer_sample" in result.diagnostics.checks


def _pretrend_words(p_value: float | None) -> str:
    if p_value is None:
        return "no pre-trend test could be computed (too few pre-join months)"
    return f"its pre-trend test does not reject (p = {p_value:.3g})"
