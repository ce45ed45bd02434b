"""RASFF cleaning on a few inline rows, and the project's real RASFF file end to end."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import TypeAdapter

from pipelines.config import Source, load_params
from pipelines.data.sources import (
    SourceError,
    clean_country,
    clean_rasff,
    ingest,
    load_source,
    split_countries,
    training_table,
)
from pipelines.data.storage import InputFileError, file_md5
from pipelines.paths import PACKAGE_ROOT

RASFF_FILE = PACKAGE_ROOT / "data" / "product-safety" / "RASFF_data.csv.gz"
RAW_ROWS_IN_EXPORT = 34_322


def raw_row(
    date: str = "18/05/2022",
    country: str = "Spain",
    product: str = "Chilled tuna",
    hazard: str = "Mercury",
    risk: str = "serious",
) -> dict[str, str]:
    return {
        "DATE CASE": date,
        "TYPE": "food",
        "PRODUCT CATEGORY": "fish and fish products",
        "PRODUCT": product,
        "HAZARD": hazard,
        "ORIGIN COUNTRY": country,
        "RISK DECISION": risk,
    }


def raw_table(*rows: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), dtype=str)


def test_clean_rasff_renames_columns_and_adds_an_id_first() -> None:
    cleaned = clean_rasff(raw_table(raw_row()))

    assert list(cleaned.columns) == [
        "notification_id",
        "date_case",
        "type",
        "product_category",
        "product",
        "hazard",
        "risk_decision",
        "origin_country",
        "origin_country_count",
    ]
    row = cleaned.iloc[0]
    assert row["product"] == "chilled tuna" and row["hazard"] == "mercury"
    assert row["risk_decision"] == "serious"
    assert row["notification_id"].startswith("rasff-") and len(row["notification_id"]) == 22


def test_exact_duplicates_are_dropped_even_with_stray_whitespace() -> None:
    raw = raw_table(
        raw_row(),
        raw_row(product=" Chilled tuna "),  # the same notification, padded
        raw_row(hazard="Histamine"),
    )

    cleaned = clean_rasff(raw)

    assert len(cleaned) == 2
    assert sorted(cleaned["hazard"]) == ["histamine", "mercury"]
    assert cleaned.index.tolist() == [0, 1]


def test_extra_columns_in_the_export_are_ignored() -> None:
    raw = raw_table(raw_row()).assign(**{"NOTIFYING COUNTRY": "Italy"})

    assert "NOTIFYING COUNTRY" not in clean_rasff(raw).columns


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("18/05/2022", pd.Timestamp("2022-05-18")),
        ("01/12/2019", pd.Timestamp("2019-12-01")),  # day first, as RASFF writes dates
        ("unknown date", pd.NaT),
        ("", pd.NaT),
    ],
)
def test_dates_are_parsed_day_first_and_unknown_dates_become_nat(
    raw: str, expected: pd.Timestamp
) -> None:
    parsed = clean_rasff(raw_table(raw_row(date=raw)))["date_case"].iloc[0]

    if pd.isna(expected):
        assert pd.isna(parsed)
    else:
        assert parsed == expected


@pytest.mark.parametrize(
    ("raw", "primary", "count"),
    [
        ("Turkey,vietnam", "turkey", 2),
        ("unknown origin country", "unknown", 0),
        ("", "unknown", 0),
        ("unknown origin country,India", "india", 1),
        ("cã´te divoire", "cote d'ivoire", 1),  # noqa: RUF001 (mojibake from the export)
        ("Côte d'Ivoire", "cote d'ivoire", 1),
        ("The Netherlands", "netherlands", 1),
        ("USA, uk", "united states", 2),
        ("  Faeroe   Islands ", "faroe islands", 1),
        ("Réunion", "reunion", 1),
    ],
)
def test_origin_countries_are_cleaned_to_a_primary_country_and_a_count(
    raw: str, primary: str, count: int
) -> None:
    row = clean_rasff(raw_table(raw_row(country=raw))).iloc[0]

    assert row["origin_country"] == primary
    assert row["origin_country_count"] == count


def test_split_countries_keeps_order_and_folds_aliases() -> None:
    assert split_countries("Turkey,vietnam") == ["turkey", "vietnam"]
    assert split_countries('"China", Hong Kong') == ["china", "hong kong"]
    assert split_countries("unknown origin country") == ["unknown"]
    assert clean_country("  CURAÇAO ") == "curacao"


def test_ids_are_stable_across_calls_and_unique() -> None:
    raw = raw_table(
        raw_row(),
        raw_row(country="Turkey,vietnam"),
        raw_row(date="unknown date"),
        raw_row(risk="not serious"),
    )

    first = clean_rasff(raw)
    again = clean_rasff(raw.copy())
    reordered = clean_rasff(raw.iloc[::-1].reset_index(drop=True))

    assert first["notification_id"].is_unique
    assert first["notification_id"].tolist() == again["notification_id"].tolist()
    # an id follows the notification's content, not its position in the export
    assert sorted(reordered["notification_id"]) == sorted(first["notification_id"])


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (raw_row(product="Tuna"), raw_row(product="TUNA")),
        (raw_row(hazard="Mercury"), raw_row(hazard="mercury")),
        (raw_row(date="1/5/2020"), raw_row(date="01/05/2020")),
    ],
    ids=["product-case", "hazard-case", "date-padding"],
)
def test_ids_are_unique_when_rows_differ_only_before_cleaning(
    first: dict[str, str], second: dict[str, str]
) -> None:
    cleaned = clean_rasff(raw_table(first, second))

    assert cleaned["notification_id"].is_unique


@pytest.mark.parametrize("dropped", ["RISK DECISION", "ORIGIN COUNTRY"])
def test_missing_columns_raise_source_error_naming_them(dropped: str) -> None:
    raw = raw_table(raw_row()).drop(columns=dropped)

    with pytest.raises(SourceError, match=rf"lacks the columns \['{dropped}'\].*RASFF export"):
        clean_rasff(raw)


def test_a_table_that_is_not_rasff_at_all_lists_every_missing_column() -> None:
    with pytest.raises(SourceError) as caught:
        clean_rasff(pd.DataFrame({"a": ["1"]}))

    for column in ("DATE CASE", "HAZARD", "ORIGIN COUNTRY", "PRODUCT", "RISK DECISION"):
        assert repr(column) in str(caught.value)


# --- load_source ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rasff() -> pd.DataFrame:
    params = load_params("product-safety", directory=PACKAGE_ROOT / "params")
    source = params.datasets["rasff"]
    assert source.path.name == RASFF_FILE.name
    return load_source(source.model_copy(update={"path": RASFF_FILE}))


def test_real_rasff_file_is_cleaned_without_duplicates(rasff: pd.DataFrame) -> None:
    raw = pd.read_csv(RASFF_FILE, sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    distinct_notifications = len(raw.map(str.strip).drop_duplicates())

    assert len(raw) == RAW_ROWS_IN_EXPORT
    # one more pair collapses once countries are cleaned: on 28/02/2022 the same notification
    # names its origin as 'moldova' and as 'moldova, unknown origin country'
    assert len(rasff) == distinct_notifications - 1 < RAW_ROWS_IN_EXPORT
    assert rasff["notification_id"].is_unique
    assert set(rasff["risk_decision"]) == {"serious", "not serious"}


def test_real_rasff_file_has_the_columns_the_use_case_needs(rasff: pd.DataFrame) -> None:
    params = load_params("product-safety", directory=PACKAGE_ROOT / "params")
    required = params.use_cases["risk-triage"].required_columns(with_target=True)

    assert set(required) <= set(rasff.columns)
    assert pd.api.types.is_datetime64_any_dtype(rasff["date_case"])
    assert rasff["date_case"].notna().mean() > 0.9
    assert (rasff["origin_country_count"] >= 0).all()
    assert "" not in set(rasff["origin_country"])


def _source(source: dict[str, object]) -> Source:
    return TypeAdapter(Source).validate_python(source)


def test_load_source_reads_a_csv_file_source(tmp_path) -> None:
    path = tmp_path / "table.csv"
    pd.DataFrame({"id": ["a", "b"], "x": ["007", "2"], "y": ["1", "0"]}).to_csv(path, index=False)

    frame = load_source(_source({"kind": "file", "reader": "csv", "path": str(path)}))

    assert frame.to_dict("list") == {"id": ["a", "b"], "x": ["007", "2"], "y": ["1", "0"]}


def test_load_source_runs_the_seeded_generator() -> None:
    source = {"kind": "generator", "generator": "business-aid", "rows": 50, "seed": 3}

    first = load_source(_source(source))

    assert len(first) == 50 and first["application_id"].is_unique
    pd.testing.assert_frame_equal(first, load_source(_source(source)))


@pytest.mark.parametrize("reader", ["rasff", "csv", "parquet"])
def test_load_source_with_a_missing_file_raises_input_file_error(tmp_path, reader: str) -> None:
    missing = tmp_path / "nowhere.csv.gz"

    with pytest.raises(InputFileError, match="not found"):
        load_source(_source({"kind": "file", "reader": reader, "path": str(missing)}))


def test_load_source_rejects_a_csv_that_is_not_the_rasff_export(tmp_path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a;b\n1;2\n", encoding="utf-8")

    with pytest.raises(SourceError, match="is this the RASFF export"):
        load_source(_source({"kind": "file", "reader": "rasff", "path": str(path)}))


# --- ingest -------------------------------------------------------------------------------------


def test_ingest_writes_a_byte_identical_file_every_time(small_project) -> None:
    dataset = load_params("business-aid").dataset("applications")

    first = ingest(dataset)
    written = dataset.resolved_path().read_bytes()
    second = ingest(dataset)

    assert first.path == "data/ingested/business-aid/applications.parquet"
    assert first.md5 == second.md5 == file_md5(dataset.resolved_path())
    assert dataset.resolved_path().read_bytes() == written
    assert first.rows == 4000
    assert not list(dataset.resolved_path().parent.glob("*.partial"))


def test_training_reads_the_ingested_file_and_ingests_it_when_missing(small_project) -> None:
    spec = load_params("product-safety").use_case("risk-triage")
    assert not spec.data.resolved_path().exists()

    frame = training_table(spec)

    assert spec.data.resolved_path().is_file()
    pd.testing.assert_frame_equal(frame, pd.read_parquet(spec.data.resolved_path()))
    assert frame["notification_id"].is_unique
    assert pd.api.types.is_datetime64_any_dtype(frame["date_case"])


def test_training_ingests_again_when_the_params_declare_another_source(small_project) -> None:
    spec = load_params("business-aid").use_case("fraud-risk")
    training_table(spec)
    params_file = small_project / "params" / "business-aid.yaml"
    params_file.write_text(params_file.read_text().replace("rows: 4000", "rows: 300"))

    changed = load_params("business-aid").use_case("fraud-risk")
    frame = training_table(changed)

    assert len(frame) == 300
    assert len(pd.read_parquet(changed.data.resolved_path())) == 300
