"""The progress bar of long work: rows done of the total, rows per second."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flows.progress import row_progress


def test_a_parquet_batch_shows_rows_of_its_total_and_the_speed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")  # a terminal wide enough for every column
    path = tmp_path / "batch.parquet"
    pd.DataFrame({"x": range(1_500)}).to_parquet(path)

    with row_progress(path, "Scoring batch.parquet", enabled=True) as advance:
        advance(1_000)
        advance(500)

    shown = " ".join(capsys.readouterr().err.split())
    assert "Scoring batch.parquet" in shown
    assert "1,500 / 1,500 rows" in shown and "rows/s" in shown


def test_a_disabled_bar_shows_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with row_progress(tmp_path / "batch.csv", "Scoring", enabled=False) as advance:
        advance(10)

    assert capsys.readouterr().err == ""
