"""The inbox's file rules: what is ready, what waits, claiming, filing away, one poll at a time."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from pipelines.durable import file_lock
from pipelines.orchestration import inbox


@pytest.fixture
def box(tmp_path: Path) -> inbox.Inbox:
    return inbox.Inbox(tmp_path / "inbox" / "a" / "u", tmp_path / "locks" / "u.lock").create()


def parquet(path: Path, rows: int = 3) -> Path:
    pd.DataFrame({"x": range(rows)}).to_parquet(path)
    return path


def age(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_settled_files_are_ready_oldest_first_and_the_rest_wait(box):
    old = age(parquet(box.root / "b.parquet"), 100)
    older = box.root / "a.csv"
    older.write_text("id,x\n1,2\n")
    age(older, 200)
    fresh = parquet(box.root / "fresh.parquet")
    hidden = age(parquet(box.root / ".hidden.parquet"), 100)
    partial = age(parquet(box.root / "upload.parquet.part"), 100)
    found = inbox.scan(box, settle_seconds=30)
    assert found.ready == [older, old]
    assert set(found.waiting) == {fresh, hidden, partial}
    assert found.leftovers == []


def test_a_parquet_file_without_its_footer_waits_until_it_is_long_stale(box):
    half = box.root / "half.parquet"
    half.write_bytes(b"PAR1" + b"\0" * 100)
    age(half, 60)
    assert inbox.scan(box, settle_seconds=5).waiting == [half]
    age(half, 3600)  # the writer is long gone: the gate will quarantine it as unreadable
    assert inbox.scan(box, settle_seconds=5).ready == [half]
    assert not inbox.looks_unfinished(parquet(box.root / "whole.parquet"))
    empty = box.root / "empty.csv"
    empty.touch()
    assert inbox.looks_unfinished(empty)
    garbage = box.root / "garbage.parquet"
    garbage.write_bytes(b"not parquet")
    assert not inbox.looks_unfinished(garbage)  # nobody is writing it: the gate says why


def test_folders_and_symlinks_are_never_picked(box, tmp_path):
    (box.root / "folder.parquet").mkdir()
    target = age(parquet(tmp_path / "elsewhere.parquet"), 100)
    (box.root / "link.parquet").symlink_to(target)
    found = inbox.scan(box, settle_seconds=0)
    assert found.ready == [] and found.waiting == []


def test_claim_moves_the_file_once(box):
    path = parquet(box.root / "batch.parquet")
    claimed = inbox.claim(box, path)
    assert claimed == box.claimed / "batch.parquet" and claimed.exists() and not path.exists()
    assert inbox.claim(box, path) is None  # a second claim finds nothing
    assert inbox.scan(box, settle_seconds=0).leftovers == [claimed]


def test_a_claimed_file_is_private_whatever_mode_it_was_dropped_with(box):
    path = parquet(box.root / "shared.parquet")
    path.chmod(0o644)

    claimed = inbox.claim(box, path)
    mode = claimed.stat().st_mode & 0o777
    filed = inbox.file_away(box, claimed, "processed", {"batch_id": "b1"})

    assert mode == 0o600 and filed.stat().st_mode & 0o777 == 0o600


def test_file_away_writes_the_receipt_and_keeps_the_file(box):
    claimed = inbox.claim(box, parquet(box.root / "batch.parquet"))
    filed = inbox.file_away(box, claimed, "processed", {"batch_id": "b1", "rows": 3})
    assert filed.parent == box.processed and filed.name.endswith("-batch.parquet")
    assert len(pd.read_parquet(filed)) == 3
    receipt = json.loads(filed.with_name(filed.name + ".json").read_text())
    assert receipt["batch_id"] == "b1" and receipt["outcome"] == "processed"
    assert inbox.receipts(box, "processed") == [receipt]
    assert not list(box.claimed.iterdir())
    with pytest.raises(ValueError, match="processed' or 'quarantine"):
        inbox.file_away(box, filed, "elsewhere", {})


def test_the_same_name_dropped_twice_is_filed_twice_not_overwritten(box):
    for rows in (2, 4):
        claimed = inbox.claim(box, parquet(box.root / "batch.parquet", rows))
        inbox.file_away(box, claimed, "processed", {"rows": rows})
    files = sorted(box.processed.glob("*-batch.parquet"))
    assert [len(pd.read_parquet(path)) for path in files] == [2, 4]


def _hold(lock: str, ready, release) -> None:  # in another process
    with file_lock(Path(lock)):
        ready.set()
        release.wait(30)


def test_a_second_poll_is_turned_away_while_one_holds_the_inbox(box):
    context = multiprocessing.get_context("spawn")
    ready, release = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(str(box.lock), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(inbox.InboxBusyError, match="another poll"), inbox.polling(box):
            pass
    finally:
        release.set()
        holder.join(30)
    with inbox.polling(box) as held:  # free again once the first poll ends
        assert held.claimed.is_dir()
