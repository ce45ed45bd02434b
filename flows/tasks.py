"""The pipeline steps as Prefect tasks: thin wrappers, retried only where retrying can help."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipelines import (
    batches,
    config,
    evaluation,
    quality,
    records,
    sources,
    streaming,
    tracking,
    training,
    versioning,
)
from pipelines.evaluation import evaluate


def retry_on(*errors: type[BaseException]) -> Callable[..., bool]:
    """Retry a failed task only when its exception is one of `errors` (I/O, tracking server)."""

    def should_retry(task: Any, task_run: Any, state: Any) -> bool:
        try:
            state.result()
        except errors:
            return True
        except Exception:
            return False
        return False

    return should_retry


IO_ERRORS = (TimeoutError, ConnectionError, BlockingIOError, InterruptedError)


def step(fn: Callable[..., Any], name: str) -> Any:
    """A task for one logical step. Tables pass in memory, so no task hashes its inputs."""
    return task(fn, name=name, cache_policy=NO_CACHE)


def io_step(fn: Callable[..., Any], name: str, delay_seconds: float = 2) -> Any:
    """A step that reads files or calls the tracking server: retried on I/O errors only."""
    return task(
        fn,
        name=name,
        cache_policy=NO_CACHE,
        retries=2,
        retry_delay_seconds=delay_seconds,
        retry_condition_fn=retry_on(*IO_ERRORS),
    )


load_use_case = step(config.load_use_case, "load-params")
ingest_dataset = io_step(sources.ingest, "ingest-dataset")
follow_state_remote = step(versioning.follow_state_remote, "dvc-remote-in-state-dir")
commit_with_dvc = io_step(versioning.commit_outputs, "dvc-commit-and-push")
load_training_data = io_step(sources.training_table, "load-training-data")
validate_training_data = step(quality.validate_training_data, "validate-data")
split_data = step(training.split_data, "split-data")
fit_model = step(training.fit_model, "fit-model")
evaluate_model = step(evaluate, "evaluate-holdout")
evaluate_baselines = step(evaluation.baselines_for, "evaluate-baselines")
register_model = io_step(records.record_training_run, "log-and-register", delay_seconds=5)
promotion_gate = io_step(records.gate_new_version, "promotion-gate", delay_seconds=5)
load_champion = io_step(tracking.load_model, "load-champion")
load_model_version = io_step(tracking.load_model, "load-model-version")
record_evaluation = io_step(records.record_evaluation, "record-evaluation", delay_seconds=5)
open_input = io_step(batches.open_input, "open-input")
batch_id_of = step(batches.batch_id_of, "batch-id")
published_manifest = io_step(batches.published_manifest, "find-published-batch")
score_stream = step(streaming.score_to_staging, "read-validate-score")
publish_quarantine = step(batches.publish_quarantine, "publish-quarantine")
build_manifest = step(batches.build_manifest, "build-manifest")
publish_batch = step(batches.publish, "publish-batch")
check_batch = step(quality.check_batch, "check-batch")
store_input = io_step(batches.store_input, "store-input-with-dvc")
record_scoring = io_step(records.record_scoring_run, "record-scoring", delay_seconds=5)
scoring_run_of = io_step(records.scoring_run_of, "find-scoring-run", delay_seconds=5)
