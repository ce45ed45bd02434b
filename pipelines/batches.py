"""Reading, scoring and publishing one batch: the steps the score flow strings together."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from pipelines import storage, tracking, versioning
from pipelines.config import UseCaseSpec
from pipelines.drift import (
    DriftAccumulator,
    DriftResult,
    DriftThresholds,
    drift_html,
    plot_drift,
)
from pipelines.paths import StateDir, project_root
from pipelines.quality import Batch, GatedBatch
from pipelines.scoring import batch_id_for, build_scored_batch, score_matrix, summarize_scores
from pipelines.sources import training_table
from pipelines.training import split_data


def batch_id_of(batch: Batch, model: tracking.LoadedModel) -> str:
    return batch_id_for(batch.sha256, model.name, model.version)


def score_batch(passed: pd.DataFrame, model: tracking.LoadedModel, batch_id: str) -> pd.DataFrame:
    """Probabilities through the model's pyfunc, then the decision policy, row by row."""
    probabilities = tracking.predict(model, model.bundle.transform.conform(passed))
    return build_scored_batch(
        passed,
        probabilities,
        model.bundle,
        batch_id=batch_id,
        model_name=model.name,
        model_version=model.version,
    )


def measure_drift(
    spec: UseCaseSpec, passed: pd.DataFrame, scored: pd.DataFrame, model: tracking.LoadedModel
) -> DriftResult | None:
    """PSI of each feature and of the scores against the reference stored with the model;
    None for a model trained before references were kept, or an empty batch."""
    reference = model.bundle.drift_reference
    if reference is None or scored.empty:
        return None
    accumulator = DriftAccumulator(reference)
    # drift reads numbers and categories the way the transform does: no second conform pass
    accumulator.update(passed, score_matrix(scored, model.bundle))
    drift = spec.params.drift
    return accumulator.result(DriftThresholds(warn=drift.warn, alert=drift.alert))


def drift_files(drift: DriftResult | None, model: tracking.LoadedModel) -> dict[str, Any]:
    """The drift report as files for the batch folder: a chart and an HTML page around it."""
    reference = model.bundle.drift_reference
    if drift is None or reference is None:
        return {}
    figure = plot_drift(drift)
    try:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(figure)
    png = buffer.getvalue()
    page = drift_html(drift, reference, png)
    return {
        "drift.png": lambda path: path.write_bytes(png),
        "drift.html": lambda path: path.write_text(page, encoding="utf-8"),
    }


def store_input(spec: UseCaseSpec, batch: Batch, store: bool) -> dict[str, Any]:
    """Optionally keep the exact input with DVC, so an auditor can fetch what was scored."""
    if not store:
        return {}
    target = (
        f"data/scored-inputs/{spec.agency}/{spec.name}/"
        f"{batch.sha256[:20]}{storage.table_suffix(batch.path)}"
    )
    stored = versioning.store_with_dvc(batch.path, project_root(), target)
    return {"dvc_path": stored.path, "dvc_md5": stored.md5, "dvc_remote": stored.remote}


def build_manifest(
    spec: UseCaseSpec,
    scored: pd.DataFrame,
    model: tracking.LoadedModel,
    *,
    batch: Batch,
    gated: GatedBatch,
    batch_id: str,
    quarantine_dir: Path | None,
    stored_input: dict[str, Any] | None = None,
    drift: DriftResult | None = None,
) -> dict[str, Any]:
    """What was scored, by which model, and how every input row was accounted for."""
    return {
        "batch_id": batch_id,
        "agency": spec.agency,
        "use_case": spec.name,
        "model": {
            "name": model.name,
            "version": model.version,
            "run_id": model.run_id,
            "uri": model.uri,
        },
        "input": {"path": str(batch.path), "sha256": batch.sha256, **(stored_input or {})},
        "rows": gated.gate.counts(),
        "validation": {
            "result_id": gated.outcome.result_id,
            "suite": gated.outcome.suite_name,
            "failed_checks": [r.explain() for r in gated.outcome.failures],
        },
        "quarantine": str(quarantine_dir) if quarantine_dir else None,
        "scores": summarize_scores(scored, model.bundle) if len(scored) else {},
        "drift": drift.as_dict() if drift is not None else None,
        "created_at": datetime.now(UTC).isoformat(),
        "files": ["scored.parquet", *(["drift.html", "drift.png"] if drift is not None else [])],
    }


def publish(
    spec: UseCaseSpec,
    scored: pd.DataFrame,
    manifest: dict[str, Any],
    state: StateDir,
    extra_files: dict[str, Any] | None = None,
) -> tuple[Path, bool]:
    batch_dir = state.output_dir(spec.agency, spec.name) / manifest["batch_id"]
    return storage.publish_batch(scored, manifest, batch_dir, extra_files)


def write_holdout_batch(spec: UseCaseSpec, state: StateDir) -> Path:
    """Write the use case's holdout rows, target removed, as an incoming batch for the demo."""
    split = split_data(training_table(spec), spec.params)
    batch = split.holdout[spec.params.required_columns(with_target=False)]
    path = state.inbox_dir / spec.agency / spec.name / "holdout-batch.parquet"
    return storage.write_parquet(batch, path)
