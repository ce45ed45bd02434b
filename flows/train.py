"""Train one use case: validate, split, fit, evaluate, log and register."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prefect import flow, get_run_logger

from flows import tasks
from pipelines.deadline import run_deadline
from pipelines.durable import file_lock
from pipelines.orchestration import alerts
from pipelines.paths import state_dir
from pipelines.registry.records import TrainResult


@flow(
    name="train",
    flow_run_name="train-{agency}-{use_case}",
    log_prints=False,
    on_completion=[alerts.on_trained_model],  # a version awaiting a person's approval
)
def train(agency: str, use_case: str) -> TrainResult:
    """Validate, featurize, train, evaluate and register one use case's model; the promotion
    gate then decides whether the new version replaces the champion. One training of a model
    runs at a time: a second one waits for the first. Past the use case's time limit the run
    stops before registering a version, or before the gate could change the champion."""
    spec = tasks.load_use_case(agency, use_case)
    deadline = run_deadline(spec, "train")
    with one_training_at_a_time(agency, use_case):
        data = tasks.load_training_data(spec)
        labelled, unlabelled = tasks.set_aside_unlabelled(spec, data, state_dir())
        outcome = tasks.validate_training_data(spec, labelled, state_dir())
        split = tasks.split_data(labelled, spec.params)
        trained = tasks.fit_model(split, spec.params)
        evaluation = tasks.evaluate_model(trained.bundle, split.holdout, spec.params)
        baselines = tasks.evaluate_baselines(trained.bundle, split, spec.params)
        deadline.check("before registering a version (trained and evaluated; none registered)")
        registered = tasks.register_model(
            spec, trained, evaluation, split, outcome, state_dir(), data, baselines, unlabelled
        )
        deadline.check(
            f"before the promotion gate (version {registered.model_version} is registered without "
            "an alias; the champion is unchanged)"
        )
        return tasks.promotion_gate(spec, registered, split, evaluation, state_dir())


@contextlib.contextmanager
def one_training_at_a_time(agency: str, use_case: str) -> Iterator[None]:
    """Hold the model's training lock (state dir), waiting, with a log line, if it is taken."""
    lock = state_dir().training_lock(agency, use_case)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(file_lock(lock, wait=False))
        except BlockingIOError:
            get_run_logger().info(
                "another training of %s.%s is running; waiting for it to finish", agency, use_case
            )
            held.enter_context(file_lock(lock))
        yield
