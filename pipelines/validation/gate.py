"""The validation gate: which failures reject a whole batch and which only quarantine rows."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipelines.validation.gx import DataValidationError, ValidationOutcome

QUARANTINE_REASON = "failed_expectations"


class BatchRejectedError(DataValidationError):
    """The batch as a whole failed the gate: nothing was scored or published."""

    def __init__(self, what: str, problems: list[str], quarantine_dir: str | None = None):
        self.quarantine_dir = quarantine_dir
        super().__init__(what, problems)
        if quarantine_dir:
            self.args = (f"{self.args[0]}\nThe input and the report are in {quarantine_dir}",)


def batch_problems(outcome: ValidationOutcome, cast_problems: dict[str, str]) -> list[str]:
    """Failures that reject the batch: schema, types, row count, duplicate ids, freshness."""
    problems = list(cast_problems.values())
    for result in outcome.failures:
        if result.check.level == "batch":
            if result.check.kind == "column_type" and result.check.column in cast_problems:
                continue  # the cast problem already says it, with examples
            problems.append(result.explain())
        elif result.error:
            problems.append(result.explain())  # a row check that could not name its rows
        elif len(result.failing_rows) != result.unexpected_count:
            problems.append(f"{result.explain()}, and the failing rows could not be identified")
    return problems + outcome.missing_columns_note()


def judge(
    outcome: ValidationOutcome, cast_problems: dict[str, str], max_quarantine_fraction: float
) -> dict[int, list[str]]:
    """Reject the batch (raise), or return the reasons of every row that goes to quarantine."""
    problems = batch_problems(outcome, cast_problems)
    if problems:
        raise BatchRejectedError("the batch", problems)
    reasons: dict[int, list[str]] = {}
    for result in outcome.failures:
        for row in result.failing_rows:
            reasons.setdefault(row, []).append(result.check.describe())
    rows_in = outcome.rows
    if rows_in and len(reasons) / rows_in > max_quarantine_fraction:
        most_common = Counter(reason for row in reasons.values() for reason in row).most_common(5)
        raise BatchRejectedError(
            "the batch",
            [
                f"{len(reasons)} of {rows_in} rows ({len(reasons) / rows_in:.1%}) failed "
                f"row checks, above max_quarantine_fraction {max_quarantine_fraction:.1%}",
                *[f"{count} row(s): expected {reason}" for reason, count in most_common],
            ],
        )
    return reasons


def gate_report(outcome: ValidationOutcome, counts: dict[str, int] | None) -> dict[str, Any]:
    return {**outcome.as_dict(), **({"row_counts": counts} if counts else {})}
