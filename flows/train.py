"""Train one use case: validate, split, fit, evaluate, log and register."""

from __future__ import annotations

from prefect import flow

from flows import tasks
from pipelines.paths import state_dir
from pipelines.records import TrainResult


@flow(name="train", flow_run_name="train-{agency}-{use_case}", log_prints=False)
def train(agency: str, use_case: str) -> TrainResult:
    """Validate, featurize, train, evaluate and register one use case's model; the promotion
    gate then decides whether the new version replaces the champion."""
    spec = tasks.load_use_case(agency, use_case)
    data = tasks.load_training_data(spec)
    outcome = tasks.validate_training_data(spec, data, state_dir())
    split = tasks.split_data(data, spec.params)
    trained = tasks.fit_model(split, spec.params)
    evaluation = tasks.evaluate_model(trained.bundle, split.holdout, spec.params)
    baselines = tasks.evaluate_baselines(trained.bundle, split, spec.params)
    registered = tasks.register_model(
        spec, trained, evaluation, split, outcome, state_dir(), data, baselines
    )
    return tasks.promotion_gate(spec, registered, split, evaluation, state_dir())
