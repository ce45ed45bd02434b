"""Tables as agencies have them, read by content and not by name: separators, headers and the
space after a separator sniffed, Excel and JSON lines, gzip whatever the suffix, and numbers
with a decimal comma rewritten only where the params declare it."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from pipelines.config import TableFormat
from pipelines.data import readers
from pipelines.data.readers import InputFileError, read_frame, sniff_format, text_layout
from pipelines.data.storage import iter_record_batches, read_table

CLAIMS = 'claim_id;amount;region;note\nC-1;120.5;North;first claim\nC-2;80;South;"a; b"\n'


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_a_semicolon_file_is_split_on_semicolons(tmp_path: Path) -> None:
    frame = read_table(write(tmp_path / "claims.csv", CLAIMS))
    assert list(frame.columns) == ["claim_id", "amount", "region", "note"]
    assert frame["note"].tolist() == ["first claim", "a; b"]
    assert frame["amount"].tolist() == ["120.5", "80"]  # text: the transform decides types


def test_comma_space_separated_data_without_a_header_is_read_with_named_columns(
    tmp_path: Path,
) -> None:
    census = "39, State-gov, 77516, Bachelors, <=50K\n50, Self-emp, 83311, Masters, >50K\n"
    path = write(tmp_path / "adult.data", census)
    layout = text_layout(path)
    assert (layout.separator, layout.header, layout.skip_initial_space) == (",", False, True)
    frame = read_table(path)
    assert list(frame.columns) == [f"column_{i}" for i in range(1, 6)]
    assert frame["column_2"].tolist() == ["State-gov", "Self-emp"]  # no leading space


def test_a_whitespace_separated_file_is_split_on_runs_of_spaces(tmp_path: Path) -> None:
    credit = "A11  6 A34 1169 1\nA12 48 A32 5951 2\nA14 12 A34 2096 1\n"
    path = write(tmp_path / "german.data", credit)
    assert text_layout(path).separator == readers.WHITESPACE
    frame = read_table(path)
    assert frame.shape == (3, 5) and frame["column_4"].tolist() == ["1169", "5951", "2096"]


def test_a_tab_separated_txt_file_with_a_header(tmp_path: Path) -> None:
    frame = read_table(write(tmp_path / "recalls.txt", "id\tproduct\n1\tkettle, white\n"))
    assert frame.to_dict("list") == {"id": ["1"], "product": ["kettle, white"]}


def test_excel_and_json_lines_are_recognised_by_their_content(tmp_path: Path) -> None:
    table = pd.DataFrame({"case_id": ["047", "048"], "amount": [1.5, 2.0]})
    table.to_excel(tmp_path / "cases.bin", index=False)
    table.to_json(tmp_path / "cases.log", orient="records", lines=True)
    assert sniff_format(tmp_path / "cases.bin") == "excel"
    assert sniff_format(tmp_path / "cases.log") == "jsonl"
    excel = read_table(tmp_path / "cases.bin")
    assert excel["case_id"].tolist() == ["047", "048"]  # text, leading zeros kept
    assert read_table(tmp_path / "cases.log")["amount"].tolist() == [1.5, 2.0]


def test_a_gzipped_file_is_read_whatever_it_is_called(tmp_path: Path) -> None:
    path = write(tmp_path / "export.dat", gzip.compress(CLAIMS.encode()))
    assert read_table(path)["claim_id"].tolist() == ["C-1", "C-2"]


def test_declared_decimal_comma_and_thousands_rewrite_numbers_but_not_codes(
    tmp_path: Path,
) -> None:
    text = "code;amount;label\n047;1.234,5;a,b\n012;7,25;c\n"
    options = TableFormat(decimal=",", thousands=".")
    frame = read_table(write(tmp_path / "amounts.csv", text), options)
    assert frame["amount"].tolist() == ["1234.5", "7.25"]
    assert frame["code"].tolist() == ["047", "012"]
    assert frame["label"].tolist() == ["a,b", "c"]  # not every value is a number: kept


def test_declared_options_win_over_sniffing(tmp_path: Path) -> None:
    path = write(tmp_path / "odd.csv", "a|b\n1|2\n".encode("latin-1") + "é|ü\n".encode("latin-1"))
    options = TableFormat(separator="|", encoding="latin-1", header=True)
    assert read_table(path, options).to_dict("list") == {"a": ["1", "é"], "b": ["2", "ü"]}
    with pytest.raises(InputFileError, match="is not UTF-8: set `encoding`"):
        read_table(path, TableFormat(separator="|", encoding="utf-8"))


def test_a_declared_format_that_does_not_fit_the_file_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path / "claims.csv", CLAIMS)
    with pytest.raises(InputFileError, match=r"cannot read .* as a parquet table"):
        read_frame(path, TableFormat(format="parquet"))


@pytest.mark.parametrize("chunk_rows", [1, 2, 5])
def test_streamed_batches_of_a_whitespace_file_have_one_schema(
    tmp_path: Path, chunk_rows: int
) -> None:
    rows = "".join(f"A{i}  {i} x{i}\n" for i in range(5))
    path = write(tmp_path / "rows.data", rows)
    batches = list(iter_record_batches(path, chunk_rows))
    assert {batch.schema for batch in batches} == {batches[0].schema}
    assert sum(batch.num_rows for batch in batches) == 5
    assert batches[0].column("column_1").to_pylist()[0] == "A0"


def test_streamed_batches_of_a_declared_decimal_comma_file_are_rewritten(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "id;amount\na;1,5\nb;2,25\n")
    (batch,) = list(iter_record_batches(path, 10, TableFormat(decimal=",")))
    assert batch.column("amount").to_pylist() == ["1.5", "2.25"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"separator": ";;"}, "must be one character"),
        ({"encoding": "klingon"}, "unknown encoding 'klingon'"),
        ({"decimal": ",", "thousands": ","}, "thousands and decimal are both ','"),
        ({"format": "xml"}, "format"),
    ],
)
def test_read_options_that_cannot_work_are_refused_by_the_params(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        TableFormat.model_validate(options)


@pytest.mark.parametrize(("name", "label"), [("b.parquet", "a parquet"), ("b.xlsx", "an Excel")])
def test_a_file_named_as_a_binary_format_that_is_not_one_is_refused(
    tmp_path: Path, name: str, label: str
) -> None:
    path = write(tmp_path / name, "case_id\nc-1\n")
    with pytest.raises(InputFileError, match=f"named as {label} file, but its content is not"):
        read_table(path)
