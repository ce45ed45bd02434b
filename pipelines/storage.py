"""Reading and writing tables, and atomic publishing: the only module that touches data files."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
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


def read_rasff_csv(path: Path) -> pd.DataFrame:
    """The RASFF export: ';'-separated, UTF-8 with a byte-order mark, gzip-compressed here."""
    if not Path(path).is_file():
        raise InputFileError(f"RASFF data not found: {path}")
    try:
        return pd.read_csv(path, sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise InputFileError(f"cannot read RASFF data {path}: {error}") from error


def file_sha256(path: Path, block_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_size):
            digest.update(block)
    return digest.hexdigest()


def write_parquet_stream(chunks: Iterable[pd.DataFrame], path: Path) -> int:
    """Write chunks to one parquet file atomically; returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with _atomic_path(path) as partial:
        writer: pq.ParquetWriter | None = None
        try:
            for chunk in chunks:
                table = pa.Table.from_pandas(chunk, preserve_index=False)
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


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    write_parquet_stream([frame], path)
    return Path(path)


def publish_batch(
    scored: pd.DataFrame, manifest: dict[str, Any], batch_dir: Path
) -> tuple[Path, bool]:
    """Publish a scored batch and its manifest as one directory rename.

    A batch is visible only when complete; an existing batch with the same id is kept, not
    overwritten. Returns the directory and whether it was newly published."""
    batch_dir = Path(batch_dir)
    if (batch_dir / "manifest.json").is_file():
        return batch_dir, False
    batch_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{batch_dir.name}.", dir=batch_dir.parent))
    try:
        os.chmod(staging, 0o777 & ~current_umask())
        scored_file = staging / "scored.parquet"
        pq.write_table(pa.Table.from_pandas(scored, preserve_index=False), scored_file)
        _fsync_file(scored_file)
        _write_json(staging / "manifest.json", manifest)
        _fsync_dir(staging)
        os.rename(staging, batch_dir)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and (batch_dir / "manifest.json").is_file():
            return batch_dir, False  # another run published the same batch first
        raise
    _fsync_dir(batch_dir.parent)
    return batch_dir, True


def read_manifest(batch_dir: Path) -> dict[str, Any]:
    return json.loads((Path(batch_dir) / "manifest.json").read_text(encoding="utf-8"))


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
