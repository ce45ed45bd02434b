"""The agency's client for the pull service: fetch a batch and prove it arrived whole.

The download goes to a hidden partial file beside the target while its sha256 is computed; the
file takes its final name only if the hash equals the one the service sent. An interrupted or
altered download leaves nothing under the final name, and every failure is a PullError whose
message is one sentence: what went wrong and what to do about it."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import httpx

DEFAULT_URL = "http://127.0.0.1:8765"
Format = Literal["parquet", "csv"]  # what the data endpoint serves
FORMATS: tuple[str, ...] = get_args(Format)
# A token is sent in an HTTP header: printable ASCII, no spaces.
TOKEN_CHARACTERS = re.compile(r"[!-~]+")
WHERE = "AGENCYML_URL / --url"


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
    if format not in FORMATS:
        raise PullError(f"unknown format '{format}': use one of {', '.join(FORMATS)}")
    if not TOKEN_CHARACTERS.fullmatch(token):
        raise PullError(
            "the token holds spaces, line breaks or non-ASCII characters, which no agencyml "
            "token has: copy the secret `agencyml tokens create` printed, whole, into "
            "AGENCYML_TOKEN or --token"
        )
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=timeout) as client:
            batch_id = batch_id or latest_batch(client, agency, use_case)
            return download(client, agency, batch_id, Path(output), format)
    except (httpx.TransportError, httpx.InvalidURL) as error:
        raise unreachable(error, url, timeout) from error


def latest_batch(client: httpx.Client, agency: str, use_case: str | None) -> str:
    params = {"limit": 1, **({"use_case": use_case} if use_case else {})}
    response = client.get(f"/v1/agencies/{agency}/batches", params=params)
    if response.status_code != 200:
        raise refusal(response, agency)
    batches = response.json()
    if not batches:
        which = f" for {use_case}" if use_case else ""
        raise PullError(
            f"{agency} has no published batch{which} yet: pull again once one is scored, "
            "or check --use-case"
        )
    return str(batches[0]["batch_id"])


def download(client: httpx.Client, agency: str, batch_id: str, output: Path, format: str) -> Pulled:
    """Stream the batch's data into `output`, verified; nothing is created until the service
    has said yes."""
    from pipelines.service.api import CONTENT_HASH_HEADER  # the API module brings FastAPI

    path = f"/v1/agencies/{agency}/batches/{batch_id}/data"
    with client.stream("GET", path, params={"format": format}) as response:
        if response.status_code != 200:
            raise refusal(response, agency, batch_id)
        expected = response.headers.get(CONTENT_HASH_HEADER, "")
        if not expected:
            raise PullError(
                f"the service at {client.base_url} sent {batch_id} without its "
                f"{CONTENT_HASH_HEADER} header, so it cannot be verified and nothing was "
                f"written: check that {WHERE} points at `agencyml serve`"
            )
        try:
            return save_verified(response.iter_bytes(), output, batch_id, expected)
        except httpx.TransportError as error:
            raise PullError(
                f"the download of {batch_id} was interrupted ({reason(error)}), "
                f"so nothing was written to {output}: pull it again"
            ) from error


def save_verified(blocks: Iterable[bytes], output: Path, batch_id: str, expected: str) -> Pulled:
    """Write the blocks to a partial file beside `output` and rename it only if their sha256
    is `expected`; on any failure the partial file goes and `output` is as it was."""
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
    partial = Path(name)
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(handle, "wb") as out:
            for block in blocks:
                digest.update(block)
                out.write(block)
                size += len(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected:
            raise PullError(
                f"batch {batch_id} arrived with sha256 {digest.hexdigest()} but the service "
                f"sent {expected}, so nothing was written to {output}: pull it again, and if "
                "it arrives altered again, ask the operator to run `agencyml verify`"
            )
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return Pulled(batch_id, output, digest.hexdigest(), size)


def refusal(response: httpx.Response, agency: str, batch_id: str | None = None) -> PullError:
    """What the service's refusal means for the person pulling, and what to change."""
    from pipelines.service.files import DAMAGED_HEADER  # the files module brings FastAPI

    response.read()
    status = response.status_code
    what = f"batch {batch_id} of {agency}" if batch_id else f"the batches of {agency}"
    damaged = response.headers.get(DAMAGED_HEADER)
    if damaged:
        return PullError(
            f"the service's own copy of {what} is damaged ({damaged} no longer has the sha256 "
            f"its manifest records), so it sent nothing (HTTP {status}) and pulling again will "
            "not help: ask the operator to restore the batch (`agencyml verify` lists the damage)"
        )
    if status == 401:
        return PullError(
            "the pull service refused the token (HTTP 401): it is unknown or revoked, so check "
            "AGENCYML_TOKEN / --token, or ask the operator for a new one (`agencyml tokens "
            "create`)"
        )
    if status == 404 and batch_id:
        return PullError(
            f"{what} is not there or not yours (HTTP 404): check the batch id (or use "
            f"--latest) and that the token is {agency}'s"
        )
    if status == 404:
        return PullError(
            f"{what} are not there or not yours (HTTP 404): check --agency, since a token sees "
            "only its own agency's batches"
        )
    if status == 403:
        return PullError(
            f"this token may not read {what} (HTTP 403: {detail(response)}): use {agency}'s "
            "own token, or an auditor token made with --read-rows"
        )
    if status == 422:
        return PullError(
            f"the service found the request for {what} malformed (HTTP 422: "
            f"{detail(response)}): check --agency, --batch and --use-case"
        )
    return PullError(
        f"the pull service failed on {what} (HTTP {status}: {detail(response)}): see the "
        "service's log, then pull again"
    )


def detail(response: httpx.Response) -> str:
    """The service's own explanation, in a few words: its `detail`, and for a request that
    failed validation, each field with its problem."""
    try:
        said: Any = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        said = response.text
    if isinstance(said, list):
        said = "; ".join(
            f"{item.get('loc', ['?'])[-1]}: {item.get('msg', item)}"
            if isinstance(item, dict)
            else str(item)
            for item in said
        )
    return " ".join(str(said).split())[:300] or "no detail"


def unreachable(error: httpx.HTTPError | httpx.InvalidURL, url: str, timeout: float) -> PullError:
    """A request that got no answer from the service, as what to check."""
    if isinstance(error, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return PullError(
            f"'{url}' is not a pull service address: set {WHERE} to one like {DEFAULT_URL}, "
            "with its http:// or https://"
        )
    if isinstance(error, httpx.ConnectError) and caused_by(error, socket.gaierror):
        return PullError(
            f"the host of {url} cannot be found ({error}): check the address in {WHERE}"
        )
    if isinstance(error, httpx.ConnectError):
        return PullError(
            f"no pull service answers at {url}: start it with `agencyml serve` or set {WHERE}"
        )
    if isinstance(error, httpx.ConnectTimeout):
        return PullError(
            f"the pull service at {url} did not take the connection within {timeout:g} s: "
            f"check {WHERE} and the network, or allow longer with --timeout"
        )
    if isinstance(error, httpx.TimeoutException):
        return PullError(
            f"the pull service at {url} did not answer within {timeout:g} s: it may be busy, "
            "so pull again or allow longer with --timeout"
        )
    return PullError(
        f"the connection to the pull service at {url} failed ({reason(error)}): "
        f"check {WHERE} and that `agencyml serve` runs there"
    )


def reason(error: Exception) -> str:
    return str(error) or type(error).__name__


def caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, kind):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
