"""The gate on validation outcomes built by hand: reject the batch, or name the rows that go to
quarantine and why, each failing row once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from pipelines.data.columns import conform_columns
from pipelines.scoring.streaming import chunk_reasons, failing_rows
from pipelines.validation.expectations import Check
from pipelines.validation.gate import QUARANTINE_REASON, BatchRejectedError, gate_report, judge
from pipelines.validation.gx import CheckResult, DataValidationError, ValidationOutcome

KINDS = {"case_id": "text", "amount": "numeric", "region": "text", "received": "date"}

EXISTS_NOTE = Check("exists:note", "column_exists", "batch", "note")
TYPE_AMOUNT = Check(
    "type:amount", "column_type", "batch", "amount", {"kind": "numeric", "types": ["float64"]}
)
TYPE_RECEIVED = Check(
    "type:received",
    "column_type",
    "batch",
    "received",
    {"kind": "date", "types": ["datetime64[ns]"]},
)
ROW_COUNT = Check("row_count", "row_count", "batch", None, {"min": 20, "max": None})
UNIQUE_ID = Check("unique:case_id", "unique", "batch", "case_id")
RECENT = Check("recent:received", "recent", "batch", "received", {"min": "2024-04-10T00:00:00"})
NOT_NULL_REGION = Check("not_null:region", "not_null", "row", "region")
BETWEEN_AMOUNT = Check("between:amount", "between", "row", "amount", {"min": 0, "max": 100})
ALLOWED_REGION = Check("allowed:region", "in_set", "row", "region", {"values": ["n", "s"]})
NOT_FUTURE = Check(
    "not_future:received", "not_future", "row", "received", {"max": "2024-05-11T00:00:00"}
)

REGION_REASON = "'region' is not empty"
AMOUNT_REASON = "'amount' is between 0 and 100"


def raw_batch(rows: int = 10) -> pd.DataFrame:
    """A batch as read from CSV: every column text."""
    return pd.DataFrame(
        {
            "case_id": [f"c-{i}" for i in range(rows)],
            "amount": [str(i * 5) for i in range(rows)],
            "region": ["n", "s"] * (rows // 2) + ["n"] * (rows % 2),
            "received": [f"2024-05-{i % 9 + 1:02d}" for i in range(rows)],
        }
    )


def failed(check: Check, rows: list[int] | None = None, **extra: Any) -> CheckResult:
    rows = rows or []
    extra.setdefault("unexpected_count", len(rows))
    return CheckResult(check=check, success=False, failing_rows=rows, **extra)


def passed(check: Check) -> CheckResult:
    return CheckResult(check=check, success=True)


def outcome(*results: CheckResult, rows: int = 10) -> ValidationOutcome:
    everything = [passed(ROW_COUNT), passed(UNIQUE_ID), *results]
    return ValidationOutcome(
        suite_name="triage-scoring",
        rows=rows,
        results=everything,
        result_id="ValidationResultIdentifier::triage-scoring/1",
        data_docs=Path("docs"),
    )


def gate(
    result: ValidationOutcome,
    cast_problems: dict[str, str] | None = None,
    limit: float = 0.5,
) -> dict[int, list[str]]:
    """The rows that go to quarantine and their reasons, or BatchRejectedError."""
    return judge(result, cast_problems or {}, limit)


def quarantined(raw: pd.DataFrame, reasons: dict[int, list[str]]) -> pd.DataFrame:
    """The quarantine table the stream writes for a batch read as text."""
    record_batch = pa.RecordBatch.from_pandas(raw, preserve_index=False)
    return failing_rows(record_batch, reasons).to_pandas()


# --- a clean batch --------------------------------------------------------------------------------


def test_a_clean_batch_sends_no_row_to_quarantine() -> None:
    assert gate(outcome(passed(NOT_NULL_REGION), passed(BETWEEN_AMOUNT))) == {}


def test_an_empty_batch_that_passed_sends_no_row_to_quarantine() -> None:
    assert gate(outcome(rows=0), limit=0.0) == {}


def test_an_empty_quarantine_table_keeps_the_input_columns_and_the_reason() -> None:
    raw = raw_batch()

    table = quarantined(raw, gate(outcome()))

    assert table.empty
    assert list(table.columns) == [*raw.columns, QUARANTINE_REASON]


# --- batch-level failures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        (failed(EXISTS_NOTE), "expected column 'note' is present, but it is missing"),
        (
            failed(TYPE_AMOUNT, observed="str"),
            "expected column 'amount' holds numeric values, but found str",
        ),
        (failed(ROW_COUNT, observed=10), "expected between 20 and any rows, but found 10"),
        (
            failed(UNIQUE_ID, [3, 7]),
            "expected values in 'case_id' are unique, but 2 row(s) do not",
        ),
        (
            failed(RECENT, observed="2024-01-31T00:00:00"),
            "expected the newest 'received' is on or after 2024-04-10T00:00:00, "
            "but found 2024-01-31T00:00:00",
        ),
    ],
    ids=lambda value: value.check.kind if isinstance(value, CheckResult) else None,
)
def test_a_batch_level_failure_rejects_the_batch_in_plain_words(
    result: CheckResult, problem: str
) -> None:
    with pytest.raises(BatchRejectedError, match=re.escape(problem)) as caught:
        gate(outcome(result))

    assert caught.value.problems == [problem]
    assert str(caught.value).startswith("the batch failed 1 check(s):\n  - ")
    assert caught.value.quarantine_dir is None


def test_a_rejection_is_a_data_validation_error() -> None:
    assert issubclass(BatchRejectedError, DataValidationError)
    assert issubclass(BatchRejectedError, ValueError)


def test_every_batch_level_problem_is_listed_and_row_failures_are_not() -> None:
    result = outcome(
        failed(EXISTS_NOTE),
        failed(ROW_COUNT, observed=10),
        failed(NOT_NULL_REGION, [2]),
    )

    with pytest.raises(BatchRejectedError, match=r"the batch failed 2 check\(s\)") as caught:
        gate(result)

    assert caught.value.problems == [
        "expected column 'note' is present, but it is missing",
        "expected between 20 and any rows, but found 10",
    ]


def test_a_duplicated_id_rejects_the_batch_rather_than_quarantining_rows() -> None:
    with pytest.raises(BatchRejectedError, match="'case_id' are unique"):
        gate(outcome(failed(UNIQUE_ID, [0, 1])), limit=1.0)


# --- cast problems --------------------------------------------------------------------------------


def test_a_cast_problem_is_reported_once_not_again_as_a_type_failure() -> None:
    raw = raw_batch()
    raw.loc[3, "amount"] = "twelve"
    _, cast_problems = conform_columns(raw, KINDS)
    assert list(cast_problems) == ["amount"]
    result = outcome(failed(TYPE_AMOUNT, observed="object"))

    with pytest.raises(BatchRejectedError, match="column 'amount' must be numeric") as caught:
        gate(result, cast_problems)

    assert caught.value.problems == [cast_problems["amount"]]
    assert "holds numeric values" not in str(caught.value)


def test_cast_problems_reject_even_when_every_check_passed() -> None:
    raw = raw_batch()
    raw.loc[[1, 4], "received"] = ["yesterday", "soon"]
    _, cast_problems = conform_columns(raw, KINDS)

    with pytest.raises(BatchRejectedError) as caught:
        gate(outcome(), cast_problems, limit=1.0)

    [problem] = caught.value.problems
    assert problem.startswith("column 'received' has 2 value(s) that are not dates, e.g. [")
    assert "'yesterday'" in problem and "'soon'" in problem


def test_a_type_failure_on_a_column_without_a_cast_problem_is_still_reported() -> None:
    raw = raw_batch()
    raw.loc[0, "amount"] = "n/a"
    _, cast_problems = conform_columns(raw, KINDS)
    result = outcome(
        failed(TYPE_AMOUNT, observed="object"), failed(TYPE_RECEIVED, observed="object")
    )

    with pytest.raises(BatchRejectedError) as caught:
        gate(result, cast_problems)

    assert caught.value.problems == [
        cast_problems["amount"],
        "expected column 'received' holds date values, but found object",
    ]


@pytest.mark.parametrize(
    "dates",
    [
        ["2024-05-01T09:00:00+00:00", "2024-05-02T09:00:00+00:00"],
        ["2024-05-01T09:00:00+02:00", "2024-05-02"],
        ["2024-05-01", "9999-12-31"],
    ],
    ids=["utc-offset", "mixed-offsets", "sentinel-9999-12-31"],
)
def test_dates_that_do_not_fit_are_cast_problems_not_crashes(dates: list[str]) -> None:
    raw = pd.DataFrame({"case_id": ["c-0", "c-1"], "amount": ["x", "2"], "received": dates})

    frame, cast_problems = conform_columns(raw, KINDS)

    assert "amount" in cast_problems  # the other columns are still reported
    assert "received" in cast_problems or frame["received"].dtype == "datetime64[ns]"


# --- row-level failures ---------------------------------------------------------------------------


def test_rows_that_fail_go_to_quarantine_as_they_came_with_their_reasons() -> None:
    raw = raw_batch()
    raw.loc[2, "region"] = None
    raw.loc[5, "amount"] = "250"
    raw.loc[5, "region"] = "west"
    result = outcome(
        failed(NOT_NULL_REGION, [2]),
        failed(BETWEEN_AMOUNT, [5]),
        failed(ALLOWED_REGION, [5]),
    )

    reasons = gate(result)

    assert reasons == {
        2: [REGION_REASON],
        5: [AMOUNT_REASON, "'region' is one of the 2 known values"],
    }
    table = quarantined(raw, reasons)
    assert table["case_id"].tolist() == ["c-2", "c-5"]
    assert table["amount"].tolist() == ["10", "250"]  # raw text, not cast
    assert table["received"].tolist() == ["2024-05-03", "2024-05-06"]
    assert table[QUARANTINE_REASON].tolist() == [
        REGION_REASON,
        f"{AMOUNT_REASON}; 'region' is one of the 2 known values",
    ]
    assert list(table.index) == [0, 1]


def test_a_row_failing_several_checks_is_quarantined_once_with_every_reason() -> None:
    result = outcome(
        failed(NOT_FUTURE, [7]),
        failed(BETWEEN_AMOUNT, [7, 1]),
        failed(NOT_NULL_REGION, [7]),
    )

    reasons = gate(result)

    assert reasons == {
        1: [AMOUNT_REASON],
        7: ["'received' is not after 2024-05-11T00:00:00", AMOUNT_REASON, REGION_REASON],
    }
    table = quarantined(raw_batch(), reasons)
    assert table["case_id"].tolist() == ["c-1", "c-7"]  # input order
    assert table[QUARANTINE_REASON].tolist() == [
        AMOUNT_REASON,
        f"'received' is not after 2024-05-11T00:00:00; {AMOUNT_REASON}; {REGION_REASON}",
    ]


@pytest.mark.parametrize(
    "failing",
    [[], [0], [9], [0, 9], [1, 3, 5, 7], [4, 4, 2]],
    ids=["none", "first", "last", "ends", "odd", "repeated"],
)
def test_every_failing_row_is_quarantined_exactly_once(failing: list[int]) -> None:
    reasons = gate(outcome(failed(NOT_NULL_REGION, failing)), limit=1.0)

    assert sorted(reasons) == sorted(set(failing))
    table = quarantined(raw_batch(), reasons)
    assert table["case_id"].tolist() == [f"c-{row}" for row in sorted(set(failing))]


def test_rows_failing_in_a_later_chunk_are_found_by_their_place_in_it() -> None:
    chunk = raw_batch(20).iloc[10:]  # the second chunk of ten; its index starts at 10
    failing = gate(
        outcome(
            failed(NOT_NULL_REGION, [3, 10, 19]),
            failed(BETWEEN_AMOUNT, [19]),
            passed(ALLOWED_REGION),
            rows=20,
        ),
        limit=1.0,
    )

    reasons = chunk_reasons(failing, np.array(sorted(failing)), start=10, rows=10)

    assert reasons == {0: [REGION_REASON], 9: [REGION_REASON, AMOUNT_REASON]}
    table = quarantined(chunk, reasons)
    assert table["case_id"].tolist() == ["c-10", "c-19"]
    assert table[QUARANTINE_REASON].tolist() == [REGION_REASON, f"{REGION_REASON}; {AMOUNT_REASON}"]


# --- the quarantine limit -------------------------------------------------------------------------


def test_too_many_failing_rows_reject_the_batch_naming_the_fraction_and_top_reasons() -> None:
    result = outcome(
        failed(NOT_NULL_REGION, [1, 2, 3]),
        failed(BETWEEN_AMOUNT, [3]),
    )

    with pytest.raises(
        BatchRejectedError,
        match=re.escape(
            "3 of 10 rows (30.0%) failed row checks, above max_quarantine_fraction 20.0%"
        ),
    ) as caught:
        gate(result, limit=0.2)

    assert caught.value.problems[1:] == [
        "3 row(s): expected 'region' is not empty",
        "1 row(s): expected 'amount' is between 0 and 100",
    ]


def test_the_rejection_lists_at_most_five_reasons_most_common_first() -> None:
    checks = [Check(f"not_null:c{i}", "not_null", "row", f"c{i}") for i in range(7)]
    result = outcome(*[failed(check, list(range(i + 1))) for i, check in enumerate(checks)])

    with pytest.raises(BatchRejectedError) as caught:
        gate(result, limit=0.1)

    assert caught.value.problems[1:] == [
        f"{count} row(s): expected 'c{count - 1}' is not empty" for count in (7, 6, 5, 4, 3)
    ]


@pytest.mark.parametrize(
    ("failing", "limit"),
    [(2, 0.2), (1, 0.1), (3, 0.3), (10, 1.0), (0, 0.0)],
)
def test_a_fraction_exactly_at_the_limit_passes(failing: int, limit: float) -> None:
    reasons = gate(outcome(failed(NOT_NULL_REGION, list(range(failing)))), limit=limit)

    assert sorted(reasons) == list(range(failing))


def test_one_row_over_the_limit_rejects_and_a_zero_limit_allows_no_failing_row() -> None:
    with pytest.raises(BatchRejectedError, match=r"3 of 10 rows \(30\.0%\)"):
        gate(outcome(failed(NOT_NULL_REGION, [0, 1, 2])), limit=0.2)
    with pytest.raises(BatchRejectedError, match=r"above max_quarantine_fraction 0\.0%"):
        gate(outcome(failed(NOT_NULL_REGION, [4])), limit=0.0)


def test_the_limit_counts_rows_not_failures() -> None:
    result = outcome(*[failed(check, [0, 1]) for check in (NOT_NULL_REGION, BETWEEN_AMOUNT)])

    reasons = gate(result, limit=0.2)  # four failures, but only two rows

    assert reasons == {0: [REGION_REASON, AMOUNT_REASON], 1: [REGION_REASON, AMOUNT_REASON]}


# --- rows that cannot be identified ---------------------------------------------------------------


def test_failing_rows_that_could_not_be_identified_reject_the_batch() -> None:
    result = outcome(failed(BETWEEN_AMOUNT, [2], unexpected_count=3))

    with pytest.raises(
        BatchRejectedError,
        match=re.escape(
            "expected 'amount' is between 0 and 100, but 3 row(s) do not, "
            "and the failing rows could not be identified"
        ),
    ):
        gate(result, limit=1.0)


def test_a_row_check_that_could_not_be_evaluated_rejects_the_batch() -> None:
    broken = failed(BETWEEN_AMOUNT, [], error="'>=' not supported between 'str' and 'float'")

    with pytest.raises(BatchRejectedError, match=re.escape("'amount' is between 0 and 100")):
        gate(outcome(broken), limit=1.0)


# --- the rejection message and the report ---------------------------------------------------------


def test_a_rejection_names_the_quarantine_folder_when_given(tmp_path: Path) -> None:
    folder = tmp_path / "quarantine" / "demo" / "triage" / "batch-1"

    error = BatchRejectedError("the batch", ["expected A", "expected B"], str(folder))

    assert str(error) == (
        "the batch failed 2 check(s):\n  - expected A\n  - expected B\n"
        f"The input and the report are in {folder}"
    )
    assert error.quarantine_dir == str(folder)
    assert error.problems == ["expected A", "expected B"]
    with pytest.raises(BatchRejectedError, match=re.escape(f"report are in {folder}")):
        raise error


def test_a_rejection_without_a_folder_does_not_mention_one() -> None:
    error = BatchRejectedError("the batch file", ["cannot read it"])

    assert str(error) == "the batch file failed 1 check(s):\n  - cannot read it"


def test_gate_report_adds_the_row_counts_to_the_outcome() -> None:
    result = outcome(failed(NOT_NULL_REGION, [1]))
    failing = len(gate(result))
    counts = {"in": 10, "scored": 10 - failing, "quarantined": failing}

    report = gate_report(result, counts)

    assert report["row_counts"] == {"in": 10, "scored": 9, "quarantined": 1}
    assert report["suite"] == "triage-scoring" and report["success"] is False
    assert "row_counts" not in gate_report(result, None)
