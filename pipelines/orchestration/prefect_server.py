"""The Prefect server side: where it is, the work pool, the deployments and the automation that
marks a run whose worker died Crashed. The deployments themselves are prefect.yaml's."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from pipelines.orchestration.deployments import PREFECT_YAML, WORK_POOL

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
CRASH_AUTOMATION = "agencyml: mark runs that stopped sending heartbeats Crashed"
# Prefect's CLI through this interpreter: an installed agencyml may have no `prefect` script
# beside it (dependencies from another environment, a zipapp, a frozen image)
PREFECT = (sys.executable, "-m", "prefect")


class OrchestrationError(RuntimeError):
    """No Prefect server, an out-of-date prefect.yaml, or a deployment Prefect refused."""


def served_api_url(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    """The API of a server listening on host:port, as a client on this machine calls it."""
    return f"http://{host}:{port}/api"


def api_url(given: str | None = None) -> str:
    """The Prefect API to talk to: the one given (--api-url), else PREFECT_API_URL, else the
    one `agencyml server` starts."""
    return checked_api_url(given or os.environ.get("PREFECT_API_URL") or served_api_url())


def checked_api_url(url: str) -> str:
    """An http(s) URL without its trailing slash; OrchestrationError for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise OrchestrationError(
            f"{url!r} is not a Prefect API URL: give one like http://127.0.0.1:4200/api (or "
            "https://prefect.example.org/api behind a proxy)"
        )
    return url.rstrip("/")


@contextlib.contextmanager
def talking_to(url: str) -> Iterator[None]:
    """Prefect's client calls in this block go to `url`, whatever PREFECT_API_URL says."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield


def require_server(url: str, timeout: float = 5.0) -> None:
    try:
        healthy = httpx.get(f"{url.rstrip('/')}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        healthy = False
    if not healthy:
        raise OrchestrationError(
            f"no Prefect server answers at {url}. Start one with `agencyml server` (in another "
            "terminal), or give yours with --api-url (or PREFECT_API_URL)."
        )


def server_environment(
    host: str, port: int, ui: bool = True, public_api_url: str | None = None
) -> dict[str, str]:
    """The environment for `prefect server start --host --port`: Prefect's UI reads the API's
    address from PREFECT_UI_API_URL (served at /ui-settings), which otherwise follows
    PREFECT_SERVER_API_PORT (4200) whatever --port says. `public_api_url` is the address
    browsers and clients use when a proxy stands in front (default: http://host:port/api)."""
    api = checked_api_url(public_api_url or served_api_url(host, port))
    environment = {
        **os.environ,
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_UI_ENABLED": "true" if ui else "false",
        "PREFECT_UI_API_URL": api,
        "PREFECT_UI_URL": api.removesuffix("/api"),  # the links Prefect writes (automations)
    }
    environment.pop("PREFECT_API_URL", None)  # the server is the API, not a client of one
    return environment


def server_command(host: str, port: int, ui: bool = True) -> list[str]:
    command = [*PREFECT, "server", "start", "--host", host, "--port", str(port)]
    return [*command, "--ui" if ui else "--no-ui"]


def worker_command(pool: str, limit: int | None) -> list[str]:
    command = [*PREFECT, "worker", "start", "--pool", pool, "--type", "process"]
    return [*command, "--limit", str(limit)] if limit else command


def ensure_work_pool(name: str = WORK_POOL) -> bool:
    """Create the process work pool unless it exists; True if it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(name)
            return False
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(
                WorkPoolCreate(name=name, type="process", base_job_template=template)
            )
            return True


def deploy_all(project_root: Path, url: str, run_dir: str | None = None) -> str:
    """`prefect deploy --all` from the project root: prefect.yaml is what gets registered.
    Runs start in `run_dir` (default: this checkout), which prefect.yaml reads as $PWD."""
    environment = {**os.environ, "PREFECT_API_URL": url, "PWD": run_dir or str(project_root)}
    done = subprocess.run(
        [*PREFECT, "--no-prompt", "deploy", "--all", "--prefect-file", PREFECT_YAML],
        cwd=project_root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise OrchestrationError(
            f"prefect deploy --all failed (exit {done.returncode}):\n"
            f"{(done.stdout + done.stderr)[-3000:]}"
        )
    return done.stdout


def ensure_crash_automation(within_seconds: int) -> Any:
    """The automation Prefect documents for zombie runs: a running flow run that sends no
    heartbeat (and no final state) for `within_seconds` is set to Crashed. Replaced if it
    exists, so its window follows the setting."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    with contextlib.suppress(ValueError):  # ValueError: not there yet
        Automation.read(name=CRASH_AUTOMATION).delete()
    return Automation(
        name=CRASH_AUTOMATION,
        description="A flow run whose process died (a killed worker) stops sending "
        "heartbeats; this marks it Crashed instead of Running forever.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={
                "prefect.flow-run.heartbeat",
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                "prefect.flow-run.Crashed",
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=within_seconds),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {within_seconds} s: its worker or machine stopped.",
            )
        ],
    ).create()


def registered_deployments() -> list[dict[str, Any]]:
    """Every deployment on the server, with its schedules and concurrency limit."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flows = {flow.id: flow.name for flow in client.read_flows()}
        return [
            {
                "name": f"{flows.get(d.flow_id, '?')}/{d.name}",
                "schedules": [_describe(s.schedule) for s in d.schedules],
                "concurrency": d.global_concurrency_limit.limit
                if d.global_concurrency_limit
                else None,
                "work_pool": d.work_pool_name,
            }
            for d in client.read_deployments()
        ]


def _describe(schedule: Any) -> str:
    if getattr(schedule, "cron", None):
        return f"cron {schedule.cron} ({schedule.timezone})"
    if getattr(schedule, "interval", None):
        return f"every {int(schedule.interval.total_seconds())} s"
    return str(schedule)
