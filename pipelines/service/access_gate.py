"""Every request of the pull service passes through its access log, which fails closed.

Before a request is handled, the log's end is checked against its head (and, at the first
request after a start, the whole chain); its entry is appended before the body is sent. If the
log fails its check or cannot be appended (a cut or deleted line, a full disk, an unreachable
tracking store), the answer is 503 with one plain sentence and nothing is served. Requests
without a valid token are limited per address (pipelines.service.limits): past the limit they
get 429 with Retry-After, and only the first refusal of each window is logged."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from pipelines.paths import StateDir
from pipelines.service import access
from pipelines.service.limits import LOGGED_HEADER_CHARS, AnonymousLimit, capped
from pipelines.settings import settings

UNAVAILABLE = (
    "the service's access log cannot be written or failed its check, so nothing is served "
    "until an operator repairs it; `agencyml access-log` on the server says what is wrong"
)
Identify = Callable[[Request], "access.Token | None"]


def bearer_token(state: StateDir) -> Identify:
    """The live token of the request's Authorization header, if any: so that a request by a
    valid token is logged with its id even when it matches no route."""

    def identify(request: Request) -> access.Token | None:
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        return access.authenticate(state, secret.strip()) if scheme.lower() == "bearer" else None

    return identify


class AccessGate:
    """The access log's state in one service process: whether the whole chain was verified
    since the start, the per-address limit, and the problems already reported."""

    def __init__(self, state: StateDir, limit: AnonymousLimit) -> None:
        self.state, self.limit = state, limit
        self.identifiers: list[Identify] = [bearer_token(state)]
        self.verified = False
        self.reported: set[str] = set()
        self.lock = threading.Lock()

    def caller(self, request: Request) -> access.Token | None:
        for identify in self.identifiers:
            token = identify(request)
            if token is not None:
                return token
        return None

    def check(self) -> bool:
        """True when the log may take entries: its end matches its head, and its whole chain
        was verified once since the service started."""
        try:
            if self.verified:
                access.check_access_log(self.state)
            else:
                access.read_access_log(self.state)
                self.verified = True
            return True
        except Exception as error:  # whatever it is, nothing may be served unlogged
            self.report(error)
            return False

    def record(self, request: Request, token: access.Token | None, status: int, size: int) -> bool:
        """Append the request's entry; False (and the reason on stderr) when it cannot be."""
        try:
            access.log_access(
                self.state,
                token_id=token.token_id if token else None,
                agency=token.agency if token else None,
                role=token.role if token else None,
                method=request.method,
                path=request.url.path,
                status=status,
                bytes_sent=size,
                client=client_of(request),
                user_agent=request.headers.get("user-agent", ""),
            )
            return True
        except Exception as error:
            self.report(error)
            return False

    def report(self, error: Exception) -> None:
        """Say on the server's stderr why the service answers 503, once per distinct reason."""
        message = f"agencyml serve answers 503: {error}"
        with self.lock:
            if message in self.reported:
                return
            self.reported.add(message)
        print(message, file=sys.stderr, flush=True)


def client_of(request: Request) -> str:
    return capped(request.client.host if request.client else "", LOGGED_HEADER_CHARS)


def unavailable() -> JSONResponse:
    return JSONResponse({"detail": UNAVAILABLE}, status_code=503)


def guard(app: FastAPI, state: StateDir, limit: AnonymousLimit | None = None) -> AccessGate:
    """Put every request of `app` through the access log; returns the gate, whose identifiers
    other parts of the app (the pages' sessions) may extend."""
    per_minute = settings().anonymous_requests_per_minute
    gate = AccessGate(state, limit or AnonymousLimit(requests=per_minute))

    @app.middleware("http")
    async def log_every_request(request: Request, call_next: Any) -> Any:
        known = await run_in_threadpool(gate.caller, request)
        address = client_of(request)
        if known is None and (wait := gate.limit.retry_after(address)):
            refusal = too_many(wait)
            if gate.limit.refused(address) > 1:
                return refusal
            logged = await run_in_threadpool(gate.record, request, None, 429, len(refusal.body))
            return refusal if logged else unavailable()
        if not await run_in_threadpool(gate.check):
            return unavailable()
        response = await call_next(request)
        token: access.Token | None = getattr(request.state, "token", None) or known
        if token is None:
            gate.limit.count(address)
        size = int(response.headers.get("content-length") or 0)
        if not await run_in_threadpool(gate.record, request, token, response.status_code, size):
            with contextlib.suppress(Exception):
                await response.body_iterator.aclose()
            return unavailable()
        return response

    return gate


def too_many(wait: int) -> JSONResponse:
    return JSONResponse(
        {
            "detail": "too many requests without a valid token from this address; "
            f"try again in {wait} s, with a token"
        },
        status_code=429,
        headers={"Retry-After": str(wait)},
    )
