"""What membership adds to revenue: staggered DiD (additive and ratio forms), regression
adjustment, IPW/AIPW, the Bayesian hierarchical lift and the naive gap shown for contrast;
member coverage and the join-month adjustment. Import estimators from :mod:`roi.models`."""
