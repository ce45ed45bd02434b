from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prefect.testing.utilities import prefect_test_harness
from servers import free_port, stop, wait_until_up

from pipelines.paths import PACKAGE_ROOT


@pytest.fixture(scope="session")
def prefect_server():
    """A real Prefect server on a temporary database, shared by the session's flow runs."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def postgres_database():
    """A factory of throw-away PostgreSQL databases (names), dropped when the test ends; the
    test is skipped, saying why, where the tests' PostgreSQL does not answer."""
    import postgres

    reason = postgres.unavailable()
    if reason:
        pytest.skip(reason)
    with contextlib.ExitStack() as stack:
        yield lambda prefix="agencyml": stack.enter_context(postgres.throwaway_database(prefix))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


BIN = Path(sys.executable).parent


def run_command(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 900) -> str:
    """Run a real command; fail the test with its output when it exits non-zero."""
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@dataclass(frozen=True)
class DvcProject:
    root: Path  # a git + DVC repository holding a small copy of the project
    env: dict[str, str]  # runs agencyml, dvc and git against it, with state in `state`
    state: Path
    remote: Path  # the default remote, named 'local'

    def run(self, *command: str, timeout: int = 900) -> str:
        return run_command(list(command), self.root, self.env, timeout)

    def git(self, *args: str) -> str:
        return self.run("git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args)


@pytest.fixture
def sh():
    """run_command, for tests that run commands outside a DvcProject."""
    return run_command


@pytest.fixture
def dvc_project(project_copy: Path, tmp_path: Path) -> Iterator[DvcProject]:
    """project_copy as a git + DVC repository whose default remote 'local' is a folder."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "AGENCYML_PROJECT_ROOT": str(project_copy),
        "AGENCYML_HOME": str(tmp_path / "state"),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    env.pop("PREFECT_API_URL", None)
    project = DvcProject(project_copy, env, tmp_path / "state", tmp_path / "state" / "dvc-remote")
    project.git("init", "-q")
    project.run("dvc", "init", "-q")
    project.run("dvc", "remote", "add", "-d", "local", str(project.remote))
    project.run("dvc", "remote", "modify", "local", "verify", "true")
    project.git("add", "-A")
    project.git("commit", "-qm", "copy")
    yield project
    # commands run here without PREFECT_API_URL start the state's background Prefect server
    from pipelines.orchestration import local_server
    from pipelines.paths import StateDir

    local_server.stop(StateDir(project.state))


@pytest.fixture(scope="session")
def trained_small_project(make_small_project):
    """A context manager: a small project under `root` with these use cases trained, and
    agencyml pointed at it while it is open. Yields {"root", "project"}."""
    from flows.train import train

    @contextlib.contextmanager
    def trained(root: Path, *use_cases: tuple[str, str]) -> Iterator[dict[str, Path]]:
        project = make_small_project(root / "project")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AGENCYML_PROJECT_ROOT", str(project))
            patch.setenv("AGENCYML_HOME", str(root / "state"))
            for agency, use_case in use_cases:
                train(agency, use_case)
            yield {"root": root, "project": project}

    return trained


@pytest.fixture(scope="session")
def two_agencies(prefect_server, tmp_path_factory, make_small_project):
    """business-aid fraud-risk and product-safety risk-triage trained, and their holdouts
    scored, once for the pull service's tests: `env` points agencyml at this project."""
    from flows.score import score
    from flows.train import train
    from pipelines.config import load_use_case
    from pipelines.paths import state_dir
    from pipelines.scoring.batches import write_holdout_batch

    root = tmp_path_factory.mktemp("two-agencies")
    env = {
        "AGENCYML_PROJECT_ROOT": str(make_small_project(root / "project")),
        "AGENCYML_HOME": str(root / "state"),
    }
    batches = {}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        for agency, use_case in (("business-aid", "fraud-risk"), ("product-safety", "risk-triage")):
            train(agency, use_case)
            holdout = write_holdout_batch(load_use_case(agency, use_case), state_dir())
            batches[agency] = score(agency, use_case, str(holdout))
    return {"root": root, "env": env, "batches": batches}


@contextlib.contextmanager
def agencyml_service(log: Path) -> Iterator[dict[str, Any]]:
    """`agencyml serve` in its own process on a free port of 127.0.0.1, for the current
    environment's state; yields its url and pid, and stops it afterwards."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows", "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/openapi.json", process, log)
        yield {"url": url, "pid": process.pid}
    finally:
        stop(process)


@pytest.fixture(scope="session")
def serve():
    """agencyml_service, for fixtures that start the pull service."""
    return agencyml_service
