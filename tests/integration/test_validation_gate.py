"""The validation gate on real flows: every bad input ends in a clear rejection or in quarantine,
and every input row is counted as scored or quarantined."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from flows.score import score
from flows.train import train
from pipelines.config import load_use_case
from pipelines.paths import state_dir
from pipelines.scoring.batches import write_holdout_batch
from pipelines.validation.gate import BatchRejectedError
from pipelines.validation.gx import DataValidationError

FRAUD = ("business-aid", "fraud-risk")
TRIAGE = ("product-safety", "risk-triage")


@pytest.fixture(scope="module")
def trained(prefect_server, tmp_path_factory, make_small_project):
    """One small project with both agencies' models trained, shared by the battery."""
    root = tmp_path_factory.mktemp("gate")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENCYML_PROJECT_ROOT", str(make_small_project(root / "project")))
        patch.setenv("AGENCYML_HOME", str(root / "state"))
        for agency, use_case in (FRAUD, TRIAGE):
            train(agency, use_case)
        holdouts = {
            key: pd.read_parquet(write_holdout_batch(load_use_case(*key), state_dir()))
            for key in (FRAUD, TRIAGE)
        }
        yield {"root": root, "holdouts": holdouts}


def outputs(key: tuple[str, str]) -> list[Path]:
    folder = state_dir().output_dir(*key)
    return sorted(p for p in folder.iterdir()) if folder.exists() else []


def good_rows(trained, key, rows: int = 200) -> pd.DataFrame:
    return trained["holdouts"][key].head(rows).reset_index(drop=True)


def as_parquet(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path)
    return path


def as_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def assert_rejected(key, path: Path, match: str) -> BatchRejectedError:
    published_before = outputs(key)
    with pytest.raises(BatchRejectedError, match=match) as caught:
        score(*key, str(path))
    assert outputs(key) == published_before, "a rejected batch must publish nothing"
    folder = Path(caught.value.quarantine_dir)
    kept = next(p for p in folder.iterdir() if p.name.startswith("input"))
    assert kept.read_bytes() == path.read_bytes(), "the rejected input is kept byte for byte"
    report = json.loads((folder / "report.json").read_text())
    assert report["rejected"] == caught.value.problems
    return caught.value


def assert_scored(key, path: Path, rows_in: int, quarantined: int) -> dict:
    result = score(*key, str(path))
    manifest = json.loads((result.output_dir / "manifest.json").read_text())
    assert manifest["rows"] == {
        "in": rows_in,
        "scored": rows_in - quarantined,
        "quarantined": quarantined,
    }
    assert len(pd.read_parquet(result.output_dir / "scored.parquet")) == rows_in - quarantined
    if quarantined:
        kept = pd.read_parquet(Path(manifest["quarantine"]) / "rows.parquet")
        assert len(kept) == quarantined and kept["failed_expectations"].str.len().gt(0).all()
    return manifest


def test_the_clean_holdout_is_scored_in_full(trained, tmp_path):
    batch = as_parquet(good_rows(trained, FRAUD), tmp_path / "clean.parquet")
    manifest = assert_scored(FRAUD, batch, 200, 0)
    assert manifest["validation"]["result_id"] and manifest["quarantine"] is None


def test_a_semicolon_separated_batch_with_any_name_is_scored_in_full(trained, tmp_path):
    rows = good_rows(trained, FRAUD)
    batch = _written(tmp_path / "export.txt", rows.to_csv(index=False, sep=";"))
    manifest = assert_scored(FRAUD, batch, 200, 0)
    assert manifest["input"]["format"] == "csv"


# Batch-level failures: a clear error, the input in quarantine, nothing published.
REJECTIONS: dict[str, tuple[Callable[[pd.DataFrame, Path], Path], str]] = {
    "empty-file": (lambda f, d: _written(d / "b.csv", b""), "cannot read"),
    "header-only": (lambda f, d: as_csv(f.head(0), d / "b.csv"), "but found 0"),
    "truncated-parquet": (
        lambda f, d: _truncated(as_parquet(f, d / "full.parquet"), d / "b.parquet"),
        "cannot read",
    ),
    "unknown-delimiter": (  # '#' is no separator the reader sniffs: read as one column
        lambda f, d: _written(d / "b.csv", f.to_csv(index=False, sep="#")),
        "column 'scheme' is present, but it is missing",
    ),
    "missing-column": (
        lambda f, d: as_parquet(f.drop(columns=["scheme"]), d / "b.parquet"),
        "column 'scheme' is present, but it is missing",
    ),
    "wrong-dtype": (
        lambda f, d: as_parquet(f.assign(employees="many"), d / "b.parquet"),
        r"(?s)200 of 200 rows.*expected column 'employees' holds numbers, e.g. 'many'",
    ),
    "all-null-column": (
        lambda f, d: as_parquet(f.assign(scheme=None), d / "b.parquet"),
        r"(?s)200 of 200 rows \(100.0%\).*'scheme' is not empty",
    ),
    "duplicated-ids": (
        lambda f, d: as_parquet(pd.concat([f, f.head(3)]), d / "b.parquet"),
        "'application_id' are unique",
    ),
    "non-utf8": (
        lambda f, d: _written(d / "b.csv", f.to_csv(index=False).encode() + b"BA-x,\xff\xfe\xfa\n"),
        "is not UTF-8: set `encoding`",
    ),
    "too-many-bad-rows": (
        lambda f, d: as_parquet(_negative_amounts(f, 40), d / "b.parquet"),
        r"40 of 200 rows \(20.0%\) failed row checks",
    ),
}


def _written(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def _truncated(source: Path, path: Path) -> Path:
    return _written(path, source.read_bytes()[: source.stat().st_size // 2])


def _negative_amounts(frame: pd.DataFrame, rows: int) -> pd.DataFrame:
    changed = frame.copy()
    changed.loc[: rows - 1, "requested_amount_dkk"] = -100.0
    return changed


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_batch_level_failures_reject_the_whole_batch(trained, tmp_path, case):
    make, message = REJECTIONS[case]
    assert_rejected(FRAUD, make(good_rows(trained, FRAUD), tmp_path), message)


def _with(frame: pd.DataFrame, rows: list[int], **values) -> pd.DataFrame:
    """A copy with some cells replaced, widening the column's type to hold the new value."""
    changed = frame.copy()
    for column, value in values.items():
        if value is None or isinstance(value, str):
            changed[column] = changed[column].astype(object)
        elif isinstance(value, float) and changed[column].dtype.kind in "iu":
            changed[column] = changed[column].astype("float64")
        changed.loc[rows, column] = value
    return changed


# Row-level failures: the rows go to quarantine with their reasons, the rest are scored.
QUARANTINES = {
    "inf-in-numeric": (dict(requested_amount_dkk=np.inf), "'requested_amount_dkk' is"),
    "negative-amount": (dict(requested_amount_dkk=-5.0), "'requested_amount_dkk' is at least 0"),
    "future-date": (
        dict(application_date=pd.Timestamp("2099-01-01")),
        "'application_date' is not after",
    ),
    "unseen-category": (dict(scheme="crypto_relief"), "'scheme' is one of the"),
    "null-in-required": (dict(industry_code=None), "'industry_code' is not empty"),
}


@pytest.mark.parametrize("case", sorted(QUARANTINES))
def test_row_level_failures_quarantine_rows_and_score_the_rest(trained, tmp_path, case):
    values, reason = QUARANTINES[case]
    frame = _with(good_rows(trained, FRAUD), [3, 17, 90], **values)
    manifest = assert_scored(FRAUD, as_parquet(frame, tmp_path / "b.parquet"), 200, 3)
    kept = pd.read_parquet(Path(manifest["quarantine"]) / "rows.parquet")
    assert sorted(kept["application_id"]) == sorted(frame.loc[[3, 17, 90], "application_id"])
    assert kept["failed_expectations"].str.contains(reason, regex=False).all()


def test_nan_in_an_optional_numeric_and_an_extra_column_are_scored(trained, tmp_path):
    frame = good_rows(trained, FRAUD).assign(note="extra column, ignored")
    frame.loc[:9, "days_since_bank_account_change"] = np.nan
    assert_scored(FRAUD, as_parquet(frame, tmp_path / "b.parquet"), 200, 0)


def test_five_percent_bad_rows_are_quarantined_and_the_rest_scored(trained, tmp_path):
    frame = good_rows(trained, FRAUD, rows=400)
    bad = list(range(0, 400, 20))  # 20 rows: 5%
    frame = _with(frame, bad[:10], requested_amount_dkk=-1.0)
    frame = _with(frame, bad[10:], scheme=None)
    manifest = assert_scored(FRAUD, as_csv(frame, tmp_path / "b.csv"), 400, 20)
    report = json.loads((Path(manifest["quarantine"]) / "report.json").read_text())
    assert report["row_counts"] == manifest["rows"]
    assert report["result_id"] == manifest["validation"]["result_id"]


def test_huge_strings_are_quarantined_and_formulas_kept_as_data_but_neutralised(trained, tmp_path):
    frame = good_rows(trained, TRIAGE)
    frame["product"] = frame["product"].astype(object)
    frame["hazard"] = frame["hazard"].astype(object)
    frame.loc[0, "product"] = "x" * 1_000_000
    frame.loc[0, "hazard"] = '=HYPERLINK("http://example.invalid","click")'
    frame.loc[1, "product"] = "@SUM(A1:A9)"  # a formula alone is data: scored
    manifest = assert_scored(TRIAGE, as_parquet(frame, tmp_path / "b.parquet"), 200, 1)
    folder = Path(manifest["quarantine"])
    kept = pd.read_parquet(folder / "rows.parquet")
    assert kept.loc[0, "hazard"].startswith("=HYPERLINK"), "the data keeps what came in"
    assert "at most 10000 characters" in kept.loc[0, "failed_expectations"]
    as_text = (folder / "rows.csv").read_text()
    assert "'=HYPERLINK" in as_text and "\n=HYPERLINK" not in as_text


def test_training_data_that_fails_its_suite_registers_no_model(trained, tmp_path):
    bad = tmp_path / "applications.parquet"
    frame = trained["holdouts"][FRAUD]
    frame = frame.assign(is_fraud=np.arange(len(frame)) % 2)
    frame = _with(frame, [0, 1], requested_amount_dkk=-10.0)
    as_parquet(frame, bad)
    params = trained["root"] / "project" / "params" / "business-aid.yaml"
    original = params.read_text()
    changed = yaml.safe_load(original)
    changed["datasets"]["applications"] = {"kind": "file", "reader": "parquet", "path": str(bad)}
    params.write_text(yaml.safe_dump(changed))  # training sees the change and re-ingests
    try:
        client = MlflowClient(state_dir().tracking_uri, state_dir().tracking_uri)
        versions_before = client.search_model_versions("name='business-aid.fraud-risk'")
        with pytest.raises(DataValidationError, match="no model registered") as caught:
            train(*FRAUD)
    finally:
        params.write_text(original)
    assert any("'requested_amount_dkk' is at least 0" in p for p in caught.value.problems)
    assert len(client.search_model_versions("name='business-aid.fraud-risk'")) == len(
        versions_before
    )
    [failed] = client.search_runs(
        [client.get_experiment_by_name("agencyml/business-aid").experiment_id],
        "tags.`agencyml.validation` = 'failed' and tags.`agencyml.kind` = 'train'",
    )
    assert failed.info.status == "FAILED"
    artifacts = {a.path for a in client.list_artifacts(failed.info.run_id, "validation")}
    assert "validation/data_docs" in artifacts and "validation/train_data.json" in artifacts
