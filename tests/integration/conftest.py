from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="session")
def prefect_server():
    """A real Prefect server on a temporary database, shared by the session's flow runs."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


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
def dvc_project(project_copy: Path, tmp_path: Path) -> DvcProject:
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
    return project
