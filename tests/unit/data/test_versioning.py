"""Git facts for lineage, read from real throwaway repositories."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.data.storage import file_md5
from pipelines.data.versioning import (
    CodeVersion,
    DvcError,
    can_track,
    code_version,
    commit_outputs,
    default_remote,
    follow_state_remote,
    restore_file,
    temporary_worktree,
    tracked_data,
)

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git config, and no repository above tmp_path."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for variable in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(variable, raising=False)


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        [
            "git",
            "-C",
            str(root),
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "--quiet")
    (root / "params.yaml").write_text("agency: demo\n")
    git(root, "add", "params.yaml")
    git(root, "commit", "--quiet", "--no-gpg-sign", "-m", "first")
    return root


def test_clean_checkout_gives_its_commit(repo: Path) -> None:
    commit = git(repo, "log", "-1", "--format=%H")

    version = code_version(repo)

    assert version == CodeVersion(commit, False)
    assert len(commit) == 40
    assert version.as_tags() == {"agencyml.git_commit": commit, "agencyml.git_dirty": "false"}


def test_modified_tracked_file_makes_the_checkout_dirty(repo: Path) -> None:
    (repo / "params.yaml").write_text("agency: changed\n")

    version = code_version(repo)

    assert version.dirty is True
    assert version.as_tags()["agencyml.git_dirty"] == "true"


def test_staged_change_makes_the_checkout_dirty(repo: Path) -> None:
    (repo / "params.yaml").write_text("agency: staged\n")
    git(repo, "add", "params.yaml")

    assert code_version(repo).dirty is True


def test_untracked_files_do_not_make_the_checkout_dirty(repo: Path) -> None:
    (repo / "scratch.txt").write_text("notes")

    assert code_version(repo).dirty is False


def test_a_new_commit_changes_the_commit_and_cleans_the_checkout(repo: Path) -> None:
    before = code_version(repo).commit
    (repo / "params.yaml").write_text("agency: v2\n")
    git(repo, "commit", "--quiet", "--no-gpg-sign", "-am", "second")

    after = code_version(repo)

    assert after.commit != before and after.dirty is False
    assert after.commit == git(repo, "rev-parse", "HEAD")


def test_a_subdirectory_reports_the_enclosing_checkout(repo: Path) -> None:
    sub = repo / "pipelines"
    sub.mkdir()

    assert code_version(sub) == code_version(repo)


def test_outside_git_the_version_is_unknown(tmp_path: Path) -> None:
    plain = tmp_path / "not-a-repo"
    plain.mkdir()

    version = code_version(plain)

    assert version == CodeVersion(None, None)
    assert version.as_tags() == {
        "agencyml.git_commit": "unknown",
        "agencyml.git_dirty": "unknown",
    }


def test_a_repository_without_commits_is_unknown(tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet")

    assert code_version(tmp_path) == CodeVersion(None, None)


def test_a_missing_directory_is_unknown(tmp_path: Path) -> None:
    assert code_version(tmp_path / "does-not-exist") == CodeVersion(None, None)


def dvc(root: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture
def dvc_repo(repo: Path, tmp_path: Path) -> Path:
    """`repo` with DVC, a relative local default remote, and one stage writing data/out.bin."""
    dvc(repo, "init", "-q")
    dvc(repo, "remote", "add", "-d", "store", "../remote")  # relative to the repo
    (repo / "dvc.yaml").write_text(
        "stages:\n  make:\n    cmd: python -c \"open('data/out.bin','wb').write(b'v1')\"\n"
        "    outs: [data/out.bin]\n"
    )
    (repo / "data").mkdir()
    return repo


def test_tracked_data_reads_the_md5_dvc_lock_records_and_the_remote(dvc_repo: Path) -> None:
    dvc(dvc_repo, "repro", "-q")

    tracked = tracked_data(dvc_repo, "data/out.bin")

    assert tracked.md5 == file_md5(dvc_repo / "data" / "out.bin")
    assert tracked.lock_md5 == tracked.md5 and tracked.status == "tracked"
    assert tracked.stage == "make"
    assert tracked.remote == "store"
    assert Path(tracked.remote_url) == (dvc_repo / ".." / "remote").resolve()


def test_a_file_changed_after_dvc_recorded_it_is_reported_modified(dvc_repo: Path) -> None:
    dvc(dvc_repo, "repro", "-q")
    (dvc_repo / "data" / "out.bin").write_bytes(b"changed")

    tracked = tracked_data(dvc_repo, "data/out.bin")

    assert tracked.status == "modified" and tracked.lock_md5 != tracked.md5


def test_a_file_dvc_knows_nothing_of_is_untracked(dvc_repo: Path) -> None:
    (dvc_repo / "data" / "other.bin").write_bytes(b"x")

    tracked = tracked_data(dvc_repo, "data/other.bin")

    assert tracked.status == "untracked" and tracked.stage is None and tracked.lock_md5 is None


def test_a_dot_dvc_file_counts_as_a_record_too(dvc_repo: Path) -> None:
    (dvc_repo / "data" / "added.bin").write_bytes(b"added")
    dvc(dvc_repo, "add", "-q", "data/added.bin")

    tracked = tracked_data(dvc_repo, "data/added.bin")

    assert tracked.status == "tracked" and tracked.stage == "added.bin.dvc"


def test_commit_outputs_records_and_pushes_what_was_written_outside_repro(
    dvc_repo: Path, tmp_path: Path
) -> None:
    git(dvc_repo, "add", "-A")
    git(dvc_repo, "commit", "-qm", "dvc")
    (dvc_repo / "data" / "out.bin").write_bytes(b"written by a flow")
    assert can_track(dvc_repo)

    commit_outputs(dvc_repo, ["make"])

    tracked = tracked_data(dvc_repo, "data/out.bin")
    assert tracked.status == "tracked"
    pushed = tmp_path / "remote" / "files" / "md5" / tracked.md5[:2] / tracked.md5[2:]
    assert pushed.read_bytes() == b"written by a flow"


def test_outputs_are_not_committed_from_inside_a_dvc_stage(
    dvc_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert can_track(dvc_repo)
    monkeypatch.setenv("DVC_STAGE", "make")
    assert not can_track(dvc_repo)
    assert not can_track(dvc_repo / "data")


def test_the_local_remote_follows_a_moved_state_directory(
    dvc_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dvc(dvc_repo, "remote", "rename", "store", "local")
    monkeypatch.delenv("AGENCYML_HOME", raising=False)
    follow_state_remote(dvc_repo, tmp_path / "elsewhere")
    assert default_remote(dvc_repo)[1] == str((tmp_path / "remote").resolve())

    monkeypatch.setenv("AGENCYML_HOME", str(tmp_path / "state"))
    follow_state_remote(dvc_repo, tmp_path / "state" / "dvc-remote")

    assert default_remote(dvc_repo) == ("local", str(tmp_path / "state" / "dvc-remote"))
    assert "state/dvc-remote" in (dvc_repo / ".dvc" / "config.local").read_text()
    assert "state" not in (dvc_repo / ".dvc" / "config").read_text()


def test_restore_file_brings_back_a_recorded_md5_even_without_a_lock_at_the_commit(
    dvc_repo: Path,
) -> None:
    git(dvc_repo, "add", "-A")
    git(dvc_repo, "commit", "-qm", "no dvc.lock in this commit")
    (dvc_repo / "data" / "out.bin").write_bytes(b"the data a model was trained on")
    commit_outputs(dvc_repo, ["make"])  # dvc.lock is written now, but never committed
    md5 = tracked_data(dvc_repo, "data/out.bin").md5
    shutil.rmtree(dvc_repo / ".dvc" / "cache")  # only the remote has it

    with temporary_worktree(dvc_repo, git(dvc_repo, "rev-parse", "HEAD")) as tree:
        assert not (tree / "dvc.lock").exists()
        restored = restore_file(tree, dvc_repo, "data/out.bin", md5, "make")
        assert restored.read_bytes() == b"the data a model was trained on"


def test_restore_file_refuses_an_md5_nobody_holds(dvc_repo: Path) -> None:
    git(dvc_repo, "add", "-A")
    git(dvc_repo, "commit", "-qm", "first")

    with (
        temporary_worktree(dvc_repo, git(dvc_repo, "rev-parse", "HEAD")) as tree,
        pytest.raises(DvcError, match="failed to pull"),
    ):
        restore_file(tree, dvc_repo, "data/out.bin", "0" * 32, "make")
