"""A command reading what DVC records for its data (a training's lineage) while other commands
change it (an ingest's commit, a moved state directory's remote): DVC rewrites dvc.lock and
config.local in place, so the reader must never see either half written."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.data.storage import file_md5

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

ROUNDS = 4


def run(root: Path, *args: str) -> None:
    subprocess.run(args, cwd=root, check=True, capture_output=True)


def commit_and_move_again_and_again(root: str, homes: list[str], ready: Any) -> None:
    """Another output committed, and the state directory moved back and forth (AGENCYML_HOME),
    each move followed once, round after round."""
    from pipelines.data.versioning import commit_outputs, follow_state_remote

    ready.wait(timeout=120)
    for number in range(ROUNDS):
        (Path(root) / "data" / "b.bin").write_bytes(f"b, version {number}".encode())
        commit_outputs(Path(root), ["make_b"], push=False)
        home = homes[number % 2]
        os.environ["AGENCYML_HOME"] = home
        follow_state_remote(Path(root), Path(home) / "dvc-remote")


def read_until_stopped(root: str, ready: Any, stop: Any, results: Any) -> None:
    """How often the reader saw each answer for data/a.bin, which no commit touches."""
    from pipelines.data.versioning import tracked_data

    seen: dict[str, int] = {}
    ready.set()
    while not stop.is_set():
        try:
            tracked = tracked_data(Path(root), "data/a.bin")
            answer = repr((tracked.stage, tracked.lock_md5, tracked.remote_url))
        except Exception as error:  # counted, not raised: the test shows what was seen
            answer = type(error).__name__
        seen[answer] = seen.get(answer, 0) + 1
    results.put(seen)


def test_what_dvc_records_is_read_whole_while_other_commands_change_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    run(root, "git", "init", "-q")
    run(root, sys.executable, "-m", "dvc", "init", "-q")
    (root / "dvc.yaml").write_text(
        "stages:\n"
        + "".join(
            f"  make_{name}:\n"
            f"    cmd: python -c \"open('data/{name}.bin','wb').write(b'{name}')\"\n"
            f"    outs: [data/{name}.bin]\n"
            for name in "ab"
        )
    )
    run(root, sys.executable, "-m", "dvc", "repro", "-q")
    run(root, sys.executable, "-m", "dvc", "remote", "add", "-d", "local", "../project-remote")
    homes = [str(tmp_path / "home-0"), str(tmp_path / "home-1")]
    remotes = [str(Path(home) / "dvc-remote") for home in homes]
    run(
        root, sys.executable, "-m", "dvc", "remote", "modify", "--local", "local", "url", remotes[1]
    )
    md5 = file_md5(root / "data" / "a.bin")

    spawn = multiprocessing.get_context("spawn")  # fresh interpreters, as separate commands are
    ready, stop, results = spawn.Event(), spawn.Event(), spawn.Queue()
    reader = spawn.Process(target=read_until_stopped, args=(str(root), ready, stop, results))
    reader.start()
    writer = spawn.Process(target=commit_and_move_again_and_again, args=(str(root), homes, ready))
    writer.start()
    writer.join(timeout=300)
    stop.set()
    seen = results.get(timeout=60)
    reader.join(timeout=60)

    assert writer.exitcode == 0
    assert set(seen) <= {repr(("make_a", md5, remote)) for remote in remotes}, seen
