"""The model itself: features, training, calibration, decisions, metrics, evaluation against
baselines and slices, drift references. May import validation, data and the shared modules."""
