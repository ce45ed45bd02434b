"""What MLflow keeps: the tracking adapter (the only MLflow importer), the runs' records, the
promotion rules and alias history, model cards, traces and reproduction. May import modeling,
validation, data and the shared modules."""
