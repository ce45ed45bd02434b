"""The inbox: batch files dropped in a use case's folder are picked up once, then filed away.

    <state>/inbox/<agency>/<use-case>/            drop batch files here
        .claimed/                                 being scored by the poll that holds the lock
            .<name>.attempts.json                 its attempts that failed or never ended
        processed/<time>-<name> (+ .json)         scored; the receipt names the batch
        quarantine/<time>-<name> (+ .json)        refused; the receipt says why

A file is picked up only when it looks finished: not hidden or named like a partial download,
unchanged for the settle time, and, for parquet, ending in its footer. Producers should still
write under a temporary name and rename, which is atomic. One poll at a time holds the use
case's inbox lock; a file it was working on when it died is still in .claimed/ and the next
poll finishes it. Scoring is idempotent by batch id, so finishing it twice publishes once.
Every attempt is counted before it starts: a file whose scoring crashed (or whose poll died)
POISON_ATTEMPTS times is filed in the quarantine, so that it does not fail every poll.

Standard library only: the flow decides what scoring a file means."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.durable import file_lock, fsync_dir, fsync_file

PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart", ".swp", ".lock")
PARQUET_MAGIC = b"PAR1"
POISON_ATTEMPTS = 3  # crashed attempts after which a claimed file is quarantined
UNFINISHED = "the poll stopped while scoring it (killed, out of memory, or the machine restarted)"


class InboxBusyError(BlockingIOError):
    """Another poll holds this inbox's lock; this one has nothing to do."""


@dataclass(frozen=True)
class Inbox:
    root: Path  # <state>/inbox/<agency>/<use-case>
    lock: Path

    @property
    def claimed(self) -> Path:
        return self.root / ".claimed"

    @property
    def processed(self) -> Path:
        return self.root / "processed"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    def create(self) -> Inbox:
        for folder in (self.root, self.claimed, self.processed, self.quarantine):
            folder.mkdir(parents=True, exist_ok=True)
        return self


@dataclass(frozen=True)
class Scan:
    """What one look at the inbox found."""

    ready: list[Path]  # finished files, oldest first
    waiting: list[Path]  # still being written, or not settled yet
    leftovers: list[Path]  # claimed by a poll that died before filing them


def looks_partial(name: str) -> bool:
    return name.startswith((".", "~")) or name.lower().endswith(PARTIAL_SUFFIXES)


def looks_unfinished(path: Path) -> bool:
    """Empty, or a parquet file that has its opening magic bytes but not yet its footer.
    (A file that does not start like parquet at all is not being written: the gate says why.)"""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4)
            if not head:
                return True
            if not path.name.lower().endswith(".parquet") or head != PARQUET_MAGIC:
                return False
            handle.seek(-4, os.SEEK_END)
            return handle.read(4) != PARQUET_MAGIC
    except OSError:
        return True


def scan(inbox: Inbox, settle_seconds: float, now: float | None = None) -> Scan:
    """The files ready to score, and the ones to leave for a later poll.

    An empty file, or a parquet file without its footer, waits until it is ten settle times
    (at least ten minutes) old; after that it is handed on, so the gate quarantines it as
    unreadable."""
    now = time.time() if now is None else now
    ready: list[tuple[float, str, Path]] = []
    waiting: list[Path] = []
    for entry in os.scandir(inbox.root):
        if not entry.is_file(follow_symlinks=False):
            continue  # folders and symlinks are never picked
        path = Path(entry.path)
        modified = entry.stat(follow_symlinks=False).st_mtime
        age = now - modified
        waits = (
            looks_partial(entry.name)
            or age < settle_seconds
            or (age < max(10 * settle_seconds, 600) and looks_unfinished(path))
        )
        if waits:
            waiting.append(path)
        else:
            ready.append((modified, entry.name, path))
    claimed = inbox.claimed.iterdir() if inbox.claimed.is_dir() else iter(())
    leftovers = sorted(path for path in claimed if path.is_file() and not looks_partial(path.name))
    return Scan([path for _, _, path in sorted(ready)], sorted(waiting), leftovers)


@contextlib.contextmanager
def polling(inbox: Inbox) -> Iterator[Inbox]:
    """Hold the inbox's lock for one poll; InboxBusyError at once if another poll has it."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(file_lock(inbox.lock, wait=False))
        except BlockingIOError:
            raise InboxBusyError(
                f"another poll is working through {inbox.root}; this one leaves it to that poll"
            ) from None
        yield inbox.create()


def claim(inbox: Inbox, path: Path) -> Path | None:
    """Move a ready file into .claimed/ (atomic on one file system); None if it is gone."""
    target = inbox.claimed / path.name
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    with contextlib.suppress(OSError):  # private like the rest of the state, whoever dropped it
        os.chmod(target, 0o600)
    fsync_dir(inbox.claimed)
    return target


def attempts_path(claimed: Path) -> Path:
    return claimed.with_name(f".{claimed.name}.attempts.json")


def failed_attempts(claimed: Path) -> list[dict[str, Any]]:
    """The claimed file's attempts that crashed or never ended, oldest first. A count that
    cannot be read (it is written whole, so this takes a damaged disk) is one attempt."""
    path = attempts_path(claimed)
    if not path.is_file():
        return []
    try:
        attempts = json.loads(path.read_text())
    except (OSError, ValueError):
        attempts = None
    if not isinstance(attempts, list):
        return [{"started_at": None, "error": f"{path.name} could not be read"}]
    return attempts


def begin_attempt(claimed: Path) -> int:
    """Count an attempt durably before it starts, as unfinished: a poll killed while scoring
    (a file that exhausts memory) is counted too. Returns the attempts counted so far."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    attempts = [*failed_attempts(claimed), {"started_at": stamp, "error": UNFINISHED}]
    write_durably(attempts_path(claimed), attempts)
    return len(attempts)


def end_attempt(claimed: Path, error: str | None) -> int:
    """Close the attempt begin_attempt counted: with the error that crashed it, or (error
    None: it ended in a way that is not the file's doing) uncounted. Returns the count."""
    attempts = failed_attempts(claimed)
    last = attempts.pop() if attempts else {}
    if error is not None:
        attempts.append({**last, "error": error})
    write_durably(attempts_path(claimed), attempts)
    return len(attempts)


def write_durably(path: Path, payload: Any) -> None:
    """Write JSON beside `path`, fsync, then rename it into place: whole or not at all."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    fsync_file(partial)
    os.replace(partial, path)


def file_away(inbox: Inbox, claimed: Path, outcome: str, receipt: dict[str, Any]) -> Path:
    """Move a claimed file to processed/ or quarantine/ under a time-stamped name, its receipt
    written first beside where it goes; returns the file's new path."""
    if outcome not in ("processed", "quarantine"):
        raise ValueError(f"outcome must be 'processed' or 'quarantine', not {outcome!r}")
    folder = inbox.processed if outcome == "processed" else inbox.quarantine
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = folder / f"{stamp}-{claimed.name}"
    record = {"file": claimed.name, "outcome": outcome, "filed_at": stamp, **receipt}
    write_durably(target.with_name(target.name + ".json"), record)
    os.rename(claimed, target)
    attempts_path(claimed).unlink(missing_ok=True)
    fsync_dir(folder)
    fsync_dir(inbox.claimed)
    return target


def receipts(inbox: Inbox, outcome: str) -> list[dict[str, Any]]:
    """The receipts filed under processed/ or quarantine/, oldest first."""
    folder = inbox.processed if outcome == "processed" else inbox.quarantine
    if not folder.is_dir():
        return []
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
