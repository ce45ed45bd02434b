"""The typer app and what every command shares: the console, the --verbose and --json options,
clear errors with the README's exit codes, a spinner for work of unknown length, and table
columns that never shorten an id.

stdout carries a command's result only (its tables, or with --json one JSON document); progress,
notices and errors go to stderr, so `agencyml X --json | jq` always reads one document."""

from __future__ import annotations

import _thread
import json
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from typer._click.globals import get_current_context  # typer's own copy of click
from typer.exceptions import TyperException

from flows.errors import EXIT_CODES, INTERRUPTED, TrackingServerError, explained
from flows.runtime import prepare_environment
from pipelines.paths import ProjectNotFoundError, state_dir
from pipelines.settings import SettingsError, settings

app = typer.Typer(
    help="agencyml: train, register and batch-score models for public agencies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()  # stdout: results only
errors = Console(stderr=True)  # stderr: progress, notices and errors


# commands that do their work through the MLflow store: they stop at once when its server is
# away (servers such as `serve` wait for it instead, as a deployment starts them together)
USES_TRACKING = frozenset(
    {"train", "evaluate", "score", "reproduce", "approve", "reject", "rollback"}
    | {"history", "lineage", "card", "verify", "demo"}
)


@app.callback()
def main_options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect and MLflow logs."),
) -> None:
    try:
        state = state_dir()
    except (ProjectNotFoundError, SettingsError):
        return  # `init` and `settings` work anywhere; other commands say what is wrong
    with friendly_errors():
        prepare_environment(state, verbose=verbose)


def require_tracking_server(uri: str | None, timeout: float = 5.0) -> None:
    """Refuse to start when AGENCYML_TRACKING_URI names a server that does not answer: MLflow
    would retry for minutes before failing half-way through the command."""
    if not uri or urlsplit(uri).scheme not in ("http", "https"):
        return
    parts = urlsplit(uri)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout):
            return
    except OSError as refused:
        reason = refused.strerror or type(refused).__name__
        raise TrackingServerError(
            f"the MLflow tracking server at {uri} (AGENCYML_TRACKING_URI) does not answer "
            f"({reason}), so nothing ran: start it, or fix or unset AGENCYML_TRACKING_URI "
            "(`agencyml settings` shows it), and try again."
        ) from None


class OutputPathError(ValueError):
    """An output path the command could not write to; checked before any work starts."""


def writable_file(path: Path | None, option: str) -> None:
    """Refuse, before any work, an output file that is a folder or cannot be made."""
    if path is None:
        return
    if path.is_dir():
        raise OutputPathError(
            f"{option} {path} is a folder: give the path of a file (in it, if you like)."
        )
    writable_folder(path.parent, option, of=path)


def writable_folder(path: Path | None, option: str, *, of: Path | None = None) -> None:
    """Refuse, before any work, an output folder that is a file or cannot be made or written."""
    if path is None:
        return
    named = of or path
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(
            f"{option} {named}: {existing} is a file, not a folder; choose another path."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(
            f"{option} {named}: this user cannot write in {existing}; choose another path."
        )


def showing_tracebacks() -> bool:
    """`agencyml --verbose` shows an unexpected failure's traceback for a bug report."""
    context = get_current_context(silent=True)
    root = context.find_root() if context is not None else None
    return bool(root is not None and root.params.get("verbose"))


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Every failure prints one clear message and exits with the README's code: known ones
    with their own, a file system refusal with 16, anything else with 1 (the traceback only
    with --verbose). Ctrl-C stops the command with 130, however deep it was."""
    try:
        command = get_current_context(silent=True)
        if command is not None and command.info_name in USES_TRACKING:
            require_tracking_server(settings().tracking_uri)
        with interruptible():
            yield
    except KeyboardInterrupt:
        fail(
            INTERRUPTED,
            "KeyboardInterrupt",
            "the command stopped before it finished; a batch or model it had not finished "
            "publishing was not published. Run it again to finish.",
            label="interrupted",
        )
    except (typer.Exit, typer.Abort, TyperException):
        raise  # the command's own exit, or typer's usage error: already said
    except Exception as raised:
        error = explained(raised)
        code = EXIT_CODES.get(type(error).__name__)
        if code is not None:
            message = str(error)
        elif is_file_system_error(error) and not showing_tracebacks():
            code = EXIT_CODES["OutputDiskError"]
            where = f" {error.filename}" if error.filename else ""
            message = (
                f"the file system refused{where}: {error.strerror or error}. Check the path, "
                "its permissions and the free space, and try again."
            )
        elif not showing_tracebacks():
            code = 1
            message = (
                f"unexpected failure ({type(error).__name__}: {error}). Run it again with "
                "`agencyml --verbose ...` to see where it happened."
            )
        else:
            raise
        fail(code, type(error).__name__, message)


def is_file_system_error(error: Exception) -> bool:
    """An OSError of a file or disk; a network one (also an OSError) is not the disk's fault."""
    network = (ConnectionError, TimeoutError, socket.gaierror, socket.herror)
    return isinstance(error, OSError) and not isinstance(error, network)


def fail(code: int, kind: str, message: str, label: str = "error") -> NoReturn:
    """Say what went wrong on stderr and exit with its code; with --json, stdout carries it
    too, as one document: {"error": {"code", "kind", "message"}}."""
    errors.print(f"[bold red]{label}:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if wants_json() and not json_emitted():  # a report that ends in an error is the document
        emit_json({"error": {"code": code, "kind": kind, "message": message}})
    raise typer.Exit(code) from None


def json_emitted() -> bool:
    """Whether the running command already printed its one JSON document."""
    context = get_current_context(silent=True)
    return bool(context is not None and context.find_root().meta.get(JSON_EMITTED))


def wants_json() -> bool:
    """Whether the running command was given --json."""
    context = get_current_context(silent=True)
    if context is None:
        return False
    return bool(context.params.get("as_json"))


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C stops the command even when it lands in a garbage collector's callback, where
    Python prints the KeyboardInterrupt and drops it (a training run went on to register its
    model): a dropped one is delivered again."""
    previous = sys.unraisablehook

    def deliver_again(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            # from another thread, a moment later: raised in here, it would be dropped again
            redelivery = threading.Timer(0.05, _thread.interrupt_main)
            redelivery.daemon = True
            redelivery.start()
            return
        previous(unraisable)

    sys.unraisablehook = deliver_again
    try:
        yield
    finally:
        sys.unraisablehook = previous


@contextmanager
def prefect_api() -> Iterator[None]:
    """Where the flows run inside it report: PREFECT_API_URL's server (or a test harness's),
    else the state directory's background server, started by the first command that needs
    it and found again by the next (pipelines.orchestration.local_server).
    AGENCYML_PREFECT_SERVER=temporary keeps Prefect's own temporary server per command."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value() or settings().prefect_server == "temporary":
        yield
        return
    from pipelines.orchestration import local_server

    server, started = run_with_spinner(
        "Finding the local Prefect server", lambda: local_server.find_or_start(state_dir())
    )
    if started:
        errors.print(
            f"started a local Prefect server for this state directory at {server.ui} (its UI); "
            "later commands use it too. `agencyml server --stop` stops it.",
            soft_wrap=True,
            highlight=False,
        )
    with temporary_settings(updates={PREFECT_API_URL: server.url}):
        yield


def spinner() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    )


def run_with_spinner(description: str, action: Callable[[], Any]) -> Any:
    with spinner() as progress:
        progress.add_task(description, total=None)
        return action()


def json_option(
    help: str = "Print the result as one JSON document on stdout (progress and notices on stderr).",
) -> Any:
    """The --json option of every command that prints a result."""
    return typer.Option(False, "--json", help=help)


def emit_json(result: Any) -> None:
    """A command's result as one JSON document on stdout: plain types, keys sorted, paths and
    times as strings."""
    print(json.dumps(result, indent=2, sort_keys=True, default=str))
    context = get_current_context(silent=True)
    if context is not None:
        context.find_root().meta[JSON_EMITTED] = True


JSON_EMITTED = "agencyml.json_emitted"


def add_id_column(table: Table, header: str, ids: Iterable[str]) -> None:
    """A column of identifiers (batch ids, model names, token ids) that a narrow terminal never
    cuts with an ellipsis: it keeps the longest id's width and the other columns wrap instead."""
    longest = max((len(str(value)) for value in ids), default=0)
    table.add_column(header, no_wrap=True, min_width=max(longest, len(header)))


def main() -> None:
    app()
