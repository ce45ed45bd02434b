"""What the training gate says about a target that cannot train the use case's task, and about
columns that are missing: the closest name, what the table has, and a file read as one column."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.config import UseCase
from pipelines.validation.gx import closest_column_hint, columns_found
from pipelines.validation.quality import target_problems


def use_case(task: str = "binary", positive_class: str | None = "yes") -> UseCase:
    return UseCase.model_validate(
        {
            "dataset": "cases",
            "id_column": "id",
            "target": "y",
            "task": task,
            **({"positive_class": positive_class} if task == "binary" else {}),
            "features": {"numeric": ["x"]},
            "split": {"method": "random"},
            "decision": {"kind": "threshold", "threshold": 0.5},
        }
    )


def labels(*values: object) -> pd.DataFrame:
    return pd.DataFrame({"y": list(values)})


@pytest.mark.parametrize(
    ("frame", "params", "says"),
    [
        (labels("yes", "yes", None), use_case(), "holds 1 class(es) ('yes'); a model needs"),
        (labels(None, None), use_case(), "holds 0 class(es) (no labels)"),
        (
            labels(*[f"class {i}" for i in range(16)]),
            use_case(positive_class="class 1"),
            "has 16 classes ('class 0', 'class 1', 'class 10', 'class 11', 'class 12', "
            "'class 13', 'class 14', 'class 15' ...), but the use case's task is binary: to tell "
            "them apart, change the task (task: multiclass",
        ),
        (labels("no", "maybe"), use_case(), "expected positive_class 'yes' in 'y', found 'maybe'"),
    ],
)
def test_a_target_that_cannot_train_the_task_says_what_to_change(frame, params, says) -> None:
    (problem,) = target_problems(frame, params)
    assert says in problem


@pytest.mark.parametrize(
    ("frame", "params"),
    [
        (labels("yes", "no", None), use_case()),
        (labels(1.0, 0.0, 1.0), use_case(positive_class="1")),  # read as floats from a CSV
        (labels("a", "b", "c"), use_case(task="multiclass")),
        (pd.DataFrame({"other": [1]}), use_case()),  # a missing target is the suite's to say
    ],
)
def test_a_target_that_fits_the_task_has_no_problem(frame, params) -> None:
    assert target_problems(frame, params) == []


@pytest.mark.parametrize(
    ("column", "present", "hint"),
    [
        ("JobReported", ["LoanAmount", "JobsReported", "State"], "; did you mean 'JobsReported'?"),
        ("jobs_reported", ["Jobs Reported", "State"], "; did you mean 'Jobs Reported'?"),
        ("workclass", [" workclass", "age"], "; did you mean ' workclass'?"),
        ("region", ["LoanAmount", "State"], ""),
        ("region", None, ""),
    ],
)
def test_a_missing_column_names_the_closest_present_one(column, present, hint) -> None:
    assert closest_column_hint(column, present) == hint


@pytest.mark.parametrize(
    ("header", "separator"),
    [
        ("claim_id;amount;region", "separated by ';'"),
        ("claim_id\tamount\tregion", "separated by a tab"),
        ("A1 A2 A3 A4", "separated by spaces"),
    ],
)
def test_a_file_read_as_one_column_says_so_and_names_the_separator_it_found(
    header, separator
) -> None:
    note = columns_found([header], missing=3)
    assert "read as ONE column" in note and separator in note
    assert "3 expected column(s) are missing" in note


def test_a_table_missing_columns_lists_the_columns_it_has() -> None:
    note = columns_found([f"c{i}" for i in range(35)], missing=2)
    assert note.startswith("the table's 35 columns are: 'c0', 'c1'")
    assert note.endswith("'c29' and 5 more")
