"""Several processes validating batches of one agency at once: they share the agency's GX
project (its great_expectations.yml, stores and Data Docs), so each must see it whole."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pandas as pd

from pipelines.paths import StateDir
from pipelines.validation.expectations import Check

PROCESSES, ROUNDS = 4, 2


def validate_rounds(root: str, suite: str) -> list[str]:
    """What one process sees of its own suite, round after round."""
    from pipelines.validation.gx import run_checks

    state = StateDir(Path(root))
    checks = [
        Check("exists:case_id", "column_exists", "batch", "case_id"),
        Check("unique:case_id", "unique", "batch", "case_id"),
    ]
    seen = []
    for round_ in range(ROUNDS):
        frame = pd.DataFrame({"case_id": [f"{suite}-{round_}-{i}" for i in range(50)]})
        outcome = run_checks(frame, checks, agency="alpha", suite_name=suite, state=state)
        seen.append(f"{outcome.suite_name}:{outcome.rows}:{outcome.success}")
    return seen


def test_processes_validating_one_agency_at_once_all_finish(tmp_path: Path) -> None:
    suites = [f"use-case-{n}-scoring" for n in range(PROCESSES)]
    spawn = multiprocessing.get_context("spawn")  # fresh interpreters, as separate commands are
    with spawn.Pool(PROCESSES) as pool:
        seen = pool.starmap(validate_rounds, [(str(tmp_path / "state"), s) for s in suites])

    assert seen == [[f"{suite}:50:True"] * ROUNDS for suite in suites]
    results = tmp_path / "state" / "gx" / "alpha" / "gx" / "uncommitted" / "validations"
    assert {path.parent.parent.parent.name for path in results.rglob("*.json")} >= set(suites)
