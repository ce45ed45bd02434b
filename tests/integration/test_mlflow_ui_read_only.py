"""The registry's champion is agencyml's to move: `agencyml ui` (a real process in front of a real
MLflow server) passes the UI's reads and refuses its writes unless started with --allow-writes,
and an alias moved behind agencyml's back stops scoring with exit 11, publishing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from mlflow.tracking import MlflowClient
from servers import free_port, stop, wait_until_up
from typer.testing import CliRunner

from flows.cli import app
from pipelines.config import load_use_case
from pipelines.paths import PACKAGE_ROOT, state_dir
from pipelines.registry import promotion
from pipelines.scoring.batches import write_holdout_batch

MODEL = "business-aid.fraud-risk"
runner = CliRunner()


@pytest.fixture(scope="module")
def project(prefect_server, trained_small_project, tmp_path_factory) -> Iterator[dict[str, Path]]:
    with trained_small_project(
        tmp_path_factory.mktemp("ui-read-only"), ("business-aid", "fraud-risk")
    ) as trained:
        yield trained


def start_ui(log: Path, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    """`agencyml ui` as its own process on a free port, and its url."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows", "ui", "--port", str(port), *options],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def uis(project, tmp_path_factory) -> Iterator[dict[str, tuple[str, int]]]:
    """Two `agencyml ui` processes, read-only and with --allow-writes, started together."""
    logs = tmp_path_factory.mktemp("ui-logs")
    started = {
        "read-only": (logs / "read-only.log", *start_ui(logs / "read-only.log")),
        "writes": (logs / "writes.log", *start_ui(logs / "writes.log", "--allow-writes")),
    }
    try:
        for log, process, url in started.values():
            wait_until_up(f"{url}/health", process, log)
        yield {name: (url, process.pid) for name, (_, process, url) in started.items()}
    finally:
        for _, process, _ in started.values():
            stop(process)


def listening_ports(pid: int) -> set[int]:
    """The TCP ports a process and every process below it listen on."""
    processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    return {
        connection.laddr.port
        for process in processes
        for connection in process.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN
    }


def registry() -> MlflowClient:
    return MlflowClient(state_dir().tracking_uri, state_dir().tracking_uri)


def champion() -> str | None:
    version = registry().get_registered_model(MODEL).aliases.get("champion")
    return None if version is None else str(version)


def score(holdout: Path) -> tuple[int, str]:
    result = runner.invoke(
        app, ["score", "-a", "business-aid", "-u", "fraud-risk", "--input", str(holdout)]
    )
    return result.exit_code, " ".join(result.output.split())


def published() -> list[str]:
    outputs = state_dir().output_dir("business-aid", "fraud-risk")
    return sorted(p.name for p in outputs.iterdir()) if outputs.exists() else []


def scoring_runs() -> int:
    experiment = registry().get_experiment_by_name("agencyml/business-aid/scoring")
    if experiment is None:
        return 0
    return len(registry().search_runs([experiment.experiment_id]))


def test_a_champion_moved_outside_agencyml_stops_scoring(project) -> None:
    state = state_dir()
    holdout = write_holdout_batch(load_use_case("business-aid", "fraud-risk"), state)
    first = registry().get_model_version_by_alias(MODEL, "champion")
    # a second version, made champion through MLflow's client: no audit event records either
    second = registry().create_model_version(MODEL, first.source, run_id=first.run_id)
    registry().set_registered_model_alias(MODEL, "champion", second.version)
    before = (published(), scoring_runs())

    moved_code, moved = score(holdout)
    registry().delete_registered_model_alias(MODEL, "champion")
    deleted_code, deleted = score(holdout)
    deleted_check = promotion.alias_disagreement(MODEL, state)
    after = (published(), scoring_runs())
    registry().set_registered_model_alias(MODEL, "champion", first.version)  # put back
    restored_check = promotion.alias_disagreement(MODEL, state)
    restored_code, restored = score(holdout)

    assert moved_code == 11, moved
    assert (
        f"the registry's champion of {MODEL} is version {second.version}, but the audit log says "
        f"version {first.version}" in moved
    )
    assert "moved outside agencyml" in moved and "Traceback" not in moved
    assert deleted_code == 11, deleted
    assert f"the registry has no champion of {MODEL} (its alias was deleted)" in deleted
    assert f"the audit log says version {first.version}" in deleted
    assert deleted_check is not None and "alias was deleted" in deleted_check
    assert after == before  # nothing published, no scoring run recorded
    assert restored_check is None
    assert restored_code == 0, restored
    assert published() != before[0]


WRITES = [
    ("DELETE", "/ajax-api/2.0/mlflow/registered-models/alias", {"alias": "champion"}),
    ("POST", "/ajax-api/2.0/mlflow/registered-models/alias", {"alias": "champion", "version": 1}),
    ("POST", "/ajax-api/2.0/mlflow/experiments/create", {"name": "made-in-the-ui"}),
    ("POST", "/api/2.0/mlflow/experiments/create", {"name": "made-through-the-api"}),
    ("POST", "/ajax-api/2.0/mlflow/model-versions/set-tag", {"key": "k", "value": "v"}),
    ("PATCH", "/ajax-api/2.0/mlflow/registered-models/update", {"description": "edited"}),
    ("POST", "/ajax-api/2.0/mlflow/runs/delete", {"run_id": "0"}),
    ("POST", "/ajax-api/3.0/mlflow/traces", {}),
    ("POST", "/v1/traces", {}),
]


def test_the_ui_serves_its_reads_and_refuses_every_write(uis) -> None:
    experiments_before = sorted(e.name for e in registry().search_experiments())
    url, pid = uis["read-only"]
    page = httpx.get(f"{url}/", timeout=60)
    found = httpx.post(
        f"{url}/ajax-api/2.0/mlflow/experiments/search", json={"max_results": 50}, timeout=60
    )
    ids = [e["experiment_id"] for e in found.json()["experiments"]]
    runs = httpx.post(
        f"{url}/ajax-api/2.0/mlflow/runs/search", json={"experiment_ids": ids}, timeout=60
    )
    models = httpx.get(f"{url}/ajax-api/2.0/mlflow/registered-models/search", timeout=60)
    versions = httpx.get(
        f"{url}/api/2.0/mlflow/model-versions/search",
        params={"filter": f"name='{MODEL}'"},
        timeout=60,
    )
    run_id = runs.json()["runs"][0]["info"]["run_id"]
    graphql = httpx.post(
        f"{url}/graphql",
        json={
            "query": f'{{ mlflowGetRun(input: {{runId: "{run_id}"}}) {{ run {{ info '
            "{ status } } } }"
        },
        timeout=60,
    )
    refused = {
        (method, path): httpx.request(
            method, f"{url}{path}", json={"name": MODEL, **body}, timeout=60
        )
        for method, path, body in WRITES
    }

    assert page.status_code == 200 and "<html" in page.text.lower()
    # MLflow's own server opens no port: only the proxy listens, on the port asked for
    assert listening_ports(pid) == {int(url.rsplit(":", 1)[1])}
    assert found.status_code == 200 and "agencyml/business-aid" in found.text
    assert runs.status_code == 200 and runs.json()["runs"]
    assert models.status_code == 200 and MODEL in models.text
    assert versions.status_code == 200 and versions.json()["model_versions"]
    assert graphql.status_code == 200 and '"status"' in graphql.text, graphql.text
    for (method, path), answer in refused.items():
        assert answer.status_code == 403, (method, path, answer.text)
        said = answer.json()
        assert said["error_code"] == "PERMISSION_DENIED"
        assert f"{method} {path}" in said["message"]
        assert "agencyml ui --allow-writes" in said["message"]
    # nothing changed: the champion, the experiments, the model's description
    assert champion() == "1"
    assert sorted(e.name for e in registry().search_experiments()) == experiments_before
    assert registry().get_registered_model(MODEL).description in (None, "")


def test_with_allow_writes_a_write_passes(uis) -> None:
    created = httpx.post(
        f"{uis['writes'][0]}/ajax-api/2.0/mlflow/experiments/create",
        json={"name": "made-in-the-ui-on-purpose"},
        timeout=60,
    )

    assert created.status_code == 200, created.text
    assert registry().get_experiment_by_name("made-in-the-ui-on-purpose") is not None


def test_a_port_in_use_is_said_at_once(uis) -> None:
    url, _ = uis["read-only"]
    busy = url.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "flows", "ui", "--port", busy],
        env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    said = " ".join(done.stderr.split())
    assert done.returncode == 2, done.stderr
    assert f"cannot serve on 127.0.0.1:{busy}" in said and "--port" in said
    assert "Traceback" not in done.stderr
