"""Whether the state directory is private: what in it group or others could read or write."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pipelines.paths import StateDir

GROUP_AND_OTHERS = 0o077


def loose_permissions(state: StateDir) -> list[Path]:
    """The state root and every folder and file under it with any group or other permission
    bit, sorted; symlinks are neither reported nor followed. A missing root has none."""
    root = Path(state.root)
    if root.is_symlink() or not root.is_dir():
        return []
    loose = [root] if _is_loose(root) else []
    for folder, folders, files in os.walk(root, onerror=lambda error: None):
        for name in (*folders, *files):
            path = Path(folder) / name
            if _is_loose(path):
                loose.append(path)
    return sorted(loose)


def _is_loose(path: Path) -> bool:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:  # removed while walking
        return False
    return not stat.S_ISLNK(mode) and bool(mode & GROUP_AND_OTHERS)


def tighten(folder: Path) -> None:
    """Take the group and other bits off `folder` and everything under it that this user owns
    (DVC makes its cache and remote objects 0444 whatever the umask); symlinks are left alone."""
    for path in (Path(folder), *Path(folder).rglob("*")):
        try:
            status = path.lstat()
        except FileNotFoundError:  # removed meanwhile
            continue
        if stat.S_ISLNK(status.st_mode) or status.st_uid != os.geteuid():
            continue
        if status.st_mode & GROUP_AND_OTHERS:
            path.chmod(stat.S_IMODE(status.st_mode) & ~GROUP_AND_OTHERS)
