"""One batch, one scoring run, whatever happens around it, with real processes, real MLflow
and real kills: two scorers of one input record one run; a kill while MLflow records leaves a
RUNNING run that the rerun closes as KILLED; a kill between the batch and its quarantine is
repaired by the rerun; a full or read-only output disk is exit 16 with nothing published; an
inbox file that keeps crashing the scorer is quarantined after a few attempts."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from flows import tasks
from flows.cli import app
from flows.deployed import InboxError, inbox_poll
from pipelines.data.business_aid import generate_applications
from pipelines.data.storage import read_json_file
from pipelines.orchestration import inbox
from pipelines.paths import PACKAGE_ROOT, state_dir
from pipelines.registry import tracking

FRAUD = ("business-aid", "fraud-risk")
BAD_ROWS = [3, 17]  # a negative amount sets the row aside: each batch has a quarantine


@pytest.fixture(scope="module")
def trained(prefect_server, tmp_path_factory, trained_small_project):
    with trained_small_project(tmp_path_factory.mktemp("one-run"), FRAUD) as project:
        yield project


@pytest.fixture
def env(trained, monkeypatch) -> dict[str, str]:
    """agencyml pointed at the trained project, in-process and for the commands it starts."""
    variables = {
        "AGENCYML_PROJECT_ROOT": str(trained["project"]),
        "AGENCYML_HOME": str(trained["root"] / "state"),
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return {
        **os.environ,
        **variables,
        "PYTHONPATH": str(PACKAGE_ROOT),
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "COLUMNS": "200",
    }


def write_batch(folder: Path, name: str, rows: int, seed: int) -> Path:
    frame = generate_applications(rows, seed=seed).drop(columns=["is_fraud", "review_track"])
    frame.loc[BAD_ROWS, "requested_amount_dkk"] = -1.0
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / name)
    return folder / name


def score_command(batch: Path) -> list[str | Path]:
    return [
        sys.executable,
        "-m",
        "flows",
        "score",
        "-a",
        FRAUD[0],
        "-u",
        FRAUD[1],
        "-i",
        str(batch),
    ]


# Runs `agencyml score` with one step made to stop the process there, as a kill would: the
# step writes a marker file and waits (the test then kills it), or kills the process itself.
STOPPED_SCORER = """
import os, runpy, signal, sys, time
from pathlib import Path
marker, where = Path(sys.argv[1]), sys.argv[2]
sys.argv = [sys.argv[0], *sys.argv[3:]]
if where == "recording":
    from pipelines.registry import tracking
    def wait_for_the_kill(record):
        marker.write_text("recording")
        time.sleep(600)
    tracking._log_contents = wait_for_the_kill
else:
    from flows import tasks
    def die(*args, **kwargs):
        marker.write_text("published")
        os.kill(os.getpid(), signal.SIGKILL)
    tasks.publish_quarantine = die
runpy.run_module("flows", run_name="__main__")
"""


def stopped_scorer(env: dict[str, str], batch: Path, marker: Path, where: str) -> subprocess.Popen:
    command = [
        sys.executable,
        "-c",
        STOPPED_SCORER,
        str(marker),
        where,
        *map(str, score_command(batch)[3:]),
    ]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def wait_for(marker: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 300
    while not marker.exists():
        if process.poll() is not None:
            pytest.fail(f"the scorer ended before its stop: {process.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, "the scorer never reached its stop"
        time.sleep(0.1)


def scoring_runs(batch_id: str) -> dict[str, list[str]]:
    """The batch's scoring runs by status, in every experiment."""
    tracking.configure(state_dir())
    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(
        experiments,
        filter_string=f"tags.`agencyml.batch_id` = '{batch_id}' and tags.`agencyml.kind` = 'score'",
    )
    by_status: dict[str, list[str]] = {}
    for run in runs:
        by_status.setdefault(run.info.status, []).append(run.info.run_id)
    return by_status


def rescore(batch: Path) -> tuple[int, str]:
    """`agencyml score` in this process (a rerun needs no process of its own)."""
    done = CliRunner().invoke(app, [str(part) for part in score_command(batch)[3:]])
    return done.exit_code, " ".join(done.output.split())


def published() -> set[str]:
    """The batch ids published, and those with a quarantine (hidden folders included)."""
    folders = (state_dir().output_dir(*FRAUD), state_dir().quarantine(*FRAUD))
    return {p.name for folder in folders if folder.exists() for p in folder.iterdir()}


def new_batch(before: set[str]) -> str:
    (batch_id,) = {p.name for p in state_dir().output_dir(*FRAUD).iterdir()} - before
    return batch_id


def test_two_scorers_of_one_input_at_once_publish_one_batch_and_record_one_run(env, tmp_path):
    batch = write_batch(tmp_path, "twice.parquet", 3_000, seed=21)
    before = published()
    scorers = [
        subprocess.Popen(score_command(batch), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]  # fmt: skip
    outputs = [scorer.communicate(timeout=600) for scorer in scorers]

    for scorer, (_, stderr) in zip(scorers, outputs, strict=True):
        assert scorer.returncode == 0, stderr[-3000:]
    titles = sorted("already published" in out for out, _ in outputs)
    assert titles == [False, True]  # one scored it, the other found it published
    batch_id = new_batch(before)
    runs = scoring_runs(batch_id)
    assert runs.keys() == {"FINISHED"} and len(runs["FINISHED"]) == 1, runs
    assert (state_dir().quarantine(*FRAUD) / batch_id / "report.json").is_file()


def test_a_kill_while_mlflow_records_is_closed_as_killed_by_the_rerun(env, tmp_path):
    batch = write_batch(tmp_path, "killed-while-recording.parquet", 2_000, seed=22)
    before = published()
    marker = tmp_path / "marker"
    process = stopped_scorer(env, batch, marker, "recording")
    try:
        wait_for(marker, process)
        os.kill(process.pid, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    batch_id = new_batch(before)
    (left_running,) = scoring_runs(batch_id)["RUNNING"]  # what the kill leaves

    code, output = rescore(batch)

    assert code == 0, output
    assert "already published" in output
    runs = scoring_runs(batch_id)
    assert runs.keys() == {"KILLED", "FINISHED"}, runs
    assert runs["KILLED"] == [left_running] and len(runs["FINISHED"]) == 1


def test_a_kill_between_the_batch_and_its_quarantine_is_repaired_by_the_rerun(env, tmp_path):
    """The quarantine is published after its batch: a kill in between leaves the batch and a
    hidden, complete quarantine, which the rerun puts in place."""
    batch = write_batch(tmp_path, "killed-before-quarantine.parquet", 2_000, seed=23)
    before = published()
    marker = tmp_path / "marker"
    process = stopped_scorer(env, batch, marker, "quarantine")
    assert process.wait(timeout=600) == -signal.SIGKILL, process.stderr.read()[-3000:]
    assert marker.read_text() == "published"
    batch_id = new_batch(before)
    quarantine = state_dir().quarantine(*FRAUD)
    manifest = read_json_file(state_dir().output_dir(*FRAUD) / batch_id / "manifest.json")
    assert manifest["rows"]["quarantined"] >= len(BAD_ROWS)
    assert not (quarantine / batch_id).exists()
    assert (quarantine / f".{batch_id}.pending" / "report.json").is_file()
    assert scoring_runs(batch_id) == {}

    code, output = rescore(batch)

    assert code == 0, output
    assert (quarantine / batch_id / "report.json").is_file()
    assert (quarantine / batch_id / "rows.parquet").is_file()
    assert not (quarantine / f".{batch_id}.pending").exists()
    assert len(scoring_runs(batch_id)["FINISHED"]) == 1


# --- a disk that refuses the batch ---------------------------------------------------------------


@contextlib.contextmanager
def small_disk(folder: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted on `folder` (as root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize(
    ("options", "says", "remedy"),
    [
        ("size=256k", "the disk is full (No space left on device)", "make room there"),
        ("size=1m,ro", "the disk is read-only (Read-only file system)", "mount it writable"),
    ],
    ids=["full", "read-only"],
)
def test_a_full_or_read_only_output_disk_is_exit_16_and_publishes_nothing(
    env, tmp_path, options, says, remedy
):
    batch = write_batch(tmp_path, "too-big.parquet", 20_000, seed=24)
    outputs = state_dir().output_dir(*FRAUD)
    outputs.mkdir(parents=True, exist_ok=True)
    before = published()
    with small_disk(outputs, options) as disk:
        if "ro" not in options.split(","):
            (disk / "filler").write_bytes(b"x" * 200_000)
        code, message = rescore(batch)
        left_on_disk = sorted(p.name for p in disk.iterdir())

    assert code == 16, message
    assert says in message and str(outputs) in message, message
    assert "Traceback" not in message
    assert "nothing was published" in message and remedy in message
    assert left_on_disk in ([], ["filler"])  # staging cleaned
    assert published() == before  # no batch, no quarantine, nothing staged or pending


# --- an inbox file that crashes the scorer ------------------------------------------------------


def test_an_inbox_file_that_crashes_the_scorer_is_quarantined_after_three_attempts(
    env, monkeypatch
):
    """No input crashes the scorer on purpose, so the crash is made: scoring the file raises
    an error agencyml does not know, as a bug would; everything else is the real poll."""
    folder = state_dir().inbox(*FRAUD)
    dropped = write_batch(folder, "poison.parquet", 500, seed=25).read_bytes()
    real_scoring = tasks.score_stream

    def crashing_on_poison(spec, path, *args, **kwargs):
        if Path(path).name == "poison.parquet":
            raise ZeroDivisionError("division by zero")
        return real_scoring(spec, path, *args, **kwargs)

    monkeypatch.setattr(tasks, "score_stream", crashing_on_poison)
    claimed = folder / ".claimed" / "poison.parquet"
    for attempt in range(1, inbox.POISON_ATTEMPTS):
        with pytest.raises(InboxError, match=r"poison\.parquet: ZeroDivisionError.*quarantine"):
            inbox_poll(*FRAUD, settle_seconds=0)
        assert claimed.is_file() and len(inbox.failed_attempts(claimed)) == attempt
    write_batch(folder, "good.parquet", 500, seed=26)

    result = inbox_poll(*FRAUD, settle_seconds=0)  # the third crash: set aside, no failure

    (poison,) = result.quarantined
    receipt = json.loads(Path(poison["filed_as"] + ".json").read_text())
    assert receipt["outcome"] == "quarantine" and receipt["error"] == "ScorerCrashed"
    assert f"failed {inbox.POISON_ATTEMPTS} times" in receipt["reason"]
    assert "ZeroDivisionError: division by zero" in receipt["reason"]
    assert len(receipt["attempts"]) == inbox.POISON_ATTEMPTS
    assert Path(poison["filed_as"]).read_bytes() == dropped  # kept whole
    assert [item["file"] for item in result.scored] == ["good.parquet"]
    assert list((folder / ".claimed").iterdir()) == []  # the count left with the file
    assert inbox_poll(*FRAUD, settle_seconds=0).failed == []
