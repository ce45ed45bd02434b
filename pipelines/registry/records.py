"""What a training or scoring run records for auditors, assembled from typed results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from pipelines.config import UseCaseSpec
from pipelines.data.lineage import training_data_lineage
from pipelines.data.storage import file_sha256
from pipelines.data.versioning import code_version, dvc_experiment
from pipelines.modeling.baselines import baseline_metrics, plot_baselines
from pipelines.modeling.evaluation import Evaluation, evaluate
from pipelines.modeling.training import DataSplit, TrainedModel
from pipelines.paths import StateDir, project_root
from pipelines.registry import promotion, tracking
from pipelines.validation import quality
from pipelines.validation.expectations import scoring_checks
from pipelines.validation.gx import ValidationOutcome
from pipelines.validation.quality import UnlabelledRows

SCORING = "scoring"  # the experiment of scored and rejected batches, beside training's


@dataclass(frozen=True)
class TrainResult:
    agency: str
    use_case: str
    model_name: str
    model_version: str
    run_id: str
    aliases: list[str]
    best_iteration: int
    model_sha256: str
    metrics: dict[str, float]
    split_sizes: dict[str, int] = field(default_factory=dict)
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    # the baselines' holdout metrics, which the promotion gate compares the version with
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)


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
        **dvc_experiment(),
    }
    if params_file.is_file():
        tags["agencyml.params_sha256"] = file_sha256(params_file)
    return tags


def record_training_run(
    spec: UseCaseSpec,
    trained: TrainedModel,
    evaluation: Evaluation,
    split: DataSplit,
    outcome: ValidationOutcome,
    state: StateDir,
    data: pd.DataFrame,
    baselines: dict[str, dict[str, float]] | None = None,
    unlabelled: UnlabelledRows | None = None,
) -> TrainResult:
    """Log params, metrics, plots, data lineage, validation evidence and the model; register."""
    tracking.configure(state)
    params = {
        **flatten("", spec.params.model_dump(mode="json", exclude={"description"})),
        "best_iteration": str(trained.best_iteration),
        **{f"rows.{name}": str(size) for name, size in split.sizes().items()},
        **{f"fitting.{key}": str(value) for key, value in trained.fitting.items()},
    }
    suite = scoring_checks(spec.params, trained.bundle.profile, datetime.now(UTC))
    lineage = training_data_lineage(spec, data)
    record = tracking.RunRecord(
        run_name=f"train-{spec.model_name}",
        tags={
            **provenance_tags(spec),
            "agencyml.kind": "train",
            "agencyml.model_name": spec.model_name,
            "agencyml.model_sha256": trained.bundle.sha256(),
            "agencyml.validation_result_id": outcome.result_id,
            **lineage.as_tags(),
        },
        params=params,
        metrics={
            **evaluation.metrics,
            **trained.policy_facts,
            **baseline_metrics(baselines or {}),
            "rows_unlabelled": float(unlabelled.rows if unlabelled else 0),
        },
        figures={**evaluation.figures, **baseline_figures(spec, evaluation, baselines)},
        documents={
            "evaluation/report.json": {
                **evaluation_report(spec, trained, evaluation, split, baselines),
                "unlabelled": (
                    unlabelled or UnlabelledRows(0, spec.params.target_missing)
                ).as_dict(),
            },
            "validation/training_data.json": outcome.as_dict(),
            "validation/scoring_suite.json": {"checks": [asdict(check) for check in suite]},
            "params/use_case.json": spec.params.model_dump(mode="json"),
        },
        artifact_dirs={"validation/data_docs": outcome.data_docs},
        inputs=[(data, lineage)],
    )
    registered = tracking.log_training_run(
        record,
        tracking.use_experiment(spec.agency, state),
        model_name=spec.model_name,
        bundle=trained.bundle,
        input_example=trained.bundle.transform.conform(split.train.head(5)),
    )
    return TrainResult(
        agency=spec.agency,
        use_case=spec.name,
        model_name=registered.name,
        model_version=registered.version,
        run_id=registered.run_id,
        aliases=registered.aliases,
        best_iteration=trained.best_iteration,
        model_sha256=trained.bundle.sha256(),
        metrics=evaluation.metrics,
        split_sizes=split.sizes(),
        curves=evaluation.curves,
        baselines=baselines or {},
    )


def baseline_figures(
    spec: UseCaseSpec, evaluation: Evaluation, baselines: dict[str, dict[str, float]] | None
) -> dict[str, Any]:
    if not baselines:
        return {}
    metric = spec.params.primary_metric
    return {"baselines.png": plot_baselines(evaluation.metrics, baselines, metric)}


def evaluation_report(
    spec: UseCaseSpec,
    trained: TrainedModel,
    evaluation: Evaluation,
    split: DataSplit,
    baselines: dict[str, dict[str, float]] | None,
) -> dict[str, Any]:
    """What the model card and auditors read: metrics beside the baselines, slices,
    calibration, the training window and the decision policy as stored with the model."""
    return {
        "metrics": evaluation.metrics,
        "baselines": baselines or {},
        "slices": evaluation.details.get("slices"),
        "calibration": evaluation.details.get("calibration"),
        "per_class": evaluation.details.get("per_class"),
        "classes": evaluation.details.get("classes"),
        "split_sizes": split.sizes(),
        "fitting": trained.fitting,
        "training_window": training_window(spec, split),
        "policy": trained.bundle.policy.model_dump(mode="json"),
        "policy_facts": trained.policy_facts,
    }


def training_window(spec: UseCaseSpec, split: DataSplit) -> dict[str, str] | None:
    """The dates of the rows the model learned from (all but the holdout), for a time split."""
    column = getattr(spec.params.split, "date_column", None)
    if column is None:
        return None
    parts = [split.train, split.validation]
    if split.calibration is not None:
        parts.append(split.calibration)
    dates = pd.to_datetime(pd.concat([p[column] for p in parts]), errors="coerce").dropna()
    if dates.empty:
        return None
    return {"start": dates.min().date().isoformat(), "end": dates.max().date().isoformat()}


def gate_new_version(
    spec: UseCaseSpec,
    result: TrainResult,
    split: DataSplit,
    evaluation: Evaluation,
    state: StateDir,
) -> TrainResult:
    """The promotion gate: the new version, the current champion and the baselines measured on
    this training's holdout; the new version becomes challenger, and champion if it wins."""
    champion_version = tracking.alias_version(result.model_name, promotion.CHAMPION, state)
    champion_metrics = None
    if champion_version is not None:
        champion = tracking.load_model(result.model_name, state, version=champion_version)
        measured = evaluate(champion.bundle, split.holdout, spec.params, detailed=False)
        for figure in measured.figures.values():
            plt.close(figure)
        champion_metrics = measured.metrics
    verdict = promotion.judge(
        spec.params,
        evaluation.metrics,
        champion_metrics,
        champion_version,
        evaluation_slices(evaluation),
        baselines=result.baselines,
    )
    aliases = promotion.apply_gate(result.model_name, result.model_version, verdict, state)
    for version in {result.model_version, champion_version} - {None}:
        refresh_model_card(result.model_name, str(version), state)
    return replace(result, aliases=aliases, gate=verdict.as_dict())


def evaluation_slices(evaluation: Evaluation) -> tuple[bool, str] | None:
    """The slice check's verdict, when the use case reports slices."""
    report = evaluation.slices
    if report is None:
        return None
    if report.passed:
        return True, "slice disparity within limits"
    notes = report.ratio_notes()
    reasons = [f"{column}: {notes[column]}" for column in report.flagged_columns if column in notes]
    too_large = [column for column in report.flagged_columns if column not in notes]
    if too_large:
        reasons.insert(0, f"slice disparity too large for {', '.join(too_large)}")
    return False, "; ".join(reasons)


def champion_profile(spec: UseCaseSpec, state: StateDir) -> tuple[dict[str, Any], str]:
    """The champion's training profile, which batches are checked against, and what it is, for
    the report; the params alone while there is no champion yet."""
    try:
        found, bundle = tracking.load_bundle(spec.model_name, state)
    except tracking.ModelNotFoundError:
        return {}, "the params only (no champion model yet)"
    return bundle.profile, f"{found.name} v{found.version} and the params"


def validate_training_data(
    spec: UseCaseSpec, frame: pd.DataFrame, state: StateDir
) -> ValidationOutcome:
    """The training suite on the table; rejected data leaves a FAILED run showing why."""
    return quality.validate_training_data(
        spec, frame, state, record_failure=record_failed_validation
    )


def record_failed_validation(
    spec: UseCaseSpec,
    outcome: ValidationOutcome,
    state: StateDir,
    *,
    kind: str,
    tags: dict[str, str] | None = None,
    documents: dict[str, dict[str, Any]] | None = None,
) -> str:
    """A FAILED run that shows what the data got wrong, with its Data Docs."""
    tracking.configure(state)
    record = tracking.RunRecord(
        run_name=f"{kind}-{spec.model_name}-rejected",
        tags={
            **provenance_tags(spec),
            "agencyml.kind": kind,
            "agencyml.validation": "failed",
            "agencyml.model_name": spec.model_name,
            "agencyml.validation_result_id": outcome.result_id,
            **(tags or {}),
        },
        metrics={"rows_in": float(outcome.rows), "failed_checks": float(len(outcome.failures))},
        documents={f"validation/{kind}_data.json": outcome.as_dict(), **(documents or {})},
        artifact_dirs={"validation/data_docs": outcome.data_docs},
    )
    experiment = tracking.use_experiment(spec.agency, state, SCORING if kind == "score" else "")
    return tracking.log_run(record, experiment, failed=True)


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
    rows_quarantined: int = 0
    quarantine_dir: Path | None = None
    drift_level: str | None = None  # ok, warn, alert or too few rows; None without a reference
    drifted: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def record_scoring_run(
    spec: UseCaseSpec, model: tracking.ModelRef, manifest: dict[str, Any], state: StateDir
) -> str:
    """Every published batch is a run in the agency's scoring experiment, tagged with its batch
    id and model version, with the input's digest, the counts, the timings and the drift of the
    batch against the model's training reference. Everything comes from the manifest, so a
    batch whose run a crash lost is recorded the same way on the next run."""
    tracking.configure(state)
    drift = manifest.get("drift") or {}
    source = manifest["input"]
    record = tracking.RunRecord(
        run_name=f"score-{spec.model_name}",
        tags={
            **provenance_tags(spec),
            **model_tags(model),
            "agencyml.kind": "score",
            "agencyml.batch_id": manifest["batch_id"],
            "agencyml.input_sha256": source["sha256"],
            "agencyml.validation_result_id": manifest["validation"]["result_id"],
            "agencyml.drift_level": drift.get("level", "not measured"),
            **({"agencyml.drift_judged": drift["summary"]} if "summary" in drift else {}),
        },
        metrics={
            **{f"rows_{name}": float(count) for name, count in manifest["rows"].items()},
            **{f"timing.{name}": float(value) for name, value in manifest["timings"].items()},
            **drift.get("metrics", {}),
        },
        documents={
            "manifest.json": manifest,
            "validation/scoring_batch.json": manifest["validation"],
        },
        artifact_dirs={"validation/data_docs": Path(manifest["validation"]["data_docs"])},
        files=[
            tracking.FileInput(
                path=source["path"],
                name=f"{spec.agency}/{spec.name} batch",
                digest=source["sha256"],
                context="scoring",
            )
        ],
    )
    return tracking.log_run(record, tracking.use_experiment(spec.agency, state, SCORING))


def scoring_run_of(batch_id: str, state: StateDir) -> str | None:
    """The id of the finished scoring run of a published batch, if it was recorded."""
    tracking.configure(state)
    return tracking.find_run(scoring_run_tags(batch_id))


def record_scoring_once(
    spec: UseCaseSpec, model: tracking.ModelRef, manifest: dict[str, Any], state: StateDir
) -> str:
    """The published batch's one finished scoring run: the recorded one, else a new one. Call
    it under the batch's lock: a run of the batch still RUNNING then belongs to a process
    killed while recording, and is closed as KILLED first."""
    tracking.configure(state)
    tags = scoring_run_tags(manifest["batch_id"])
    tracking.close_unfinished_runs(tags)
    return tracking.find_run(tags) or record_scoring_run(spec, model, manifest, state)


def scoring_run_tags(batch_id: str) -> dict[str, str]:
    return {"agencyml.batch_id": batch_id, "agencyml.kind": "score"}


def model_tags(model: tracking.ModelRef) -> dict[str, str]:
    return {
        "agencyml.model_name": model.name,
        "agencyml.model_version": model.version,
        "agencyml.model_run_id": model.run_id,
    }


@dataclass(frozen=True)
class EvaluateResult:
    model_name: str
    model_version: str
    run_id: str
    metrics: dict[str, float]
    matches_training_run: bool
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def record_evaluation(
    spec: UseCaseSpec,
    model: tracking.LoadedModel,
    evaluation: Evaluation,
    split: DataSplit,
    state: StateDir,
) -> EvaluateResult:
    """Re-evaluating a registered version on the current holdout is a run of its own; it says
    whether the metrics equal those its training run logged (they must, for the same data)."""
    tracking.configure(state)
    recorded = tracking.version_facts(model.name, model.version, state).metrics
    matches = all(recorded.get(name) == value for name, value in evaluation.metrics.items())
    record = tracking.RunRecord(
        run_name=f"evaluate-{spec.model_name}-v{model.version}",
        tags={
            **provenance_tags(spec),
            **model_tags(model),
            "agencyml.kind": "evaluate",
            "agencyml.matches_training_run": str(matches).lower(),
            **training_data_lineage(spec, split.holdout, name="holdout").as_tags(),
        },
        params={f"rows.{name}": str(size) for name, size in split.sizes().items()},
        metrics=evaluation.metrics,
        figures=evaluation.figures,
    )
    run_id = tracking.log_run(record, tracking.use_experiment(spec.agency, state))
    return EvaluateResult(
        model.name, model.version, run_id, evaluation.metrics, matches, evaluation.curves
    )


def refresh_model_card(model_name: str, version: str, state: StateDir) -> dict[str, str]:
    """Render the version's model card from what the registry holds now and log it, Markdown
    and HTML, on its training run, and its summary as the version's description in the
    registry; run again whenever the version's status changes."""
    from pipelines.registry import model_card

    facts = model_card.collect_card_facts(model_name, version, state)
    run_id = tracking.version_facts(model_name, version, state).run_id
    texts = {
        "model_card/model_card.md": model_card.render_markdown(facts),
        "model_card/model_card.html": model_card.render_html(
            facts, tracking.run_plots(run_id, state)
        ),
    }
    tracking.log_texts(run_id, texts, state)
    tracking.set_version_description(
        model_name, version, model_card.render_description(facts), state
    )
    return texts
