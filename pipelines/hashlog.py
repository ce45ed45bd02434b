"""Append-only, hash-chained JSON-lines logs: the registry's audit trail and the access log.

Each line is one JSON object that carries its 1-based `seq`, the hash of the line before it and
its own hash, so an edited, deleted, reordered or inserted line breaks the chain and every reader
says where. Truncating the newest lines cannot be seen from the file alone; keep backups.

The hash is the sha256 of the record without its hash, as JSON with sorted keys and the standard
library's default separators; the registry's audit log was written that way before this module
existed, and its lines stay byte-for-byte the same."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.durable import file_lock, fsync_dir

SEQ = "seq"
_TAIL_BLOCK = 4096


class LogTamperedError(RuntimeError):
    """A line of a chained log no longer matches the chain: the file was edited by hand."""

    entry = "record"

    def __init__(self, path: Path, line: int, detail: str) -> None:
        self.path = Path(path)
        self.line = line
        self.detail = detail
        super().__init__(
            f"{self.path}, line {line}: the {self.entry} does not match its hash chain "
            f"({detail}); the log was edited outside agencyml after it was written, so its "
            "records can no longer be trusted. Restore the file from a backup; agencyml only "
            "ever appends to it."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.line, self.detail))


@dataclass(frozen=True)
class Chain:
    """The field names one log uses for the link to the previous line and for its own hash."""

    prev: str = "prev"
    hash: str = "hash"
    first_prev: str | None = ""

    def append(self, path: Path, record: dict[str, Any]) -> dict[str, Any]:
        """Add one record under an exclusive lock, chained to the last line; returns it as stored.

        Only the last line is read, so appending stays cheap however long the log grows."""
        self._check_fields(record)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(path.with_suffix(".lock")):
            last = self._last_record(path)
            stored = {
                SEQ: last[SEQ] + 1 if last else 1,
                **record,
                self.prev: last[self.hash] if last else self.first_prev,
            }
            stored[self.hash] = self.digest(stored)
            _append_line(path, json.dumps(stored, sort_keys=True) + "\n")
        return stored

    def read(self, path: Path) -> list[dict[str, Any]]:
        """Every record in order, after checking each line's seq, link and hash."""
        path = Path(path)
        if not path.is_file():
            return []
        with file_lock(path.with_suffix(".lock"), shared=True):
            content = path.read_bytes()
        lines = content.split(b"\n")
        if lines[-1]:
            raise LogTamperedError(path, len(lines), "the last line has no line break")
        records: list[dict[str, Any]] = []
        for number, line in enumerate(lines[:-1], start=1):
            previous = records[-1][self.hash] if records else self.first_prev
            text = line.decode("utf-8", errors="replace")
            records.append(self._verified(path, number, text, previous))
        return records

    def digest(self, record: dict[str, Any]) -> str:
        body = {key: value for key, value in record.items() if key != self.hash}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def _verified(self, path: Path, number: int, line: str, previous: str | None) -> dict[str, Any]:
        record = _parsed(path, number, line)
        if record.get(SEQ) != number:
            raise LogTamperedError(path, number, f"{SEQ} is {record.get(SEQ)!r}, not {number}")
        if record.get(self.prev) != previous:
            raise LogTamperedError(path, number, f"'{self.prev}' is not the previous line's hash")
        self._check_hash(path, number, record)
        return record

    def _check_hash(self, path: Path, number: int, record: dict[str, Any]) -> None:
        if record.get(self.hash) != self.digest(record):
            raise LogTamperedError(path, number, f"'{self.hash}' does not match the line's content")

    def _last_record(self, path: Path) -> dict[str, Any] | None:
        """The last line, checked on its own (seq, hash); None for an empty or missing log."""
        tail = _last_line(path)
        if tail is None:
            return None
        try:
            return self._checked_tail(path, tail)
        except LogTamperedError as error:  # only now is counting every line worth it
            raise LogTamperedError(path, _count_lines(path), error.detail) from None

    def _checked_tail(self, path: Path, tail: bytes) -> dict[str, Any]:
        if not tail.endswith(b"\n"):
            raise LogTamperedError(path, 0, "the last line has no line break")
        record = _parsed(path, 0, tail.decode("utf-8", errors="replace"))
        if not isinstance(record.get(SEQ), int):
            raise LogTamperedError(path, 0, f"the line has no integer '{SEQ}'")
        self._check_hash(path, 0, record)
        return record

    def _check_fields(self, record: dict[str, Any]) -> None:
        taken = sorted({SEQ, self.prev, self.hash} & set(record))
        if taken:
            raise ValueError(
                f"the record already has {', '.join(taken)}; the log sets those fields itself, "
                "so rename them in the record"
            )


STANDARD = Chain()


def append(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Append one record to the chained log at `path` (created with its folders if missing)."""
    return STANDARD.append(path, record)


def read(path: Path) -> list[dict[str, Any]]:
    """All records of the log at `path`, verified; [] when it does not exist yet."""
    return STANDARD.read(path)


def _parsed(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as error:
        raise LogTamperedError(path, number, f"the line is not JSON: {error}") from error
    if not isinstance(record, dict):
        raise LogTamperedError(path, number, "the line is not a JSON object")
    return record


def _append_line(path: Path, line: str) -> None:
    created = not path.exists()
    data = line.encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        while data:
            data = data[os.write(descriptor, data) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    if created:
        fsync_dir(path.parent)


def _last_line(path: Path) -> bytes | None:
    """The file's last line with its line break, read backwards from the end."""
    if not path.is_file():
        return None
    with open(path, "rb") as handle:
        position = handle.seek(0, os.SEEK_END)
        tail = b""
        while position > 0 and b"\n" not in tail[:-1]:
            step = min(_TAIL_BLOCK, position)
            position -= step
            handle.seek(position)
            tail = handle.read(step) + tail
    if not tail:
        return None
    return tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :]


def _count_lines(path: Path) -> int:
    """How many lines the file has, counting a last line without a break; for error messages."""
    content = path.read_bytes()
    return content.count(b"\n") + (0 if content.endswith(b"\n") else 1)
