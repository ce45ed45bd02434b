"""Which names of a manifest are served, and the manifest as an agency sees it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipelines.service.files import HIDDEN_PATH, batch_file, relative_to_batch


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    batch = tmp_path / "outputs" / "batch"
    (batch / "scored").mkdir(parents=True)
    (batch / "scored.parquet").write_bytes(b"PAR1")
    (batch / "scored" / "part-0.parquet").write_bytes(b"PAR1")
    (tmp_path / "secret").write_text("root:x")
    return batch


@pytest.mark.parametrize("name", ["scored.parquet", "scored/part-0.parquet"])
def test_a_regular_file_inside_the_folder_is_served(folder: Path, name: str) -> None:
    assert batch_file(folder, name) == folder / name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/etc/passwd",
        "../../secret",
        "scored/../../../secret",
        "scored/./part-0.parquet",
        "scored//part-0.parquet",
        "scored\\part-0.parquet",
        "scored.parquet\x00",
        "missing.parquet",
        "scored",
        None,
        7,
    ],
)
def test_a_name_that_is_not_a_plain_relative_file_is_refused(folder: Path, name) -> None:
    assert batch_file(folder, name) is None


def test_symlinks_fifos_and_folders_are_refused(folder: Path) -> None:
    secret = folder.parent.parent / "secret"
    (folder / "linked.parquet").symlink_to(secret)
    (folder / "inside-link.parquet").symlink_to(folder / "scored.parquet")
    (folder / "linked-dir").symlink_to(folder / "scored", target_is_directory=True)
    os.mkfifo(folder / "fifo.parquet")

    for name in ("linked.parquet", "inside-link.parquet", "linked-dir/part-0.parquet"):
        assert batch_file(folder, name) is None, name
    assert batch_file(folder, "fifo.parquet") is None  # and the open did not block


def test_an_agency_sees_paths_relative_to_the_batch_or_none(folder: Path) -> None:
    manifest = {
        "input": {"path": "/srv/inbox/batch.csv", "dvc_remote": "s3://bucket", "sha256": "ab"},
        "validation": {"data_docs": "/srv/state/docs/index.html", "success": True},
        "quarantine": "/srv/state/quarantine/a/b/batch",
        "model": {"uri": "models:/a.b/1", "ui": "#/models/a/versions/1"},
        "files": ["scored.parquet"],
        "notes": [f"{folder}/scored.parquet", "/srv/x", "kept"],
        "missing": ["the folder /srv/state/outputs/x does not exist (deleted or moved)"],
        "output path": str(folder),
    }

    seen = relative_to_batch(manifest, folder)

    assert seen == {
        "input": {"path": "batch.csv", "sha256": "ab"},
        "validation": {"success": True},
        "model": {"uri": "models:/a.b/1", "ui": "#/models/a/versions/1"},
        "files": ["scored.parquet"],
        "notes": ["scored.parquet", "kept"],
        "missing": [f"the folder {HIDDEN_PATH} does not exist (deleted or moved)"],
        "output path": ".",
    }
    assert manifest["input"]["path"] == "/srv/inbox/batch.csv"  # the original is unchanged
