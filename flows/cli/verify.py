"""`agencyml verify`: find any damage to what the platform published, registered and logged."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from flows.cli.app import app, console, emit_json, errors, friendly_errors, json_option
from pipelines.paths import state_dir

if TYPE_CHECKING:  # the checks import MLflow: loaded when the command runs
    from pipelines.orchestration.verify import VerifyReport

PANEL = "Project"  # where `agencyml --help` lists the command
SHOWN_PER_KIND = 20  # the table's rows per kind; --json lists every finding


@app.command(rich_help_panel=PANEL)
def verify(
    agency: str | None = typer.Option(
        None, "--agency", "-a", help="Only this agency's batches, quarantines and models."
    ),
    as_json: bool = json_option(),
) -> None:
    """Re-hash every published batch and quarantine, the registered model files, the audit and
    access logs, the champion aliases against the audit log, DVC's cache and local remote, and
    check the state directory is private. Prints what is damaged; exit 9 if anything is."""
    with friendly_errors():
        from pipelines.orchestration import verify as checks

        report = checks.verify_state(state_dir(), agency)
        if as_json:
            emit_json(report.to_dict())
        else:
            console.print(findings_table(report) if report.findings else checked_table(report))
        for note in report.notes:
            errors.print(f"note: {note}", highlight=False, soft_wrap=True)
        if not report.clean:
            raise checks.DamageFoundError(checks.damage_message(report))


def checked_table(report: VerifyReport) -> Table:
    table = Table(title="Nothing damaged")
    table.add_column("checked", no_wrap=True)
    table.add_column("how many", justify="right")
    for kind, count in report.checked.items():
        table.add_row(kind, str(count))
    return table


def findings_table(report: VerifyReport) -> Table:
    table = Table(title=f"Damage found: {len(report.findings)}")
    table.add_column("kind", no_wrap=True)
    table.add_column("where", overflow="fold")
    table.add_column("problem", overflow="fold")
    shown: dict[str, int] = {}
    for finding in report.findings:
        shown[finding.kind] = shown.get(finding.kind, 0) + 1
        if shown[finding.kind] <= SHOWN_PER_KIND:
            table.add_row(finding.kind, finding.where, finding.problem)
    for kind, count in shown.items():
        if count > SHOWN_PER_KIND:
            more = count - SHOWN_PER_KIND
            table.add_row(kind, f"... and {more} more", "see `agencyml verify --json`")
    return table
