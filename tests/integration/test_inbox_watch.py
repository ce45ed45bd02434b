"""`agencyml inbox --watch` for real: a watcher process against real MLflow and Prefect scores a
file dropped after it started exactly once, even with a one-shot poll running beside it; a bad
file is quarantined and a platform failure logged while it keeps watching; SIGTERM stops it with
exit 0 and nothing half published."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.data.business_aid import generate_applications
from pipelines.paths import PACKAGE_ROOT

FRAUD = ("business-aid", "fraud-risk")
WATCH_OPTIONS = ("--interval", "0.2", "--settle-seconds", "0")  # files are dropped whole


@pytest.fixture(scope="module")
def trained(prefect_server, tmp_path_factory, trained_small_project):
    """fraud-risk trained on a small project; case-routing deliberately not."""
    with trained_small_project(tmp_path_factory.mktemp("watch"), FRAUD) as project:
        yield project


@pytest.fixture(scope="module")
def environment(trained) -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {
        **os.environ,
        "PYTHONPATH": str(PACKAGE_ROOT),
        "COLUMNS": "200",
        "AGENCYML_PROJECT_ROOT": str(trained["project"]),
        "AGENCYML_HOME": str(trained["root"] / "state"),
        "PREFECT_API_URL": PREFECT_API_URL.value(),  # the session's real Prefect server
    }


class Watcher:
    """`agencyml inbox --watch` in its own process, its output in a log file."""

    def __init__(self, environment: dict[str, str], log: Path, *args: str) -> None:
        self.log_path = log
        with open(log, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flows", "inbox", "--watch", *WATCH_OPTIONS, *args],
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.wait_for("watching")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert self.process.poll() is None, f"the watcher exited:\n{self.log()[-3000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.log()[-3000:]}"
            time.sleep(0.1)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=300)


@pytest.fixture(scope="module")
def watcher(environment, tmp_path_factory) -> Iterator[Watcher]:
    """One watcher of every use case's inbox, shared by the tests that drop files."""
    watching = Watcher(environment, tmp_path_factory.mktemp("watcher") / "watch.log")
    try:
        yield watching
    finally:
        watching.stop()


def inbox_dir(environment: dict[str, str], use_case: tuple[str, str] = FRAUD) -> Path:
    return Path(environment["AGENCYML_HOME"], "inbox", *use_case)


def drop(folder: Path, name: str, rows: int, seed: int) -> None:
    """Written under a temporary name and renamed, as producers should."""
    frame = generate_applications(rows, seed=seed).drop(columns=["is_fraud", "review_track"])
    frame.to_parquet(folder / f".{name}.tmp")
    os.replace(folder / f".{name}.tmp", folder / name)


def filed(folder: Path, name: str, timeout: float = 300) -> list[dict]:
    """The receipts of `name` once it is filed under processed/ or quarantine/."""
    deadline = time.monotonic() + timeout
    while True:
        found = [*folder.glob(f"*/*-{name}.json")]  # processed/ or quarantine/
        if found:
            return [json.loads(path.read_text()) for path in found]
        assert time.monotonic() < deadline, f"{name} was never filed"
        time.sleep(0.1)


def published(environment: dict[str, str]) -> list[str]:
    outputs = Path(environment["AGENCYML_HOME"], "outputs", *FRAUD)
    return sorted(p.name for p in outputs.iterdir()) if outputs.exists() else []


def one_shot_poll(environment: dict[str, str]) -> dict:
    """`agencyml inbox -a -u` once, taking files as soon as the watcher does."""
    command = ["inbox", "-a", FRAUD[0], "-u", FRAUD[1], "--settle-seconds", "0", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "flows", *command],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_a_file_dropped_after_the_watcher_started_is_scored_once_beside_a_one_shot_poll(
    environment, watcher
):
    folder = inbox_dir(environment)
    before = published(environment)
    drop(folder, "race.parquet", 1_500, seed=11)
    by_one_shot = one_shot_poll(environment)  # runs while the watcher picks the file up

    (receipt,) = filed(folder, "race.parquet")
    assert receipt["outcome"] == "processed" and receipt["newly_published"] is True
    one_shot_scored = [item["file"] for item in by_one_shot["scored"]] == ["race.parquet"]
    if not one_shot_scored:
        watcher.wait_for(f"race.parquet scored as batch {receipt['batch_id']}")
    assert published(environment) == sorted([*before, receipt["batch_id"]])
    assert not list((folder / ".claimed").iterdir())
    assert not [path for path in folder.iterdir() if path.is_file()]


def test_a_bad_file_is_quarantined_a_platform_failure_logged_and_the_watcher_keeps_going(
    environment, watcher
):
    folder = inbox_dir(environment)
    (folder / "garbage.parquet").write_bytes(b"this is not parquet at all" * 40)
    (receipt,) = filed(folder, "garbage.parquet")
    assert receipt["outcome"] == "quarantine" and "cannot read" in receipt["reason"]
    watcher.wait_for("garbage.parquet quarantined")

    untrained = inbox_dir(environment, ("business-aid", "case-routing"))
    drop(untrained, "early.parquet", 300, seed=12)
    watcher.wait_for("business-aid/case-routing: poll failed: InboxError")
    assert (untrained / ".claimed" / "early.parquet").is_file()  # for the next poll

    drop(folder, "after.parquet", 500, seed=13)
    (receipt,) = filed(folder, "after.parquet")
    assert receipt["outcome"] == "processed"
    watcher.wait_for("after.parquet scored as batch")
    assert watcher.process.poll() is None


def test_sigterm_stops_the_watcher_with_exit_0_and_nothing_half_published(
    environment, watcher, tmp_path
):
    idle = Watcher(environment, tmp_path / "idle.log", "-a", FRAUD[0], "-u", FRAUD[1])
    assert idle.stop() == 0
    assert idle.log().rstrip().endswith("SIGTERM: stopped")

    folder = inbox_dir(environment)
    watcher.stop()  # the shared watcher must not take this file
    busy = Watcher(environment, tmp_path / "busy.log", "-a", FRAUD[0], "-u", FRAUD[1])
    drop(folder, "big.parquet", 20_000, seed=14)
    deadline = time.monotonic() + 300
    while not (folder / ".claimed" / "big.parquet").exists():  # the poll has started
        assert not list(folder.glob("processed/*-big.parquet")), "scored before it was seen"
        assert time.monotonic() < deadline, busy.log()[-3000:]
        time.sleep(0.02)

    assert busy.stop() == 0, busy.log()[-3000:]

    log = busy.log()
    assert "SIGTERM: stopping once the poll of business-aid/fraud-risk finishes" in log
    assert log.rstrip().endswith("SIGTERM: stopped")
    (receipt,) = filed(folder, "big.parquet", timeout=0)  # the poll finished the file
    assert receipt["outcome"] == "processed"
    outputs = Path(environment["AGENCYML_HOME"], "outputs", *FRAUD)
    assert not [path.name for path in outputs.iterdir() if path.name.startswith(".")]
    assert (outputs / receipt["batch_id"] / "manifest.json").is_file()
    assert not list((folder / ".claimed").iterdir())
