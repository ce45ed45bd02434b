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


# --- rows without a label -------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["quarantine", "drop", "fail"])
def test_rows_without_a_label_are_set_aside_as_the_params_say(small_project, policy) -> None:
    import yaml

    from pipelines.config import load_use_case
    from pipelines.paths import state_dir
    from pipelines.validation.quality import set_aside_unlabelled

    params_file = small_project / "params" / "business-aid.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["use_cases"]["fraud-risk"]["target_missing"] = policy
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    spec = load_use_case("business-aid", "fraud-risk")
    frame = pd.DataFrame({"application_id": ["a", "b", "c"], "is_fraud": [1, None, 0]})

    labelled, unlabelled = set_aside_unlabelled(spec, frame, state_dir())

    quarantine = state_dir().quarantine("business-aid", "fraud-risk")
    if policy == "fail":  # left in: the training suite refuses them
        assert labelled is frame and unlabelled.rows == 0
        assert not quarantine.exists()
        return
    assert labelled["application_id"].tolist() == ["a", "c"] and unlabelled.rows == 1
    assert unlabelled.policy == policy
    if policy == "drop":
        assert unlabelled.quarantine_dir is None and not quarantine.exists()
        return
    (folder,) = quarantine.glob("training-unlabelled-*")
    assert unlabelled.quarantine_dir == str(folder)
    kept = pd.read_parquet(folder / "rows.parquet")
    assert kept["application_id"].tolist() == ["b"] and kept["row_number"].tolist() == [1]
    again = set_aside_unlabelled(spec, frame, state_dir())[1]  # the same rows: the same folder
    assert again.quarantine_dir == str(folder) and len(list(quarantine.iterdir())) == 1


def test_a_split_leaves_out_rows_without_a_label() -> None:
    from pipelines.modeling.training import split_data

    params = use_case()
    frame = pd.DataFrame(
        {"id": [f"r{i}" for i in range(40)], "x": range(40), "y": ["yes", "no"] * 20}
    )
    frame.loc[[3, 8], "y"] = None
    split = split_data(frame, params)
    used = [*split.train["id"], *split.validation["id"], *split.holdout["id"]]
    assert sorted(used) == sorted(set(frame["id"]) - {"r3", "r8"})
