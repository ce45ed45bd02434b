"""Scoring: the batch id that makes scoring the same input with the same model idempotent.

Scoring itself streams chunk by chunk: see pipelines.scoring.streaming."""

from __future__ import annotations

import hashlib


def batch_id_for(input_sha256: str, model_name: str, model_version: str) -> str:
    """The same input scored by the same model version always gets the same batch id."""
    key = f"{input_sha256}\x1f{model_name}\x1f{model_version}".encode()
    return "batch-" + hashlib.sha256(key).hexdigest()[:20]
