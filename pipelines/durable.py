"""Durable files on a POSIX file system: locks that die with their process, and fsyncs.

Standard library only, so the smallest modules (the hash-chained logs) can use it too."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False, wait: bool = True) -> Iterator[None]:
    """An OS lock on `path` (created with its folders): exclusive, or shared among readers.
    Held until the block ends or the process dies (a kill -9 frees it). With wait=False, a
    lock another process holds raises BlockingIOError at once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        fcntl.flock(descriptor, mode if wait else mode | fcntl.LOCK_NB)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in `directory` survive a crash."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
