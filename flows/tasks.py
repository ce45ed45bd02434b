"""The pipeline steps as Prefect tasks: thin wrappers, retried only where retrying can help."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from pipelines import batches, config, quality, records, sources, tracking, training
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
# Data tables are passed in memory, so no task hashes its inputs for caching.
step = {"cache_policy": NO_CACHE}

load_use_case = task(config.load_use_case, name="load-params", **step)
load_training_data = task(
    sources.load_source,
    name="load-training-data",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_on(*IO_ERRORS),
    **step,
)
validate_training_data = task(quality.validate_training_data, name="validate-data", **step)
split_data = task(training.split_data, name="split-data", **step)
fit_model = task(training.fit_model, name="fit-model", **step)
evaluate_model = task(evaluate, name="evaluate-holdout", **step)
register_model = task(
    records.record_training_run,
    name="log-and-register",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_on(*IO_ERRORS),
    **step,
)
load_champion = task(
    tracking.load_model,
    name="load-champion",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_on(*IO_ERRORS),
    **step,
)
read_batch = task(
    quality.read_batch,
    name="read-batch",
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_on(*IO_ERRORS),
    **step,
)
batch_id_of = task(batches.batch_id_of, name="batch-id", **step)
check_batch = task(quality.check_batch, name="check-batch", **step)
gate_batch = task(quality.gate_batch, name="validate-batch", **step)
quarantine_rows = task(quality.quarantine_failed_rows, name="quarantine-rows", **step)
score_batch = task(batches.score_batch, name="score-batch", **step)
build_manifest = task(batches.build_manifest, name="build-manifest", **step)
publish_batch = task(batches.publish, name="publish-batch", **step)
record_scoring = task(
    records.record_scoring_run,
    name="record-scoring",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=retry_on(*IO_ERRORS),
    **step,
)
