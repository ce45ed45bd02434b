"""Data checks before training and scoring: every problem is found and listed at once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.config import UseCase
from pipelines.validation import (
    DataValidationError,
    ValidationReport,
    validate_scoring_batch,
    validate_training_data,
)


def use_case(**overrides: Any) -> UseCase:
    declared: dict[str, Any] = {
        "source": {"kind": "generator", "generator": "business-aid", "rows": 10},
        "id_column": "case_id",
        "target": "outcome",
        "task": "binary",
        "positive_class": "bad",
        "features": {"numeric": ["amount"], "categorical": ["region"]},
        "split": {"method": "random"},
        "decision": {"kind": "threshold", "threshold": 0.5},
        "min_training_rows": 10,
    }
    return UseCase.model_validate({**declared, **overrides})


def training_frame(rows: int = 12) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "case_id": [f"c-{i}" for i in range(rows)],
            "amount": np.arange(rows, dtype=float),
            "region": ["north", "south"] * (rows // 2),
            "outcome": ["bad", "good", "good"] * (rows // 3),
        }
    )


def problems_of(call: Any, *args: Any) -> list[str]:
    with pytest.raises(DataValidationError) as caught:
        call(*args)
    return caught.value.problems


# --- training data --------------------------------------------------------------------------------


def test_clean_training_data_passes_with_a_report() -> None:
    report = validate_training_data(training_frame(), use_case())

    assert report == ValidationReport(12, ["columns", "row_count", "unique_ids", "target"])
    assert report.as_dict() == {
        "rows": 12,
        "checks_passed": ["columns", "row_count", "unique_ids", "target"],
    }


def test_every_training_problem_is_listed_at_once() -> None:
    frame = pd.DataFrame(
        {
            "case_id": ["a", "a", None],
            "amount": [1.0, 2.0, 3.0],
            "outcome": ["good", None, "good"],
        }
    )

    with pytest.raises(DataValidationError, match=r"the training data failed 7 check\(s\)") as e:
        validate_training_data(frame, use_case())

    assert e.value.problems == [
        "missing column(s): region",
        "1 row(s) have no id in 'case_id'",
        "1 duplicate id(s) in 'case_id'",
        "1 row(s) have no value in target 'outcome'",
        "target 'outcome' has fewer than two distinct values",
        "positive_class 'bad' never occurs in 'outcome' (values: ['good'])",
        "3 rows; training needs at least 10",
    ]
    for problem in e.value.problems:
        assert f"  - {problem}" in str(e.value)


def test_missing_target_and_id_columns_are_reported_as_missing_columns() -> None:
    frame = training_frame().drop(columns=["case_id", "outcome"])

    assert problems_of(validate_training_data, frame, use_case()) == [
        "missing column(s): case_id, outcome"
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda f: f.assign(case_id=["same"] * 12),
            "11 duplicate id(s) in 'case_id'",
        ),
        (
            lambda f: f.assign(case_id=[None, *f["case_id"][1:]]),
            "1 row(s) have no id in 'case_id'",
        ),
        (
            lambda f: f.assign(outcome=[None, None, *f["outcome"][2:]]),
            "2 row(s) have no value in target 'outcome'",
        ),
        (
            lambda f: f.assign(outcome="bad"),
            "target 'outcome' has fewer than two distinct values",
        ),
        (lambda f: f.head(9), "9 rows; training needs at least 10"),
    ],
    ids=["duplicate-ids", "null-id", "null-target", "single-class", "too-few-rows"],
)
def test_each_training_problem_is_reported(change: Any, problem: str) -> None:
    assert problems_of(validate_training_data, change(training_frame()), use_case()) == [problem]


def test_positive_class_that_never_occurs_is_reported_with_the_values_seen() -> None:
    frame = training_frame().assign(outcome=["ok", "fine"] * 6)

    assert problems_of(validate_training_data, frame, use_case()) == [
        "positive_class 'bad' never occurs in 'outcome' (values: ['fine', 'ok'])"
    ]


def test_integer_positive_class_matches_integer_targets() -> None:
    frame = training_frame().assign(outcome=[1, 0, 0] * 4)

    report = validate_training_data(frame, use_case(positive_class=1))

    assert report.rows == 12


def test_multiclass_training_data_needs_no_positive_class() -> None:
    frame = training_frame().assign(outcome=["a", "b", "c"] * 4)
    params = use_case(task="multiclass", positive_class=None)

    assert validate_training_data(frame, params).rows == 12


def test_min_training_rows_comes_from_the_params() -> None:
    params = use_case(min_training_rows=50)

    assert problems_of(validate_training_data, training_frame(48), params) == [
        "48 rows; training needs at least 50"
    ]


# --- scoring batches ------------------------------------------------------------------------------


def test_a_good_scoring_batch_passes() -> None:
    batch = training_frame().drop(columns="outcome")

    report = validate_scoring_batch(batch, ["amount", "region"], "case_id")

    assert report.as_dict() == {"rows": 12, "checks_passed": ["columns", "non_empty", "unique_ids"]}


def test_a_scoring_batch_needs_no_target() -> None:
    batch = pd.DataFrame({"case_id": ["x"], "amount": [1.0]})

    assert validate_scoring_batch(batch, ["amount"], "case_id").rows == 1


def test_an_empty_batch_is_rejected() -> None:
    empty = pd.DataFrame({"case_id": [], "amount": []})

    with pytest.raises(DataValidationError, match=r"the scoring batch failed 1 check\(s\)") as e:
        validate_scoring_batch(empty, ["amount"], "case_id")

    assert e.value.problems == ["the batch has no rows"]


def test_every_scoring_problem_is_listed_at_once() -> None:
    batch = pd.DataFrame({"case_id": ["a", "a", None, None], "amount": [1.0, 2.0, 3.0, 4.0]})

    problems = problems_of(validate_scoring_batch, batch, ["amount", "region", "note"], "case_id")

    assert problems[0] == "missing column(s): region, note"
    assert "2 row(s) have no id in 'case_id'" in problems
    assert any(problem.endswith("duplicate id(s) in 'case_id'") for problem in problems)


def test_rows_without_an_id_are_not_also_counted_as_duplicates() -> None:
    batch = pd.DataFrame({"case_id": ["a", "a", None, None], "amount": [1.0, 2.0, 3.0, 4.0]})

    assert problems_of(validate_scoring_batch, batch, ["amount"], "case_id") == [
        "2 row(s) have no id in 'case_id'",
        "1 duplicate id(s) in 'case_id'",
    ]


def test_a_batch_without_any_column_lists_the_id_and_features_as_missing() -> None:
    problems = problems_of(validate_scoring_batch, pd.DataFrame(), ["amount"], "case_id")

    assert problems == ["missing column(s): case_id, amount", "the batch has no rows"]


def test_data_validation_error_is_a_value_error() -> None:
    error = DataValidationError("the batch", ["one", "two"])

    assert isinstance(error, ValueError)
    assert str(error) == "the batch failed 2 check(s):\n  - one\n  - two"
