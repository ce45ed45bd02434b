"""Params files: every project file loads, and every mistake names the file and the key."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.config import (
    AgencyParams,
    CapacityPolicy,
    ParamsError,
    UnknownAgencyError,
    UnknownDatasetError,
    UnknownUseCaseError,
    list_agencies,
    list_use_cases,
    load_params,
    load_use_case,
    parse_params_file,
)
from pipelines.paths import PACKAGE_ROOT

PROJECT_PARAMS = PACKAGE_ROOT / "params"


def minimal_params(agency: str = "demo") -> dict[str, Any]:
    """The smallest valid params: one binary use case with a time split."""
    return {
        "agency": agency,
        "datasets": {"cases": {"kind": "file", "reader": "csv", "path": "data/demo.csv"}},
        "use_cases": {
            "triage": {
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
                "lightgbm": {"num_iterations": 10},
                "split": {"method": "time", "date_column": "received"},
                "decision": {"kind": "threshold", "threshold": 0.5},
            }
        },
    }


def write_params(directory: Path, name: str, params: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def params_error(tmp_path: Path, params: dict[str, Any]) -> tuple[Path, str]:
    """Write params as demo.yaml, load it, and return the file and the error message."""
    path = write_params(tmp_path, "demo", params)
    with pytest.raises(ParamsError) as caught:
        load_params("demo", directory=tmp_path)
    return path, str(caught.value)


# --- the project's own params ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "params_file", sorted(PROJECT_PARAMS.glob("*.yaml")), ids=lambda path: path.name
)
def test_every_project_params_file_loads_and_names_its_agency(params_file: Path) -> None:
    params = load_params(params_file.stem, directory=PROJECT_PARAMS)

    assert params.agency == params_file.stem
    assert params.use_cases
    for name in params.use_cases:
        spec = params.use_case(name)
        assert spec.model_name == f"{params_file.stem}.{name}"


def test_project_has_the_documented_agencies() -> None:
    agencies = list_agencies(PROJECT_PARAMS)

    assert {"business-aid", "product-safety"} <= set(agencies)
    assert agencies == sorted(agencies)


# --- loading a valid file -------------------------------------------------------------------------


def test_minimal_params_load_with_documented_defaults(tmp_path: Path) -> None:
    write_params(tmp_path, "demo", minimal_params())

    params = load_params("demo", directory=tmp_path)

    use_case = params.use_cases["triage"]
    assert use_case.lightgbm.num_iterations == 10
    assert use_case.lightgbm.learning_rate == 0.05  # the documented default
    assert use_case.min_training_rows == 100
    assert use_case.features.min_category_count == 5
    assert use_case.split.validation_fraction == use_case.split.holdout_fraction == 0.15
    assert use_case.required_columns(with_target=True) == [
        "case_id",
        "amount",
        "region",
        "note",
        "received",
        "outcome",
    ]
    assert use_case.required_columns(with_target=False)[-1] == "received"


def test_list_agencies_lists_yaml_files_only_sorted(tmp_path: Path) -> None:
    write_params(tmp_path, "zeta", minimal_params("zeta"))
    write_params(tmp_path, "alpha", minimal_params("alpha"))
    (tmp_path / "notes.txt").write_text("not params")

    assert list_agencies(tmp_path) == ["alpha", "zeta"]
    assert list_agencies(tmp_path / "empty-but-missing") == []


def test_file_source_resolves_relative_paths_against_the_project_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENCYML_PROJECT_ROOT", str(tmp_path))
    write_params(tmp_path, "demo", minimal_params())
    params = load_params("demo", directory=tmp_path)
    source = params.datasets["cases"]

    assert source.resolved_path() == tmp_path.resolve() / "data" / "demo.csv"
    ingested = params.use_case("triage").data
    assert ingested.path == "data/ingested/demo/cases.parquet"
    assert ingested.resolved_path() == tmp_path.resolve() / ingested.path
    assert ingested.stage == "ingest@demo-cases"


def test_load_use_case_and_list_use_cases_read_the_project_root_params(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENCYML_PROJECT_ROOT", str(tmp_path))
    second = minimal_params("beta")
    second["use_cases"]["routing"] = copy.deepcopy(second["use_cases"]["triage"])
    write_params(tmp_path / "params", "beta", second)
    write_params(tmp_path / "params", "alpha", minimal_params("alpha"))

    spec = load_use_case("beta", "routing")

    assert (spec.agency, spec.name, spec.model_name) == ("beta", "routing", "beta.routing")
    assert [s.model_name for s in list_use_cases()] == [
        "alpha.triage",
        "beta.routing",
        "beta.triage",
    ]
    with pytest.raises(UnknownUseCaseError, match="Known use cases: routing, triage"):
        load_use_case("beta", "nope")
    with pytest.raises(UnknownAgencyError, match="Known agencies: alpha, beta"):
        load_use_case("gamma", "triage")


# --- unknown names --------------------------------------------------------------------------------


def test_unknown_agency_lists_the_known_agencies(tmp_path: Path) -> None:
    write_params(tmp_path, "beta", minimal_params("beta"))
    write_params(tmp_path, "alpha", minimal_params("alpha"))

    with pytest.raises(
        UnknownAgencyError, match=r"unknown agency 'gamma'.*Known agencies: alpha, beta"
    ):
        load_params("gamma", directory=tmp_path)


def test_unknown_agency_in_an_empty_directory_says_none_are_known(tmp_path: Path) -> None:
    with pytest.raises(UnknownAgencyError, match="Known agencies: none"):
        load_params("demo", directory=tmp_path)


def test_unknown_use_case_lists_the_known_use_cases(tmp_path: Path) -> None:
    params = minimal_params()
    params["use_cases"]["aardvark"] = copy.deepcopy(params["use_cases"]["triage"])
    write_params(tmp_path, "demo", params)
    loaded = load_params("demo", directory=tmp_path)

    with pytest.raises(
        UnknownUseCaseError,
        match=re.escape(
            "agency 'demo' has no use case 'routing'. Known use cases: aardvark, triage"
        ),
    ):
        loaded.use_case("routing")


# --- malformed files ------------------------------------------------------------------------------


def test_bad_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text("agency: demo\nuse_cases: [unclosed\n", encoding="utf-8")

    with pytest.raises(ParamsError, match=re.escape(str(path)) + ": not valid YAML"):
        load_params("demo", directory=tmp_path)


def test_non_utf8_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "demo.yaml"
    path.write_bytes(b"agency: d\xffmo\n")

    with pytest.raises(ParamsError, match=re.escape(str(path)) + ": cannot read the file"):
        load_params("demo", directory=tmp_path)


@pytest.mark.parametrize(  # an empty file says so: tests/unit/data/test_newuser_onboarding.py
    "content", ["- agency\n- use_cases\n", "just a sentence\n"], ids=["list", "scalar"]
)
def test_file_that_is_not_a_mapping_is_rejected(tmp_path: Path, content: str) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(ParamsError, match=re.escape(str(path)) + ": expected a mapping"):
        load_params("demo", directory=tmp_path)


def test_agency_key_must_match_the_file_name(tmp_path: Path) -> None:
    path = write_params(tmp_path, "demo", minimal_params("other"))

    with pytest.raises(
        ParamsError,
        match=re.escape(f"{path}: key 'agency' is 'other' but the file is named 'demo.yaml'"),
    ):
        load_params("demo", directory=tmp_path)
    # parsing alone does not look at the file name
    assert parse_params_file(path).agency == "other"


# --- unknown keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "key"),
    [
        ((), "colour"),
        (("use_cases", "triage"), "targett"),
        (("use_cases", "triage", "lightgbm"), "learning_rat"),
        (("use_cases", "triage", "features"), "numerics"),
    ],
    ids=["top-level", "use-case", "lightgbm", "features"],
)
def test_unknown_keys_are_rejected_naming_file_and_dotted_key(
    tmp_path: Path, where: tuple[str, ...], key: str
) -> None:
    params = minimal_params()
    section = params
    for part in where:
        section = section[part]
    section[key] = 1

    path, message = params_error(tmp_path, params)

    dotted = ".".join([*where, key])
    assert message.startswith(f"{path}: 1 invalid setting(s):")
    assert f"  - {dotted}: unknown key; check its spelling" in message


def test_unknown_key_inside_the_split_names_the_key_as_written(tmp_path: Path) -> None:
    params = minimal_params()
    params["use_cases"]["triage"]["split"]["seeds"] = 1

    _, message = params_error(tmp_path, params)

    assert "  - use_cases.triage.split.seeds: unknown key" in message


def test_every_problem_in_a_file_is_listed(tmp_path: Path) -> None:
    params = minimal_params()
    params["colour"] = "blue"
    params["use_cases"]["triage"]["lightgbm"]["num_leaves"] = 1
    params["use_cases"]["triage"]["lightgbm"]["learning_rate"] = 0

    path, message = params_error(tmp_path, params)

    assert message.startswith(f"{path}: 3 invalid setting(s):")
    assert "  - colour: unknown key" in message
    assert "  - use_cases.triage.lightgbm.num_leaves: Input should be greater than 1" in message
    assert "  - use_cases.triage.lightgbm.learning_rate: Input should be greater than 0" in message


# --- consistency rules ----------------------------------------------------------------------------


def _drop_positive_class(case: dict[str, Any]) -> None:
    del case["positive_class"]


def _multiclass_with_capacity(case: dict[str, Any]) -> None:
    del case["positive_class"]
    case["task"] = "multiclass"
    case["decision"] = {"kind": "capacity", "top_k": 10}


def _multiclass_with_positive_class(case: dict[str, Any]) -> None:
    case["task"] = "multiclass"


def _split_on_undeclared_date(case: dict[str, Any]) -> None:
    case["split"]["date_column"] = "closed"


def _split_on_numeric_column(case: dict[str, Any]) -> None:
    case["split"]["date_column"] = "amount"


def _column_in_two_kinds(case: dict[str, Any]) -> None:
    case["features"]["categorical"] = ["region", "amount"]


def _id_as_feature(case: dict[str, Any]) -> None:
    case["features"]["numeric"] = ["amount", "case_id"]


def _target_as_feature(case: dict[str, Any]) -> None:
    case["features"]["categorical"] = ["region", "outcome"]


def _no_features(case: dict[str, Any]) -> None:
    case["features"] = {}
    case["split"] = {"method": "random"}


@pytest.mark.parametrize(
    ("break_it", "key", "message"),
    [
        (_drop_positive_class, "use_cases.triage", "a binary use case needs 'positive_class'"),
        (
            _multiclass_with_capacity,
            "use_cases.triage",
            "a capacity policy applies to binary use cases only",
        ),
        (
            _multiclass_with_positive_class,
            "use_cases.triage",
            "'positive_class' applies to binary use cases only",
        ),
        (
            _split_on_undeclared_date,
            "use_cases.triage",
            "split.date_column 'closed' must be listed in features.date",
        ),
        (
            _split_on_numeric_column,
            "use_cases.triage",
            "split.date_column 'amount' must be listed in features.date",
        ),
        (
            _column_in_two_kinds,
            "use_cases.triage.features",
            "columns listed under more than one kind: ['amount']",
        ),
        (
            _id_as_feature,
            "use_cases.triage",
            "'case_id' is the id or target and cannot also be a feature",
        ),
        (
            _target_as_feature,
            "use_cases.triage",
            "'outcome' is the id or target and cannot also be a feature",
        ),
        (_no_features, "use_cases.triage.features", "declare at least one feature column"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_inconsistent_use_case_is_rejected(
    tmp_path: Path, break_it: Any, key: str, message: str
) -> None:
    params = minimal_params()
    break_it(params["use_cases"]["triage"])

    path, text = params_error(tmp_path, params)

    assert text.startswith(str(path))
    assert f"  - {key}: Value error, {message}" in text


def test_multiclass_with_a_threshold_policy_is_valid(tmp_path: Path) -> None:
    params = minimal_params()
    case = params["use_cases"]["triage"]
    del case["positive_class"]
    case["task"] = "multiclass"
    write_params(tmp_path, "demo", params)

    loaded = load_params("demo", directory=tmp_path).use_cases["triage"]

    assert loaded.task == "multiclass" and loaded.positive_class is None
    assert loaded.decision.fallback_label == "manual_review"


def test_binary_capacity_policy_is_valid(tmp_path: Path) -> None:
    params = minimal_params()
    params["use_cases"]["triage"]["decision"] = {"kind": "capacity", "top_k": 20}
    write_params(tmp_path, "demo", params)

    decision = load_params("demo", directory=tmp_path).use_cases["triage"].decision

    assert isinstance(decision, CapacityPolicy) and decision.top_k == 20


# --- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("agency", ["Demo", "demo_agency", "1demo", "demo-", "de--mo"])
def test_agency_must_be_a_slug(tmp_path: Path, agency: str) -> None:
    path, message = params_error(tmp_path, minimal_params(agency))

    assert message.startswith(f"{path}: 1 invalid setting(s):")
    assert "  - agency: String should match pattern" in message


@pytest.mark.parametrize("name", ["Risk-Triage", "risk_triage", "risk triage", "-triage"])
def test_use_case_names_must_be_slugs(tmp_path: Path, name: str) -> None:
    params = minimal_params()
    params["use_cases"][name] = params["use_cases"].pop("triage")

    path, message = params_error(tmp_path, params)

    assert message.startswith(str(path))
    assert "use-case names must be lower-case slugs like 'risk-triage'" in message
    assert repr(name) in message


def test_slugs_with_digits_and_hyphens_are_accepted(tmp_path: Path) -> None:
    params = minimal_params("agency-2")
    params["use_cases"]["risk-triage-v2"] = params["use_cases"].pop("triage")
    write_params(tmp_path, "agency-2", params)

    assert list(load_params("agency-2", directory=tmp_path).use_cases) == ["risk-triage-v2"]


def test_an_agency_needs_at_least_one_use_case(tmp_path: Path) -> None:
    path, message = params_error(tmp_path, {"agency": "demo", "use_cases": {}})

    assert message.startswith(str(path))
    assert "  - use_cases: Dictionary should have at least 1 item" in message


# --- value constraints ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("lightgbm", "learning_rate", 0),
        ("lightgbm", "learning_rate", -0.1),
        ("lightgbm", "learning_rate", 1.5),
        ("lightgbm", "num_iterations", 0),
        ("lightgbm", "num_leaves", 1),
        ("lightgbm", "feature_fraction", 0),
        ("lightgbm", "num_threads", 0),
        ("features", "min_category_count", 0),
        ("features", "text_hash_features", 8),
        ("features", "text_ngram_max", 4),
        (None, "min_training_rows", 9),
        (None, "task", "regression"),
        ("split", "holdout_fraction", 0.5),
        ("decision", "threshold", 1.2),
    ],
)
def test_out_of_range_values_name_the_dotted_key(
    tmp_path: Path, section: str | None, key: str, value: Any
) -> None:
    params = minimal_params()
    case = params["use_cases"]["triage"]
    (case[section] if section else case)[key] = value

    path, message = params_error(tmp_path, params)

    dotted = ".".join(part for part in ("use_cases", "triage", section, key) if part)
    assert message.startswith(f"{path}: 1 invalid setting(s):")
    assert f"  - {dotted}: " in message


def test_generator_rows_error_names_the_key_as_written(tmp_path: Path) -> None:
    params = minimal_params()
    params["datasets"]["cases"] = {
        "kind": "generator",
        "generator": "business-aid",
        "rows": 0,
    }

    _, message = params_error(tmp_path, params)

    # pydantic says 'datasets.cases.generator.rows', as if rows sat under generator:
    assert "  - datasets.cases.rows: Input should be greater than 0" in message


def test_a_use_case_must_train_on_a_declared_dataset(tmp_path: Path) -> None:
    params = minimal_params()
    params["use_cases"]["triage"]["dataset"] = "casez"

    _, message = params_error(tmp_path, params)

    assert "use case 'triage' trains on dataset 'casez'" in message
    assert "(declared: cases)" in message


def test_dataset_names_must_be_slugs_and_unknown_ones_list_the_known(tmp_path: Path) -> None:
    params = minimal_params()
    params["datasets"]["Bad Name"] = params["datasets"]["cases"]
    _, message = params_error(tmp_path, params)
    assert "dataset names must be lower-case slugs" in message and "Bad Name" in message

    write_params(tmp_path, "demo", minimal_params())
    with pytest.raises(UnknownDatasetError, match=r"no dataset 'other'\. Known datasets: cases"):
        load_params("demo", directory=tmp_path).dataset("other")


def test_capacity_top_k_must_be_positive(tmp_path: Path) -> None:
    params = minimal_params()
    params["use_cases"]["triage"]["decision"] = {"kind": "capacity", "top_k": 0}

    path, message = params_error(tmp_path, params)

    assert message.startswith(str(path))
    assert "top_k: Input should be greater than 0" in message


def test_unknown_split_method_is_rejected(tmp_path: Path) -> None:
    params = minimal_params()
    params["use_cases"]["triage"]["split"]["method"] = "kfold"

    path, message = params_error(tmp_path, params)

    assert message.startswith(str(path))
    assert "  - use_cases.triage.split: Input tag 'kfold' found using 'method'" in message


def test_params_are_immutable(tmp_path: Path) -> None:
    write_params(tmp_path, "demo", minimal_params())
    params = load_params("demo", directory=tmp_path)

    with pytest.raises(ValueError, match="frozen"):
        params.agency = "other"  # type: ignore[misc]
    assert isinstance(params, AgencyParams)


# --- the expectations section ---------------------------------------------------------------------


def with_expectations(expectations: dict[str, Any]) -> dict[str, Any]:
    params = minimal_params()
    params["use_cases"]["triage"]["expectations"] = expectations
    return params


def test_expectations_default_to_the_documented_values(tmp_path: Path) -> None:
    write_params(tmp_path, "demo", minimal_params())

    expectations = load_params("demo", directory=tmp_path).use_cases["triage"].expectations

    assert expectations.required == [] and expectations.columns == {}
    assert (expectations.batch_rows.min, expectations.batch_rows.max) == (1, 10_000_000)
    assert expectations.freshness.allow_future_days == 1
    assert expectations.freshness.max_age_days is None
    assert expectations.unseen_categories == "accept"
    assert expectations.range_tolerance == 0.5
    assert expectations.max_quarantine_fraction == 0.05
    assert expectations.max_text_length == 10_000


def test_a_full_expectations_section_loads(tmp_path: Path) -> None:
    params = with_expectations(
        {
            "required": ["received", "region"],
            "columns": {
                "amount": {"min": 0, "max": 1000},
                "region": {"allowed": ["north", "south"]},
                "outcome": {"allowed": ["bad", "good"]},
            },
            "batch_rows": {"min": 5, "max": 5},
            "freshness": {"allow_future_days": 0, "max_age_days": 30},
            "unseen_categories": "quarantine",
            "range_tolerance": 0,
            "max_quarantine_fraction": 1,
            "max_text_length": 200,
        }
    )
    write_params(tmp_path, "demo", params)

    expectations = load_params("demo", directory=tmp_path).use_cases["triage"].expectations

    assert expectations.columns["amount"].min == 0 and expectations.columns["amount"].max == 1000
    assert expectations.columns["region"].allowed == ["north", "south"]
    assert expectations.batch_rows.min == expectations.batch_rows.max == 5
    assert expectations.freshness.max_age_days == 30
    assert expectations.unseen_categories == "quarantine"


@pytest.mark.parametrize(
    ("expectations", "dotted"),
    [
        ({"colums": {}}, "expectations.colums"),
        ({"freshness": {"max_age": 3}}, "expectations.freshness.max_age"),
        ({"columns": {"amount": {"minimum": 3}}}, "expectations.columns.amount.minimum"),
        ({"batch_rows": {"min": 1, "maximum": 3}}, "expectations.batch_rows.maximum"),
    ],
    ids=["section", "freshness", "column-rule", "batch-rows"],
)
def test_unknown_expectations_keys_are_rejected_naming_the_dotted_key(
    tmp_path: Path, expectations: dict[str, Any], dotted: str
) -> None:
    path, message = params_error(tmp_path, with_expectations(expectations))

    assert message.startswith(f"{path}: 1 invalid setting(s):")
    assert f"  - use_cases.triage.{dotted}: unknown key; check its spelling" in message


def test_a_column_rule_with_min_above_max_is_rejected(tmp_path: Path) -> None:
    params = with_expectations({"columns": {"amount": {"min": 5, "max": 1}}})

    path, message = params_error(tmp_path, params)

    assert message.startswith(str(path))
    assert (
        "  - use_cases.triage.expectations.columns.amount: Value error, "
        "max (1.0) is below min (5.0)"
    ) in message


def test_a_column_rule_with_equal_bounds_is_valid(tmp_path: Path) -> None:
    params = with_expectations({"columns": {"amount": {"min": 3, "max": 3}}})
    write_params(tmp_path, "demo", params)

    columns = load_params("demo", directory=tmp_path).use_cases["triage"].expectations.columns

    assert (columns["amount"].min, columns["amount"].max) == (3, 3)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"received": {"max": 1}}, "columns.received.min/max apply to numeric features only"),
        ({"region": {"min": 1}}, "columns.region.min/max apply to numeric features only"),
        ({"amount": {"allowed": ["1"]}}, "columns.amount.allowed applies to categorical"),
        ({"case_id": {"allowed": ["c-1"]}}, "columns.case_id.allowed applies to categorical"),
    ],
    ids=["range-on-date", "range-on-category", "set-on-number", "set-on-id"],
)
def test_a_rule_that_does_not_fit_its_column_kind_is_rejected(
    tmp_path: Path, rule: dict[str, Any], message: str
) -> None:
    _, error = params_error(tmp_path, with_expectations({"columns": rule}))

    assert message in error


def test_an_empty_allowed_list_is_rejected(tmp_path: Path) -> None:
    params = with_expectations({"columns": {"region": {"allowed": []}}})

    _, message = params_error(tmp_path, params)

    assert (
        "  - use_cases.triage.expectations.columns.region.allowed: List should have at least 1"
        in (message)
    )


def test_batch_rows_with_max_below_min_is_rejected(tmp_path: Path) -> None:
    params = with_expectations({"batch_rows": {"min": 10, "max": 5}})

    path, message = params_error(tmp_path, params)

    assert message.startswith(str(path))
    assert (
        "  - use_cases.triage.expectations.batch_rows: Value error, max (5) is below min (10)"
    ) in message


@pytest.mark.parametrize(
    ("expectations", "listed"),
    [
        ({"required": ["amount", "nope"]}, "['nope']"),
        ({"columns": {"zzz": {"min": 1}}}, "['zzz']"),
        (
            {"required": ["nope"], "columns": {"amount": {"min": 0}, "zzz": {"min": 1}}},
            "['nope', 'zzz']",
        ),
    ],
    ids=["required", "columns", "both"],
)
def test_expectations_on_unknown_columns_are_rejected_listing_them(
    tmp_path: Path, expectations: dict[str, Any], listed: str
) -> None:
    path, message = params_error(tmp_path, with_expectations(expectations))

    assert message.startswith(f"{path}: 1 invalid setting(s):")
    assert (
        "  - use_cases.triage: Value error, expectations name columns that are neither id, "
        f"target nor features: {listed}"
    ) in message


def test_expectations_may_name_the_id_and_the_target(tmp_path: Path) -> None:
    params = with_expectations(
        {"required": ["case_id", "outcome"], "columns": {"outcome": {"allowed": ["bad"]}}}
    )
    write_params(tmp_path, "demo", params)

    expectations = load_params("demo", directory=tmp_path).use_cases["triage"].expectations

    assert expectations.required == ["case_id", "outcome"]


@pytest.mark.parametrize(
    ("fraction", "problem"),
    [(-0.1, "greater than or equal to 0"), (1.5, "less than or equal to 1")],
)
def test_max_quarantine_fraction_outside_zero_to_one_is_rejected(
    tmp_path: Path, fraction: float, problem: str
) -> None:
    params = with_expectations({"max_quarantine_fraction": fraction})

    _, message = params_error(tmp_path, params)

    assert (
        f"  - use_cases.triage.expectations.max_quarantine_fraction: Input should be {problem}"
        in (message)
    )


@pytest.mark.parametrize("fraction", [0, 0.1, 1])
def test_max_quarantine_fraction_at_or_inside_the_bounds_is_valid(
    tmp_path: Path, fraction: float
) -> None:
    write_params(tmp_path, "demo", with_expectations({"max_quarantine_fraction": fraction}))

    loaded = load_params("demo", directory=tmp_path).use_cases["triage"]

    assert loaded.expectations.max_quarantine_fraction == fraction


@pytest.mark.parametrize(
    ("expectations", "dotted", "problem"),
    [
        ({"batch_rows": {"min": -1}}, "batch_rows.min", "greater than or equal to 0"),
        ({"batch_rows": {"max": 0}}, "batch_rows.max", "greater than 0"),
        ({"freshness": {"allow_future_days": -1}}, "freshness.allow_future_days", "greater"),
        ({"freshness": {"max_age_days": 0}}, "freshness.max_age_days", "greater than 0"),
        ({"range_tolerance": -0.5}, "range_tolerance", "greater than or equal to 0"),
        ({"max_text_length": 0}, "max_text_length", "greater than 0"),
        ({"unseen_categories": "drop"}, "unseen_categories", "'accept' or 'quarantine'"),
    ],
)
def test_out_of_range_expectations_name_the_dotted_key(
    tmp_path: Path, expectations: dict[str, Any], dotted: str, problem: str
) -> None:
    _, message = params_error(tmp_path, with_expectations(expectations))

    assert f"  - use_cases.triage.expectations.{dotted}: Input should be" in message
    assert problem in message


@pytest.mark.parametrize(
    "params_file", sorted(PROJECT_PARAMS.glob("*.yaml")), ids=lambda path: path.name
)
def test_project_params_declare_expectations_on_their_own_columns(params_file: Path) -> None:
    params = load_params(params_file.stem, directory=PROJECT_PARAMS)

    for name, use_case in params.use_cases.items():
        expectations = use_case.expectations
        features = use_case.features.all_columns()
        assert expectations.required, f"{name} declares no required columns"
        assert set(expectations.required) <= set(features), name
        assert set(expectations.columns) <= {use_case.id_column, *features}, name
        assert 0 < expectations.max_quarantine_fraction < 1
        for column, rule in expectations.columns.items():
            if rule.allowed is not None:
                assert column in use_case.features.categorical, (name, column)


# --- calibration, slices, promotion, target precision ------------------------------------


def test_registry_sections_default_to_no_calibration_no_slices_and_an_automatic_gate(
    tmp_path: Path,
) -> None:
    write_params(tmp_path, "demo", minimal_params())
    use_case = load_params("demo", directory=tmp_path).use_cases["triage"]

    assert use_case.calibration.method == "none"
    assert use_case.slices.columns == [] and use_case.slices.max_recall_ratio is None
    assert use_case.primary_metric == "roc_auc"
    assert use_case.promotion.min_improvement == 0 and not use_case.promotion.require_approval


@pytest.mark.parametrize(
    ("section", "value", "expected"),
    [
        ("promotion", {"primary_metric": "macro_f1"}, "does not report; use one of roc_auc"),
        ("promotion", {"floors": {"auc": 0.7}}, "promotion names metric 'auc'"),
        ("promotion", {"min_improvement": -0.1}, "promotion.min_improvement"),
        ("calibration", {"method": "platt"}, "calibration.method"),
        ("slices", {"columns": ["outcome"]}, "cannot include the target 'outcome'"),
        ("slices", {"max_recall_ratio": 0.9}, "slices.max_recall_ratio"),
        ("decision", {"kind": "target_precision", "precision": 0}, "decision.precision"),
        (
            "decision",
            {"kind": "target_precision", "precision": 0.8, "threshold": 0.4},
            "is set by training",
        ),
    ],
)
def test_bad_registry_settings_are_named(tmp_path: Path, section: str, value, expected) -> None:
    params = minimal_params()
    params["use_cases"]["triage"][section] = value

    _, message = params_error(tmp_path, params)

    assert expected in message


def test_target_precision_is_binary_only(tmp_path: Path) -> None:
    params = minimal_params()
    case = params["use_cases"]["triage"]
    case.update(task="multiclass", positive_class=None)
    case["decision"] = {"kind": "target_precision", "precision": 0.8}
    del case["positive_class"]

    _, message = params_error(tmp_path, params)

    assert "a target_precision policy applies to binary use cases only" in message


# --- orchestration and execution ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "value", "key", "message"),
    [
        ("orchestration", {"train_cron": "61 * * * *"}, "orchestration", "is not a 5-field cron"),
        ("orchestration", {"train_cron": "H 3 * * *"}, "orchestration", "is not a 5-field cron"),
        ("orchestration", {"timezone": "Mars/Olympus"}, "orchestration", "not an IANA time zone"),
        (
            "orchestration",
            {"inbox_poll_seconds": 1},
            "orchestration.inbox_poll_seconds",
            "greater than or equal to 5",
        ),
        (
            "orchestration",
            {"train_timeout_minutes": 0},
            "orchestration.train_timeout_minutes",
            "greater than 0",
        ),
        (
            "execution",
            {"scheduler": "tcp://10.0.0.5:8786"},
            "execution",
            "execution.scheduler applies to engine 'dask' only",
        ),
        (
            "execution",
            {"engine": "dask", "scheduler": "10.0.0.5:8786"},
            "execution",
            "is not a Dask address like 'tcp://10.0.0.5:8786'",
        ),
        ("execution", {"engine": "spark"}, "execution.engine", "Input should be 'local' or"),
    ],
)
def test_bad_orchestration_or_execution_names_the_key(
    tmp_path: Path, section: str, value: dict[str, Any], key: str, message: str
) -> None:
    params = minimal_params()
    params["use_cases"]["triage"][section] = value

    _, text = params_error(tmp_path, params)

    assert f"  - use_cases.triage.{key}: " in text
    assert message in text


def test_orchestration_and_execution_defaults_and_a_dask_scheduler(tmp_path: Path) -> None:
    params = minimal_params()
    case = params["use_cases"]["triage"]
    case["orchestration"] = {"train_cron": "0 2 * * 1", "timezone": "Europe/Copenhagen"}
    case["execution"] = {"engine": "dask", "scheduler": "tcp://scheduler:8786"}
    write_params(tmp_path, "demo", params)

    loaded = load_params("demo", directory=tmp_path).use_cases["triage"]

    assert loaded.orchestration.train_cron == "0 2 * * 1"
    assert loaded.orchestration.inbox_poll_seconds == 60
    assert loaded.orchestration.score_concurrency == 2
    assert loaded.execution.scheduler == "tcp://scheduler:8786"
    assert minimal_use_case_defaults(tmp_path).execution.engine == "local"


def minimal_use_case_defaults(tmp_path: Path) -> Any:
    write_params(tmp_path / "defaults", "demo", minimal_params())
    return load_params("demo", directory=tmp_path / "defaults").use_cases["triage"]
