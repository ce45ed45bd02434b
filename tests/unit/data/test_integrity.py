"""Published files against their recorded hashes, and DVC objects against their names."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from pipelines.data import integrity


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def batch(tmp_path: Path) -> tuple[Path, dict]:
    folder = tmp_path / "batch-1"
    (folder / "scored").mkdir(parents=True)
    (folder / "scored" / "part-0.parquet").write_bytes(b"rows")
    (folder / "drift.html").write_bytes(b"<html>")
    manifest = {
        "files": ["scored/part-0.parquet", "drift.html"],
        "file_sha256": {"scored/part-0.parquet": sha(b"rows"), "drift.html": sha(b"<html>")},
    }
    return folder, manifest


def test_an_intact_batch_has_no_damaged_files(batch) -> None:
    assert integrity.damaged_files(*batch) == []


@pytest.mark.parametrize(
    ("spoil", "problem"),
    [
        (lambda f: (f / "drift.html").write_bytes(b"<html!"), "changed after publishing"),
        (lambda f: (f / "drift.html").unlink(), "the file is missing"),
        (
            lambda f: ((f / "drift.html").unlink(), (f / "drift.html").symlink_to("/etc/hostname")),
            "no longer a regular file",
        ),
        (
            lambda f: ((f / "drift.html").unlink(), (f / "drift.html").mkdir()),
            "no longer a regular file",
        ),
    ],
    ids=["changed", "missing", "symlink", "folder"],
)
def test_a_spoiled_file_is_named_with_its_problem(batch, spoil, problem: str) -> None:
    folder, manifest = batch
    spoil(folder)

    assert integrity.damaged_files(folder, manifest) == ["drift.html"]
    assert problem in integrity.damage(folder, manifest)["drift.html"]


def test_a_change_is_seen_through_the_hash_cache(batch) -> None:
    folder, manifest = batch
    assert integrity.damaged_files(folder, manifest) == []  # hashed and remembered
    path = folder / "drift.html"
    before = path.stat()
    path.write_bytes(b"<html!")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back: ctime moves

    assert integrity.damaged_files(folder, manifest) == ["drift.html"]


@pytest.mark.parametrize("name", ["../batch-2/scored.parquet", "/etc/passwd", "a//b", ""])
def test_a_name_outside_the_folder_is_damage_without_opening_it(batch, name: str) -> None:
    folder, manifest = batch
    manifest["file_sha256"][name] = sha(b"x")

    assert name in integrity.damaged_files(folder, manifest)
    assert "outside the folder" in integrity.damage(folder, manifest)[name]


def test_a_listed_file_without_a_hash_cannot_be_checked_and_says_so(batch) -> None:
    folder, manifest = batch
    manifest["files"].append("extra.csv")
    (folder / "extra.csv").write_text("a")

    assert "no sha256 is recorded" in integrity.damage(folder, manifest)["extra.csv"]


def test_a_manifest_without_hashes_has_nothing_to_check(batch) -> None:
    folder, manifest = batch
    del manifest["file_sha256"]

    assert integrity.recorded_hashes(manifest) == {}
    assert integrity.damaged_files(folder, manifest) == []


def test_a_rejected_inputs_copy_is_checked_against_the_inputs_sha256(tmp_path: Path) -> None:
    (tmp_path / "input.csv").write_bytes(b"a,b\n1,2\n")
    report = {"input": {"path": "/somewhere/batch.csv", "sha256": sha(b"a,b\n1,2\n")}}
    assert integrity.quarantine_damage(tmp_path, report) == {}

    (tmp_path / "input.csv").write_bytes(b"a,b\n1,3\n")

    assert list(integrity.quarantine_damage(tmp_path, report)) == ["input.csv"]


def test_the_damaged_batch_message_says_what_to_do(batch) -> None:
    folder, _ = batch
    message = integrity.damaged_batch_message(
        "batch-1", folder, {"drift.html": "the file is missing"}
    )

    assert "batch batch-1 is published" in message and "drift.html (the file is missing)" in message
    assert "Nothing was scored again" in message and "agencyml verify" in message


def test_dvc_objects_are_checked_against_the_md5_they_are_named_by(tmp_path: Path) -> None:
    good, bad = b"good", b"bad"
    for content in (good, bad):
        md5 = hashlib.md5(content).hexdigest()
        path = tmp_path / "files" / "md5" / md5[:2] / md5[2:]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    listing = tmp_path / "files" / "md5" / "ab" / "cdef.dir"
    listing.parent.mkdir(parents=True)
    listing.write_bytes(b"[]")
    (tmp_path / "files" / "md5" / "ab" / "cdef.dir.tmp").write_bytes(b"partial")
    corrupt = tmp_path / "files" / "md5" / hashlib.md5(bad).hexdigest()[:2]
    [bad_object] = corrupt.iterdir()
    bad_object.write_bytes(b"bad!")

    objects = integrity.dvc_objects(tmp_path)
    problems = {path: integrity.dvc_object_problem(path) for path in objects}

    assert len(objects) == 3  # the partial download is not an object
    assert problems[bad_object] is not None and "corrupt" in problems[bad_object]
    assert "cdef" in problems[listing]  # named abcdef, holds '[]'
    assert sum(problem is None for problem in problems.values()) == 1
    assert integrity.dvc_objects(tmp_path / "no-cache") == []
