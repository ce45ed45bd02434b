"""OWASP's CSV injection rule as the CSV for people applies it (pipelines.data.storage)."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from pipelines.data.storage import looks_like_formula, neutralise_formulas, write_csv_stream

RISKY = [
    "=1+1",
    "+1+1",
    "-1+1",
    "@SUM(A1)",
    "\t=1+1",
    "\r=1+1",
    "\t",
    "\r",
    "\n=1+1",
    " =1+1",
    "   +cmd",
    "\r\n@x",
    "\u00a0=1+1",  # no-break space
    "\u3000=1+1",  # ideographic space
    "\u200b=1+1",  # zero-width space
    "\ufeff-1",  # byte-order mark
    "\x00=1+1",
    "\x1f=1+1",
    "\uff1d1+1",  # full-width =
    "\uff0b1",  # full-width +
    "\uff0d1",  # full-width -
    "\uff20x",  # full-width @
    " \uff1d1+1",
    "\ufe66x",  # small equals sign, NFKC =
    "\u207c1",  # superscript equals sign, NFKC =
]
SAFE = ["", " ", "\n", "abc", "a=1", "1+1", "x-1", "'=1+1", "\u2212minus sign", "naïve", "日本"]


@pytest.mark.parametrize("cell", RISKY)
def test_a_cell_a_spreadsheet_would_run_is_risky(cell: str) -> None:
    assert looks_like_formula(cell)


@pytest.mark.parametrize("cell", SAFE)
def test_plain_text_is_not_risky(cell: str) -> None:
    assert not looks_like_formula(cell)


@pytest.mark.parametrize("dtype", [object, "string"])
@pytest.mark.parametrize("cell", RISKY)
def test_risky_cells_get_one_leading_apostrophe(cell: str, dtype: object) -> None:
    table = pd.DataFrame({"note": pd.Series([cell, "safe"], dtype=dtype)})

    assert neutralise_formulas(table)["note"].tolist() == ["'" + cell, "safe"]
    assert table["note"].tolist() == [cell, "safe"]


def test_numbers_stay_numbers_and_safe_text_stays_as_it_is() -> None:
    table = pd.DataFrame(
        {
            "text": SAFE,
            "integer": range(-5, len(SAFE) - 5),
            "amount": [-1.5] * len(SAFE),
        }
    )

    safe = neutralise_formulas(table)

    assert safe["text"].tolist() == SAFE
    pd.testing.assert_frame_equal(safe[["integer", "amount"]], table[["integer", "amount"]])


def test_the_written_csv_reads_back_neutralised_with_the_newline_kept_in_its_cell(
    tmp_path,
) -> None:
    table = pd.DataFrame({"note": ["\n=1+1", " =1+1", "\uff1d1+1", "fine"], "n": [-1, 2, 3, 4]})

    path = write_csv_stream(iter([table]), tmp_path / "rows.csv")

    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert rows == [
        ["note", "n"],
        ["'\n=1+1", "-1"],
        ["' =1+1", "2"],
        ["'\uff1d1+1", "3"],
        ["fine", "4"],
    ]


@pytest.mark.parametrize("value", [None, 5, -2.0, b"=bytes"])
def test_values_that_are_not_text_are_left_alone(value: object) -> None:
    table = pd.DataFrame({"mixed": pd.Series([value, "=x"], dtype=object)})

    assert neutralise_formulas(table)["mixed"].tolist() == [value, "'=x"]
