"""The validation gate end to end: check, decide, quarantine, and leave evidence of a rejection
through the recorder the caller hands in (the registry's FAILED runs)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from pipelines.config import ROW_ID, UseCase, UseCaseSpec
from pipelines.data import batch_columns, storage
from pipelines.data.columns import RowFaults, conform_columns, conform_rows, text_column
from pipelines.data.row_ids import ROW_NUMBER, RowIds
from pipelines.paths import StateDir
from pipelines.validation.expectations import column_kinds, scoring_checks, training_checks
from pipelines.validation.gate import QUARANTINE_REASON, BatchRejectedError, gate_report, judge
from pipelines.validation.gx import (
    DataValidationError,
    ValidationOutcome,
    run_checks_in_chunks,
)


class FailureRecorder(Protocol):
    """Records rejected data as evidence (a FAILED run) and returns the record's id."""

    def __call__(
        self,
        spec: UseCaseSpec,
        outcome: ValidationOutcome,
        state: StateDir,
        *,
        kind: str,
        tags: dict[str, str] | None = None,
        documents: dict[str, dict[str, Any]] | None = None,
    ) -> str: ...


def validate_stage(
    spec: UseCaseSpec,
    chunks: Iterable[pd.DataFrame],
    stage: str,
    profile: dict[str, Any],
    state: StateDir,
) -> ValidationOutcome:
    """Run a use case's training or scoring suite over conformed chunks of a table."""
    now = datetime.now(UTC)
    checks = (
        training_checks(spec.params, now)
        if stage == "training"
        else scoring_checks(spec.params, profile, now)
    )
    return run_checks_in_chunks(
        chunks, checks, agency=spec.agency, suite_name=f"{spec.name}-{stage}", state=state
    )


@dataclass(frozen=True)
class UnlabelledRows:
    """Training rows without a label, and what was done with them (params: target_missing)."""

    rows: int
    policy: str
    quarantine_dir: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "policy": self.policy, "quarantine": self.quarantine_dir}


def set_aside_unlabelled(
    spec: UseCaseSpec, frame: pd.DataFrame, state: StateDir
) -> tuple[pd.DataFrame, UnlabelledRows]:
    """The rows with a label, and the rows without one set aside: kept in the quarantine
    (target_missing: quarantine), dropped, or left in for the training suite to refuse (fail)."""
    target, policy = spec.params.target, spec.params.target_missing
    if policy == "fail" or target not in frame.columns:
        return frame, UnlabelledRows(0, policy)
    missing = text_column(frame[target]).isna().to_numpy()
    if not missing.any():
        return frame, UnlabelledRows(0, policy)
    unlabelled = frame[missing]
    labelled = frame[~missing]
    folder = None
    if policy == "quarantine":
        digest = hashlib.sha256(
            pd.util.hash_pandas_object(unlabelled, index=True).to_numpy().tobytes()
        ).hexdigest()[:20]
        report = {
            "reason": f"no label in '{target}'",
            "rows": len(unlabelled),
            "policy": "target_missing: quarantine (the rows are kept here, not trained on)",
        }
        folder = str(
            storage.quarantine_rows(
                unlabelled.reset_index(names="row_number"),
                report,
                state.quarantine(spec.agency, spec.name) / f"training-unlabelled-{digest}",
            )
        )
    return labelled, UnlabelledRows(int(missing.sum()), policy, folder)


def validate_training_data(
    spec: UseCaseSpec, frame: pd.DataFrame, state: StateDir, *, record_failure: FailureRecorder
) -> ValidationOutcome:
    """Training data must pass its whole suite; if not, a FAILED run shows why, no model."""
    kinds = {**column_kinds(spec.params), spec.params.target: "text"}
    conformed, cast_problems = conform_columns(frame, kinds, spec.params.features.date_format_of())
    outcome = validate_stage(spec, [conformed], "training", {}, state)
    problems = [
        *cast_problems.values(),
        *(
            result.explain()
            for result in outcome.failures
            if not (result.check.kind == "column_type" and result.check.column in cast_problems)
        ),
    ]
    problems += outcome.missing_columns_note()
    untrainable = target_problems(frame, spec.params)
    if problems or untrainable:
        run_id = record_failure(spec, outcome, state, kind="train")
        # a target that cannot train the use case's task is exit 5; anything else in the data, 4
        error = DataValidationError if problems else UntrainableTargetError
        raise error(
            f"the training data of {spec.model_name} (MLflow run {run_id}; no model registered)",
            [*problems, *untrainable],
        )
    return outcome


class UntrainableTargetError(DataValidationError):
    """The target cannot train the use case's task: one class only, or a task that does not
    fit its classes."""


def target_problems(frame: pd.DataFrame, params: UseCase) -> list[str]:
    """A model needs two classes; a binary one exactly two, with its positive class."""
    if params.target not in frame.columns:
        return []
    values = sorted(set(text_column(frame[params.target]).dropna()))
    shown = ", ".join(f"'{value}'" for value in values[:8]) + (" ..." if len(values) > 8 else "")
    if len(values) < 2:
        return [
            f"'{params.target}' holds {len(values)} class(es) ({shown or 'no labels'}); a model "
            "needs at least two. Check the target column and the rows the dataset keeps"
        ]
    if params.task == "binary" and len(values) > 2:
        return [
            f"'{params.target}' has {len(values)} classes ({shown}), but the use case's task is "
            "binary: to tell them apart, change the task (task: multiclass, and remove "
            "positive_class); for one class against the rest, make the target two-valued first"
        ]
    if params.task == "binary" and str(params.positive_class) not in values:
        return [
            f"expected positive_class '{params.positive_class}' in '{params.target}', found "
            f"{shown}: set positive_class to the value that counts as positive"
        ]
    return []


def reject_unreadable(
    spec: UseCaseSpec, path: Path, error: storage.InputFileError, state: StateDir
) -> Exception:
    """A file that exists but cannot be read is quarantined as it is: the error to raise. A
    file that is not there is only reported."""
    if not path.is_file():
        return error
    sha256 = storage.file_sha256(path)
    report = {"input": {"path": str(path), "sha256": sha256}, "rejected": [str(error)]}
    folder = storage.quarantine_input(
        path, report, state.quarantine(spec.agency, spec.name) / f"unreadable-{sha256[:20]}"
    )
    return BatchRejectedError("the batch file", [str(error)], str(folder))


def reject_batch(
    spec: UseCaseSpec,
    path: Path,
    sha256: str,
    batch_id: str,
    outcome: ValidationOutcome,
    problems: list[str],
    state: StateDir,
    *,
    record_failure: FailureRecorder,
) -> BatchRejectedError:
    """A batch the gate rejects as a whole: its input and report go to quarantine and a FAILED
    run records why. Returns the error to raise."""
    report = {
        **gate_report(outcome, None),
        "batch_id": batch_id,
        "input": {"path": str(path), "sha256": sha256},
        "rejected": problems,
    }
    folder = storage.quarantine_input(
        path, report, state.quarantine(spec.agency, spec.name) / batch_id
    )
    record_failure(
        spec,
        outcome,
        state,
        kind="score",
        tags={"agencyml.batch_id": batch_id},
        documents={"quarantine/report.json": report},
    )
    return BatchRejectedError(f"the batch {Path(path).name}", problems, str(folder))


@dataclass(frozen=True)
class BatchCheck:
    """The gate's verdict on a batch, without scoring, publishing or quarantining it."""

    accepted: bool
    problems: list[str]
    counts: dict[str, int]
    outcome: ValidationOutcome | None
    against: str  # what the batch was checked against


RESERVED_COLUMNS = (QUARANTINE_REASON, ROW_ID, ROW_NUMBER)  # names agencyml writes itself


def columns_read(params: UseCase) -> set[str] | None:
    """The columns scoring parses: the id and the features; every column when the rows have no
    id, since a row's made id is a hash of all its values."""
    return None if params.id_column is None else set(column_kinds(params))


def read_input_header(spec: UseCaseSpec, path: Path) -> batch_columns.TableHeader:
    """A batch's header, refused (InputFileError) when it is too wide, spells a declared column
    another way, or holds a name agencyml writes itself among the columns scoring reads."""
    params = spec.params
    header = batch_columns.read_header(path, params.batch_format)
    batch_columns.check_names(header, column_kinds(params))
    read = columns_read(params)
    clashing = [
        name for name in RESERVED_COLUMNS if name in header.names and (read is None or name in read)
    ]
    if clashing:
        raise storage.InputFileError(
            f"the file {path.name} has a column named '{clashing[0]}', a name agencyml writes "
            "itself: rename or remove that column"
        )
    return header


def check_batch(
    spec: UseCaseSpec,
    path: Path,
    state: StateDir,
    chunk_rows: int = 250_000,
    *,
    profile: dict[str, Any],
    against: str,
) -> BatchCheck:
    """Run the gate alone, chunk by chunk so batches larger than memory can be checked.

    `profile` is the champion's training profile ({} without one); `against` says which, for
    the report."""
    path = Path(path)
    kinds = column_kinds(spec.params)
    cast_problems: dict[str, str] = {}
    row_faults: RowFaults = {}
    rows_read = 0

    row_ids = RowIds({spec.params.target}) if spec.params.id_column is None else None

    def conformed_chunks() -> Iterator[pd.DataFrame]:
        nonlocal rows_read
        storage.read_table_head(path, spec.params.batch_format)  # not found: says so
        header = read_input_header(spec, path)
        read = columns_read(spec.params)
        for batch in batch_columns.iter_columns(header, chunk_rows, spec.params.batch_format, read):
            chunk = batch.to_pandas()
            chunk = row_ids.of(chunk) if row_ids is not None else chunk
            conformed, problems, faults = conform_rows(
                chunk, kinds, spec.params.features.date_format_of()
            )
            row_faults.update((rows_read + row, found) for row, found in faults.items())
            rows_read += len(chunk)
            for column, problem in problems.items():
                cast_problems.setdefault(column, problem)
            yield conformed

    try:
        outcome = validate_stage(spec, conformed_chunks(), "scoring", profile, state)
    except storage.InputFileError as error:
        if not path.is_file():
            raise
        return BatchCheck(False, [str(error)], {}, None, "the file itself")
    limit = spec.params.expectations.max_quarantine_fraction
    try:
        quarantined = len(judge(outcome, cast_problems, limit, row_faults))
    except BatchRejectedError as rejection:
        return BatchCheck(False, rejection.problems, {"in": outcome.rows}, outcome, against)
    counts = {"in": outcome.rows, "scored": outcome.rows - quarantined, "quarantined": quarantined}
    return BatchCheck(True, [], counts, outcome, against)
