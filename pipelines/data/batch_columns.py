"""A batch read for scoring: its header first (refused at once when too wide, misspelt or
repeating a name that is read), then only the wanted columns parsed, in record batches, so a
wide file costs what its wanted columns cost. pyarrow does the parsing; readers.py settles how
the file is written."""

from __future__ import annotations

import contextlib
import csv
import gzip
import re
import zlib
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zipfile import BadZipFile

import pyarrow as pa

from pipelines.config import TableFormat
from pipelines.data import readers
from pipelines.data.readers import Format, InputFileError, TextLayout
from pipelines.data.storage import arrow_can_read, rebatched

BLOCK_BYTES = 16 << 20  # pyarrow's CSV block; doubled up to MAX_BLOCK_BYTES for a huge cell
MAX_BLOCK_BYTES = 1 << 30


@dataclass(frozen=True)
class TableHeader:
    """A table's column names as the file has them (stripped of surrounding spaces), read
    without parsing its rows."""

    path: Path
    format: Format
    names: list[str]
    in_file: list[str]  # the names as written, in the same order
    skip_rows: int = 1  # text: the lines before the first row of data

    def repeated(self, columns: Collection[str] | None = None) -> dict[str, int]:
        """Names that appear more than once (among `columns`, if given), and how often."""
        counts = Counter(self.names)
        return {
            name: count
            for name, count in counts.items()
            if count > 1 and (columns is None or name in columns)
        }


def read_header(path: Path, table_format: TableFormat | None = None) -> TableHeader:
    """The column names, or InputFileError with what to do: a file wider than MAX_COLUMNS
    (readers), a header that is not in the declared encoding, a damaged file."""
    path = Path(path)
    found = readers.resolve_format(path, table_format)
    blank = 0
    try:
        if found == "parquet":
            import pyarrow.parquet as pq

            in_file = list(pq.read_schema(path).names)
        elif found == "csv":
            in_file, blank = readers.text_header(path, readers.text_layout(path, table_format))
        else:  # Excel and JSON lines are read whole anyway; a JSON line may add a key
            in_file = [str(name) for name in readers.read_frame(path, table_format).columns]
    except InputFileError:
        raise
    except (OSError, ValueError, EOFError, csv.Error, pa.ArrowException, BadZipFile) as error:
        raise readers.explained(path, error) from error
    if not in_file:
        raise InputFileError(f"cannot read {path.name}: the file is empty (no header row)")
    readers.check_width(path, len(in_file))
    names = [name.strip() for name in in_file]
    return TableHeader(path, found, names, in_file, blank + 1 if found == "csv" else 1)


def check_names(header: TableHeader, columns: Collection[str]) -> None:
    """Refuse a file whose header spells a wanted column another way ('EMPLOYEES', 'Employees
    ', 'employee-count' for 'employee_count'): names are matched exactly."""

    def key(name: str) -> str:
        return re.sub(r"[\s_\-]+", "_", name.strip().lower())

    present = set(header.names)
    by_key = {key(name): name for name in header.names}
    for column in columns:
        found = by_key.get(key(column))
        if column not in present and found is not None:
            raise InputFileError(
                f"the header has '{found}'; column names are matched exactly - did you mean "
                f"'{column}'? Rename the column in the file"
            )


def iter_columns(
    header: TableHeader,
    chunk_rows: int,
    table_format: TableFormat | None = None,
    columns: Collection[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """The table in record batches of at most chunk_rows rows, text cells as text, with only
    `columns` (all, if None) parsed: a wide file costs what its wanted columns cost. Names are
    stripped; a wanted name the file repeats is refused. Always yields at least one batch."""
    repeated = header.repeated(columns)
    if repeated:
        name, count = next(iter(repeated.items()))
        raise InputFileError(
            f"the file {header.path.name} has {count} columns named '{name}': rename or remove "
            "all but one"
        )
    wanted = [name for name in header.names if columns is None or name in columns]  # in file order
    path = header.path
    schema = pa.schema([pa.field(name, pa.string()) for name in wanted])
    yielded = False
    try:
        if header.format == "parquet":
            batches = _parquet_batches(header, wanted, chunk_rows)
        elif header.format == "csv" and arrow_can_read(
            layout := readers.text_layout(path, table_format)
        ):
            batches = _arrow_csv_batches(header, layout, wanted, chunk_rows)
        else:
            batches = _frame_batches(header, table_format, wanted, chunk_rows)
        for record_batch in batches:
            if record_batch.num_rows or not yielded:
                yielded = True
                yield record_batch
    except InputFileError:
        raise
    except (OSError, ValueError, EOFError, zlib.error, pa.ArrowException) as error:
        raise readers.explained(path, error) from error
    if not yielded:
        yield pa.RecordBatch.from_pylist([], schema=schema)


def _parquet_batches(
    header: TableHeader, wanted: list[str], chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    as_written = dict(zip(header.names, header.in_file, strict=True))
    # pre_buffer caches what it read until the file is done: memory would grow with it
    source = pq.ParquetFile(header.path, pre_buffer=False)
    read = [as_written[name] for name in wanted]
    for record_batch in source.iter_batches(batch_size=chunk_rows, columns=read):
        yield record_batch.rename_columns(wanted)


def _arrow_csv_batches(
    header: TableHeader, layout: TextLayout, wanted: list[str], chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    """pyarrow's CSV reader, converting only the wanted columns; a cell larger than a block
    reopens the file with larger blocks and skips the rows already given."""
    import pyarrow.csv as pacsv

    # names the file repeats but nobody reads are made unique, so pyarrow can tell them apart
    seen: Counter[str] = Counter()
    names = []
    for name in header.names:
        seen[name] += 1
        names.append(name if seen[name] == 1 else f"{name}\x1f{seen[name]}")
    # a byte-order mark sits in the header row, which is skipped: UTF-8 is read natively then
    encoding = (
        "utf8" if layout.encoding.lower() in ("utf-8-sig", "utf-8", "utf8") else layout.encoding
    )
    block, given = BLOCK_BYTES, 0
    while True:
        options = {
            "read_options": pacsv.ReadOptions(
                block_size=block,
                encoding=encoding,
                column_names=names,
                skip_rows=header.skip_rows,
            ),
            "parse_options": pacsv.ParseOptions(
                delimiter=layout.separator, quote_char=layout.quote, newlines_in_values=True
            ),
            "convert_options": pacsv.ConvertOptions(
                include_columns=wanted,
                column_types={name: pa.string() for name in wanted},
                strings_can_be_null=True,
            ),
        }
        skip = given
        try:
            with _byte_stream(header.path, layout.gzipped) as source:
                for record_batch in rebatched(pacsv.open_csv(source, **options), chunk_rows):
                    if skip >= record_batch.num_rows:
                        skip -= record_batch.num_rows
                        continue
                    record_batch = record_batch.slice(skip)
                    skip = 0
                    given += record_batch.num_rows
                    yield record_batch
            return
        except pa.ArrowInvalid as error:
            if "straddling" not in str(error):
                raise
            if block >= MAX_BLOCK_BYTES:
                raise InputFileError(
                    f"the file {header.path.name} has a cell larger than "
                    f"{MAX_BLOCK_BYTES >> 20} MB, or an unclosed quote: check its quoting"
                ) from error
            block *= 4


@contextlib.contextmanager
def _byte_stream(path: Path, gzipped: bool) -> Iterator[Any]:
    """The file's bytes for pyarrow; gunzipped by Python's gzip, which raises EOFError on a
    truncated file where pyarrow's stream ends without a word."""
    if not gzipped:
        with pa.input_stream(path) as stream:
            yield stream
        return
    with gzip.open(path, "rb") as unzipped, pa.PythonFile(unzipped, mode="r") as stream:
        yield stream


def _as_text(value: object) -> object:
    return value if value is None or isinstance(value, str) else str(value)


def _frame_batches(
    header: TableHeader, table_format: TableFormat | None, wanted: list[str], chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    """Text pyarrow cannot read, Excel and JSON lines, through pandas: the wanted columns of
    each chunk, every chunk in the first one's schema."""
    schema: pa.Schema | None = None
    for frame in readers.iter_frames(header.path, table_format, chunk_rows):
        frame.columns = [str(name).strip() for name in frame.columns]
        frame = frame.loc[:, [name in wanted for name in frame.columns]]
        for column in [c for c in frame.columns if frame[c].dtype == object]:  # mixed: as text
            frame[column] = frame[column].map(_as_text)
        if schema is None:
            schema = pa.Schema.from_pandas(frame, preserve_index=False)
        table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
        yield from table.to_batches(max_chunksize=chunk_rows) or [
            pa.RecordBatch.from_pylist([], schema=schema)
        ]
