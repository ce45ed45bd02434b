"""The gate with cells that would not cast: their rows go to quarantine with the cell's reason,
the check that then finds the cell empty is not counted again, and a batch over the limit is
rejected with the most common reasons and an example value."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipelines.data.columns import conform_rows
from pipelines.validation.expectations import Check
from pipelines.validation.gate import BatchRejectedError, judge
from pipelines.validation.gx import CheckResult, ValidationOutcome

NOT_NULL_AMOUNT = Check("not_null:amount", "not_null", "row", "amount")
NOT_NULL_REGION = Check("not_null:region", "not_null", "row", "region")


def outcome(rows: int, *results: CheckResult) -> ValidationOutcome:
    return ValidationOutcome("s", rows, list(results), "id", Path("docs"))


def failed(check: Check, rows: list[int]) -> CheckResult:
    return CheckResult(check=check, success=False, unexpected_count=len(rows), failing_rows=rows)


def faults_of(amounts: list[str]) -> dict:
    frame = pd.DataFrame({"amount": amounts})
    return conform_rows(frame, {"amount": "numeric"})[2]


def test_a_cell_that_would_not_cast_is_its_rows_reason_once():
    faults = faults_of(["1", "12 employees", "3", "4"])
    result = outcome(4, failed(NOT_NULL_AMOUNT, [1]), failed(NOT_NULL_REGION, [1, 2]))
    reasons = judge(result, {}, 0.5, faults)
    assert reasons == {
        1: ["column 'amount' holds numbers, found '12 employees'", "'region' is not empty"],
        2: ["'region' is not empty"],
    }


def test_too_many_such_rows_reject_the_batch_with_an_example():
    faults = faults_of(["x1", "x2", "x3", "4"])
    with pytest.raises(BatchRejectedError) as rejected:
        judge(outcome(4, failed(NOT_NULL_AMOUNT, [0, 1, 2])), {}, 0.5, faults)
    assert rejected.value.problems == [
        "3 of 4 rows (75.0%) failed row checks, above max_quarantine_fraction 50.0%",
        "3 row(s): expected column 'amount' holds numbers, e.g. 'x1'",
    ]
