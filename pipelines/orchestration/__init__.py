"""Running unattended: Prefect's server helpers, prefect.yaml written from the params, and the
inbox of batch files. May import every other wing and the shared modules."""
