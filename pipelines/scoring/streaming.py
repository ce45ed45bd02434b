"""Scoring a batch as a stream: each chunk is read, validated, scored and written in turn, so
memory follows the chunk size and not the batch. While one chunk is scored and written (on a
worker thread: LightGBM and parquet release the GIL), the next is read and validated; at most
one chunk is in flight. Nothing is visible until the whole batch is published (see
pipelines.scoring.batches)."""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.config import CapacityPolicy, UseCaseSpec
from pipelines.data import batch_columns, storage
from pipelines.data.columns import FeatureError, RowFaults, conform_rows
from pipelines.data.row_ids import ROW_NUMBER, RowIds
from pipelines.deadline import Deadline
from pipelines.modeling.decisions import apply_policy
from pipelines.modeling.drift import DriftAccumulator, DriftResult, DriftThresholds
from pipelines.modeling.model import ModelBundle
from pipelines.paths import StateDir
from pipelines.registry import records, tracking
from pipelines.validation import quality
from pipelines.validation.expectations import column_kinds, scoring_checks
from pipelines.validation.gate import QUARANTINE_REASON, BatchRejectedError, judge
from pipelines.validation.gx import BatchValidation, ValidationOutcome

SCORE_BINS = 100_000  # score quantiles in the manifest are within 1e-5 of np.quantile


class InputChangedError(RuntimeError):
    """The input file gave other rows to score than the gate validated: it changed between
    the two passes (still being written, or replaced)."""


class ScoringMismatchError(RuntimeError):
    """The native fast path and the logged pyfunc disagree on a row: a broken model or code."""


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class StreamOptions:
    chunk_rows: int = 250_000  # rows read, validated and scored at a time
    part_rows: int = 1_000_000  # rows per parquet file of a large batch
    threads: int = field(default_factory=available_cores)
    # score and write a chunk on a worker thread while the next is read and validated
    overlap: bool = True

    def __post_init__(self) -> None:
        if self.chunk_rows < 1 or self.part_rows < 1 or self.threads < 1:
            raise ValueError(
                f"chunk_rows, part_rows and threads must be at least 1, got {self.chunk_rows}, "
                f"{self.part_rows} and {self.threads}"
            )


def model_scores(bundle: ModelBundle, conformed: pd.DataFrame, threads: int) -> np.ndarray:
    """The bundle's transform, booster and calibrator on conformed rows: the one scoring code
    path, run in this process (NativeScorer) or on a Dask worker (DaskScorer)."""
    raw = np.asarray(
        bundle.booster.predict(bundle.transform.transform(conformed), num_threads=threads)
    )
    return raw if bundle.calibrator is None else bundle.calibrator.apply(raw)


class Scorer(Protocol):
    """What scores a chunk: this process (NativeScorer) or a cluster's workers (the Dask
    engine's DaskScorer, handed in by pipelines.scoring.engines)."""

    def scores(self, conformed: pd.DataFrame) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


class NativeScorer:
    """The model's own transform and LightGBM booster on float32 features with every core.

    The logged pyfunc still guards the door: it scores the first row of every chunk, so its
    signature checks the chunk's schema, and its score must equal the booster's."""

    def __init__(self, model: tracking.LoadedModel, threads: int) -> None:
        self.model = model
        self.bundle = model.bundle
        self.threads = threads

    def scores(self, conformed: pd.DataFrame) -> np.ndarray:
        """(n,) probabilities for binary, (n, classes) for multiclass, calibrated if asked."""
        scores = self.predict(conformed)
        if len(conformed):
            self.check_against_pyfunc(conformed, scores)
        return scores

    def predict(self, conformed: pd.DataFrame) -> np.ndarray:
        return model_scores(self.bundle, conformed, self.threads)

    def describe(self) -> dict[str, Any]:
        """What scored the batch, for the manifest."""
        return {
            "engine": f"LightGBM booster (native), {self.threads} thread(s)",
            "execution": {"engine": "local"},
        }

    def check_against_pyfunc(self, conformed: pd.DataFrame, scores: np.ndarray) -> None:
        checked = tracking.predict(self.model, conformed.iloc[:1])  # BatchSchemaError if off
        expected = checked.to_numpy(dtype=float)[0]
        got = np.atleast_1d(scores[0])
        if not np.allclose(expected, got, rtol=1e-9, atol=1e-12):
            raise ScoringMismatchError(
                f"{self.model.name} v{self.model.version}: the booster scored the first row of a "
                f"chunk {got.tolist()} but the logged model scored it {expected.tolist()}"
            )


class ScoreSummary:
    """Decision and label counts and the score spread, counted chunk by chunk."""

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle
        self.decisions: Counter[str] = Counter()
        self.labels: Counter[str] = Counter()
        self.histogram = np.zeros(SCORE_BINS, dtype=np.int64)
        self.rows = 0
        self.total = 0.0
        self.low = np.inf
        self.high = -np.inf

    def update(self, scores: np.ndarray, labels: np.ndarray, decisions: np.ndarray) -> None:
        self.decisions.update(value_counts(decisions))
        self.labels.update(value_counts(labels))
        if self.bundle.task != "binary" or not len(scores):
            self.rows += len(scores)
            return
        bins = np.minimum((scores * SCORE_BINS).astype(np.int64), SCORE_BINS - 1)
        self.histogram += np.bincount(np.clip(bins, 0, None), minlength=SCORE_BINS)
        self.rows += len(scores)
        self.total += float(scores.sum())
        self.low, self.high = (
            min(self.low, float(scores.min())),
            max(self.high, float(scores.max())),
        )

    def recount_decisions(self, flagged: int, policy: CapacityPolicy) -> None:
        """A capacity policy flags its top k only once every score is known."""
        classes = self.bundle.classes
        self.decisions = Counter(
            {policy.flag_label: flagged, policy.pass_label: self.rows - flagged}
        )
        self.labels = Counter({classes[1]: flagged, classes[0]: self.rows - flagged})

    def quantile(self, cumulative: np.ndarray, q: float) -> float:
        """Linear interpolation between the two ranks around q, as np.quantile does; each
        rank's value is its bin's centre, within the batch's exact minimum and maximum."""

        def value_at(rank: int) -> float:
            index = int(np.searchsorted(cumulative, rank + 1))
            return min(max((index + 0.5) / SCORE_BINS, self.low), self.high)

        position = q * (self.rows - 1)
        below = int(np.floor(position))
        low, high = value_at(below), value_at(min(below + 1, self.rows - 1))
        return low + (high - low) * (position - below)

    def as_dict(self) -> dict[str, Any]:
        if not self.rows:
            return {}
        summary: dict[str, Any] = {
            "decisions": {k: int(v) for k, v in self.decisions.most_common() if v},
            "predicted_labels": {k: int(v) for k, v in self.labels.most_common() if v},
        }
        if self.bundle.task == "binary":
            cumulative = np.cumsum(self.histogram)
            spread = {"mean": self.total / self.rows, "q00": self.low, "q100": self.high}
            for q in (0.1, 0.5, 0.9):
                spread[f"q{int(q * 100):02d}"] = self.quantile(cumulative, q)
            summary["probability"] = dict(sorted(spread.items()))
        return summary


def value_counts(values: np.ndarray) -> dict[str, int]:
    found, counts = np.unique(values.astype(str), return_counts=True)
    return {str(value): int(count) for value, count in zip(found, counts, strict=True)}


class TopK:
    """The k highest scores seen so far and their positions; ties go to the earlier row, as
    when the whole batch is sorted at once."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.scores = np.empty(0)
        self.positions = np.empty(0, dtype=np.int64)

    def update(self, scores: np.ndarray, start: int) -> None:
        """Add a chunk's scores; `start` is the position of its first row in the output."""
        positions = np.concatenate([self.positions, np.arange(start, start + len(scores))])
        scores = np.concatenate([self.scores, scores])
        keep = np.lexsort((positions, -scores))[: self.k]
        self.scores, self.positions = scores[keep], positions[keep]


class Clock:
    """Seconds spent per step, summed over chunks."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.started = time.perf_counter()

    @contextlib.contextmanager
    def timing(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] += time.perf_counter() - started

    def as_dict(self) -> dict[str, float]:
        return {
            **{f"{step}_seconds": round(value, 3) for step, value in self.seconds.items()},
            "total_seconds": round(time.perf_counter() - self.started, 3),
        }


@dataclass
class QuarantineStage:
    """Rows that failed row checks, written as they are found, published with the batch."""

    target: Path
    staged: storage.StagedDirectory | None = None
    writer: pq.ParquetWriter | None = None
    rows: int = 0

    def write(self, rows: pa.Table) -> None:
        if self.staged is None:
            self.staged = storage.StagedDirectory(self.target)
            self.writer = pq.ParquetWriter(self.staged.path / "rows.parquet", rows.schema)
        assert self.writer is not None
        self.writer.write_table(rows.cast(self.writer.schema))
        csv = self.staged.path / "rows.csv"
        with open(csv, "a", encoding="utf-8", newline="") as handle:
            storage.neutralise_formulas(rows.to_pandas()).to_csv(
                handle, index=False, header=self.rows == 0, quoting=1
            )
        self.rows += rows.num_rows

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def discard(self) -> None:
        self.close()
        if self.staged is not None:
            self.staged.discard()


@dataclass
class StagedBatch:
    """A batch scored into a hidden staging folder, with everything its manifest needs."""

    batch_id: str
    input_path: Path
    input_sha256: str
    staged: storage.StagedDirectory
    quarantine: QuarantineStage
    files: list[str]
    counts: dict[str, int]
    outcome: ValidationOutcome
    summary: dict[str, Any]
    drift: DriftResult | None
    timings: dict[str, float]
    options: StreamOptions
    scoring: dict[str, Any]  # what scored it: engine, and the cluster for Dask

    def discard(self) -> None:
        """Remove the staged batch and its staged quarantine rows; nothing was published."""
        self.staged.discard()
        self.quarantine.discard()


def score_to_staging(
    spec: UseCaseSpec,
    path: Path,
    model: tracking.LoadedModel,
    *,
    batch_id: str,
    input_sha256: str,
    state: StateDir,
    options: StreamOptions | None = None,
    on_rows: Callable[[int], None] | None = None,
    deadline: Deadline | None = None,
    scorer: Scorer | None = None,
) -> StagedBatch:
    """Read, validate, score and write the batch chunk by chunk into a staging folder, scored
    by `scorer` (default: this process).

    A batch the gate rejects is quarantined whole, with its report, and raises; so does a file
    that cannot be read to its end, and a run past its deadline (checked after every chunk).
    Either way nothing is left in the output area."""
    options = options or StreamOptions()
    stream = BatchStream(spec, path, model, batch_id, state, options, scorer, deadline)
    try:
        stream.run(on_rows or (lambda rows: None), input_sha256)
        return stream.finish(input_sha256)
    except storage.InputFileError as error:
        stream.discard()
        raise quality.reject_unreadable(spec, Path(path), error, state) from error
    except BaseException:
        stream.discard()
        raise


class BatchStream:
    """The state of one streaming pass; `run` fills it chunk by chunk."""

    def __init__(
        self,
        spec: UseCaseSpec,
        path: Path,
        model: tracking.LoadedModel,
        batch_id: str,
        state: StateDir,
        options: StreamOptions,
        scorer: Scorer | None = None,
        deadline: Deadline | None = None,
    ) -> None:
        self.spec, self.path, self.model, self.batch_id = spec, Path(path), model, batch_id
        self.state, self.options = state, options
        self.bundle = model.bundle
        self.scorer = scorer or NativeScorer(model, options.threads)
        self.deadline = deadline
        params = spec.params
        self.row_ids = RowIds({params.target}) if params.id_column is None else None
        self.clock = Clock()
        self.staged = storage.StagedDirectory(state.output_dir(spec.agency, spec.name) / batch_id)
        self.quarantine = QuarantineStage(state.quarantine(spec.agency, spec.name) / batch_id)
        self.writer: storage.PartWriter | None = None
        self.summary = ScoreSummary(self.bundle)
        reference = self.bundle.drift_reference
        self.drift = DriftAccumulator(reference) if reference is not None else None
        policy = self.bundle.policy
        self.top = TopK(policy.top_k) if isinstance(policy, CapacityPolicy) else None
        self.outcome: ValidationOutcome | None = None  # the gate's, after the first pass
        self.failing: dict[int, list[str]] = {}  # failing rows' positions and reasons
        self.cast_problems: dict[str, str] = {}
        self.row_faults: RowFaults = {}  # cells that would not cast, by row position
        self.header: batch_columns.TableHeader | None = None  # read first, by run()
        self.scoring_problem: Exception | None = None
        self.rows_in = 0
        self.scored_at = datetime.now(UTC)
        # the in-process scorer overlaps with reading; a cluster's scorer is left as it is
        overlap = options.overlap and isinstance(self.scorer, NativeScorer)
        self.worker = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="agencyml-score")
            if overlap
            else None
        )
        self.in_flight: Future[None] | None = None

    def score_in_turn(
        self, record_batch: pa.RecordBatch, conformed: pd.DataFrame, keep: np.ndarray
    ) -> None:
        """Score the chunk on the worker thread once the one before it is written."""
        self.wait_for_scoring()
        if self.worker is None:
            self.score_chunk(record_batch, conformed, keep)
        else:
            self.in_flight = self.worker.submit(self.score_chunk, record_batch, conformed, keep)

    def wait_for_scoring(self) -> None:
        """Wait for the chunk in flight, if any; its error, if it had one, is raised here."""
        in_flight, self.in_flight = self.in_flight, None
        if in_flight is not None:
            in_flight.result()

    def stop_worker(self) -> None:
        if self.worker is not None:
            with contextlib.suppress(Exception):
                self.wait_for_scoring()
            self.worker.shutdown(wait=True)
            self.worker = None

    def discard(self) -> None:
        self.stop_worker()  # nothing may write into the staging folder once it is gone
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.staged.discard()
        self.quarantine.discard()

    def run(self, on_rows: Callable[[int], None], input_sha256: str) -> None:
        """Two passes over the input: the gate over the whole batch, then scoring."""
        self.header = quality.read_input_header(self.spec, self.path)
        self.gate(input_sha256)
        self.score_passing(on_rows)

    def read_chunks(self) -> Iterator[tuple[pa.RecordBatch, pd.DataFrame]]:
        """The input chunk by chunk, as read and as a frame, with made row ids if it has no id
        column; the same chunks on every pass. Only the columns the use case reads are parsed."""
        params = self.spec.params
        assert self.header is not None  # run() reads it first
        chunks = batch_columns.iter_columns(
            self.header, self.options.chunk_rows, params.batch_format, quality.columns_read(params)
        )
        row_ids = RowIds({params.target}) if params.id_column is None else None
        while True:
            with self.clock.timing("read"):
                record_batch = next(chunks, None)
                if record_batch is None:
                    return
                frame = record_batch.to_pandas()
                if row_ids is not None:  # no id column: one made from each row's values
                    frame = row_ids.of(frame)
                    record_batch = pa.RecordBatch.from_pandas(frame, preserve_index=False)
            yield record_batch, frame

    def gate(self, input_sha256: str) -> None:
        """Pass 1: every chunk conformed into the gate's file, then one GX Checkpoint over the
        batch. A rejected batch is quarantined whole and raises before anything is scored."""
        kinds = column_kinds(self.spec.params)
        date_formats = self.spec.params.features.date_format_of()
        validation: BatchValidation | None = None
        header_names = self.header.names if self.header is not None else []
        try:
            for _, frame in self.read_chunks():
                with self.clock.timing("validate"):
                    start = validation.rows if validation is not None else 0
                    conformed, problems, faults = conform_rows(frame, kinds, date_formats)
                    self.row_faults.update((start + row, found) for row, found in faults.items())
                    for column, problem in problems.items():
                        self.cast_problems.setdefault(column, problem)
                    if validation is None:
                        validation = BatchValidation(
                            scoring_checks(self.spec.params, self.bundle.profile, self.scored_at),
                            agency=self.spec.agency,
                            suite_name=f"{self.spec.name}-scoring",
                            state=self.state,
                            columns=[
                                *map(str, conformed.columns),
                                *(n for n in header_names if n not in conformed.columns),
                            ],
                        )
                    validation.add(conformed)
                if self.deadline is not None:
                    self.deadline.check(
                        f"after {validation.rows:,} rows were read and validated; nothing was "
                        "published"
                    )
            assert validation is not None  # every table yields at least one chunk
            with self.clock.timing("validate"):
                self.outcome = validation.finish()
        finally:
            if validation is not None:
                validation.discard()
        limit = self.spec.params.expectations.max_quarantine_fraction
        try:
            self.failing = judge(self.outcome, dict(self.cast_problems), limit, self.row_faults)
        except BatchRejectedError as rejection:
            self.discard()
            raise quality.reject_batch(
                self.spec,
                self.path,
                input_sha256,
                self.batch_id,
                self.outcome,
                rejection.problems,
                self.state,
                record_failure=records.record_failed_validation,
            ) from None

    def score_passing(self, on_rows: Callable[[int], None]) -> None:
        """Pass 2: the failing rows of each chunk set aside as they came in, the others scored
        and written on the worker thread while the next chunk is read."""
        kinds = column_kinds(self.spec.params)
        date_formats = self.spec.params.features.date_format_of()
        failing = np.array(sorted(self.failing), dtype=np.int64)
        for record_batch, frame in self.read_chunks():
            start, rows = self.rows_in, len(frame)
            reasons = chunk_reasons(self.failing, failing, start, rows)
            if reasons:
                with self.clock.timing("quarantine"):
                    self.quarantine.write(failing_rows(record_batch, reasons))
            with self.clock.timing("conform"):
                conformed, _, _ = conform_rows(frame, kinds, date_formats)
            self.wait_for_scoring()  # a problem it found stops the scoring
            if self.scoring_problem is None:
                keep = np.ones(rows, dtype=bool)
                keep[list(reasons)] = False
                self.score_in_turn(record_batch, conformed, keep)
            self.rows_in += rows
            on_rows(rows)
            if self.deadline is not None:
                self.deadline.check(
                    f"after {self.rows_in:,} rows were validated and scored; nothing was published"
                )
        self.wait_for_scoring()
        if self.rows_in != self.outcome.rows:
            raise InputChangedError(
                f"{self.path} changed while it was scored: {self.outcome.rows:,} rows were "
                f"validated but {self.rows_in:,} read to score; score it again once it is "
                "complete"
            )

    def score_chunk(
        self, record_batch: pa.RecordBatch, conformed: pd.DataFrame, keep: np.ndarray
    ) -> None:
        bundle = self.bundle
        if not keep.any():
            return  # every row of the chunk was set aside
        passing = conformed[keep] if not keep.all() else conformed
        try:
            with self.clock.timing("predict"):
                scores = self.scorer.scores(passing)
        except (FeatureError, tracking.BatchSchemaError, KeyError) as error:
            self.scoring_problem = error  # the gate's report says why, if it rejects
            return
        with self.clock.timing("decide"):
            start = 0 if self.writer is None else self.writer.rows
            if self.top is not None:
                self.top.update(scores, start)
                labels = np.full(len(scores), bundle.classes[0], dtype=object)
                decisions = np.full(len(scores), bundle.policy.pass_label, dtype=object)
            else:
                decided = apply_policy(scores, bundle.policy, bundle.task, bundle.classes)
                labels, decisions = decided.predicted_label, decided.decision
            self.summary.update(scores, labels, decisions)
        with self.clock.timing("drift"):
            if self.drift is not None and len(passing):
                self.drift.update(passing, scores)
        with self.clock.timing("write"):
            ids = record_batch.column(bundle.id_column).filter(pa.array(keep))
            table = scored_table(ids, scores, labels, decisions, bundle, self.provenance())
            if self.row_ids is not None:  # the input's row number, to join the scores back
                numbers = record_batch.column(ROW_NUMBER).filter(pa.array(keep))
                table = table.add_column(1, ROW_NUMBER, numbers)
            if self.writer is None:
                self.writer = storage.PartWriter(
                    self.staged.path / "scored", table.schema, self.options.part_rows
                )
            self.writer.write(table)

    def provenance(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "model_name": self.model.name,
            "model_version": self.model.version,
            "scored_at": self.scored_at,
        }

    def finish(self, input_sha256: str) -> StagedBatch:
        self.wait_for_scoring()
        self.stop_worker()
        outcome, failing = self.outcome, self.failing
        assert outcome is not None  # run() validated the batch
        if self.scoring_problem is not None:
            raise self.scoring_problem
        if len(failing) != self.quarantine.rows:
            raise RuntimeError(
                f"{len(failing)} rows failed the gate but {self.quarantine.rows} were set aside"
            )
        self.quarantine.close()
        with self.clock.timing("write"):
            files = self.close_parts()
        drift = self.drift_result()
        counts = {"in": outcome.rows, "scored": self.summary.rows, "quarantined": len(failing)}
        return StagedBatch(
            batch_id=self.batch_id,
            input_path=self.path,
            input_sha256=input_sha256,
            staged=self.staged,
            quarantine=self.quarantine,
            files=files,
            counts=counts,
            outcome=outcome,
            summary=self.summary.as_dict(),
            drift=drift,
            timings=self.clock.as_dict(),
            options=self.options,
            scoring=self.scorer.describe(),
        )

    def close_parts(self) -> list[str]:
        """Close the parts; flag a capacity policy's top k; one part becomes scored.parquet."""
        if self.writer is None:  # nothing passed the gate: an empty table, same columns
            ids = pa.array([], type=pa.string())
            empty = np.empty(
                (0,) if self.bundle.task == "binary" else (0, len(self.bundle.classes))
            )
            table = scored_table(
                ids, empty, np.empty(0), np.empty(0), self.bundle, self.provenance()
            )
            if self.row_ids is not None:
                table = table.add_column(1, ROW_NUMBER, pa.array([], type=pa.int64()))
            self.writer = storage.PartWriter(self.staged.path / "scored", table.schema, 1)
            self.writer.write(table)
        parts = self.writer.close()
        if self.top is not None:
            assert isinstance(self.bundle.policy, CapacityPolicy)
            flag_top_k(parts, set(self.top.positions.tolist()), self.bundle)
            self.summary.recount_decisions(len(self.top.positions), self.bundle.policy)
        if len(parts) == 1:
            single = self.staged.path / "scored.parquet"
            os.replace(parts[0], single)
            parts[0].parent.rmdir()
            return ["scored.parquet"]
        return [str(part.relative_to(self.staged.path)) for part in parts]

    def drift_result(self) -> DriftResult | None:
        if self.drift is None or not self.drift.rows:
            return None
        thresholds = self.spec.params.drift
        return self.drift.result(DriftThresholds(warn=thresholds.warn, alert=thresholds.alert))


def chunk_reasons(
    failing: dict[int, list[str]], positions: np.ndarray, start: int, rows: int
) -> dict[int, list[str]]:
    """The failing rows of the chunk of `rows` rows from batch position `start`, by their
    place in the chunk, with their reasons; `positions` is the sorted keys of `failing`."""
    here = positions[np.searchsorted(positions, start) : np.searchsorted(positions, start + rows)]
    return {int(row) - start: failing[int(row)] for row in here}


def failing_rows(record_batch: pa.RecordBatch, reasons: dict[int, list[str]]) -> pa.Table:
    """The failing rows as they came in, with their reasons."""
    rows = sorted(reasons)
    table = pa.Table.from_batches([record_batch]).take(pa.array(rows, type=pa.int64()))
    because = pa.array(["; ".join(reasons[row]) for row in rows], type=pa.string())
    return table.append_column(QUARANTINE_REASON, because)


def scored_table(
    ids: pa.Array,
    scores: np.ndarray,
    labels: np.ndarray,
    decisions: np.ndarray,
    bundle: ModelBundle,
    provenance: dict[str, Any],
) -> pa.Table:
    """One row per scored input row: id, scores, label, decision, and what scored it when."""
    rows = len(ids)
    columns: dict[str, Any] = {bundle.id_column: ids}
    if bundle.task == "binary":
        columns["probability"] = pa.array(np.asarray(scores, dtype=np.float64))
    else:
        for index, label in enumerate(bundle.classes):
            columns[f"proba_{label}"] = pa.array(np.asarray(scores[:, index], dtype=np.float64))
    columns["predicted_label"] = pa.array(labels.astype(str) if rows else [], type=pa.string())
    columns["decision"] = pa.array(decisions.astype(str) if rows else [], type=pa.string())
    for name in ("batch_id", "model_name", "model_version"):
        columns[name] = pa.repeat(pa.scalar(str(provenance[name]), pa.string()), rows)
    columns["scored_at"] = pa.repeat(
        pa.scalar(provenance["scored_at"], pa.timestamp("us", tz="UTC")), rows
    )
    return pa.table(columns)


def flag_top_k(parts: list[Path], flagged: set[int], bundle: ModelBundle) -> None:
    """Rewrite each part's label and decision for the rows a capacity policy flags."""
    policy = bundle.policy
    assert isinstance(policy, CapacityPolicy)
    start = 0
    for part in parts:
        table = pq.read_table(part)
        rows = table.num_rows
        mask = np.zeros(rows, dtype=bool)
        local = [position - start for position in flagged if start <= position < start + rows]
        mask[local] = True
        start += rows
        if not mask.any():
            continue
        labels = np.where(mask, bundle.classes[1], bundle.classes[0])
        decisions = np.where(mask, policy.flag_label, policy.pass_label)
        table = table.set_column(
            table.schema.get_field_index("predicted_label"),
            "predicted_label",
            pa.array(labels, type=pa.string()),
        ).set_column(
            table.schema.get_field_index("decision"),
            "decision",
            pa.array(decisions, type=pa.string()),
        )
        rewritten = part.with_name(part.name + ".rewrite")
        pq.write_table(table, rewritten)
        os.replace(rewritten, part)
