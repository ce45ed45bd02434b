"""deploy/compose.yaml is the topology the tests run: written from the same module, with the
same commands and settings, and the runner image it names is built by deploy/Dockerfile."""

from __future__ import annotations

import json

import yaml

from pipelines.orchestration.topology import (
    COMPOSE_FILE,
    RUNNER_IMAGE,
    Topology,
    compose_topology,
    render_compose,
)
from pipelines.paths import PACKAGE_ROOT


def test_the_compose_file_is_written_from_the_topology() -> None:
    assert (PACKAGE_ROOT / COMPOSE_FILE).read_text(encoding="utf-8") == render_compose(), (
        "deploy/compose.yaml differs from pipelines/orchestration/topology.py: run "
        "`agencyml compose` and commit it"
    )


def test_each_service_runs_the_topologys_command_and_settings() -> None:
    compose = yaml.safe_load((PACKAGE_ROOT / COMPOSE_FILE).read_text())["services"]

    for name, service in compose_topology().services().items():
        assert compose[name]["command"] == service.command, name
        assert compose[name]["environment"] == service.environment, name
        assert compose[name]["image"] == RUNNER_IMAGE
    assert compose["mlflow"]["command"][:2] == ["mlflow", "server"]
    assert "--app-name" in compose["mlflow"]["command"]  # the shared server runs with auth
    assert compose["worker"]["environment"]["AGENCYML_TRACKING_URI"] == "http://mlflow:5000"


def test_no_secret_is_written_into_the_compose_file() -> None:
    text = (PACKAGE_ROOT / COMPOSE_FILE).read_text()
    for variable in ("POSTGRES_PASSWORD", "MLFLOW_DB_PASSWORD", "S3_SECRET_KEY"):
        assert "${" + variable + "}" in text
    example = (PACKAGE_ROOT / "deploy" / "example.env").read_text()
    assert all(line.endswith("=") for line in example.splitlines() if "PASSWORD" in line)


def test_the_runner_image_installs_the_pinned_platform() -> None:
    dockerfile = (PACKAGE_ROOT / "deploy" / "Dockerfile").read_text()

    assert "pip install --no-cache-dir -c constraints.txt ." in dockerfile
    assert "USER agencyml" in dockerfile  # never root


def test_the_topology_for_one_machine_points_every_process_at_the_same_servers() -> None:
    topology = Topology(
        mlflow_database="postgresql+psycopg2://u:p@127.0.0.1:5432/mlflow",
        prefect_database="postgresql+asyncpg://u:p@127.0.0.1:5432/prefect",
        artifacts="s3://bucket/mlflow",
        s3_endpoint="http://127.0.0.1:9000",
        mlflow_url="http://127.0.0.1:5001",
        prefect_api_url="http://127.0.0.1:4201/api",
        state="/tmp/state",
        project="/tmp/project",
        mlflow_port=5001,
        prefect_port=4201,
    )
    services = topology.services()

    assert services["mlflow"].command[services["mlflow"].command.index("--port") + 1] == "5001"
    assert "--app-name" not in services["mlflow"].command  # auth only when configured
    for name in ("worker", "pull-service"):
        assert services[name].environment["AGENCYML_TRACKING_URI"] == "http://127.0.0.1:5001"
        assert services[name].environment["PREFECT_API_URL"] == "http://127.0.0.1:4201/api"
    assert services["prefect-server"].environment["PREFECT_API_DATABASE_CONNECTION_URL"] == (
        "postgresql+asyncpg://u:p@127.0.0.1:5432/prefect"
    )


def test_agencyml_compose_writes_checks_and_refuses_a_stale_file(tmp_path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    target = tmp_path / "compose.yaml"
    invoke = CliRunner().invoke
    written = invoke(app, ["compose", "-o", str(target), "--json"])
    target.write_text(target.read_text() + "# edited by hand\n")
    stale = invoke(app, ["compose", "--check", "-o", str(target)])

    assert written.exit_code == 0 and json.loads(written.stdout)["written"] is True
    assert target.read_text().startswith(render_compose())
    assert stale.exit_code == 14 and "agencyml compose" in stale.output
