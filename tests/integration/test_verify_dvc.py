"""A corrupt object in the DVC cache: `agencyml verify` finds it and says the remote holds an
intact copy, and restoring a model's training data (what `reproduce` does first) falls back to
that remote instead of failing. A real git + DVC repository with a folder remote, no training."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from pipelines.data.storage import file_md5
from pipelines.data.versioning import temporary_worktree
from pipelines.registry.reproduce import restore_training_data

DATA = "data/training.csv"


def run(repo: Path, *command: str) -> None:
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A project with one file tracked by DVC, pushed to a folder remote and committed."""
    repo, remote = tmp_path / "repo", tmp_path / "remote"
    (repo / "params").mkdir(parents=True)
    (repo / "data").mkdir()
    rows = random.Random(1)
    lines = "".join(f"{rows.random()},{n}\n" for n in range(2000))
    (repo / DATA).write_text("score,row\n" + lines)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    dvc = [sys.executable, "-m", "dvc"]
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    run(repo, *git, "init", "-q")
    run(repo, *dvc, "init", "-q")
    run(repo, *dvc, "remote", "add", "-d", "local", str(remote))
    run(repo, *dvc, "add", "-q", DATA)
    run(repo, *dvc, "push", "-q")
    run(repo, *git, "add", "-A")
    run(repo, *git, "commit", "-qm", "data")
    monkeypatch.setenv("AGENCYML_PROJECT_ROOT", str(repo))
    monkeypatch.setenv("AGENCYML_HOME", str(tmp_path / "state"))
    return {"repo": repo, "remote": remote}


def corrupt(path: Path) -> None:
    """Change the object's bytes and leave it read-only, as DVC leaves its objects: DVC then
    trusts it without re-hashing."""
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"0.5,2000\n")
    path.chmod(0o444)


def test_a_corrupt_cache_object_is_found_and_the_remote_copy_is_restored(repository) -> None:
    repo, remote = repository["repo"], repository["remote"]
    md5 = file_md5(repo / DATA)
    cached = repo / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    corrupt(cached)

    done = CliRunner().invoke(app, ["verify", "--json"])

    assert done.exit_code == 9, done.output
    report = json.loads(done.stdout)
    assert report["checked"]["dvc cache"] == 1 and report["checked"]["dvc remote"] == 1
    [finding] = report["findings"]
    assert finding["kind"] == "dvc cache" and finding["where"] == str(cached)
    assert "the object is corrupt" in finding["problem"]
    assert f"the remote {remote} holds an intact copy" in finding["problem"]

    tags = {
        "agencyml.data.training.dvc_path": DATA,
        "agencyml.data.training.md5": md5,
        "agencyml.data.training.dvc_status": "tracked",
        "agencyml.data.training.dvc_stage": f"{DATA}.dvc",
    }
    with temporary_worktree(repo, "HEAD") as tree:
        notes = restore_training_data(tree, tags)
        assert file_md5(tree / DATA) == md5
    assert notes == [
        f"restored {DATA} (md5 {md5}) from the DVC remote: the copy in the cache is corrupt "
        "(`agencyml verify` lists corrupt cache objects)"
    ]
