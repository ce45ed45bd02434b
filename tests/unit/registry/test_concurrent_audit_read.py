"""A model card built while another command appends to the registry's audit log (a promotion of
another model): the card reads whole lines only, so it never notes a line being written as one
that is not JSON."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

from pipelines.paths import StateDir

APPENDS, READERS = 600, 1


def append_events(log: str, ready: Any) -> None:
    """Events about as long as a gate's verdict makes them, so lines straddle pages."""
    from pipelines import hashlog

    ready.wait(timeout=120)
    for number in range(APPENDS):
        event = {"model": "alpha.other", "action": "register", "to_version": str(number)}
        hashlog.AUDIT.append(Path(log), {**event, "gate": {"reason": "x" * 1500}})


def read_for_cards(root: str, ready: Any, stop: Any, results: Any) -> None:
    """The notes the card's audit section made while the log grew."""
    from pipelines.registry.model_card import audit_events

    state, notes = StateDir(Path(root)), []
    ready.set()
    while not stop.is_set():
        audit_events(state, "alpha.cases", "1", {}, notes)
    results.put(notes)


def test_a_card_read_beside_appends_never_sees_half_a_line(tmp_path: Path) -> None:
    root = tmp_path / "state"
    log = root / "registry" / "audit.jsonl"
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters, as separate commands are
    ready, stop, results = spawn.Event(), spawn.Event(), spawn.Queue()
    readers = [
        spawn.Process(target=read_for_cards, args=(str(root), ready, stop, results))
        for _ in range(READERS)
    ]
    writer = spawn.Process(target=append_events, args=(str(log), ready))
    for process in [*readers, writer]:
        process.start()
    writer.join(timeout=300)
    stop.set()
    notes = [note for _ in readers for note in results.get(timeout=60)]
    for reader in readers:
        reader.join(timeout=60)

    assert writer.exitcode == 0
    assert notes == []
    assert len(log.read_text().splitlines()) == APPENDS
