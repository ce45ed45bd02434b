"""What MLflow keeps, and the one wing that imports MLflow: the tracking adapter, the runs'
records, the promotion rules and alias history, model cards, traces and reproduction. May import
modeling, validation, data and the shared modules."""
