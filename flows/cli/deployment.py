"""`agencyml compose`: deploy/compose.yaml, written from the topology the tests run."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.app import app, console, friendly_errors
from pipelines.data import storage

PANEL = "Running unattended"


@app.command(rich_help_panel=PANEL)
def compose(
    check: bool = typer.Option(
        False, "--check", help="Only say whether deploy/compose.yaml is up to date (exit 14)."
    ),
    output: Path = typer.Option(
        Path("deploy/compose.yaml"), "--output", "-o", help="Where to write it."
    ),
) -> None:
    """Write deploy/compose.yaml (PostgreSQL, S3, MLflow with auth, Prefect, a worker, the pull
    service) from pipelines/orchestration/topology.py, the commands the topology test runs."""
    with friendly_errors():
        from pipelines.orchestration.dvc_stages import PipelineOutOfDateError
        from pipelines.orchestration.topology import render_compose

        text = render_compose()
        current = output.read_text(encoding="utf-8") if output.is_file() else None
        if check:
            if current != text:
                raise PipelineOutOfDateError(
                    f"{output} does not match pipelines/orchestration/topology.py: run "
                    "`agencyml compose`, then commit it"
                )
            console.print(f"{output}: matches the topology")
            return
        if current == text:
            console.print(f"{output} already matches the topology")
            return
        storage.write_text(output, text)
        console.print(f"wrote {output}")
