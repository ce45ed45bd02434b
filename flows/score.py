"""Score one batch with a use case's champion and publish it with its manifest."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows import tasks
from pipelines import batches
from pipelines.paths import state_dir
from pipelines.records import ScoreResult


@flow(name="score", flow_run_name="score-{agency}-{use_case}")
def score(agency: str, use_case: str, input: str, store_input: bool = False) -> ScoreResult:
    """Read, gate, score the passing rows, quarantine the rest, publish and record."""
    spec = tasks.load_use_case(agency, use_case)
    state = state_dir()
    batch = tasks.read_batch(Path(input).expanduser().resolve(), spec, state)
    model = tasks.load_champion(spec.model_name, state)
    batch_id = tasks.batch_id_of(batch, model)
    gated = tasks.gate_batch(spec, batch, model.bundle, batch_id, state)
    quarantine_dir = tasks.quarantine_rows(spec, gated, batch, batch_id, state)
    scored = tasks.score_batch(gated.gate.passed, model, batch_id)
    drift = tasks.measure_drift(spec, gated.gate.passed, scored, model)
    stored_input = tasks.store_input(spec, batch, store_input)
    manifest = tasks.build_manifest(
        spec,
        scored,
        model,
        batch=batch,
        gated=gated,
        batch_id=batch_id,
        quarantine_dir=quarantine_dir,
        stored_input=stored_input,
        drift=drift,
    )
    report = batches.drift_files(drift, model)
    output_dir, published = tasks.publish_batch(spec, scored, manifest, state, report)
    run_id = (
        tasks.record_scoring(spec, model, manifest, gated.outcome, state, drift)
        if published
        else None
    )
    return ScoreResult(
        batch_id=batch_id,
        output_dir=output_dir,
        rows=len(scored),
        model_name=model.name,
        model_version=model.version,
        newly_published=published,
        run_id=run_id,
        decisions=manifest["scores"].get("decisions", {}),
        rows_quarantined=manifest["rows"]["quarantined"],
        quarantine_dir=quarantine_dir,
        drift_level=None if drift is None else drift.level,
        drifted=[] if drift is None else list(drift.drifted),
    )
