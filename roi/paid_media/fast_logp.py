"""The media-mix model's log-density and its gradient written out by hand in numba.

nutpie calls a log-density-and-gradient function once per leapfrog step (about 90,000 times in
a 4 x 2000 fit). Through PyMC and JAX (:func:`roi.inference.nuts.compile_jax`) each call is a
Python callback into about 90 small XLA kernels: 0.1-0.2 ms, holding the GIL between kernels.
Here the same density (:mod:`roi.paid_media.model`: same priors, transforms, likelihood and
lift-test term, every normalising constant included) and its reverse-mode gradient are one numba
function behind a C pointer that nutpie's Rust sampler calls directly: a few microseconds, no
Python, so the two chains really run in parallel. Everything that does not depend on the
parameters is computed once into a flat data buffer (the lagged spend and member copies that
turn the adstock convolution into a sum of products, the seasonal and control columns, the
lift-test spend changes).

The compiled code does not depend on the data (shapes and prior constants are read from the
buffer's header), so numba compiles it once per installation and keeps it in its on-disk cache
(``NUMBA_CACHE_DIR``, default ``__pycache__`` beside this file): a first fit compiles it in
about 3.7 s CPU, every later process loads it in 0.03 s (:mod:`roi.paid_media.sampling`).

Supported structures (:func:`supports`): geometric adstock (normalised or not) for media and
communities, Hill or logistic saturation. Anything else (delayed adstock) goes through JAX.
The tests compare density and gradient with PyMC's own at random points.

Unconstrained parameters, in order: ``level``, ``rate_log__``, ``fourier`` (F), ``gamma`` (K),
``roas_log__`` (C), ``media_decay_logodds__`` (C), the saturation's ``*_log__`` (C each),
``theta`` (G), ``community_decay_logodds__`` (G), ``sigma_log__``.

Examples
--------
>>> from roi.paid_media.components import GeometricAdstock, HillSaturation
>>> supports(adstock=GeometricAdstock(l_max=8), saturation=HillSaturation(),
...          community_adstock=GeometricAdstock(l_max=8, normalize=True))
True
"""

from __future__ import annotations

import math

import numpy as np

from roi.inference.kernel_model import Layout, kernel_nutpie_model
from roi.paid_media.components import GeometricAdstock, HillSaturation, LogisticSaturation

HEADER = 24          # floats before the data arrays (see :func:`pack`)


def supports(*, adstock, saturation, community_adstock) -> bool:
    """Whether this module implements the model with these components."""
    return (type(adstock) is GeometricAdstock and type(community_adstock) is GeometricAdstock
            and type(saturation) in (HillSaturation, LogisticSaturation))


# --------------------------------------------------------------------------- layout


def layout(*, n_channels: int, n_communities: int, n_fourier_terms: int, n_controls: int,
           saturation) -> Layout:
    """The parameter layout of the model (communities only when there are some, as in PyMC)."""
    C, G = n_channels, n_communities
    free = [("level", None, 1, None), ("rate", "log", 1, None),
            ("fourier", None, n_fourier_terms, "fourier_term"), ("gamma", None, n_controls, "control"),
            ("roas", "log", C, "channel"), ("media_decay", "logodds", C, "channel")]
    free += [(f"saturation_{p}", "log", C, "channel") for p in saturation.params]
    if G:
        free += [("theta", None, G, "community"), ("community_decay", "logodds", G, "community")]
    return Layout(free + [("sigma", "log", 1, None)])


def pack(inputs: dict[str, np.ndarray], *, adstock, saturation, community_adstock,
         roas_sigma: float, n_dim: int) -> np.ndarray:
    """The flat float64 buffer the compiled functions read: header (sizes, component kinds,
    prior constants; the ROAS prior's median is ``inputs["roas_log_median"]``), then the model
    inputs (:func:`roi.paid_media.model.model_inputs`)."""
    lagged = inputs["spend_lagged"]
    L, T, C = lagged.shape
    members = inputs["members_lagged"]
    G = members.shape[2] if members.ndim == 3 else 0
    inputs = dict(inputs)
    constant = 0.0
    if not inputs["lift_mask"].any() and not inputs["lift_lagged"].any():
        # model_inputs' inert stand-in when there is no lift test (it keeps PyMC's structure):
        # a constant of the density here, added as such instead of computed at every call
        se = float(inputs["lift_se"][0])
        constant = -0.5 * (float(inputs["lift_observed"][0]) / se) ** 2 - math.log(se) \
            - 0.5 * math.log(2 * math.pi)
        for name in ("lift_lagged", "lift_mask"):
            inputs[name] = inputs[name][..., :0]
        for name in ("lift_channel", "lift_observed", "lift_se"):
            inputs[name] = inputs[name][:0]
    N = len(inputs["lift_observed"])
    if isinstance(saturation, HillSaturation):
        sat = (0.0, saturation.half_mu, saturation.half_sigma, saturation.shape_mu,
               saturation.shape_sigma)
    else:
        sat = (1.0, saturation.lam_alpha, saturation.lam_beta, 0.0, 0.0)
    header = np.zeros(HEADER)
    header[1:9] = (T, C, L, G, members.shape[0], inputs["seasonal"].shape[1],
                   inputs["controls"].shape[1], N)
    header[9:22] = (sat[0], float(adstock.normalize), float(community_adstock.normalize),
                    float(inputs["roas_log_median"]), roas_sigma, adstock.decay_alpha, adstock.decay_beta,
                    *sat[1:], community_adstock.decay_alpha, community_adstock.decay_beta)
    header[22:24] = (n_dim, constant)
    parts = [header] + [np.ascontiguousarray(inputs[k], dtype=np.float64).ravel() for k in (
        "revenue", "customers", "seasonal", "controls", "spend_lagged", "spend_total",
        "members_lagged", "lift_lagged", "lift_mask", "lift_channel", "lift_observed",
        "lift_se")]
    buf = np.concatenate(parts)
    buf[0] = len(buf)
    return buf


def support_point(lay: Layout, buf: np.ndarray) -> np.ndarray:
    """PyMC's starting point (each prior's mean, on the unconstrained scale)."""
    def logit_mean(a, b):
        return math.log(a / b)              # logit(a / (a + b))

    kind = int(buf[9])
    values = {"level": 1.0, "rate": math.log(2.0), "fourier": 0.0, "gamma": 0.0,
              "roas": buf[12] + buf[13] ** 2 / 2, "media_decay": logit_mean(buf[14], buf[15]),
              "theta": 0.0, "community_decay": logit_mean(buf[20], buf[21]),
              "sigma": math.log(0.1)}
    if kind == 0:
        values["saturation_half"] = buf[16] + buf[17] ** 2 / 2
        values["saturation_shape"] = buf[18] + buf[19] ** 2 / 2
    else:
        values["saturation_lam"] = math.log(buf[16] / buf[17])
    return np.concatenate([np.full(size, values[name]) for name, _, size, _ in lay.free])


def nutpie_model(inputs: dict[str, np.ndarray], *, adstock, saturation, community_adstock,
                 roas_sigma: float, coords: dict[str, list]):
    """A nutpie model (``nutpie.sample`` takes it like a compiled PyMC model) whose density
    and gradient are :func:`logp_grad`, read from this data set's buffer.

    ``coords``: ``channel``, ``community``, ``fourier_term`` and ``control`` labels.
    """
    lay = layout(n_channels=len(coords["channel"]), n_communities=len(coords["community"]),
                 n_fourier_terms=len(coords["fourier_term"]),
                 n_controls=len(coords["control"]), saturation=saturation)
    buf = pack(inputs, adstock=adstock, saturation=saturation,
               community_adstock=community_adstock, roas_sigma=roas_sigma, n_dim=lay.n_dim)
    from roi.paid_media._fast_kernels import expand_c, logp_c

    return kernel_nutpie_model(logp_c=logp_c, expand_c=expand_c, buf=buf, lay=lay,
                               coords=coords, support_point=support_point(lay, buf))
