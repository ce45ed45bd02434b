from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipelines.config import load_params
from pipelines.data.lineage import table_digest, training_data_lineage
from pipelines.data.sources import load_source
from pipelines.data.storage import file_sha256
from pipelines.paths import PACKAGE_ROOT


def table() -> pd.DataFrame:
    return pd.DataFrame({"case_id": ["a", "b"], "amount": [1.5, None], "region": ["n", "s"]})


def test_the_digest_follows_content_not_the_file_format(tmp_path: Path) -> None:
    table().to_parquet(tmp_path / "t.parquet")
    assert table_digest(pd.read_parquet(tmp_path / "t.parquet")) == table_digest(table())
    assert len(table_digest(table())) == 64


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.assign(amount=[1.5, 2.0]),
        lambda t: t.rename(columns={"region": "area"}),
        lambda t: t.iloc[::-1],
        lambda t: t.head(1),
    ],
    ids=["value", "column-name", "row-order", "row-count"],
)
def test_any_change_to_the_table_changes_the_digest(change) -> None:
    assert table_digest(change(table())) != table_digest(table())


def test_a_file_source_records_its_path_file_hash_and_rows(small_project: Path) -> None:
    # a checkout that has not ingested yet (the project's own may have, after `make demo`)
    spec = load_params("product-safety").use_case("risk-triage")
    frame = load_source(spec.data.source).head(50)

    lineage = training_data_lineage(spec, frame)

    raw = small_project / "data" / "product-safety" / "RASFF_data.csv.gz"
    assert lineage.source == "data/product-safety/RASFF_data.csv.gz"
    assert lineage.file_sha256 == file_sha256(raw)
    assert lineage.rows == 50 and lineage.digest == table_digest(frame)
    assert lineage.as_tags()["agencyml.data.training.file_sha256"] == lineage.file_sha256
    # outside a checkout with ingested data there is no DVC file to name
    assert lineage.dvc is None and lineage.dataset_digest == lineage.digest[:32]


def test_a_generated_source_records_the_call_that_rebuilds_it() -> None:
    spec = load_params("business-aid", PACKAGE_ROOT / "params").use_case("fraud-risk")
    frame = pd.DataFrame({"application_id": ["BA-1"]})

    lineage = training_data_lineage(spec, frame)

    assert lineage.source == "generator:business-aid?rows=60000&seed=2020"
    assert lineage.file_sha256 is None
    assert "agencyml.data.training.file_sha256" not in lineage.as_tags()
