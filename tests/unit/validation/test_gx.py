"""The Great Expectations adapter on a real file context: which checks fail, which rows fail
them, and what the results say in plain words. GX runs are shared per module: each costs ~1 s."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from pipelines.config import UseCase
from pipelines.data.columns import conform_columns
from pipelines.paths import StateDir
from pipelines.validation.expectations import Check, column_kinds, scoring_checks
from pipelines.validation.gx import (
    CheckResult,
    DataValidationError,
    ValidationOutcome,
    run_checks,
)

NOW = datetime(2024, 5, 10, 15, 30, tzinfo=UTC)
PROFILE = {
    "ranges": {"amount": [-10.0, 110.0]},
    "categories": {"region": ["north", "south"]},
    "unseen_categories": "quarantine",
}


def use_case(**expectations: Any) -> UseCase:
    declared: dict[str, Any] = {
        "required": ["region"],
        "columns": {
            "amount": {"min": 0, "max": 100},
            "region": {"allowed": ["east", "north", "south"]},
        },
        "batch_rows": {"min": 3, "max": 1000},
        "max_text_length": 12,
        "unseen_categories": "quarantine",
        "freshness": {"max_age_days": 30},
    }
    return UseCase.model_validate(
        {
            "dataset": "cases",
            "id_column": "case_id",
            "target": "outcome",
            "task": "binary",
            "positive_class": "bad",
            "features": {
                "numeric": ["amount"],
                "categorical": ["region"],
                "text": ["note"],
                "date": ["received"],
            },
            "split": {"method": "random"},
            "decision": {"kind": "threshold", "threshold": 0.5},
            "expectations": {**declared, **expectations},
        }
    )


def clean_batch() -> pd.DataFrame:
    """Ten rows as read from CSV, all within the rules."""
    return pd.DataFrame(
        {
            "case_id": [f"c-{i}" for i in range(10)],
            "amount": [str(i * 10) for i in range(10)],
            "region": ["north", "south"] * 5,
            "note": [f"note {i}" for i in range(10)],
            "received": ["2024-04-30", *[f"2024-05-0{i}" for i in range(1, 10)]],
        }
    )


def dirty_batch() -> pd.DataFrame:
    """Nine rows; rows 1-5 and 8 each break one row-level rule, rows 6 and 7 share an id."""
    frame = clean_batch().iloc[:9].copy()
    frame.loc[1, "region"] = None
    frame.loc[2, "amount"] = "250"
    frame.loc[3, "region"] = "west"
    frame.loc[4, "received"] = "2024-06-30"
    frame.loc[5, "note"] = "x" * 40
    frame.loc[7, "case_id"] = "c-6"
    frame.loc[8, "region"] = "east"  # allowed by the params, never seen in training
    return frame


def conform(frame: pd.DataFrame, params: UseCase) -> pd.DataFrame:
    kinds = {c: k for c, k in column_kinds(params).items() if c in frame.columns}
    conformed, problems = conform_columns(frame, kinds)
    assert problems == {}
    return conformed


@dataclass(frozen=True)
class Runs:
    state: StateDir
    clean: ValidationOutcome
    dirty: ValidationOutcome
    missing: ValidationOutcome
    beta: ValidationOutcome
    rerun: ValidationOutcome
    text_as_str: ValidationOutcome
    clean_checks: list[Check]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """Every GX run of this module, in one state directory with two agencies."""
    state = StateDir(tmp_path_factory.mktemp("validation") / "state")
    params = use_case()
    checks = scoring_checks(params, PROFILE, NOW)

    def run(frame: pd.DataFrame, check_list: list[Check], suite: str, agency: str = "alpha"):
        return run_checks(frame, check_list, agency=agency, suite_name=suite, state=state)

    clean = run(conform(clean_batch(), params), checks, "triage-scoring")
    dirty_params = use_case(batch_rows={"min": 10, "max": 1000})
    dirty = run(
        conform(dirty_batch(), dirty_params),
        scoring_checks(dirty_params, PROFILE, NOW),
        "triage-dirty",
    )
    # 'note' is missing, 'amount' stays text, and every date is months old
    old = clean_batch().drop(columns="note").assign(received="2024-01-15")
    missing = run(conform(old, params).assign(amount=old["amount"]), checks, "triage-missing")
    beta = run(conform(clean_batch(), params), checks, "routing-scoring", agency="beta")
    # the same suite again, with two checks only: the stored suite is replaced, not merged
    subset = [c for c in checks if c.name in ("exists:case_id", "not_null:region")]
    rerun = run(conform(dirty_batch(), params), subset, "triage-scoring")
    text_types = [c for c in checks if c.name in ("type:case_id", "type:region")]
    text_as_str = run(clean_batch(), text_types, "triage-text")
    return Runs(state, clean, dirty, missing, beta, rerun, text_as_str, checks)


def result(outcome: ValidationOutcome, name: str) -> CheckResult:
    [found] = [r for r in outcome.results if r.check.name == name]
    return found


def failed_names(outcome: ValidationOutcome) -> set[str]:
    return {r.check.name for r in outcome.failures}


def gx_root(state: StateDir, agency: str) -> Path:
    return state.root / "gx" / agency / "gx"


# --- a clean batch --------------------------------------------------------------------------------


def test_a_clean_batch_passes_every_check(runs: Runs) -> None:
    outcome = runs.clean

    assert outcome.success and outcome.failures == []
    assert outcome.rows == 10 and outcome.suite_name == "triage-scoring"
    assert sorted(r.check.name for r in outcome.results) == sorted(
        c.name for c in runs.clean_checks
    )
    assert all(r.error is None and r.failing_rows == [] for r in outcome.results)


def test_a_run_has_a_result_id_and_data_docs(runs: Runs) -> None:
    outcome = runs.clean

    assert outcome.result_id and "triage-scoring" in outcome.result_id
    assert outcome.data_docs.is_dir()
    assert (outcome.data_docs / "index.html").is_file()
    assert outcome.data_docs.is_relative_to(runs.state.root / "gx" / "alpha")


def test_a_runs_data_docs_hold_its_own_pages_and_an_index_linking_them(runs: Runs) -> None:
    """Logged with every run: only its own pages, so they do not grow with the batches before."""
    import re

    docs = runs.clean.data_docs
    pages = sorted(path.relative_to(docs).as_posix() for path in docs.rglob("*.html"))
    [validation_page] = [page for page in pages if page.startswith("validations/")]

    assert pages == sorted(["index.html", "expectations/triage-scoring.html", validation_page])
    assert validation_page.startswith("validations/triage-scoring/")
    index = (docs / "index.html").read_text()
    links = re.findall(r'href="([^"#]+)"', index)
    assert sorted(links) == sorted(["expectations/triage-scoring.html", validation_page])
    assert all((docs / link).is_file() for link in links)
    # the validation page's own links (home, its suite) resolve inside the folder
    page = docs / validation_page
    for link in re.findall(r'href="(\.\./[^"#]+\.html)"', page.read_text()):
        assert (page.parent / link).resolve().is_relative_to(docs.resolve())
        assert (page.parent / link).is_file(), link
    # GX's images and fonts for its site's index are not copied: a few dozen KB, not 4 MB
    assert sum(path.stat().st_size for path in docs.rglob("*") if path.is_file()) < 200_000
    # a later run of the same suite has its own folder and leaves this one as it was
    assert runs.rerun.data_docs != docs
    assert sorted(path.relative_to(docs).as_posix() for path in docs.rglob("*.html")) == pages


def test_gx_analytics_are_disabled_in_the_written_config(runs: Runs) -> None:
    for agency in ("alpha", "beta"):
        config = yaml.safe_load(
            (gx_root(runs.state, agency) / "great_expectations.yml").read_text()
        )
        assert config["analytics_enabled"] is False


# --- row-level failures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("not_null:region", [1]),
        ("between:amount", [2]),
        ("trained_range:amount", [2]),
        ("allowed:region", [3]),
        ("trained_categories:region", [3, 8]),
        ("not_future:received", [4]),
        ("max_length:note", [5]),
    ],
)
def test_failing_rows_are_identified_by_position(runs: Runs, name: str, rows: list[int]) -> None:
    found = result(runs.dirty, name)

    assert not found.success and found.check.level == "row"
    assert found.failing_rows == rows
    assert found.unexpected_count == len(rows)
    assert found.error is None


def test_nothing_else_fails_in_the_dirty_batch(runs: Runs) -> None:
    assert failed_names(runs.dirty) == {
        "row_count",
        "unique:case_id",
        "not_null:region",
        "between:amount",
        "trained_range:amount",
        "allowed:region",
        "trained_categories:region",
        "not_future:received",
        "max_length:note",
    }
    assert not runs.dirty.success


def test_row_count_and_duplicate_ids_are_batch_level_failures(runs: Runs) -> None:
    row_count = result(runs.dirty, "row_count")
    unique = result(runs.dirty, "unique:case_id")

    assert (row_count.check.level, unique.check.level) == ("batch", "batch")
    assert row_count.observed == 9
    assert row_count.explain() == "expected between 10 and 1000 rows, but found 9"
    assert unique.failing_rows == [6, 7]
    assert unique.explain() == "expected values in 'case_id' are unique, but 2 row(s) do not"


def test_row_level_failures_explain_how_many_rows_failed(runs: Runs) -> None:
    assert result(runs.dirty, "not_future:received").explain() == (
        "expected 'received' is not after 2024-05-11T00:00:00, but 1 row(s) do not"
    )
    assert result(runs.dirty, "trained_categories:region").explain() == (
        "expected 'region' is one of the 2 known values, but 2 row(s) do not"
    )


# --- missing columns, wrong types, stale data -----------------------------------------------------


def test_a_missing_column_fails_exists_and_its_other_checks_are_skipped(runs: Runs) -> None:
    outcome = runs.missing

    exists = result(outcome, "exists:note")
    assert not exists.success
    assert exists.explain() == "expected column 'note' is present, but it is missing"
    on_note = [r.check.name for r in outcome.results if r.check.column == "note"]
    assert on_note == ["exists:note"]  # no type or length result, and so no error either
    assert result(outcome, "exists:case_id").success


def test_a_numeric_column_left_as_text_fails_its_type_check(runs: Runs) -> None:
    found = result(runs.missing, "type:amount")

    assert not found.success and found.check.level == "batch"
    assert found.observed == "String"  # as GX's SQL engine names a text column's type
    assert found.explain() == (
        "expected column 'amount' holds numeric values, but found text values (String)"
    )


def test_stale_dates_fail_the_recent_check_with_the_newest_date(runs: Runs) -> None:
    found = result(runs.missing, "recent:received")

    assert not found.success and found.check.level == "batch"
    assert str(found.observed).startswith("2024-01-15")
    assert found.explain().startswith(
        "expected the newest 'received' is on or after 2024-04-10T00:00:00, but found 2024-01-15"
    )


def test_the_batch_level_failures_of_the_stale_batch(runs: Runs) -> None:
    batch_level = {r.check.name for r in runs.missing.failures if r.check.level == "batch"}

    assert batch_level == {"exists:note", "type:amount", "recent:received"}


def test_a_check_gx_could_not_evaluate_says_so(runs: Runs) -> None:
    found = result(runs.missing, "between:amount")  # 'amount' is text here

    assert not found.success
    assert found.error is not None
    assert "could not be checked" in found.explain()


def test_text_columns_in_the_pandas_string_dtype_pass_the_text_type_check(runs: Runs) -> None:
    assert runs.text_as_str.success, [r.explain() for r in runs.text_as_str.failures]


def test_chunked_validation_judges_the_newest_date_over_the_whole_batch(runs: Runs) -> None:
    from pipelines.validation.gx import run_checks_in_chunks

    recent = [c for c in runs.clean_checks if c.kind == "recent"]
    dates = pd.to_datetime(["2024-01-02", "2024-01-03", "2024-05-01", "2024-05-02"])
    table = pd.DataFrame({"received": dates.astype("datetime64[ns]")})

    outcome = run_checks_in_chunks(
        [table.iloc[:2], table.iloc[2:]],
        recent,
        agency="alpha",
        suite_name="triage-chunks",
        state=runs.state,
    )

    assert outcome.rows == 4
    assert outcome.success, [r.explain() for r in outcome.failures]


def test_a_chunked_batch_is_validated_by_one_checkpoint_over_its_file(runs: Runs) -> None:
    from pipelines.validation.gx import BatchValidation

    checks = [
        Check("exists:amount", "column_exists", "batch", "amount"),
        Check("exists:region", "column_exists", "batch", "region"),  # the table lacks it
        Check(
            "type:amount",
            "column_type",
            "batch",
            "amount",
            {"kind": "numeric", "types": ["DOUBLE_PRECISION"]},
        ),
        Check("range:amount", "between", "row", "amount", {"min": 0, "max": 100}),
    ]
    chunks = [pd.DataFrame({"amount": values}) for values in ([1.0, 2.0], [3.0, 500.0])]
    validation = BatchValidation(
        checks, agency="alpha", suite_name="triage-schema", state=runs.state, columns=["amount"]
    )
    scratch = validation.scratch

    for chunk in chunks:
        validation.add(chunk)
    outcome = validation.finish()
    validation.discard()

    assert {r.check.name: r.success for r in outcome.results} == {
        "exists:amount": True,
        "exists:region": False,
        "type:amount": True,
        "range:amount": False,
    }
    # positions are the batch's, across the chunk border
    assert result(outcome, "range:amount").failing_rows == [3]
    assert outcome.rows == 4
    assert len(outcome.result_id.split(",")) == 1  # one GX result for the batch
    pages = "\n".join(p.read_text() for p in outcome.data_docs.rglob("*.html"))
    assert "triage-schema" in pages
    assert not scratch.exists()  # the gate's working file is gone


def test_chunked_validation_finds_ids_repeated_across_chunks(runs: Runs) -> None:
    from pipelines.validation.gx import run_checks_in_chunks

    unique = Check("unique:case_id", "unique", "batch", "case_id")
    # 'a' repeats across all three chunks; 'e' inside the last one, which GX finds itself
    chunks = [["a", "b"], ["c", "a"], ["a", "d", "e", "e"]]

    outcome = run_checks_in_chunks(
        [pd.DataFrame({"case_id": ids}) for ids in chunks],
        [unique],
        agency="alpha",
        suite_name="triage-repeats",
        state=runs.state,
    )

    found = result(outcome, "unique:case_id")
    assert outcome.rows == 8 and not outcome.success
    assert not found.success
    # every copy of a repeated id, by its place in the whole batch, as GX counts in one chunk:
    # the same count whatever the chunk size
    assert found.failing_rows == [0, 3, 4, 6, 7]
    assert found.unexpected_count == 5
    assert found.explain() == "expected values in 'case_id' are unique, but 5 row(s) do not"
    whole = run_checks_in_chunks(
        [pd.DataFrame({"case_id": [i for ids in chunks for i in ids]})],
        [unique],
        agency="alpha",
        suite_name="triage-repeats",
        state=runs.state,
    )
    assert result(whole, "unique:case_id").failing_rows == found.failing_rows


# --- contexts and suites --------------------------------------------------------------------------


def test_each_agency_has_its_own_context_and_data_docs(runs: Runs) -> None:
    assert sorted(p.name for p in (runs.state.root / "gx").iterdir()) == ["alpha", "beta"]
    assert runs.beta.success
    assert runs.beta.data_docs.is_relative_to(runs.state.root / "gx" / "beta")
    assert runs.beta.data_docs != runs.clean.data_docs

    def text_under(folder: Path) -> str:
        return "\n".join(
            path.read_text(errors="replace") for path in folder.rglob("*") if path.is_file()
        )

    alpha_docs, beta_docs = text_under(runs.clean.data_docs), text_under(runs.beta.data_docs)
    assert "triage-scoring" in alpha_docs and "routing-scoring" not in alpha_docs
    assert "routing-scoring" in beta_docs and "triage-" not in beta_docs
    assert "triage-" not in text_under(gx_root(runs.state, "beta"))


def test_running_a_suite_again_replaces_its_checks(runs: Runs) -> None:
    outcome = runs.rerun

    assert sorted(r.check.name for r in outcome.results) == ["exists:case_id", "not_null:region"]
    assert result(outcome, "not_null:region").failing_rows == [1]
    assert outcome.result_id != runs.clean.result_id


# --- the outcome as a report ----------------------------------------------------------------------


def test_as_dict_lists_every_check_with_a_problem_only_on_failures(runs: Runs) -> None:
    outcome = runs.dirty

    report = outcome.as_dict()

    assert {k: report[k] for k in ("suite", "result_id", "rows", "success")} == {
        "suite": "triage-dirty",
        "result_id": outcome.result_id,
        "rows": 9,
        "success": False,
    }
    assert [entry["check"] for entry in report["checks"]] == [r.check.name for r in outcome.results]
    for entry, found in zip(report["checks"], outcome.results, strict=True):
        assert entry["level"] == found.check.level
        assert entry["success"] is found.success
        assert entry["expectation"] == found.check.describe()
        assert entry["unexpected_count"] == found.unexpected_count
        if found.success:
            assert "problem" not in entry
        else:
            assert entry["problem"] == found.explain()
    assert json.loads(json.dumps(report)) == report  # plain JSON, ready for report.json


def test_an_outcome_without_failures_is_a_success() -> None:
    check = Check("n", "not_null", "row", "region")
    outcome = ValidationOutcome("s", 3, [CheckResult(check, True)], "r-1", Path("docs"))

    assert outcome.success and outcome.failures == []
    assert outcome.as_dict()["checks"] == [
        {
            "check": "n",
            "level": "row",
            "success": True,
            "expectation": "'region' is not empty",
            "unexpected_count": 0,
        }
    ]


# --- CheckResult.explain --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("found", "words"),
    [
        (
            CheckResult(Check("e", "column_exists", "batch", "note"), False),
            "expected column 'note' is present, but it is missing",
        ),
        (
            CheckResult(
                Check("t", "column_type", "batch", "amount", {"kind": "numeric", "types": []}),
                False,
                observed="object",
            ),
            "expected column 'amount' holds numeric values, but found object",
        ),
        (
            CheckResult(
                Check("r", "row_count", "batch", None, {"min": 5, "max": None}), False, observed=2
            ),
            "expected between 5 and any rows, but found 2",
        ),
        (
            CheckResult(
                Check("c", "recent", "batch", "received", {"min": "2024-04-10T00:00:00"}),
                False,
                observed="2024-01-15",
            ),
            "expected the newest 'received' is on or after 2024-04-10T00:00:00, "
            "but found 2024-01-15",
        ),
        (
            CheckResult(Check("u", "unique", "batch", "case_id"), False, 2, [3, 4]),
            "expected values in 'case_id' are unique, but 2 row(s) do not",
        ),
        (
            CheckResult(Check("n", "not_null", "row", "region"), False, 1, [0]),
            "expected 'region' is not empty, but 1 row(s) do not",
        ),
        (
            CheckResult(Check("b", "between", "row", "amount", {"min": 0, "max": 1}), False, 3),
            "expected 'amount' is between 0 and 1, but 3 row(s) do not",
        ),
        (
            CheckResult(Check("s", "in_set", "row", "region", {"values": ["a"]}), False, 1),
            "expected 'region' is one of the 1 known values, but 1 row(s) do not",
        ),
        (
            CheckResult(
                Check("f", "not_future", "row", "received", {"max": "2024-05-11"}), False, 4
            ),
            "expected 'received' is not after 2024-05-11, but 4 row(s) do not",
        ),
        (
            CheckResult(Check("m", "max_length", "row", "note", {"max": 5}), False, 1),
            "expected 'note' is at most 5 characters long, but 1 row(s) do not",
        ),
        (
            CheckResult(Check("n", "not_null", "row", "region"), False),
            "expected 'region' is not empty, but it does not",
        ),
        (
            CheckResult(
                Check("b", "between", "row", "amount", {"min": 0, "max": None}),
                False,
                error="'>=' not supported",
            ),
            "expected 'amount' is at least 0, but it could not be checked: '>=' not supported",
        ),
    ],
    ids=[
        "column_exists",
        "column_type",
        "row_count",
        "recent",
        "unique",
        "not_null",
        "between",
        "in_set",
        "not_future",
        "max_length",
        "no-count",
        "error",
    ],
)
def test_explain_says_what_was_expected_and_what_was_found(found: CheckResult, words: str) -> None:
    assert found.explain() == words


def test_data_validation_error_lists_every_problem() -> None:
    error = DataValidationError("the training data", ["expected A", "expected B"])

    assert str(error) == "the training data failed 2 check(s):\n  - expected A\n  - expected B"
    assert error.problems == ["expected A", "expected B"]
    with pytest.raises(ValueError, match=r"failed 2 check\(s\)"):
        raise error
