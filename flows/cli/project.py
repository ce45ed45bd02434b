"""Commands that work anywhere, even outside a project: `init` makes one, `settings` shows
what agencyml is configured with."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from flows.cli.app import app, console, friendly_errors
from pipelines.settings import Settings, settings, variable

PANEL = "Project"


@app.command(rich_help_panel=PANEL)
def init(
    directory: Path = typer.Argument(..., help="A new or empty folder for the project."),
    example: bool = typer.Option(
        True, "--example/--no-example", help="Add params/ for an example agency (synthetic data)."
    ),
) -> None:
    """Create a project: params/ (with an example agency), data/, git and DVC initialised with
    a local DVC remote, and dvc.yaml and prefect.yaml written from params/."""
    with friendly_errors():
        from pipelines.orchestration.new_project import ProjectExistsError, create_project

        try:
            made = create_project(directory, example=example)
        except ProjectExistsError as error:
            console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
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
def show_settings() -> None:
    """Print every AGENCYML_* setting's effective value (secrets masked) and what it means."""
    with friendly_errors():
        effective = settings().shown()
        table = Table(title="agencyml settings")
        for column in ("variable", "value", "meaning"):
            table.add_column(column, overflow="fold")
        for name, field in Settings.model_fields.items():
            table.add_row(variable(name), effective[name], field.description or "")
        console.print(table)
