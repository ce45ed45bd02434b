"""Streaming batch scoring against real MLflow, Prefect and processes: a kill -9 in the middle
leaves nothing visible, the rerun publishes the whole batch once, in parts, with the scores the
whole-batch model gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from prefect.settings import PREFECT_API_URL

from flows.score import score
from flows.train import train
from pipelines.config import load_use_case
from pipelines.data.business_aid import generate_applications
from pipelines.data.storage import file_sha256, read_json_file
from pipelines.modeling.decisions import apply_policy
from pipelines.paths import PACKAGE_ROOT, state_dir
from pipelines.registry import tracking

FRAUD = ("business-aid", "fraud-risk")
ROWS, CHUNK_ROWS, PART_ROWS = 120_000, 8_000, 50_000
BAD_ROWS = [5, 9_000, 77_777]  # three chunks each set one row aside


@pytest.fixture(scope="module")
def project(prefect_server, tmp_path_factory, make_small_project):
    """A trained fraud-risk model and a batch of generated applications, three of them bad."""
    root = tmp_path_factory.mktemp("stream")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENCYML_PROJECT_ROOT", str(make_small_project(root / "project")))
        patch.setenv("AGENCYML_HOME", str(root / "state"))
        train(*FRAUD)
        frame = generate_applications(ROWS, seed=11).drop(columns=["is_fraud", "review_track"])
        frame.loc[BAD_ROWS, "requested_amount_dkk"] = -1.0
        batch = root / "applications.parquet"
        frame.to_parquet(batch, row_group_size=20_000)
        yield {"root": root, "batch": batch, "frame": frame}


def visible(folder: Path) -> list[str]:
    return (
        sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))
        if folder.exists()
        else []
    )


def hidden_staging(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.staging")) if folder.exists() else []


def scoring_command(project: dict, *options: str) -> list[str]:
    return [
        sys.executable, "-m", "flows", "score", "-a", FRAUD[0], "-u", FRAUD[1],
        "-i", str(project["batch"]), "--chunk-rows", str(CHUNK_ROWS),
        "--part-rows", str(PART_ROWS), *options,
    ]  # fmt: skip


def test_a_kill_in_the_middle_leaves_nothing_visible_and_the_rerun_publishes_once(project):
    state = state_dir()
    outputs = state.output_dir(*FRAUD)
    quarantine = state.quarantine(*FRAUD)
    env = {
        **os.environ,
        "PYTHONPATH": str(PACKAGE_ROOT),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    process = subprocess.Popen(
        scoring_command(project), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 300
        # wait until scored rows are being written: the middle of the stream
        while not any(
            (s / "scored" / "part-00000.parquet").is_file() for s in hidden_staging(outputs)
        ):
            assert process.poll() is None, "the scoring run ended before it could be killed"
            assert time.monotonic() < deadline, "the scoring run never started writing"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()

    # nothing half-written is visible: no batch, no quarantined rows, no manifest
    assert visible(outputs) == [] and visible(quarantine) == []
    assert hidden_staging(outputs), "the killed run's staging folder should be what is left"

    result = score(*FRAUD, str(project["batch"]), chunk_rows=CHUNK_ROWS, part_rows=PART_ROWS)

    assert result.newly_published
    assert visible(outputs) == [result.batch_id] and hidden_staging(outputs) == []
    assert visible(quarantine) == [result.batch_id] and hidden_staging(quarantine) == []
    manifest = read_json_file(result.output_dir / "manifest.json")
    parts = [f"scored/part-{n:05d}.parquet" for n in range(3)]
    counts = manifest["rows"]
    assert manifest["files"][:3] == parts and counts["in"] == ROWS
    assert counts["scored"] + counts["quarantined"] == ROWS and counts["quarantined"] >= 3
    sizes = [len(pd.read_parquet(result.output_dir / part)) for part in parts]
    assert sizes == [PART_ROWS, PART_ROWS, counts["scored"] - 2 * PART_ROWS]
    runs = MlflowClient(state.tracking_uri).search_runs(
        [tracking.use_experiment(FRAUD[0], state, "scoring")],
        f"tags.`agencyml.batch_id` = '{result.batch_id}'",
    )
    assert [run.info.run_id for run in runs] == [result.run_id]


def test_streamed_scores_equal_the_whole_batch_scored_at_once(project):
    result = score(*FRAUD, str(project["batch"]), chunk_rows=CHUNK_ROWS, part_rows=PART_ROWS)
    scored = pd.read_parquet(result.output_dir / "scored")
    frame = project["frame"]
    rows = pd.read_parquet(state_dir().quarantine(*FRAUD) / result.batch_id / "rows.parquet")
    # the bad rows, and rows outside the small training set's ranges, are set aside
    assert set(frame.loc[BAD_ROWS, "application_id"]) <= set(rows["application_id"])
    assert rows["failed_expectations"].str.len().gt(0).all()
    passing = frame[~frame["application_id"].isin(rows["application_id"])]
    passing = passing.reset_index(drop=True)
    model = tracking.load_model("business-aid.fraud-risk", state_dir())

    # every passing row, in input order, scored exactly as the whole-batch model scores it
    assert scored["application_id"].tolist() == passing["application_id"].tolist()
    expected = model.bundle.predict_proba(model.bundle.transform.conform(passing))
    np.testing.assert_allclose(scored["probability"].to_numpy(), expected, rtol=0, atol=1e-12)
    # the capacity policy's top k over the whole batch, not per chunk
    whole = apply_policy(expected, model.bundle.policy, "binary", model.bundle.classes)
    assert scored["decision"].tolist() == whole.decision.tolist()
    top_k = load_use_case(*FRAUD).params.decision.top_k
    assert (scored["decision"] == model.bundle.policy.flag_label).sum() == top_k
    assert scored["scored_at"].nunique() == 1 and str(scored["scored_at"].dt.tz) == "UTC"

    manifest = read_json_file(result.output_dir / "manifest.json")
    spread = manifest["scores"]["probability"]
    assert spread["q50"] == pytest.approx(np.quantile(expected, 0.5), abs=1e-4)
    assert spread["mean"] == pytest.approx(expected.mean())
    assert manifest["scores"]["decisions"][model.bundle.policy.flag_label] == top_k
    assert manifest["input"]["sha256"] == file_sha256(project["batch"])
    assert manifest["validation"]["success"] is False  # three rows failed a row check
    assert {"read_seconds", "validate_seconds", "predict_seconds", "write_seconds"} <= set(
        manifest["timings"]
    )
    assert manifest["timings"]["rows_per_second"] > 0
    assert rows["application_id"].is_monotonic_increasing  # in input order, across chunks

    # the scoring run records the input by its digest, the counts and the timings
    run = MlflowClient(state_dir().tracking_uri).get_run(result.run_id)
    [dataset] = run.inputs.dataset_inputs
    assert dataset.dataset.digest == manifest["input"]["sha256"][:32]
    assert run.data.tags["agencyml.input_sha256"] == manifest["input"]["sha256"]
    assert run.data.metrics["rows_quarantined"] == len(rows)
    assert run.data.metrics["timing.total_seconds"] > 0


def test_a_rerun_returns_the_batch_and_records_a_scoring_run_a_crash_lost(project):
    first = score(*FRAUD, str(project["batch"]), chunk_rows=CHUNK_ROWS, part_rows=PART_ROWS)
    again = score(*FRAUD, str(project["batch"]), chunk_rows=CHUNK_ROWS, part_rows=PART_ROWS)
    assert not again.newly_published and again.run_id == first.run_id
    assert again.batch_id == first.batch_id and again.rows == first.rows

    # as if the process died between publishing and recording: the run is gone
    client = MlflowClient(state_dir().tracking_uri)
    client.delete_run(first.run_id)
    recovered = score(*FRAUD, str(project["batch"]), chunk_rows=CHUNK_ROWS, part_rows=PART_ROWS)

    assert not recovered.newly_published and recovered.run_id not in (None, first.run_id)
    run = client.get_run(recovered.run_id)
    assert run.data.tags["agencyml.batch_id"] == first.batch_id
    assert run.data.metrics["rows_scored"] == first.rows
    assert visible(state_dir().output_dir(*FRAUD)) == [first.batch_id]


def test_lineage_follows_a_batch_in_parts_and_names_a_missing_part(project):
    from pipelines.registry.trace import trace_batch

    result = score(*FRAUD, str(project["batch"]), chunk_rows=CHUNK_ROWS, part_rows=PART_ROWS)
    [node] = trace_batch(result.batch_id, state_dir()).find("scored batch")
    assert node.missing == []
    assert node.facts["scored file"] == f"{result.output_dir / 'scored'} (3 parts)"

    part = result.output_dir / "scored" / "part-00001.parquet"
    part.rename(part.with_suffix(".moved"))
    try:
        [node] = trace_batch(result.batch_id, state_dir()).find("scored batch")
        assert node.missing == [f"{part} does not exist"]
        assert node.facts["scored file"] == "missing"
    finally:
        part.with_suffix(".moved").rename(part)


def test_an_error_while_a_chunk_is_scored_on_the_worker_thread_stops_the_run_cleanly(project):
    from pipelines.scoring.streaming import NativeScorer, StreamOptions, score_to_staging

    class FailsOnThirdChunk(NativeScorer):
        calls = 0

        def scores(self, conformed):
            type(self).calls += 1
            if type(self).calls == 3:
                raise OSError("disk full while scoring")
            return super().scores(conformed)

    spec = load_use_case(*FRAUD)
    model = tracking.load_model(spec.model_name, state_dir())
    with pytest.raises(OSError, match="disk full while scoring"):
        score_to_staging(
            spec,
            project["batch"],
            model,
            batch_id="batch-worker-error",
            input_sha256="0" * 64,
            state=state_dir(),
            options=StreamOptions(chunk_rows=CHUNK_ROWS, overlap=True),
            scorer=FailsOnThirdChunk(model, 2),
        )

    assert FailsOnThirdChunk.calls == 3  # no chunk was scored after the failure
    output = state_dir().output_dir(*FRAUD)
    assert not list(output.glob("*batch-worker-error*"))  # neither published nor staged
    quarantine = state_dir().quarantine(*FRAUD)
    assert not list(quarantine.glob("*batch-worker-error*"))


def test_an_input_that_changes_between_the_gate_and_scoring_publishes_nothing(
    project, tmp_path, monkeypatch
):
    from pipelines.scoring.streaming import (
        BatchStream,
        InputChangedError,
        StreamOptions,
        score_to_staging,
    )

    batch = tmp_path / "growing.parquet"
    project["frame"].iloc[:20_000].to_parquet(batch)
    gate = BatchStream.gate

    def gate_then_the_file_grows(self, input_sha256):
        gate(self, input_sha256)
        project["frame"].iloc[:30_000].to_parquet(batch)  # still being written, say

    monkeypatch.setattr(BatchStream, "gate", gate_then_the_file_grows)
    spec = load_use_case(*FRAUD)
    model = tracking.load_model(spec.model_name, state_dir())
    with pytest.raises(InputChangedError, match="20,000 rows were validated but 30,000 read"):
        score_to_staging(
            spec,
            batch,
            model,
            batch_id="batch-input-changed",
            input_sha256="1" * 64,
            state=state_dir(),
            options=StreamOptions(chunk_rows=CHUNK_ROWS),
        )

    assert not list(state_dir().output_dir(*FRAUD).glob("*batch-input-changed*"))
    assert not list(state_dir().quarantine(*FRAUD).glob("*batch-input-changed*"))
    assert not list(state_dir().scratch_dir.glob("gate-*"))  # the gate's file is gone too
