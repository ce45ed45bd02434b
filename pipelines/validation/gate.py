"""The validation gate: which failures reject a whole batch and which only quarantine rows."""

from __future__ import annotations

from collections import Counter
from typing import Any

from pipelines.data.columns import RowFault, RowFaults
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
    outcome: ValidationOutcome,
    cast_problems: dict[str, str],
    max_quarantine_fraction: float,
    row_faults: RowFaults | None = None,
) -> dict[int, list[str]]:
    """Reject the batch (raise), or return the reasons of every row that goes to quarantine:
    the checks it failed, and its cells that would not cast (`row_faults`, by position)."""
    problems = batch_problems(outcome, cast_problems)
    if problems:
        raise BatchRejectedError("the batch", problems)
    faults = row_faults or {}
    reasons: dict[int, list[str | RowFault]] = {row: list(found) for row, found in faults.items()}
    for result in outcome.failures:
        for row in result.failing_rows:
            if any(fault.column == result.check.column for fault in faults.get(row, [])):
                continue  # the cell that would not cast is empty to the check: said already
            reasons.setdefault(row, []).append(result.check.describe())
    rows_in = outcome.rows
    if rows_in and len(reasons) / rows_in > max_quarantine_fraction:
        raise BatchRejectedError(
            "the batch",
            [
                f"{len(reasons)} of {rows_in} rows ({len(reasons) / rows_in:.1%}) failed "
                f"row checks, above max_quarantine_fraction {max_quarantine_fraction:.1%}",
                *most_common_reasons(reasons),
            ],
        )
    return {row: [str(reason) for reason in found] for row, found in sorted(reasons.items())}


def most_common_reasons(reasons: dict[int, list[str | RowFault]]) -> list[str]:
    """The five most common reasons, with an example of a value that would not cast."""
    counts: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for found in reasons.values():
        for reason in found:
            key = reason.expectation if isinstance(reason, RowFault) else reason
            counts[key] += 1
            if isinstance(reason, RowFault):
                examples.setdefault(key, reason.value[:80])
    return [
        f"{count} row(s): expected {key}" + (f", e.g. '{examples[key]}'" if key in examples else "")
        for key, count in counts.most_common(5)
    ]


def gate_report(outcome: ValidationOutcome, counts: dict[str, int] | None) -> dict[str, Any]:
    return {**outcome.as_dict(), **({"row_counts": counts} if counts else {})}
