"""Files a batch's manifest names, and the manifest as an agency sees it.

A manifest is data on disk that someone could edit: a name in it is served only when it is a
plain relative name of a regular file inside the batch's folder, with no symlink on the way, and
only while the file has the sha256 the manifest (or a quarantine's report) records."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from pipelines.data import integrity

# opened to look, never to read: O_NONBLOCK keeps a FIFO from blocking the open
LOOK_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# an absolute path inside text (a message, a fact): not after a letter, ':' or '/' (URLs, URIs)
EMBEDDED_PATH = re.compile(r"(?<![\w:/.#-])/[^\s'\"()<>,;]+")
HIDDEN_PATH = "<server path>"
# manifest fields about the server's own storage, never shown to an agency
SERVER_ONLY = {("input", "dvc_remote"), ("input", "dvc_remote_url")}
# a refused damaged file is named in this header, so a client can say why
DAMAGED_HEADER = "X-Agencyml-Damaged"
# where a file's recorded sha256 is: a published batch's manifest, a quarantine's report
RECORDS = (
    ("manifest.json", lambda folder, manifest: integrity.recorded_hashes(manifest)),
    ("report.json", integrity.quarantine_hashes),
)


def batch_file(folder: Path, name: Any) -> Path | None:
    """`folder / name` if name is a plain relative name (no absolute path, no '.' or '..'
    part), no component is a symlink, it resolves inside the folder, and it opens (without
    following a symlink) as a regular file; None otherwise, which callers answer as 404."""
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name:
        return None
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    path = folder
    for part in parts[:-1]:
        path = path / part
        if path.is_symlink() or not path.is_dir():
            return None
    path = path / parts[-1]
    try:
        if not path.resolve().is_relative_to(folder.resolve()):
            return None
        descriptor = os.open(path, LOOK_FLAGS)
    except (OSError, RuntimeError):
        return None
    try:
        regular = stat.S_ISREG(os.fstat(descriptor).st_mode)
    finally:
        os.close(descriptor)
    if not regular:
        return None
    check_intact(folder, path)
    return path


def check_intact(folder: Path, path: Path) -> None:
    """Refuse (HTTP 500, naming the file in DAMAGED_HEADER) a file whose batch manifest, or
    whose quarantine report, records another sha256: a damaged file is never served. The
    record is the nearest manifest.json or report.json from the file's folder up to `folder`."""
    where = path.parent
    while where.is_relative_to(folder):
        for marker, recorded in RECORDS:
            record = where / marker
            if record.is_file() and record != path:
                name = path.relative_to(where).as_posix()
                expected = recorded(where, read_record(record)).get(name)
                if expected is not None and integrity.file_problem(where, name, expected):
                    raise HTTPException(
                        500,
                        f"{name} of this batch no longer has the sha256 its record holds, so it "
                        "is not served, and pulling again will not help: ask the operator to "
                        "restore it (`agencyml verify` lists the damage)",
                        headers={DAMAGED_HEADER: name},
                    )
                return
        if where == folder:
            return
        where = where.parent


def read_record(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def open_regular(path: Path) -> Any:
    """The file for reading, refusing a symlink put in its place since it was checked."""
    handle = os.fdopen(os.open(path, READ_FLAGS), "rb")
    if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
        handle.close()
        raise FileNotFoundError(path)
    return handle


def relative_to_batch(value: Any, folder: Path, key: tuple[str, ...] = ()) -> Any:
    """A manifest or lineage document with the server's paths taken out: a path inside the
    batch folder becomes relative to it, any other absolute path is dropped (inside text it
    reads `<server path>`), the input keeps its file name only, and DVC remotes go."""
    if isinstance(value, dict):
        shaped: dict[str, Any] = {}
        for name, item in value.items():
            where = (*key, str(name))
            if where in SERVER_ONLY:
                continue
            if where == ("input", "path") and isinstance(item, str):
                shaped[name] = Path(item).name
                continue
            kept = relative_to_batch(item, folder, where)
            if kept is not DROPPED:
                shaped[name] = kept
        return shaped
    if isinstance(value, list):
        kept_items = (relative_to_batch(item, folder, key) for item in value)
        return [item for item in kept_items if item is not DROPPED]
    if isinstance(value, str):
        return shaped_text(value, folder)
    return value


DROPPED = object()


def shaped_text(text: str, folder: Path) -> Any:
    """One string of a document: a whole absolute path is made relative or dropped; paths
    inside a sentence are made relative or hidden."""
    if EMBEDDED_PATH.fullmatch(text):
        inside = inside_folder(text, folder)
        return DROPPED if inside is None else inside

    def replace(match: re.Match[str]) -> str:
        inside = inside_folder(match.group(0), folder)
        return HIDDEN_PATH if inside is None else inside

    return EMBEDDED_PATH.sub(replace, text)


def inside_folder(text: str, folder: Path) -> str | None:
    """The path relative to the folder ('.' for the folder itself), or None if outside."""
    path = Path(os.path.normpath(text))
    for base in {folder, folder.resolve()}:
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return None


# --- the download cache ----------------------------------------------------------------------


def source_key(parts: list[Path]) -> str:
    """A short key of the source files' contents, for the name of what is made from them: a
    changed source gets a new cache file, a restored one its old one back."""
    hashes = "\n".join(integrity.current_sha256(part) for part in parts)
    return hashlib.sha256(hashes.encode()).hexdigest()[:KEY_LENGTH]


KEY_LENGTH = 16


def intact_cache_file(target: Path, digest: Path) -> bool:
    """The cached file is there and still has the sha256 written beside it when it was made."""
    if not (target.is_file() and digest.is_file()):
        return False
    try:
        return integrity.current_sha256(target) == digest.read_text().strip()
    except OSError:
        return False


def remove_stale_cache(cache: Path, batch_id: str, suffix: str, keep: Path) -> None:
    """Remove what was made for the batch from sources that are no longer there."""
    made = re.compile(rf"{re.escape(batch_id)}\.[0-9a-f]{{{KEY_LENGTH}}}\.{re.escape(suffix)}")
    for path in cache.glob(f"{batch_id}.*"):
        base = path.name.removesuffix(".sha256")
        if made.fullmatch(base) and base != keep.name:
            path.unlink(missing_ok=True)
