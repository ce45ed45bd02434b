"""Unattended runs for real: `agencyml server` on 127.0.0.1, `agencyml deploy`, `agencyml worker`,
deployment runs created through the API and executed by the worker; a file dropped in the inbox
scored once; a worker killed in the middle of a run, the run marked Crashed, and the rerun."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from mlflow.tracking import MlflowClient
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Scheduled
from servers import free_port, wait_until_up

from pipelines.config import load_use_case
from pipelines.data.business_aid import generate_applications
from pipelines.data.storage import read_json_file, read_table
from pipelines.orchestration.deployments import WORK_POOL, full_name
from pipelines.orchestration.prefect_server import CRASH_AUTOMATION
from pipelines.paths import PACKAGE_ROOT

BIN = Path(sys.executable).parent
FRAUD = ("business-aid", "fraud-risk")
TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a process and every process it started, as a machine that dies would."""
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(process.pid)
        for child in [*parent.children(recursive=True), parent]:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


class Platform:
    """A small project with its own Prefect server, deployments and worker."""

    def __init__(self, root: Path, make_small_project: Any) -> None:
        self.root = root
        self.project = make_small_project(root / "project")
        for package in ("flows", "pipelines"):  # the deployments' entrypoints live here
            shutil.copytree(
                PACKAGE_ROOT / package,
                self.project / package,
                ignore=shutil.ignore_patterns("__pycache__"),
            )
        self.params = self.project / "params" / "business-aid.yaml"
        params = yaml.safe_load(self.params.read_text())
        for use_case in params["use_cases"].values():  # no scheduled run during the test
            use_case["orchestration"]["inbox_poll_seconds"] = 86_400
        self.params.write_text(yaml.safe_dump(params, sort_keys=False))
        self.state = root / "state"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "AGENCYML_PROJECT_ROOT": str(self.project),
            "AGENCYML_HOME": str(self.state),
            "PREFECT_HOME": str(root / "prefect-home"),
            "PREFECT_API_URL": self.url,
            "PREFECT_WORKER_QUERY_SECONDS": "1",
            "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
        }
        self.logs = root / "logs"
        self.logs.mkdir()
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.logs / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                [str(BIN / "agencyml"), *args],
                cwd=self.project,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]

    def agencyml(self, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "agencyml"), *args],
            cwd=self.project,
            env={**self.env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    @contextlib.contextmanager
    def api(self) -> Iterator[Any]:
        with (
            temporary_settings(updates={PREFECT_API_URL: self.url}),
            get_client(sync_client=True) as client,
        ):
            yield client

    def run(self, kind: str, **parameters: Any) -> Any:
        """Create a flow run of this deployment through the API; the worker picks it up."""
        name = full_name(load_use_case(*FRAUD), kind)
        with temporary_settings(updates={PREFECT_API_URL: self.url}):
            return run_deployment(
                name, parameters={"agency": FRAUD[0], "use_case": FRAUD[1], **parameters}, timeout=0
            )

    def wait_for(self, flow_run_id: Any, states: set[str], timeout: float = 300) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            with self.api() as client:
                run = client.read_flow_run(flow_run_id)
            if run.state_type.value in states:
                return run
            assert time.monotonic() < deadline, (
                f"flow run {run.name} is {run.state_name}, not {states}\n{self.log('worker')}"
            )
            time.sleep(1)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                kill_tree(process)


@pytest.fixture(scope="module")
def platform(tmp_path_factory, make_small_project) -> Iterator[Platform]:
    """Server started, deployments registered, a worker running and the fraud-risk model
    trained by its training deployment."""
    platform = Platform(tmp_path_factory.mktemp("orchestration"), make_small_project)
    try:
        server = platform.start("server", "server", "--port", str(platform.port), "--no-ui")
        wait_until_up(f"{platform.url}/health", server, platform.logs / "server.log")
        deployed = platform.agencyml("deploy", "--write", "--crash-after", "45")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        platform.deploy_output = deployed.stdout
        platform.start("worker", "worker")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AGENCYML_PROJECT_ROOT", str(platform.project))
            patch.setenv("AGENCYML_HOME", str(platform.state))
            # two trainings asked for at once: the deployment's limit runs them one by one
            runs = [platform.run("train"), platform.run("train")]
            platform.trainings = [platform.wait_for(run.id, TERMINAL) for run in runs]
            yield platform
    finally:
        platform.stop()


def test_deployments_carry_the_params_schedules_limits_and_pool(platform):
    with platform.api() as client:
        deployments = {d.name: d for d in client.read_deployments()}
        pool = client.read_work_pool(WORK_POOL)
        automations = client.read_automations_by_name(CRASH_AUTOMATION)
    names = {
        f"{a}-{u}-{k}"
        for a, u in [FRAUD, ("business-aid", "case-routing"), ("product-safety", "risk-triage")]
        for k in ("train", "score", "inbox")
    }
    assert set(deployments) == names
    assert pool.type == "process"
    assert len(automations) == 1 and automations[0].trigger.within.total_seconds() == 45
    train = deployments["business-aid-fraud-risk-train"]
    (schedule,) = train.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == (
        "0 3 * * *",
        "Europe/Copenhagen",
    )
    assert train.global_concurrency_limit.limit == 1
    assert train.work_pool_name == WORK_POOL
    assert train.job_variables["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
    (pull,) = train.pull_steps  # runs start in the checkout that deployed them
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == str(
        platform.project
    )
    score = deployments["business-aid-fraud-risk-score"]
    assert score.schedules == [] and score.global_concurrency_limit.limit == 2
    (poll,) = deployments["business-aid-fraud-risk-inbox"].schedules
    assert poll.schedule.interval.total_seconds() == 86_400
    assert "business-aid-fraud-risk-train" in platform.deploy_output


def test_the_worker_runs_the_training_deployment_to_completed_one_at_a_time(platform):
    first, second = sorted(platform.trainings, key=lambda run: run.start_time)
    for run in (first, second):
        assert run.state_type.value == "COMPLETED", platform.log("worker")
    assert first.end_time <= second.start_time  # never two trainings of one model at once
    uri = f"sqlite:///{platform.state / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    versions = client.search_model_versions("name='business-aid.fraud-risk'")
    assert len(versions) == 2
    assert client.get_model_version_by_alias("business-aid.fraud-risk", "champion").version in (
        1,
        "1",
    )


def scoring_runs(platform: Platform) -> list[Any]:
    uri = f"sqlite:///{platform.state / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    experiment = client.get_experiment_by_name("agencyml/business-aid/scoring")
    return client.search_runs([experiment.experiment_id]) if experiment else []


def test_a_file_dropped_in_the_inbox_is_scored_exactly_once(platform, tmp_path):
    inbox = platform.state / "inbox" / "business-aid" / "fraud-risk"
    inbox.mkdir(parents=True, exist_ok=True)
    frame = generate_applications(3_000, seed=5).drop(columns=["is_fraud", "review_track"])
    written = tmp_path / "applications.parquet"
    frame.to_parquet(written)
    os.replace(written, inbox / "applications.parquet")  # dropped whole, as producers should
    half = inbox / "still-writing.parquet"
    half.write_bytes(b"PAR1" + b"\0" * 64)  # no footer yet
    (inbox / ".upload.parquet.tmp").write_bytes(b"PAR1")

    first = platform.run("inbox", settle_seconds=0)
    first = platform.wait_for(first.id, TERMINAL)
    assert first.state_type.value == "COMPLETED", platform.log("worker")
    processed = sorted((inbox / "processed").glob("*-applications.parquet"))
    assert len(processed) == 1
    receipt = yaml.safe_load(processed[0].with_name(processed[0].name + ".json").read_text())
    assert receipt["newly_published"] is True
    assert receipt["rows"] + receipt["rows_quarantined"] == 3_000
    batch = platform.state / "outputs" / "business-aid" / "fraud-risk" / receipt["batch_id"]
    assert len(read_table(batch / "scored.parquet")) == receipt["rows"]
    # the half-written and the temporary file are left where they are
    assert half.exists() and (inbox / ".upload.parquet.tmp").exists()
    assert not list((inbox / ".claimed").iterdir())

    second = platform.wait_for(platform.run("inbox", settle_seconds=0).id, TERMINAL)
    assert second.state_type.value == "COMPLETED"
    assert len(list((inbox / "processed").glob("*-applications.parquet"))) == 1
    runs = [
        r
        for r in scoring_runs(platform)
        if r.data.tags.get("agencyml.batch_id") == receipt["batch_id"]
    ]
    assert len(runs) == 1
    assert len(list(batch.parent.iterdir())) == 1


def test_a_worker_killed_mid_run_leaves_it_crashed_and_the_rerun_publishes_once(platform):
    batch_file = platform.root / "big-batch.parquet"
    frame = generate_applications(150_000, seed=21).drop(columns=["is_fraud", "review_track"])
    frame.to_parquet(batch_file, row_group_size=2_000)
    outputs = platform.state / "outputs" / "business-aid" / "fraud-risk"
    before = {p.name for p in outputs.iterdir() if not p.name.startswith(".")}

    run = platform.run("score", input=str(batch_file), chunk_rows=2_000, part_rows=50_000)
    platform.wait_for(run.id, {"RUNNING"}, timeout=180)
    deadline = time.monotonic() + 120
    while not list(outputs.glob(".*.staging")):  # it is writing scored rows
        assert time.monotonic() < deadline, platform.log("worker")
        time.sleep(0.2)
    (worker,) = [p for p in platform.processes if "worker" in str(p.args)]
    kill_tree(worker)
    platform.processes.remove(worker)

    crashed = platform.wait_for(run.id, {"CRASHED", "COMPLETED", "FAILED"}, timeout=240)
    assert crashed.state_type.value == "CRASHED", crashed.state
    assert {p.name for p in outputs.iterdir() if not p.name.startswith(".")} == before

    platform.start("worker", "worker")
    with platform.api() as client:
        client.set_flow_run_state(run.id, Scheduled(), force=True)  # what "Retry" does
    done = platform.wait_for(run.id, {"COMPLETED", "FAILED", "CRASHED"}, timeout=300)
    assert done.state_type.value == "COMPLETED", platform.log("worker")
    published = {p.name for p in outputs.iterdir() if not p.name.startswith(".")} - before
    assert len(published) == 1
    (batch_id,) = published
    assert not list(outputs.glob(".*.staging"))
    parts = sorted((outputs / batch_id / "scored").glob("part-*.parquet"))
    rows = read_json_file(outputs / batch_id / "manifest.json")["rows"]
    assert rows["scored"] + rows["quarantined"] == 150_000
    assert sum(len(read_table(part)) for part in parts) == rows["scored"]
    runs = [r for r in scoring_runs(platform) if r.data.tags.get("agencyml.batch_id") == batch_id]
    assert len(runs) == 1
