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

from pipelines.data.storage import file_md5
from pipelines.paths import ProjectNotFoundError, state_dir
from pipelines.permissions import tighten
from pipelines.settings import settings


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
def dvc_lock(repo: Path, timeout_seconds: float = 600, *, shared: bool = False) -> Iterator[None]:
    """Serialise DVC operations across processes: DVC's own repo lock fails at once when held,
    so two flows that both touch DVC wait their turn here instead. `shared` is for reading
    dvc.lock, .dvc files and the config, which DVC rewrites in place: readers wait only for a
    writer."""
    lock_path = Path(repo) / ".dvc" / "tmp" / "agencyml.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        deadline = time.monotonic() + timeout_seconds
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        while True:
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
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
            _keep_state_remote_private(repo)
    tracked = yaml.safe_load((Path(repo) / f"{target}.dvc").read_text())
    return StoredFile(target, tracked["outs"][0]["md5"], remote)


@dataclass(frozen=True)
class TrackedData:
    """A data file as DVC knows it: what dvc.lock (or a .dvc file) records, and its remote."""

    path: str  # relative to the repository
    md5: str  # of the file as it is now
    lock_md5: str | None  # what dvc.lock or <path>.dvc records; None when DVC does not track it
    stage: str | None  # the dvc.yaml stage that writes it, or "<path>.dvc"
    remote: str | None
    remote_url: str | None

    @property
    def status(self) -> str:
        """'tracked' when the file is the version DVC records, 'modified' when it differs,
        'untracked' when DVC records nothing for it."""
        if self.lock_md5 is None:
            return "untracked"
        return "tracked" if self.lock_md5 == self.md5 else "modified"


def tracked_data(repo: Path, path: str) -> TrackedData:
    """What DVC records for `path` (relative to `repo`), read from dvc.lock and .dvc files."""
    repo = Path(repo)
    md5 = file_md5(repo / path)
    with reading_dvc_files(repo):
        stage, lock_md5 = _recorded_md5(repo, path)
        remote, url = default_remote(repo)
    return TrackedData(path, md5, lock_md5, stage, remote, url)


def recorded_md5(repo: Path, path: str) -> tuple[str | None, str | None]:
    """(stage, md5) that dvc.lock or `<path>.dvc` records for `path`; (None, None) if neither.
    Read under the DVC lock: a `dvc commit` of another command rewrites dvc.lock in place, and
    a read beside it saw an empty file, so the data looked untracked."""
    with reading_dvc_files(repo):
        return _recorded_md5(repo, path)


@contextlib.contextmanager
def reading_dvc_files(repo: Path) -> Iterator[None]:
    """The DVC lock, shared, for reading dvc.lock, .dvc files and DVC's config, which DVC
    rewrites in place; nothing to hold in a folder without DVC, or in a read-only checkout
    (where no command rewrites them either)."""
    with contextlib.ExitStack() as held:
        if (Path(repo) / ".dvc").is_dir():
            with contextlib.suppress(OSError):
                held.enter_context(dvc_lock(repo, shared=True))
        yield


def _recorded_md5(repo: Path, path: str) -> tuple[str | None, str | None]:
    lock_file = Path(repo) / "dvc.lock"
    if lock_file.is_file():
        stages = (yaml.safe_load(lock_file.read_text()) or {}).get("stages", {})
        for name, stage in stages.items():
            for out in stage.get("outs", []):
                if out.get("path") == path:
                    return name, out.get("md5")
    dvc_file = Path(repo) / f"{path}.dvc"
    if dvc_file.is_file():
        outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs", [])
        if outs:
            return dvc_file.name, outs[0].get("md5")
    return None, None


def default_remote(repo: Path) -> tuple[str | None, str | None]:
    """The default remote's name and URL (local paths made absolute), from DVC's config."""
    dvc_dir = Path(repo) / ".dvc"
    if not dvc_dir.is_dir():
        return None, None
    from dvc.config import Config

    config = Config(dvc_dir=str(dvc_dir))
    name = config["core"].get("remote")
    if not name or name not in config["remote"]:
        return None, None
    return name, str(config["remote"][name]["url"])


def can_track(repo: Path) -> bool:
    """DVC can version outputs here: a git + DVC repository with a dvc.yaml, and we are not
    running inside a `dvc repro` stage (DVC then records the outputs itself)."""
    repo = Path(repo)
    return (
        (repo / ".dvc").is_dir()
        and (repo / "dvc.yaml").is_file()
        and "DVC_STAGE" not in os.environ
        and _git(repo, "rev-parse", "--git-dir") is not None
    )


def follow_state_remote(repo: Path, remote_dir: Path) -> None:
    """Point the default remote named 'local' at the state directory's DVC remote, in the
    repository's untracked config.local, when AGENCYML_HOME moves the state elsewhere. DVC
    rewrites config.local in place, so under the DVC lock: a push beside it would read the
    project's own remote."""
    if settings().home is None or not (Path(repo) / ".dvc").is_dir():
        return
    with dvc_lock(repo):
        name, url = default_remote(repo)
        if name != "local":
            return
        if url is None or Path(url).resolve() != Path(remote_dir).resolve():
            _dvc(repo, "remote", "modify", "--local", "local", "url", str(remote_dir))


def commit_outputs(repo: Path, stages: list[str], *, push: bool = True) -> list[str]:
    """Record stage outputs written outside `dvc repro` in dvc.lock and the cache, then push
    them to the default remote; serialised with every other DVC operation."""
    with dvc_lock(repo):
        _dvc(repo, "commit", "--force", *stages)
        if push and default_remote(repo)[0]:
            _dvc(repo, "push", *stages)
            _keep_state_remote_private(repo)
    return stages


def _keep_state_remote_private(repo: Path) -> None:
    """DVC pushes its objects 0444 whatever the umask: a default remote that is a folder in the
    state directory gets its group and other bits taken off again, like the rest of the state.
    A remote elsewhere (a team's share) keeps what its owners chose."""
    url = default_remote(repo)[1]
    if url is None or "://" in url:
        return
    try:
        state_root = state_dir().root.resolve()
    except ProjectNotFoundError:  # no state directory to keep private
        return
    remote = (Path(repo) / ".dvc" / url).resolve()  # a relative URL is relative to .dvc/
    if remote.is_dir() and remote.is_relative_to(state_root):
        tighten(remote)


class DataIntegrityError(RuntimeError):
    """A file DVC restored does not have the md5 it was recorded with: a corrupt copy."""


def restore_file(
    tree: Path, origin: Path, path: str, md5: str, stage: str, *, cache: Path | None = None
) -> Path:
    """Restore `path` as it was when its md5 was recorded into `tree` (a worktree of `origin`):
    the recorded md5 is written into the tree's dvc.lock, then DVC pulls it from origin's cache
    (or `cache`: an empty one fetches from the remote alone) or the default remote. The restored
    bytes are checked against the md5, never trusted."""
    tree, origin = Path(tree), Path(origin)
    local_config = origin / ".dvc" / "config.local"
    if local_config.is_file():
        shutil.copyfile(local_config, tree / ".dvc" / "config.local")
    _dvc(tree, "config", "--local", "cache.dir", str(cache or origin / ".dvc" / "cache"))
    remote, url = default_remote(origin)
    if remote is not None and url is not None:
        # a relative local remote would otherwise resolve against the worktree
        _dvc(tree, "remote", "add", "--local", "--force", "--default", remote, url)
    pin_md5(tree, path, md5, stage)
    target = tree / path
    target.unlink(missing_ok=True)
    _dvc(tree, "pull", "--force", path)
    restored = file_md5(target)
    if restored != md5:
        raise DataIntegrityError(
            f"DVC restored {path} with md5 {restored}, but {md5} was recorded: the copy in the "
            f"cache ({origin / '.dvc' / 'cache'}) or the remote is corrupt. Remove the corrupt "
            "object and pull again from a good remote."
        )
    return target


def pin_md5(tree: Path, path: str, md5: str, stage: str) -> None:
    """Make dvc.lock in `tree` record `md5` for `path`, an output of `stage`."""
    lock_file = Path(tree) / "dvc.lock"
    lock = (yaml.safe_load(lock_file.read_text()) if lock_file.is_file() else None) or {}
    lock.setdefault("schema", "2.0")
    stages = lock.setdefault("stages", {})
    for stage in stages.values():
        for out in stage.get("outs", []):
            if out.get("path") == path:
                out.update({"hash": "md5", "md5": md5})
                out.pop("size", None)
                lock_file.write_text(yaml.safe_dump(lock, sort_keys=False))
                return
    stages[stage] = {"cmd": "restore", "outs": [{"path": path, "hash": "md5", "md5": md5}]}
    lock_file.write_text(yaml.safe_dump(lock, sort_keys=False))


def _dvc(repo: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise DvcError(f"dvc {' '.join(args)} failed in {repo}: {done.stderr.strip()[-1500:]}")
    return done.stdout
