"""`agencyml server --port` for real: the UI it serves points browsers at that port, and
`deploy --api-url` and `worker --api-url` reach it whatever PREFECT_API_URL says."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import free_port, stop, wait_until_up

from pipelines.orchestration import prefect_server
from pipelines.orchestration.deployments import WORK_POOL

BIN = Path(sys.executable).parent
NOWHERE = "http://127.0.0.1:9/api"  # a PREFECT_API_URL that --api-url must override


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """`agencyml server --port <a free port>` with its UI, in its own process."""
    root = tmp_path_factory.mktemp("server-port")
    port = free_port()
    environment = {
        **os.environ,
        "AGENCYML_HOME": str(root / "state"),
        "PREFECT_HOME": str(root / "prefect-home"),
        "PREFECT_API_URL": NOWHERE,
    }
    log = root / "server.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [str(BIN / "agencyml"), "server", "--port", str(port)],
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/api/health", process, log)
        yield {"url": url, "api": f"{url}/api", "env": environment, "root": root}
    finally:
        stop(process)


def test_the_ui_is_told_the_port_actually_served(server):
    settings = httpx.get(f"{server['url']}/ui-settings", timeout=10).json()
    assert settings["api_url"] == server["api"]
    assert httpx.get(server["url"] + "/", timeout=10).status_code == 200  # the UI itself


def test_deploy_and_worker_with_api_url_reach_that_server(server, project_copy):
    environment = {
        **server["env"],
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "AGENCYML_PROJECT_ROOT": str(project_copy),
        "COLUMNS": "200",
    }
    deployed = subprocess.run(
        [str(BIN / "agencyml"), "deploy", "--api-url", server["api"]],
        cwd=project_copy,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert f"Deployments on {server['api']}" in deployed.stdout
    assert f"agencyml worker --api-url {server['api']}" in deployed.stdout

    with open(server["root"] / "worker.log", "wb") as output:
        worker = subprocess.Popen(
            [str(BIN / "agencyml"), "worker", "--api-url", server["api"]],
            env={**environment, "PREFECT_WORKER_HEARTBEAT_SECONDS": "1"},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        from prefect.client.orchestration import get_client

        with prefect_server.talking_to(server["api"]), get_client(sync_client=True) as client:
            names = {deployment.name for deployment in client.read_deployments()}
            assert "business-aid-fraud-risk-inbox" in names and len(names) == 9
            deadline = time.monotonic() + 180
            while not client.read_workers_for_work_pool(WORK_POOL):
                assert worker.poll() is None, (server["root"] / "worker.log").read_text()
                assert time.monotonic() < deadline, (server["root"] / "worker.log").read_text()
                time.sleep(0.5)
    finally:
        stop(worker)
