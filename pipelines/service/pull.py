"""The agency's client for the pull service: fetch a batch and prove it arrived whole.

The download goes to a hidden partial file beside the target while its sha256 is computed; the
file takes its final name only if the hash equals the one the service sent. An interrupted or
altered download leaves nothing under the final name."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pipelines.service.api import CONTENT_HASH_HEADER

DEFAULT_URL = "http://127.0.0.1:8765"


class PullError(RuntimeError):
    """The batch could not be fetched, or what arrived is not what the service sent."""


@dataclass(frozen=True)
class Pulled:
    batch_id: str
    path: Path
    sha256: str
    bytes: int


def pull_batch(
    url: str,
    token: str,
    agency: str,
    output: Path,
    *,
    batch_id: str | None = None,
    use_case: str | None = None,
    format: str = "parquet",
    timeout: float = 60.0,
) -> Pulled:
    """Fetch one batch (or the agency's latest, optionally of one use case) into `output`."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=timeout) as client:
        batch_id = batch_id or latest_batch(client, agency, use_case)
        return download(client, agency, batch_id, Path(output), format)


def latest_batch(client: httpx.Client, agency: str, use_case: str | None) -> str:
    listed = checked(client.get(f"/v1/agencies/{agency}/batches"), f"the batches of {agency}")
    batches = [b for b in listed.json() if use_case is None or b["use_case"] == use_case]
    if not batches:
        which = f" for {use_case}" if use_case else ""
        raise PullError(f"{agency} has no published batch{which} yet")
    return str(batches[0]["batch_id"])


def download(client: httpx.Client, agency: str, batch_id: str, output: Path, format: str) -> Pulled:
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
    partial = Path(name)
    digest, size = hashlib.sha256(), 0
    try:
        path = f"/v1/agencies/{agency}/batches/{batch_id}/data"
        with (
            os.fdopen(handle, "wb") as out,
            client.stream("GET", path, params={"format": format}) as response,
        ):
            checked(response, f"batch {batch_id}")
            expected = response.headers.get(CONTENT_HASH_HEADER, "")
            for block in response.iter_bytes():
                digest.update(block)
                out.write(block)
                size += len(block)
            out.flush()
            os.fsync(out.fileno())
        if not expected:
            raise PullError(f"the service sent no {CONTENT_HASH_HEADER} header for {batch_id}")
        if digest.hexdigest() != expected:
            raise PullError(
                f"batch {batch_id} arrived with sha256 {digest.hexdigest()} but the service "
                f"sent {expected}; nothing was written to {output}. Pull it again."
            )
        os.replace(partial, output)
    except httpx.HTTPError as error:
        raise PullError(
            f"the download of {batch_id} was interrupted ({error}); nothing was written to "
            f"{output}. Pull it again."
        ) from error
    finally:
        partial.unlink(missing_ok=True)
    return Pulled(batch_id, output, digest.hexdigest(), size)


def checked(response: httpx.Response, what: str) -> Any:
    """The response if it succeeded, else a PullError saying what the service said."""
    if response.status_code == 200:
        return response
    if response.is_stream_consumed is False:
        response.read()
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    hint = {
        401: " Check the token (AGENCYML_TOKEN or --token); it may be revoked.",
        404: " Check the agency and batch id; a token only sees its own agency.",
    }.get(response.status_code, "")
    raise PullError(f"{what}: HTTP {response.status_code}: {detail}.{hint}")
