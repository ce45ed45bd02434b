"""One Prefect server per state directory, started in the background by the first command that
runs a flow and found again by the next ones.

Without it, every command would start Prefect's temporary server (seconds on an idle machine, a
time-out on a busy one) and lose it on exit. The background server keeps its database, its log
and a record of where it listens (`server.json`) in the state directory's Prefect home, so every
run stays visible in one place: `agencyml server --status` gives its address (API and UI).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from pipelines.durable import file_lock
from pipelines.orchestration.prefect_server import (
    DEFAULT_HOST,
    OrchestrationError,
    served_api_url,
    server_command,
    server_environment,
)
from pipelines.paths import StateDir

STARTUP_SECONDS = 90.0  # a busy 2-core machine can take a minute to start Prefect's server
RECORD = "server.json"
LOG = "server.log"


@dataclass(frozen=True)
class LocalServer:
    url: str  # the API, http://127.0.0.1:<port>/api
    pid: int
    port: int
    log: str

    @property
    def ui(self) -> str:
        return self.url.removesuffix("/api")


def record_path(state: StateDir) -> Path:
    return state.prefect_home / RECORD


def running(state: StateDir) -> LocalServer | None:
    """The state directory's background server, if its process lives and it answers."""
    try:
        server = LocalServer(**json.loads(record_path(state).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not process_alive(server.pid) or not healthy(server.url):
        return None
    return server


def find_or_start(state: StateDir, timeout: float = STARTUP_SECONDS) -> tuple[LocalServer, bool]:
    """The running background server, or a new one once it answers (then True). Two commands
    that start at once agree on one server: the start is done under a lock."""
    state.prefect_home.mkdir(parents=True, exist_ok=True)
    with file_lock(state.prefect_home / "server.lock"):
        found = running(state)
        if found is not None:
            return found, False
        server = start(state)
        try:
            wait_until_healthy(server, timeout)
        except OrchestrationError:
            stop_process(server.pid)
            raise
        record_path(state).write_text(json.dumps(asdict(server)))
        return server, True


def start(state: StateDir) -> LocalServer:
    port = free_port()
    url = served_api_url(DEFAULT_HOST, port)
    log = state.prefect_home / LOG
    environment = {
        **server_environment(DEFAULT_HOST, port, ui=True),  # the UI calls the API on this port
        "PREFECT_HOME": str(state.prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    with open(log, "ab") as output:
        process = subprocess.Popen(
            server_command(DEFAULT_HOST, port, ui=True),
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the command; Ctrl+C on the command spares it
        )
    return LocalServer(url=url, pid=process.pid, port=port, log=str(log))


def wait_until_healthy(server: LocalServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(server.pid):
            raise OrchestrationError(
                f"the local Prefect server stopped while starting; its log:\n{log_tail(server)}"
            )
        if healthy(server.url):
            return
        time.sleep(0.25)
    raise OrchestrationError(
        f"the local Prefect server did not answer within {timeout:.0f} s at {server.url} (a "
        "busy machine is slow to start it). Run the command again; or start a server yourself "
        "with `agencyml server` and set PREFECT_API_URL=http://127.0.0.1:4200/api. Its log "
        f"ends:\n{log_tail(server)}"
    )


def stop(state: StateDir) -> LocalServer | None:
    """Stop the background server, if one runs; its database stays for the next one."""
    with file_lock(state.prefect_home / "server.lock"):
        try:
            server = LocalServer(**json.loads(record_path(state).read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if is_prefect_server(server.pid):  # a pid from before a reboot may be another's now
            stop_process(server.pid)
        record_path(state).unlink(missing_ok=True)
        return server


def is_prefect_server(pid: int) -> bool:
    """Whether the process runs `prefect server start` (read from /proc where there is one)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:
        return process_alive(pid)  # no /proc to read: trust the record
    return b"server" in command and b"start" in command and process_alive(pid)


def stop_process(pid: int, grace: float = 10.0) -> None:
    """SIGTERM to the server's process group (uvicorn and its helpers), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a child that exited but was not reaped is a zombie: not alive
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url.rstrip('/')}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((DEFAULT_HOST, 0))
        return int(probe.getsockname()[1])


def log_tail(server: LocalServer, lines: int = 20) -> str:
    try:
        return "\n".join(Path(server.log).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
