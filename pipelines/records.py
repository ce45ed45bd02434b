"""What a training or scoring run records for auditors, assembled from typed results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines import tracking
from pipelines.config import UseCaseSpec
from pipelines.evaluation import Evaluation
from pipelines.paths import StateDir, project_root
from pipelines.storage import file_sha256
from pipelines.training import DataSplit, TrainedModel
from pipelines.validation import ValidationReport
from pipelines.versioning import code_version


@dataclass(frozen=True)
class TrainResult:
    agency: str
    use_case: str
    model_name: str
    model_version: str
    run_id: str
    aliases: list[str]
    best_iteration: int
    metrics: dict[str, float]
    split_sizes: dict[str, int] = field(default_factory=dict)


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """Nested params as dotted MLflow params: {'lightgbm.num_leaves': '31', ...}."""
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, inner in value.items():
            flat.update(flatten(f"{prefix}.{key}" if prefix else str(key), inner))
        return flat
    return {prefix: str(value)[:500]}


def provenance_tags(spec: UseCaseSpec) -> dict[str, str]:
    """Code commit and params-file hash, so a run traces to exactly what produced it."""
    params_file = project_root() / "params" / f"{spec.agency}.yaml"
    tags = {
        "agencyml.agency": spec.agency,
        "agencyml.use_case": spec.name,
        **code_version(project_root()).as_tags(),
    }
    if params_file.is_file():
        tags["agencyml.params_sha256"] = file_sha256(params_file)
    return tags


def record_training_run(
    spec: UseCaseSpec,
    trained: TrainedModel,
    evaluation: Evaluation,
    split: DataSplit,
    report: ValidationReport,
    state: StateDir,
) -> TrainResult:
    """Log params, metrics, plots and the model to MLflow, then register it."""
    tracking.configure(state)
    experiment_id = tracking.use_experiment(spec.agency, state)
    params = {
        **flatten("", spec.params.model_dump(mode="json", exclude={"description"})),
        "best_iteration": str(trained.best_iteration),
        **{f"rows.{name}": str(size) for name, size in split.sizes().items()},
    }
    registered = tracking.log_training_run(
        model_name=spec.model_name,
        experiment_id=experiment_id,
        bundle=trained.bundle,
        input_example=trained.bundle.transform.conform(split.train.head(5)),
        params=params,
        metrics=evaluation.metrics,
        figures=evaluation.figures,
        tags=provenance_tags(spec),
        documents={
            "validation/training_data.json": report.as_dict(),
            "params/use_case.json": spec.params.model_dump(mode="json"),
        },
    )
    return TrainResult(
        agency=spec.agency,
        use_case=spec.name,
        model_name=registered.name,
        model_version=registered.version,
        run_id=registered.run_id,
        aliases=registered.aliases,
        best_iteration=trained.best_iteration,
        metrics=evaluation.metrics,
        split_sizes=split.sizes(),
    )


@dataclass(frozen=True)
class ScoreResult:
    batch_id: str
    output_dir: Path
    rows: int
    model_name: str
    model_version: str
    newly_published: bool
    run_id: str | None
    decisions: dict[str, int]


def record_scoring_run(
    spec: UseCaseSpec, model: tracking.LoadedModel, manifest: dict[str, Any], state: StateDir
) -> str:
    tracking.configure(state)
    experiment_id = tracking.use_experiment(spec.agency, state)
    return tracking.log_scoring_run(
        experiment_id=experiment_id,
        model=model,
        tags={"agencyml.batch_id": manifest["batch_id"], **provenance_tags(spec)},
        metrics={"rows_scored": float(manifest["rows"]["scored"])},
        manifest=manifest,
    )
