"""Reading, scoring and publishing one batch: the steps the score flow strings together."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd

from pipelines.config import UseCaseSpec
from pipelines.data import integrity, storage, versioning
from pipelines.data.sources import training_table
from pipelines.deadline import Deadline, TimeLimitError
from pipelines.durable import file_lock, fsync_dir
from pipelines.modeling.drift import DriftResult, drift_html, plot_drift
from pipelines.modeling.training import split_data
from pipelines.paths import StateDir, project_root
from pipelines.registry import tracking
from pipelines.registry.records import ScoreResult
from pipelines.scoring.batch_ids import batch_id_for
from pipelines.scoring.streaming import StagedBatch
from pipelines.validation import quality
from pipelines.validation.gate import gate_report


def open_input(spec: UseCaseSpec, path: Path, state: StateDir) -> str:
    """Check that the batch can be read at all and return its sha256 (read block by block).
    A file that is there but cannot be read is quarantined and rejected, before any model."""
    try:
        storage.read_table_head(path, spec.params.batch_format)
    except storage.InputFileError as error:
        raise quality.reject_unreadable(spec, Path(path), error, state) from error
    return storage.file_sha256(path)


def batch_id_of(sha256: str, model: tracking.ModelRef) -> str:
    """The same input scored by the same model version always gets the same batch id."""
    return batch_id_for(sha256, model.name, model.version)


class OutputDiskError(RuntimeError):
    """The state directory's disk cannot take the batch: full, over quota, read-only, or not
    writable by this user. Nothing was published and the staged files were removed."""


DISK_FAULTS = {  # what the disk did, and what to do about it
    errno.ENOSPC: ("the disk is full", "make room there"),
    errno.EDQUOT: ("the disk quota is used up", "make room there or raise the quota"),
    errno.EROFS: ("the disk is read-only", "mount it writable"),
    errno.EACCES: ("this user may not write there", "give this user write access"),
    errno.EPERM: ("this user may not write there", "give this user write access"),
}


def disk_fault(error: BaseException, folder: Path, published: bool) -> OutputDiskError | None:
    """A write the disk refused (the error or one it wraps), as one sentence naming the path
    and what to do; None for any other error."""
    done = (
        "the batch was published but not all of its records were written"
        if published
        else "nothing was published and the staged files were removed"
    )
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, OSError) and error.errno in DISK_FAULTS:
            where = outside_staging(Path(error.filename)) if error.filename else folder
            fault, remedy = DISK_FAULTS[error.errno]
            return OutputDiskError(
                f"cannot write under {where}: {fault} ({os.strerror(error.errno)}); {done}, so "
                f"{remedy} (or point AGENCYML_HOME at another disk) and score the file again."
            )
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def outside_staging(path: Path) -> Path:
    """The folder a user can look at: above a hidden staging or pending folder, which is gone
    by the time the message is read."""
    for index, part in enumerate(path.parts):
        if part.endswith((storage.STAGING_SUFFIX, ".pending")):
            return Path(*path.parts[:index])
    return path


@contextlib.contextmanager
def batch_lock(spec: UseCaseSpec, batch_id: str, state: StateDir) -> Iterator[None]:
    """One run at a time per batch id. On the way in and out, remove what a killed run of the
    same batch left in staging (hidden folders), so a crash leaves nothing behind for long.
    A disk that refuses the batch's files (full, read-only) raises OutputDiskError."""
    output = state.output_dir(spec.agency, spec.name) / batch_id
    quarantine = state.quarantine(spec.agency, spec.name) / batch_id
    try:
        with file_lock(state.batch_lock(spec.agency, spec.name, batch_id)):
            remove_unpublished(output, quarantine)
            try:
                yield
            finally:
                remove_unpublished(output, quarantine)
    except OSError as error:
        if isinstance(error, storage.InputFileError):
            raise  # the input's fault, not the disk's
        fault = disk_fault(error, output.parent, (output / "manifest.json").is_file())
        if fault is None:
            raise
        raise fault from error


def remove_unpublished(output: Path, quarantine: Path) -> None:
    """Staging folders of a run that died, and its pending quarantine if its batch was never
    published (a published batch's pending quarantine is published by the next run)."""
    storage.remove_stale_staging(output)
    storage.remove_stale_staging(quarantine)
    if not (output / "manifest.json").is_file():
        shutil.rmtree(pending_quarantine(quarantine), ignore_errors=True)


def published_manifest(spec: UseCaseSpec, batch_id: str, state: StateDir) -> dict[str, Any] | None:
    """The manifest of the batch if it is already published, else None; DamagedBatchError if
    its files are no longer what the manifest records."""
    manifest = state.output_dir(spec.agency, spec.name) / batch_id / "manifest.json"
    if not manifest.is_file():
        return None
    published = storage.read_json_file(manifest)
    damaged = integrity.damage(manifest.parent, published)
    if damaged:
        message = integrity.damaged_batch_message(batch_id, manifest.parent, damaged)
        raise integrity.DamagedBatchError(message)
    return published


def check_time_left(staged: StagedBatch, deadline: Deadline) -> None:
    """The last check before anything of the batch is published: past the deadline, the
    staged batch and its quarantined rows are removed and the run stops."""
    try:
        deadline.check(
            f"with all {staged.counts['in']:,} rows scored, just before publishing; the staged "
            "batch was removed and nothing was published"
        )
    except TimeLimitError:
        staged.discard()
        raise


def pending_quarantine(target: Path) -> Path:
    """Where a batch's quarantined rows wait, complete, until the batch itself is published."""
    return target.with_name(f".{target.name}.pending")


def stage_quarantine(spec: UseCaseSpec, staged: StagedBatch) -> Path | None:
    """Complete the rows the gate set aside with their report, in a hidden folder beside
    their place; returns that place, or None if there were none. They are published after
    the batch (publish_quarantine), so no reader sees a quarantine of a batch that is not."""
    stage = staged.quarantine
    if stage.staged is None:
        return None
    report = {
        **gate_report(staged.outcome, staged.counts),
        "batch_id": staged.batch_id,
        "input": {"path": str(staged.input_path), "sha256": staged.input_sha256},
        "file_sha256": {
            path.name: storage.file_sha256(path) for path in sorted(stage.staged.path.iterdir())
        },
    }
    pending = pending_quarantine(stage.target)
    shutil.rmtree(pending, ignore_errors=True)  # a dead run's, whose batch was never published
    stage.staged.target = pending  # committed (fsynced, report last) under the hidden name
    stage.staged.commit("report.json", lambda path: storage.write_json_file(path, report))
    return stage.target


def publish_quarantine(spec: UseCaseSpec, manifest: dict[str, Any], state: StateDir) -> None:
    """Rename a published batch's pending quarantine into place. Run after every publish and
    by every rerun, so a crash between the batch and its quarantine is repaired."""
    if not manifest.get("quarantine"):
        return
    target = state.quarantine(spec.agency, spec.name) / manifest["batch_id"]
    pending = pending_quarantine(target)
    if not pending.is_dir():
        return
    if (target / "report.json").is_file():
        shutil.rmtree(pending, ignore_errors=True)  # published already
        return
    os.rename(pending, target)
    fsync_dir(target.parent)


def drift_files(drift: DriftResult | None, model: tracking.LoadedModel) -> dict[str, Any]:
    """The drift report as files for the batch folder: a chart and an HTML page around it."""
    reference = model.bundle.drift_reference
    if drift is None or reference is None:
        return {}
    figure = plot_drift(drift)
    try:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(figure)
    png = buffer.getvalue()
    page = drift_html(drift, reference, png)
    return {
        "drift.png": lambda path: path.write_bytes(png),
        "drift.html": lambda path: path.write_text(page, encoding="utf-8"),
    }


def store_input(spec: UseCaseSpec, path: Path, sha256: str, store: bool) -> dict[str, Any]:
    """Optionally keep the exact input with DVC, so an auditor can fetch what was scored."""
    if not store:
        return {}
    target = (
        f"data/scored-inputs/{spec.agency}/{spec.name}/{sha256[:20]}{storage.table_suffix(path)}"
    )
    stored = versioning.store_with_dvc(path, project_root(), target)
    return {"dvc_path": stored.path, "dvc_md5": stored.md5, "dvc_remote": stored.remote}


def build_manifest(
    spec: UseCaseSpec,
    staged: StagedBatch,
    model: tracking.LoadedModel,
    *,
    quarantine_dir: Path | None,
    stored_input: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What was scored, by which model, how every input row was accounted for, and how long
    each step took."""
    drift, outcome = staged.drift, staged.outcome
    path = staged.input_path
    timings = dict(staged.timings)
    seconds = timings.get("total_seconds") or 0.0
    timings["rows_per_second"] = round(staged.counts["in"] / seconds) if seconds else 0
    return {
        "batch_id": staged.batch_id,
        "agency": spec.agency,
        "use_case": spec.name,
        "model": {
            "name": model.name,
            "version": model.version,
            "run_id": model.run_id,
            "uri": model.uri,
        },
        "input": {
            "path": str(path),
            "sha256": staged.input_sha256,
            "bytes": path.stat().st_size,
            "format": storage.sniffed_format(path, spec.params.batch_format),
            **(stored_input or {}),
        },
        "rows": staged.counts,
        "validation": {
            "result_id": outcome.result_id,
            "suite": outcome.suite_name,
            "success": outcome.success,
            "failed_checks": [r.explain() for r in outcome.failures],
            "checks": outcome.as_dict()["checks"],
            "data_docs": str(outcome.data_docs),
        },
        "quarantine": str(quarantine_dir) if quarantine_dir else None,
        "scores": staged.summary,
        "drift": {**drift.as_dict(), "metrics": drift.metrics()} if drift is not None else None,
        "scoring": {
            **staged.scoring,
            "chunk_rows": staged.options.chunk_rows,
            "part_rows": staged.options.part_rows,
        },
        "timings": timings,
        "created_at": datetime.now(UTC).isoformat(),
        "files": [*staged.files, *(["drift.html", "drift.png"] if drift is not None else [])],
    }


def publish(
    staged: StagedBatch, manifest: dict[str, Any], model: tracking.LoadedModel
) -> dict[str, Any]:
    """Add the drift report and every file's sha256 to the manifest, then rename the staging
    folder into place with the manifest written last: the batch appears whole or not at all.
    Returns the manifest as published."""
    for name, write in drift_files(staged.drift, model).items():
        write(staged.staged.path / name)
    hashes = {name: storage.file_sha256(staged.staged.path / name) for name in manifest["files"]}
    published = {**manifest, "file_sha256": hashes}
    staged.staged.commit("manifest.json", lambda path: storage.write_json_file(path, published))
    return published


def score_result(
    manifest: dict[str, Any], state: StateDir, newly_published: bool, run_id: str | None
) -> ScoreResult:
    """What the score command reports, from the batch's manifest."""
    drift = manifest.get("drift") or {}
    quarantine = manifest.get("quarantine")
    return ScoreResult(
        batch_id=manifest["batch_id"],
        output_dir=state.output_dir(manifest["agency"], manifest["use_case"])
        / manifest["batch_id"],
        rows=manifest["rows"]["scored"],
        model_name=manifest["model"]["name"],
        model_version=manifest["model"]["version"],
        newly_published=newly_published,
        run_id=run_id,
        decisions=(manifest.get("scores") or {}).get("decisions", {}),
        rows_quarantined=manifest["rows"]["quarantined"],
        quarantine_dir=Path(quarantine) if quarantine else None,
        drift_level=drift.get("level"),
        drifted=list(drift.get("drifted", [])),
        timings=manifest.get("timings", {}),
    )


SAMPLE_FORMATS = (".parquet", ".csv")


class SampleError(ValueError):
    """A sample batch cannot be written as asked."""


def holdout_batch(spec: UseCaseSpec, rows: int | None = None, seed: int = 0) -> pd.DataFrame:
    """The use case's holdout rows without the target: rows the model never trained on, in
    the columns a batch brings. `rows` draws that many (seeded), in holdout order."""
    split = split_data(training_table(spec), spec.params)
    batch = split.holdout[spec.params.required_columns(with_target=False)]
    if rows is not None and rows < len(batch):
        batch = batch.sample(n=rows, random_state=seed).sort_index()
    return batch


def write_sample_batch(spec: UseCaseSpec, path: Path, rows: int | None = None) -> tuple[Path, int]:
    """Write holdout rows without the target as a batch to try scoring on (parquet or CSV,
    by the file's suffix); returns the file and its row count."""
    suffix = storage.table_suffix(Path(path)).lower()
    if suffix not in SAMPLE_FORMATS:
        raise SampleError(
            f"cannot write a sample batch as '{suffix or Path(path).name}': name the file "
            f"{' or '.join('*' + s for s in SAMPLE_FORMATS)}"
        )
    batch = holdout_batch(spec, rows)
    if suffix != ".csv":
        return storage.write_parquet(batch, path), len(batch)
    # written the way the use case reads its batches, or scoring would read it otherwise
    # (a cp1252 batch_format would turn UTF-8 'ä' into 'Ã¤', a category the model never saw)
    batch_format = spec.params.batch_format
    separator = batch_format.separator
    written = storage.write_csv(
        batch,
        path,
        encoding=batch_format.encoding or "utf-8",
        separator=separator if separator not in (None, "whitespace") else ",",
    )
    return written, len(batch)


def write_holdout_batch(spec: UseCaseSpec, state: StateDir) -> Path:
    """Write the use case's holdout rows, target removed, as a sample batch for the demo (not
    into the inbox, which scores what lands there)."""
    path = state.samples_dir / spec.agency / spec.name / "holdout-batch.parquet"
    return storage.write_parquet(holdout_batch(spec), path)
