"""Commands that run agencyml unattended: server, deploy, worker and inbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

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
)
from pipelines import config
from pipelines.data import storage
from pipelines.orchestration import deployments, dvc_stages, prefect_server
from pipelines.orchestration.inbox_watch import WatchedInbox
from pipelines.paths import project_root

PANEL = "Running unattended"  # where `agencyml --help` lists these commands


API_URL_HELP = (
    "The Prefect API to talk to, e.g. http://prefect.internal:4200/api [default: "
    "PREFECT_API_URL, else http://127.0.0.1:4200/api, where `agencyml server` listens]"
)


@app.command(rich_help_panel=PANEL)
def server(
    host: str = typer.Option(prefect_server.DEFAULT_HOST, help="Keep 127.0.0.1 unless proxied."),
    port: int = typer.Option(prefect_server.DEFAULT_PORT, min=1, max=65535),
    api_url: str | None = typer.Option(
        None,
        "--api-url",
        help="The API's address as browsers and clients reach it, when that is not "
        "http://HOST:PORT/api (behind a proxy, or with --host 0.0.0.0): the UI calls it.",
    ),
    ui: bool = typer.Option(True, help="Serve Prefect's UI as well as its API."),
    status: bool = typer.Option(
        False, "--status", help="Say whether the background server runs, and where."
    ),
    stop: bool = typer.Option(False, "--stop", help="Stop the background server."),
    as_json: bool = json_option("With --status or --stop: the result as one JSON document."),
) -> None:
    """Start a local Prefect server (API and UI), its database in the state directory.

    Deployments, schedules and workers need one; `agencyml deploy` and `agencyml worker` find
    it at http://127.0.0.1:4200/api unless --api-url or PREFECT_API_URL says otherwise.
    Commands that run a flow without PREFECT_API_URL use a background server of the state
    directory instead, started by the first of them: --status says where it is, --stop stops
    it."""
    if status or stop:
        background_server(stop, as_json)
        return
    with friendly_errors():
        environment = prefect_server.server_environment(host, port, ui, api_url)
    public = environment["PREFECT_UI_API_URL"]
    console.print(
        f"Prefect server listening on {host}:{port}; API {public}"
        + (f", UI {environment['PREFECT_UI_URL']}" if ui else "")
        + f"; database in {environment.get('PREFECT_HOME', '~/.prefect')}. Ctrl+C stops it.",
        soft_wrap=True,
        highlight=False,
    )
    raise typer.Exit(
        subprocess.call(prefect_server.server_command(host, port, ui), env=environment)
    )


def background_server(stop: bool, as_json: bool = False) -> None:
    from pipelines.orchestration import local_server
    from pipelines.paths import state_dir

    with friendly_errors():
        state = state_dir()
    found = local_server.stop(state) if stop else local_server.running(state)
    if as_json:
        emit_json(
            {
                "running": found is not None and not stop,
                "stopped": found is not None and stop,
                **(
                    {"pid": found.pid, "api": found.url, "ui": found.ui, "log": found.log}
                    if found
                    else {}
                ),
            }
        )
        return
    if stop:
        console.print(
            f"stopped the background Prefect server (pid {found.pid}, {found.ui})"
            if found
            else "no background Prefect server runs for this state directory",
            soft_wrap=True,
        )
        return
    if found is None:
        console.print(
            f"no background Prefect server runs for {state.root}; the next command that runs "
            "a flow starts one",
            soft_wrap=True,
        )
        return
    console.print(
        f"background Prefect server: {found.ui} (API {found.url}), pid {found.pid}, log "
        f"{found.log}",
        soft_wrap=True,
    )


@app.command(rich_help_panel=PANEL)
def sync(
    check: bool = typer.Option(
        False, "--check", help="Only say whether the files match params/ (exit 14 if not)."
    ),
    as_json: bool = json_option(),
) -> None:
    """Write dvc.yaml and prefect.yaml from params/: run it after adding or changing an agency,
    a dataset, a use case or a schedule, then commit the files."""
    with friendly_errors():
        root = project_root()
        agencies = config.load_all_params()
        specs = config.list_use_cases()
        files = {
            root / dvc_stages.DVC_YAML: dvc_stages.render(agencies),
            root / deployments.PREFECT_YAML: deployments.render(specs),
        }
        stale = [path for path, text in files.items() if not same_text(path, text)]
        say = errors.print if as_json else console.print
        if check:
            for path in files:
                state = "[yellow]out of date[/]" if path in stale else "[green]matches params/[/]"
                say(f"{path}: {state}")
            if stale:
                names = " and ".join(path.name for path in stale)
                verb = "does" if len(stale) == 1 else "do"
                raise dvc_stages.PipelineOutOfDateError(
                    f"{names} {verb} not match params/: run `agencyml sync`, then commit"
                )
        else:
            for path, text in files.items():
                if path in stale:
                    storage.write_text(path, text)
            say(
                f"wrote {' and '.join(path.name for path in stale)} from params/"
                if stale
                else "dvc.yaml and prefect.yaml already match params/"
            )
            say(
                f"{len(agencies)} agencies, {sum(len(a.datasets) for a in agencies)} datasets, "
                f"{len(specs)} use cases; commit the files, then `agencyml ingest --agency NAME`"
            )
        if as_json:
            emit_json(
                {
                    "files": {str(path): "matches" for path in files},
                    "written": [] if check else [str(path) for path in stale],
                    "agencies": len(agencies),
                    "datasets": sum(len(a.datasets) for a in agencies),
                    "use_cases": len(specs),
                }
            )


def same_text(path: Path, text: str) -> bool:
    return path.is_file() and path.read_text(encoding="utf-8") == text


@app.command(rich_help_panel=PANEL)
def deploy(
    write: bool = typer.Option(
        False, "--write", help="First rewrite prefect.yaml from params/ (schedules, limits)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Only check (or --write) prefect.yaml; contact no server."
    ),
    run_dir: str | None = typer.Option(
        None,
        help="Where runs start on the workers (default: this checkout); on a cluster, the "
        "project's folder in the image, e.g. /opt/agencyml.",
    ),
    crash_after: int = typer.Option(
        90,
        min=45,
        help="Seconds without a heartbeat after which a running flow run is marked Crashed.",
    ),
    api_url: str | None = typer.Option(None, "--api-url", help=API_URL_HELP),
    as_json: bool = json_option(),
) -> None:
    """Register every agency's training, scoring and inbox deployments on the Prefect server.

    prefect.yaml is written from the params, so a schedule is changed in params/ and then
    `agencyml deploy --write`. Also creates the process work pool and the automation that
    marks runs of a killed worker Crashed, and each agency's alert automations
    (alerts.webhook_url in its params)."""
    with friendly_errors():
        say = errors.print if as_json else console.print
        root = project_root()
        path = root / deployments.PREFECT_YAML
        specs = config.list_use_cases()
        if write:
            path.write_text(deployments.render(specs), encoding="utf-8")
            say(f"wrote {path} from params/ ({len(specs) * 3} deployments)")
        elif deployments.out_of_date(path, specs):
            raise prefect_server.OrchestrationError(
                f"{path} does not match params/ (a schedule or limit changed): run "
                "`agencyml deploy --write` (or `agencyml sync`, which also writes dvc.yaml) to "
                "rewrite it, then commit it"
            )
        if dry_run:
            say(f"{path} matches params/; nothing registered (--dry-run)")
            if as_json:
                emit_json({"prefect_yaml": str(path), "matches": True, "registered": False})
            return
        url = prefect_server.api_url(api_url)
        prefect_server.require_server(url)
        with prefect_server.talking_to(url):
            if prefect_server.ensure_work_pool():
                say(f"created work pool {deployments.WORK_POOL} (process)")
            else:
                say(f"work pool {deployments.WORK_POOL} exists; its type is kept")
            prefect_server.deploy_all(root, url, run_dir)
            prefect_server.ensure_crash_automation(crash_after)
            registered = prefect_server.registered_deployments()
            from pipelines.orchestration import alert_automations  # lazily: it loads MLflow

            alerting = alert_automations.register_automations(config.load_all_params())
        if as_json:
            emit_json({"api_url": url, "deployments": registered, "alerts": alerting})
            return
        table = Table(title=f"Deployments on {url}")
        add_id_column(table, "deployment", (item["name"] for item in registered))
        for column in ("schedule", "concurrency", "work pool"):
            table.add_column(column, overflow="fold")
        for item in registered:
            table.add_row(
                item["name"],
                ", ".join(item["schedules"]) or "on demand",
                str(item["concurrency"] or "-"),
                item["work_pool"] or "-",
            )
        console.print(table)
        for agency, names in alerting.items():
            console.print(
                f"{agency}: {len(names)} alert automations post to its alerts.webhook_url"
            )
        to_same = "" if api_url is None else f" --api-url {url}"
        console.print(
            f"Start a worker to run them: agencyml worker{to_same} (pool {deployments.WORK_POOL})"
        )


@app.command(rich_help_panel=PANEL)
def worker(
    pool: str = typer.Option(deployments.WORK_POOL, help="The work pool to take runs from."),
    limit: int | None = typer.Option(
        None, min=1, help="Flow runs this worker runs at once (default: no limit)."
    ),
    api_url: str | None = typer.Option(None, "--api-url", help=API_URL_HELP),
) -> None:
    """Start a worker that runs the deployments' flow runs in subprocesses of this machine."""
    with friendly_errors():
        url = prefect_server.api_url(api_url)
        prefect_server.require_server(url)
        environment = {**os.environ, "PREFECT_API_URL": url}
        console.print(f"Worker for pool {pool} on {url}. Ctrl+C stops it.")
        raise typer.Exit(
            subprocess.call(prefect_server.worker_command(pool, limit), env=environment)
        )


@app.command("inbox", rich_help_panel=PANEL)
def inbox_command(
    agency: str | None = typer.Option(
        None, "--agency", "-a", help="Required without --watch; with it, only this agency."
    ),
    use_case: str | None = typer.Option(
        None, "--use-case", "-u", help="Required without --watch; with it, only this use case."
    ),
    settle_seconds: float | None = typer.Option(
        None, min=0, help="Override how long a file must be unchanged (default: from params)."
    ),
    as_json: bool = json_option(),
    watch: bool = typer.Option(
        False,
        "--watch",
        help="Keep running: look at the inboxes every --interval seconds and poll one as soon "
        "as a file is ready there (every use case's inbox unless -a/-u narrow it). SIGTERM "
        "or Ctrl+C stops it after the current poll.",
    ),
    interval: float = typer.Option(
        5.0, min=0.1, help="With --watch: seconds between two looks at the inbox folders."
    ),
) -> None:
    """Poll a use case's inbox once, here and now: what the inbox deployment does on its
    schedule. Prints the folder to drop files in when it is empty. With --watch, one process
    watches the inboxes instead of a deployed poll every minute."""
    if watch:
        watch_inboxes(agency, use_case, settle_seconds, interval)
        return
    with friendly_errors():
        if agency is None or use_case is None:
            raise config.ParamsError(
                "agencyml inbox needs --agency and --use-case (or --watch, which watches every "
                "use case's inbox)"
            )
        spec = config.load_use_case(agency, use_case)
        from flows.deployed import inbox_of, inbox_poll

        with prefect_api():
            result = inbox_poll(agency, use_case, settle_seconds)
        if as_json:
            emit_json(asdict(result))
            return
        box = inbox_of(spec)
        if result.busy:
            console.print(f"another poll is working through {box.root}; nothing done")
            return
        table = Table(title=f"Inbox {box.root}")
        for column in ("file", "outcome", "batch or reason"):
            table.add_column(column, overflow="fold")
        for item in result.scored:
            outcome = "scored" if item["newly_published"] else "already published"
            table.add_row(item["file"], outcome, item["batch_id"])
        for item in result.quarantined:
            table.add_row(item["file"], "[red]quarantined[/]", item["reason"])
        for name in result.waiting:
            table.add_row(name, "[yellow]waiting[/]", "still being written or not settled")
        if table.row_count:
            console.print(table)
        else:
            console.print(f"nothing to score; drop parquet or CSV batches in {box.root}")


def watch_inboxes(
    agency: str | None, use_case: str | None, settle_seconds: float | None, interval: float
) -> None:
    """`agencyml inbox --watch`: the one-shot poll, run by one long-lived process whenever a
    file is ready (pipelines.orchestration.inbox_watch)."""
    from pipelines.orchestration import inbox, inbox_watch
    from pipelines.paths import state_dir

    with friendly_errors():
        specs = [
            spec
            for spec in config.list_use_cases()
            if agency in (None, spec.agency) and use_case in (None, spec.name)
        ]
        if agency is not None:
            config.load_params(agency)  # an unknown agency is said as such
        if not specs:
            raise config.ParamsError(
                f"no use case named {use_case!r}"
                + (f" in {agency}" if agency else "")
                + ": its inbox cannot be watched"
            )
        state = state_dir()
        watched = [
            inbox_watch.WatchedInbox(
                agency=spec.agency,
                use_case=spec.name,
                box=inbox.Inbox(
                    state.inbox(spec.agency, spec.name), state.inbox_lock(spec.agency, spec.name)
                ).create(),
                settle_seconds=spec.params.orchestration.inbox_settle_seconds
                if settle_seconds is None
                else settle_seconds,
                retry_seconds=spec.params.orchestration.inbox_poll_seconds,
            )
            for spec in specs
        ]
    log(f"drop batch files in {state.inbox_dir}/<agency>/<use-case>/; SIGTERM or Ctrl+C stops")
    watcher = inbox_watch.InboxWatcher(watched, poll_and_log, interval, log)
    stopped = watcher.watch()
    if stopped.abandoned is not None:
        sys.stdout.flush()
        os._exit(128 + signal.Signals[stopped.signal_name].value)  # the poll's thread is left


def poll_and_log(item: WatchedInbox) -> None:
    """One poll of a watched inbox, exactly as `agencyml inbox -a -u` does it, and a log line
    per file; raises as that command fails (InboxError: files left claimed for a retry)."""
    from flows.deployed import inbox_poll

    with prefect_api():
        result = inbox_poll(item.agency, item.use_case, item.settle_seconds)
    if result.busy:
        log(f"{item.name}: another poll holds the inbox; looking again in a moment")
    for done in result.scored:
        outcome = "scored" if done["newly_published"] else "was already published"
        log(f"{item.name}: {done['file']} {outcome} as batch {done['batch_id']}")
    for refused in result.quarantined:
        log(f"{item.name}: {refused['file']} quarantined: {refused['reason']}")


def log(message: str) -> None:
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    console.print(f"{stamp} {message}", soft_wrap=True, highlight=False, markup=False)
