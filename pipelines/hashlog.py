"""Append-only, keyed, hash-chained JSON-lines logs: the registry's audit trail and the access log.

Each line is one JSON object that carries its 1-based `seq`, the hash of the line before it and
its own hash, so an edited, deleted, reordered or inserted line breaks the chain and every reader
says where. The hash is an HMAC-SHA256 (`hmac-sha256:<hex>`) with a key kept apart from the log
(`<log>.key`, 0600, made on first use), so nobody without the key can recompute a chain.

The head of the log, its line count, last hash and size, is kept outside it twice: in
`<log>.head` (HMAC'd with the key, rewritten on each append) and in every `Anchor` the process
has registered (the MLflow store, see pipelines.registry.log_heads). Cutting the newest lines,
even together with recomputed hashes or an old copy of the head file, disagrees with a head.

Lines written before keys existed hold a plain sha256 (of the record without its hash, as JSON
with sorted keys and the standard library's separators) and keep verifying, as long as they all
come before the first keyed line; their bytes never change."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from pipelines.durable import file_lock, fsync_dir

SEQ = "seq"
KEYED = "hmac-sha256:"
_TAIL_BLOCK = 4096


class LogTamperedError(RuntimeError):
    """A line of a chained log no longer matches the chain: the file was edited by hand."""

    entry = "record"

    def __init__(self, path: Path, line: int, detail: str) -> None:
        self.path = Path(path)
        self.line = line
        self.detail = detail
        where = f"{self.path}, line {line}" if line else str(self.path)
        super().__init__(
            f"{where}: the {self.entry} does not match its hash chain "
            f"({detail}); the log was edited outside agencyml after it was written, so its "
            "records can no longer be trusted. Restore the file from a backup; agencyml only "
            "ever appends to it."
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.line, self.detail))


class LogAnchorError(RuntimeError):
    """A log's head could not be written to, or read from, a place outside the log."""


@dataclass(frozen=True)
class Head:
    """Where a log ended after an append: its line count, last hash and size in bytes."""

    count: int
    last: str
    size: int


class Anchor(Protocol):
    """A second place that keeps each log's head; `load` is None for a log it never saw."""

    def save(self, path: Path, head: Head) -> None: ...

    def load(self, path: Path) -> Head | None: ...


_anchors: list[Anchor] = []


def keep_heads_in(anchor: Anchor) -> None:
    """Save every log's head in `anchor` at each append, and check reads against it, in this
    process from now on (an equal anchor registered before is replaced)."""
    _anchors[:] = [known for known in _anchors if known != anchor] + [anchor]


def key_path(path: Path) -> Path:
    return Path(path).with_suffix(".key")


def head_path(path: Path) -> Path:
    return Path(path).with_suffix(".head")


def lock_path(path: Path) -> Path:
    """The lock an append holds, exclusive, and a reader of the log's lines shared."""
    return Path(path).with_suffix(".lock")


@dataclass(frozen=True)
class Chain:
    """The field names one log uses for the link to the previous line and for its own hash."""

    prev: str = "prev"
    hash: str = "hash"
    first_prev: str | None = ""

    def append(self, path: Path, record: dict[str, Any]) -> dict[str, Any]:
        """Add one record under an exclusive lock, chained to the last line; returns it as stored.

        Only the end of the log is read (the line its head names and any after it), so
        appending stays cheap however long the log grows."""
        self._check_fields(record)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(lock_path(path)):
            key = _key(path, create=True)
            last, size = self._checked_end(path, key)
            stored = {
                SEQ: last[SEQ] + 1 if last else 1,
                **record,
                self.prev: last[self.hash] if last else self.first_prev,
            }
            stored[self.hash] = self.digest(stored, key)
            line = (json.dumps(stored, sort_keys=True) + "\n").encode("utf-8")
            _append_line(path, line)
            head = Head(stored[SEQ], stored[self.hash], size + len(line))
            _write_head(path, key, head)
            for anchor in list(_anchors):
                anchor.save(path, head)
        return stored

    def check_end(self, path: Path) -> None:
        """The cheap check an append makes, without appending: the head file, the line it names
        and any after it. Raises LogTamperedError; a log that does not exist yet passes."""
        path = Path(path)
        if not path.exists() and not head_path(path).exists():
            return
        with file_lock(lock_path(path), shared=True):
            self._checked_end(path, _key(path, create=False))

    def read(self, path: Path) -> list[dict[str, Any]]:
        """Every record in order, after checking each line's seq, link and hash, and the log's
        end against its head file and every registered anchor."""
        path = Path(path)
        with file_lock(lock_path(path), shared=True):
            return self._read_locked(path, _key(path, create=False))

    def _read_locked(self, path: Path, key: bytes | None) -> list[dict[str, Any]]:
        content = path.read_bytes() if path.is_file() else b""
        head = _read_head(path, key)
        lines = content.split(b"\n")
        if lines[-1]:
            raise LogTamperedError(path, len(lines), "the last line has no line break")
        records: list[dict[str, Any]] = []
        ends: list[int] = []  # the byte offset after each line
        for number, line in enumerate(lines[:-1], start=1):
            previous = records[-1][self.hash] if records else self.first_prev
            text = line.decode("utf-8", errors="replace")
            records.append(self._verified(path, number, text, previous, key))
            ends.append((ends[-1] if ends else 0) + len(line) + 1)
            if number > 1 and _keyed(previous) and not _keyed(records[-1][self.hash]):
                raise LogTamperedError(path, number, "an unkeyed line follows keyed ones")
        if head is None and records and _keyed(records[-1][self.hash]):
            raise LogTamperedError(path, len(records), f"{head_path(path).name} is missing")
        heads = [("the head file", head)] + [
            ("the head kept in the tracking store", anchor.load(path)) for anchor in list(_anchors)
        ]
        for where, known in heads:
            if known is not None:
                self._check_against(path, records, ends, known, where)
        return records

    def digest(self, record: dict[str, Any], key: bytes | None = None) -> str:
        """The line's hash: HMAC-SHA256 with the log's key, or a plain sha256 without one (how
        lines were hashed before logs had keys)."""
        body = json.dumps(
            {name: value for name, value in record.items() if name != self.hash}, sort_keys=True
        ).encode()
        if key is None:
            return hashlib.sha256(body).hexdigest()
        return KEYED + hmac.new(key, body, hashlib.sha256).hexdigest()

    def _checked_end(self, path: Path, key: bytes | None) -> tuple[dict[str, Any] | None, int]:
        """The last record and the log's size, after checking the end of the log against its
        head: the line the head names is where it said, with the hash it said, and every line
        after it (one an interrupted append left) is keyed and chained."""
        head = _read_head(path, key)
        size = path.stat().st_size if path.is_file() else 0
        if head is None:
            return self._unanchored_end(path, key, size), size
        if size < head.size:
            raise LogTamperedError(
                path,
                head.count,
                f"the log is {head.size - size} bytes shorter than its head file says: its end "
                "was cut or lines were removed",
            )
        last = None
        if head.count:
            line = _line_ending_at(path, head.size)
            last = self._checked_line(path, head.count, line, key)
            if last[SEQ] != head.count or last[self.hash] != head.last:
                raise LogTamperedError(
                    path, head.count, "it is not the line the head file names: lines were removed"
                )
        rest = b""
        if size > head.size:
            with open(path, "rb") as handle:
                handle.seek(head.size)
                rest = handle.read()
        for number, line in enumerate(rest.splitlines(keepends=True), start=head.count + 1):
            record = self._checked_line(path, number, line, key)
            expected = last[self.hash] if last else self.first_prev
            if record[SEQ] != number or record.get(self.prev) != expected:
                raise LogTamperedError(path, number, "it does not follow the line before it")
            if not _keyed(record[self.hash]):
                raise LogTamperedError(path, number, "an unkeyed line follows keyed ones")
            last = record
        return last, size

    def _unanchored_end(self, path: Path, key: bytes | None, size: int) -> dict[str, Any] | None:
        """A log without a head file: empty, or written before keys, which is checked whole once
        (its first keyed append then writes the head)."""
        if not size:
            return None
        tail = _last_line(path) or b""
        last = self._checked_line(path, 0, tail, key)
        if _keyed(last[self.hash]):
            raise LogTamperedError(path, last[SEQ], f"{head_path(path).name} is missing")
        records = self._read_locked(path, key)
        return records[-1] if records else None

    def _check_against(
        self, path: Path, records: list[dict[str, Any]], ends: list[int], head: Head, where: str
    ) -> None:
        if head.count > len(records):
            raise LogTamperedError(
                path,
                len(records),
                f"the log has {len(records)} lines, {where} says {head.count}: lines were removed",
            )
        if head.count and (
            records[head.count - 1][self.hash] != head.last or ends[head.count - 1] != head.size
        ):
            raise LogTamperedError(
                path, head.count, f"it is not the line {where} names: the log was rewritten"
            )
        if any(not _keyed(record[self.hash]) for record in records[head.count :]):
            raise LogTamperedError(path, head.count + 1, f"unkeyed lines after {where}'s line")

    def _checked_line(
        self, path: Path, number: int, line: bytes, key: bytes | None
    ) -> dict[str, Any]:
        """One line checked on its own (line break, JSON, integer seq, hash)."""
        if not line.endswith(b"\n"):
            raise LogTamperedError(
                path, number or _count_lines(path), "the last line has no line break"
            )
        record = _parsed(path, number, line.decode("utf-8", errors="replace"))
        if not isinstance(record.get(SEQ), int):
            raise LogTamperedError(path, number, f"the line has no integer '{SEQ}'")
        self._check_hash(path, number or record[SEQ], record, key)
        return record

    def _verified(
        self, path: Path, number: int, line: str, previous: str | None, key: bytes | None
    ) -> dict[str, Any]:
        record = _parsed(path, number, line)
        if record.get(SEQ) != number:
            raise LogTamperedError(path, number, f"{SEQ} is {record.get(SEQ)!r}, not {number}")
        if record.get(self.prev) != previous:
            raise LogTamperedError(path, number, f"'{self.prev}' is not the previous line's hash")
        self._check_hash(path, number, record, key)
        return record

    def _check_hash(
        self, path: Path, number: int, record: dict[str, Any], key: bytes | None
    ) -> None:
        stored = record.get(self.hash)
        if _keyed(stored) and key is None:
            raise LogTamperedError(
                path, number, f"the line is keyed but {key_path(path).name} is missing"
            )
        expected = self.digest(record, key if _keyed(stored) else None)
        if not isinstance(stored, str) or not hmac.compare_digest(stored, expected):
            raise LogTamperedError(path, number, f"'{self.hash}' does not match the line's content")

    def _check_fields(self, record: dict[str, Any]) -> None:
        taken = sorted({SEQ, self.prev, self.hash} & set(record))
        if taken:
            raise ValueError(
                f"the record already has {', '.join(taken)}; the log sets those fields itself, "
                "so rename them in the record"
            )


STANDARD = Chain()
# The registry's audit log names its fields after sha256: they predate this module.
AUDIT = Chain(prev="prev_sha256", hash="sha256", first_prev=None)


def append(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Append one record to the chained log at `path` (created with its folders if missing)."""
    return STANDARD.append(path, record)


def read(path: Path) -> list[dict[str, Any]]:
    """All records of the log at `path` (either layout: the access log's or the audit log's),
    verified line by line and against its heads; [] when it does not exist yet. Raises
    LogTamperedError."""
    return chain_of(path).read(path)


def check_end(path: Path) -> None:
    """The end of the log at `path` checked against its head, cheaply (see Chain.check_end)."""
    chain_of(path).check_end(path)


def chain_of(path: Path) -> Chain:
    """The layout of the log at `path`, from its first line's fields."""
    try:
        with open(path, "rb") as handle:
            first = handle.readline(1 << 20)
    except OSError:
        return STANDARD
    try:
        fields = json.loads(first)
    except ValueError:
        return STANDARD  # the standard chain's reader then says what is wrong with the line
    return AUDIT if isinstance(fields, dict) and AUDIT.prev in fields else STANDARD


def _keyed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(KEYED)


def _key(path: Path, *, create: bool) -> bytes | None:
    """The log's key, made (0600) when `create` and the log has none yet; a key that goes
    missing once a head file exists is tampering."""
    location = key_path(path)
    try:
        return bytes.fromhex(location.read_text().strip())
    except FileNotFoundError:
        if head_path(path).exists():
            raise LogTamperedError(
                path, 0, f"{location.name} is missing although {head_path(path).name} exists"
            ) from None
    except ValueError as error:
        raise LogTamperedError(path, 0, f"{location.name} is not a key") from error
    if not create:
        return None
    _write_private(location, secrets.token_hex(32).encode())
    return bytes.fromhex(location.read_text().strip())


def _head_mac(key: bytes, head: Head) -> str:
    body = json.dumps(asdict(head), sort_keys=True).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _read_head(path: Path, key: bytes | None) -> Head | None:
    location = head_path(path)
    try:
        stored = json.loads(location.read_text())
        head = Head(int(stored["count"]), str(stored["last"]), int(stored["size"]))
        mac = str(stored["mac"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as error:
        raise LogTamperedError(path, 0, f"{location.name} is not a head file") from error
    if key is None:
        raise LogTamperedError(path, 0, f"{key_path(path).name} is missing")
    if not hmac.compare_digest(mac, _head_mac(key, head)):
        raise LogTamperedError(path, 0, f"{location.name} was not written with the log's key")
    return head


def _write_head(path: Path, key: bytes | None, head: Head) -> None:
    assert key is not None  # append always has one
    document = {**asdict(head), "mac": _head_mac(key, head)}
    # no fsync of the folder: a rename lost in a crash leaves the previous head, which the
    # line after it (keyed and chained) still follows, so the log reads as intact
    _write_private(head_path(path), json.dumps(document, sort_keys=True).encode(), durable=False)


def _write_private(path: Path, content: bytes, *, durable: bool = True) -> None:
    """Replace `path` atomically with a 0600 file holding `content`, fsynced (and its folder
    too when `durable`)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    _write_synced(partial, content, os.O_TRUNC)
    os.replace(partial, path)
    if durable:
        fsync_dir(path.parent)


def _write_synced(path: Path, data: bytes, mode: int) -> None:
    """Write all of `data` to a 0600 file opened with `mode` (truncating or appending), and
    fsync it."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | mode, 0o600)
    try:
        while data:
            data = data[os.write(descriptor, data) :]
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _parsed(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as error:
        raise LogTamperedError(path, number, f"the line is not JSON: {error}") from error
    if not isinstance(record, dict):
        raise LogTamperedError(path, number, "the line is not a JSON object")
    return record


def _append_line(path: Path, data: bytes) -> None:
    created = not path.exists()
    _write_synced(path, data, os.O_APPEND)
    if created:
        fsync_dir(path.parent)


def _line_ending_at(path: Path, end: int) -> bytes:
    """The line that ends at byte `end` of the file, with its line break (read backwards)."""
    with open(path, "rb") as handle:
        position, tail = end, b""
        while position > 0 and b"\n" not in tail[:-1]:
            step = min(_TAIL_BLOCK, position)
            position -= step
            handle.seek(position)
            tail = handle.read(step) + tail
    return tail[tail.rfind(b"\n", 0, len(tail) - 1) + 1 :]


def _last_line(path: Path) -> bytes | None:
    """The file's last line with its line break, read backwards from the end."""
    if not path.is_file():
        return None
    size = path.stat().st_size
    return _line_ending_at(path, size) if size else None


def _count_lines(path: Path) -> int:
    """How many lines the file has, counting a last line without a break; for error messages."""
    content = path.read_bytes()
    return content.count(b"\n") + (0 if content.endswith(b"\n") else 1)
