"""Tables as agencies have them. The format is sniffed from the file's content (parquet, Excel,
JSON lines, or delimited text, gzipped or not), whatever the file is called; for text, the
separator, quoting, header and the space after a separator are sniffed (Python's csv.Sniffer)
unless the params set them. Text cells are read as text, so codes like '047' survive; numbers
written with a decimal comma or thousands separators are rewritten the plain way when the params
declare them. pandas and pyarrow do the parsing."""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from zipfile import BadZipFile

import pandas as pd
import pyarrow as pa

from pipelines.config import TableFormat

Format = Literal["csv", "parquet", "excel", "jsonl"]
WHITESPACE = "whitespace"
LABELS = {"csv": "a CSV", "parquet": "a parquet", "excel": "an Excel", "jsonl": "a JSON lines"}
SNIFF_BYTES = 64 * 1024
CANDIDATE_SEPARATORS = ",;\t|"
MAGIC = {b"PAR1": "parquet", b"PK\x03\x04": "excel"}
OLD_EXCEL = b"\xd0\xcf\x11\xe0"
GZIP = b"\x1f\x8b"


class InputFileError(OSError):
    """An input table is missing, unreadable or not a table we can read."""


@dataclass(frozen=True)
class TextLayout:
    """How a delimited text file is written, settled from the params and the file itself."""

    separator: str  # one character, or WHITESPACE
    quote: str
    encoding: str
    header: bool
    skip_initial_space: bool
    decimal: str
    thousands: str | None
    gzipped: bool

    def describe(self) -> str:
        shown = {"\t": "tab", " ": "space", WHITESPACE: "whitespace"}.get(
            self.separator, repr(self.separator)
        )
        return f"separator {shown}, {'a header row' if self.header else 'no header row'}"


BINARY_SUFFIXES = {".parquet": "parquet", ".xlsx": "excel"}


def sniff_format(path: Path) -> Format:
    """The table's format from its first bytes, not its name; only a file named as a binary
    format (.parquet, .xlsx) that is not one is refused, as the damaged file it likely is."""
    head = _first_bytes(path, 8)
    for magic, found in MAGIC.items():
        if head.startswith(magic):
            return found  # type: ignore[return-value]
    named = BINARY_SUFFIXES.get(Path(path).suffix.lower())
    if named is not None:
        raise InputFileError(
            f"cannot read {path}: it is named as {LABELS[named]} file, but its content is not "
            f"one ({len(head)} byte(s) read); it may be truncated or damaged. Send it again, or "
            "give it a name that says what it is"
        )
    if head.startswith(OLD_EXCEL):
        raise InputFileError(
            f"{path} is an Excel 97-2003 (.xls) workbook, which is not read here: save it as "
            ".xlsx or CSV"
        )
    sample = _text_sample(path, "utf-8-sig", is_gzipped(path))
    first = sample.lstrip()[:1]
    return "jsonl" if first == "{" else "csv"


def is_gzipped(path: Path) -> bool:
    return _first_bytes(path, 2) == GZIP


def _first_bytes(path: Path, count: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(count)
    except OSError as error:
        raise InputFileError(f"cannot read {path}: {error.strerror or error}") from error


def _text_sample(path: Path, encoding: str, gzipped: bool) -> str:
    opener = gzip.open if gzipped else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read(SNIFF_BYTES)
    except (OSError, EOFError, zlib.error) as error:
        raise explained(path, error) from error
    text = raw.decode(encoding, errors="replace")
    return text if len(raw) < SNIFF_BYTES else text.rsplit("\n", 1)[0]  # whole lines only


def resolve_format(path: Path, table_format: TableFormat | None) -> Format:
    declared = (table_format or TableFormat()).format
    return sniff_format(path) if declared == "auto" else declared


def text_layout(path: Path, table_format: TableFormat | None = None) -> TextLayout:
    """The params' text options, with what they leave open sniffed from the file's start."""
    options = table_format or TableFormat()
    gzipped = is_gzipped(path)
    encoding = options.encoding or "utf-8-sig"
    sample = _text_sample(path, encoding, gzipped)
    separator, skip_space = options.separator, options.skip_initial_space
    header = options.header
    dialect = _sniffed_dialect(sample, options.quote) if separator is None else None
    if separator is None:
        separator = dialect.delimiter if dialect is not None else _whitespace_or_comma(sample)
    if skip_space is None:
        skip_space = bool(dialect.skipinitialspace) if dialect is not None else False
    if header is None:
        header = _has_header(sample, separator)
    return TextLayout(
        separator=separator,
        quote=options.quote,
        encoding=encoding,
        header=header,
        skip_initial_space=skip_space,
        decimal=options.decimal,
        thousands=options.thousands,
        gzipped=gzipped,
    )


def _sniffed_dialect(sample: str, quote: str) -> type[csv.Dialect] | None:
    lines = [line for line in sample.splitlines() if line.strip()][:50]
    if len(lines) < 1:
        return None
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=CANDIDATE_SEPARATORS)
    except csv.Error:
        return None
    counts = {line.count(dialect.delimiter) for line in lines[:20]}
    return dialect if counts != {0} else None


def _whitespace_or_comma(sample: str) -> str:
    """No delimiter character found: columns split by runs of spaces when every line has the
    same number of them, else one column (the gate then says the file was read as one)."""
    lines = [line for line in sample.splitlines() if line.strip()][:20]
    widths = {len(line.split()) for line in lines}
    return WHITESPACE if len(widths) == 1 and widths.pop() > 1 else ","


def _has_header(sample: str, separator: str) -> bool:
    """A header row unless the first row holds a number: column names are words."""
    first = next((line for line in sample.splitlines() if line.strip()), "")
    if separator == WHITESPACE:
        fields = first.split()
    else:
        fields = next(csv.reader([first], delimiter=separator), [])
    return not any(_is_number(field) for field in fields)


NUMBER = re.compile(r"^\s*[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?\s*$")


def _is_number(text: str) -> bool:
    return bool(NUMBER.match(text))


def read_frame(
    path: Path, table_format: TableFormat | None = None, nrows: int | None = None
) -> pd.DataFrame:
    """The whole table (or its first nrows) as a DataFrame; text cells as text."""
    path = Path(path)
    found = resolve_format(path, table_format)
    try:
        if found == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            return (table.slice(0, nrows) if nrows is not None else table).to_pandas()
        if found == "excel":
            sheet = (table_format or TableFormat()).sheet
            header = (table_format or TableFormat()).header
            check_sheet(path, sheet)
            frame = pd.read_excel(
                path,
                sheet_name=sheet,
                dtype=str,
                nrows=nrows,
                header=None if header is False else 0,
            )
            return _named(frame) if header is False else frame
        if found == "jsonl":
            return pd.read_json(path, lines=True, dtype=False, nrows=nrows)
        layout = text_layout(path, table_format)
        text_header(path, layout)  # too wide, or not in its encoding: refused before parsing
        return read_text(path, layout, nrows=nrows)
    except InputFileError:
        raise
    except PermissionError as error:
        raise InputFileError(f"cannot read {path}: permission denied") from error
    except (UnicodeDecodeError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise explained(path, error) from error
    except pd.errors.EmptyDataError as error:
        raise InputFileError(
            f"cannot read {path}: the file is empty (no header row and no rows); check that the "
            "export finished and send the whole file"
        ) from error
    except (OSError, ValueError, KeyError, pa.ArrowException, BadZipFile) as error:
        raise InputFileError(f"cannot read {path} as {LABELS[found]} table: {error}") from error


def check_sheet(path: Path, sheet: str | int) -> None:
    """A sheet the workbook does not have is named with the sheets it has."""
    sheets = pd.ExcelFile(path).sheet_names
    if (sheet in sheets) if isinstance(sheet, str) else (0 <= sheet < len(sheets)):
        return
    wanted = f"'{sheet}'" if isinstance(sheet, str) else f"number {sheet} (counted from 0)"
    listed = ", ".join(f"'{name}'" for name in sheets)
    raise InputFileError(
        f"{path.name} has no sheet {wanted}; its sheets are {listed}: set the dataset's "
        "(or batch_format's) sheet to one of their names or positions"
    )


def read_text(
    path: Path, layout: TextLayout, nrows: int | None = None, chunksize: int | None = None
) -> Any:
    """pandas' reader with the layout's options, cells as text: a DataFrame, or an iterator
    of DataFrames of `chunksize` rows."""
    reader = pd.read_csv(
        path,
        sep=r"\s+" if layout.separator == WHITESPACE else layout.separator,
        quotechar=layout.quote,
        encoding=layout.encoding,
        header=0 if layout.header else None,
        skipinitialspace=layout.skip_initial_space,
        dtype=str,
        nrows=nrows,
        chunksize=chunksize,
        compression="gzip" if layout.gzipped else None,
        engine="python" if layout.separator == WHITESPACE else "c",
    )
    if chunksize is not None:
        return (_cleaned(chunk, layout) for chunk in reader)
    return _cleaned(reader, layout)


def _cleaned(frame: pd.DataFrame, layout: TextLayout) -> pd.DataFrame:
    if not layout.header:
        frame = _named(frame)
    if layout.skip_initial_space:
        frame.columns = [str(column).strip() for column in frame.columns]
    if layout.decimal != "." or layout.thousands:
        frame = plain_numbers(frame, layout.decimal, layout.thousands)
    return frame


def _named(frame: pd.DataFrame) -> pd.DataFrame:
    """A table without a header row: columns column_1, column_2, ..."""
    frame.columns = [f"column_{index + 1}" for index in range(frame.shape[1])]
    return frame


def plain_numbers(frame: pd.DataFrame, decimal: str, thousands: str | None) -> pd.DataFrame:
    """Text columns whose every value is a number written with these separators ('1.234,5'),
    rewritten the plain way ('1234.5'); every other column as it is."""
    group = re.escape(thousands) if thousands else None
    integer = rf"\d{{1,3}}({group}\d{{3}})+|\d+" if group else r"\d+"
    pattern = re.compile(rf"^[+-]?({integer})({re.escape(decimal)}\d+)?$")
    rewritten = frame.copy()
    for column in frame.columns:
        values = frame[column]
        if not (values.dtype == object or pd.api.types.is_string_dtype(values)):
            continue
        present = values.dropna().astype(str).str.strip()
        if present.empty or not present.str.match(pattern).all():
            continue
        plain = present.str.replace(thousands, "", regex=False) if thousands else present
        rewritten.loc[present.index, column] = plain.str.replace(decimal, ".", regex=False)
    return rewritten


def iter_frames(
    path: Path, table_format: TableFormat | None, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """A text, Excel or JSON-lines table in chunks of chunk_rows rows (Excel and JSON lines are
    read whole first; text is read chunk by chunk)."""
    found = resolve_format(path, table_format)
    if found == "csv":
        layout = text_layout(path, table_format)
        yielded = False
        try:
            for chunk in read_text(path, layout, chunksize=chunk_rows):
                yielded = True
                yield chunk
        except (OSError, ValueError, UnicodeDecodeError, EOFError) as error:
            raise InputFileError(f"cannot read {path} past its start: {error}") from error
        if not yielded:
            yield read_text(path, layout, nrows=0)
        return
    frame = read_frame(path, table_format)
    for start in range(0, max(len(frame), 1), chunk_rows):
        yield frame.iloc[start : start + chunk_rows].reset_index(drop=True)


MAX_COLUMNS = 10_000  # a wider file is refused before anything is parsed
MAX_HEADER_BYTES = 64 << 20


def check_width(path: Path, columns: int) -> None:
    if columns > MAX_COLUMNS:
        raise InputFileError(
            f"the file {path.name} has {columns:,} columns; at most {MAX_COLUMNS:,} are read. "
            "Send only the columns that are used"
        )


def text_header(path: Path, layout: TextLayout) -> tuple[list[str], int]:
    """The first line that is not blank, split by the layout's separator (column_1, ... without
    a header row), and how many blank lines came before it."""
    opener = gzip.open if layout.gzipped else open
    blank = -1
    with opener(path, "rb") as handle:
        raw = b"\n"
        while raw and not raw.strip():
            raw = handle.readline(MAX_HEADER_BYTES + 1)
            blank += 1
    if len(raw) > MAX_HEADER_BYTES:
        raise InputFileError(
            f"the file {path.name} has a first line longer than {MAX_HEADER_BYTES >> 20} MB; at "
            f"most {MAX_COLUMNS:,} columns are read. Send only the columns that are used"
        )
    line = raw.decode(layout.encoding).rstrip("\r\n")  # UnicodeDecodeError: see _explained
    if layout.separator == WHITESPACE:
        fields = line.split()
    else:
        reader = csv.reader(
            [line],
            delimiter=layout.separator,
            quotechar=layout.quote,
            skipinitialspace=layout.skip_initial_space,
        )
        try:
            fields = next(reader, [])
        except csv.Error as error:  # e.g. a column name over csv's field limit (128 KB)
            raise InputFileError(
                f"cannot read the header of {path.name}: {error}. Check its first line"
            ) from error
    check_width(path, len(fields))
    names = fields if layout.header else [f"column_{index + 1}" for index in range(len(fields))]
    return names, blank


def explained(path: Path, error: BaseException) -> InputFileError:
    """A reader's error as one sentence that says what to do."""
    text = str(error)
    declared = error.encoding if isinstance(error, UnicodeDecodeError) else "utf-8"
    if isinstance(error, UnicodeDecodeError) and not declared.lower().startswith("utf"):
        return InputFileError(
            f"the file {path.name} is not {declared} text, as its params say: set `encoding` "
            "to the one it is written in"
        )
    if isinstance(error, UnicodeDecodeError) or "invalid UTF8" in text or "UTF-8" in text:
        return InputFileError(
            f"the file {path.name} is not UTF-8: set `encoding` in its params (the dataset's, "
            "or the use case's batch_format: e.g. encoding: latin-1 or cp1252), or save the file "
            "as UTF-8"
        )
    if isinstance(error, EOFError | zlib.error | gzip.BadGzipFile) or any(
        word in text for word in ("gzip", "zlib", "inflate", "end-of-stream", "truncated")
    ):
        return InputFileError(
            f"the file {path.name} is truncated or damaged: it ends before its compressed data "
            "does. Send it again"
        )
    if "CSV parse error" in text:
        return InputFileError(
            f"the file {path.name} has a line whose fields do not match its header "
            f"({text.split(':', 1)[-1].strip()[:200]}): check that line's separators and quotes"
        )
    if isinstance(error, PermissionError):
        return InputFileError(f"cannot read {path}: permission denied")
    return InputFileError(f"cannot read {path.name} as a table: {text.splitlines()[0][:300]}")
