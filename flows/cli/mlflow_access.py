"""Commands on MLflow's access control: one MLflow user per agency and a read-only auditor."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from flows.cli.app import (
    add_id_column,
    app,
    console,
    emit_json,
    errors,
    fail,
    friendly_errors,
    json_option,
    run_with_spinner,
)
from pipelines.paths import state_dir
from pipelines.settings import settings

if TYPE_CHECKING:
    from pipelines.registry.mlflow_access import SyncReport

PANEL = "MLflow access"  # where `agencyml --help` lists these commands
EXIT_CODE = 15  # the README's exit codes: the MLflow server or its admin is not usable
mlflow_access_app = typer.Typer(
    help="MLflow users per agency on a tracking server that runs MLflow's basic-auth app."
)
app.add_typer(mlflow_access_app, name="mlflow-access", rich_help_panel=PANEL)


@mlflow_access_app.command("sync")
def sync(
    tracking_uri: str | None = typer.Option(
        None,
        "--tracking-uri",
        help="The MLflow server (default: AGENCYML_TRACKING_URI). Admin credentials come from "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.",
    ),
    rotate: list[str] = typer.Option(
        [], "--rotate", help="Give this user (e.g. agency-business-aid, auditor) a new password."
    ),
    as_json: bool = json_option(),
) -> None:
    """Create each agency's MLflow user and the auditor, with access to exactly their own
    experiments and models; safe to re-run (passwords are kept unless --rotate)."""
    with friendly_errors():
        from pipelines.registry import mlflow_access

        uri = tracking_uri or settings().tracking_uri
        try:
            if not uri:
                raise mlflow_access.MlflowAccessError(
                    "which MLflow server? pass --tracking-uri http://HOST:PORT or set "
                    "AGENCYML_TRACKING_URI"
                )
            report = run_with_spinner(
                f"Syncing MLflow access on {uri}",
                lambda: mlflow_access.sync(uri, state_dir().root, rotate=rotate),
            )
        except mlflow_access.MlflowAccessError as error:
            fail(EXIT_CODE, type(error).__name__, str(error))
        if as_json:
            emit_json(report_document(report))
        else:
            print_report(report)


def report_document(report: SyncReport) -> dict:
    """The sync as plain values (never a password: they stay in the passwords file)."""
    from dataclasses import asdict

    return {
        "tracking_uri": report.tracking_uri,
        "passwords_file": str(report.passwords_file),
        "users": report.users,
        "grants": {user: [asdict(g) for g in grants] for user, grants in report.grants.items()},
        "granted": [{"user": user, **asdict(grant)} for user, grant in report.granted],
        "changed": [{"user": user, **asdict(grant)} for user, grant in report.changed],
        "revoked": [
            {"user": user, "resource_type": kind, "resource_id": ident}
            for user, kind, ident in report.revoked
        ],
        "created_experiments": report.created_experiments,
        "created_models": report.created_models,
        "other_roles": report.other_roles,
    }


def print_report(report: SyncReport) -> None:
    table = Table(title=f"MLflow access on {report.tracking_uri}")
    add_id_column(table, "user", report.grants)
    for column in ("account", "permission", "on"):
        table.add_column(column, overflow="fold")
    for username, grants in report.grants.items():
        for index, grant in enumerate(grants):
            first = index == 0
            table.add_row(
                username if first else "",
                report.users.get(username, "") if first else "",
                grant.permission,
                f"{grant.resource_type.replace('_', ' ')} {grant.label}",
            )
    console.print(table)
    for name in report.created_experiments:
        console.print(f"created experiment {name}")
    for name in report.created_models:
        console.print(f"created registered model {name} (no versions yet)")
    changes = len(report.granted) + len(report.changed) + len(report.revoked)
    console.print(
        f"{len(report.granted)} granted, {len(report.changed)} changed, "
        f"{len(report.revoked)} revoked" + ("" if changes else ": already in sync")
    )
    for username, resource_type, resource_id in report.revoked:
        console.print(f"revoked {username}'s grant on {resource_type} {resource_id}")
    for username, roles in report.other_roles.items():
        errors.print(
            f"warning: {username} also has the roles {', '.join(roles)}, which may give it "
            "more than its own resources; unassign them unless that is intended",
            highlight=False,
            soft_wrap=True,
        )
    if any(state in ("created", "rotated") for state in report.users.values()):
        console.print(
            f"New passwords are in {report.passwords_file} (readable by you only); hand each "
            "one to its agency and the auditor, never by the same channel as the username."
        )
