"""The feature transform: vocabularies from training rows only, stable shapes, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from pipelines.config import Features
from pipelines.data.columns import FeatureError, numeric_column
from pipelines.modeling.features import (
    FeatureTransform,
    category_codes,
    fit_transform_spec,
    frequent_categories,
)


def training_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, np.nan],
            "region": ["north", "north", "north", "south", "south", "east", None],
            "note": ["red apple", "green pear", "red pear", "", None, "apple", "pear"],
            "received": pd.to_datetime(
                [
                    "2024-03-15",
                    "2024-01-01",
                    "2024-12-31",
                    None,
                    "2024-06-02",
                    "2024-06-03",
                    "2024-06-04",
                ]
            ),
        }
    )


def spec(**overrides: object) -> Features:
    declared = {
        "numeric": ["amount"],
        "categorical": ["region"],
        "date": ["received"],
        "min_category_count": 2,
        **overrides,
    }
    return Features.model_validate(declared)


def test_categories_are_learned_from_training_rows_most_frequent_first() -> None:
    transform = fit_transform_spec(training_rows(), spec())

    # north 3x, south 2x; east once is rarer than min_category_count=2; None is not a value
    assert transform.categories == {"region": ["north", "south"]}


def test_rare_unseen_and_missing_categories_are_coded_apart_from_known_ones() -> None:
    transform = fit_transform_spec(training_rows(), spec())
    batch = pd.DataFrame(
        {
            "amount": [1.0] * 5,
            "region": ["south", "north", "east", "mars", None],
            "received": pd.to_datetime(["2024-01-01"] * 5),
        }
    )

    codes = transform.transform(batch)[:, 1]

    other = 2.0  # one code past the two known values, shared by rare and unseen values
    np.testing.assert_array_equal(codes[:4], [1.0, 0.0, other, other])
    assert np.isnan(codes[4])


def test_scoring_rows_never_change_the_vocabulary() -> None:
    transform = fit_transform_spec(training_rows(), spec())
    crowded = pd.DataFrame(
        {
            "amount": [1.0] * 10,
            "region": ["mars"] * 10,
            "received": pd.to_datetime(["2024-01-01"] * 10),
        }
    )

    assert set(transform.transform(crowded)[:, 1]) == {2.0}
    assert transform.categories == {"region": ["north", "south"]}


def test_frequency_ties_are_broken_alphabetically() -> None:
    values = pd.Series(["b", "a", "c", "b", "a", "c", "c", "d"])

    assert frequent_categories(values, min_count=2) == ["c", "a", "b"]
    assert frequent_categories(values, min_count=4) == []


def test_category_codes_of_known_values_follow_the_vocabulary_order() -> None:
    codes = category_codes(pd.Series(["y", None, "x", "z"]), ["x", "y"])

    np.testing.assert_array_equal(codes, [1.0, np.nan, 0.0, 2.0])


def test_dense_transform_without_text_has_one_column_per_feature_and_three_per_date() -> None:
    rows = training_rows()
    transform = fit_transform_spec(rows, spec())

    features = transform.transform(rows)

    assert isinstance(features, np.ndarray) and features.dtype == np.float32
    assert features.shape == (7, 1 + 1 + 3)
    assert transform.feature_names == [
        "amount",
        "region",
        "received__month",
        "received__weekday",
        "received__day",
    ]
    assert transform.categorical_indices == [1]
    np.testing.assert_array_equal(features[:, 0][:6], [10, 20, 30, 40, 50, 60])
    assert np.isnan(features[6, 0])
    # 2024-03-15 was a Friday (weekday 4); the undated row has no calendar parts
    np.testing.assert_array_equal(features[0, 2:], [3, 4, 15])
    assert np.isnan(features[3, 2:]).all()


@pytest.mark.parametrize("hash_width", [16, 64])
def test_text_columns_make_a_sparse_matrix_with_a_fixed_hash_width(hash_width: int) -> None:
    rows = training_rows()
    transform = fit_transform_spec(rows, spec(text=["note"], text_hash_features=hash_width))

    features = transform.transform(rows)

    assert sp.isspmatrix_csr(features) and features.dtype == np.float32
    assert features.shape == (7, 5 + hash_width)
    assert len(transform.feature_names) == features.shape[1]
    assert transform.feature_names[5] == "note__hash0"
    hashed = features[:, 5:].toarray()
    assert set(np.unique(hashed)) <= {0.0, 1.0}  # binary word presence
    # "" and None have no words; "apple" has one
    assert hashed[3].sum() == hashed[4].sum() == 0
    assert hashed[5].sum() == 1


@pytest.mark.parametrize(("ngram_max", "most_buckets"), [(1, 2), (2, 3)])
def test_ngram_range_adds_word_pairs(ngram_max: int, most_buckets: int) -> None:
    frame = pd.DataFrame({"note": ["red apple"]})
    transform = fit_transform_spec(
        frame, Features(text=["note"], text_hash_features=1 << 16, text_ngram_max=ngram_max)
    )

    features = transform.transform(frame)

    # "red", "apple" (+ "red apple"); a wide hash makes collisions very unlikely
    assert features.nnz == most_buckets


def test_text_only_features_have_no_dense_part() -> None:
    frame = pd.DataFrame({"note": ["a b", "c"]})
    transform = fit_transform_spec(frame, Features(text=["note"], text_hash_features=32))

    assert transform.transform(frame).shape == (2, 32)


def test_to_dict_from_dict_through_json_gives_an_identical_transform() -> None:
    rows = training_rows()
    transform = fit_transform_spec(rows, spec(text=["note"], text_hash_features=32))

    restored = FeatureTransform.from_dict(json.loads(json.dumps(transform.to_dict())))

    assert restored == transform
    np.testing.assert_array_equal(
        restored.transform(rows).toarray(), transform.transform(rows).toarray()
    )


def test_category_columns_keep_their_order_through_json_that_sorts_keys() -> None:
    # regression: 'zone' before 'channel' came back as 'channel' before 'zone', so a restored
    # model read each category column in the other's place
    rows = training_rows().assign(zone=["b", "b", "a", "a", "b", "a", "a"])
    rows["channel"] = rows["region"]
    transform = fit_transform_spec(rows, spec(categorical=["zone", "channel"]))

    text = json.dumps(transform.to_dict(), sort_keys=True)
    restored = FeatureTransform.from_dict(json.loads(text))

    assert list(restored.categories) == ["zone", "channel"]
    np.testing.assert_array_equal(restored.transform(rows), transform.transform(rows))


def test_from_dict_rejects_an_incomplete_state() -> None:
    state = fit_transform_spec(training_rows(), spec()).to_dict()
    del state["categories"]

    with pytest.raises(TypeError, match="categories"):
        FeatureTransform.from_dict(state)


def test_fitting_without_a_declared_column_raises_feature_error() -> None:
    rows = training_rows().drop(columns="region")

    with pytest.raises(
        FeatureError, match=r"training table lacks the feature columns \['region'\]"
    ):
        fit_transform_spec(rows, spec())


@pytest.mark.parametrize("method", ["transform", "conform"])
def test_a_batch_without_a_feature_column_raises_feature_error(method: str) -> None:
    transform = fit_transform_spec(training_rows(), spec(text=["note"], text_hash_features=16))
    batch = training_rows().drop(columns=["note", "amount"])

    with pytest.raises(FeatureError, match=r"lacks the feature columns \['amount', 'note'\]"):
        getattr(transform, method)(batch)


def test_non_numeric_values_in_a_numeric_column_raise_feature_error() -> None:
    transform = fit_transform_spec(training_rows(), spec())
    batch = training_rows().assign(amount=["1", "2", "lots", "4", "5", "6", "7"])

    with pytest.raises(FeatureError, match="column 'amount' must be numeric"):
        transform.transform(batch)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1.5", "2", None], [1.5, 2.0, np.nan]),
        (["True", "false", "true"], [1.0, 0.0, 1.0]),
        ([True, False, True], [1.0, 0.0, 1.0]),
        ([3, 4, 5], [3.0, 4.0, 5.0]),
    ],
    ids=["numeric-text", "boolean-words", "booleans", "integers"],
)
def test_numeric_columns_accept_numbers_written_as_text_and_booleans(
    values: list[object], expected: list[float]
) -> None:
    frame = pd.DataFrame({"x": values})

    np.testing.assert_array_equal(numeric_column(frame, "x"), expected)


def test_numeric_column_rejects_words() -> None:
    with pytest.raises(FeatureError, match="column 'x' must be numeric"):
        numeric_column(pd.DataFrame({"x": ["1", "yes"]}), "x")


def test_conform_gives_the_types_the_model_was_logged_with() -> None:
    transform = fit_transform_spec(training_rows(), spec(text=["note"], text_hash_features=16))
    batch = pd.DataFrame(  # as a CSV reader hands it over: everything text
        {
            "amount": ["1.5", None],
            "region": ["047", "north"],
            "note": ["apple", None],
            "received": ["2024-02-29", None],
        }
    )

    conformed = transform.conform(batch)

    assert conformed["amount"].dtype == np.float64
    assert conformed["region"].tolist() == ["047", "north"]  # leading zeros survive
    assert conformed["note"].tolist() == ["apple", None]
    assert conformed["received"].dtype == "datetime64[ns]"
    assert conformed["received"].iloc[0] == pd.Timestamp("2024-02-29")
    assert pd.isna(conformed["received"].iloc[1])


def test_conform_writes_whole_float_codes_without_a_decimal_point() -> None:
    transform = fit_transform_spec(
        pd.DataFrame({"code": ["47", "47"]}), Features(categorical=["code"], min_category_count=1)
    )

    assert transform.conform(pd.DataFrame({"code": [47.0, np.nan]}))["code"].tolist() == [
        "47",
        None,
    ]


def test_conform_rejects_values_that_are_not_dates() -> None:
    transform = fit_transform_spec(training_rows(), spec())
    batch = training_rows().astype({"received": object})
    batch.loc[1, "received"] = "next tuesday"

    with pytest.raises(
        FeatureError, match=r"column 'received' has 1 value\(s\) that are not dates"
    ):
        transform.conform(batch)


def test_conformed_training_rows_encode_like_the_training_rows() -> None:
    # integer codes with a gap load as float64, e.g. from a parquet source
    train = pd.DataFrame({"code": [1.0, 1.0, 2.0, 2.0, np.nan], "x": [1.0, 2.0, 3.0, 4.0, 5.0]})
    transform = fit_transform_spec(
        train, Features(numeric=["x"], categorical=["code"], min_category_count=2)
    )

    np.testing.assert_array_equal(
        transform.transform(transform.conform(train)), transform.transform(train)
    )
