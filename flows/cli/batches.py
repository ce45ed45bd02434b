"""Commands on scored batches: score and lineage."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from flows.cli.app import (
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

PANEL = "Scored batches"  # where `agencyml --help` lists these commands


@app.command(rich_help_panel=PANEL)
def score(
    agency: str = typer.Option(..., "--agency", "-a"),
    use_case: str = typer.Option(..., "--use-case", "-u"),
    input: Path = typer.Option(..., "--input", "-i", help="A parquet or CSV batch to score."),
    store_input: bool = typer.Option(
        False, help="Also keep the input with DVC (dvc add + push) for auditors."
    ),
    chunk_rows: int = typer.Option(
        250_000,
        min=1_000,
        help="Rows read, validated and scored at a time: memory follows this, not the batch.",
    ),
    part_rows: int = typer.Option(
        1_000_000,
        min=1_000,
        help="A batch with more scored rows than this is written as several parquet parts.",
    ),
    as_json: bool = json_option(),
) -> None:
    """Score a batch with the use case's champion model and publish it.

    The batch streams through the validation gate and the model chunk by chunk, with a
    progress bar, and appears in the output area only when complete. Scoring the same file
    with the same model again returns the published batch."""
    with friendly_errors():
        spec = config.load_use_case(agency, use_case)  # fail fast, before Prefect starts
        require_input_file(input)
        from flows.deployed import timed

        with prefect_api():
            result = timed(spec, "score")(
                agency, use_case, str(input), store_input, chunk_rows, part_rows, progress=True
            )
        if as_json:
            emit_json(asdict(result))
        else:
            console.print(score_table(result))


def score_table(result: Any) -> Table:
    table = Table(title="Scored batch" if result.newly_published else "Batch already published")
    model = f"{result.model_name} v{result.model_version}"
    table.add_column("field", no_wrap=True)
    # the ids keep their width; only long paths and notes fold onto more lines
    table.add_column("value", overflow="fold", min_width=max(len(result.batch_id), len(model)))
    table.add_row("batch id", result.batch_id)
    table.add_row("model", model)
    table.add_row("rows", str(result.rows))
    table.add_row("decisions", ", ".join(f"{k}: {v}" for k, v in result.decisions.items()))
    table.add_row("rows quarantined", str(result.rows_quarantined))
    if result.drift_level is not None:
        colours = {"ok": "green", "warn": "yellow", "too few rows": "dim"}
        colour = colours.get(result.drift_level, "bold red")
        drifted = f" ({', '.join(result.drifted)})" if result.drifted else ""
        table.add_row("drift", f"[{colour}]{result.drift_level}[/]{drifted}; see drift.html")
    if result.quarantine_dir:
        table.add_row("quarantine", str(result.quarantine_dir))
    if result.timings.get("total_seconds"):
        table.add_row(
            "time",
            f"{result.timings['total_seconds']:.1f} s "
            f"({result.timings.get('rows_per_second', 0):,} rows/s)",
        )
    table.add_row("output", str(result.output_dir))
    return table


def require_input_file(path: Path) -> None:
    """A mistyped --input is said at once, not after a Prefect server was found or started."""
    from pipelines.data.readers import InputFileError

    if not path.exists():
        raise InputFileError(f"input file not found: {path}. Check the path and try again.")
    if not path.is_file():
        raise InputFileError(f"input path is not a file: {path}. Give a batch file in it.")


@app.command(rich_help_panel=PANEL)
def lineage(
    batch_id: str | None = typer.Argument(None, help="A scored batch id, e.g. batch-57857271..."),
    model: str | None = typer.Option(None, "--model", "-m", help="Start from a model instead."),
    version: str | None = typer.Option(None, "--version", "-V"),
    as_json: bool = json_option(),
) -> None:
    """Trace a scored batch (or a model version) back to its run, model, training run, commit,
    params, DVC data and validation results; every node shows the MLflow ids to open."""
    with friendly_errors():
        from pipelines.registry import trace

        if (batch_id is None) == (model is None) or (model is not None and version is None):
            raise typer.BadParameter("give a BATCH_ID, or --model NAME --version V")
        if batch_id is not None:
            tree = trace.trace_batch(batch_id, state_dir())
        else:
            tree = trace.trace_model(str(model), str(version), state_dir())
        if as_json:
            emit_json(tree.to_dict())
        else:
            console.print(trace.render_tree(tree))
        if not tree.complete():
            errors.print("[bold yellow]some links are missing[/] (marked in the tree)")
            raise typer.Exit(12)
