"""Partially pooled community effects for the Bayesian models, in the form that samples well.

The prior of every such effect is the usual hierarchy::

    effect[c] ~ Normal(mean, spread)      c = 1 .. k communities
    mean      ~ Normal(0, mean_sd)
    spread    ~ LogNormal(log 0.1, 0.5)   # 5%-95%: 0.044-0.23 on the log scale

sampled *centred* with ``mean`` integrated out, ``effect ~ MvNormal(0, spread^2 I + mean_sd^2 J)``
(the same prior); :func:`pooled_mean_draws` draws ``mean`` afterwards from its conditional
posterior. Why (measured, 4 chains x 1000 draws, nutpie, ``target_accept`` 0.9):

* With two or three communities the data cannot estimate ``spread``. A HalfNormal prior lets it
  reach zero, and the non-centred form ``mean + spread * z`` then has a funnel at large
  ``spread`` when the communities' effects are well measured: 13 divergences on a
  20,000-customer revenue world, and ``target_accept`` 0.99 (31 leapfrog steps per draw) to hide
  them. Centred with a HalfNormal it diverged at ``spread`` ~ 0.005-0.009 instead.
* A boundary-avoiding prior on ``spread`` (Chung et al. 2013, for hierarchical variances with
  few groups) with the centred form and ``mean`` integrated out: no divergence on the bundled
  sample (weak data) nor on the 20,000-customer world (strong data), 10-12 steps per draw.

Examples
--------
>>> import numpy as np
>>> draws = pooled_mean_draws(np.full((2000, 2), 0.3), np.full(2000, 0.01), mean_sd=0.3, seed=0)
>>> round(float(draws.mean()), 2)
0.3
"""

from __future__ import annotations

import numpy as np

SPREAD_PRIOR = (0.1, 0.5)        # LogNormal median and log-sd of the between-community sd


def pooled_effects(name: str, *, spread_name: str, dims: str, k: int, mean_sd: float):
    """The centred community effects (a ``pm.MvNormal`` named ``name`` over ``dims``) and their
    spread (``pm.LogNormal`` named ``spread_name``); call inside a model context."""
    import pymc as pm
    import pytensor.tensor as pt

    median, log_sd = SPREAD_PRIOR
    spread = pm.LogNormal(spread_name, mu=np.log(median), sigma=log_sd)
    cov = spread ** 2 * pt.eye(k) + mean_sd ** 2 * pt.ones((k, k))
    return pm.MvNormal(name, mu=np.zeros(k), cov=cov, dims=dims), spread


def pooled_mean_draws(effects: np.ndarray, spread: np.ndarray, *, mean_sd: float,
                      seed: int) -> np.ndarray:
    """One draw of ``mean`` per posterior draw from its conditional posterior given that draw's
    effects (draws x k) and spread: Normal with precision ``1 / mean_sd^2 + k / spread^2`` and
    mean ``(sum effects / spread^2) / precision``."""
    precision = 1.0 / mean_sd ** 2 + effects.shape[1] / spread ** 2
    centre = effects.sum(axis=1) / spread ** 2 / precision
    return np.random.default_rng(seed).normal(centre, 1.0 / np.sqrt(precision))


def add_pooled_mean(posterior, *, effects: str, spread: str, name: str, mean_sd: float,
                    seed: int) -> None:
    """Put :func:`pooled_mean_draws` into an ArviZ ``posterior`` group as ``name``."""
    values, scale = posterior[effects].to_numpy(), posterior[spread].to_numpy()
    draws = pooled_mean_draws(values.reshape(-1, values.shape[-1]), scale.reshape(-1),
                              mean_sd=mean_sd, seed=seed)
    posterior[name] = (("chain", "draw"), draws.reshape(scale.shape))
