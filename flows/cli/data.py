"""Commands on the data: agencies, ingest, validate (the gate alone) and generate."""

from __future__ import annotations

from collections.abc import Iterator
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
    run_with_spinner,
)
from flows.errors import EXIT_CODES
from pipelines import config

PANEL = "Data"  # where `agencyml --help` lists these commands


@app.command(rich_help_panel=PANEL)
def agencies(as_json: bool = json_option()) -> None:
    """List the agencies and their use cases."""
    with friendly_errors():
        specs = config.list_use_cases()
        if as_json:
            emit_json(
                {
                    "use_cases": [
                        {
                            "agency": spec.agency,
                            "use_case": spec.name,
                            "task": spec.params.task,
                            "registered_model": spec.model_name,
                            "description": spec.params.description,
                        }
                        for spec in specs
                    ]
                }
            )
            return
        if not specs:
            console.print(
                f"no agencies yet: {config.params_dir()} holds no <agency>.yaml. Draft one from "
                "an agency's table with: agencyml new-agency NAME --from FILE --target COLUMN",
                soft_wrap=True,
            )
            return
        # the model's name says its agency and use case, and leaves the description room
        table = Table(
            title="Agencies and use cases", caption="a registered model is <agency>.<use case>"
        )
        add_id_column(table, "registered model", (spec.model_name for spec in specs))
        table.add_column("task", no_wrap=True)
        table.add_column("description", overflow="fold")
        for spec in specs:
            table.add_row(spec.model_name, spec.params.task, spec.params.description)
        console.print(table)


@app.command(rich_help_panel=PANEL)
def ingest(
    agency: str = typer.Option(..., "--agency", "-a", help="Agency, as in params/<agency>.yaml."),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="One of the agency's datasets (default: all of them)."
    ),
    as_json: bool = json_option(),
) -> None:
    """Write the agency's raw sources, cleaned, to data/ingested/<agency>/<dataset>.parquet."""
    with friendly_errors():
        params = config.load_params(agency)
        if dataset is not None:
            params.dataset(dataset)  # fail fast on an unknown name
        from flows.ingest import ingest as ingest_flow

        with prefect_api():
            written = run_with_spinner(f"Ingesting {agency}", lambda: ingest_flow(agency, dataset))
        if as_json:
            emit_json({"agency": agency, "datasets": [asdict(item) for item in written]})
            return
        table = Table(title=f"Ingested {agency}")
        add_id_column(table, "dataset", (item.dataset for item in written))
        for column in ("file", "rows"):
            table.add_column(column, overflow="fold")
        table.add_column("md5", no_wrap=True, min_width=32)
        for item in written:
            table.add_row(item.dataset, item.path, f"{item.rows:,}", item.md5)
        console.print(table)


@app.command(rich_help_panel=PANEL)
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
    as_json: bool = json_option(),
) -> None:
    """Run the validation gate alone on a batch (nothing is scored), or on the training data."""
    with friendly_errors():
        config.load_use_case(agency, use_case)
        if input is None:
            validate_training(agency, use_case, report_out, as_json)
            return
        from flows.validate import validate as validate_flow

        with prefect_api():
            check = run_with_spinner(
                f"Validating {input.name} for {agency}.{use_case}",
                lambda: validate_flow(agency, use_case, str(input)),
            )
        if as_json:
            emit_json(check_report(check))
            if not check.accepted:
                raise typer.Exit(EXIT_CODES["BatchRejectedError"])
            return
        console.print(check_table(check))
        verdict = "[green]accepted[/]" if check.accepted else "[bold red]rejected[/]"
        counts = ", ".join(f"{name}: {count}" for name, count in check.counts.items())
        counted = f" ({counts})" if counts else ""
        console.print(f"Checked against {check.against}: {verdict}{counted}", soft_wrap=True)
        for problem in check.problems:
            console.print(f"  - {problem}", soft_wrap=True, highlight=False)
        if check.outcome is not None:
            console.print(f"Data Docs: {check.outcome.data_docs / 'index.html'}", soft_wrap=True)
        if not check.accepted:
            raise typer.Exit(EXIT_CODES["BatchRejectedError"])


def validate_training(agency: str, use_case: str, report_out: Path | None, as_json: bool) -> None:
    """The training suite on the ingested data; a failure exits 4 with the problems."""
    from flows.validate import validate_training_data

    with prefect_api():
        outcome = run_with_spinner(
            f"Validating the training data of {agency}.{use_case}",
            lambda: validate_training_data(agency, use_case),
        )
    if report_out is not None:
        from pipelines.data.storage import write_json

        write_json(report_out, outcome.as_dict())
    if as_json:
        emit_json({**outcome.as_dict(), "data_docs": outcome.data_docs / "index.html"})
        return
    failed = sum(not result.success for result in outcome.results)
    console.print(
        f"Training data of {agency}.{use_case}: [green]passed[/] "
        f"{len(outcome.results)} checks on {outcome.rows:,} rows ({failed} warnings)",
        soft_wrap=True,
    )
    console.print(f"Data Docs: {outcome.data_docs / 'index.html'}", soft_wrap=True)


def check_report(check: Any) -> dict[str, Any]:
    """The gate's verdict on a batch as plain data: the same facts as check_table and the lines
    under it."""
    outcome = check.outcome
    return {
        "accepted": check.accepted,
        "against": check.against,
        "counts": check.counts,
        "problems": check.problems,
        "checks": outcome.as_dict()["checks"] if outcome is not None else [],
        "data_docs": outcome.data_docs / "index.html" if outcome is not None else None,
    }


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


@app.command(rich_help_panel=PANEL)
def generate(
    output: Path = typer.Option(..., "--output", "-o", help="Parquet file to write."),
    rows: int = typer.Option(100_000, min=1, help="How many applications."),
    seed: int = typer.Option(2020),
    chunk_rows: int = typer.Option(250_000, min=1, help="Rows generated and written at a time."),
    as_json: bool = json_option(),
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
        console=errors,
    ) as progress:
        task = progress.add_task("rows", total=rows)

        def tracked() -> Iterator[Any]:
            for chunk in iter_application_chunks(rows, seed, chunk_rows=chunk_rows):
                yield chunk
                progress.advance(task, len(chunk))

        written = write_parquet_stream(tracked(), output)
    if as_json:
        emit_json({"output": output, "rows": written})
    else:
        console.print(f"wrote {written:,} rows to {output}")


@app.command(rich_help_panel=PANEL)
def sample(
    agency: str = typer.Option(..., "--agency", "-a"),
    use_case: str = typer.Option(..., "--use-case", "-u"),
    output: Path = typer.Option(
        ..., "--output", "-o", help="Where to write the batch: a .parquet or .csv file."
    ),
    rows: int | None = typer.Option(
        None, min=1, help="How many holdout rows (default: all of them), drawn with a seed."
    ),
    as_json: bool = json_option(),
) -> None:
    """Write holdout rows without the target, as a batch to try `agencyml score` on."""
    with friendly_errors():
        spec = config.load_use_case(agency, use_case)
        from pipelines.scoring.batches import write_sample_batch

        written, count = run_with_spinner(
            f"Writing a sample batch of {agency}.{use_case}",
            lambda: write_sample_batch(spec, output, rows),
        )
        if as_json:
            emit_json(
                {
                    "agency": agency,
                    "use_case": use_case,
                    "output": written,
                    "rows": count,
                    "target_left_out": spec.params.target,
                }
            )
            return
        console.print(
            f"wrote {written}: {count:,} holdout rows of {agency}.{use_case} without "
            f"'{spec.params.target}'. Score it with: agencyml score -a {agency} -u {use_case} "
            f"-i {written}",
            soft_wrap=True,
        )


@app.command("new-agency", rich_help_panel=PANEL)
def new_agency(
    name: str = typer.Argument(..., help="The agency: lower-case letters, digits and dashes."),
    source: Path = typer.Option(
        ..., "--from", help="The agency's table, in any format agencyml reads (sniffed)."
    ),
    target: str | None = typer.Option(None, "--target", "-t", help="The column to predict."),
    use_case: str = typer.Option("main", "--use-case", "-u", help="The first use case's name."),
    force: bool = typer.Option(False, "--force", help="Replace an existing params file."),
    as_json: bool = json_option(),
) -> None:
    """Draft params/NAME.yaml from the agency's own table: each column profiled (id, number,
    category, free text, date), constant and empty ones left out, leaks of the target flagged."""
    with friendly_errors():
        from pipelines.data.onboarding import draft_params
        from pipelines.paths import project_root

        draft = run_with_spinner(
            f"Profiling {source.name}",
            lambda: draft_params(
                name, source, project_root(), target=target, use_case=use_case, force=force
            ),
        )
        profile = draft.profile
        missing = [key for key in ("target", "positive_class") if f"{key}: CHANGE_ME" in draft.text]
        if as_json:
            warn_of_leaks(profile)
            warn_of_few_rows(profile.rows)
            if missing:
                warn_of_missing(missing)
            else:
                config.load_params(name)  # the draft is valid params, or this names the key
            emit_json(
                {
                    "agency": name,
                    "use_case": use_case,
                    "params_file": draft.params_file,
                    "data_file": draft.data_file,
                    "copied": draft.copied,
                    "encoding": draft.encoding or "utf-8",
                    **asdict(profile),
                    "to_fill_in": missing,
                }
            )
            return
        table = Table(title=f"{source.name}: {profile.rows:,} rows")
        add_id_column(table, "column", (column.name for column in profile.columns))
        for column in ("read as", "note", "example"):
            table.add_column(column, overflow="fold")
        for column in profile.columns:
            kind = "left out: may leak the target" if column.name in profile.leaks else column.kind
            note = (
                f"alone it predicts {profile.target} with accuracy {profile.leaks[column.name]:.3f}"
                if column.name in profile.leaks
                else column.note
            )
            table.add_row(column.name, kind, note, column.example[:40])
        console.print(table)
        warn_of_leaks(profile)
        warn_of_few_rows(profile.rows)
        if draft.encoding:
            errors.print(
                f"[yellow]{source.name} is not UTF-8:[/] read as {draft.encoding} (set as its "
                "encoding in the draft); check that accented letters look right above",
                soft_wrap=True,
            )
        if draft.copied:
            console.print(f"copied the file to {draft.data_file}", soft_wrap=True)
        console.print(f"wrote {draft.params_file}: read its comments", soft_wrap=True)
        if missing:
            warn_of_missing(missing)
            return
        config.load_params(name)  # the draft is valid params, or this names the key
        console.print(
            "next: agencyml sync (in a git + DVC checkout), "
            f"agencyml ingest --agency {name}, agencyml train -a {name} -u {use_case}, "
            f"agencyml sample -a {name} -u {use_case} -o batch.csv, "
            f"agencyml score -a {name} -u {use_case} -i batch.csv",
            soft_wrap=True,
        )


def warn_of_leaks(profile: Any) -> None:
    for column, accuracy in profile.leaks.items():
        errors.print(
            f"[yellow]{column} may leak the target:[/] on its own it predicts "
            f"{profile.target} with accuracy {accuracy:.3f}; the draft leaves it out",
            soft_wrap=True,
        )


def warn_of_few_rows(rows: int) -> None:
    from pipelines.data.onboarding import MIN_TRAINING_ROWS

    if rows < MIN_TRAINING_ROWS:
        errors.print(
            f"[yellow]only {rows:,} rows:[/] training needs {MIN_TRAINING_ROWS:,} unless the "
            "use case sets min_training_rows (commented in the draft); metrics on so few rows "
            "are rough",
            soft_wrap=True,
        )


def warn_of_missing(missing: list[str]) -> None:
    errors.print(
        f"[yellow]to fill in before training:[/] {', '.join(missing)} (marked CHANGE_ME)",
        soft_wrap=True,
    )
