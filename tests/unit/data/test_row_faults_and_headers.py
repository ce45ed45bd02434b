"""A cell that will not cast is a fault of its row, with the expectation and the raw value; a
header is read without parsing rows, and only the wanted columns are parsed."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.data import batch_columns, readers
from pipelines.data.columns import (
    EPOCH_SECONDS,
    FeatureError,
    conform_columns,
    conform_rows,
    numeric_column,
)
from pipelines.data.readers import InputFileError

KINDS = {"amount": "numeric", "received": "date"}


@pytest.mark.parametrize(
    ("amount", "received", "date_format", "expected"),
    [
        ("12 employees", "2024-01-02", None, "column 'amount' holds numbers, found '12 employees'"),
        ("11,838.37", "2024-01-02", None, "column 'amount' holds numbers, found '11,838.37'"),
        ("TRUE", "2024-01-02", None, "column 'amount' holds numbers, found 'TRUE'"),
        ("1", "2021-02-30", None, "column 'received' holds dates, found '2021-02-30'"),
        ("1", "2024-01-02", "%d/%m/%Y", "holds dates written '%d/%m/%Y', found '2024-01-02'"),
        ("1", "1633046400", None, "epoch seconds are read only where"),
        ("1", "9999-12-31", None, "column 'received' holds dates, found '9999-12-31'"),
    ],
)
def test_a_cell_that_will_not_cast_is_a_fault_of_its_row(amount, received, date_format, expected):
    frame = pd.DataFrame({"amount": ["5", amount], "received": ["02/01/2024", received]})
    formats = {"received": date_format or "%d/%m/%Y"} if date_format else {}
    if date_format is None:
        frame.loc[0, "received"] = "2024-01-02"
    conformed, problems, faults = conform_rows(frame, KINDS, formats)
    assert problems == {}
    assert list(faults) == [1] and len(faults[1]) == 1
    assert expected in str(faults[1][0])
    column = faults[1][0].column
    assert pd.isna(conformed.loc[1, column]) and not pd.isna(conformed.loc[0, column])
    assert conformed["amount"].dtype == np.float64
    assert conformed["received"].dtype == "datetime64[ns]"


def test_blank_and_missing_cells_are_missing_not_faults():
    frame = pd.DataFrame({"amount": ["", "  ", None], "received": [None, "", "2024-01-02"]})
    _, problems, faults = conform_rows(frame, KINDS)
    assert problems == {} and faults == {}


def test_epoch_seconds_are_dates_only_when_declared():
    frame = pd.DataFrame({"amount": [1.0, 2.0], "received": [1633046400, 1633046500]})
    _, _, faults = conform_rows(frame, KINDS)
    assert sorted(faults) == [0, 1]
    conformed, _, faults = conform_rows(frame, KINDS, {"received": EPOCH_SECONDS})
    assert faults == {}
    assert conformed["received"].tolist() == [
        pd.Timestamp("2021-10-01 00:00:00"),
        pd.Timestamp("2021-10-01 00:01:40"),
    ]


def test_training_refuses_the_column_with_examples():
    frame = pd.DataFrame({"amount": ["1", "many", "lots"], "received": ["2024-01-02"] * 3})
    conformed, problems = conform_columns(frame, KINDS)
    assert problems["amount"].startswith("column 'amount' must be numeric: 2 value(s) are not")
    assert conformed["amount"].tolist() == ["1", "many", "lots"]  # left as it was
    with pytest.raises(FeatureError, match="must be numeric"):
        numeric_column(frame, "amount")


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_the_header_is_stripped_and_only_wanted_columns_are_parsed(tmp_path):
    path = write(tmp_path / "b.csv", b" id , amount ,note,note\nA,1,x,y\nB,2,z,w\n")
    header = batch_columns.read_header(path)
    assert header.names == ["id", "amount", "note", "note"]
    assert header.repeated() == {"note": 2} and header.repeated({"id", "amount"}) == {}
    batches = list(batch_columns.iter_columns(header, 1, None, {"id", "amount"}))
    assert [batch.num_rows for batch in batches] == [1, 1]
    assert pa.Table.from_batches(batches).to_pydict() == {"id": ["A", "B"], "amount": ["1", "2"]}


def test_a_wanted_column_named_twice_is_refused(tmp_path):
    path = write(tmp_path / "b.csv", b"id,amount,amount\nA,1,2\n")
    with pytest.raises(InputFileError, match="has 2 columns named 'amount'"):
        list(
            batch_columns.iter_columns(batch_columns.read_header(path), 10, None, {"id", "amount"})
        )
    table = pa.Table.from_arrays([pa.array(["A"]), pa.array([1]), pa.array([2])], ["id", "x", "x"])
    pq.write_table(table, tmp_path / "b.parquet")
    header = batch_columns.read_header(tmp_path / "b.parquet")
    (batch,) = batch_columns.iter_columns(header, 10, None, {"id"})
    assert batch.to_pydict() == {"id": ["A"]}
    with pytest.raises(InputFileError, match="has 2 columns named 'x'"):
        list(batch_columns.iter_columns(header, 10, None, {"id", "x"}))


def test_a_file_wider_than_the_limit_is_refused_from_its_first_line(tmp_path):
    names = ",".join(f"c{index}" for index in range(readers.MAX_COLUMNS + 1))
    path = write(tmp_path / "wide.csv", f"{names}\n1,2\n".encode())
    with pytest.raises(InputFileError, match=r"has 10,001 columns; at most 10,000 are read"):
        batch_columns.read_header(path)
    with pytest.raises(InputFileError, match=r"has 10,001 columns"):
        readers.read_frame(path, nrows=10)


def test_a_declared_column_spelt_another_way_is_named(tmp_path):
    path = write(tmp_path / "b.csv", b"ID,EMPLOYEES\nA,1\n")
    header = batch_columns.read_header(path)
    with pytest.raises(InputFileError) as refused:
        batch_columns.check_names(header, ["ID", "employees"])
    assert str(refused.value).startswith(
        "the header has 'EMPLOYEES'; column names are matched exactly - did you mean 'employees'?"
    )
    batch_columns.check_names(header, ["ID", "EMPLOYEES", "absent"])  # exact, or nothing like it


GZIPPED = gzip.compress(b"id,amount\n" + "".join(f"A{n},{n}\n" for n in range(5000)).encode())


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        ("id,region\nA,Sjælland\n".encode("latin-1"), "b.csv", "is not UTF-8: set `encoding`"),
        (GZIPPED[: len(GZIPPED) // 2], "b.csv.gz", "truncated or damaged"),
    ],
)
def test_a_file_that_cannot_be_decoded_says_what_to_do(tmp_path, data, name, expected):
    path = write(tmp_path / name, data)
    with pytest.raises(InputFileError, match=expected):
        header = batch_columns.read_header(path)
        list(batch_columns.iter_columns(header, 10, None, {"id", "region"}))


def test_dates_only_day_first_beside_dates_only_month_first_are_refused():
    frame = pd.DataFrame({"amount": [1, 2], "received": ["13/10/2021", "10/13/2021"]})
    _, problems, _ = conform_rows(frame, KINDS)
    assert "day-first ('13/10/2021') and month-first ('10/13/2021')" in problems["received"]
    conformed, problems, faults = conform_rows(frame, KINDS, {"received": "%d/%m/%Y"})
    assert problems == {} and list(faults) == [1]
    assert conformed.loc[0, "received"] == pd.Timestamp("2021-10-13")


def test_cells_that_are_neither_text_nor_numbers_are_faults_not_crashes():
    frame = pd.DataFrame(
        {
            "amount": [np.array([1, 2]), {"a": 1}, "NaN", 3],
            "received": [5, [1], "nan", "2024-01-02"],  # a number among text is no date
        }
    )
    conformed, problems, faults = conform_rows(frame, KINDS)
    assert problems == {} and sorted(faults) == [0, 1]
    assert [fault.column for fault in faults[0]] == ["amount", "received"]
    assert "epoch seconds" in str(faults[0][1])
    assert conformed["amount"].tolist()[3] == 3.0


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("lines.csv", b"\n\nid,amount\nA,1\n", {"id": ["A"], "amount": ["1"]}),
        ("mixed.jsonl", b'{"id":"A","amount":1}\n{"id":"B","amount":"x"}\n', None),
    ],
)
def test_blank_lines_before_the_header_and_mixed_json_cells_are_read(
    tmp_path, name, data, expected
):
    header = batch_columns.read_header(write(tmp_path / name, data))
    (batch,) = batch_columns.iter_columns(header, 10, None, {"id", "amount"})
    rows = batch.to_pydict()
    assert rows == (expected or {"id": ["A", "B"], "amount": ["1", "x"]})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"id,amount\nA,1,extra\n", "has a line whose fields do not match its header"),
        (b"id," + b"x" * (200 << 10) + b"\nA,1\n", "cannot read the header"),
    ],
)
def test_a_malformed_text_file_says_where_to_look(tmp_path, data, expected):
    with pytest.raises(InputFileError, match=expected):
        header = batch_columns.read_header(write(tmp_path / "b.csv", data))
        list(batch_columns.iter_columns(header, 10, None, {"id", "amount"}))
