"""Commands on models: train, evaluate, reproduce, approve, reject, rollback, history and card."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
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
    run_with_spinner,
    writable_file,
    writable_folder,
)
from pipelines import config
from pipelines.paths import state_dir

DETAIL_PREFIXES = ("slice.", "disparity.", "baseline.", "policy_")

PANEL = "Models"  # where `agencyml --help` lists these commands


PER_CLASS_PREFIXES = ("precision_", "recall_")


METRICS_DIFFER = 8


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
        counted = name.endswith("_rows") and float(value).is_integer()  # a count, not a score
        shown = f"{int(value):,}" if counted else f"{value:.4f}"
        table.add_row(name, shown if isinstance(value, float | int) else str(value))
    return table


def small_holdout_note(metrics: dict[str, float]) -> str | None:
    """The model card's warning, on screen too: a few hundred rows move a metric a lot."""
    from pipelines.registry.model_card import SMALL_HOLDOUT_ROWS

    rows = metrics.get("holdout_rows")
    if rows is None or rows >= SMALL_HOLDOUT_ROWS:
        return None
    return (
        f"[yellow]Small holdout ({int(rows):,} rows, under {SMALL_HOLDOUT_ROWS:,}): the "
        "metrics above are uncertain.[/]"
    )


@app.command(rich_help_panel=PANEL)
def train(
    agency: str = typer.Option(..., "--agency", "-a", help="Agency, as in params/<agency>.yaml."),
    use_case: str = typer.Option(..., "--use-case", "-u", help="One of the agency's use cases."),
    model_out: Path | None = typer.Option(
        None, help="Also write the registered version and model hash to this JSON file (DVC)."
    ),
    as_json: bool = json_option(),
) -> None:
    """Train, evaluate and register one use case's model (within its time limit)."""
    with friendly_errors():
        spec = config.load_use_case(agency, use_case)  # fail fast, before Prefect starts
        writable_file(model_out, "--model-out")  # not after the model is registered
        from flows.deployed import timed
        from pipelines.data.versioning import can_track
        from pipelines.orchestration import dvc_stages
        from pipelines.paths import project_root

        if can_track(project_root()):  # dvc.yaml must know the use case to reproduce it
            dvc_stages.require_in_sync(
                project_root() / dvc_stages.DVC_YAML,
                config.load_all_params(),
                f"training {agency}.{use_case}",
            )
        train_flow = timed(spec, "train")

        with prefect_api():
            result = run_with_spinner(
                f"Training {agency}.{use_case}", lambda: train_flow(agency, use_case)
            )
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
        if as_json:
            emit_json(
                {
                    field: getattr(result, field)
                    for field in (
                        "agency",
                        "use_case",
                        "model_name",
                        "model_version",
                        "run_id",
                        "aliases",
                        "best_iteration",
                        "model_sha256",
                        "metrics",
                        "split_sizes",
                        "gate",
                        "baselines",
                    )
                }
            )
            return
        console.print(train_summary(result))
        console.print(metrics_table("Holdout metrics", headline_metrics(result.metrics)))
        if note := small_holdout_note(result.metrics):
            console.print(note)
        disparities = {k: v for k, v in result.metrics.items() if k.startswith("disparity.")}
        for name, ratio in disparities.items():
            console.print(f"slice {name.split('.')[1]}: max/min recall ratio {ratio:.2f}")
        console.print("Plots, baselines, slices and the model card are on the MLflow run.")


def train_summary(result: Any) -> Table:
    summary = Table(title=f"Trained {result.model_name}")
    summary.add_column("field")
    # the run id keeps its width; the gate's reason and the 64-digit hash fold onto more lines
    summary.add_column("value", overflow="fold", min_width=len(result.run_id))
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
    return summary


@app.command(rich_help_panel=PANEL)
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
    as_json: bool = json_option(),
) -> None:
    """Evaluate a registered model version on the use case's holdout."""
    with friendly_errors():
        config.load_use_case(agency, use_case)
        writable_file(metrics_out, "--metrics-out")
        writable_folder(plots_out, "--plots-out")
        if model_ref is not None:
            from pipelines.data.readers import InputFileError
            from pipelines.data.storage import read_json_file

            reference = read_json_file(model_ref)
            if not isinstance(reference, dict) or "model_version" not in reference:
                raise InputFileError(
                    f"{model_ref} names no model_version: give the file that "
                    "`agencyml train --model-out` wrote."
                )
            version = str(reference["model_version"])
        from flows.evaluate import evaluate as evaluate_flow

        with prefect_api():
            result = run_with_spinner(
                f"Evaluating {agency}.{use_case}",
                lambda: evaluate_flow(agency, use_case, version),
            )
        if metrics_out is not None:
            from pipelines.data.storage import write_json

            write_json(metrics_out, result.metrics)
        if plots_out is not None:
            import pandas as pd

            from pipelines.data.storage import write_csv

            for name, rows in result.curves.items():
                write_csv(pd.DataFrame(rows), plots_out / f"{name}.csv")
        if as_json:
            emit_json(
                {
                    "model_name": result.model_name,
                    "model_version": result.model_version,
                    "run_id": result.run_id,
                    "metrics": result.metrics,
                    "matches_training_run": result.matches_training_run,
                }
            )
            return
        console.print(metrics_table(f"{result.model_name} v{result.model_version}", result.metrics))
        same = "[green]yes[/]" if result.matches_training_run else "[yellow]no[/]"
        console.print(f"Equal to the metrics its training run logged: {same}")


@app.command(rich_help_panel=PANEL)
def reproduce(
    model: str = typer.Option(
        ..., "--model", "-m", help="Registered model, e.g. business-aid.fraud-risk."
    ),
    version: str = typer.Option(..., "--version", "-V", help="The model version to reproduce."),
    as_json: bool = json_option(),
) -> None:
    """Retrain a model version from its recorded commit and check its metrics match exactly."""
    with friendly_errors():
        from pipelines.registry.reproduce import COMPARED_TAGS, reproduce_model

        result = run_with_spinner(
            f"Reproducing {model} v{version} from its recorded commit",
            lambda: reproduce_model(model, version, state_dir()),
        )
        rows = [
            (k, result.recorded.get(k), result.reproduced.get(k))
            for k in sorted(set(result.recorded) | set(result.reproduced))
        ]
        rows += [
            (tag, result.recorded_tags.get(tag), result.reproduced_tags.get(tag))
            for tag in COMPARED_TAGS
        ]
        if as_json:
            emit_json(
                {
                    "model_name": model,
                    "model_version": version,
                    "commit": result.commit,
                    "matches": result.matches,
                    "mismatches": result.mismatches(),
                    "compared": [
                        {"name": name, "recorded": recorded, "reproduced": reproduced}
                        for name, recorded, reproduced in rows
                    ],
                    "notes": result.notes,
                }
            )
        else:
            table = Table(title=f"{model} v{version} at commit {result.commit[:12]}")
            add_id_column(table, "metric or fact", (name for name, _, _ in rows))
            for column in ("recorded", "reproduced", "match"):
                table.add_column(column, overflow="fold")
            for name, recorded, reproduced in rows:
                same = "[green]yes[/]" if recorded == reproduced else "[red]no[/]"
                table.add_row(name, str(recorded), str(reproduced), same)
            console.print(table)
            for note in result.notes:
                console.print(f"note: {note}", soft_wrap=True)
        if not result.matches:
            errors.print(f"[bold red]not reproduced:[/] {', '.join(result.mismatches())} differ")
            raise typer.Exit(METRICS_DIFFER)
        if not as_json:
            console.print("[green]reproduced exactly[/]")


@app.command(rich_help_panel=PANEL)
def approve(
    model: str = typer.Argument(..., help="Registered model, e.g. business-aid.fraud-risk."),
    version: str = typer.Argument(..., help="The version the gate passed."),
    by: str = typer.Option(..., "--by", help="Who approves (goes in the audit log)."),
    reason: str = typer.Option(..., "--reason", help="Why (goes in the audit log)."),
    as_json: bool = json_option(),
) -> None:
    """Approve a version that passed the promotion gate: it becomes champion."""
    with friendly_errors():
        from pipelines.registry import promotion

        event = promotion.approve(model, version, by, reason, state_dir())
        refreshed_cards(model, event)
        show_alias_change(model, event, as_json)


@app.command(rich_help_panel=PANEL)
def reject(
    model: str = typer.Argument(...),
    version: str = typer.Argument(...),
    by: str = typer.Option(..., "--by"),
    reason: str = typer.Option(..., "--reason"),
    as_json: bool = json_option(),
) -> None:
    """Reject a version: it loses the challenger alias and can never be approved."""
    with friendly_errors():
        from pipelines.registry import promotion

        event = promotion.reject(model, version, by, reason, state_dir())
        refreshed_cards(model, event)
        show_alias_change(model, event, as_json)


@app.command(rich_help_panel=PANEL)
def rollback(
    model: str = typer.Argument(...),
    by: str = typer.Option(None, "--by", help="Who rolls back (default: this user)."),
    reason: str = typer.Option(..., "--reason"),
    as_json: bool = json_option(),
) -> None:
    """Move champion back to the version it replaced most recently."""
    with friendly_errors():
        from pipelines.registry import promotion

        event = promotion.rollback(model, by or promotion.current_user(), reason, state_dir())
        refreshed_cards(model, event)
        show_alias_change(model, event, as_json)


def refreshed_cards(model: str, event: dict[str, Any]) -> None:
    """The cards of the versions an alias change touched now tell of it."""
    from pipelines.registry.records import refresh_model_card

    for version in {event["from_version"], event["to_version"]} - {None}:
        refresh_model_card(model, str(version), state_dir())


def require_known_model(model: str) -> None:
    """A model name no agency's params declare is a typo to point out, not an empty history."""
    known = sorted(spec.model_name for spec in config.list_use_cases())
    if model not in known:
        raise config.UnknownUseCaseError(
            f"no model '{model}' in params/: a model is named <agency>.<use case>; give one of "
            f"{', '.join(known)}"
        )


def show_alias_change(model: str, event: dict[str, Any], as_json: bool) -> None:
    """The audit log's event for the change: as JSON, or as one line."""
    if as_json:
        emit_json({"model_name": model, **event})
    else:
        console.print(alias_change_line(model, event))


def alias_change_line(model: str, event: dict[str, Any]) -> str:
    before = f"v{event['from_version']}" if event["from_version"] else "none"
    after = f"v{event['to_version']}" if event["to_version"] else "none"
    return (
        f"{model}: {event['action']} -- {event['alias']} {before} -> {after} "
        f"(by {event['by']}, event {event['seq']}, {event['time']})"
    )


@app.command(rich_help_panel=PANEL)
def history(
    model: str = typer.Argument(...),
    at: str | None = typer.Option(
        None, "--at", help="ISO date or time: which version was champion then (UTC if no zone)."
    ),
    as_json: bool = json_option(),
) -> None:
    """The model's alias changes from the audit log, and the champion at a given time."""
    with friendly_errors():
        from pipelines.registry import promotion

        events = promotion.read_events(state_dir(), model)
        if not events:
            require_known_model(model)
        champion_then = None
        if at is not None:
            moment = promotion.parse_moment(at)
            champion = promotion.champion_at(events, moment)
            champion_then = {"at": moment.isoformat(), "champion_version": champion}
        if as_json:
            emit_json({"model_name": model, "events": events, "champion_at": champion_then})
            return
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
        if champion_then is not None:
            version = champion_then["champion_version"]
            shown = f"v{version}" if version else "no champion"
            console.print(f"Champion of {model} at {champion_then['at']}: {shown}")


@app.command(rich_help_panel=PANEL)
def card(
    model: str = typer.Argument(...),
    version: str = typer.Argument(...),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Also write model_card.md and model_card.html here."
    ),
    as_json: bool = json_option("Print the card's facts as one JSON document instead of Markdown."),
) -> None:
    """Print a version's model card (Markdown); it is also logged on the training run."""
    with friendly_errors():
        from pipelines.registry import model_card, tracking

        writable_folder(output, "--output")
        state = state_dir()
        facts = model_card.collect_card_facts(model, version, state)
        markdown = model_card.render_markdown(facts)
        if as_json:
            emit_json(facts)
        else:
            print(markdown)
        if output is not None:
            output.mkdir(parents=True, exist_ok=True)
            (output / "model_card.md").write_text(markdown, encoding="utf-8")
            plots = tracking.run_plots(facts["model"].get("run_id"), state)
            html = model_card.render_html(facts, plots)
            (output / "model_card.html").write_text(html, encoding="utf-8")
