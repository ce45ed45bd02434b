"""Date columns are read one way for the whole column: a declared format or day-first when the
params say so, ISO 8601 otherwise, and a column that reads differently day-first and month-first
is an error that names the column, an example and the setting to add."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from pydantic import ValidationError

from pipelines.config import Features, UseCase
from pipelines.data.columns import (
    DAYFIRST,
    AmbiguousDatesError,
    FeatureError,
    conform_columns,
    parse_dates,
)
from pipelines.modeling.features import FeatureTransform, fit_transform_spec


def day(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.mark.parametrize(
    ("values", "date_format", "expected"),
    [
        (["2024-03-04", "2024-12-31"], None, ["2024-03-04", "2024-12-31"]),
        (["03/04/2024", "25/04/2024"], DAYFIRST, ["2024-04-03", "2024-04-25"]),
        (["03/04/2024", "25/04/2024"], "%d/%m/%Y", ["2024-04-03", "2024-04-25"]),
        (["04/03/2024", "12/31/2024"], "%m/%d/%Y", ["2024-04-03", "2024-12-31"]),
        (["25/04/2024", "31/12/2023"], None, ["2024-04-25", "2023-12-31"]),  # one way only
        (["May 3, 2024", "Jan 1 2023"], None, ["2024-05-03", "2023-01-01"]),
    ],
)
def test_dates_are_read_one_way_for_the_whole_column(values, date_format, expected) -> None:
    parsed = parse_dates(pd.Series(values), "received", date_format)
    assert parsed.tolist() == [day(text) for text in expected]


def test_a_column_that_reads_both_ways_differently_is_an_error_that_says_what_to_set() -> None:
    values = pd.Series(["25/04/2024", "03/04/2024", None])
    with pytest.raises(AmbiguousDatesError) as raised:
        parse_dates(values, "received")
    message = str(raised.value)
    assert "column 'received'" in message and "'03/04/2024'" in message
    assert "2024-03-04 or 2024-04-03" in message
    assert "features.date_formats: {received: '%d/%m/%Y'}" in message
    assert "features.dayfirst: true" in message


def test_values_that_are_not_dates_stay_missing_and_conform_reports_them() -> None:
    frame = pd.DataFrame({"received": ["03/04/2024", "not a date"]})
    assert parse_dates(frame["received"], "received", "%d/%m/%Y").isna().tolist() == [False, True]
    _, problems = conform_columns(frame, {"received": "date"}, {"received": "%d/%m/%Y"})
    assert "1 value(s) that are not dates" in problems["received"]


def test_conform_reads_each_date_column_with_its_own_format() -> None:
    frame = pd.DataFrame({"a": ["03/04/2024"], "b": ["03/04/2024"], "c": ["2024-04-03"]})
    kinds = {"a": "date", "b": "date", "c": "date"}
    conformed, problems = conform_columns(frame, kinds, {"a": DAYFIRST, "b": "%m/%d/%Y"})
    assert problems == {}
    assert conformed["a"][0] == pd.Timestamp("2024-04-03")
    assert conformed["b"][0] == pd.Timestamp("2024-03-04")
    assert conformed["c"][0] == pd.Timestamp("2024-04-03")
    _, problems = conform_columns(frame, kinds)  # nothing declared: a and b are ambiguous
    assert set(problems) == {"a", "b"} and "day-first and month-first" in problems["a"]


def test_datetime_columns_pass_through() -> None:
    values = pd.Series(pd.to_datetime(["2024-04-03", "2024-04-25"]))
    assert parse_dates(values, "received", "%d/%m/%Y").tolist() == [
        day("2024-04-03"),
        day("2024-04-25"),
    ]


def test_the_transform_reads_dates_as_training_declared_them_and_keeps_it_in_the_model() -> None:
    features = Features(date=["received"], date_formats={"received": "%d/%m/%Y"})
    frame = pd.DataFrame({"received": ["03/04/2024", "25/12/2023"]})
    transform = fit_transform_spec(frame, features)
    assert transform.date_formats == {"received": "%d/%m/%Y"}
    month, _weekday, day_of_month = transform.transform(frame).T
    assert month.tolist() == [4.0, 12.0] and day_of_month.tolist() == [3.0, 25.0]
    restored = FeatureTransform.from_dict(json.loads(json.dumps(transform.to_dict())))
    assert restored == transform
    older = {k: v for k, v in transform.to_dict().items() if k != "date_formats"}
    assert FeatureTransform.from_dict(older).date_formats == {}  # a model logged before


def test_dayfirst_applies_to_date_columns_without_a_format() -> None:
    features = Features(date=["a", "b"], dayfirst=True, date_formats={"b": "%Y%m%d"})
    assert features.date_format_of() == {"a": DAYFIRST, "b": "%Y%m%d"}


def test_a_date_format_without_directives_is_refused() -> None:
    with pytest.raises(ValidationError, match="not a strftime format"):
        Features(date=["a"], date_formats={"a": "dd/mm/yyyy"})


def test_a_date_format_for_a_column_that_is_not_a_date_is_refused() -> None:
    declared = {
        "dataset": "cases",
        "id_column": "id",
        "target": "y",
        "task": "binary",
        "positive_class": "yes",
        "features": {"numeric": ["x"], "date_formats": {"x": "%d/%m/%Y"}},
        "split": {"method": "random"},
        "decision": {"kind": "threshold", "threshold": 0.5},
    }
    with pytest.raises(ValidationError, match=r"date_formats names \['x'\]"):
        UseCase.model_validate(declared)


def test_feature_error_is_what_an_ambiguous_column_is_too() -> None:
    assert issubclass(AmbiguousDatesError, FeatureError)
