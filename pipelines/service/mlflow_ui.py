"""A read-only front for MLflow's UI. `agencyml ui` runs MLflow's own server on a Unix socket in
a private (0700) folder, which only its user can reach, and serves this proxy on the user's port
of 127.0.0.1: it passes what the UI reads (every GET, and
the POST calls that only search or read) and answers every other call with 403, so nobody moves
an alias, deletes a run or edits a tag through the UI unless the user started it with
`--allow-writes`. The registry's aliases are agencyml's to move: the audit log records each move,
and scoring refuses an alias that the log does not explain."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# The POST calls of MLflow 3's REST API (under /api/ or /ajax-api/) that only read: searches,
# batched gets and trace metrics. Every other POST, PUT, PATCH and DELETE changes the store.
READ_POSTS = frozenset(
    {
        "2.0/mlflow/experiments/search",
        "2.0/mlflow/experiments/search-datasets",
        "2.0/mlflow/runs/search",
        "2.0/mlflow/registered-models/get-latest-versions",
        "2.0/mlflow/logged-models/search",
        "3.0/mlflow/traces/search",
        "3.0/mlflow/traces/batchGetInfos",
        "3.0/mlflow/traces/metrics",
        "3.0/mlflow/traces/calculate-filter-correlation",
        "3.0/mlflow/datasets/search",
        "3.0/mlflow/issues/search",
        "3.0/mlflow/prompt-optimization/jobs/search",
    }
)
# MLflow's GraphQL schema only reads: its two "mutations" are run and dataset searches.
READ_POST_PATHS = frozenset({"/graphql"})
API_PATH = re.compile(r"^/(?:ajax-)?api/(?P<call>[23]\.0/.+?)/*$")

# hop-by-hop headers, which concern one connection and are not forwarded
HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)


def is_read(method: str, path: str) -> bool:
    """Whether a call to MLflow's server only reads."""
    method = method.upper()
    if method in READ_METHODS:
        return True
    if method != "POST":
        return False
    if path.rstrip("/") in READ_POST_PATHS:
        return True
    found = API_PATH.match(path)
    return found is not None and found["call"] in READ_POSTS


def refusal(method: str, path: str) -> dict[str, str]:
    """What a refused write is told, as JSON in MLflow's own error shape."""
    return {
        "error_code": "PERMISSION_DENIED",
        "message": (
            f"{method} {path} would change MLflow's store, and `agencyml ui` is read-only: "
            "aliases move only through agencyml (`agencyml approve`, `agencyml rollback`), "
            "which records every move in the audit log. To make changes in the UI, restart it "
            "with `agencyml ui --allow-writes`."
        ),
    }


# MLflow's server checks the Host header: a request through its socket names the loopback
UPSTREAM_URL = "http://127.0.0.1"


def create_ui_proxy(upstream: Path, *, allow_writes: bool = False) -> Starlette:
    """The proxy in front of the MLflow server listening on the Unix socket `upstream`."""
    client = httpx.AsyncClient(
        transport=httpx.AsyncHTTPTransport(uds=str(upstream)),
        base_url=UPSTREAM_URL,
        timeout=httpx.Timeout(300, connect=10),
    )

    async def forward(request: Request) -> Response:
        path = request.url.path
        if not allow_writes and not is_read(request.method, path):
            return JSONResponse(refusal(request.method, path), status_code=403)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_HEADERS]
        target = request.scope.get("raw_path") or path.encode()
        if request.url.query:
            target += b"?" + request.url.query.encode()
        sent = client.build_request(
            request.method,
            target.decode("latin-1"),
            headers=headers,
            content=request.stream(),
        )
        try:
            answer = await client.send(sent, stream=True)
        except httpx.TransportError:
            return JSONResponse(
                {
                    "error_code": "TEMPORARILY_UNAVAILABLE",
                    "message": "MLflow's server behind `agencyml ui` did not answer; try again "
                    "in a moment, or restart `agencyml ui`.",
                },
                status_code=502,
            )
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k.lower() not in HOP_HEADERS},
            background=BackgroundTask(answer.aclose),
        )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    methods = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)], lifespan=lifespan)


def free_local_port() -> int:
    """A port of 127.0.0.1 nothing listens on at the moment of asking."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(upstream: Path, alive: Callable[[], bool], timeout: float = 180) -> bool:
    """Whether MLflow's server answers its health check before it exits or time runs out."""
    deadline = time.monotonic() + timeout
    transport = httpx.HTTPTransport(uds=str(upstream))
    with httpx.Client(transport=transport, base_url=UPSTREAM_URL, timeout=2) as client:
        while alive() and time.monotonic() < deadline:
            try:
                if client.get("/health").status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
    return False


def serve_proxy(
    upstream: Path,
    listener: socket.socket,
    *,
    allow_writes: bool,
    upstream_alive: Callable[[], bool],
) -> None:
    """Serve the proxy on an already bound socket until a signal stops it or MLflow's server
    exits (nothing would be left to serve)."""
    import uvicorn

    config = uvicorn.Config(
        create_ui_proxy(upstream, allow_writes=allow_writes),
        log_level="warning",
        timeout_graceful_shutdown=5,  # a browser's open requests do not hold Ctrl+C up
    )
    server = uvicorn.Server(config)

    def stop_when_upstream_exits() -> None:
        while not server.should_exit:
            if not upstream_alive():
                server.should_exit = True
                return
            time.sleep(0.5)

    threading.Thread(target=stop_when_upstream_exits, daemon=True).start()
    server.run(sockets=[listener])


def bind_listener(host: str, port: int) -> socket.socket:
    """The user's port, bound before MLflow starts, so a port in use is said at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError:
        listener.close()
        raise
    listener.listen(128)
    return listener
