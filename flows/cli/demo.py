"""The demo end to end, the MLflow UI, and where the state directory is."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from flows.cli.app import (
    add_id_column,
    app,
    console,
    emit_json,
    errors,
    friendly_errors,
    json_option,
    prefect_api,
)
from pipelines import config
from pipelines.paths import state_dir

PANEL = "Demo and tools"  # where `agencyml --help` lists these commands


@app.command(rich_help_panel=PANEL)
def demo(as_json: bool = json_option()) -> None:
    """Ingest every agency's data (versioned with DVC in a git checkout), then train and score
    every use case on a held-out batch."""
    with friendly_errors():
        from flows.ingest import ingest as ingest_flow
        from flows.score import score as score_flow
        from flows.train import train as train_flow
        from pipelines.data.versioning import can_track, default_remote
        from pipelines.paths import project_root
        from pipelines.registry import tracking
        from pipelines.registry.tracking import CHAMPION
        from pipelines.scoring.batches import write_holdout_batch

        agencies = config.list_agencies()
        specs = config.list_use_cases()
        results = []
        columns = (
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with prefect_api(), Progress(*columns, console=errors) as progress:
            overall = progress.add_task("demo", total=len(agencies) + 3 * len(specs))
            ingested = []
            for agency in agencies:
                progress.update(overall, description=f"ingesting {agency}'s data")
                ingested += ingest_flow(agency)
                progress.advance(overall)
            for spec in specs:
                progress.update(overall, description=f"training {spec.model_name}")
                trained = train_flow(spec.agency, spec.name)
                progress.advance(overall)
                if tracking.alias_version(spec.model_name, CHAMPION, state_dir()) is None:
                    # the gate kept the version out (a floor not met, say): nothing to score with
                    results.append((trained, None))
                    progress.advance(overall, 2)
                    continue
                progress.update(
                    overall, description=f"preparing a held-out batch for {spec.model_name}"
                )
                batch_path = write_holdout_batch(spec, state_dir())
                progress.advance(overall)
                progress.update(overall, description=f"scoring {spec.model_name}")
                scored = score_flow(spec.agency, spec.name, str(batch_path))
                progress.advance(overall)
                results.append((trained, scored))
            progress.update(overall, description="done")
        remote = default_remote(project_root()) if can_track(project_root()) else None
        if as_json:
            emit_json(
                {
                    "ingested": [asdict(item) for item in ingested],
                    "dvc_remote": {"name": remote[0], "url": remote[1]} if remote else None,
                    "use_cases": [
                        {
                            "model_name": trained.model_name,
                            "trained_version": trained.model_version,
                            "run_id": trained.run_id,
                            "gate": trained.gate,
                            "metrics": trained.metrics,
                            "scored": None if scored is None else asdict(scored),
                        }
                        for trained, scored in results
                    ],
                }
            )
            return
        console.print(trained_table(results))
        console.print(scored_table(results))
        console.print("\nIngested data (data/ingested/, md5 as DVC records it):")
        for item in ingested:
            console.print(f"  {item.path}  {item.rows:,} rows  md5 {item.md5}", soft_wrap=True)
        if remote is not None:
            console.print(
                f"  recorded in dvc.lock and pushed to DVC remote '{remote[0]}' ({remote[1]})",
                soft_wrap=True,
            )
        else:
            console.print("  (not a git + DVC checkout: the files are not versioned by DVC)")
        console.print("\nScored batches (scored.parquet + manifest.json):")
        for trained, scored in results:
            if scored is None:
                console.print(
                    f"  [yellow]{trained.model_name} not scored:[/] the gate made no champion "
                    f"({trained.gate.get('decision')}: {trained.gate.get('reason')})",
                    soft_wrap=True,
                )
            else:
                console.print(f"  {scored.output_dir}", soft_wrap=True)
        console.print(
            f"Validation reports (Data Docs), one folder per validation, each also logged with "
            f"its MLflow run: {state_dir().root / 'gx'}/<agency>/gx/uncommitted/data_docs/runs/"
            "<suite>/<run>/index.html",
            soft_wrap=True,
        )
        console.print(
            "Open the MLflow UI with: [bold]make ui[/] or [bold]agencyml ui[/], "
            "then browse http://127.0.0.1:5000"
        )
        console.print(
            "Run it unattended: [bold]agencyml server[/], [bold]agencyml deploy[/], "
            f"[bold]agencyml worker[/]; then drop batches in {state_dir().inbox_dir}/<agency>/"
            "<use-case>/ (README: Running unattended)",
            soft_wrap=True,
        )


def trained_table(results: list[tuple[Any, Any]]) -> Table:
    table = Table(title="agencyml demo: trained")
    add_id_column(table, "model", (trained.model_name for trained, _ in results))
    table.add_column("trained", no_wrap=True)
    table.add_column("champion", no_wrap=True)
    table.add_column("holdout metrics")
    for trained, scored in results:
        metric = "roc_auc" if "roc_auc" in trained.metrics else "macro_f1"
        headline = f"{metric} {trained.metrics[metric]:.3f}"
        if "pr_auc" in trained.metrics:
            headline += f", pr_auc {trained.metrics['pr_auc']:.3f}"
        champion = "none" if scored is None else f"v{scored.model_version}"
        table.add_row(trained.model_name, f"v{trained.model_version}", champion, headline)
    return table


def scored_table(results: list[tuple[Any, Any]]) -> Table:
    """Each held-out batch, scored with the champion the trained table shows."""
    table = Table(title="agencyml demo: held-out batches scored")
    add_id_column(table, "model", (trained.model_name for trained, _ in results))
    batch_ids = ["not scored" if scored is None else scored.batch_id for _, scored in results]
    add_id_column(table, "batch id", batch_ids)
    table.add_column("rows", justify="right")
    table.add_column("quarantined", justify="right")
    for batch_id, (trained, scored) in zip(batch_ids, results, strict=True):
        counts = ("-", "-") if scored is None else (str(scored.rows), str(scored.rows_quarantined))
        table.add_row(trained.model_name, batch_id, *counts)
    return table


@app.command(rich_help_panel=PANEL)
def ui(
    port: int = typer.Option(5000, help="Port for the MLflow UI."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; keep 127.0.0.1 unless proxied."),
    allow_writes: bool = typer.Option(
        False,
        "--allow-writes",
        help="Let the UI change the store too (tags, aliases, deletions); read-only by default.",
    ),
) -> None:
    """Serve the MLflow UI for the state directory's tracking store, read-only unless asked."""
    from pipelines.service import mlflow_ui

    with friendly_errors():
        state = state_dir()
    try:
        listener = mlflow_ui.bind_listener(host, port)
    except OSError as error:
        errors.print(
            f"[bold red]error:[/] cannot serve on {host}:{port} ({error.strerror or error}); "
            "choose another with --port.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2) from None
    # MLflow's own server listens on a Unix socket in a 0700 folder: only this user reaches it,
    # and only through the proxy; the port it is given is never opened
    socket_dir = Path(tempfile.mkdtemp(prefix="agencyml-ui-"))
    upstream = socket_dir / "mlflow.sock"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        state.tracking_uri,
        "--host",
        "127.0.0.1",
        "--port",
        str(mlflow_ui.free_local_port()),
        "--workers",
        "1",  # one person's UI: four workers cost four times the start-up and memory
        "--uvicorn-opts",
        f"--uds {shlex.quote(str(upstream))}",
    ]
    # MLflow's UI runs uvicorn and its workers below it: in a process group of their own, so
    # Ctrl+C or a SIGTERM to this command stops all of them, never leaving the server behind
    process = subprocess.Popen(command, env=os.environ.copy(), start_new_session=True)

    stopped = []

    def stop_the_group(signum: int, _frame: object) -> None:
        stopped.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)

    for handled in (signal.SIGINT, signal.SIGTERM):
        signal.signal(handled, stop_the_group)
    alive = lambda: process.poll() is None  # noqa: E731
    serving = False
    try:
        serving = mlflow_ui.wait_until_serving(upstream, alive)
        if serving:
            mode = "read and write" if allow_writes else "read-only; --allow-writes to change it"
            console.print(f"MLflow UI on http://{host}:{port} ({mode}; Ctrl+C to stop)")
            mlflow_ui.serve_proxy(
                upstream, listener, allow_writes=allow_writes, upstream_alive=alive
            )
    finally:
        listener.close()
        if alive():
            stop_the_group(signal.SIGTERM, None)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_the_group(signal.SIGKILL, None)
            code = process.wait()
        shutil.rmtree(socket_dir, ignore_errors=True)
    if not serving and not stopped:
        errors.print(
            "[bold red]error:[/] MLflow's server did not start (its output is above); nothing "
            "was served.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code if code > 0 else 1)
    raise typer.Exit(code if code > 0 and not stopped else 0)


@app.command("state-dir", rich_help_panel=PANEL)
def show_state_dir(as_json: bool = json_option()) -> None:
    """Print where agencyml keeps MLflow, Prefect and scored outputs."""
    with friendly_errors():
        state = state_dir()
    where = {
        "root": str(state.root),
        "tracking_uri": state.tracking_uri,
        "outputs": str(state.outputs_dir),
    }
    if as_json:
        emit_json(where)
    else:
        console.print_json(json.dumps(where))
