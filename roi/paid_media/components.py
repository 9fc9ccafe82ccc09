"""Swappable adstock and saturation components for the media-mix model.

Each component is a small frozen object with its priors stated, a numpy ``apply`` (used for
posterior post-processing and tests) and a PyTensor ``pt_apply`` (used inside the PyMC model).
Time is axis 0 in both; parameters broadcast against the remaining axes (one value per channel,
or draws x channels).

Adstock (carry-over), ``stock_t = sum_{l < L} w_l * x_{t-l}``:

* :class:`GeometricAdstock` ``w_l = decay**l`` (``normalize=False``: the simulator's recursion
  ``a_t = x_t + decay * a_{t-1}`` when ``l_max`` is None), prior ``decay ~ Beta(2, 2)``.
* :class:`DelayedAdstock` ``w_l = decay**((l - delay)**2)``, normalised to sum to 1, priors
  ``decay ~ Beta(2, 2)``, ``delay ~ HalfNormal(2)`` weeks.

Saturation (diminishing returns) of adstocked spend expressed as a multiple of its mean:

* :class:`HillSaturation` ``x**shape / (x**shape + half**shape)``, priors
  ``half ~ LogNormal(0, 0.5)`` (half-saturation at 0.4-2.7 times mean adstocked spend, 95%),
  ``shape ~ LogNormal(log 1.3, 0.35)`` (0.65-2.6).
* :class:`LogisticSaturation` ``(1 - exp(-lam x)) / (1 + exp(-lam x))``, prior
  ``lam ~ Gamma(3, 2)`` (mean 1.5).

Examples
--------
>>> import numpy as np
>>> GeometricAdstock().apply(np.array([100.0, 0.0, 0.0]), decay=0.5).tolist()
[100.0, 50.0, 25.0]
>>> float(HillSaturation().apply(np.array([2.0]), half=2.0, shape=1.0)[0])
0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_TINY = 1e-30   # stands in for 0 inside PyTensor powers so that gradients stay finite


# --------------------------------------------------------------------------- adstock


class _Adstock:
    """Convolution with lag weights; subclasses define ``params`` and ``weights``."""

    l_max: int | None
    params: tuple[str, ...] = ()

    def _length(self, n_weeks: int) -> int:
        return n_weeks if self.l_max is None else max(1, min(int(self.l_max), n_weeks))

    normalize: bool = False

    def raw_weights(self, lags, **params):  # pragma: no cover - abstract
        raise NotImplementedError

    def weights(self, lags, **params):
        """Lag weights ``w_l`` (normalised to sum 1 over the lags given when ``normalize``)."""
        w = self.raw_weights(lags, **params)
        return w / w.sum(axis=0) if self.normalize else w

    def apply(self, x: np.ndarray, **params: Any) -> np.ndarray:
        """Adstocked series, time on axis 0; params broadcast against ``x[0]``."""
        x = np.asarray(x, dtype=float)
        n_weeks = x.shape[0]
        values = {k: np.asarray(v, dtype=float) for k, v in params.items()}
        extra = max([v.ndim for v in values.values()] + [x.ndim - 1])
        lags = np.arange(self._length(n_weeks), dtype=float).reshape((-1,) + (1,) * extra)
        w = self.weights(lags, **values)
        out = np.zeros(np.broadcast_shapes(x.shape, (n_weeks,) + w.shape[1:]))
        for lag in range(len(lags)):
            out[lag:] += w[lag] * x[: n_weeks - lag]
        return out

    def pt_apply(self, x, **params):
        """PyTensor version for ``x`` of shape (weeks, channels), params of shape (channels,).

        ``stock = sum_l w_l * lagged_l``: powers only on the (lag, channel) weights, so the
        gradient stays cheap; pass data as a numpy array to have the lagged copies precomputed.
        """
        import pytensor.tensor as pt

        n_weeks = x.shape[0] if isinstance(x, np.ndarray) else int(x.type.shape[0])
        length = self._length(n_weeks)
        lags = pt.as_tensor_variable(np.arange(length, dtype=float)[:, None])
        w = self.weights(lags, **{k: v[None, :] for k, v in params.items()})    # (lag, channel)
        return (w[:, None, :] * _lagged(x, length)).sum(axis=0)

    def priors(self, *, prefix: str, dims: str) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class GeometricAdstock(_Adstock):
    """Geometric carry-over ``w_l = decay**l``; ``l_max=None`` keeps the whole window.

    Parameters
    ----------
    l_max : int, optional
        Longest lag in weeks (None: every earlier week of the window, i.e. the exact recursion).
    normalize : bool
        Divide the weights by their sum (the stock is then a weighted mean of past spend).
    decay_alpha, decay_beta : float
        ``decay ~ Beta(decay_alpha, decay_beta)``; the default Beta(2, 2) has mean 0.5 and 95% of
        its mass in 0.09-0.91.

    Examples
    --------
    >>> import numpy as np
    >>> GeometricAdstock(l_max=2).apply(np.array([1.0, 1.0, 1.0]), decay=0.5).tolist()
    [1.0, 1.5, 1.5]
    """

    l_max: int | None = None
    normalize: bool = False
    decay_alpha: float = 2.0
    decay_beta: float = 2.0
    params = ("decay",)

    def raw_weights(self, lags, *, decay):
        return decay ** lags

    def priors(self, *, prefix: str, dims: str) -> dict[str, Any]:
        import pymc as pm

        return {"decay": pm.Beta(f"{prefix}_decay", self.decay_alpha, self.decay_beta, dims=dims)}


@dataclass(frozen=True)
class DelayedAdstock(_Adstock):
    """Delayed (peaked) carry-over ``w_l = decay**((l - delay)**2)``, normalised to sum to 1.

    Parameters
    ----------
    l_max : int
        Longest lag in weeks.
    decay_alpha, decay_beta : float
        ``decay ~ Beta(decay_alpha, decay_beta)``.
    delay_sigma : float
        ``delay ~ HalfNormal(delay_sigma)`` weeks to the peak effect.

    Examples
    --------
    >>> import numpy as np
    >>> out = DelayedAdstock(l_max=4).apply(np.array([1.0, 0, 0, 0]), decay=0.5, delay=1.0)
    >>> int(np.argmax(out))
    1
    """

    l_max: int | None = 8
    normalize: bool = True
    decay_alpha: float = 2.0
    decay_beta: float = 2.0
    delay_sigma: float = 2.0
    params = ("decay", "delay")

    def raw_weights(self, lags, *, decay, delay):
        return decay ** ((lags - delay) ** 2)

    def priors(self, *, prefix: str, dims: str) -> dict[str, Any]:
        import pymc as pm

        return {"decay": pm.Beta(f"{prefix}_decay", self.decay_alpha, self.decay_beta, dims=dims),
                "delay": pm.HalfNormal(f"{prefix}_delay", self.delay_sigma, dims=dims)}


def _lagged(x, length: int):
    """(lag, week, ...) copies of ``x`` shifted down by each lag, zeros before the window."""
    if isinstance(x, np.ndarray):
        out = np.zeros((length,) + x.shape)
        for lag in range(length):
            out[lag, lag:] = x[: x.shape[0] - lag]
        return out
    import pytensor.tensor as pt

    n_weeks = int(x.type.shape[0])
    return pt.stack([pt.concatenate([pt.zeros_like(x[:lag]), x[: n_weeks - lag]], axis=0)
                     for lag in range(length)])


# --------------------------------------------------------------------------- saturation


def window_sums(saturation, x: np.ndarray, multipliers, **params: Any) -> np.ndarray:
    """``sum over axis 0 of saturation(m * x)`` for each multiplier ``m``: (multiplier, ...).

    Uses the component's own ``window_sums`` when it has one (Hill: one power for all
    multipliers), else applies it once per multiplier.

    Examples
    --------
    >>> x = np.array([[0.5], [1.0], [2.0]])
    >>> hill, logistic = HillSaturation(), LogisticSaturation()
    >>> fast = window_sums(hill, x, [0.0, 1.0, 1.5], half=np.array([1.2]), shape=np.array([1.7]))
    >>> slow = [hill.apply(m * x, half=1.2, shape=1.7).sum(axis=0) for m in (0.0, 1.0, 1.5)]
    >>> bool(np.allclose(fast, slow, rtol=1e-12, atol=0))
    True
    >>> window_sums(logistic, x, [0.0, 2.0], lam=np.array([1.0])).shape
    (2, 1)
    """
    own = getattr(saturation, "window_sums", None)
    if own is not None:
        return own(x, multipliers, **params)
    return np.stack([saturation.apply(m * x, **params).sum(axis=0) for m in multipliers])


@dataclass(frozen=True)
class HillSaturation:
    """Hill curve ``x**shape / (x**shape + half**shape)`` (0 at 0, 1/2 at ``half``, -> 1).

    Parameters
    ----------
    half_mu, half_sigma : float
        ``half ~ LogNormal(half_mu, half_sigma)``, in multiples of the channel's mean adstocked
        spend (the model feeds ``stock / mean(stock)``).
    shape_mu, shape_sigma : float
        ``shape ~ LogNormal(shape_mu, shape_sigma)``; shape > 1 gives an S-curve.

    Examples
    --------
    >>> import numpy as np
    >>> HillSaturation().apply(np.array([0.0, 1.0, 3.0]), half=1.0, shape=2.0).tolist()
    [0.0, 0.5, 0.9]
    """

    half_mu: float = 0.0
    half_sigma: float = 0.5
    shape_mu: float = float(np.log(1.3))
    shape_sigma: float = 0.35
    params = ("half", "shape")

    def apply(self, x: np.ndarray, *, half, shape) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        return x ** shape / (x ** shape + np.asarray(half, dtype=float) ** shape)

    def window_sums(self, x: np.ndarray, multipliers, *, half, shape) -> np.ndarray:
        """:func:`window_sums`: ``(m x)**k / ((m x)**k + h**k) = x**k / (x**k + h**k / m**k)``,
        so the power of the large array is taken once for every multiplier."""
        x = np.asarray(x, dtype=float)
        shape, half = np.asarray(shape, dtype=float), np.asarray(half, dtype=float)
        powered = x ** shape
        out = np.zeros((len(multipliers),) + np.broadcast_shapes(x.shape[1:], shape.shape))
        for i, m in enumerate(multipliers):
            if m > 0:
                out[i] = (powered / (powered + half ** shape / float(m) ** shape)).sum(axis=0)
        return out

    def pt_apply(self, x, *, half, shape):
        import pytensor.tensor as pt

        powered = pt.exp(shape * pt.log(pt.switch(x > 0, x, _TINY)))
        return powered / (powered + half ** shape)

    def priors(self, *, prefix: str, dims: str) -> dict[str, Any]:
        import pymc as pm

        return {"half": pm.LogNormal(f"{prefix}_half", self.half_mu, self.half_sigma, dims=dims),
                "shape": pm.LogNormal(f"{prefix}_shape", self.shape_mu, self.shape_sigma,
                                      dims=dims)}


@dataclass(frozen=True)
class LogisticSaturation:
    """Logistic curve ``(1 - exp(-lam x)) / (1 + exp(-lam x))`` (0 at 0, concave, -> 1).

    Parameters
    ----------
    lam_alpha, lam_beta : float
        ``lam ~ Gamma(lam_alpha, lam_beta)`` per unit of the channel's mean adstocked spend.

    Examples
    --------
    >>> import numpy as np
    >>> round(float(LogisticSaturation().apply(np.array([1.0]), lam=1.0)[0]), 4)
    0.4621
    """

    lam_alpha: float = 3.0
    lam_beta: float = 2.0
    params = ("lam",)

    def apply(self, x: np.ndarray, *, lam) -> np.ndarray:
        e = np.exp(-np.asarray(lam, dtype=float) * np.asarray(x, dtype=float))
        return (1.0 - e) / (1.0 + e)

    def pt_apply(self, x, *, lam):
        import pytensor.tensor as pt

        e = pt.exp(-lam * x)
        return (1.0 - e) / (1.0 + e)

    def priors(self, *, prefix: str, dims: str) -> dict[str, Any]:
        import pymc as pm

        return {"lam": pm.Gamma(f"{prefix}_lam", alpha=self.lam_alpha, beta=self.lam_beta,
                                dims=dims)}
