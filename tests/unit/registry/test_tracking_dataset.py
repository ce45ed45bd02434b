"""The training table as an MLflow dataset: its schema is inferred from the first rows (MLflow
would read every row), and it is the schema the whole table gives; the profile counts every
row."""

from __future__ import annotations

import numpy as np
import pandas as pd
from mlflow.models import infer_signature

from pipelines.data.lineage import DataLineage
from pipelines.registry.tracking import SCHEMA_ROWS, dataset_of


def table(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    days = pd.to_timedelta(rng.integers(0, 400, rows), "D")
    return pd.DataFrame(
        {
            "application_id": [f"A{i:07d}" for i in range(rows)],
            "employees": rng.integers(0, 500, rows),
            "revenue": rng.gamma(2.0, 1e5, rows),
            "received": pd.Timestamp("2021-01-01") + days,
            "sector": pd.Series(rng.choice(["retail", "farming"], rows), dtype=object),
            "urgent": rng.random(rows) < 0.1,
        }
    )


def lineage(rows: int) -> DataLineage:
    return DataLineage(name="training", source="data/cases.parquet", digest="d" * 64, rows=rows)


def test_a_large_tables_schema_comes_from_its_first_rows_and_matches_the_whole():
    frame = table(SCHEMA_ROWS * 5)

    dataset = dataset_of(frame, lineage(len(frame)))

    assert "schema" in vars(dataset)  # inferred here from the first rows, before MLflow asks
    assert dataset.schema == infer_signature(frame).inputs
    assert dataset.profile == {"num_rows": len(frame), "num_elements": int(frame.size)}
    assert dataset.to_dict()["schema"]  # what is logged


def test_a_small_table_is_left_to_mlflow():
    frame = table(50)

    assert "schema" not in vars(dataset_of(frame, lineage(50)))
    assert dataset_of(frame, lineage(50)).schema == infer_signature(frame).inputs
