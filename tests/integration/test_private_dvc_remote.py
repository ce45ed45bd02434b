"""DVC writes its objects 0444 whatever the umask. A push into the state directory's remote
takes the group and other bits off again, so `verify` finds a fresh project private; a remote
outside the state directory (a team's share) keeps the modes DVC gave it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.data.versioning import store_with_dvc
from pipelines.paths import StateDir
from pipelines.permissions import loose_permissions


def dvc_project(folder: Path, remote: Path) -> Path:
    folder.mkdir(parents=True)
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    for args in (["init", "-q"], ["remote", "add", "-d", "local", str(remote)]):
        subprocess.run([sys.executable, "-m", "dvc", *args], cwd=folder, check=True)
    return folder


def object_modes(remote: Path) -> list[int]:
    return [stat.S_IMODE(path.stat().st_mode) for path in remote.rglob("*") if path.is_file()]


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "applications.csv"
    path.write_text("id,amount\n1,10\n2,20\n")
    return path


def test_a_push_into_the_state_directory_leaves_its_objects_private(tmp_path, source, monkeypatch):
    state = tmp_path / "state"
    monkeypatch.setenv("AGENCYML_HOME", str(state))
    project = dvc_project(tmp_path / "project", state / "dvc-remote")
    os.umask(0o077)

    stored = store_with_dvc(source, project, "data/applications.csv")

    modes = object_modes(state / "dvc-remote")
    assert modes, "the push wrote no object"
    assert all(mode & 0o077 == 0 for mode in modes), [oct(mode) for mode in modes]
    assert all(mode & 0o400 for mode in modes)  # still readable by their owner
    assert loose_permissions(StateDir(state)) == []
    assert len(stored.md5) == 32


def test_a_remote_outside_the_state_directory_keeps_its_modes(tmp_path, source, monkeypatch):
    monkeypatch.setenv("AGENCYML_HOME", str(tmp_path / "state"))
    shared = tmp_path / "team-share"
    project = dvc_project(tmp_path / "project", shared)

    store_with_dvc(source, project, "data/applications.csv")

    assert object_modes(shared) and all(mode == 0o444 for mode in object_modes(shared))
