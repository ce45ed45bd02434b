"""Reading tables with clear errors, atomic writes, and publishing a batch exactly once."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.data.storage import (
    InputFileError,
    PartWriter,
    StagedDirectory,
    count_rows,
    file_sha256,
    iter_record_batches,
    publish_batch,
    read_manifest,
    read_rasff_csv,
    read_table,
    rebatched,
    remove_stale_staging,
    write_json,
    write_parquet,
    write_parquet_stream,
)
from pipelines.durable import file_lock as exclusive_lock


def frame(start: int = 0, rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "case_id": [f"c-{i}" for i in range(start, start + rows)],
            "score": [i / 10 for i in range(start, start + rows)],
        }
    )


def leftovers(directory: Path) -> list[str]:
    """Hidden temporary files or staging directories an interrupted write could leave."""
    return sorted(path.name for path in directory.iterdir() if path.name.startswith("."))


# --- read_table -----------------------------------------------------------------------------------


def test_read_table_reads_csv_as_text_so_codes_keep_leading_zeros(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    path.write_text("case_id,industry_code,amount\nc-1,047,1.5\nc-2,,2\n", encoding="utf-8")

    table = read_table(path)

    assert table["industry_code"].iloc[0] == "047"
    assert pd.isna(table["industry_code"].iloc[1])
    assert table["amount"].tolist() == ["1.5", "2"]


def test_read_table_reads_gzipped_csv_with_an_upper_case_suffix(tmp_path: Path) -> None:
    path = tmp_path / "BATCH.CSV.GZ"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("case_id,x\nc-1,1\n")

    assert read_table(path).to_dict("list") == {"case_id": ["c-1"], "x": ["1"]}


def test_read_table_reads_parquet_with_its_types(tmp_path: Path) -> None:
    path = write_parquet(frame(), tmp_path / "batch.parquet")

    table = read_table(path)

    pd.testing.assert_frame_equal(table, frame(), check_dtype=False)
    assert table["score"].dtype == "float64"


def test_missing_file_raises_input_file_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.parquet"

    with pytest.raises(
        InputFileError, match=re.escape(f"input file not found: {missing}. Check the path")
    ):
        read_table(missing)


def test_directory_raises_input_file_error(tmp_path: Path) -> None:
    folder = tmp_path / "batch.parquet"
    folder.mkdir()

    with pytest.raises(InputFileError, match=re.escape(f"input path is not a file: {folder}")):
        read_table(folder)


def test_corrupt_parquet_raises_input_file_error(tmp_path: Path) -> None:
    path = tmp_path / "batch.parquet"
    path.write_bytes(b"PAR1 this is not really parquet")

    with pytest.raises(InputFileError, match=re.escape(f"cannot read {path} as a parquet table")):
        read_table(path)


def test_a_file_named_csv_gz_that_is_plain_text_is_read_by_its_content(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv.gz"
    path.write_text("case_id\nc-1\n")

    assert read_table(path)["case_id"].tolist() == ["c-1"]


def test_empty_csv_raises_input_file_error(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    path.write_text("")

    with pytest.raises(InputFileError, match="the file is empty"):
        read_table(path)


@pytest.mark.parametrize("name", ["batch.txt", "batch.data", "batch.json", "batch"])
def test_any_name_is_read_by_its_content(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("case_id\nc-1\n")

    assert read_table(path)["case_id"].tolist() == ["c-1"]


def test_an_old_excel_workbook_says_how_to_save_it(tmp_path: Path) -> None:
    path = tmp_path / "batch.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))

    with pytest.raises(InputFileError, match=r"Excel 97-2003 \(\.xls\).*save it as \.xlsx or CSV"):
        read_table(path)


def test_unreadable_file_raises_input_file_error(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    path.write_text("case_id\nc-1\n")
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("permissions do not stop this user from reading (running as root)")
        with pytest.raises(
            InputFileError, match=re.escape(f"cannot read {path}: permission denied")
        ):
            read_table(path)
    finally:
        path.chmod(0o600)


def test_input_file_error_is_an_os_error() -> None:
    assert issubclass(InputFileError, OSError)


def test_read_rasff_csv_reads_semicolons_and_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "rasff.csv"
    path.write_text("DATE CASE;RISK DECISION\n01/02/2020;serious\n;\n", encoding="utf-8-sig")

    table = read_rasff_csv(path)

    assert list(table.columns) == ["DATE CASE", "RISK DECISION"]
    assert table["RISK DECISION"].tolist() == ["serious", ""]  # blanks stay blank, not NaN


def test_read_rasff_csv_of_a_missing_file_raises_input_file_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="RASFF data not found"):
        read_rasff_csv(tmp_path / "rasff.csv.gz")


def test_file_sha256_is_the_digest_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    payload = b"x" * 3000 + b"y"
    path.write_bytes(payload)

    assert file_sha256(path, block_size=1024) == hashlib.sha256(payload).hexdigest()
    with pytest.raises(FileNotFoundError):
        file_sha256(tmp_path / "missing.bin")


# --- write_parquet_stream -------------------------------------------------------------------------


def test_write_parquet_stream_writes_every_chunk_in_order(tmp_path: Path) -> None:
    path = tmp_path / "out" / "table.parquet"

    rows = write_parquet_stream((frame(start, 2) for start in (0, 2, 4)), path)

    assert rows == 6
    written = pd.read_parquet(path)
    assert written["case_id"].tolist() == [f"c-{i}" for i in range(6)]
    assert leftovers(path.parent) == []


def test_write_parquet_stream_without_chunks_raises_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"

    with pytest.raises(ValueError, match="nothing to write: no chunks were given"):
        write_parquet_stream([], path)

    assert list(tmp_path.iterdir()) == []


def test_a_failing_chunk_source_leaves_no_file_and_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"

    def chunks() -> Iterator[pd.DataFrame]:
        yield frame(0, 2)
        yield frame(2, 2)
        raise RuntimeError("the generator broke mid-way")

    with pytest.raises(RuntimeError, match="broke mid-way"):
        write_parquet_stream(chunks(), path)

    assert list(tmp_path.iterdir()) == []


def test_a_failing_rewrite_keeps_the_previous_file(tmp_path: Path) -> None:
    path = write_parquet(frame(0, 3), tmp_path / "table.parquet")

    def chunks() -> Iterator[pd.DataFrame]:
        yield frame(10, 5)
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        write_parquet_stream(chunks(), path)

    assert pd.read_parquet(path)["case_id"].tolist() == ["c-0", "c-1", "c-2"]
    assert leftovers(tmp_path) == []


def test_chunks_with_a_different_schema_are_rejected_without_a_file(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"

    with pytest.raises(ValueError, match="schema"):
        write_parquet_stream([frame(), pd.DataFrame({"other": [1]})], path)

    assert list(tmp_path.iterdir()) == []


# --- publish_batch --------------------------------------------------------------------------------


def test_publish_batch_publishes_scores_and_manifest_once(tmp_path: Path) -> None:
    batch_dir = tmp_path / "outputs" / "demo" / "triage" / "batch-1"
    manifest = {"batch_id": "batch-1", "rows": 3}

    first = publish_batch(frame(), manifest, batch_dir)
    second = publish_batch(frame(10, 5), {"batch_id": "batch-1", "rows": 5}, batch_dir)

    assert first == (batch_dir, True)
    assert second == (batch_dir, False)
    assert sorted(path.name for path in batch_dir.iterdir()) == ["manifest.json", "scored.parquet"]
    assert read_manifest(batch_dir) == manifest
    pd.testing.assert_frame_equal(pd.read_parquet(batch_dir / "scored.parquet"), frame())
    assert leftovers(batch_dir.parent) == []


def test_publish_batch_refuses_to_merge_into_a_foreign_directory(tmp_path: Path) -> None:
    batch_dir = tmp_path / "batch-1"
    batch_dir.mkdir()
    (batch_dir / "notes.txt").write_text("someone else's file")

    with pytest.raises(OSError, match="not empty"):
        publish_batch(frame(), {"rows": 3}, batch_dir)

    assert sorted(path.name for path in batch_dir.iterdir()) == ["notes.txt"]
    assert leftovers(tmp_path) == []


def test_read_manifest_of_an_unpublished_batch_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"manifest\.json"):
        read_manifest(tmp_path / "batch-1")


# --- write_json -----------------------------------------------------------------------------------


def test_write_json_writes_sorted_readable_json(tmp_path: Path) -> None:
    path = write_json(tmp_path / "deep" / "report.json", {"b": 1, "a": Path("/x")})

    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == {"a": "/x", "b": 1}  # non-JSON values are written as text
    assert text.index('"a"') < text.index('"b"') and text.endswith("\n")


def test_write_json_that_fails_keeps_the_previous_file(tmp_path: Path) -> None:
    path = write_json(tmp_path / "report.json", {"version": 1})
    circular: dict[str, object] = {"version": 2}
    circular["self"] = circular

    with pytest.raises(ValueError, match="Circular reference"):
        write_json(path, circular)

    assert json.loads(path.read_text()) == {"version": 1}
    assert leftovers(tmp_path) == []


# --- permissions of what gets written -------------------------------------------------------------


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("writer", ["json", "parquet"])
def test_atomic_writes_get_the_same_permissions_as_a_plain_write(
    tmp_path: Path, umask_022: None, writer: str
) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    if writer == "json":
        written = write_json(tmp_path / "report.json", {"a": 1})
    else:
        written = write_parquet(frame(), tmp_path / "table.parquet")

    assert mode(written) == mode(plain) == 0o644


def test_published_batch_directory_is_readable_like_a_plain_directory(
    tmp_path: Path, umask_022: None
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()

    batch_dir, _ = publish_batch(frame(), {"rows": 3}, tmp_path / "batch-1")

    assert mode(batch_dir) == mode(plain) == 0o755


# --- quarantine folders, publishing and CSV for people --------------------------------------------

import csv  # noqa: E402

from pipelines.data.storage import (  # noqa: E402
    neutralise_formulas,
    publish_directory,
    quarantine_input,
    quarantine_rows,
    write_csv,
)

RISKY_CELLS = [
    '=HYPERLINK("http://evil.example","click")',
    "@SUM(A1:A9)",
    "+1",
    "-1",
    "\tcmd",
    "\r=1+1",
]
SAFE_CELLS = ["north", "a=b", "", "x =1", "1-2", "'=already safe"]


# cells with a carriage return are checked by their own test below
CSV_RISKY_CELLS = [cell for cell in RISKY_CELLS if "\r" not in cell]


def rows_to_quarantine() -> pd.DataFrame:
    count = len(CSV_RISKY_CELLS)
    return pd.DataFrame(
        {
            "case_id": [f"c-{i}" for i in range(count)],
            "note": CSV_RISKY_CELLS,
            "amount": [float(i) for i in range(count)],
            "failed_expectations": ["'note' is at most 5 characters long"] * count,
        }
    )


def read_csv_as_text(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_quarantine_rows_writes_parquet_csv_and_report(tmp_path: Path) -> None:
    rows = rows_to_quarantine()
    report = {"batch_id": "batch-1", "row_counts": {"in": 10, "quarantined": 5}}
    target = tmp_path / "quarantine" / "demo" / "triage" / "batch-1"

    folder = quarantine_rows(rows, report, target)

    assert folder == target
    assert sorted(p.name for p in folder.iterdir()) == ["report.json", "rows.csv", "rows.parquet"]
    pd.testing.assert_frame_equal(pd.read_parquet(folder / "rows.parquet"), rows)  # data as is
    csv = read_csv_as_text(folder / "rows.csv")
    assert csv["note"].tolist() == ["'" + cell for cell in CSV_RISKY_CELLS]
    assert csv["case_id"].tolist() == rows["case_id"].tolist()
    assert csv["failed_expectations"].tolist() == rows["failed_expectations"].tolist()
    assert json.loads((folder / "report.json").read_text(encoding="utf-8")) == report
    assert leftovers(target.parent) == []


def test_quarantine_rows_a_second_time_keeps_the_first_folder(tmp_path: Path) -> None:
    target = tmp_path / "batch-1"
    first = rows_to_quarantine()
    quarantine_rows(first, {"attempt": 1}, target)

    again = quarantine_rows(first.iloc[:1], {"attempt": 2}, target)

    assert again == target
    assert json.loads((target / "report.json").read_text()) == {"attempt": 1}
    assert len(pd.read_parquet(target / "rows.parquet")) == len(first)
    assert leftovers(tmp_path) == []


def test_quarantine_rows_from_a_parquet_batch_with_a_categorical_column(tmp_path: Path) -> None:
    path = write_parquet(
        pd.DataFrame({"case_id": ["c-1", "c-2"], "region": pd.Categorical(["north", "-south"])}),
        tmp_path / "batch.parquet",
    )
    rows = read_table(path)
    assert isinstance(rows["region"].dtype, pd.CategoricalDtype)  # as a batch comes in

    folder = quarantine_rows(rows, {"batch_id": "b"}, tmp_path / "quarantine")

    assert read_csv_as_text(folder / "rows.csv")["region"].tolist() == ["north", "'-south"]


@pytest.mark.parametrize("cell", ["\r=1+1", "note\r=1+1", "note\r@SUM(A1:A9)"])
def test_a_carriage_return_in_a_cell_cannot_start_a_new_row(tmp_path: Path, cell: str) -> None:
    table = pd.DataFrame({"case_id": ["c-1", "c-2"], "note": [cell, "plain"]})

    written = write_csv(table, tmp_path / "rows.csv")

    with open(written, newline="", encoding="utf-8") as handle:
        records = list(csv.reader(handle))
    assert [record[0] for record in records] == ["case_id", "c-1", "c-2"]
    assert not any(value.startswith("=") for record in records for value in record)


@pytest.mark.parametrize(
    ("name", "copy"),
    [
        ("batch.csv", "input.csv"),
        ("batch.csv.gz", "input.csv.gz"),
        ("BATCH.CSV.GZ", "input.CSV.GZ"),
        ("batch.parquet", "input.parquet"),
        ("batch", "input"),
    ],
)
def test_quarantine_input_copies_the_file_byte_for_byte(
    tmp_path: Path, name: str, copy: str
) -> None:
    source = tmp_path / "inbox" / name
    source.parent.mkdir()
    payload = gzip.compress(b"case_id,x\nc-1,\xff\x00\r\n") + bytes(range(256))
    source.write_bytes(payload)
    report = {"rejected": ["expected column 'x' is present, but it is missing"]}

    folder = quarantine_input(source, report, tmp_path / "quarantine" / "batch-1")

    assert sorted(p.name for p in folder.iterdir()) == sorted([copy, "report.json"])
    assert (folder / copy).read_bytes() == payload
    assert file_sha256(folder / copy) == file_sha256(source)
    assert json.loads((folder / "report.json").read_text()) == report
    assert source.read_bytes() == payload  # the input itself is left where it was


def test_quarantine_input_a_second_time_keeps_the_first_copy(tmp_path: Path) -> None:
    source = tmp_path / "batch.csv"
    source.write_text("case_id\nc-1\n")
    target = tmp_path / "quarantine" / "batch-1"
    quarantine_input(source, {"attempt": 1}, target)
    source.write_text("case_id\nc-2\n")

    assert quarantine_input(source, {"attempt": 2}, target) == target

    assert (target / "input.csv").read_text() == "case_id\nc-1\n"
    assert json.loads((target / "report.json").read_text()) == {"attempt": 1}


@pytest.mark.parametrize(
    ("name", "copy"),
    [("batch.2024-05-10.csv", "input.csv"), ("export.v2.parquet", "input.parquet")],
)
def test_quarantine_input_keeps_only_the_table_suffix(tmp_path: Path, name: str, copy: str) -> None:
    source = tmp_path / name
    source.write_bytes(b"case_id\nc-1\n")

    folder = quarantine_input(source, {}, tmp_path / "quarantine")

    assert sorted(p.name for p in folder.iterdir()) == sorted([copy, "report.json"])


@pytest.mark.parametrize("failing", ["a.txt", "report.json"])
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_publish_directory_that_fails_leaves_nothing_behind(
    tmp_path: Path, failing: str, error: type[BaseException]
) -> None:
    target = tmp_path / "out" / "batch-1"

    def write(name: str):
        def writer(path: Path) -> None:
            if name == failing:
                raise error(f"{name} broke")
            path.write_text(name)

        return writer

    files = {name: write(name) for name in ("report.json", "a.txt", "b.txt")}

    with pytest.raises(error, match=f"{failing} broke"):
        publish_directory(target, files, marker="report.json")

    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []  # no staging folder either


def test_publish_directory_writes_the_marker_last(tmp_path: Path) -> None:
    order: list[str] = []

    def write(name: str):
        def writer(path: Path) -> None:
            assert path.parent.name.startswith(".batch-1.")  # a hidden staging folder
            order.append(name)
            path.write_text(name)

        return writer

    files = {name: write(name) for name in ("manifest.json", "b.txt", "a.txt")}

    assert publish_directory(tmp_path / "batch-1", files, marker="manifest.json") == (
        tmp_path / "batch-1",
        True,
    )
    assert order[-1] == "manifest.json" and sorted(order[:-1]) == ["a.txt", "b.txt"]
    assert (tmp_path / "batch-1" / "a.txt").read_text() == "a.txt"
    assert leftovers(tmp_path) == []


def test_publish_directory_does_not_write_into_a_complete_folder(tmp_path: Path) -> None:
    target = tmp_path / "batch-1"
    target.mkdir()
    (target / "manifest.json").write_text("{}")

    def never(path: Path) -> None:
        raise AssertionError(f"{path} should not be written")

    assert publish_directory(
        target, {"x.txt": never, "manifest.json": never}, marker="manifest.json"
    ) == (target, False)
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json"]


@pytest.mark.parametrize("dtype", [object, "str", "string"])
@pytest.mark.parametrize("cell", RISKY_CELLS)
def test_neutralise_formulas_prefixes_cells_a_spreadsheet_would_run(
    cell: str, dtype: object
) -> None:
    table = pd.DataFrame({"note": pd.Series([cell, "safe"], dtype=dtype)})

    safe = neutralise_formulas(table)

    assert safe["note"].tolist() == ["'" + cell, "safe"]
    assert table["note"].tolist() == [cell, "safe"]  # the input frame is not modified


def test_neutralise_formulas_leaves_safe_text_and_other_values_alone() -> None:
    table = pd.DataFrame(
        {
            "text": SAFE_CELLS,
            "mixed": [1, -2.5, None, True, b"=bytes", "-x"],
            "number": [-1, -2, 3, 0, 5, -6],
            "amount": [-1.5, float("nan"), 0.0, 1e9, -0.0, 2.0],
        }
    )
    before = table.copy(deep=True)

    safe = neutralise_formulas(table)

    assert safe["text"].tolist() == SAFE_CELLS
    assert safe["mixed"].tolist()[:5] == [1, -2.5, None, True, b"=bytes"]
    assert safe["mixed"].tolist()[5] == "'-x"
    pd.testing.assert_frame_equal(safe[["number", "amount"]], table[["number", "amount"]])
    pd.testing.assert_frame_equal(table, before)
    assert safe is not table


def test_write_csv_round_trip(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "case_id": ["c-1", "c-2", "c-3"],
            "note": ["=1+1", "plain, with a comma", 'quote "inside"'],
            "score": [0.25, -1.0, 3.0],
        }
    )
    path = tmp_path / "deep" / "scored.csv"

    assert write_csv(table, path) == path

    back = pd.read_csv(path)
    assert back["note"].tolist() == ["'=1+1", "plain, with a comma", 'quote "inside"']
    assert back["score"].tolist() == [0.25, -1.0, 3.0]  # numbers are not text, so not touched
    assert back["case_id"].tolist() == ["c-1", "c-2", "c-3"]
    assert leftovers(path.parent) == []

    write_csv(table.iloc[:1], path)  # a rewrite replaces the file
    assert len(pd.read_csv(path)) == 1


# --- streaming reads, staging folders, locks and parts --------------------------------------------

STREAM_ROWS = 2_500


def stream_rows() -> dict[str, list[str | None]]:
    """Rows as a CSV holds them: codes with leading zeros, empty cells, line breaks in a cell."""
    return {
        "case_id": [f"c-{i}" for i in range(STREAM_ROWS)],
        "industry_code": [f"{i % 1000:03d}" for i in range(STREAM_ROWS)],
        "amount": [None if i % 7 == 0 else str(i) for i in range(STREAM_ROWS)],
        "note": [
            f'line {i}\nand, "more"' if i % 100 == 0 else f"note {i}" for i in range(STREAM_ROWS)
        ],
    }


def write_stream_csv(path: Path) -> Path:
    columns = stream_rows()
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(columns))
        cells = [[cell or "" for cell in column] for column in columns.values()]
        writer.writerows(zip(*cells, strict=True))
    return path


def chunk_sizes(rows: int, chunk_rows: int) -> list[int]:
    return [min(chunk_rows, rows - start) for start in range(0, rows, chunk_rows)]


@pytest.mark.parametrize("chunk_rows", [1, 300, 1_000, 2_500, 4_000])
def test_iter_record_batches_reads_parquet_in_chunks_of_exactly_chunk_rows(
    tmp_path: Path, chunk_rows: int
) -> None:
    table = pa.table({"case_id": [f"c-{i}" for i in range(2_500)], "x": list(range(2_500))})
    path = tmp_path / "batch.parquet"
    pq.write_table(table, path, row_group_size=1_000)  # chunks straddle row groups

    batches = list(iter_record_batches(path, chunk_rows))

    assert [b.num_rows for b in batches] == chunk_sizes(2_500, chunk_rows)
    assert all(b.schema.equals(table.schema) for b in batches)
    assert pa.Table.from_batches(batches).equals(table)


@pytest.mark.parametrize("name", ["batch.csv", "batch.csv.gz"])
@pytest.mark.parametrize("chunk_rows", [1, 300, 1_000, 2_500, 4_000])
def test_iter_record_batches_reads_csv_in_chunks_of_exactly_chunk_rows_as_text(
    tmp_path: Path, name: str, chunk_rows: int
) -> None:
    path = write_stream_csv(tmp_path / name)

    batches = list(iter_record_batches(path, chunk_rows))

    assert [b.num_rows for b in batches] == chunk_sizes(STREAM_ROWS, chunk_rows)
    schema = batches[0].schema
    assert schema.names == ["case_id", "industry_code", "amount", "note"]
    assert all(field.type == pa.string() for field in schema)
    assert all(b.schema.equals(schema) for b in batches)
    assert pa.Table.from_batches(batches).to_pydict() == stream_rows()


def test_iter_record_batches_keeps_codes_as_text_and_empty_cells_as_null(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    path.write_text("case_id,industry_code,amount\nc-1,047,1.5\nc-2,,2\nc-3,007,\n")

    [batch] = iter_record_batches(path, 10)

    assert batch.to_pydict() == {
        "case_id": ["c-1", "c-2", "c-3"],
        "industry_code": ["047", None, "007"],
        "amount": ["1.5", "2", None],
    }


def test_a_line_break_inside_a_quoted_csv_cell_stays_in_its_row(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    path.write_text('case_id,note\nc-1,"first line\nsecond, line"\nc-2,plain\nc-3,"a\r\nb"\n')

    batches = list(iter_record_batches(path, 1))

    assert [b.to_pydict() for b in batches] == [
        {"case_id": ["c-1"], "note": ["first line\nsecond, line"]},
        {"case_id": ["c-2"], "note": ["plain"]},
        {"case_id": ["c-3"], "note": ["a\r\nb"]},
    ]


def test_a_header_only_csv_yields_one_empty_batch_of_text_columns(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    path.write_text("case_id,industry_code\n")

    [batch] = iter_record_batches(path, 100)

    assert batch.num_rows == 0
    assert batch.schema.names == ["case_id", "industry_code"]
    assert all(field.type == pa.string() for field in batch.schema)


def test_an_empty_parquet_yields_one_empty_batch_with_its_schema(tmp_path: Path) -> None:
    schema = pa.schema([("case_id", pa.string()), ("x", pa.int64())])
    path = tmp_path / "batch.parquet"
    pq.write_table(schema.empty_table(), path)

    [batch] = iter_record_batches(path, 100)

    assert batch.num_rows == 0
    assert batch.schema.equals(schema)


def test_iter_record_batches_of_a_missing_file_raises_input_file_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"

    with pytest.raises(InputFileError, match=re.escape(f"input file not found: {missing}")):
        next(iter_record_batches(missing, 10))


@pytest.mark.parametrize("name", ["batch.txt", "batch.json", "batch"])
def test_iter_record_batches_reads_any_name_by_its_content(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("case_id\nc-1\n")

    (batch,) = list(iter_record_batches(path, 10))
    assert batch.to_pydict() == {"case_id": ["c-1"]}


@pytest.mark.parametrize("chunk_rows", [1, 4, 10, 36, 50])
def testrebatched_makes_batches_of_exactly_chunk_rows_whatever_comes_in(chunk_rows: int) -> None:
    sizes = [7, 0, 3, 1, 25, 0]  # as a CSV reader's blocks might come
    values = iter(range(sum(sizes)))
    schema = pa.schema([("x", pa.int64())])
    incoming = [
        pa.RecordBatch.from_pydict({"x": [next(values) for _ in range(size)]}, schema=schema)
        for size in sizes
    ]

    batches = list(rebatched(incoming, chunk_rows))

    assert [b.num_rows for b in batches] == chunk_sizes(36, chunk_rows)
    assert [x for b in batches for x in b.column("x").to_pylist()] == list(range(36))


def test_count_rows_reads_a_parquet_footer_and_cannot_know_a_csv(tmp_path: Path) -> None:
    parquet = tmp_path / "batch.parquet"
    pq.write_table(pa.table({"x": list(range(2_500))}), parquet, row_group_size=1_000)

    assert count_rows(parquet) == 2_500
    assert count_rows(write_stream_csv(tmp_path / "batch.csv")) is None
    assert count_rows(write_stream_csv(tmp_path / "batch.csv.gz")) is None


def write_marker(text: str):
    def writer(path: Path) -> None:
        assert (path.parent / "scored.txt").is_file()  # the marker comes last
        path.write_text(text)

    return writer


def test_a_staged_directory_is_hidden_until_commit_publishes_it(tmp_path: Path) -> None:
    target = tmp_path / "outputs" / "batch-1"

    staged = StagedDirectory(target)
    (staged.path / "scored.txt").write_text("rows")

    assert not target.exists()
    [hidden] = leftovers(target.parent)
    assert hidden.startswith(".batch-1.") and hidden.endswith(".staging")
    assert sorted(p.name for p in target.parent.iterdir()) == [hidden]

    assert staged.commit("manifest.json", write_marker("first")) == (target, True)

    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "scored.txt"]
    assert (target / "manifest.json").read_text() == "first"
    assert leftovers(target.parent) == []


def test_a_second_commit_to_a_complete_target_keeps_the_first(tmp_path: Path) -> None:
    target = tmp_path / "batch-1"
    first = StagedDirectory(target)
    (first.path / "scored.txt").write_text("first rows")
    first.commit("manifest.json", write_marker("first"))

    second = StagedDirectory(target)
    (second.path / "scored.txt").write_text("second rows")

    assert second.commit("manifest.json", write_marker("second")) == (target, False)

    assert (target / "scored.txt").read_text() == "first rows"
    assert (target / "manifest.json").read_text() == "first"
    assert leftovers(tmp_path) == []


def test_discard_removes_the_staging_folder_and_publishes_nothing(tmp_path: Path) -> None:
    staged = StagedDirectory(tmp_path / "batch-1")
    (staged.path / "scored.txt").write_text("rows")

    staged.discard()

    assert list(tmp_path.iterdir()) == []


def test_remove_stale_staging_removes_only_that_targets_hidden_folders(tmp_path: Path) -> None:
    target = tmp_path / "batch-1"
    stale = sorted([StagedDirectory(target).path, StagedDirectory(target).path])
    published = StagedDirectory(tmp_path / "batch-0")
    (published.path / "scored.txt").write_text("rows")
    published.commit("manifest.json", write_marker("done"))
    neighbours = [StagedDirectory(tmp_path / name).path for name in ("batch-10", "batch-0")]
    (tmp_path / ".batch-1.json").write_text("{}")  # hidden, but not a staging folder

    removed = remove_stale_staging(target)

    assert removed == stale
    assert not any(path.exists() for path in stale)
    assert all(path.is_dir() for path in neighbours)
    assert (tmp_path / "batch-0" / "manifest.json").is_file()
    assert (tmp_path / ".batch-1.json").is_file()
    # a sibling whose name only starts with the target's keeps its staging folder
    sibling = StagedDirectory(tmp_path / "batch-1.v2").path
    assert remove_stale_staging(target) == [] and sibling.is_dir()
    assert remove_stale_staging(tmp_path / "missing" / "batch-1") == []


LOCK_PROBE = """
import fcntl, sys
with open(sys.argv[1], "a") as handle:
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print("held")
    else:
        print("taken")
"""


def lock_from_another_process(path: Path) -> str:
    """'taken' if another process can take the lock at once, 'held' if it cannot."""
    probe = subprocess.run(
        [sys.executable, "-c", LOCK_PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return probe.stdout.strip()


def test_exclusive_lock_keeps_another_process_out_until_released(tmp_path: Path) -> None:
    lock = tmp_path / "locks" / "batch-1.lock"

    with exclusive_lock(lock):
        assert lock.is_file()
        assert lock_from_another_process(lock) == "held"

    assert lock_from_another_process(lock) == "taken"


def test_exclusive_lock_is_released_when_the_block_fails(tmp_path: Path) -> None:
    lock = tmp_path / "batch-1.lock"

    with pytest.raises(RuntimeError, match="scoring broke"), exclusive_lock(lock):
        raise RuntimeError("scoring broke")

    assert lock_from_another_process(lock) == "taken"


NUMBERED = pa.schema([("case_id", pa.string()), ("x", pa.int64())])


def numbered(start: int, rows: int) -> pa.Table:
    positions = range(start, start + rows)
    return pa.table({"case_id": [f"c-{i}" for i in positions], "x": list(positions)}, NUMBERED)


@pytest.mark.parametrize(
    ("rows", "write_rows", "sizes"),
    [
        (2_500, 300, [1_000, 1_000, 500]),
        (2_500, 2_500, [1_000, 1_000, 500]),
        (2_000, 700, [1_000, 1_000]),
    ],
)
def test_part_writer_splits_rows_into_parts_of_at_most_part_rows(
    tmp_path: Path, rows: int, write_rows: int, sizes: list[int]
) -> None:
    folder = tmp_path / "scored"
    writer = PartWriter(folder, NUMBERED, part_rows=1_000)

    for start in range(0, rows, write_rows):
        writer.write(numbered(start, min(write_rows, rows - start)))
    parts = writer.close()

    assert parts == [folder / f"part-{i:05d}.parquet" for i in range(len(sizes))]
    assert sorted(folder.iterdir()) == parts
    assert [pq.read_metadata(part).num_rows for part in parts] == sizes
    assert writer.rows == rows
    back = pa.concat_tables(pq.read_table(part) for part in parts)
    assert back.equals(numbered(0, rows))


def test_part_writer_given_nothing_writes_one_empty_part(tmp_path: Path) -> None:
    writer = PartWriter(tmp_path / "scored", NUMBERED, part_rows=1_000)
    writer.write(numbered(0, 0))

    [part] = writer.close()

    assert part == tmp_path / "scored" / "part-00000.parquet"
    empty = pq.read_table(part)
    assert empty.num_rows == 0 and empty.schema.equals(NUMBERED)


def test_an_upper_case_gzipped_csv_streams_like_a_lower_case_one(tmp_path: Path) -> None:
    lower = write_stream_csv(tmp_path / "batch.csv.gz")
    upper = lower.rename(tmp_path / "BATCH.CSV.GZ")

    [batch] = list(iter_record_batches(upper, 10_000))

    assert batch.num_rows == STREAM_ROWS
    assert batch.column("industry_code").to_pylist()[:2] == ["000", "001"]
