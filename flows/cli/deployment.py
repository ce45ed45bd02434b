"""`agencyml compose`: deploy/compose.yaml, written from the topology the tests run."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.app import (
    app,
    console,
    emit_json,
    errors,
    friendly_errors,
    json_option,
    writable_file,
)
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
    as_json: bool = json_option(),
) -> None:
    """Write deploy/compose.yaml (PostgreSQL, S3, MLflow with auth, Prefect, a worker, the pull
    service) from pipelines/orchestration/topology.py, the commands the topology test runs."""
    with friendly_errors():
        from pipelines.orchestration.dvc_stages import PipelineOutOfDateError
        from pipelines.orchestration.topology import render_compose

        if not check:
            writable_file(output, "--output")
        text = render_compose()
        current = output.read_text(encoding="utf-8") if output.is_file() else None
        say = errors.print if as_json else console.print
        if check and current != text:
            raise PipelineOutOfDateError(
                f"{output} does not match pipelines/orchestration/topology.py: run "
                "`agencyml compose`, then commit it"
            )
        written = not check and current != text
        if written:
            storage.write_text(output, text)
        say(f"wrote {output}" if written else f"{output}: matches the topology")
        if as_json:
            emit_json({"path": str(output), "written": written, "matches": True})
