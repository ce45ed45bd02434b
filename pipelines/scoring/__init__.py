"""Scoring a batch: streaming it through the gate and the model, publishing it whole, batch ids,
and the engines (this process or Dask) that run scoring and training. May import registry,
modeling, validation, data and the shared modules."""
