"""What a command does not do when it need not: rescoring a batch already published loads no
model and imports no validation gate, and commands find the state directory's background
Prefect server instead of each starting a server of their own. Each command runs as a new
process, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pipelines.config import load_use_case
from pipelines.orchestration import local_server
from pipelines.paths import PACKAGE_ROOT, StateDir
from pipelines.scoring.batches import write_sample_batch

# the CLI in a new process, counting MLflow model loads and noting which modules it imported
COUNTING_CLI = """
import json, os, sys
import mlflow.pyfunc

loads = []
real_load = mlflow.pyfunc.load_model

def counted_load(*args, **kwargs):
    loads.append(str(args[0]) if args else "")
    return real_load(*args, **kwargs)

mlflow.pyfunc.load_model = counted_load
from flows.cli import app

try:
    code = app(args=sys.argv[1:], prog_name="agencyml", standalone_mode=False) or 0
finally:
    with open(os.environ["REPORT"], "w") as report:
        json.dump({"model_loads": loads, "gx": "great_expectations" in sys.modules}, report)
sys.exit(code)
"""


def server_processes(prefect_home: Path) -> list[int]:
    """Prefect servers whose database is in this Prefect home (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        is_server = b"server" in command and b"start" in command
        if is_server and f"PREFECT_HOME={prefect_home}".encode() in environment:
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def trained(prefect_server, tmp_path_factory, trained_small_project):
    root = tmp_path_factory.mktemp("fixed-costs")
    with trained_small_project(root, ("business-aid", "fraud-risk")) as made:
        sample, rows = write_sample_batch(
            load_use_case("business-aid", "fraud-risk"), root / "ten.parquet", 10
        )
        environment = {
            **os.environ,
            "PYTHONPATH": str(PACKAGE_ROOT),
            "AGENCYML_PROJECT_ROOT": str(made["project"]),
            "AGENCYML_HOME": str(root / "state"),
        }
    for name in ("PREFECT_API_URL", "AGENCYML_PREFECT_SERVER"):
        environment.pop(name, None)  # as a user runs it: the default, the background server
    state = StateDir(root / "state")
    yield {"root": root, "sample": sample, "rows": rows, "env": environment, "state": state}
    local_server.stop(state)


def agencyml(trained, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    report = trained["root"] / "report.json"
    done = subprocess.run(
        [sys.executable, "-c", COUNTING_CLI, *args],
        env={**trained["env"], "REPORT": str(report)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{args}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done, json.loads(report.read_text())


def test_rescoring_loads_no_model_and_commands_share_one_prefect_server(trained):
    score = ("score", "-a", "business-aid", "-u", "fraud-risk", "-i", str(trained["sample"]))
    state: StateDir = trained["state"]

    first, first_report = agencyml(trained, *score)
    assert "Scored batch" in first.stdout
    assert len(first_report["model_loads"]) == 1  # scoring needs the model
    assert "started a local Prefect server" in first.stderr
    server = local_server.running(state)
    assert server is not None

    again, again_report = agencyml(trained, *score)
    assert "Batch already published" in again.stdout
    assert again_report["model_loads"] == []  # the batch id comes from a registry lookup
    assert again_report["gx"] is False  # nothing is validated, so GX is never imported
    assert "started a local Prefect server" not in again.stderr

    # one server for both commands, and both runs are on it
    assert local_server.running(state) == server
    assert server_processes(state.prefect_home) == [server.pid]
    runs = httpx.post(f"{server.url}/flow_runs/filter", json={}, timeout=10).json()
    assert sorted(run["state_type"] for run in runs if run["name"].startswith("score-")) == [
        "COMPLETED",
        "COMPLETED",
    ]


def test_the_background_server_is_stopped_by_its_command_and_found_again(trained):
    status, _ = agencyml(trained, "server", "--status")
    assert "background Prefect server: http://127.0.0.1:" in " ".join(status.stdout.split())

    stopped, _ = agencyml(trained, "server", "--stop")
    assert "stopped the background Prefect server" in stopped.stdout
    assert local_server.running(trained["state"]) is None
    assert server_processes(trained["state"].prefect_home) == []

    after, _ = agencyml(trained, "server", "--status")
    assert "no background Prefect server runs" in " ".join(after.stdout.split())
