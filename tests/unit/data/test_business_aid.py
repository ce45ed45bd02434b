"""Tests for the synthetic business-aid application generator."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score

from pipelines.data.business_aid import (
    REVIEW_TRACKS,
    SCHEMES,
    generate_applications,
    iter_application_chunks,
    size_band,
)

EXPECTED_DTYPES: dict[str, str] = {
    "application_id": "str",
    "application_date": "datetime64[ns]",
    "scheme": "str",
    "industry_code": "str",
    "region": "str",
    "company_age_years": "float64",
    "employees": "int64",
    "prior_revenue_dkk": "float64",
    "claimed_revenue_drop_pct": "float64",
    "requested_amount_dkk": "float64",
    "requested_to_prior_revenue": "float64",
    "days_since_bank_account_change": "float64",
    "applicants_sharing_address": "int64",
    "applicants_sharing_phone": "int64",
    "auditor_statement_attached": "bool",
    "is_fraud": "int64",
    "company_size_band": "str",
    "review_track": "str",
}
DANISH_REGIONS = {"hovedstaden", "sjaelland", "syddanmark", "midtjylland", "nordjylland"}


@pytest.fixture(scope="module")
def applications() -> pd.DataFrame:
    return generate_applications(40_000, seed=0)


def test_columns_and_dtypes_are_exactly_as_specified(applications: pd.DataFrame) -> None:
    assert list(applications.columns) == list(EXPECTED_DTYPES)
    assert {name: str(dtype) for name, dtype in applications.dtypes.items()} == EXPECTED_DTYPES
    assert isinstance(applications.index, pd.RangeIndex)
    assert applications.index[0] == 0 and len(applications) == 40_000


def test_ids_are_unique_and_formatted(applications: pd.DataFrame) -> None:
    ids = applications["application_id"]
    assert ids.is_unique
    assert ids.str.fullmatch(r"BA-\d{10}").all()
    assert ids.iloc[0] == "BA-0000000000" and ids.iloc[-1] == "BA-0000039999"


def test_dates_are_non_decreasing_day_resolution_and_within_window(
    applications: pd.DataFrame,
) -> None:
    dates = applications["application_date"]
    assert dates.is_monotonic_increasing
    assert dates.min() >= pd.Timestamp("2020-04-01")
    assert dates.max() <= pd.Timestamp("2022-06-30")
    assert (dates == dates.dt.normalize()).all()
    assert dates.min() < pd.Timestamp("2020-05-01") and dates.max() > pd.Timestamp("2022-05-01")


def test_custom_window_is_respected() -> None:
    frame = generate_applications(5_000, seed=3, start="2021-01-01", end="2021-01-31")
    assert frame["application_date"].between("2021-01-01", "2021-01-31").all()
    assert frame["application_date"].is_monotonic_increasing


def test_categorical_columns_use_known_values(applications: pd.DataFrame) -> None:
    assert set(applications["scheme"]) == set(SCHEMES)
    shares = applications["scheme"].value_counts(normalize=True)
    assert shares["salary"] > shares["fixed_costs"] > shares["self_employed"]
    assert set(applications["region"]) == DANISH_REGIONS
    assert applications["industry_code"].str.fullmatch(r"\d{2}").all()
    assert {"47", "56", "55", "93", "90"} <= set(applications["industry_code"])
    assert set(applications["review_track"]) <= set(REVIEW_TRACKS)


def test_value_ranges(applications: pd.DataFrame) -> None:
    assert applications["claimed_revenue_drop_pct"].between(0.0, 100.0).all()
    assert (applications["requested_amount_dkk"] > 0).all()
    assert (applications["prior_revenue_dkk"] > 0).all()
    assert (applications["company_age_years"] >= 0).all()
    assert (applications["company_age_years"] < 1).mean() > 0.03
    assert (applications["employees"] >= 0).all()
    assert (applications["applicants_sharing_address"] >= 1).all()
    assert (applications["applicants_sharing_phone"] >= 1).all()
    assert set(applications["is_fraud"].unique()) == {0, 1}
    ratio = applications["requested_amount_dkk"] / applications["prior_revenue_dkk"]
    np.testing.assert_allclose(applications["requested_to_prior_revenue"], ratio, rtol=1e-12)
    days = applications["days_since_bank_account_change"]
    assert (days.dropna() >= 0).all()
    assert days.isna().mean() > 0.5


def test_self_employed_are_small_and_salary_applicants_larger(applications: pd.DataFrame) -> None:
    employees = applications.groupby("scheme")["employees"]
    assert (employees.apply(lambda staff: (staff <= 1).mean())["self_employed"]) > 0.8
    assert employees.median()["salary"] > employees.median()["self_employed"]


def test_same_seed_gives_identical_frames_and_other_seed_differs() -> None:
    first = generate_applications(3_000, seed=11)
    pd.testing.assert_frame_equal(first, generate_applications(3_000, seed=11))
    other = generate_applications(3_000, seed=12)
    assert not first["requested_amount_dkk"].equals(other["requested_amount_dkk"])


@pytest.mark.parametrize("chunk_rows", [7_000, 50_000])
def test_chunks_concatenate_to_the_full_frame(chunk_rows: int) -> None:
    full = generate_applications(60_000, seed=5)
    chunks = list(iter_application_chunks(60_000, seed=5, chunk_rows=chunk_rows))
    assert all(0 < len(chunk) <= chunk_rows for chunk in chunks)
    assert sum(len(chunk) for chunk in chunks) == 60_000
    assert all(len(chunk) == chunk_rows for chunk in chunks[:-1])
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), full)


def test_chunk_index_is_the_global_row_number() -> None:
    chunks = list(iter_application_chunks(1_000, seed=2, chunk_rows=300))
    assert [len(chunk) for chunk in chunks] == [300, 300, 300, 100]
    assert chunks[1].index[0] == 300
    assert chunks[1]["application_id"].iloc[0] == "BA-0000000300"


@pytest.mark.parametrize("seed", [0, 7])
def test_fraud_rate_is_about_four_percent(seed: int) -> None:
    frame = generate_applications(40_000, seed=seed)
    assert 0.03 <= frame["is_fraud"].mean() <= 0.05


def test_every_review_track_has_at_least_five_percent(applications: pd.DataFrame) -> None:
    shares = applications["review_track"].value_counts(normalize=True)
    assert set(shares.index) == set(REVIEW_TRACKS)
    assert (shares >= 0.05).all(), shares.to_dict()


def test_no_single_signal_is_a_perfect_tell(applications: pd.DataFrame) -> None:
    legit = applications[applications["is_fraud"] == 0]
    assert (legit["days_since_bank_account_change"] <= 30).mean() > 0.01
    assert (legit["applicants_sharing_address"] >= 2).mean() > 0.05
    assert (legit["applicants_sharing_phone"] >= 2).mean() > 0.02
    assert legit["claimed_revenue_drop_pct"].between(35, 40).mean() > 0.03


def test_fraud_is_learnable_but_noisy(applications: pd.DataFrame) -> None:
    features = applications.select_dtypes(include=["number", "bool"]).drop(columns="is_fraud")
    labels = applications["is_fraud"]
    split = int(0.7 * len(applications))
    model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.05, random_state=0)
    model.fit(features.iloc[:split], labels.iloc[:split])
    scores = model.predict_proba(features.iloc[split:])[:, 1]
    precision = average_precision_score(labels.iloc[split:], scores)
    base_rate = labels.iloc[split:].mean()
    assert 3 * base_rate < precision < 0.95


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_rows": 0}, "n_rows must be at least 1"),
        ({"n_rows": 10, "chunk_rows": 0}, "chunk_rows must be at least 1"),
        ({"n_rows": 10, "start": "2021-01-01", "end": "2021-01-01"}, "end must be"),
        ({"n_rows": 10, "start": "2021-06-01", "end": "2021-01-01"}, "end must be"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        iter_application_chunks(seed=0, **kwargs)  # raises before any chunk is drawn


def test_generate_applications_validates_eagerly() -> None:
    with pytest.raises(ValueError, match="n_rows must be at least 1"):
        generate_applications(0, seed=0)
    with pytest.raises(ValueError, match="end must be"):
        generate_applications(10, seed=0, start="2022-01-02", end="2022-01-01")


def test_company_size_bands_follow_the_eu_head_count_classes() -> None:
    employees = np.array([0, 1, 9, 10, 49, 50, 249, 250, 4000])

    assert size_band(employees).tolist() == [
        "sole",
        "micro",
        "micro",
        "small",
        "small",
        "medium",
        "medium",
        "large",
        "large",
    ]
