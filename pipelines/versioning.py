"""Git facts for lineage: the only module that talks to git (and, later, DVC)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


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
