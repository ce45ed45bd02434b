"""The agencyml command line: typer for the commands, rich for progress and result tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from flows.errors import EXIT_CODES
from flows.runtime import prepare_environment
from pipelines import config
from pipelines.paths import state_dir

app = typer.Typer(
    help="agencyml: train, register and batch-score models for public agencies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)

METRICS_DIFFER = 8


@app.callback()
def main_options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show Prefect and MLflow logs."),
) -> None:
    prepare_environment(state_dir(), verbose=verbose)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Known failures print one clear message and exit non-zero; nothing else is swallowed."""
    try:
        yield
    except Exception as error:
        code = EXIT_CODES.get(type(error).__name__)
        if code is None:
            raise
        errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(code) from None


def spinner() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def run_with_spinner(description: str, action: Callable[[], Any]) -> Any:
    with spinner() as progress:
        progress.add_task(description, total=None)
        return action()


DETAIL_PREFIXES = ("slice.", "disparity.", "baseline.", "policy_")
PER_CLASS_PREFIXES = ("precision_", "recall_")


def headline_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics worth a table on screen; slices, baselines and per-class precision and
    recall stay on the MLflow run."""
    return {
        k: v
        for k, v in metrics.items()
        if not k.startswith(DETAIL_PREFIXES)
        and not (k.startswith(PER_CLASS_PREFIXES) and not k.endswith("_at_policy"))
    }


def metrics_table(title: str, metrics: dict[str, float]) -> Table:
    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


@app.command()
def agencies() -> None:
    """List the agencies and their use cases."""
    with friendly_errors():
        table = Table(title="Agencies and use cases")
        for column in ("agency", "use case", "task", "registered model", "description"):
            table.add_column(column)
        for spec in config.list_use_cases():
            table.add_row(
                spec.agency, spec.name, spec.params.task, spec.model_name, spec.params.description
            )
        console.print(table)


@app.command()
def ingest(
    agency: str = typer.Option(..., "--agency", "-a", help="Agency, as in params/<agency>.yaml."),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="One of the agency's datasets (default: all of them)."
    ),
) -> None:
    """Write the agency's raw sources, cleaned, to data/ingested/<agency>/<dataset>.parquet."""
    with friendly_errors():
        params = config.load_params(agency)
        if dataset is not None:
            params.dataset(dataset)  # fail fast on an unknown name
        from flows.ingest import ingest as ingest_flow

        written = run_with_spinner(f"Ingesting {agency}", lambda: ingest_flow(agency, dataset))
        table = Table(title=f"Ingested {agency}")
        for column in ("dataset", "file", "rows"):
            table.add_column(column, overflow="fold")
        table.add_column("md5", no_wrap=True, min_width=32)
        for item in written:
            table.add_row(item.dataset, item.path, f"{item.rows:,}", item.md5)
        console.print(table)


@app.command()
def train(
    agency: str = typer.Option(..., "--agency", "-a", help="Agency, as in params/<agency>.yaml."),
    use_case: str = typer.Option(..., "--use-case", "-u", help="One of the agency's use cases."),
    model_out: Path | None = typer.Option(
        None, help="Also write the registered version and model hash to this JSON file (DVC)."
    ),
) -> None:
    """Train, evaluate and register one use case's model (within its time limit)."""
    with friendly_errors():
        spec = config.load_use_case(agency, use_case)  # fail fast, before Prefect starts
        from flows.deployed import timed

        train_flow = timed(spec, "train")

        result = run_with_spinner(
            f"Training {agency}.{use_case}", lambda: train_flow(agency, use_case)
        )
        summary = Table(title=f"Trained {result.model_name}")
        summary.add_column("field")
        summary.add_column("value", overflow="fold")
        summary.add_row("run id", result.run_id)
        summary.add_row("model version", f"{result.model_version} {result.aliases or ''}")
        gate = result.gate
        if gate:
            colour = {"promote": "green", "hold": "yellow"}.get(gate["decision"], "cyan")
            summary.add_row("promotion gate", f"[{colour}]{gate['decision']}[/]: {gate['reason']}")
        summary.add_row("model sha256", result.model_sha256)
        summary.add_row("best iteration", str(result.best_iteration))
        summary.add_row(
            "rows (train/validation/holdout)", "/".join(str(v) for v in result.split_sizes.values())
        )
        console.print(summary)
        console.print(metrics_table("Holdout metrics", headline_metrics(result.metrics)))
        disparities = {k: v for k, v in result.metrics.items() if k.startswith("disparity.")}
        for name, ratio in disparities.items():
            console.print(f"slice {name.split('.')[1]}: max/min recall ratio {ratio:.2f}")
        console.print("Plots, baselines, slices and the model card are on the MLflow run.")
        if model_out is not None:
            from pipelines.data.storage import write_json

            write_json(
                model_out,
                {
                    "model_name": result.model_name,
                    "model_version": result.model_version,
                    "run_id": result.run_id,
                    "model_sha256": result.model_sha256,
                },
            )


@app.command()
def evaluate(
    agency: str = typer.Option(..., "--agency", "-a"),
    use_case: str = typer.Option(..., "--use-case", "-u"),
    version: str | None = typer.Option(
        None, "--version", "-V", help="Model version (default: the champion)."
    ),
    model_ref: Path | None = typer.Option(
        None, help="Read the version from a JSON file written by `train --model-out`."
    ),
    metrics_out: Path | None = typer.Option(
        None, help="Also write the holdout metrics to this JSON file (for DVC)."
    ),
    plots_out: Path | None = typer.Option(
        None, help="Also write ROC, precision-recall and confusion data as CSV here (for DVC)."
    ),
) -> None:
    """Evaluate a registered model version on the use case's holdout."""
    with friendly_errors():
        config.load_use_case(agency, use_case)
        if model_ref is not None:
            from pipelines.data.storage import read_json_file

            version = str(read_json_file(model_ref)["model_version"])
        from flows.evaluate import evaluate as evaluate_flow

        result = run_with_spinner(
            f"Evaluating {agency}.{use_case}", lambda: evaluate_flow(agency, use_case, version)
        )
        console.print(metrics_table(f"{result.model_name} v{result.model_version}", result.metrics))
        same = "[green]yes[/]" if result.matches_training_run else "[yellow]no[/]"
        console.print(f"Equal to the metrics its training run logged: {same}")
        if metrics_out is not None:
            from pipelines.data.storage import write_json

            write_json(metrics_out, result.metrics)
        if plots_out is not None:
            import pandas as pd

            from pipelines.data.storage import write_csv

            for name, rows in result.curves.items():
                write_csv(pd.DataFrame(rows), plots_out / f"{name}.csv")


@app.command()
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
) -> None:
    """Score a batch with the use case's champion model and publish it.

    The batch streams through the validation gate and the model chunk by chunk, with a
    progress bar, and appears in the output area only when complete. Scoring the same file
    with the same model again returns the published batch."""
    with friendly_errors():
        spec = config.load_use_case(agency, use_case)  # fail fast, before Prefect starts
        from flows.deployed import timed

        result = timed(spec, "score")(
            agency, use_case, str(input), store_input, chunk_rows, part_rows, progress=True
        )
        console.print(score_table(result))


@app.command()
def validate(
    agency: str = typer.Option(..., "--agency", "-a"),
    use_case: str = typer.Option(..., "--use-case", "-u"),
    input: Path | None = typer.Option(
        None,
        "--input",
        "-i",
        help="A parquet or CSV batch to check. Without it, the use case's ingested training "
        "data is checked against its training suite.",
    ),
    report_out: Path | None = typer.Option(
        None, help="Training data only: also write the validation report to this JSON file."
    ),
) -> None:
    """Run the validation gate alone on a batch (nothing is scored), or on the training data."""
    with friendly_errors():
        config.load_use_case(agency, use_case)
        if input is None:
            validate_training(agency, use_case, report_out)
            return
        from flows.validate import validate as validate_flow

        check = run_with_spinner(
            f"Validating {input.name} for {agency}.{use_case}",
            lambda: validate_flow(agency, use_case, str(input)),
        )
        console.print(check_table(check))
        verdict = "[green]accepted[/]" if check.accepted else "[bold red]rejected[/]"
        counts = ", ".join(f"{name}: {count}" for name, count in check.counts.items())
        console.print(f"Checked against {check.against}: {verdict} ({counts})", soft_wrap=True)
        for problem in check.problems:
            console.print(f"  - {problem}", soft_wrap=True, highlight=False)
        if check.outcome is not None:
            console.print(f"Data Docs: {check.outcome.data_docs / 'index.html'}", soft_wrap=True)
        if not check.accepted:
            raise typer.Exit(EXIT_CODES["BatchRejectedError"])


def validate_training(agency: str, use_case: str, report_out: Path | None) -> None:
    """The training suite on the ingested data; a failure exits 4 with the problems."""
    from flows.validate import validate_training_data

    outcome = run_with_spinner(
        f"Validating the training data of {agency}.{use_case}",
        lambda: validate_training_data(agency, use_case),
    )
    failed = sum(not result.success for result in outcome.results)
    console.print(
        f"Training data of {agency}.{use_case}: [green]passed[/] "
        f"{len(outcome.results)} checks on {outcome.rows:,} rows ({failed} warnings)",
        soft_wrap=True,
    )
    console.print(f"Data Docs: {outcome.data_docs / 'index.html'}", soft_wrap=True)
    if report_out is not None:
        from pipelines.data.storage import write_json

        write_json(report_out, outcome.as_dict())


def check_table(check: Any) -> Table:
    table = Table(title="Validation report")
    for column in ("expectation", "level", "result", "failing rows"):
        table.add_column(column, overflow="fold")
    results = check.outcome.results if check.outcome is not None else []
    for result in results:
        mark = "[green]pass[/]" if result.success else "[red]fail[/]"
        table.add_row(
            result.check.describe(), result.check.level, mark, str(result.unexpected_count or "")
        )
    return table


def score_table(result: Any) -> Table:
    table = Table(title="Scored batch" if result.newly_published else "Batch already published")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_row("batch id", result.batch_id)
    table.add_row("model", f"{result.model_name} v{result.model_version}")
    table.add_row("rows", str(result.rows))
    table.add_row("decisions", ", ".join(f"{k}: {v}" for k, v in result.decisions.items()))
    table.add_row("rows quarantined", str(result.rows_quarantined))
    if result.drift_level is not None:
        colour = {"ok": "green", "warn": "yellow"}.get(result.drift_level, "bold red")
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


@app.command()
def demo() -> None:
    """Ingest every agency's data (versioned with DVC in a git checkout), then train and score
    every use case on a held-out batch."""
    with friendly_errors():
        from flows.ingest import ingest as ingest_flow
        from flows.score import score as score_flow
        from flows.train import train as train_flow
        from pipelines.data.versioning import can_track, default_remote
        from pipelines.paths import project_root
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
        with Progress(*columns, console=console) as progress:
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
        console.print(demo_table(results))
        console.print("\nIngested data (data/ingested/, md5 as DVC records it):")
        for item in ingested:
            console.print(f"  {item.path}  {item.rows:,} rows  md5 {item.md5}", soft_wrap=True)
        if can_track(project_root()):
            remote = default_remote(project_root())
            console.print(
                f"  recorded in dvc.lock and pushed to DVC remote '{remote[0]}' ({remote[1]})",
                soft_wrap=True,
            )
        else:
            console.print("  (not a git + DVC checkout: the files are not versioned by DVC)")
        console.print("\nScored batches (scored.parquet + manifest.json):")
        for _, scored in results:
            console.print(f"  {scored.output_dir}", soft_wrap=True)
        console.print(
            f"Validation reports (Data Docs): {state_dir().root / 'gx'}/<agency>/gx/"
            "uncommitted/data_docs/local_site/index.html",
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


def demo_table(results: list[tuple[Any, Any]]) -> Table:
    table = Table(title="agencyml demo")
    columns = (
        "model",
        "trained",
        "holdout metrics",
        "scored with",
        "batch id",
        "rows scored",
        "quarantined",
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    for trained, scored in results:
        metric = "roc_auc" if "roc_auc" in trained.metrics else "macro_f1"
        headline = f"{metric} {trained.metrics[metric]:.3f}"
        if "pr_auc" in trained.metrics:
            headline += f", pr_auc {trained.metrics['pr_auc']:.3f}"
        table.add_row(
            trained.model_name,
            f"v{trained.model_version}",
            headline,
            f"v{scored.model_version} (champion)",
            scored.batch_id,
            str(scored.rows),
            str(scored.rows_quarantined),
        )
    return table


@app.command()
def reproduce(
    model: str = typer.Option(
        ..., "--model", "-m", help="Registered model, e.g. business-aid.fraud-risk."
    ),
    version: str = typer.Option(..., "--version", "-V", help="The model version to reproduce."),
) -> None:
    """Retrain a model version from its recorded commit and check its metrics match exactly."""
    with friendly_errors():
        from pipelines.registry.reproduce import COMPARED_TAGS, reproduce_model

        result = run_with_spinner(
            f"Reproducing {model} v{version} from its recorded commit",
            lambda: reproduce_model(model, version, state_dir()),
        )
        table = Table(title=f"{model} v{version} at commit {result.commit[:12]}")
        for column in ("metric or fact", "recorded", "reproduced", "match"):
            table.add_column(column, overflow="fold")
        rows = [
            (k, result.recorded.get(k), result.reproduced.get(k))
            for k in sorted(set(result.recorded) | set(result.reproduced))
        ]
        rows += [
            (tag, result.recorded_tags.get(tag), result.reproduced_tags.get(tag))
            for tag in COMPARED_TAGS
        ]
        for name, recorded, reproduced in rows:
            same = "[green]yes[/]" if recorded == reproduced else "[red]no[/]"
            table.add_row(name, str(recorded), str(reproduced), same)
        console.print(table)
        for note in result.notes:
            console.print(f"note: {note}", soft_wrap=True)
        if not result.matches:
            errors.print(f"[bold red]not reproduced:[/] {', '.join(result.mismatches())} differ")
            raise typer.Exit(METRICS_DIFFER)
        console.print("[green]reproduced exactly[/]")


@app.command()
def approve(
    model: str = typer.Argument(..., help="Registered model, e.g. business-aid.fraud-risk."),
    version: str = typer.Argument(..., help="The version the gate passed."),
    by: str = typer.Option(..., "--by", help="Who approves (goes in the audit log)."),
    reason: str = typer.Option(..., "--reason", help="Why (goes in the audit log)."),
) -> None:
    """Approve a version that passed the promotion gate: it becomes champion."""
    with friendly_errors():
        from pipelines.registry import promotion

        event = promotion.approve(model, version, by, reason, state_dir())
        refreshed_cards(model, event)
        console.print(alias_change_line(model, event))


@app.command()
def reject(
    model: str = typer.Argument(...),
    version: str = typer.Argument(...),
    by: str = typer.Option(..., "--by"),
    reason: str = typer.Option(..., "--reason"),
) -> None:
    """Reject a version: it loses the challenger alias and can never be approved."""
    with friendly_errors():
        from pipelines.registry import promotion

        event = promotion.reject(model, version, by, reason, state_dir())
        refreshed_cards(model, event)
        console.print(alias_change_line(model, event))


@app.command()
def rollback(
    model: str = typer.Argument(...),
    by: str = typer.Option(None, "--by", help="Who rolls back (default: this user)."),
    reason: str = typer.Option(..., "--reason"),
) -> None:
    """Move champion back to the version it replaced most recently."""
    with friendly_errors():
        from pipelines.registry import promotion

        event = promotion.rollback(model, by or promotion.current_user(), reason, state_dir())
        refreshed_cards(model, event)
        console.print(alias_change_line(model, event))


def refreshed_cards(model: str, event: dict[str, Any]) -> None:
    """The cards of the versions an alias change touched now tell of it."""
    from pipelines.registry.records import refresh_model_card

    for version in {event["from_version"], event["to_version"]} - {None}:
        refresh_model_card(model, str(version), state_dir())


def alias_change_line(model: str, event: dict[str, Any]) -> str:
    before = f"v{event['from_version']}" if event["from_version"] else "none"
    after = f"v{event['to_version']}" if event["to_version"] else "none"
    return (
        f"{model}: {event['action']} -- {event['alias']} {before} -> {after} "
        f"(by {event['by']}, event {event['seq']}, {event['time']})"
    )


@app.command()
def history(
    model: str = typer.Argument(...),
    at: str | None = typer.Option(
        None, "--at", help="ISO date or time: which version was champion then (UTC if no zone)."
    ),
) -> None:
    """The model's alias changes from the audit log, and the champion at a given time."""
    with friendly_errors():
        from pipelines.registry import promotion

        events = promotion.read_events(state_dir(), model)
        table = Table(title=f"Alias history of {model}")
        for column in ("#", "time (UTC)", "action", "alias", "from", "to", "by", "reason"):
            table.add_column(column, overflow="fold")
        for event in events:
            table.add_row(
                str(event["seq"]),
                event["time"],
                event["action"],
                event["alias"],
                str(event["from_version"] or "-"),
                str(event["to_version"] or "-"),
                event["by"],
                event["reason"],
            )
        console.print(table if events else f"No alias changes recorded for {model}.")
        if at is not None:
            moment = promotion.parse_moment(at)
            champion = promotion.champion_at(events, moment)
            shown = f"v{champion}" if champion else "no champion"
            console.print(f"Champion of {model} at {moment.isoformat()}: {shown}")


@app.command()
def lineage(
    batch_id: str | None = typer.Argument(None, help="A scored batch id, e.g. batch-57857271..."),
    model: str | None = typer.Option(None, "--model", "-m", help="Start from a model instead."),
    version: str | None = typer.Option(None, "--version", "-V"),
    as_json: bool = typer.Option(False, "--json", help="Print the tree as JSON."),
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
            print(json.dumps(tree.to_dict(), indent=2, sort_keys=True, default=str))
        else:
            console.print(trace.render_tree(tree))
        if not tree.complete():
            errors.print("[bold yellow]some links are missing[/] (marked in the tree)")
            raise typer.Exit(12)


@app.command()
def card(
    model: str = typer.Argument(...),
    version: str = typer.Argument(...),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Also write model_card.md and model_card.html here."
    ),
) -> None:
    """Print a version's model card (Markdown); it is also logged on the training run."""
    with friendly_errors():
        from pipelines.registry import model_card

        facts = model_card.collect_card_facts(model, version, state_dir())
        markdown = model_card.render_markdown(facts)
        print(markdown)
        if output is not None:
            output.mkdir(parents=True, exist_ok=True)
            (output / "model_card.md").write_text(markdown, encoding="utf-8")
            (output / "model_card.html").write_text(model_card.render_html(facts), encoding="utf-8")


@app.command()
def generate(
    output: Path = typer.Option(..., "--output", "-o", help="Parquet file to write."),
    rows: int = typer.Option(100_000, min=1, help="How many applications."),
    seed: int = typer.Option(2020),
    chunk_rows: int = typer.Option(250_000, min=1, help="Rows generated and written at a time."),
) -> None:
    """Write synthetic business-aid applications in chunks (10M rows fit in bounded memory)."""
    from pipelines.data.business_aid import iter_application_chunks
    from pipelines.data.storage import write_parquet_stream

    with Progress(
        SpinnerColumn(),
        TextColumn("generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("rows", total=rows)

        def tracked() -> Iterator[Any]:
            for chunk in iter_application_chunks(rows, seed, chunk_rows=chunk_rows):
                yield chunk
                progress.advance(task, len(chunk))

        written = write_parquet_stream(tracked(), output)
    console.print(f"wrote {written:,} rows to {output}")


@app.command()
def ui(
    port: int = typer.Option(5000, help="Port for the MLflow UI."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; keep 127.0.0.1 unless proxied."),
) -> None:
    """Serve the MLflow UI for the state directory's tracking store."""
    state = state_dir()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        state.tracking_uri,
        "--host",
        host,
        "--port",
        str(port),
    ]
    console.print(f"MLflow UI on http://{host}:{port} (Ctrl+C to stop)")
    raise typer.Exit(subprocess.call(command, env=os.environ.copy()))


@app.command("state-dir")
def show_state_dir() -> None:
    """Print where agencyml keeps MLflow, Prefect and scored outputs."""
    state = state_dir()
    console.print_json(
        json.dumps(
            {
                "root": str(state.root),
                "tracking_uri": state.tracking_uri,
                "outputs": str(state.outputs_dir),
            }
        )
    )


def main() -> None:
    app()
