"""The shared topology, end to end, as processes on this machine: an MLflow tracking server on
PostgreSQL with its artifacts in an S3-compatible store (a moto server), a Prefect server on
PostgreSQL, a DVC remote in the same store, the pull service, and a worker running the inbox
deployment, all started from pipelines/orchestration/topology.py, the module deploy/compose.yaml
is written from. Two agencies train, score and pull through it and `lineage` follows every link
through the servers. Then the MLflow server, and the Prefect server, are killed and restarted
in the middle of a scoring run: the run carries on or fails cleanly, nothing is published twice
or half, and the rerun publishes.

Skipped, saying why, where the tests' PostgreSQL does not answer (.ci/run starts it)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import postgres
import psutil
import psycopg2
import pytest
import yaml
from servers import free_port, s3_client, s3_server, wait_until_up

from pipelines.orchestration.topology import Topology
from pipelines.paths import PACKAGE_ROOT

AGENCIES = {"business-aid": "fraud-risk", "product-safety": "risk-triage"}
BUCKET = "agencyml-topology"
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
PROGRAMS = {"mlflow": [sys.executable, "-m", "mlflow"], "agencyml": [sys.executable, "-m", "flows"]}
HEALTH = {"mlflow": "/health", "prefect-server": "/api/health", "pull-service": "/openapi.json"}


def kill_tree(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a server and every process it started, as a machine that dies would."""
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(process.pid)
        for child in [*parent.children(recursive=True), parent]:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


class Shared:
    """The topology's processes, and agencyml commands pointed at them."""

    def __init__(self, root: Path, topology: Topology, env: dict[str, str]) -> None:
        self.root, self.topology, self.env = root, topology, env
        self.project, self.state = Path(topology.project), Path(topology.state)
        self.logs = root / "logs"
        self.logs.mkdir(exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        """Start one of the topology's services with its own command and settings."""
        service = self.topology.services()[name]
        program, *args = service.command
        env = {**self.env, **service.environment, "PREFECT_HOME": str(self.root / name)}
        if name == "prefect-server":
            env.pop("PREFECT_API_URL", None)
        log = self.logs / f"{name}.log"
        with open(log, "ab") as output:
            self.processes[name] = subprocess.Popen(
                [*PROGRAMS[program], *args],
                cwd=self.project,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if name in HEALTH:
            wait_until_up(
                f"http://127.0.0.1:{service.port}{HEALTH[name]}", self.processes[name], log
            )

    def kill(self, name: str) -> None:
        kill_tree(self.processes.pop(name))

    def agencyml(self, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*PROGRAMS["agencyml"], *args],
            cwd=self.project,
            env={**self.env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str, timeout: int = 900) -> str:
        done = self.agencyml(*args, timeout=timeout)
        assert done.returncode == 0, f"agencyml {args}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        return done.stdout

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]

    def published(self, agency: str) -> dict[str, bool]:
        """Visible batch folders of the agency's use case: name -> has its manifest."""
        folder = self.state / "outputs" / agency / AGENCIES[agency]
        if not folder.is_dir():
            return {}
        return {
            entry.name: (entry / "manifest.json").is_file()
            for entry in folder.iterdir()
            if not entry.name.startswith(".")
        }

    def stop(self) -> None:
        for name in list(self.processes):
            if self.processes[name].poll() is None:
                kill_tree(self.processes[name])


def git(project: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=project,
        check=True,
        capture_output=True,
    )


def prepare_project(project: Path, endpoint: str, env: dict[str, str]) -> None:
    """The small project as a git + DVC repository whose default DVC remote is in the bucket,
    with the deployments' entrypoints beside it and no scheduled run during the test."""
    import shutil

    for package in ("flows", "pipelines"):
        shutil.copytree(
            PACKAGE_ROOT / package, project / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    for path in (project / "params").glob("*.yaml"):
        params = yaml.safe_load(path.read_text())
        for use_case in params["use_cases"].values():
            use_case.setdefault("orchestration", {})["inbox_poll_seconds"] = 86_400
        path.write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = [sys.executable, "-m", "dvc"]
    git(project, "init", "-q")
    for command in (
        ["init", "-q"],
        ["remote", "add", "-d", "s3", f"s3://{BUCKET}/dvc"],
        ["remote", "modify", "s3", "endpointurl", endpoint],
        ["remote", "modify", "s3", "verify", "true"],
    ):
        subprocess.run([*dvc, *command], cwd=project, env=env, check=True, capture_output=True)
    subprocess.run(
        [*PROGRAMS["agencyml"], "sync"], cwd=project, env=env, check=True, capture_output=True
    )
    git(project, "add", "-A")
    git(project, "commit", "-qm", "a small project on the shared topology")


@pytest.fixture(scope="module")
def shared(tmp_path_factory, make_small_project) -> Iterator[Shared]:
    reason = postgres.unavailable()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("topology")
    with contextlib.ExitStack() as stack:
        mlflow_db = stack.enter_context(postgres.throwaway_database("mlflow"))
        prefect_db = stack.enter_context(postgres.throwaway_database("prefect"))
        endpoint = stack.enter_context(s3_server(root / "s3.log", AWS, BUCKET))
        ports = {name: free_port() for name in ("mlflow", "prefect", "pull")}
        topology = Topology(
            mlflow_database=postgres.database_url(mlflow_db, "postgresql+psycopg2"),
            prefect_database=postgres.database_url(prefect_db, "postgresql+asyncpg"),
            artifacts=f"s3://{BUCKET}/mlflow",
            s3_endpoint=endpoint,
            mlflow_url=f"http://127.0.0.1:{ports['mlflow']}",
            prefect_api_url=f"http://127.0.0.1:{ports['prefect']}/api",
            state=str(root / "state"),
            project=str(make_small_project(root / "project")),
            bind="127.0.0.1",
            mlflow_port=ports["mlflow"],
            prefect_port=ports["prefect"],
            pull_port=ports["pull"],
            mlflow_workers=1,
            extra_environment=dict(AWS),
        )
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("AGENCYML_", "PREFECT_", "MLFLOW_", "AWS_"))
        }
        env.update(
            {
                **AWS,
                **topology.agencyml_environment(),
                "PYTHONPATH": str(PACKAGE_ROOT),
                "PREFECT_HOME": str(root / "prefect-client"),
                "PREFECT_WORKER_QUERY_SECONDS": "1",
                "DVC_SITE_CACHE_DIR": str(root / "dvc-site-cache"),
            }
        )
        prepare_project(Path(topology.project), endpoint, env)
        platform = Shared(root, topology, env)
        stack.callback(platform.stop)
        for name in ("mlflow", "prefect-server", "pull-service"):
            platform.start(name)
        platform.endpoint = endpoint
        platform.databases = {"mlflow": mlflow_db, "prefect": prefect_db}
        yield platform


def rows_in(database: str, table: str) -> int:
    url = postgres.database_url(database)
    with closing(psycopg2.connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table}"')
        return cursor.fetchone()[0]


def bucket_keys(endpoint: str, prefix: str) -> list[str]:
    pages = (
        s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    )
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def test_two_agencies_train_score_pull_and_trace_through_the_shared_servers(shared, tmp_path):
    batches = {}
    for agency, use_case in AGENCIES.items():
        shared.ok("ingest", "--agency", agency)
        shared.ok("train", "--agency", agency, "--use-case", use_case)
        sample = tmp_path / f"{agency}.parquet"
        shared.ok("sample", "-a", agency, "-u", use_case, "-o", str(sample), "--rows", "300")
        before = set(shared.published(agency))
        shared.ok("score", "-a", agency, "-u", use_case, "-i", str(sample))
        [batches[agency]] = set(shared.published(agency)) - before

    for agency, batch_id in batches.items():
        created = shared.ok("tokens", "create", "--agency", agency, "--name", f"{agency} pull")
        secret = next(word for word in created.split() if word.startswith("aml_"))
        target = tmp_path / f"{agency}-pulled.parquet"
        url = f"http://127.0.0.1:{shared.topology.pull_port}"
        shared.ok(
            "pull", "--agency", agency, "--batch", batch_id, "-o", str(target),
            "--url", url, "--token", secret,
        )  # fmt: skip
        manifest = json.loads(
            (
                shared.state / "outputs" / agency / AGENCIES[agency] / batch_id / "manifest.json"
            ).read_text()
        )
        import hashlib

        assert (
            hashlib.sha256(target.read_bytes()).hexdigest()
            == (manifest["file_sha256"]["scored.parquet"])
        )
        traced = json.loads(shared.ok("lineage", batch_id, "--json"))
        kinds = set()
        stack = [traced]
        while stack:
            node = stack.pop()
            kinds.add(node["kind"])
            assert node["missing"] == [], node
            stack.extend(node["children"])
        assert {"scoring run", "model version", "training run", "dataset"} <= kinds

    # every record is where the topology puts it: PostgreSQL, and the bucket
    assert rows_in(shared.databases["mlflow"], "runs") >= 4
    assert rows_in(shared.databases["mlflow"], "registered_models") == 2
    assert rows_in(shared.databases["prefect"], "flow_run") >= 6
    keys = bucket_keys(shared.endpoint, "")
    assert any(k.startswith("mlflow/") and k.endswith("MLmodel") for k in keys), keys[:20]
    assert any(k.startswith("dvc/") for k in keys), keys[:20]
    assert not (shared.state / "mlflow" / "mlflow.db").exists()


def test_the_worker_runs_the_inbox_deployment_from_the_shared_prefect(shared, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    shared.ok(
        "deploy", "--run-dir", str(shared.project), "--api-url", shared.topology.prefect_api_url
    )
    shared.start("worker")
    agency, use_case = "business-aid", AGENCIES["business-aid"]
    inbox = shared.state / "inbox" / agency / use_case
    inbox.mkdir(parents=True, exist_ok=True)
    shared.ok("sample", "-a", agency, "-u", use_case, "-o", str(tmp_path / "drop.parquet"))
    (tmp_path / "drop.parquet").rename(inbox / "drop.parquet")
    os.utime(inbox / "drop.parquet", (time.time() - 3600, time.time() - 3600))  # settled
    before = set(shared.published(agency))

    with temporary_settings(updates={PREFECT_API_URL: shared.topology.prefect_api_url}):
        run = run_deployment(
            f"inbox/{agency}-{use_case}-inbox",
            parameters={"agency": agency, "use_case": use_case},
            timeout=0,
        )
        deadline = time.monotonic() + 600
        while True:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(run.id).state_type.value
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                break
            assert time.monotonic() < deadline, shared.log("worker")
            time.sleep(2)

    assert state == "COMPLETED", shared.log("worker")
    new = set(shared.published(agency)) - before
    assert len(new) == 1 and all(shared.published(agency)[name] for name in new)


@pytest.mark.parametrize("server", ["mlflow", "prefect-server"])
def test_a_server_killed_during_a_scoring_run_publishes_nothing_twice_or_half(
    shared, tmp_path, server
):
    agency, use_case = "product-safety", AGENCIES["product-safety"]
    batch = tmp_path / "batch.parquet"
    rows = {"mlflow": "500", "prefect-server": "450"}[server]  # a batch (and batch id) of its own
    shared.ok("sample", "-a", agency, "-u", use_case, "-o", str(batch), "--rows", rows)
    before = set(shared.published(agency))

    with open(tmp_path / "score.log", "wb") as log:
        scoring = subprocess.Popen(
            [*PROGRAMS["agencyml"], "score", "-a", agency, "-u", use_case, "-i", str(batch)],
            cwd=shared.project,
            env=shared.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    time.sleep(2)  # the run has started talking to both servers
    shared.kill(server)
    time.sleep(3)
    shared.start(server)  # same command, same port, same database
    first = scoring.wait(timeout=900)
    after_first = shared.published(agency)

    rerun = shared.agencyml("score", "-a", agency, "-u", use_case, "-i", str(batch))
    after_rerun = shared.published(agency)

    said = (tmp_path / "score.log").read_text(errors="replace")
    assert "Traceback" not in said or first != 0, said[-3000:]
    new_first = set(after_first) - before
    assert len(new_first) <= 1 and all(after_first[name] for name in new_first), said[-3000:]
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-3000:]
    new = set(after_rerun) - before
    assert len(new) == 1 and all(after_rerun.values())  # once, and whole
    if first == 0:
        assert new == new_first  # the rerun found the batch already published
