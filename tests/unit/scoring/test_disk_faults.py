"""A disk that refuses a batch's files is one sentence naming a folder the user can find and
what to do; any other error passes through untouched."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from pipelines.scoring.batches import disk_fault, outside_staging

OUTPUT = Path("/state/outputs/agency/use-case")


@pytest.mark.parametrize(
    ("code", "says", "remedy"),
    [
        (errno.ENOSPC, "the disk is full", "make room there"),
        (errno.EDQUOT, "the disk quota is used up", "raise the quota"),
        (errno.EROFS, "the disk is read-only", "mount it writable"),
        (errno.EACCES, "this user may not write there", "give this user write access"),
    ],
)
def test_each_disk_fault_names_the_folder_and_what_to_do(code, says, remedy):
    staged = OUTPUT / ".b1.x7.staging" / "scored" / "part-00000.parquet"
    fault = disk_fault(OSError(code, os.strerror(code), str(staged)), OUTPUT, published=False)
    message = str(fault)
    assert message.startswith(f"cannot write under {OUTPUT}: {says} ({os.strerror(code)})")
    assert "nothing was published" in message and remedy in message
    assert ".staging" not in message and "\n" not in message


def test_a_fault_wrapped_in_another_error_is_found_and_a_published_batch_is_said_so():
    wrapper = RuntimeError("writing failed")
    wrapper.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    message = str(disk_fault(wrapper, OUTPUT, published=True))
    assert f"under {OUTPUT}:" in message and "the batch was published" in message


@pytest.mark.parametrize(
    "error",
    [OSError(errno.ENOENT, "No such file"), ValueError("bad"), ConnectionError("refused")],
)
def test_other_errors_are_not_disk_faults(error):
    assert disk_fault(error, OUTPUT, published=False) is None


def test_the_folder_shown_is_above_hidden_staging_and_pending_folders():
    assert outside_staging(Path("/q/u/.b1.pending/report.json")) == Path("/q/u")
    assert outside_staging(Path("/o/u/.b1.abc.staging")) == Path("/o/u")
    assert outside_staging(Path("/state/.agencyml/locks/b1.lock")) == Path(
        "/state/.agencyml/locks/b1.lock"
    )
