"""The agencies' pull service: the HTTP API, its tokens and access log, and the pull client.
May import scoring, registry, modeling, validation, data and the shared modules."""
