"""Commands of one agency started together on one state directory (two use cases trained at
once, two batches scored at once): each finds or makes the agency's experiments, and none fails
because another made one a moment before."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

PROCESSES, AGENCIES = 2, 4


def open_experiments(root: str, barrier: Any, results: Any) -> None:
    """The experiment ids one process gets, agency after agency, in step with the others."""
    from pipelines.paths import StateDir
    from pipelines.registry import tracking

    state = StateDir(Path(root))
    tracking.configure(state)
    seen: dict[str, str] = {}
    try:
        for number in range(AGENCIES):
            barrier.wait(timeout=120)  # every process asks for the same new experiment at once
            seen[f"agency-{number}"] = tracking.use_experiment(f"agency-{number}", state, "")
    except Exception as error:  # reported, not raised: the test shows what went wrong
        first_line = next(iter(str(error).splitlines()), "")
        results.put(("failed", f"{type(error).__name__}: {first_line}"))
        barrier.abort()
        return
    results.put(("ok", seen))


def test_processes_making_one_agencys_experiment_at_once_all_get_it(tmp_path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters, as separate commands are
    barrier, results = spawn.Barrier(PROCESSES), spawn.Queue()
    root = str(tmp_path / "state")
    processes = [
        spawn.Process(target=open_experiments, args=(root, barrier, results))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=60)

    failures = [detail for outcome, detail in outcomes if outcome == "failed"]
    assert failures == []
    seen = [detail for _, detail in outcomes]
    assert len(seen[0]) == AGENCIES and seen[1:] == seen[:1] * (PROCESSES - 1)
