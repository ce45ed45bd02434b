"""Commands of the pull service: serve, tokens, access-log and pull."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Literal

import typer
from rich.table import Table

from flows.cli.app import add_id_column, app, console, emit_json, friendly_errors, json_option
from pipelines.paths import state_dir
from pipelines.service.access import ROLES
from pipelines.service.pull import Format, PullError, pull_batch
from pipelines.settings import settings

PANEL = "Pull service"  # where `agencyml --help` lists these commands
# typer makes a Literal a choice: `--help` lists the values and any other is a usage error.
# A Literal of the tuple itself keeps access.ROLES the one list of roles.
Role = Literal[ROLES]

tokens_app = typer.Typer(help="API tokens of the pull service: one or more per agency.")
app.add_typer(tokens_app, name="tokens", rich_help_panel=PANEL)


@app.command(rich_help_panel=PANEL)
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 exposes it."),
    port: int = typer.Option(8765, min=1, max=65535),
) -> None:
    """Start the pull service: agencies fetch their scored batches with their tokens, people
    sign in to its pages at /.

    The OpenAPI spec is at /openapi.json (no /docs: Swagger UI would load a public CDN)."""
    with friendly_errors():
        import uvicorn

        from pipelines.service.pages import create_service

        console.print(
            f"Serving {state_dir().outputs_dir} on http://{host}:{port} (pages: /, API: /v1, "
            "spec: /openapi.json)"
        )
        uvicorn.run(create_service(state_dir()), host=host, port=port, log_level="warning")


@tokens_app.command("create")
def tokens_create(
    name: str = typer.Option(..., "--name", help="A label: who or what uses the token."),
    agency: str | None = typer.Option(None, "--agency", "-a", help="The agency it belongs to."),
    role: Role = typer.Option(
        "agency", help="Who holds it; an approver's with --agency is one agency's."
    ),
    read_rows: bool = typer.Option(
        False, "--read-rows", help="Let an auditor token download row data too."
    ),
    as_json: bool = json_option("Print the token and its secret as one JSON document."),
) -> None:
    """Create a token. Its secret is shown once and only its hash is kept."""
    with friendly_errors():
        from pipelines.service import access

        token, secret = access.create_token(
            state_dir(),
            role=role,
            name=name,
            agency=agency,
            can_read_rows=True if read_rows else None,
        )
        if as_json:
            emit_json({**asdict(token), "secret": secret})
            return
        console.print(f"Token {token.token_id} ({token.role}, {token.agency or 'all agencies'})")
        console.print("Secret (shown once; keep it safe):", style="bold")
        print(secret)


@tokens_app.command("list")
def tokens_list(as_json: bool = json_option()) -> None:
    """Every token with its agency, role and status; never the secrets."""
    with friendly_errors():
        from pipelines.service import access

        tokens = access.list_tokens(state_dir())
        if as_json:
            emit_json({"tokens": [asdict(token) for token in tokens]})
            return
        table = Table(title="API tokens")
        add_id_column(table, "id", (token.token_id for token in tokens))
        table.add_column("name", overflow="fold")
        add_id_column(table, "agency", (token.agency or "-" for token in tokens))
        for column in ("role", "rows", "created", "revoked"):
            table.add_column(column, overflow="fold")
        for token in tokens:
            table.add_row(
                token.token_id,
                token.name,
                token.agency or "-",
                token.role,
                "yes" if token.can_read_rows else "no",
                token.created_at,
                token.revoked_at or "-",
            )
        console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: str = typer.Argument(..., help="The id `tokens list` shows."),
    as_json: bool = json_option(),
) -> None:
    """Revoke a token: it is refused from the next request on."""
    with friendly_errors():
        from pipelines.service import access

        token = access.revoke_token(state_dir(), token_id)
        if as_json:
            emit_json(asdict(token))
            return
        console.print(f"Revoked {token.token_id} ({token.name}) at {token.revoked_at}")


@app.command("access-log", rich_help_panel=PANEL)
def access_log(
    agency: str | None = typer.Option(None, "--agency", "-a"),
    since: datetime | None = typer.Option(None, help="Only requests from this time on (UTC)."),
    as_json: bool = json_option(),
) -> None:
    """Every request the pull service answered: who, what, when, the outcome and the bytes."""
    with friendly_errors():
        from pipelines.service import access

        entries = access.read_access_log(state_dir(), agency=agency, since=since)
        if as_json:
            emit_json({"entries": entries, "count": len(entries)})
            return
        table = Table(title="Access log")
        table.add_column("at", overflow="fold")
        add_id_column(table, "token", (entry.get("token_id") or "-" for entry in entries))
        add_id_column(table, "agency", (entry.get("agency") or "-" for entry in entries))
        for column in ("role", "request", "status", "bytes", "client"):
            table.add_column(column, overflow="fold")
        for entry in entries:
            table.add_row(
                entry["at"],
                entry.get("token_id") or "-",
                entry.get("agency") or "-",
                entry.get("role") or "-",
                f"{entry['method']} {entry['path']}",
                str(entry["status"]),
                f"{entry['bytes']:,}",
                entry.get("client") or "",
            )
        console.print(table)


@app.command(rich_help_panel=PANEL)
def pull(
    agency: str = typer.Option(..., "--agency", "-a"),
    output: Path = typer.Option(..., "--output", "-o", help="The file to write."),
    batch: str | None = typer.Option(None, "--batch", help="A batch id."),
    latest: bool = typer.Option(False, "--latest", help="The agency's newest batch."),
    use_case: str | None = typer.Option(None, "--use-case", "-u", help="With --latest."),
    format: Format = typer.Option("parquet", "--format", help="The file's format."),
    url: str | None = typer.Option(
        None, help="The service's address; default: AGENCYML_URL, else http://127.0.0.1:8765."
    ),
    token: str | None = typer.Option(
        None, help="The agency's secret; default: the AGENCYML_TOKEN environment variable."
    ),
    timeout: float = typer.Option(
        60.0, min=0.1, help="Seconds to wait for the service before giving up."
    ),
    as_json: bool = json_option(),
) -> None:
    """Download a batch through the pull service and check its content hash.

    Any failure exits 13 with what went wrong and leaves nothing under the output's name."""
    with friendly_errors():
        if (batch is None) == (not latest):
            raise PullError("say which batch: --batch ID or --latest")
        if batch is not None and use_case is not None:
            raise PullError("--use-case picks among the latest batches: drop it, or use --latest")
        configured = settings()
        secret = token or (configured.token.get_secret_value() if configured.token else None)
        if not secret:
            raise PullError("no token: pass --token or set AGENCYML_TOKEN")
        pulled = pull_batch(
            url or configured.url,
            secret,
            agency,
            output,
            batch_id=batch,
            use_case=use_case,
            format=format,
            timeout=timeout,
        )
        if as_json:
            emit_json(asdict(pulled))
            return
        console.print(
            f"Pulled {pulled.batch_id} to {pulled.path} ({pulled.bytes:,} bytes, "
            f"sha256 {pulled.sha256} verified)"
        )
