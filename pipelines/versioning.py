"""Git and DVC: the only module that runs them (lineage facts, worktrees, tracked files)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class CodeVersion:
    commit: str | None
    dirty: bool | None

    def as_tags(self) -> dict[str, str]:
        return {
            "agencyml.git_commit": self.commit or "unknown",
            "agencyml.git_dirty": "unknown" if self.dirty is None else str(self.dirty).lower(),
        }


def code_version(root: Path) -> CodeVersion:
    """The checkout's commit and whether tracked files differ from it; unknown outside git."""
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return CodeVersion(None, None)
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return CodeVersion(commit, None if status is None else bool(status))


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def dvc_experiment() -> dict[str, str]:
    """Inside `dvc exp run`, the experiment's name and baseline commit, so MLflow shows it."""
    names = {
        "DVC_EXP_NAME": "agencyml.dvc_experiment",
        "DVC_EXP_BASELINE_REV": "agencyml.dvc_experiment_baseline",
    }
    return {tag: os.environ[variable] for variable, tag in names.items() if variable in os.environ}


class CheckoutError(RuntimeError):
    """A recorded commit cannot be checked out to reproduce a model."""


@contextlib.contextmanager
def temporary_worktree(root: Path, commit: str) -> Iterator[Path]:
    """The repository as it was at `commit`, in a throwaway worktree removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="agencyml-reproduce-") as folder:
        target = Path(folder) / "worktree"
        done = subprocess.run(
            ["git", "-C", str(root), "worktree", "add", "--detach", str(target), commit],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise CheckoutError(
                f"cannot check out commit {commit} of {root}: {done.stderr.strip()}. Is this the "
                "repository the model was trained from, with that commit fetched?"
            )
        try:
            yield target
        finally:
            subprocess.run(
                ["git", "-C", str(root), "worktree", "remove", "--force", str(target)],
                capture_output=True,
                check=False,
            )


class DvcError(RuntimeError):
    """A DVC command failed; the message carries DVC's own explanation."""


@dataclass(frozen=True)
class StoredFile:
    path: str  # relative to the repository
    md5: str
    remote: str | None


@contextlib.contextmanager
def dvc_lock(repo: Path, timeout_seconds: float = 600) -> Iterator[None]:
    """Serialise DVC operations across processes: DVC's own repo lock fails at once when held,
    so two flows that both touch DVC wait their turn here instead."""
    lock_path = Path(repo) / ".dvc" / "tmp" / "agencyml.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DvcError(
                        f"another process held {lock_path} for {timeout_seconds:.0f} s"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def store_with_dvc(source: Path, repo: Path, target: str, *, push: bool = True) -> StoredFile:
    """Copy a file into the repository, track it with DVC and push it to the default remote."""
    destination = Path(repo) / target
    with dvc_lock(repo):
        if not destination.exists():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, destination)
        _dvc(repo, "add", target)
        remote = _dvc(repo, "remote", "default").strip() or None
        if push and remote:
            _dvc(repo, "push", f"{target}.dvc")
    tracked = yaml.safe_load((Path(repo) / f"{target}.dvc").read_text())
    return StoredFile(target, tracked["outs"][0]["md5"], remote)


def _dvc(repo: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise DvcError(f"dvc {' '.join(args)} failed in {repo}: {done.stderr.strip()[-1500:]}")
    return done.stdout
