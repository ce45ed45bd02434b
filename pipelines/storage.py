"""Reading and writing tables, and atomic publishing: the only module that touches data files."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

TABLE_SUFFIXES = (".parquet", ".csv", ".csv.gz")


class InputFileError(OSError):
    """An input table is missing, unreadable or not a table we can read."""


def read_table(path: Path) -> pd.DataFrame:
    """Read a parquet or CSV table, turning every failure into one error that says what to do."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"input file not found: {path}. Check the path and try again.")
    if not path.is_file():
        raise InputFileError(f"input path is not a file: {path}")
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return pq.read_table(path).to_pandas()
        if name.endswith((".csv", ".csv.gz")):
            # text first: the model's transform decides types, so codes like '047' survive
            return pd.read_csv(path, dtype=str)
    except PermissionError as error:
        raise InputFileError(f"cannot read {path}: permission denied") from error
    except (OSError, ValueError, pa.ArrowException, UnicodeDecodeError) as error:
        raise InputFileError(
            f"cannot read {path} as a {'parquet' if name.endswith('.parquet') else 'CSV'} "
            f"table: {error}"
        ) from error
    raise InputFileError(
        f"unsupported input format: {path.name}. Use one of: {', '.join(TABLE_SUFFIXES)}"
    )


def iter_table(path: Path, chunk_rows: int = 250_000) -> Iterator[pd.DataFrame]:
    """Read a parquet or CSV table in chunks of at most chunk_rows, for tables larger than
    memory. Always yields at least one chunk (an empty one for a header-only file)."""
    path = Path(path)
    read_table_head(path)  # not found, unsupported or unreadable: fail before the first chunk
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            source = pq.ParquetFile(path)
            yielded = False
            for record_batch in source.iter_batches(batch_size=chunk_rows):
                yielded = True
                yield record_batch.to_pandas()
            if not yielded:
                yield source.schema_arrow.empty_table().to_pandas()
        else:
            yield from pd.read_csv(path, dtype=str, chunksize=chunk_rows)
    except (OSError, ValueError, pa.ArrowException, UnicodeDecodeError) as error:
        raise InputFileError(f"cannot read {path} past its start: {error}") from error


def read_table_head(path: Path) -> pd.DataFrame:
    """The first rows of a table: checks that it exists and can be read at all."""
    path = Path(path)
    if not path.is_file():
        return read_table(path)  # raises the not-found / not-a-file error
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            source = pq.ParquetFile(path)
            return source.schema_arrow.empty_table().to_pandas()
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path, dtype=str, nrows=10)
    except (OSError, ValueError, pa.ArrowException, UnicodeDecodeError) as error:
        raise InputFileError(f"cannot read {path} as a table: {error}") from error
    return read_table(path)  # raises the unsupported-format error


def read_rasff_csv(path: Path) -> pd.DataFrame:
    """The RASFF export: ';'-separated, UTF-8 with a byte-order mark, gzip-compressed here."""
    if not Path(path).is_file():
        raise InputFileError(f"RASFF data not found: {path}")
    try:
        return pd.read_csv(path, sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise InputFileError(f"cannot read RASFF data {path}: {error}") from error


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells that a spreadsheet would run as a formula get a leading apostrophe.

    The data itself keeps the text as it came; only CSV written for people is neutralised."""
    safe = frame.copy()
    for column in safe.columns:
        if isinstance(safe[column].dtype, pd.CategoricalDtype):
            safe[column] = safe[column].astype(object)
        if pd.api.types.is_string_dtype(safe[column]) or safe[column].dtype == object:
            values = safe[column]
            risky = values.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_PREFIXES))
            safe[column] = values.where(~risky.astype(bool), "'" + values.astype(str))
    return safe


def write_neutralised_csv(frame: pd.DataFrame, path: Path) -> None:
    """Every cell quoted, so a line break inside a cell cannot start a new row."""
    neutralise_formulas(frame).to_csv(path, index=False, quoting=csv.QUOTE_ALL)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a CSV for people to open, atomically, with formula injection neutralised."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _atomic_path(path) as partial:
        write_neutralised_csv(frame, partial)
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
        "manifest.json": lambda path: _write_json(path, manifest),
        **(extra_files or {}),
    }
    return publish_directory(Path(batch_dir), files, marker="manifest.json")


def quarantine_rows(rows: pd.DataFrame, report: dict[str, Any], target: Path) -> Path:
    """Failing rows with their reasons, beside the report that explains them."""
    files = {
        "rows.parquet": lambda path: _write_parquet_file(rows, path),
        # for people who fix the rows in a spreadsheet: formulas neutralised
        "rows.csv": lambda path: write_neutralised_csv(rows, path),
        "report.json": lambda path: _write_json(path, report),
    }
    return publish_directory(Path(target), files, marker="report.json")[0]


def quarantine_input(input_path: Path, report: dict[str, Any], target: Path) -> Path:
    """A rejected input, byte for byte, beside the report that says why it was rejected."""
    name = "input" + table_suffix(Path(input_path))
    files = {
        name: lambda path: _copy_file(Path(input_path), path),
        "report.json": lambda path: _write_json(path, report),
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
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        os.chmod(staging, 0o777 & ~current_umask())
        for name, write in sorted(files.items(), key=lambda item: item[0] == marker):
            write(staging / name)
            _fsync_file(staging / name)
        _fsync_dir(staging)
        os.rename(staging, target)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and (target / marker).is_file():
            return target, False  # another run published the same folder first
        raise
    _fsync_dir(target.parent)
    return target, True


def _write_parquet_file(frame: pd.DataFrame, path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _copy_file(source: Path, path: Path) -> None:
    shutil.copyfile(source, path)


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
        _write_json(partial, payload)
    return path


def _write_json(path: Path, payload: dict[str, Any]) -> None:
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


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
