"""Data checks before training and scoring. A basic gate for now; every problem is listed."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from pipelines.config import UseCase


class DataValidationError(ValueError):
    """The data failed checks that make training or scoring meaningless."""

    def __init__(self, what: str, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{what} failed {len(problems)} check(s):\n{listed}")


@dataclass(frozen=True)
class ValidationReport:
    rows: int
    checks: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"rows": self.rows, "checks_passed": self.checks}


def validate_training_data(frame: pd.DataFrame, params: UseCase) -> ValidationReport:
    """Columns present, enough rows, ids unique, a target on every row, two or more classes."""
    problems = common_problems(frame, params.required_columns(with_target=True), params.id_column)
    if params.target in frame.columns:
        missing_target = int(frame[params.target].isna().sum())
        if missing_target:
            problems.append(f"{missing_target} row(s) have no value in target '{params.target}'")
        if frame[params.target].nunique(dropna=True) < 2:
            problems.append(f"target '{params.target}' has fewer than two distinct values")
        if params.task == "binary" and params.positive_class is not None:
            values = set(frame[params.target].dropna().astype(str))
            if str(params.positive_class) not in values:
                problems.append(
                    f"positive_class '{params.positive_class}' never occurs in "
                    f"'{params.target}' (values: {sorted(values)[:10]})"
                )
    if len(frame) < params.min_training_rows:
        problems.append(f"{len(frame)} rows; training needs at least {params.min_training_rows}")
    if problems:
        raise DataValidationError("the training data", problems)
    return ValidationReport(len(frame), ["columns", "row_count", "unique_ids", "target"])


def validate_scoring_batch(
    frame: pd.DataFrame, columns: list[str], id_column: str
) -> ValidationReport:
    """The batch has rows, every column the model needs, and unique ids."""
    problems = common_problems(frame, [id_column, *columns], id_column)
    if frame.empty:
        problems.append("the batch has no rows")
    if problems:
        raise DataValidationError("the scoring batch", problems)
    return ValidationReport(len(frame), ["columns", "non_empty", "unique_ids"])


def common_problems(frame: pd.DataFrame, required: list[str], id_column: str) -> list[str]:
    problems = []
    missing = [column for column in required if column not in frame.columns]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    if id_column in frame.columns:
        null_ids = int(frame[id_column].isna().sum())
        if null_ids:
            problems.append(f"{null_ids} row(s) have no id in '{id_column}'")
        duplicated = int(frame[id_column].dropna().duplicated().sum())
        if duplicated:
            problems.append(f"{duplicated} duplicate id(s) in '{id_column}'")
    return problems
