"""Git facts for lineage, read from real throwaway repositories."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pipelines.versioning import CodeVersion, code_version

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
