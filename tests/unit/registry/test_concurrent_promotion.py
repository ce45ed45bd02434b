"""A scoring that looks up its champion while a training's gate (or a person) moves it: the
alias and its event in the audit log move together, so the scoring finds one champion or the
other, never an alias the log does not name yet (refused as moved outside agencyml)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from pipelines.paths import StateDir
from pipelines.registry import promotion, tracking

MODEL, MOVES = "alpha.cases", 4


def move_champion(root: str, ready: Any) -> None:
    """The champion moved back and forth, as promotions and rollbacks move it."""
    state = StateDir(Path(root))
    tracking.configure(state)
    ready.wait(timeout=120)
    for number in range(MOVES):
        version = "2" if number % 2 == 0 else "1"
        promotion.promote(MODEL, version, state, action="promote", by="gate", reason="better")


def find_champions(root: str, ready: Any, stop: Any, results: Any) -> None:
    """How often each champion (or each error) was found until told to stop."""
    state = StateDir(Path(root))
    tracking.configure(state)
    ready.set()
    seen: dict[str, int] = {}
    while not stop.is_set():
        try:
            answer = "version " + promotion.find_champion(MODEL, state).version
        except Exception as error:  # counted, not raised: the test shows what was seen
            answer = type(error).__name__
        seen[answer] = seen.get(answer, 0) + 1
    results.put(seen)


def test_a_champion_found_while_it_moves_is_always_one_the_log_names(tmp_path: Path) -> None:
    root = tmp_path / "state"
    state = StateDir(root)
    tracking.configure(state)
    client = MlflowClient(tracking_uri=state.tracking_uri, registry_uri=state.tracking_uri)
    client.create_registered_model(MODEL)
    (tmp_path / "model").mkdir()
    for _ in range(2):
        client.create_model_version(MODEL, str(tmp_path / "model"))
    promotion.promote(MODEL, "1", state, action="promote", by="gate", reason="first")

    spawn = multiprocessing.get_context("spawn")  # fresh interpreters, as separate commands are
    ready, stop, results = spawn.Event(), spawn.Event(), spawn.Queue()
    finder = spawn.Process(target=find_champions, args=(str(root), ready, stop, results))
    mover = spawn.Process(target=move_champion, args=(str(root), ready))
    finder.start()
    mover.start()
    mover.join(timeout=300)
    stop.set()
    seen = results.get(timeout=120)
    finder.join(timeout=60)

    assert mover.exitcode == 0
    assert set(seen) <= {"version 1", "version 2"}, seen
    assert promotion.alias_disagreement(MODEL, state) is None
    assert [e["to_version"] for e in promotion.read_events(state, MODEL)][-1] == "1"
