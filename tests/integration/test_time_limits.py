"""Time limits the runs keep themselves, against real MLflow and Prefect, while another process
keeps every core busy: a scoring or training run past its use case's limit stops, exits 14 with a
message naming the limit, and publishes (or registers) nothing; the inbox files such a batch in
its quarantine. The limits must hold however the machine is loaded, not by a lucky signal."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from flows import train as train_module
from flows.cli import app
from flows.deployed import inbox_poll
from flows.train import train
from pipelines.data.business_aid import generate_applications
from pipelines.deadline import Deadline, TimeLimitError, run_deadline
from pipelines.paths import state_dir
from pipelines.scoring.streaming import available_cores

FRAUD = ("business-aid", "fraud-risk")
MODEL = "business-aid.fraud-risk"
BURN = "while True:\n    pass\n"


@pytest.fixture(scope="module", autouse=True)
def busy_cores() -> Iterator[list[subprocess.Popen[bytes]]]:
    """One CPU-burning process per core for the whole module, stopped after it."""
    burners = [
        subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(max(2, available_cores()))
    ]
    try:
        yield burners
    finally:
        for burner in burners:
            burner.kill()
            burner.wait(timeout=30)


@pytest.fixture(scope="module")
def trained(prefect_server, tmp_path_factory, trained_small_project):
    with trained_small_project(tmp_path_factory.mktemp("time-limits"), FRAUD) as project:
        yield project


@pytest.fixture
def env(trained, monkeypatch):
    monkeypatch.setenv("AGENCYML_PROJECT_ROOT", str(trained["project"]))
    monkeypatch.setenv("AGENCYML_HOME", str(trained["root"] / "state"))
    return trained


@pytest.fixture
def limits(env) -> Iterator[Callable[..., None]]:
    """Set fraud-risk's time limits (minutes) in its params; put back after the test."""
    params_file = env["project"] / "params" / "business-aid.yaml"
    original = params_file.read_text()

    def set_limits(**minutes: float) -> None:
        params = yaml.safe_load(original)
        params["use_cases"]["fraud-risk"]["orchestration"].update(minutes)
        params_file.write_text(yaml.safe_dump(params, sort_keys=False))

    yield set_limits
    params_file.write_text(original)


def published() -> list[str]:
    outputs = state_dir().output_dir(*FRAUD)
    return sorted(p.name for p in outputs.iterdir()) if outputs.exists() else []


def staging_left() -> list[Path]:
    places = (state_dir().output_dir(*FRAUD), state_dir().quarantine(*FRAUD))
    return [path for place in places if place.exists() for path in place.glob(".*.staging")]


def write_batch(path: Path, rows: int, seed: int) -> Path:
    generate_applications(rows, seed=seed).drop(columns=["is_fraud", "review_track"]).to_parquet(
        path
    )
    return path


def registry() -> MlflowClient:
    uri = state_dir().tracking_uri
    return MlflowClient(uri, uri)


def versions() -> list[str]:
    found = registry().search_model_versions(f"name='{MODEL}'")
    return sorted((str(v.version) for v in found), key=int)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_a_scoring_run_over_its_time_limit_publishes_nothing(limits):
    limits(score_timeout_minutes=0.02)
    folder = state_dir().inbox(*FRAUD)
    folder.mkdir(parents=True, exist_ok=True)
    write_batch(folder / "too-slow.parquet", 60_000, seed=6)
    before = published()

    result = inbox_poll(*FRAUD, settle_seconds=0, chunk_rows=1_000)

    (item,) = result.quarantined
    assert item["file"] == "too-slow.parquet" and item["error"] == "TimeLimitError"
    assert "orchestration.score_timeout_minutes = 1.2 s" in item["reason"]
    assert Path(item["filed_as"]).is_file()
    assert not result.scored and not result.failed
    assert published() == before
    assert not staging_left()


def test_the_score_command_past_its_limit_exits_14_and_publishes_nothing(limits, tmp_path):
    limits(score_timeout_minutes=0.02)
    batch = write_batch(tmp_path / "large.parquet", 60_000, seed=7)
    before = published()

    code, output = invoke("score", "-a", FRAUD[0], "-u", FRAUD[1], "-i", str(batch))

    assert code == 14, output
    assert "scoring business-aid.fraud-risk ran past its time limit" in output
    assert "orchestration.score_timeout_minutes = 1.2 s" in output
    assert "nothing was published" in output
    assert published() == before
    assert not staging_left()


def test_the_train_command_past_its_limit_exits_14_and_registers_nothing(limits):
    limits(train_timeout_minutes=0.001)
    before = versions()

    code, output = invoke("train", "-a", FRAUD[0], "-u", FRAUD[1])

    assert code == 14, output
    assert "training business-aid.fraud-risk ran past its time limit" in output
    assert "orchestration.train_timeout_minutes = 0.1 s" in output
    assert "before registering a version" in output
    assert versions() == before


def test_a_training_past_its_limit_before_the_gate_leaves_the_champion_alone(env, monkeypatch):
    """A clock that jumps past the limit after the first check: the version is registered, and
    the gate, which could move the champion, never runs."""
    readings = itertools.chain([0.0, 0.0], itertools.repeat(10_000.0))

    def deadline_on_a_fake_clock(spec, kind) -> Deadline:
        return run_deadline(spec, kind, clock=lambda: next(readings))

    monkeypatch.setattr(train_module, "run_deadline", deadline_on_a_fake_clock)
    champion = registry().get_model_version_by_alias(MODEL, "champion").version
    before = versions()

    with pytest.raises(TimeLimitError, match="before the promotion gate") as raised:
        train(*FRAUD)

    after = versions()
    (new,) = set(after) - set(before)
    assert f"version {new} is registered without an alias" in str(raised.value)
    assert registry().get_model_version(MODEL, new).aliases == []
    assert registry().get_model_version_by_alias(MODEL, "champion").version == champion


def test_the_limits_are_tested_on_a_loaded_machine(busy_cores):
    """Every core has had a busy process beside these tests, from first to last."""
    for burner in busy_cores:
        assert burner.poll() is None
        process = psutil.Process(burner.pid)
        # its share of a core since it started, not over one short window: on 2 cores the
        # burners share them with the tests' own processes, so a 0.5 s sample can dip low
        used = sum(process.cpu_times()[:2]) / (time.time() - process.create_time())
        assert used > 0.2, f"a burner used {used:.0%} of a core"
