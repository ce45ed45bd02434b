"""Commands that work anywhere, even outside a project: `init` makes one, `settings` shows
what agencyml is configured with."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from flows.cli.app import (
    add_id_column,
    app,
    console,
    emit_json,
    fail,
    friendly_errors,
    json_option,
)
from pipelines.settings import Settings, settings, variable

PANEL = "Project"


@app.command(rich_help_panel=PANEL)
def init(
    directory: Path = typer.Argument(..., help="A new or empty folder for the project."),
    example: bool = typer.Option(
        True, "--example/--no-example", help="Add params/ for an example agency (synthetic data)."
    ),
    as_json: bool = json_option(),
) -> None:
    """Create a project: params/ (with an example agency), data/, git and DVC initialised with
    a local DVC remote, and dvc.yaml and prefect.yaml written from params/."""
    with friendly_errors():
        from pipelines.orchestration.new_project import ProjectExistsError, create_project

        try:
            made = create_project(directory, example=example)
        except ProjectExistsError as error:
            fail(2, type(error).__name__, str(error))
        if as_json:
            emit_json({"root": made.root, "params": made.params, "versioned": made.versioned})
            return
        console.print(f"created an agencyml project in {made.root}", soft_wrap=True)
        for path in made.params:
            console.print(f"  example agency: {path.relative_to(made.root)}", soft_wrap=True)
        if not made.versioned:
            console.print("  git is not installed: the project is not versioned (install git)")
        console.print(
            f"next: cd {made.root} && agencyml demo   (or add params/<agency>.yaml, then "
            "`agencyml sync`)",
            soft_wrap=True,
        )


@app.command("settings", rich_help_panel=PANEL)
def show_settings(as_json: bool = json_option()) -> None:
    """Print every AGENCYML_* setting's effective value (secrets masked) and what it means."""
    with friendly_errors():
        current = settings()
        effective = current.shown()
        if as_json:  # unset is null; secrets stay masked
            unset = [name for name in Settings.model_fields if getattr(current, name) in (None, "")]
            emit_json(
                {
                    variable(name): None if name in unset else effective[name]
                    for name in Settings.model_fields
                }
            )
            return
        table = Table(title="agencyml settings")
        add_id_column(table, "variable", (variable(name) for name in Settings.model_fields))
        for column in ("value", "meaning"):
            table.add_column(column, overflow="fold")
        for name, field in Settings.model_fields.items():
            table.add_row(variable(name), effective[name], field.description or "")
        console.print(table)
