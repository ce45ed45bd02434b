"""loose_permissions finds what group or others could read or write in the state directory;
a rejected input's copy in quarantine is private whatever the source's mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.data.storage import quarantine_input
from pipelines.paths import StateDir
from pipelines.permissions import loose_permissions


@pytest.fixture
def private_umask() -> Iterator[None]:
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def state(tmp_path: Path, private_umask: None) -> StateDir:
    root = tmp_path / "state"
    (root / "outputs" / "batch-1").mkdir(parents=True)
    (root / "outputs" / "batch-1" / "scored.parquet").write_bytes(b"PAR1")
    (root / "mlflow").mkdir()
    (root / "mlflow" / "mlflow.db").write_bytes(b"")
    return StateDir(root)


def test_a_private_state_directory_has_nothing_loose(state: StateDir) -> None:
    assert loose_permissions(state) == []


@pytest.mark.parametrize(
    ("relative", "mode"),
    [
        ("mlflow/mlflow.db", 0o644),
        ("mlflow/mlflow.db", 0o620),
        ("outputs/batch-1/scored.parquet", 0o604),
        ("outputs/batch-1", 0o750),
        ("", 0o755),
    ],
    ids=["group-and-others-read", "group-write", "others-read", "folder", "root"],
)
def test_any_group_or_other_bit_is_reported(state: StateDir, relative: str, mode: int) -> None:
    path = state.root / relative if relative else state.root
    path.chmod(mode)
    assert loose_permissions(state) == [path]


def test_symlinks_are_neither_reported_nor_followed(state: StateDir, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    outside.chmod(0o755)
    (outside / "public.txt").write_text("x")
    (outside / "public.txt").chmod(0o644)
    (state.root / "linked-folder").symlink_to(outside)
    (state.root / "linked-file").symlink_to(outside / "public.txt")
    assert loose_permissions(state) == []


def test_a_missing_state_directory_has_nothing_loose(tmp_path: Path) -> None:
    assert loose_permissions(StateDir(tmp_path / "nowhere")) == []


def test_a_quarantined_input_is_private_whatever_the_source_mode(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        source = tmp_path / "batch.csv"
        source.write_text("a,b\n1,2\n")
        source.chmod(0o644)
        folder = quarantine_input(source, {"reason": "test"}, tmp_path / "quarantine" / "b-1")
    finally:
        os.umask(previous)
    copied = folder / "input.csv"
    assert copied.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(copied.stat().st_mode) == 0o600
