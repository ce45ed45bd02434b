"""Scoring: from a batch and its model's probabilities to the rows an agency receives."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from pipelines.decisions import apply_policy
from pipelines.model import ModelBundle


def batch_id_for(input_sha256: str, model_name: str, model_version: str) -> str:
    """The same input scored by the same model version always gets the same batch id."""
    key = f"{input_sha256}\x1f{model_name}\x1f{model_version}".encode()
    return "batch-" + hashlib.sha256(key).hexdigest()[:20]


def score_matrix(probabilities: pd.DataFrame, bundle: ModelBundle) -> np.ndarray:
    """The probability columns as an array: (n,) for binary, (n, classes) for multiclass."""
    if bundle.task == "binary":
        return probabilities["probability"].to_numpy(dtype=float)
    return probabilities[[f"proba_{label}" for label in bundle.classes]].to_numpy(float)


def build_scored_batch(
    batch: pd.DataFrame,
    probabilities: pd.DataFrame,
    bundle: ModelBundle,
    *,
    batch_id: str,
    model_name: str,
    model_version: str,
    scored_at: datetime | None = None,
) -> pd.DataFrame:
    """One row per input row: id, scores, predicted label, decision and provenance."""
    if len(probabilities) != len(batch):
        raise ValueError(f"{len(probabilities)} scores for {len(batch)} rows")
    scores = score_matrix(probabilities, bundle)
    decisions = apply_policy(scores, bundle.policy, bundle.task, bundle.classes)
    scored = pd.DataFrame({bundle.id_column: batch[bundle.id_column].to_numpy()})
    for column in probabilities.columns:
        scored[column] = probabilities[column].to_numpy(dtype="float64")
    scored["predicted_label"] = pd.array(decisions.predicted_label, dtype="string")
    scored["decision"] = pd.array(decisions.decision, dtype="string")
    scored["batch_id"] = batch_id
    scored["model_name"] = model_name
    scored["model_version"] = model_version
    scored["scored_at"] = pd.Timestamp(scored_at or datetime.now(UTC))
    return scored


def summarize_scores(scored: pd.DataFrame, bundle: ModelBundle) -> dict[str, Any]:
    """What a manifest reader wants at a glance: decision counts and the score spread."""
    summary: dict[str, Any] = {
        "decisions": {str(k): int(v) for k, v in scored["decision"].value_counts().items()},
        "predicted_labels": {
            str(k): int(v) for k, v in scored["predicted_label"].value_counts().items()
        },
    }
    if bundle.task == "binary":
        quantiles = np.quantile(scored["probability"], [0.0, 0.1, 0.5, 0.9, 1.0])
        summary["probability"] = {
            "mean": float(scored["probability"].mean()),
            **{
                f"q{int(q * 100):02d}": float(v)
                for q, v in zip([0, 0.1, 0.5, 0.9, 1], quantiles, strict=True)
            },
        }
    return summary
