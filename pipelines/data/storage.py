"""Reading and writing tables, and atomic publishing: the only module that touches data files."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.config import TableFormat
from pipelines.data import readers
from pipelines.data.readers import InputFileError
from pipelines.durable import fsync_dir, fsync_file


def read_table(path: Path, table_format: TableFormat | None = None) -> pd.DataFrame:
    """Read a table in any format readers.py knows (sniffed unless `table_format` says),
    turning every failure into one error that says what to do."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"input file not found: {path}. Check the path and try again.")
    if not path.is_file():
        raise InputFileError(f"input path is not a file: {path}")
    return readers.read_frame(path, table_format)


def iter_table(
    path: Path, chunk_rows: int = 250_000, table_format: TableFormat | None = None
) -> Iterator[pd.DataFrame]:
    """Read a table in chunks of at most chunk_rows, for tables larger than memory. Always
    yields at least one chunk (an empty one for a header-only file)."""
    for record_batch in iter_record_batches(path, chunk_rows, table_format):
        yield record_batch.to_pandas()


def iter_record_batches(
    path: Path, chunk_rows: int = 250_000, table_format: TableFormat | None = None
) -> Iterator[pa.RecordBatch]:
    """A table as Arrow record batches of at most chunk_rows rows, one schema throughout.
    Text cells are read as text: the model's transform decides types, so codes like '047'
    survive. Always yields at least one batch (an empty one for no rows)."""
    path = Path(path)
    read_table_head(path, table_format)  # not found or unreadable: fail before the first chunk
    found = readers.resolve_format(path, table_format)
    try:
        if found == "parquet":
            # pre_buffer caches what it read until the file is done: memory would grow with it
            source = pq.ParquetFile(path, pre_buffer=False)
            batches: Iterable[pa.RecordBatch] = source.iter_batches(batch_size=chunk_rows)
            schema = source.schema_arrow
        elif found == "csv" and arrow_can_read(layout := readers.text_layout(path, table_format)):
            reader = _open_csv(path, layout)
            batches, schema = rebatched(reader, chunk_rows), reader.schema
        else:
            batches, schema = _batches_of_frames(path, table_format, chunk_rows)
        yielded = False
        for record_batch in batches:
            if record_batch.num_rows or not yielded:
                yielded = True
                yield record_batch
        if not yielded:
            yield pa.RecordBatch.from_pylist([], schema=schema)
    except (OSError, ValueError, pa.ArrowException, UnicodeDecodeError) as error:
        if isinstance(error, InputFileError):
            raise
        raise InputFileError(f"cannot read {path} past its start: {error}") from error


def arrow_can_read(layout: readers.TextLayout) -> bool:
    """pyarrow's fast reader handles one-character separators and plain numbers."""
    return (
        layout.separator != readers.WHITESPACE
        and not layout.skip_initial_space
        and layout.decimal == "."
        and not layout.thousands
        and layout.header
    )


def _batches_of_frames(
    path: Path, table_format: TableFormat | None, chunk_rows: int
) -> tuple[Iterator[pa.RecordBatch], pa.Schema]:
    """Batches from pandas' chunks, every chunk cast to the first one's schema."""
    frames = readers.iter_frames(path, table_format, chunk_rows)
    first = next(frames)
    schema = pa.Schema.from_pandas(first, preserve_index=False)

    def batches() -> Iterator[pa.RecordBatch]:
        for frame in itertools.chain([first], frames):
            table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
            yield from table.to_batches(max_chunksize=chunk_rows) or [
                pa.RecordBatch.from_pylist([], schema=schema)
            ]

    return batches(), schema


def _open_csv(path: Path, layout: readers.TextLayout) -> Any:
    import pyarrow.csv as pacsv

    head = readers.read_text(path, layout, nrows=0)
    names = list(head.columns)
    return pacsv.open_csv(
        pa.input_stream(path, compression="gzip" if layout.gzipped else None),
        read_options=pacsv.ReadOptions(block_size=16 << 20, encoding=layout.encoding),
        parse_options=pacsv.ParseOptions(
            delimiter=layout.separator, quote_char=layout.quote, newlines_in_values=True
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={column: pa.string() for column in names}, strings_can_be_null=True
        ),
    )


def rebatched(batches: Iterable[pa.RecordBatch], chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """Record batches of exactly chunk_rows rows (the last one shorter), whatever came in."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for record_batch in batches:
        pending.append(record_batch)
        held += record_batch.num_rows
        while held >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_rows).combine_chunks().to_batches()[0]
            rest = table.slice(chunk_rows)
            pending = rest.combine_chunks().to_batches() if rest.num_rows else []
            held = rest.num_rows
    if held:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


def count_rows(path: Path) -> int | None:
    """A parquet file's row count from its footer; None for other formats, which must be read
    to know."""
    try:
        if readers.sniff_format(Path(path)) != "parquet":
            return None
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException):
        return None


def read_table_head(path: Path, table_format: TableFormat | None = None) -> pd.DataFrame:
    """The first rows of a table: checks that it exists and can be read at all."""
    path = Path(path)
    if not path.is_file():
        return read_table(path)  # raises the not-found / not-a-file error
    if readers.resolve_format(path, table_format) == "parquet":
        try:
            return pq.ParquetFile(path).schema_arrow.empty_table().to_pandas()
        except (OSError, ValueError, pa.ArrowException) as error:
            raise InputFileError(f"cannot read {path} as a table: {error}") from error
    return readers.read_frame(path, table_format, nrows=10)


def read_rasff_csv(path: Path) -> pd.DataFrame:
    """The RASFF export: ';'-separated, UTF-8 with a byte-order mark, gzip-compressed here."""
    if not Path(path).is_file():
        raise InputFileError(f"RASFF data not found: {path}")
    try:
        return pd.read_csv(path, sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise InputFileError(f"cannot read RASFF data {path}: {error}") from error


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# characters a spreadsheet skips before it reads a cell: whitespace, controls, invisible format
SKIPPED_CATEGORIES = ("Cc", "Cf", "Zs", "Zl", "Zp")


def looks_like_formula(text: str) -> bool:
    """OWASP's rule: a cell that starts with = + - @ tab or CR, also after leading whitespace
    or control characters, and also in full-width or any other form NFKC maps onto them."""
    if text.startswith(FORMULA_PREFIXES):
        return True
    for character in text:
        if character.isspace() or unicodedata.category(character) in SKIPPED_CATEGORIES:
            continue
        return unicodedata.normalize("NFKC", character).startswith(FORMULA_PREFIXES)
    return False


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula get a leading apostrophe.

    The data itself keeps the text as it came; only CSV written for people is neutralised."""
    safe = frame.copy()
    for column in safe.columns:
        if isinstance(safe[column].dtype, pd.CategoricalDtype):
            safe[column] = safe[column].astype(object)
        if pd.api.types.is_string_dtype(safe[column]) or safe[column].dtype == object:
            values = safe[column]
            risky = values.map(lambda v: isinstance(v, str) and looks_like_formula(v))
            safe[column] = values.where(~risky.astype(bool), "'" + values.astype(str))
    return safe


def write_neutralised_csv(
    frame: pd.DataFrame, path: Path, *, encoding: str = "utf-8", separator: str = ","
) -> None:
    """Every cell quoted, so a line break inside a cell cannot start a new row."""
    neutralise_formulas(frame).to_csv(
        path, index=False, quoting=csv.QUOTE_ALL, encoding=encoding, sep=separator
    )


def write_csv_stream(chunks: Iterable[pd.DataFrame], path: Path) -> Path:
    """Write chunks to one CSV atomically, header once, every cell quoted and formulas
    neutralised, for tables larger than memory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_path(path) as partial, open(partial, "w", encoding="utf-8", newline="") as out:
        for index, chunk in enumerate(chunks):
            neutralise_formulas(chunk).to_csv(
                out, index=False, header=index == 0, quoting=csv.QUOTE_ALL
            )
    return path


def write_csv(
    frame: pd.DataFrame, path: Path, *, encoding: str = "utf-8", separator: str = ","
) -> Path:
    """Write a CSV for people to open, atomically, with formula injection neutralised; an
    agency's batch in the encoding and separator its params read batches in."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_path(path) as partial:
        write_neutralised_csv(frame, partial, encoding=encoding, separator=separator)
    return path


def file_sha256(path: Path, block_size: int = 1 << 20) -> str:
    return _file_digest(path, hashlib.sha256(), block_size)


def file_md5(path: Path, block_size: int = 1 << 20) -> str:
    """The md5 DVC 3 records for a file (integrity, not security)."""
    return _file_digest(path, hashlib.md5(usedforsecurity=False), block_size)


def _file_digest(path: Path, digest: Any, block_size: int) -> str:
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
    return digest.hexdigest()


def write_parquet_stream(
    chunks: Iterable[pd.DataFrame], path: Path, metadata: dict[str, str] | None = None
) -> int:
    """Write chunks to one parquet file atomically, with optional key-value metadata; returns
    the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with _atomic_path(path) as partial:
        writer: pq.ParquetWriter | None = None
        try:
            for chunk in chunks:
                table = pa.Table.from_pandas(chunk, preserve_index=False)
                if metadata:
                    table = table.replace_schema_metadata(
                        {**(table.schema.metadata or {}), **metadata}
                    )
                if writer is None:
                    writer = pq.ParquetWriter(partial, table.schema)
                writer.write_table(table)
                rows += len(chunk)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise ValueError("nothing to write: no chunks were given")
    return rows


def write_parquet(frame: pd.DataFrame, path: Path, metadata: dict[str, str] | None = None) -> Path:
    write_parquet_stream([frame], path, metadata)
    return Path(path)


def parquet_metadata(path: Path) -> dict[str, str]:
    """A parquet file's key-value metadata as text; empty for a file that is not parquet."""
    try:
        raw = pq.read_schema(path).metadata or {}
    except (OSError, pa.ArrowException):
        return {}
    return {key.decode(): value.decode(errors="replace") for key, value in raw.items()}


def publish_batch(
    scored: pd.DataFrame,
    manifest: dict[str, Any],
    batch_dir: Path,
    extra_files: dict[str, Callable[[Path], Any]] | None = None,
) -> tuple[Path, bool]:
    """Publish a scored batch and its manifest as one directory rename.

    A batch is visible only when complete; an existing batch with the same id is kept, not
    overwritten. Returns the directory and whether it was newly published."""
    files = {
        "scored.parquet": lambda path: _write_parquet_file(scored, path),
        "manifest.json": lambda path: write_json_file(path, manifest),
        **(extra_files or {}),
    }
    return publish_directory(Path(batch_dir), files, marker="manifest.json")


def quarantine_rows(rows: pd.DataFrame, report: dict[str, Any], target: Path) -> Path:
    """Failing rows with their reasons, beside the report that explains them."""
    files = {
        "rows.parquet": lambda path: _write_parquet_file(rows, path),
        # for people who fix the rows in a spreadsheet: formulas neutralised
        "rows.csv": lambda path: write_neutralised_csv(rows, path),
        "report.json": lambda path: write_json_file(path, report),
    }
    return publish_directory(Path(target), files, marker="report.json")[0]


def quarantine_input(input_path: Path, report: dict[str, Any], target: Path) -> Path:
    """A rejected input, byte for byte, beside the report that says why it was rejected."""
    name = "input" + table_suffix(Path(input_path))
    files = {
        name: lambda path: _copy_file(Path(input_path), path),
        "report.json": lambda path: write_json_file(path, report),
    }
    return publish_directory(Path(target), files, marker="report.json")[0]


def table_suffix(path: Path) -> str:
    """'.csv.gz' for a gzipped CSV, else the last suffix: 'batch.2024-05-10.csv' -> '.csv'."""
    if path.name.lower().endswith(".csv.gz"):
        return path.name[-len(".csv.gz") :]
    return path.suffix


def publish_directory(
    target: Path, files: dict[str, Callable[[Path], None]], *, marker: str
) -> tuple[Path, bool]:
    """Write files into a staging folder, fsync, then rename it into place in one step.

    `marker` is written last and marks the folder complete; a complete folder is never
    replaced. Returns the folder and whether this call published it."""
    if (target / marker).is_file():
        return target, False
    staged = StagedDirectory(target)
    try:
        for name, write in files.items():
            if name != marker:
                write(staged.path / name)
        return staged.commit(marker, files[marker])
    finally:
        staged.discard()


STAGING_SUFFIX = ".staging"


class StagedDirectory:
    """A folder written beside its final place under a hidden name, then renamed into place
    whole. Until `commit`, nothing of it is visible under the final name; a process killed
    while writing leaves only the hidden folder, which `remove_stale_staging` clears."""

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(
            tempfile.mkdtemp(
                prefix=f".{self.target.name}.", suffix=STAGING_SUFFIX, dir=self.target.parent
            )
        )
        os.chmod(self.path, 0o777 & ~current_umask())
        self.committed = False

    def commit(self, marker: str, write_marker: Callable[[Path], None]) -> tuple[Path, bool]:
        """fsync every file, write the marker last, rename the folder into place. Returns the
        folder and whether this call published it (False: a complete one was there first)."""
        if (self.target / marker).is_file():
            self.discard()
            return self.target, False
        try:
            for path in sorted(self.path.rglob("*")):
                if path.is_file():
                    fsync_file(path)
            for folder in sorted(p for p in self.path.rglob("*") if p.is_dir()):
                fsync_dir(folder)
            write_marker(self.path / marker)
            fsync_file(self.path / marker)
            fsync_dir(self.path)
            os.rename(self.path, self.target)
        except OSError:
            if (self.target / marker).is_file():
                self.discard()
                return self.target, False  # another run published the same folder first
            raise
        self.committed = True
        fsync_dir(self.target.parent)
        return self.target, True

    def discard(self) -> None:
        if not self.committed:
            shutil.rmtree(self.path, ignore_errors=True)


def remove_stale_staging(target: Path) -> list[Path]:
    """Remove the hidden staging folders a killed run left for `target`; call it only while
    holding `target`'s lock, so no live run's folder is taken."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_]+{re.escape(STAGING_SUFFIX)}")
    stale = sorted(p for p in target.parent.iterdir() if pattern.fullmatch(p.name))
    for folder in stale:
        shutil.rmtree(folder, ignore_errors=True)
    return stale


class PartWriter:
    """Parquet files of at most part_rows rows each in one folder (part-00000.parquet, ...),
    one row group per write, so a large batch is written in bounded memory and read in
    parts."""

    def __init__(self, folder: Path, schema: pa.Schema, part_rows: int) -> None:
        self.folder = Path(folder)
        self.schema = schema
        self.part_rows = part_rows
        self.parts: list[Path] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._in_part = 0

    def write(self, table: pa.Table) -> None:
        table = table.cast(self.schema)
        while table.num_rows:
            if self._writer is None or self._in_part >= self.part_rows:
                self._next_part()
            assert self._writer is not None
            take = min(table.num_rows, self.part_rows - self._in_part)
            self._writer.write_table(table.slice(0, take))
            self._in_part += take
            self.rows += take
            table = table.slice(take)

    def _next_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"part-{len(self.parts):05d}.parquet"
        self._writer = pq.ParquetWriter(path, self.schema)
        self.parts.append(path)
        self._in_part = 0

    def close(self) -> list[Path]:
        """Close the last part; a writer that got no rows writes one empty part."""
        if self._writer is None:
            self._next_part()
        assert self._writer is not None
        self._writer.close()
        return self.parts


def _write_parquet_file(frame: pd.DataFrame, path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _copy_file(source: Path, path: Path) -> None:
    """The bytes only: a copy kept in the state directory is private whatever the source's mode."""
    shutil.copyfile(source, path)
    os.chmod(path, 0o600)


def read_manifest(batch_dir: Path) -> dict[str, Any]:
    return json.loads((Path(batch_dir) / "manifest.json").read_text(encoding="utf-8"))


def read_json_file(path: Path) -> dict[str, Any]:
    """A JSON document, or an InputFileError that names the file and the problem."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise InputFileError(f"file not found: {path}") from error
    except (OSError, ValueError) as error:
        raise InputFileError(f"cannot read {path} as JSON: {error}") from error
    if not isinstance(document, dict):
        raise InputFileError(f"{path}: expected a JSON object")
    return document


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Write a JSON document atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_path(path) as partial:
        write_json_file(partial, payload)
    return path


def write_text(path: Path, text: str) -> Path:
    """Write a small text file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_path(path) as partial:
        partial.write_text(text, encoding="utf-8")
    return path


def write_json_file(path: Path, payload: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling path that replaces `path` only if the block succeeds."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    partial = Path(name)
    os.chmod(partial, 0o666 & ~current_umask())  # mkstemp's 0600 would hide outputs
    try:
        yield partial
        with open(partial, "rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def sniffed_format(path: Path, table_format: TableFormat | None = None) -> str:
    """What the table is, from its content: csv, parquet, excel or jsonl."""
    return readers.resolve_format(Path(path), table_format)
