"""The inbox and the run rules in one process against real MLflow and Prefect: bad files are
quarantined with a receipt, a file a dead poll claimed is finished, a platform failure keeps the
file for the next poll, and transient errors are retried with backoff while others are not."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE
from prefect import flow

from flows import tasks
from flows.deployed import InboxError, inbox_poll
from pipelines.data.business_aid import generate_applications
from pipelines.durable import file_lock
from pipelines.paths import PACKAGE_ROOT, state_dir

FRAUD = ("business-aid", "fraud-risk")


@pytest.fixture(scope="module")
def trained(prefect_server, tmp_path_factory, trained_small_project):
    """fraud-risk trained on a small project; case-routing deliberately not."""
    with trained_small_project(tmp_path_factory.mktemp("unattended"), FRAUD) as project:
        yield project


@pytest.fixture
def env(trained, monkeypatch):
    monkeypatch.setenv("AGENCYML_PROJECT_ROOT", str(trained["project"]))
    monkeypatch.setenv("AGENCYML_HOME", str(trained["root"] / "state"))
    return trained


def inbox_dir(agency: str = FRAUD[0], use_case: str = FRAUD[1]) -> Path:
    folder = state_dir().inbox(agency, use_case)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def batch(rows: int, seed: int) -> pd.DataFrame:
    return generate_applications(rows, seed=seed).drop(columns=["is_fraud", "review_track"])


def published() -> list[str]:
    outputs = state_dir().output_dir(*FRAUD)
    return sorted(p.name for p in outputs.iterdir()) if outputs.exists() else []


def receipt_of(filed: str) -> dict:
    return json.loads(Path(filed + ".json").read_text())


def test_bad_files_are_quarantined_with_the_reason_and_good_ones_scored(env):
    folder = inbox_dir()
    (folder / "garbage.parquet").write_bytes(b"this is not parquet at all" * 40)
    (folder / "notes.txt").write_text("not a batch")
    missing = batch(500, seed=1).drop(columns=["requested_amount_dkk"])
    missing.to_parquet(folder / "missing-column.parquet")
    batch(800, seed=2).to_parquet(folder / "good.parquet")
    before = published()

    result = inbox_poll(*FRAUD, settle_seconds=0)

    reasons = {item["file"]: item for item in result.quarantined}
    assert set(reasons) == {"garbage.parquet", "notes.txt", "missing-column.parquet"}
    assert "cannot read" in reasons["garbage.parquet"]["reason"], reasons["garbage.parquet"]
    assert ".txt" in reasons["notes.txt"]["reason"], reasons["notes.txt"]
    assert "requested_amount_dkk" in reasons["missing-column.parquet"]["reason"]
    for item in result.quarantined:  # kept whole, with a receipt that says why
        assert Path(item["filed_as"]).is_file()
        assert receipt_of(item["filed_as"])["outcome"] == "quarantine"
    (scored,) = result.scored
    assert scored["file"] == "good.parquet" and scored["newly_published"]
    assert published() == sorted([*before, scored["batch_id"]])
    assert not [p for p in folder.iterdir() if p.is_file()]


def test_a_file_a_dead_poll_claimed_is_finished_and_a_repeat_is_not_scored_again(env):
    folder = inbox_dir()
    claimed = folder / ".claimed"
    claimed.mkdir(exist_ok=True)
    batch(600, seed=3).to_parquet(claimed / "left-behind.parquet")  # as a killed poll leaves it
    batch(600, seed=3).to_parquet(folder / "same-again.parquet")

    result = inbox_poll(*FRAUD, settle_seconds=0)

    first, second = result.scored
    assert first["file"] == "left-behind.parquet" and first["newly_published"]
    assert second["file"] == "same-again.parquet" and not second["newly_published"]
    assert first["batch_id"] == second["batch_id"]
    assert first["scoring_run_id"] == second["scoring_run_id"]
    assert published().count(first["batch_id"]) == 1
    assert not list(claimed.iterdir())


def test_unsettled_files_and_a_busy_inbox_are_left_alone(env):
    folder = inbox_dir()
    batch(300, seed=4).to_parquet(folder / "just-arrived.parquet")
    assert inbox_poll(*FRAUD, settle_seconds=3600).waiting == ["just-arrived.parquet"]
    with file_lock(state_dir().inbox_lock(*FRAUD)):
        busy = inbox_poll(*FRAUD, settle_seconds=0)
    assert busy.busy and (folder / "just-arrived.parquet").exists()
    assert inbox_poll(*FRAUD, settle_seconds=0).scored[0]["file"] == "just-arrived.parquet"


def test_a_platform_failure_keeps_the_file_claimed_for_the_next_poll(env):
    folder = inbox_dir("business-aid", "case-routing")  # no model trained for it
    batch(300, seed=5).to_parquet(folder / "early.parquet")

    with pytest.raises(InboxError, match=r"early\.parquet.*ModelNotFoundError.*next poll"):
        inbox_poll("business-aid", "case-routing", settle_seconds=0)

    assert (folder / ".claimed" / "early.parquet").is_file()
    assert not list((folder / "quarantine").iterdir())


def test_a_second_training_of_a_model_waits_for_the_first(env, tmp_path):
    """However it is started (here the CLI), a training waits while another holds the lock."""
    from mlflow.tracking import MlflowClient
    from prefect.settings import PREFECT_API_URL

    uri = state_dir().tracking_uri
    registry = MlflowClient(uri, uri)
    before = len(registry.search_model_versions("name='business-aid.fraud-risk'"))
    log = tmp_path / "train.log"
    with file_lock(state_dir().training_lock(*FRAUD)), open(log, "wb") as output:  # "running"
        process = subprocess.Popen(
            [sys.executable, "-m", "flows", "--verbose", "train", "-a", FRAUD[0], "-u", FRAUD[1]],
            env={
                **os.environ,
                "PYTHONPATH": str(PACKAGE_ROOT),
                "PREFECT_API_URL": PREFECT_API_URL.value(),
            },
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while "waiting for it to finish" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(2)
        assert process.poll() is None  # still waiting
        assert len(registry.search_model_versions("name='business-aid.fraud-risk'")) == before
    assert process.wait(timeout=600) == 0, log.read_text()[-3000:]
    assert len(registry.search_model_versions("name='business-aid.fraud-risk'")) == before + 1


# --- retries ------------------------------------------------------------------------------------


def mlflow_unreachable() -> MlflowException:
    try:
        raise requests.exceptions.ConnectionError("Connection refused")
    except requests.exceptions.ConnectionError:
        try:
            raise MlflowException("API request to http://tracking/api failed")
        except MlflowException as wrapped:
            return wrapped


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionResetError("reset by peer"), True),
        (TimeoutError("timed out"), True),
        (mlflow_unreachable(), True),
        (MlflowException("busy", error_code=TEMPORARILY_UNAVAILABLE), True),
        (sqlite3.OperationalError("database is locked"), True),
        (FileNotFoundError("no such file"), False),
        (MlflowException("bad param", error_code=INVALID_PARAMETER_VALUE), False),
        (ValueError("bad value"), False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_only_transient_errors_are_retried(error, transient):
    assert tasks.is_transient(error) is transient


def test_a_transient_failure_is_retried_with_backoff_and_others_fail_at_once(prefect_server):
    calls = {"flaky": 0, "broken": 0}

    def flaky() -> str:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise ConnectionError("tracking server restarting")
        return "ok"

    def broken() -> str:
        calls["broken"] += 1
        raise ValueError("a bug, not the network")

    flaky_step = tasks.io_step(flaky, "flaky", delay_seconds=0.05)
    broken_step = tasks.io_step(broken, "broken", delay_seconds=0.05)
    assert flaky_step.retry_delay_seconds == [0.05, 0.1, 0.2]

    @flow
    def both() -> str:
        with pytest.raises(ValueError, match="a bug"):
            broken_step()
        return flaky_step()

    assert both() == "ok"
    assert calls == {"flaky": 3, "broken": 1}


# --- the commands' errors -----------------------------------------------------------------------


def agencyml(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows", *args],
        env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT), "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_worker_and_deploy_without_a_server_say_how_to_start_one(tmp_path):
    for command in (["worker"], ["deploy"]):
        done = agencyml(
            *command,
            PREFECT_API_URL="http://127.0.0.1:9/api",
            AGENCYML_HOME=str(tmp_path),
            AGENCYML_PROJECT_ROOT=str(PACKAGE_ROOT),
        )
        assert done.returncode == 14, done.stderr
        assert "no Prefect server answers at http://127.0.0.1:9/api" in done.stderr
        assert "agencyml server" in done.stderr


def test_deploy_refuses_a_prefect_yaml_the_params_no_longer_match(trained, tmp_path):
    project = tmp_path / "project"
    (project / "params").mkdir(parents=True)
    for path in (trained["project"] / "params").glob("*.yaml"):
        (project / "params" / path.name).write_text(path.read_text())
    (project / "prefect.yaml").write_text((PACKAGE_ROOT / "prefect.yaml").read_text() + "# x\n")
    stale = agencyml("deploy", "--dry-run", AGENCYML_PROJECT_ROOT=str(project))
    assert stale.returncode == 14
    assert "does not match params/" in stale.stderr and "agencyml deploy --write" in stale.stderr
    written = agencyml("deploy", "--write", "--dry-run", AGENCYML_PROJECT_ROOT=str(project))
    assert written.returncode == 0, written.stderr
    assert "# x" not in (project / "prefect.yaml").read_text()
    assert agencyml("deploy", "--dry-run", AGENCYML_PROJECT_ROOT=str(project)).returncode == 0


def test_the_inbox_command_polls_once_and_says_where_to_drop_files(env):
    from prefect.settings import PREFECT_API_URL

    folder = inbox_dir()
    batch(400, seed=8).to_parquet(folder / "from-the-cli.parquet")
    server = {"PREFECT_API_URL": PREFECT_API_URL.value()}
    polled = agencyml(
        "inbox", "-a", FRAUD[0], "-u", FRAUD[1], "--settle-seconds", "0", "--json", **server
    )
    assert polled.returncode == 0, polled.stderr
    result = json.loads(polled.stdout)
    assert [item["file"] for item in result["scored"]] == ["from-the-cli.parquet"]
    assert result["scored"][0]["batch_id"] in published()
    empty = agencyml("inbox", "-a", FRAUD[0], "-u", FRAUD[1], **server)
    assert empty.returncode == 0, empty.stderr
    assert "nothing to score; drop parquet or CSV batches in" in " ".join(empty.stdout.split())


def test_a_prefect_server_that_does_not_start_in_time_is_exit_14_with_what_to_do(tmp_path):
    """Without PREFECT_API_URL, a flow starts Prefect's temporary server; one that does not
    answer in time (here: allowed 0 s) is a clear error, never a traceback."""
    environment = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "flows", "train", "-a", FRAUD[0], "-u", FRAUD[1]],
        env={
            **environment,
            "PYTHONPATH": str(PACKAGE_ROOT),
            "COLUMNS": "200",
            "AGENCYML_HOME": str(tmp_path / "state"),
            "PREFECT_HOME": str(tmp_path / "prefect"),
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "0",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 14, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert "temporary local server did not start within 0 s" in done.stderr
    assert "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in done.stderr
    assert "agencyml server" in done.stderr
    assert not (tmp_path / "state" / "outputs").exists()
