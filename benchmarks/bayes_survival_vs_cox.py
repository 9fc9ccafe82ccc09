"""Is the Bayesian piecewise survival model's member log hazard ratio systematically below Cox's?

Issue 18 saw the Bayesian log HR 0.12-0.15 below the time-varying Cox model's on a published
time-varying data set. This script compares the two

* on the Stanford heart transplant data (``lifelines.datasets.load_stanford_heart_transplants``,
  transplant as the time-varying "member" term; time in days), and
* on simulated worlds with a known hazard ratio, a steeply falling baseline hazard (Weibull
  shape 0.5) and membership that starts after a random wait (so non-member time is early time),

each with the fixed pieces ``DEFAULT_INTERVALS`` (0, 30, 91, 182, 365, 547 days; the default
until issue 18) and with ``intervals_days="events"`` (``--pieces`` pieces cut at quantiles of the
event times; the default since). Measured: see the notes of :mod:`roi.retention.bayes_survival`.

Usage::

    PYTENSOR_FLAGS=base_compiledir=.cache/pytensor .venv/bin/python benchmarks/bayes_survival_vs_cox.py
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd


def stanford() -> pd.DataFrame:
    from lifelines.datasets import load_stanford_heart_transplants

    data = load_stanford_heart_transplants()
    return data.rename(columns={"id": "customer_id", "transplant": "member"})


def simulated(*, n: int, hr: float, seed: int, shape: float = 0.5) -> pd.DataFrame:
    """Weibull baseline (falling hazard), membership from an exponential wait on, censoring at
    720 days; the member hazard is ``hr`` times the baseline (exact inversion per segment)."""
    rng = np.random.default_rng(seed)
    scale = 200.0                                   # cumulative hazard (t / scale) ** shape
    join = rng.exponential(90.0, n)
    join[rng.random(n) < 0.4] = np.inf              # never members
    censor = np.minimum(rng.uniform(200, 720, n), 720.0)
    target = rng.exponential(1.0, n)                # event when cumulative hazard reaches it
    before = (np.minimum(join, censor) / scale) ** shape
    t_event = np.where(target <= before, scale * target ** (1 / shape), np.nan)
    after = ~np.isfinite(t_event) & np.isfinite(join)
    rest = (target - before) / hr + (join / scale) ** shape
    t_event = np.where(after, scale * rest ** (1 / shape), t_event)
    stop = np.fmin(np.nan_to_num(t_event, nan=np.inf), censor)
    event = np.isfinite(t_event) & (t_event <= censor)
    rows = []
    for i in range(n):
        if join[i] < stop[i]:
            rows.append((i, 0.0, join[i], 0, 0))
            rows.append((i, join[i], stop[i], int(event[i]), 1))
        else:
            rows.append((i, 0.0, stop[i], int(event[i]), 0))
    table = pd.DataFrame(rows, columns=["customer_id", "start", "stop", "event", "member"])
    return table[table["stop"] > table["start"]].reset_index(drop=True)


def compare(table: pd.DataFrame, *, pieces: int, draws: int, covariates: list[str]) -> dict:
    from roi.models import BayesianPiecewiseSurvival, CoxTimeVarying
    from roi.retention.bayes_survival import DEFAULT_INTERVALS

    cox = CoxTimeVarying().fit(table, covariates=covariates)
    out = {"cox": float(np.log(cox.result_.estimate))}
    for name, bounds in (("fixed", DEFAULT_INTERVALS), ("events", "events")):
        bayes = BayesianPiecewiseSurvival(draws=draws, tune=draws, chains=2, random_seed=1,
                                          intervals_days=bounds, pieces=pieces).fit(
            table, covariates=covariates)
        out[f"bayes_{name}"] = float(bayes.pooled_log_hr_draws().mean())
        out[f"bayes_{name}_converged"] = bool(bayes.result_.diagnostics.converged)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--pieces", type=int, default=12)
    parser.add_argument("--draws", type=int, default=500)
    args = parser.parse_args()
    rows = []
    heart = stanford()
    for covariates in ([], ["surgery"]):
        row = compare(heart, pieces=args.pieces, draws=args.draws, covariates=covariates)
        rows.append({"data": "stanford", "covariates": "+".join(covariates) or "-", **row})
        print(json.dumps(rows[-1]), flush=True)
    for seed in range(1, args.seeds + 1):
        table = simulated(n=args.customers, hr=0.7, seed=seed)
        row = compare(table, pieces=args.pieces, draws=args.draws, covariates=[])
        rows.append({"data": f"simulated seed {seed}", "truth": float(np.log(0.7)), **row})
        print(json.dumps(rows[-1]), flush=True)
    print(pd.DataFrame(rows).to_string(float_format="{:.3f}".format))


if __name__ == "__main__":
    main()
