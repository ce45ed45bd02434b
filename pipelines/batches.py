"""Reading, scoring and publishing one batch: the steps the score flow strings together."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines import storage, tracking
from pipelines.config import UseCaseSpec
from pipelines.paths import StateDir
from pipelines.scoring import batch_id_for, build_scored_batch, summarize_scores
from pipelines.sources import load_source
from pipelines.training import split_data
from pipelines.validation import ValidationReport, validate_scoring_batch


def read_batch(path: Path) -> tuple[pd.DataFrame, str]:
    """The batch and the sha256 of its file, which fixes the batch id."""
    frame = storage.read_table(path)
    return frame, storage.file_sha256(path)


def check_batch(frame: pd.DataFrame, model: tracking.LoadedModel) -> ValidationReport:
    return validate_scoring_batch(
        frame, model.bundle.transform.input_columns, model.bundle.id_column
    )


def score_batch(
    frame: pd.DataFrame, model: tracking.LoadedModel, input_sha256: str
) -> pd.DataFrame:
    batch_id = batch_id_for(input_sha256, model.name, model.version)
    probabilities = tracking.predict(model, model.bundle.transform.conform(frame))
    return build_scored_batch(
        frame,
        probabilities,
        model.bundle,
        batch_id=batch_id,
        model_name=model.name,
        model_version=model.version,
    )


def build_manifest(
    spec: UseCaseSpec,
    scored: pd.DataFrame,
    model: tracking.LoadedModel,
    *,
    input_path: Path,
    input_sha256: str,
    report: ValidationReport,
) -> dict[str, Any]:
    return {
        "batch_id": str(scored["batch_id"].iloc[0]),
        "agency": spec.agency,
        "use_case": spec.name,
        "model": {
            "name": model.name,
            "version": model.version,
            "run_id": model.run_id,
            "uri": model.uri,
        },
        "input": {"path": str(input_path), "sha256": input_sha256},
        "rows": {"in": int(report.rows), "scored": len(scored), "quarantined": 0},
        "validation": report.as_dict(),
        "scores": summarize_scores(scored, model.bundle),
        "created_at": datetime.now(UTC).isoformat(),
        "files": ["scored.parquet"],
    }


def publish(
    spec: UseCaseSpec, scored: pd.DataFrame, manifest: dict[str, Any], state: StateDir
) -> tuple[Path, bool]:
    batch_dir = state.output_dir(spec.agency, spec.name) / manifest["batch_id"]
    return storage.publish_batch(scored, manifest, batch_dir)


def write_holdout_batch(spec: UseCaseSpec, state: StateDir) -> Path:
    """Write the use case's holdout rows, target removed, as an incoming batch for the demo."""
    split = split_data(load_source(spec.params), spec.params)
    batch = split.holdout[spec.params.required_columns(with_target=False)]
    path = state.inbox_dir / spec.agency / spec.name / "holdout-batch.parquet"
    return storage.write_parquet(batch, path)
