"""How fragile is each headline number: sensitivity to hidden bias (issue 17).

One module per method, each pure functions and small result dataclasses:

* :mod:`roi.sensitivity.parallel_trends`: Rambachan & Roth (2023) relative-magnitudes bounds
  of the DiD revenue lift and its breakdown ``Mbar``;
* :mod:`roi.sensitivity.omitted_variable`: Cinelli & Hazlett (2020) robustness values and
  benchmarked bounds of a regression-type estimate;
* :mod:`roi.sensitivity.evalue`: VanderWeele & Ding (2017) E-values of a hazard ratio.

Examples
--------
>>> from roi.sensitivity.evalue import evalues_hr
>>> round(evalues_hr(0.70, low=0.62, high=0.79).e_value, 2)
1.88
"""
