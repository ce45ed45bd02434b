"""Whether published files are still the bytes that were published: a batch's files against
the sha256 its manifest records, a quarantine's against its report, DVC's objects against the
md5 they are named by. Everything that reads or serves such a file asks here first."""

from __future__ import annotations

import os
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any

from pipelines.data.storage import file_md5, file_sha256


class DamagedBatchError(RuntimeError):
    """A published batch's files no longer have the sha256 its manifest records."""


def current_sha256(path: Path, *, cached: bool = True) -> str:
    """The file's sha256. `cached` reuses a hash while the file's inode, size, mtime and ctime
    are unchanged: any write changes the ctime, which no user can set back."""
    if not cached:
        return file_sha256(path)
    info = os.stat(path)
    identity = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    return _sha256_of(str(path), identity)


@lru_cache(maxsize=4096)
def _sha256_of(path: str, identity: tuple[int, ...]) -> str:
    return file_sha256(Path(path))


def file_problem(folder: Path, name: str, expected: Any, *, cached: bool = True) -> str | None:
    """What is wrong with `folder / name` against its recorded sha256, or None when it is intact.
    The name must stay inside the folder and the file must be a regular file, not a link."""
    parts = str(name).split("/")
    if not name or str(name).startswith("/") or any(p in ("", ".", "..") for p in parts):
        return "its name in the record points outside the folder"
    path = Path(folder).joinpath(*parts)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return "the file is missing"
    except OSError as error:
        return f"the file cannot be read ({error.strerror})"
    if not stat.S_ISREG(mode):
        return "it is no longer a regular file (a link, a folder or a device took its place)"
    if not isinstance(expected, str) or not expected:
        return "no sha256 is recorded for it, so it cannot be checked"
    try:
        actual = current_sha256(path, cached=cached)
    except OSError as error:
        return f"the file cannot be read ({error.strerror})"
    if actual != expected:
        return f"its sha256 is {actual}, but {expected} was recorded: it changed after publishing"
    return None


def recorded_hashes(manifest: dict[str, Any]) -> dict[str, Any]:
    """Name -> recorded sha256 for every file a batch manifest lists (None where it records
    none). A manifest that records no hashes at all (written before they were) gives {}."""
    hashes = manifest.get("file_sha256")
    if not isinstance(hashes, dict):
        return {}
    listed = manifest.get("files")
    names = [str(n) for n in listed] if isinstance(listed, list) else []
    return {name: hashes.get(name) for name in dict.fromkeys([*names, *map(str, hashes)])}


def damage(folder: Path, manifest: dict[str, Any], *, cached: bool = True) -> dict[str, str]:
    """Name -> problem for each file of a published batch that is not as its manifest records."""
    found = {}
    for name, expected in recorded_hashes(manifest).items():
        problem = file_problem(Path(folder), name, expected, cached=cached)
        if problem is not None:
            found[name] = problem
    return found


def damaged_files(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """The names of a published batch's files that are not as its manifest records, sorted."""
    return sorted(damage(folder, manifest))


def quarantine_hashes(folder: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Name -> recorded sha256 for a quarantine folder: the files its report hashes, and a
    rejected input's copy (`input.*`), which has the input's own sha256."""
    hashes = report.get("file_sha256")
    expected: dict[str, Any] = dict(hashes) if isinstance(hashes, dict) else {}
    given = report.get("input")
    if isinstance(given, dict) and given.get("sha256"):
        for copy in sorted(Path(folder).glob("input*")):
            expected.setdefault(copy.name, given["sha256"])
    return expected


def quarantine_damage(
    folder: Path, report: dict[str, Any], *, cached: bool = True
) -> dict[str, str]:
    """Name -> problem for each file of a quarantine folder that is not as its report records."""
    found = {}
    for name, expected in quarantine_hashes(folder, report).items():
        problem = file_problem(Path(folder), name, expected, cached=cached)
        if problem is not None:
            found[name] = problem
    return found


def damaged_batch_message(batch_id: str, folder: Path, damaged: dict[str, str]) -> str:
    """The one sentence a command says when it finds a published batch damaged."""
    names = ", ".join(f"{name} ({problem})" for name, problem in sorted(damaged.items()))
    return (
        f"batch {batch_id} is published in {folder}, but its files are not as its manifest "
        f"records: {names}. Nothing was scored again; restore the folder from a backup, or move "
        "it aside and score the input again to publish it anew (`agencyml verify` lists all "
        "damage)"
    )


# --- DVC -------------------------------------------------------------------------------------

DVC_OBJECTS = Path("files") / "md5"  # DVC 3's content-addressed layout, in a cache or a remote


def dvc_objects(root: Path) -> list[Path]:
    """Every object of a DVC cache or local remote (DVC 3 layout: files/md5/ab/cdef...)."""
    objects = Path(root) / DVC_OBJECTS
    if not objects.is_dir():
        return []
    return sorted(
        path
        for prefix in objects.iterdir()
        if prefix.is_dir() and len(prefix.name) == 2
        for path in prefix.iterdir()
        if path.is_file() and not path.name.endswith((".tmp", ".lock"))
    )


def dvc_object_md5(path: Path) -> str:
    """The md5 an object is named by: its folder and file name, without `.dir`."""
    return path.parent.name + path.name.removesuffix(".dir")


def dvc_object_problem(path: Path) -> str | None:
    """Why a DVC object is not the content its name says, or None when it is intact."""
    try:
        actual = file_md5(path)
    except OSError as error:
        return f"it cannot be read ({error.strerror})"
    expected = dvc_object_md5(path)
    if actual != expected:
        return f"its md5 is {actual}, but it is named {expected}: the object is corrupt"
    return None
