"""Score one batch with a use case's champion and publish it with its manifest."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows import tasks
from flows.progress import row_progress
from pipelines.deadline import run_deadline
from pipelines.orchestration import alerts
from pipelines.paths import state_dir
from pipelines.registry.records import ScoreResult
from pipelines.scoring import batches
from pipelines.scoring.streaming import StreamOptions


@flow(
    name="score",
    flow_run_name="score-{agency}-{use_case}",
    on_completion=[alerts.on_scored_batch],  # many rows quarantined, drift at the alert level
    on_failure=[alerts.on_failed_scoring],  # a batch the gate rejected
)
def score(
    agency: str,
    use_case: str,
    input: str,
    store_input: bool = False,
    chunk_rows: int = StreamOptions.chunk_rows,
    part_rows: int = StreamOptions.part_rows,
    progress: bool = False,
) -> ScoreResult:
    """Stream the batch through the gate and the model into staging, then publish it whole.

    The same input and model version give the same batch id: a rerun returns the published
    batch without loading the model (or importing the validation gate), and records its
    scoring run if a crash lost it (once per batch: under the batch's lock). Past the use
    case's time limit (checked after every chunk and before publishing) the run stops and
    publishes nothing."""
    spec = tasks.load_use_case(agency, use_case)
    deadline = run_deadline(spec, "score")
    state = state_dir()
    path = Path(input).expanduser().resolve()
    sha256 = tasks.open_input(spec, path, state)
    champion = tasks.find_model_version(spec.model_name, state)  # a lookup, no model load
    batch_id = tasks.batch_id_of(sha256, champion)
    with batches.batch_lock(spec, batch_id, state):
        manifest = tasks.published_manifest(spec, batch_id, state)
        newly_published = manifest is None
        if manifest is None:
            # that very version, even if the alias has moved since the lookup
            model = tasks.load_model_version(spec.model_name, state, version=champion.version)
            with row_progress(path, f"Scoring {path.name}", progress) as on_rows:
                staged = tasks.score_stream(
                    spec,
                    path,
                    model,
                    batch_id=batch_id,
                    input_sha256=sha256,
                    state=state,
                    options=StreamOptions(chunk_rows, part_rows),
                    on_rows=on_rows,
                    deadline=deadline,
                )
            stored_input = tasks.store_input(spec, path, sha256, store_input)
            tasks.check_time_left(staged, deadline)
            quarantine_dir = tasks.stage_quarantine(spec, staged)
            manifest = tasks.build_manifest(
                spec, staged, model, quarantine_dir=quarantine_dir, stored_input=stored_input
            )
            manifest = tasks.publish_batch(staged, manifest, model)
        tasks.publish_quarantine(spec, manifest, state)  # after its batch; a rerun repairs it
        run_id = tasks.record_scoring(spec, champion, manifest, state)
    return batches.score_result(manifest, state, newly_published, run_id)
