"""The chained log: what a line holds, that every kind of edit is caught, and that writers from
several processes queue instead of breaking the chain."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import hashlog
from pipelines.hashlog import LogTamperedError
from pipelines.paths import PACKAGE_ROOT

KEY = b""  # the log's key, for an editor who has it


def write_three(path: Path) -> list[dict]:
    return [hashlog.append(path, {"n": n, "text": f"record {n}"}) for n in (1, 2, 3)]


def test_each_record_carries_its_seq_the_previous_hash_and_its_own(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "folder" / "log.jsonl"

    stored = write_three(path)

    assert [r["seq"] for r in stored] == [1, 2, 3]
    assert stored[0]["prev"] == ""
    assert [r["prev"] for r in stored[1:]] == [r["hash"] for r in stored[:-1]]
    body = {k: v for k, v in stored[1].items() if k != "hash"}
    key = bytes.fromhex(hashlog.key_path(path).read_text())
    expected = hmac.new(key, json.dumps(body, sort_keys=True).encode(), hashlib.sha256)
    assert stored[1]["hash"] == "hmac-sha256:" + expected.hexdigest()
    assert hashlog.read(path) == stored
    assert len(path.read_text().splitlines()) == 3


def test_a_log_that_does_not_exist_yet_reads_as_empty(tmp_path: Path) -> None:
    assert hashlog.read(tmp_path / "missing.jsonl") == []
    assert not (tmp_path / "missing.jsonl").exists()


def test_a_record_may_not_bring_its_own_chain_fields(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="already has hash, seq; the log sets those"):
        hashlog.append(tmp_path / "log.jsonl", {"seq": 9, "hash": "x", "n": 1})


def change_value(lines: list[str]) -> list[str]:
    return [lines[0], lines[1].replace('"record 2"', '"record 7"'), *lines[2:]]


def rehash_after_change(lines: list[str]) -> list[str]:
    """An editor who also recomputes the line's own hash (with the key) still breaks the next
    link."""
    record = json.loads(lines[1])
    record["text"] = "record 7"
    record["hash"] = hashlog.STANDARD.digest(record, KEY)
    return [lines[0], json.dumps(record, sort_keys=True), lines[2]]


EDITS = {
    "changed value": (change_value, 2),
    "rehashed change": (rehash_after_change, 3),
    "deleted line": (lambda lines: [lines[0], lines[2]], 2),
    "deleted first line": (lambda lines: lines[1:], 1),
    "swapped lines": (lambda lines: [lines[0], lines[2], lines[1]], 2),
    "inserted blank line": (lambda lines: [lines[0], "", *lines[1:]], 2),
    "not an object": (lambda lines: [lines[0], "[1, 2]", lines[2]], 2),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_every_kind_of_edit_is_caught_at_its_line(
    tmp_path: Path, edit: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log.jsonl"
    write_three(path)
    monkeypatch.setitem(globals(), "KEY", bytes.fromhex(hashlog.key_path(path).read_text()))
    change, line = EDITS[edit]
    path.write_text("\n".join(change(path.read_text().splitlines())) + "\n")

    with pytest.raises(LogTamperedError, match=f"log.jsonl, line {line}: ") as caught:
        hashlog.read(path)

    assert "edited outside agencyml" in str(caught.value)
    assert (caught.value.path, caught.value.line) == (path, line)


def test_a_missing_final_line_break_is_caught_by_readers_and_writers(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write_three(path)
    path.write_text(path.read_text().rstrip("\n"))

    with pytest.raises(LogTamperedError, match=r"line 3: .*no line break"):
        hashlog.read(path)
    with pytest.raises(LogTamperedError, match=r"line 3: .*1 bytes shorter than its head file"):
        hashlog.append(path, {"n": 4})


def test_appending_to_an_edited_last_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write_three(path)
    path.write_text(path.read_text().replace('"record 3"', '"record 8"'))

    with pytest.raises(LogTamperedError, match=r"line 3: .*'hash' does not match"):
        hashlog.append(path, {"n": 4})
    assert len(path.read_text().splitlines()) == 3


def test_the_last_line_is_found_past_the_first_block_read_from_the_end(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    hashlog.append(path, {"padding": "x" * 10_000})
    hashlog.append(path, {"padding": "y" * 10_000})

    third = hashlog.append(path, {"n": 3})

    assert third["seq"] == 3
    assert hashlog.read(path)[-1] == third


def test_the_error_survives_pickling_for_worker_processes(tmp_path: Path) -> None:
    error = LogTamperedError(tmp_path / "log.jsonl", 4, "seq is 5, not 4")

    copy = pickle.loads(pickle.dumps(error))

    assert (copy.path, copy.line, str(copy)) == (error.path, error.line, str(error))


WRITER = """
import sys
from pathlib import Path
from pipelines import hashlog
for n in range(int(sys.argv[3])):
    hashlog.append(Path(sys.argv[1]), {"writer": sys.argv[2], "n": n})
"""


def test_writers_in_four_processes_keep_one_unbroken_chain(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(w), "25"], env=env)
        for w in range(4)
    ]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0, 0, 0]

    records = hashlog.read(path)

    assert [r["seq"] for r in records] == list(range(1, 101))
    assert sorted((r["writer"], r["n"]) for r in records) == [
        (str(w), n) for w in range(4) for n in range(25)
    ]
