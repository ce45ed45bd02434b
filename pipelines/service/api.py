"""The agency pull service: an HTTP API over the published batches, one agency at a time.

Every request carries a bearer token (see pipelines.service.access). An agency token sees its own
agency only: anything of another agency answers 404, exactly like something that does not
exist. Auditors read every agency's manifests and lineage, and row data only when granted.
Only complete batches (a folder with its manifest) are listed or served, and every request,
whatever its outcome, is appended to the access log before it is answered
(pipelines.service.access_gate): when the log cannot take it, the service answers 503."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
import pyarrow.parquet as pq
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator

from pipelines.data import storage
from pipelines.paths import StateDir
from pipelines.service import access
from pipelines.service.access_gate import guard
from pipelines.service.files import (
    batch_file,
    intact_cache_file,
    open_regular,
    relative_to_batch,
    remove_stale_cache,
    source_key,
)

AGENCY_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
BATCH_PATTERN = r"^batch-[0-9a-f]{20}$"
USE_CASE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
REPORT_FILES = {"drift.html": "text/html", "drift.png": "image/png"}
TOTAL_HEADER = "X-Total-Count"
CONTENT_HASH_HEADER = "X-Content-SHA256"
BLOCK = 1 << 20

bearer = HTTPBearer(auto_error=False)


def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> access.Token:
    """The token the request carries, or 401: missing, malformed, unknown and revoked alike."""
    state: StateDir = request.app.state.agencyml
    token = access.authenticate(state, credentials.credentials if credentials else None)
    if token is None:
        raise HTTPException(
            401,
            "a valid bearer token is required: agencyml tokens create --agency A --name LABEL",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.token = token
    return token


def iso_day(value: Any) -> Any:
    """Days are YYYY-MM-DD text only: pydantic would also read a number as a Unix time."""
    if not isinstance(value, str | date) or (
        isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)
    ):
        raise ValueError("give a day as YYYY-MM-DD, e.g. 2026-11-30")
    return value


Caller = Annotated[access.Token, Depends(caller)]
Day = Annotated[date, BeforeValidator(iso_day)]
Agency = Annotated[str, PathParam(pattern=AGENCY_PATTERN, max_length=64)]
BatchId = Annotated[str, PathParam(pattern=BATCH_PATTERN, max_length=26)]


class BatchSummary(BaseModel):
    batch_id: str
    agency: str
    use_case: str
    created_at: str
    model_name: str
    model_version: str
    rows: dict[str, int]
    drift_level: str | None
    files: list[str]


class Problem(BaseModel):
    detail: str


NOT_FOUND = {404: {"model": Problem, "description": "No such resource for this token"}}
UNAUTHORISED = {401: {"model": Problem, "description": "Missing, malformed or revoked token"}}


def create_app(state: StateDir) -> FastAPI:
    """The API for one state directory (outputs, tokens and the access log live there)."""
    app = FastAPI(
        title="agencyml pull service",
        version="1",
        description="Scored batches for the agency that owns them; manifests and lineage for "
        "auditors. Every request is logged.",
        # Swagger UI and ReDoc load their scripts from a public CDN: the service serves nothing
        # from outside itself, so it has neither; /openapi.json opens in any OpenAPI viewer
        docs_url=None,
        redoc_url=None,
    )
    app.state.agencyml = state

    app.state.access_gate = guard(app, state)

    @app.get(
        "/v1/agencies/{agency}/batches",
        response_model=list[BatchSummary],
        responses={**NOT_FOUND, **UNAUTHORISED},
    )
    def list_batches(
        agency: Agency,
        token: Caller,
        response: Response,
        use_case: Annotated[
            str | None, Query(pattern=USE_CASE_PATTERN, max_length=64, description="Only this one")
        ] = None,
        since: Annotated[Day | None, Query(description="Scored on or after this day (UTC)")] = None,
        until: Annotated[
            Day | None, Query(description="Scored on or before this day (UTC)")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> list[BatchSummary]:
        """The agency's published batches, newest first, each with its manifest summary:
        `limit` of them from `offset`, the number that match in the X-Total-Count header."""
        visible_to(token, agency)
        manifests = [manifest for _, manifest in published_batches(state, agency)]
        matching = filter_batches(manifests, use_case=use_case, since=since, until=until)
        response.headers[TOTAL_HEADER] = str(len(matching))
        return [summary(manifest) for manifest in matching[offset : offset + limit]]

    @app.get(
        "/v1/agencies/{agency}/batches/{batch_id}/manifest",
        responses={**NOT_FOUND, **UNAUTHORISED},
    )
    def get_manifest(agency: Agency, batch_id: BatchId, token: Caller) -> dict[str, Any]:
        """The batch's manifest as it was published; an agency's token sees paths relative
        to the batch folder only (see `as_seen_by`)."""
        visible_to(token, agency)
        folder, manifest = find_batch(state, agency, batch_id)
        return as_seen_by(token, manifest, folder)

    @app.get(
        "/v1/agencies/{agency}/batches/{batch_id}/data",
        responses={
            **NOT_FOUND,
            **UNAUTHORISED,
            403: {"model": Problem, "description": "This auditor token may not read rows"},
            200: {
                "content": {"application/vnd.apache.parquet": {}, "text/csv": {}},
                "description": f"The scored rows, streamed; {CONTENT_HASH_HEADER} is the "
                "sha256 of the body",
            },
        },
        response_class=StreamingResponse,
    )
    def download(
        agency: Agency,
        batch_id: BatchId,
        token: Caller,
        format: Annotated[Literal["parquet", "csv"], Query()] = "parquet",
    ) -> StreamingResponse:
        """The scored rows as one parquet or CSV file, streamed in blocks."""
        visible_to(token, agency)
        if not token.can_read_rows:
            raise HTTPException(403, "this token reads manifests and lineage, not rows")
        folder, manifest = find_batch(state, agency, batch_id)
        path, sha256 = download_file(state, folder, manifest, format)
        media = "application/vnd.apache.parquet" if format == "parquet" else "text/csv"
        return StreamingResponse(
            stream_file(path),
            media_type=media,
            headers={
                CONTENT_HASH_HEADER: sha256,
                "Content-Length": str(path.stat().st_size),
                "Content-Disposition": f'attachment; filename="{batch_id}.{format}"',
            },
        )

    @app.get(
        "/v1/agencies/{agency}/batches/{batch_id}/reports/{name}",
        responses={
            **NOT_FOUND,
            **UNAUTHORISED,
            200: {"content": {"text/html": {}, "image/png": {}}, "description": "The report"},
        },
        response_class=FileResponse,
    )
    def report(
        agency: Agency,
        batch_id: BatchId,
        name: Annotated[Literal["drift.html", "drift.png"], PathParam()],
        token: Caller,
    ) -> FileResponse:
        """A report the batch's manifest lists: the drift report (HTML) or its plot (PNG)."""
        visible_to(token, agency)
        folder, manifest = find_batch(state, agency, batch_id)
        return FileResponse(report_file(folder, manifest, name), media_type=REPORT_FILES[name])

    @app.get(
        "/v1/agencies/{agency}/batches/{batch_id}/lineage",
        responses={**NOT_FOUND, **UNAUTHORISED},
    )
    def lineage(agency: Agency, batch_id: BatchId, token: Caller) -> dict[str, Any]:
        """From the batch to its model version, training run, data and params (see
        `agencyml lineage`); `complete` says whether every link could be followed."""
        visible_to(token, agency)
        folder, _ = find_batch(state, agency, batch_id)
        from pipelines.registry.trace import trace_batch

        tree = trace_batch(batch_id, state)
        shaped = as_seen_by(token, tree.to_dict(), folder)
        return {"batch_id": batch_id, "complete": tree.complete(), "tree": shaped}

    @app.exception_handler(HTTPException)
    async def problem(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"detail": error.detail}, status_code=error.status_code, headers=error.headers
        )

    return app


def as_seen_by(token: access.Token, document: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Auditors and admins see the server's paths; everyone else sees paths relative to the
    batch folder, and none of the server's own."""
    if token.role in ("auditor", "admin"):
        return document
    return relative_to_batch(document, folder)


def visible_to(token: access.Token, agency: str) -> None:
    """A token of one agency (an agency's, or an approver's for one agency) sees only that
    agency; another agency's resources do not exist."""
    if token.agency is not None and token.agency != agency:
        raise HTTPException(404, "not found")


def agency_outputs(state: StateDir, agency: str) -> Path | None:
    """The agency's output folder, only if it is a real folder inside the outputs area."""
    if not re.fullmatch(AGENCY_PATTERN, agency):
        return None
    folder = state.outputs_dir / agency
    if folder.is_symlink() or not folder.is_dir():
        return None
    if folder.resolve().parent != state.outputs_dir.resolve():
        return None
    return folder


def batch_folders(state: StateDir, agency: str, batch_id: str = "*") -> Iterator[Path]:
    """Complete batch folders of the agency (staging folders are hidden and have no manifest;
    symlinks are never followed), all of them or the one named."""
    root = agency_outputs(state, agency)
    if root is None:
        return
    for use_case in sorted(root.iterdir()):
        if use_case.name.startswith(".") or use_case.is_symlink() or not use_case.is_dir():
            continue
        for folder in use_case.glob(batch_id):
            manifest = folder / "manifest.json"
            if (
                re.fullmatch(BATCH_PATTERN, folder.name)
                and not folder.is_symlink()
                and manifest.is_file()
                and not manifest.is_symlink()
            ):
                yield folder


def published_batches(state: StateDir, agency: str) -> list[tuple[Path, dict[str, Any]]]:
    """The agency's complete batches with their manifests, newest first."""
    found = [
        (folder, storage.read_json_file(folder / "manifest.json"))
        for folder in batch_folders(state, agency)
    ]
    return sorted(found, key=lambda item: str(item[1].get("created_at", "")), reverse=True)


def find_batch(state: StateDir, agency: str, batch_id: str) -> tuple[Path, dict[str, Any]]:
    """One batch, read alone (the id is checked against its pattern before it gets here)."""
    for folder in batch_folders(state, agency, batch_id):
        manifest = storage.read_json_file(folder / "manifest.json")
        if manifest.get("batch_id") == batch_id:
            return folder, manifest
    raise HTTPException(404, "not found")


def filter_batches(
    manifests: list[dict[str, Any]],
    *,
    use_case: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> list[dict[str, Any]]:
    """The manifests of one use case (all when None) scored between two days, both included
    (UTC, from each manifest's created_at; one without it matches no day), in the order
    given."""

    def day(manifest: dict[str, Any]) -> str:
        return str(manifest.get("created_at", ""))[:10]

    return [
        m
        for m in manifests
        if (not use_case or m.get("use_case") == use_case)
        and (since is None or (day(m) != "" and day(m) >= since.isoformat()))
        and (until is None or (day(m) != "" and day(m) <= until.isoformat()))
    ]


def report_file(folder: Path, manifest: dict[str, Any], name: str) -> Path:
    """A report file of the batch, only if its manifest lists it and it is a regular file
    inside the batch folder."""
    if name not in REPORT_FILES or name not in listed_files(manifest):
        raise HTTPException(404, "not found")
    path = batch_file(folder, name)
    if path is None:
        raise HTTPException(404, "not found")
    return path


def listed_files(manifest: dict[str, Any]) -> list[Any]:
    files = manifest.get("files")
    return files if isinstance(files, list) else []


def scored_parts(folder: Path, manifest: dict[str, Any]) -> list[Path]:
    """The scored files the manifest lists, in its order. Every file it lists must be a regular
    file inside the batch folder, and there is at least one scored file (publishing always
    writes one); otherwise (a symlink, '..', an absolute path, a FIFO, a folder) the batch's
    rows are not found."""
    names = listed_files(manifest)
    paths = [batch_file(folder, name) for name in names]
    parts = [p for n, p in zip(names, paths, strict=True) if str(n).startswith("scored")]
    if not parts or any(path is None for path in paths):
        raise HTTPException(404, "not found")
    return [part for part in parts if part is not None]


def summary(manifest: dict[str, Any]) -> BatchSummary:
    drift = manifest.get("drift") or {}
    return BatchSummary(
        batch_id=manifest["batch_id"],
        agency=manifest["agency"],
        use_case=manifest["use_case"],
        created_at=manifest.get("created_at", ""),
        model_name=manifest["model"]["name"],
        model_version=manifest["model"]["version"],
        rows=manifest["rows"],
        drift_level=drift.get("level"),
        files=manifest.get("files", []),
    )


def download_file(
    state: StateDir, folder: Path, manifest: dict[str, Any], format: str
) -> tuple[Path, str]:
    """The batch as one file, made once (atomically) in the download cache, and its sha256.

    A single scored.parquet is served as it is; parts are joined, and CSV is written, chunk by
    chunk, so memory stays bounded whatever the batch size."""
    parts = scored_parts(folder, manifest)
    if format == "parquet" and len(parts) == 1:
        name = parts[0].relative_to(folder).as_posix()
        recorded = (manifest.get("file_sha256") or {}).get(name)
        return parts[0], recorded or storage.file_sha256(parts[0])
    write = storage.write_parquet_stream if format == "parquet" else storage.write_csv_stream
    return cached_file(state, manifest, parts, format, lambda frame: frame, write)


def cached_file(
    state: StateDir,
    manifest: dict[str, Any],
    parts: list[Path],
    suffix: str,
    shape: Callable[[pd.DataFrame], pd.DataFrame],
    write: Callable[[Iterator[pd.DataFrame], Path], Path],
) -> tuple[Path, str]:
    """The batch's scored rows, each chunk shaped, written once (atomically) into the download
    cache as `<batch_id>.<key>.<suffix>`, chunk by chunk; and its sha256, hashed once when made.
    The key is made from the scored files' contents, so a changed (then restored) source never
    serves what was made from another; a cached file that lost its sha256 is made again."""
    cache = state.root / "cache" / "downloads" / manifest["agency"]
    target = cache / f"{manifest['batch_id']}.{source_key(parts)}.{suffix}"
    digest = target.with_name(target.name + ".sha256")
    if not intact_cache_file(target, digest):
        chunks = (
            shape(batch.to_pandas())
            for part in parts
            for batch in pq.ParquetFile(part, pre_buffer=False).iter_batches(250_000)
        )
        write(chunks, target)
        storage.write_text(digest, storage.file_sha256(target))
        remove_stale_cache(cache, manifest["batch_id"], suffix, keep=target)
    return target, digest.read_text().strip()


def stream_file(path: Path) -> Iterator[bytes]:
    with open_regular(path) as handle:
        while block := handle.read(BLOCK):
            yield block
