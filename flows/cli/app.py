"""The typer app and what every command shares: the console, the --verbose and --json options,
clear errors with the README's exit codes, a spinner for work of unknown length, and table
columns that never shorten an id.

stdout carries a command's result only (its tables, or with --json one JSON document); progress,
notices and errors go to stderr, so `agencyml X --json | jq` always reads one document."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from flows.errors import EXIT_CODES, explained
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


@app.callback()
def main_options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect and MLflow logs."),
) -> None:
    try:
        state = state_dir()
    except (ProjectNotFoundError, SettingsError):
        return  # `init` and `settings` work anywhere; other commands say what is wrong
    prepare_environment(state, verbose=verbose)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Known failures print one clear message and exit non-zero; nothing else is swallowed."""
    try:
        yield
    except Exception as raised:
        error = explained(raised)
        code = EXIT_CODES.get(type(error).__name__)
        if code is None:
            raise
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(code) from None


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


def add_id_column(table: Table, header: str, ids: Iterable[str]) -> None:
    """A column of identifiers (batch ids, model names, token ids) that a narrow terminal never
    cuts with an ellipsis: it keeps the longest id's width and the other columns wrap instead."""
    longest = max((len(str(value)) for value in ids), default=0)
    table.add_column(header, no_wrap=True, min_width=max(longest, len(header)))


def main() -> None:
    app()
