"""The pipeline steps as Prefect tasks: thin wrappers, retried only where retrying can help."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import requests
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from pipelines import config
from pipelines.data import sources, versioning
from pipelines.modeling import evaluation, training
from pipelines.modeling.evaluation import evaluate
from pipelines.registry import promotion, records, tracking
from pipelines.scoring import batches, engines
from pipelines.validation import quality


def is_transient(error: BaseException, depth: int = 0) -> bool:
    """An error worth retrying: I/O that may work next time, a tracking server that did not
    answer, a database another process holds locked. MLflow wraps the first cause it met,
    so the causes are followed too."""
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
        return True
    if getattr(error, "error_code", None) in TRANSIENT_CODES:  # MlflowException
        return True
    cause = error.__cause__ or error.__context__
    return depth < 5 and cause is not None and is_transient(cause, depth + 1)


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry condition: retry a failed task only when its error is transient."""
    try:
        state.result()
    except Exception as error:
        return is_transient(error)
    return False


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    BlockingIOError,
    InterruptedError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    httpx.TransportError,
)
TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}
RETRIES = 3


def step(fn: Callable[..., Any], name: str) -> Any:
    """A task for one logical step. Tables pass in memory, so no task hashes its inputs."""
    return task(fn, name=name, cache_policy=NO_CACHE)


def io_step(fn: Callable[..., Any], name: str, delay_seconds: float = 2) -> Any:
    """A step that reads files or calls the tracking server: retried on transient errors
    only, after delay_seconds, then twice and four times that (with jitter)."""
    return task(
        fn,
        name=name,
        cache_policy=NO_CACHE,
        retries=RETRIES,
        retry_delay_seconds=exponential_backoff(backoff_factor=delay_seconds),
        retry_jitter_factor=0.5,
        retry_condition_fn=retry_transient,
    )


load_use_case = step(config.load_use_case, "load-params")
ingest_dataset = io_step(sources.ingest, "ingest-dataset")
follow_state_remote = step(versioning.follow_state_remote, "dvc-remote-in-state-dir")
commit_with_dvc = io_step(versioning.commit_outputs, "dvc-commit-and-push")
load_training_data = io_step(sources.training_table, "load-training-data")
set_aside_unlabelled = io_step(quality.set_aside_unlabelled, "set-aside-unlabelled-rows")
validate_training_data = step(records.validate_training_data, "validate-data")
split_data = step(training.split_data, "split-data")
fit_model = step(engines.fit_model, "fit-model")
evaluate_model = step(evaluate, "evaluate-holdout")
evaluate_baselines = step(evaluation.baselines_for, "evaluate-baselines")
register_model = io_step(records.record_training_run, "log-and-register", delay_seconds=5)
promotion_gate = io_step(records.gate_new_version, "promotion-gate", delay_seconds=5)
find_model_version = io_step(promotion.find_champion, "find-model-version")
load_model_version = io_step(tracking.load_model, "load-model-version")
record_evaluation = io_step(records.record_evaluation, "record-evaluation", delay_seconds=5)
open_input = io_step(batches.open_input, "open-input")
batch_id_of = step(batches.batch_id_of, "batch-id")
published_manifest = io_step(batches.published_manifest, "find-published-batch")
score_stream = step(engines.score_to_staging, "read-validate-score")
check_time_left = step(batches.check_time_left, "check-time-left")
stage_quarantine = step(batches.stage_quarantine, "stage-quarantine")
publish_quarantine = step(batches.publish_quarantine, "publish-quarantine")
build_manifest = step(batches.build_manifest, "build-manifest")
publish_batch = step(batches.publish, "publish-batch")
champion_profile = io_step(records.champion_profile, "find-champion-profile")
check_batch = step(quality.check_batch, "check-batch")
store_input = io_step(batches.store_input, "store-input-with-dvc")
record_scoring = io_step(records.record_scoring_once, "record-scoring", delay_seconds=5)
