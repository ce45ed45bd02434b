"""Plain checks from params and the training profile: what each suite checks, at which level."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from pipelines.config import UseCase
from pipelines.validation.expectations import (
    COLUMN_TYPES,
    MAX_PROFILED_CATEGORIES,
    Check,
    bounds_in_words,
    column_kinds,
    derive_profile,
    scoring_checks,
    training_checks,
)

NOW = datetime(2024, 5, 10, 15, 30, tzinfo=UTC)
FEATURES = ["amount", "region", "note", "received"]
ROW_KINDS = {"not_null", "between", "in_set", "not_future", "max_length"}
BATCH_KINDS = {"column_exists", "column_type", "row_count", "unique", "recent"}


def use_case(expectations: dict[str, Any] | None = None, **extra: Any) -> UseCase:
    """One feature of each kind, an id and a binary target."""
    declared: dict[str, Any] = {
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
        "min_training_rows": 50,
        "expectations": expectations or {},
    }
    return UseCase.model_validate({**declared, **extra})


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def of_kind(checks: list[Check], kind: str) -> dict[str | None, Check]:
    return {check.column: check for check in checks if check.kind == kind}


PROFILE = {
    "ranges": {"amount": [-5.0, 15.0]},
    "categories": {"region": ["north", "south"]},
    "unseen_categories": "quarantine",
}


# --- column kinds and schema ----------------------------------------------------------------------


def test_column_kinds_give_the_id_text_and_each_feature_its_kind() -> None:
    assert column_kinds(use_case()) == {
        "case_id": "text",
        "amount": "numeric",
        "region": "text",
        "note": "text",
        "received": "date",
    }


def test_training_checks_that_id_features_and_target_exist_with_their_types() -> None:
    checks = training_checks(use_case(), NOW)

    columns = ["case_id", *FEATURES, "outcome"]
    assert list(of_kind(checks, "column_exists")) == columns
    types = of_kind(checks, "column_type")
    assert list(types) == columns
    assert {c: check.options["kind"] for c, check in types.items()} == {
        "case_id": "text",
        "amount": "numeric",
        "region": "text",
        "note": "text",
        "received": "date",
        "outcome": "text",
    }
    for check in types.values():
        assert check.options["types"] == COLUMN_TYPES[check.options["kind"]]


def test_scoring_checks_the_schema_of_id_and_features_but_not_the_target() -> None:
    checks = scoring_checks(use_case(), PROFILE, NOW)

    assert list(of_kind(checks, "column_exists")) == ["case_id", *FEATURES]
    assert list(of_kind(checks, "column_type")) == ["case_id", *FEATURES]


def test_column_types_are_named_as_the_gates_sql_engine_names_them() -> None:
    # the gate's file holds doubles, strings and timestamps (validation.gx.GateFile)
    assert COLUMN_TYPES["numeric"] == ["DOUBLE_PRECISION"]
    assert COLUMN_TYPES["date"] == ["TIMESTAMP"]
    assert "VARCHAR" in COLUMN_TYPES["text"]


# --- row counts and unique ids --------------------------------------------------------------------


def test_training_needs_at_least_min_training_rows_and_has_no_upper_bound() -> None:
    check = by_name(training_checks(use_case(min_training_rows=75), NOW))["row_count"]

    assert check.options == {"min": 75, "max": None}
    assert check.describe() == "between 75 and any rows"


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [({}, {"min": 1, "max": 10_000_000}), ({"min": 5, "max": 200}, {"min": 5, "max": 200})],
    ids=["default", "declared"],
)
def test_scoring_row_count_comes_from_batch_rows(
    bounds: dict[str, int], expected: dict[str, int]
) -> None:
    params = use_case({"batch_rows": bounds} if bounds else None)

    check = by_name(scoring_checks(params, {}, NOW))["row_count"]

    assert check.options == expected
    assert (check.kind, check.level, check.column) == ("row_count", "batch", None)


def test_only_the_id_must_be_unique() -> None:
    for checks in (training_checks(use_case(), NOW), scoring_checks(use_case(), PROFILE, NOW)):
        unique = [check for check in checks if check.kind == "unique"]
        assert [(c.name, c.column, c.level) for c in unique] == [
            ("unique:case_id", "case_id", "batch")
        ]


# --- declared checks ------------------------------------------------------------------------------


def test_not_null_for_the_id_and_each_required_column_once() -> None:
    params = use_case({"required": ["region", "case_id", "amount"]})

    scoring = [c.column for c in scoring_checks(params, {}, NOW) if c.kind == "not_null"]
    training = [c.column for c in training_checks(params, NOW) if c.kind == "not_null"]

    assert scoring == ["case_id", "region", "amount"]
    assert training == ["outcome", "case_id", "region", "amount"]


def test_columns_rules_become_between_and_in_set_checks() -> None:
    params = use_case(
        {
            "columns": {
                "amount": {"min": 0, "max": 100},
                "region": {"allowed": ["south", "north", "east"]},
            }
        }
    )

    checks = by_name(scoring_checks(params, {}, NOW))

    assert checks["between:amount"].options == {"min": 0.0, "max": 100.0}
    assert checks["allowed:region"].kind == "in_set"
    assert checks["allowed:region"].options == {"values": ["east", "north", "south"]}
    assert "between:region" not in checks and "allowed:amount" not in checks


def test_an_open_range_gives_a_one_sided_check() -> None:
    params = use_case({"columns": {"amount": {"max": 5}}})

    checks = by_name(scoring_checks(params, {}, NOW))

    assert checks["between:amount"].options == {"min": None, "max": 5.0}
    assert checks["between:amount"].describe() == "'amount' is at most 5"


def test_max_length_for_id_categorical_and_text_columns_only() -> None:
    params = use_case({"max_text_length": 64})

    checks = of_kind(scoring_checks(params, {}, NOW), "max_length")

    assert list(checks) == ["case_id", "region", "note"]
    assert {check.options["max"] for check in checks.values()} == {64}


@pytest.mark.parametrize(
    ("now", "allow_future_days", "latest"),
    [
        (NOW, 1, "2024-05-11T00:00:00"),
        (NOW, 0, "2024-05-10T00:00:00"),
        (NOW, 7, "2024-05-17T00:00:00"),
        (datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC), 1, "2025-01-01T00:00:00"),
        (datetime(2024, 2, 29, 0, 0, 1, tzinfo=UTC), 1, "2024-03-01T00:00:00"),
    ],
)
def test_not_future_allows_dates_up_to_the_start_of_today_plus_the_allowed_days(
    now: datetime, allow_future_days: int, latest: str
) -> None:
    params = use_case({"freshness": {"allow_future_days": allow_future_days}})

    check = by_name(scoring_checks(params, {}, now))["not_future:received"]

    assert (check.kind, check.level, check.column) == ("not_future", "row", "received")
    assert check.options == {"max": latest}
    assert pd.Timestamp(check.options["max"]).tzinfo is None  # dates in tables are naive


def test_not_future_uses_the_wall_clock_date_of_the_aware_now() -> None:
    evening = datetime(2024, 5, 10, 23, 0, tzinfo=timezone(timedelta(hours=-5)))

    check = by_name(scoring_checks(use_case(), {}, evening))["not_future:received"]

    assert check.options == {"max": "2024-05-11T00:00:00"}


def test_recent_is_checked_only_when_max_age_days_is_set() -> None:
    assert "recent:received" not in by_name(scoring_checks(use_case(), {}, NOW))

    params = use_case({"freshness": {"max_age_days": 30}})
    check = by_name(scoring_checks(params, {}, NOW))["recent:received"]

    assert (check.kind, check.level) == ("recent", "batch")
    assert check.options == {"min": "2024-04-10T00:00:00"}
    assert check.describe() == "the newest 'received' is on or after 2024-04-10T00:00:00"


def test_use_cases_without_date_features_have_no_date_checks() -> None:
    params = use_case(
        {"freshness": {"max_age_days": 3}},
        features={"numeric": ["amount"], "categorical": ["region"]},
    )

    kinds = {check.kind for check in training_checks(params, NOW)}

    assert not kinds & {"not_future", "recent"}


# --- the target -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expectations",
    [
        {},
        {"required": ["outcome"]},
        {"columns": {"outcome": {"allowed": ["bad", "good"]}}},
        {"required": ["outcome"], "columns": {"outcome": {"allowed": ["bad"]}}},
    ],
    ids=["plain", "required", "allowed", "required-and-allowed"],
)
def test_scoring_never_checks_the_target(expectations: dict[str, Any]) -> None:
    checks = scoring_checks(use_case(expectations), PROFILE, NOW)

    assert [check.name for check in checks if check.column == "outcome"] == []


def test_training_checks_the_target_is_present_typed_and_filled() -> None:
    params = use_case({"columns": {"outcome": {"allowed": ["bad", "good"]}}})

    names = [check.name for check in training_checks(params, NOW) if check.column == "outcome"]

    assert names == ["exists:outcome", "type:outcome", "not_null:outcome", "allowed:outcome"]


def test_check_names_are_unique_in_each_suite() -> None:
    params = use_case({"required": ["region"], "columns": {"amount": {"min": 0}}})

    for checks in (training_checks(params, NOW), scoring_checks(params, PROFILE, NOW)):
        names = [check.name for check in checks]
        assert len(names) == len(set(names))


def test_a_required_target_is_checked_for_nulls_once_in_training() -> None:
    params = use_case({"required": ["outcome"]})

    names = [check.name for check in training_checks(params, NOW)]

    assert names.count("not_null:outcome") == 1


# --- the training profile in the scoring suite ----------------------------------------------------


def test_trained_ranges_become_row_level_between_checks() -> None:
    checks = by_name(scoring_checks(use_case(), PROFILE, NOW))

    check = checks["trained_range:amount"]
    assert (check.kind, check.level, check.column) == ("between", "row", "amount")
    assert check.options == {"min": -5.0, "max": 15.0}
    assert check.describe() == "'amount' is between -5 and 15"


@pytest.mark.parametrize(("policy", "checked"), [("quarantine", True), ("accept", False)])
def test_trained_categories_are_checked_only_when_unseen_ones_are_quarantined(
    policy: str, checked: bool
) -> None:
    params = use_case({"unseen_categories": policy})

    checks = by_name(scoring_checks(params, PROFILE, NOW))

    assert ("trained_categories:region" in checks) is checked
    if checked:
        check = checks["trained_categories:region"]
        assert (check.kind, check.level) == ("in_set", "row")
        assert check.options == {"values": ["north", "south"]}
    assert "trained_range:amount" in checks  # ranges are checked under either policy


def test_an_empty_profile_adds_no_trained_checks() -> None:
    params = use_case({"unseen_categories": "quarantine"})

    names = [check.name for check in scoring_checks(params, {}, NOW)]

    assert not [name for name in names if name.startswith("trained_")]


def test_scoring_checks_the_declared_rules_and_the_profile_side_by_side() -> None:
    params = use_case({"columns": {"amount": {"min": 0}}})

    checks = by_name(scoring_checks(params, PROFILE, NOW))

    assert checks["between:amount"].options == {"min": 0.0, "max": None}
    assert checks["trained_range:amount"].options == {"min": -5.0, "max": 15.0}


# --- derive_profile -------------------------------------------------------------------------------


def training_frame(**columns: Any) -> pd.DataFrame:
    base: dict[str, Any] = {
        "amount": [0.0, 10.0, 4.0, 2.0],
        "region": ["north", "south", "north", None],
    }
    return pd.DataFrame({**base, **columns})


@pytest.mark.parametrize(
    ("tolerance", "expected"), [(0.5, [-5.0, 15.0]), (0.0, [0.0, 10.0]), (0.1, [-1.0, 11.0])]
)
def test_profile_ranges_are_widened_by_the_tolerance_times_the_span(
    tolerance: float, expected: list[float]
) -> None:
    params = use_case({"range_tolerance": tolerance})

    profile = derive_profile(training_frame(), params)

    assert profile["ranges"]["amount"] == pytest.approx(expected)


def test_profile_ranges_ignore_nan_and_infinity() -> None:
    amounts = [np.nan, 2.0, np.inf, 6.0, -np.inf, None]
    frame = pd.DataFrame({"amount": amounts, "region": ["a"] * 6})

    profile = derive_profile(frame, use_case({"range_tolerance": 0.25}))

    assert profile["ranges"] == {"amount": [1.0, 7.0]}


def test_profile_ranges_read_numbers_written_as_text() -> None:
    frame = training_frame(amount=["1", "3", "not a number", None])

    assert derive_profile(frame, use_case({"range_tolerance": 0}))["ranges"] == {
        "amount": [1.0, 3.0]
    }


def test_a_column_without_finite_numbers_has_no_range() -> None:
    frame = training_frame(amount=[np.nan, np.inf, None, -np.inf])

    assert derive_profile(frame, use_case())["ranges"] == {}


def test_a_constant_column_has_a_zero_width_range() -> None:
    frame = training_frame(amount=[3.0, 3.0, 3.0, 3.0])

    assert derive_profile(frame, use_case())["ranges"] == {"amount": [3.0, 3.0]}


def test_profile_categories_are_sorted_text_without_missing_values() -> None:
    frame = training_frame(region=[2.0, 1.0, np.nan, 2.0])

    profile = derive_profile(frame, use_case())

    assert profile["categories"] == {"region": ["1", "2"]}  # 1.0 is the code '1', as in scoring


def test_profile_records_the_unseen_categories_policy() -> None:
    profile = derive_profile(training_frame(), use_case({"unseen_categories": "quarantine"}))

    assert profile == {
        "ranges": {"amount": [-5.0, 15.0]},
        "categories": {"region": ["north", "south"]},
        "unseen_categories": "quarantine",
    }


@pytest.mark.parametrize(
    ("distinct", "profiled"),
    [(MAX_PROFILED_CATEGORIES, True), (MAX_PROFILED_CATEGORIES + 1, False)],
    ids=["at-the-limit", "above-the-limit"],
)
def test_columns_with_too_many_categories_are_not_profiled(distinct: int, profiled: bool) -> None:
    frame = pd.DataFrame(
        {"amount": np.arange(distinct, dtype=float), "region": [f"r{i}" for i in range(distinct)]}
    )

    profile = derive_profile(frame, use_case())

    assert ("region" in profile["categories"]) is profiled
    if profiled:
        assert len(profile["categories"]["region"]) == distinct


def test_a_derived_profile_feeds_the_scoring_suite() -> None:
    params = use_case({"unseen_categories": "quarantine", "range_tolerance": 0.5})

    checks = by_name(scoring_checks(params, derive_profile(training_frame(), params), NOW))

    assert checks["trained_range:amount"].options == {"min": -5.0, "max": 15.0}
    assert checks["trained_categories:region"].options == {"values": ["north", "south"]}


# --- levels and plain words -----------------------------------------------------------------------


def test_row_level_checks_quarantine_rows_and_the_rest_reject_the_batch() -> None:
    params = use_case(
        {
            "required": ["region"],
            "columns": {"amount": {"min": 0}, "region": {"allowed": ["north"]}},
            "freshness": {"max_age_days": 10},
            "unseen_categories": "quarantine",
        }
    )
    checks = [*training_checks(params, NOW), *scoring_checks(params, PROFILE, NOW)]

    assert {check.kind for check in checks} == ROW_KINDS | BATCH_KINDS
    for check in checks:
        expected = "row" if check.kind in ROW_KINDS else "batch"
        assert check.level == expected, check.name


@pytest.mark.parametrize(
    ("check", "words"),
    [
        (Check("e", "column_exists", "batch", "amount"), "column 'amount' is present"),
        (
            Check("t", "column_type", "batch", "amount", {"kind": "numeric", "types": []}),
            "column 'amount' holds numeric values",
        ),
        (Check("r", "row_count", "batch", None, {"min": 1, "max": 500}), "between 1 and 500 rows"),
        (
            Check("r", "row_count", "batch", None, {"min": 10, "max": None}),
            "between 10 and any rows",
        ),
        (Check("u", "unique", "batch", "case_id"), "values in 'case_id' are unique"),
        (Check("n", "not_null", "row", "region"), "'region' is not empty"),
        (
            Check("b", "between", "row", "amount", {"min": 0.0, "max": 2.5}),
            "'amount' is between 0 and 2.5",
        ),
        (Check("b", "between", "row", "amount", {"min": 1, "max": None}), "'amount' is at least 1"),
        (Check("b", "between", "row", "amount", {"min": None, "max": 9}), "'amount' is at most 9"),
        (
            Check("b", "between", "row", "amount", {"min": None, "max": None}),
            "'amount' is any value",
        ),
        (
            Check("s", "in_set", "row", "region", {"values": ["a", "b", "c"]}),
            "'region' is one of the 3 known values",
        ),
        (
            Check("f", "not_future", "row", "received", {"max": "2024-05-11T00:00:00"}),
            "'received' is not after 2024-05-11T00:00:00",
        ),
        (
            Check("c", "recent", "batch", "received", {"min": "2024-04-10T00:00:00"}),
            "the newest 'received' is on or after 2024-04-10T00:00:00",
        ),
        (
            Check("m", "max_length", "row", "note", {"max": 100}),
            "'note' is at most 100 characters long",
        ),
    ],
    ids=lambda value: value.kind if isinstance(value, Check) else None,
)
def test_describe_says_each_kind_of_check_in_plain_words(check: Check, words: str) -> None:
    assert check.describe() == words


def test_every_check_of_a_full_suite_can_be_described() -> None:
    params = use_case({"freshness": {"max_age_days": 5}, "columns": {"amount": {"max": 1}}})

    for check in [*training_checks(params, NOW), *scoring_checks(params, PROFILE, NOW)]:
        assert check.describe()


@pytest.mark.parametrize(
    ("low", "high", "words"),
    [
        (None, None, "any value"),
        (0, 100, "between 0 and 100"),
        (-1.5, None, "at least -1.5"),
        (None, 0.25, "at most 0.25"),
    ],
)
def test_bounds_in_words(low: float | None, high: float | None, words: str) -> None:
    assert bounds_in_words(low, high) == words


def test_checks_are_immutable() -> None:
    check = Check("n", "not_null", "row", "region")

    with pytest.raises(AttributeError):
        check.level = "batch"  # type: ignore[misc]
