"""Evaluate a registered model version on its use case's current holdout."""

from __future__ import annotations

from prefect import flow

from flows import tasks
from pipelines.paths import state_dir
from pipelines.registry.records import EvaluateResult


@flow(name="evaluate", flow_run_name="evaluate-{agency}-{use_case}")
def evaluate(agency: str, use_case: str, version: str | None = None) -> EvaluateResult:
    """Re-split the ingested data as training did, then measure the version (default: champion)
    on the holdout; the run records whether it matches the metrics training logged."""
    spec = tasks.load_use_case(agency, use_case)
    data = tasks.load_training_data(spec)
    split = tasks.split_data(data, spec.params)
    model = tasks.load_model_version(spec.model_name, state_dir(), version=version)
    evaluation = tasks.evaluate_model(model.bundle, split.holdout, spec.params)
    return tasks.record_evaluation(spec, model, evaluation, split, state_dir())
