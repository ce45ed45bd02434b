"""The chained log's key and heads: lines removed or a chain rewritten without the key are
caught from the head file, and from a second head (an Anchor) when the head file was put back
too; logs written before keys keep verifying; an interrupted append is not tampering."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from pipelines import hashlog
from pipelines.hashlog import Head, LogTamperedError


class DictHeads:
    """An Anchor that keeps heads in memory: the role the MLflow store plays in the service."""

    def __init__(self) -> None:
        self.heads: dict[Path, Head] = {}

    def save(self, path: Path, head: Head) -> None:
        self.heads[Path(path)] = head

    def load(self, path: Path) -> Head | None:
        return self.heads.get(Path(path))


@pytest.fixture
def anchor() -> DictHeads:
    heads = DictHeads()
    hashlog.keep_heads_in(heads)
    yield heads
    hashlog._anchors.remove(heads)


def write(path: Path, count: int) -> list[dict]:
    return [hashlog.append(path, {"n": n}) for n in range(1, count + 1)]


def unkeyed_chain(records: list[dict]) -> bytes:
    """The records re-chained with plain sha256, as someone without the key would."""
    lines, previous = [], ""
    for seq, record in enumerate(records, start=1):
        body = {k: v for k, v in record.items() if k not in ("hash", "prev", "seq")}
        rechained = {"seq": seq, **body, "prev": previous}
        rechained["hash"] = hashlog.STANDARD.digest(rechained)
        previous = rechained["hash"]
        lines.append(json.dumps(rechained, sort_keys=True) + "\n")
    return "".join(lines).encode()


def test_the_key_head_and_log_are_private_and_the_head_names_the_last_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "log.jsonl"
    stored = write(path, 3)

    for made in (path, hashlog.key_path(path), hashlog.head_path(path)):
        assert stat.S_IMODE(made.stat().st_mode) == 0o600, made
    head = json.loads(hashlog.head_path(path).read_text())
    assert (head["count"], head["last"], head["size"]) == (
        3,
        stored[-1]["hash"],
        path.stat().st_size,
    )
    assert stored[-1]["hash"].startswith("hmac-sha256:")


@pytest.mark.parametrize("removed", [1, 3])
def test_cutting_the_newest_lines_is_caught_by_readers_and_writers(
    tmp_path: Path, removed: int
) -> None:
    path = tmp_path / "log.jsonl"
    write(path, 5)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-removed]))

    with pytest.raises(LogTamperedError, match="the head file says 5: lines were removed"):
        hashlog.read(path)
    with pytest.raises(LogTamperedError, match="shorter than its head file says"):
        hashlog.check_end(path)
    with pytest.raises(LogTamperedError, match="shorter than its head file says"):
        hashlog.append(path, {"n": 6})
    assert len(path.read_bytes().splitlines()) == 5 - removed


def test_a_deleted_middle_line_is_caught_at_once_by_an_append(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write(path, 5)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[:2], *lines[3:]]))

    with pytest.raises(LogTamperedError, match=r"line 3: .*seq is 4, not 3"):
        hashlog.read(path)
    with pytest.raises(LogTamperedError, match="shorter than its head file"):
        hashlog.check_end(path)


def test_a_chain_rewritten_without_the_key_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    records = write(path, 5)
    path.write_bytes(unkeyed_chain([*records[:1], *records[2:]]))  # line 2 gone, rehashed

    with pytest.raises(LogTamperedError, match=r"shorter than its head file|rewritten"):
        hashlog.read(path)


def test_a_head_file_forged_without_the_key_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    records = write(path, 5)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3]))
    forged = {"count": 3, "last": records[2]["hash"], "size": path.stat().st_size, "mac": "0" * 64}
    hashlog.head_path(path).write_text(json.dumps(forged))

    with pytest.raises(LogTamperedError, match="was not written with the log's key"):
        hashlog.read(path)


def test_an_old_head_file_put_back_is_caught_by_the_anchor(
    tmp_path: Path, anchor: DictHeads
) -> None:
    path = tmp_path / "log.jsonl"
    write(path, 3)
    old_head = hashlog.head_path(path).read_bytes()
    old_log = path.read_bytes()
    write(path, 2)
    assert hashlog.read(path)[-1]["seq"] == 5
    assert anchor.heads[path].count == 5

    path.write_bytes(old_log)
    hashlog.head_path(path).write_bytes(old_head)

    with pytest.raises(LogTamperedError, match="the log has 3 lines, the head kept in the"):
        hashlog.read(path)


def test_a_chain_rewritten_with_a_new_key_is_caught_by_the_anchor(
    tmp_path: Path, anchor: DictHeads
) -> None:
    path = tmp_path / "log.jsonl"
    records = write(path, 4)
    for made in (path, hashlog.key_path(path), hashlog.head_path(path)):
        made.unlink()
    hashlog._anchors.remove(anchor)  # the rewrite happens out of the anchor's sight
    try:
        for record in [*records[:1], *records[2:]]:
            hashlog.append(path, {"n": record["n"]})
    finally:
        hashlog.keep_heads_in(anchor)

    with pytest.raises(LogTamperedError, match=r"line 3: .*the head kept in the tracking store"):
        hashlog.read(path)


def test_key_or_head_file_removed_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write(path, 2)
    key = hashlog.key_path(path).read_bytes()

    hashlog.key_path(path).unlink()
    with pytest.raises(LogTamperedError, match=r"log.key is missing"):
        hashlog.read(path)
    with pytest.raises(LogTamperedError, match=r"log.key is missing"):
        hashlog.append(path, {"n": 3})

    hashlog.key_path(path).write_bytes(key)
    hashlog.head_path(path).unlink()
    with pytest.raises(LogTamperedError, match=r"log.head is missing"):
        hashlog.read(path)
    with pytest.raises(LogTamperedError, match=r"log.head is missing"):
        hashlog.append(path, {"n": 3})


def test_a_log_from_before_keys_keeps_verifying_and_goes_on_keyed(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    legacy = unkeyed_chain([{"n": 1}, {"n": 2}])
    path.write_bytes(legacy)
    assert [r["n"] for r in hashlog.read(path)] == [1, 2]

    third = hashlog.append(path, {"n": 3})

    assert path.read_bytes().startswith(legacy)  # the old lines stay byte for byte
    assert third["hash"].startswith("hmac-sha256:")
    assert third["prev"] == json.loads(legacy.splitlines()[1])["hash"]
    assert [r["n"] for r in hashlog.read(path)] == [1, 2, 3]


def test_an_unkeyed_line_after_keyed_ones_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    last = write(path, 2)[-1]
    line = {"seq": 3, "n": 3, "prev": last["hash"]}
    line["hash"] = hashlib.sha256(json.dumps(line, sort_keys=True).encode()).hexdigest()
    with open(path, "a") as handle:
        handle.write(json.dumps(line, sort_keys=True) + "\n")

    with pytest.raises(LogTamperedError, match=r"line 3: .*an unkeyed line follows keyed ones"):
        hashlog.read(path)
    with pytest.raises(LogTamperedError, match=r"line 3: .*unkeyed line follows keyed ones"):
        hashlog.append(path, {"n": 4})


def test_a_line_appended_before_a_crash_could_write_the_head_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write(path, 2)
    head = hashlog.head_path(path).read_bytes()
    hashlog.append(path, {"n": 3})
    hashlog.head_path(path).write_bytes(head)  # the head as it was before the third line

    assert [r["n"] for r in hashlog.read(path)] == [1, 2, 3]
    assert hashlog.append(path, {"n": 4})["seq"] == 4
    assert json.loads(hashlog.head_path(path).read_text())["count"] == 4


def test_the_audit_logs_layout_is_read_by_the_same_function(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    stored = [hashlog.AUDIT.append(path, {"action": a}) for a in ("promote", "rollback")]

    assert hashlog.read(path) == stored
    assert stored[1]["prev_sha256"] == stored[0]["sha256"]
