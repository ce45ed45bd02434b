"""Counting a claimed file's failed attempts durably: before each attempt starts, so that a poll
killed while scoring counts too; platform faults uncounted; the count leaves with the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.orchestration import inbox


@pytest.fixture
def claimed(tmp_path: Path) -> tuple[inbox.Inbox, Path]:
    box = inbox.Inbox(tmp_path / "inbox" / "a" / "u", tmp_path / "locks" / "u.lock").create()
    path = box.claimed / "batch.csv"
    path.write_text("id,x\n1,2\n")
    return box, path


def test_an_attempt_counts_from_its_start_so_a_killed_poll_counts(claimed):
    box, path = claimed
    assert inbox.failed_attempts(path) == []
    assert inbox.begin_attempt(path) == 1  # the poll dies here: nothing else is written
    (attempt,) = inbox.failed_attempts(path)
    assert attempt["error"] == inbox.UNFINISHED and attempt["started_at"]
    assert inbox.scan(box, settle_seconds=0).leftovers == [path]  # the count is no leftover


def test_a_crash_is_recorded_and_a_platform_fault_is_not_counted(claimed):
    _, path = claimed
    inbox.begin_attempt(path)
    assert inbox.end_attempt(path, "KeyError: 'x'") == 1
    inbox.begin_attempt(path)
    assert inbox.end_attempt(path, None) == 1  # e.g. no champion yet: not the file's fault
    inbox.begin_attempt(path)
    assert inbox.end_attempt(path, "ValueError: boom") == 2
    assert [a["error"] for a in inbox.failed_attempts(path)] == [
        "KeyError: 'x'",
        "ValueError: boom",
    ]


@pytest.mark.parametrize("outcome", ["processed", "quarantine"])
def test_filing_a_file_away_removes_its_count(claimed, outcome):
    box, path = claimed
    inbox.begin_attempt(path)
    filed = inbox.file_away(box, path, outcome, {"reason": "r"})
    assert filed.is_file() and list(box.claimed.iterdir()) == []
    assert inbox.failed_attempts(path) == []


def test_an_unreadable_count_is_one_attempt_never_a_reset_or_a_crash(claimed):
    _, path = claimed
    inbox.attempts_path(path).write_text("{not json")
    (attempt,) = inbox.failed_attempts(path)
    assert "could not be read" in attempt["error"]
    assert inbox.begin_attempt(path) == 2
