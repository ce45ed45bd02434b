"""Run the validation gate alone on a batch: the report, without scoring or publishing."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows import tasks
from pipelines.paths import state_dir
from pipelines.validation.gx import ValidationOutcome
from pipelines.validation.quality import BatchCheck


@flow(name="validate", flow_run_name="validate-{agency}-{use_case}")
def validate(agency: str, use_case: str, input: str) -> BatchCheck:
    """Check a batch against its use case's suite and report what would be rejected."""
    spec = tasks.load_use_case(agency, use_case)
    profile, against = tasks.champion_profile(spec, state_dir())
    path = Path(input).expanduser().resolve()
    return tasks.check_batch(spec, path, state_dir(), profile=profile, against=against)


@flow(name="validate-training-data", flow_run_name="validate-training-{agency}-{use_case}")
def validate_training_data(agency: str, use_case: str) -> ValidationOutcome:
    """Check the use case's ingested training data against its training suite; raises
    DataValidationError (and logs a FAILED run) when it does not pass."""
    spec = tasks.load_use_case(agency, use_case)
    data = tasks.load_training_data(spec)
    labelled, _ = tasks.set_aside_unlabelled(spec, data, state_dir())
    return tasks.validate_training_data(spec, labelled, state_dir())
