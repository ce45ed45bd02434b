"""Run the validation gate alone on a batch: the report, without scoring or publishing."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows import tasks
from pipelines.paths import state_dir
from pipelines.quality import BatchCheck


@flow(name="validate", flow_run_name="validate-{agency}-{use_case}")
def validate(agency: str, use_case: str, input: str) -> BatchCheck:
    """Check a batch against its use case's suite and report what would be rejected."""
    spec = tasks.load_use_case(agency, use_case)
    return tasks.check_batch(spec, Path(input).expanduser().resolve(), state_dir())
