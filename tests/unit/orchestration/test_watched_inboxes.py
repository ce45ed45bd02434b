"""The inbox watcher on its own: it polls only an inbox with work, finishes the poll a signal
interrupts, abandons it on a second one, and retries a failed poll's leftovers later."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from pipelines.orchestration import inbox
from pipelines.orchestration.inbox_watch import InboxWatcher, WatchedInbox


def watched(tmp_path: Path, name: str = "fraud-risk", retry_seconds: float = 60) -> WatchedInbox:
    box = inbox.Inbox(tmp_path / "inbox" / name, tmp_path / "locks" / f"{name}.lock").create()
    return WatchedInbox("business-aid", name, box, settle_seconds=0, retry_seconds=retry_seconds)


class Log(list):
    """The watcher's log lines; `told` is set once it says it will stop after the poll."""

    def __init__(self) -> None:
        super().__init__()
        self.told = threading.Event()

    def __call__(self, line: str) -> None:
        self.append(line)
        if "stopping once the poll" in line:
            self.told.set()


def watcher(items: list[WatchedInbox], poll, lines: list[str]) -> InboxWatcher:
    return InboxWatcher(items, poll, interval=0.05, log=lines)


def test_only_an_inbox_with_a_ready_file_is_polled_and_sigterm_stops_after_the_poll(tmp_path):
    idle, busy = watched(tmp_path, "idle"), watched(tmp_path, "busy")
    (idle.box.root / ".upload.parquet.tmp").write_bytes(b"PAR1")  # still being written
    (busy.box.root / "batch.csv").write_text("id\n1\n")
    polled: list[str] = []

    lines = Log()

    def poll(item: WatchedInbox) -> None:
        polled.append(item.name)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while this poll runs
        assert lines.told.wait(30)

    stopped = watcher([idle, busy], poll, lines).watch()

    assert polled == ["business-aid/busy"]
    assert (stopped.signal_name, stopped.abandoned) == ("SIGTERM", None)
    assert any("stopping once the poll of business-aid/busy finishes" in x for x in lines)
    assert lines[-1].endswith("SIGTERM: stopped")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers given back


def test_a_second_signal_abandons_the_running_poll(tmp_path):
    item = watched(tmp_path)
    (item.box.root / "batch.csv").write_text("id\n1\n")
    release = threading.Event()
    lines = Log()

    def poll(item: WatchedInbox) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        assert lines.told.wait(30)
        os.kill(os.getpid(), signal.SIGINT)
        release.wait(30)

    try:
        stopped = watcher([item], poll, lines).watch()
    finally:
        release.set()
    assert (stopped.signal_name, stopped.abandoned) == ("SIGINT", "business-aid/fraud-risk")
    assert any("abandoning the poll" in x and ".claimed/" in x for x in lines)


def test_a_failed_poll_is_logged_and_its_leftovers_wait_but_a_new_file_does_not(tmp_path):
    item = watched(tmp_path, retry_seconds=3600)
    (item.box.root / "early.csv").write_text("id\n1\n")
    calls: list[int] = []

    def poll(item: WatchedInbox) -> None:
        calls.append(1)
        inbox.claim(item.box, item.box.root / "early.csv")  # as the real poll leaves it
        os.kill(os.getpid(), signal.SIGTERM)
        raise RuntimeError("no champion yet")

    lines = Log()
    w = watcher([item], poll, lines)
    assert w.watch().abandoned is None
    assert calls == [1]
    assert any("poll failed: RuntimeError: no champion yet" in x for x in lines)
    assert not w.has_work(item)  # the leftover waits for its retry time
    (item.box.root / "late.csv").write_text("id\n2\n")
    assert w.has_work(item)


@pytest.mark.parametrize(
    ("name", "settle_seconds", "has_work"),
    [("batch.parquet.part", 0, False), ("batch.csv", 3600, False), ("batch.csv", 0, True)],
)
def test_files_being_written_or_not_settled_wake_no_poll(tmp_path, name, settle_seconds, has_work):
    item = watched(tmp_path)
    item = WatchedInbox(item.agency, item.use_case, item.box, settle_seconds, 60)
    (item.box.root / name).write_text("id\n1\n")
    assert watcher([item], lambda _: None, []).has_work(item) is has_work


def test_an_inbox_folder_removed_under_the_watcher_is_made_again(tmp_path):
    item = watched(tmp_path)
    for folder in (item.box.claimed, item.box.processed, item.box.quarantine, item.box.root):
        folder.rmdir()
    assert not watcher([item], lambda _: None, []).has_work(item)
    assert item.box.root.is_dir()
