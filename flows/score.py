"""Score one batch with a use case's champion and publish it with its manifest."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows import tasks
from pipelines.paths import state_dir
from pipelines.records import ScoreResult


@flow(name="score", flow_run_name="score-{agency}-{use_case}")
def score(agency: str, use_case: str, input: str) -> ScoreResult:
    """Load the champion, check the batch, predict, publish atomically and record the run."""
    spec = tasks.load_use_case(agency, use_case)
    input_path = Path(input).expanduser().resolve()
    batch, input_sha256 = tasks.read_batch(input_path)
    model = tasks.load_champion(spec.model_name, state_dir())
    report = tasks.check_batch(batch, model)
    scored = tasks.score_batch(batch, model, input_sha256)
    manifest = tasks.build_manifest(
        spec, scored, model, input_path=input_path, input_sha256=input_sha256, report=report
    )
    output_dir, published = tasks.publish_batch(spec, scored, manifest, state_dir())
    run_id = tasks.record_scoring(spec, model, manifest, state_dir()) if published else None
    return ScoreResult(
        batch_id=manifest["batch_id"],
        output_dir=output_dir,
        rows=len(scored),
        model_name=model.name,
        model_version=model.version,
        newly_published=published,
        run_id=run_id,
        decisions=manifest["scores"]["decisions"],
    )
