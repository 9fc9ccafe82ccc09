"""What membership does to churn: time-varying Cox, the Bayesian piecewise-exponential
survival model, Kaplan-Meier and landmark curves, the naive (immortal-time biased) Cox for
contrast, and the revenue of the extra retained months. Import estimators from
:mod:`roi.models`."""
