"""The shared deployment, described once: PostgreSQL behind an MLflow tracking server (artifacts
proxied to an S3-compatible bucket, MLflow's basic-auth app optional) and a Prefect server, a
worker running the deployments, and the pull service; every agencyml process pointed at them.

deploy/compose.yaml is written from this module (`agencyml compose`; a test fails when the file
and the module disagree), and the topology test starts the very same commands and settings as
processes on one machine. Commands are argv lists that start with the program's name
("mlflow", "agencyml"), as an image's PATH has them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from pipelines.orchestration.deployments import WORK_POOL

COMPOSE_FILE = "deploy/compose.yaml"
RUNNER_IMAGE = "agencyml-runner"  # built from deploy/Dockerfile


@dataclass(frozen=True)
class Service:
    """One long-running process of the deployment."""

    command: list[str]
    environment: dict[str, str]
    port: int | None = None


@dataclass(frozen=True)
class Topology:
    """Where the shared services are and how they reach each other. URLs are as the processes
    of the deployment call them (service names in compose, 127.0.0.1 in the test)."""

    mlflow_database: str  # postgresql+psycopg2://user:password@host:5432/mlflow
    prefect_database: str  # postgresql+asyncpg://user:password@host:5432/prefect
    artifacts: str  # s3://bucket/prefix: where the MLflow server keeps every artifact
    s3_endpoint: str  # the S3-compatible store's endpoint (MLFLOW_S3_ENDPOINT_URL)
    mlflow_url: str  # the tracking server as clients call it
    prefect_api_url: str  # the Prefect API as clients call it
    state: str  # AGENCYML_HOME of the worker and the pull service (a shared volume)
    project: str  # the project (params/) the worker and the pull service run
    bind: str = "0.0.0.0"
    mlflow_port: int = 5000
    prefect_port: int = 4200
    pull_port: int = 8765
    mlflow_workers: int = 2
    mlflow_allowed_hosts: str | None = None  # Host headers MLflow accepts beyond its defaults
    mlflow_auth_config: str | None = None  # basic-auth ini: the server runs its auth app
    extra_environment: dict[str, str] = field(default_factory=dict)  # the MLflow server's
    client_environment: dict[str, str] = field(default_factory=dict)  # agencyml processes'

    def agencyml_environment(self) -> dict[str, str]:
        """What every agencyml process of the deployment is pointed at."""
        return {
            "AGENCYML_TRACKING_URI": self.mlflow_url,
            "AGENCYML_HOME": self.state,
            "AGENCYML_PROJECT_ROOT": self.project,
            "PREFECT_API_URL": self.prefect_api_url,
            **self.client_environment,
        }

    def services(self) -> dict[str, Service]:
        mlflow = [
            "mlflow",
            "server",
            "--backend-store-uri",
            self.mlflow_database,
            "--artifacts-destination",
            self.artifacts,
            "--serve-artifacts",
            "--host",
            self.bind,
            "--port",
            str(self.mlflow_port),
            "--workers",
            str(self.mlflow_workers),
        ]
        if self.mlflow_allowed_hosts:
            mlflow += ["--allowed-hosts", self.mlflow_allowed_hosts]
        mlflow_env = {"MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint, **self.extra_environment}
        if self.mlflow_auth_config:
            mlflow += ["--app-name", "basic-auth"]
            mlflow_env["MLFLOW_AUTH_CONFIG_PATH"] = self.mlflow_auth_config
        return {
            "mlflow": Service(mlflow, mlflow_env, self.mlflow_port),
            "prefect-server": Service(
                [
                    "agencyml",
                    "server",
                    "--host",
                    self.bind,
                    "--port",
                    str(self.prefect_port),
                    "--api-url",
                    self.prefect_api_url,
                ],
                {
                    "PREFECT_API_DATABASE_CONNECTION_URL": self.prefect_database,
                    "AGENCYML_HOME": self.state,
                    "AGENCYML_PROJECT_ROOT": self.project,
                },
                self.prefect_port,
            ),
            "worker": Service(
                ["agencyml", "worker", "--pool", WORK_POOL, "--api-url", self.prefect_api_url],
                self.agencyml_environment(),
            ),
            "pull-service": Service(
                ["agencyml", "serve", "--host", self.bind, "--port", str(self.pull_port)],
                self.agencyml_environment(),
                self.pull_port,
            ),
        }


def compose_topology() -> Topology:
    """The deployment as deploy/compose.yaml runs it: services by their compose names, secrets
    from the compose environment (.env), never written into the file."""
    return Topology(
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; agencyml ships psycopg2
        mlflow_database="postgresql+psycopg2://mlflow:${MLFLOW_DB_PASSWORD}@postgres:5432/mlflow",
        prefect_database=(
            "postgresql+asyncpg://prefect:${PREFECT_DB_PASSWORD}@postgres:5432/prefect"
        ),
        artifacts="s3://agencyml/mlflow",
        s3_endpoint="http://s3:9000",
        mlflow_url="http://mlflow:5000",
        prefect_api_url="${PREFECT_PUBLIC_API_URL:-http://localhost:4200/api}",
        state="/var/lib/agencyml",
        project="/srv/project",
        mlflow_allowed_hosts="mlflow,mlflow:5000,localhost,localhost:5000",
        mlflow_auth_config="/etc/mlflow/auth.ini",
        extra_environment={
            "AWS_ACCESS_KEY_ID": "${S3_ACCESS_KEY}",
            "AWS_SECRET_ACCESS_KEY": "${S3_SECRET_KEY}",
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "${MLFLOW_SECRET_KEY}",
        },
        client_environment={  # the platform's own MLflow account (creates every agency's runs)
            "MLFLOW_TRACKING_USERNAME": "${MLFLOW_ADMIN_USER}",
            "MLFLOW_TRACKING_PASSWORD": "${MLFLOW_ADMIN_PASSWORD}",
        },
    )


HEADER = """\
# The shared deployment of agencyml: PostgreSQL, an S3-compatible store (MinIO), the MLflow
# tracking server (artifacts proxied to the store, MLflow's basic-auth app), the Prefect server,
# a worker and the pull service. Written by `agencyml compose` from
# pipelines/orchestration/topology.py, whose commands and settings the topology test runs as
# processes: do not edit by hand (a test fails when the two disagree).
#
#   cp deploy/example.env .env                    # then set every secret in it
#   cp deploy/mlflow-auth.example.ini mlflow-auth.ini   # then set the admin password in it
#   docker compose -f deploy/compose.yaml --env-file .env up -d
#   docker compose -f deploy/compose.yaml exec worker agencyml mlflow-access sync
"""


def render_compose(topology: Topology | None = None) -> str:
    """deploy/compose.yaml for the topology (default: compose_topology()), deterministically."""
    topology = topology or compose_topology()
    services: dict[str, Any] = {
        "postgres": {
            "image": "postgres:15",
            "environment": {
                "POSTGRES_PASSWORD": "${POSTGRES_PASSWORD}",
                "MLFLOW_DB_PASSWORD": "${MLFLOW_DB_PASSWORD}",
                "PREFECT_DB_PASSWORD": "${PREFECT_DB_PASSWORD}",
            },
            "volumes": [
                "postgres:/var/lib/postgresql/data",
                "./postgres-init.sh:/docker-entrypoint-initdb.d/agencyml.sh:ro",
            ],
            "healthcheck": {
                "test": ["CMD", "pg_isready", "-U", "postgres"],
                "interval": "5s",
                "retries": 20,
            },
        },
        "s3": {
            "image": "minio/minio",
            "command": ["server", "/data"],
            "environment": {
                "MINIO_ROOT_USER": "${S3_ACCESS_KEY}",
                "MINIO_ROOT_PASSWORD": "${S3_SECRET_KEY}",
            },
            "volumes": ["s3:/data"],
        },
        "s3-bucket": {  # once: the bucket the MLflow server keeps artifacts in
            "image": "minio/mc",
            "entrypoint": ["/bin/sh", "-c"],
            "command": [
                'mc alias set s3 http://s3:9000 "$$S3_ACCESS_KEY" "$$S3_SECRET_KEY" '
                "&& mc mb --ignore-existing s3/agencyml"
            ],
            "environment": {
                "S3_ACCESS_KEY": "${S3_ACCESS_KEY}",
                "S3_SECRET_KEY": "${S3_SECRET_KEY}",
            },
            "depends_on": ["s3"],
        },
    }
    depends = {
        "mlflow": ["postgres", "s3-bucket"],
        "prefect-server": ["postgres"],
        "worker": ["mlflow", "prefect-server"],
        "pull-service": ["mlflow"],
    }
    for name, service in topology.services().items():
        entry: dict[str, Any] = {
            "image": RUNNER_IMAGE,
            "build": {"context": "..", "dockerfile": "deploy/Dockerfile"},
            "command": service.command,
            "environment": dict(sorted(service.environment.items())),
            "depends_on": depends[name],
            "restart": "unless-stopped",
        }
        if service.port is not None:
            entry["ports"] = [f"{service.port}:{service.port}"]
        # the project is read and written (ingested data, dvc.lock); the state is shared
        volumes = [f"agencyml-state:{topology.state}", f"..:{topology.project}"]
        if name == "mlflow":
            volumes = ["../mlflow-auth.ini:/etc/mlflow/auth.ini:ro", "mlflow-auth:/var/lib/mlflow"]
        entry["volumes"] = volumes
        services[name] = entry
    document = {
        "services": services,
        "volumes": {"postgres": {}, "s3": {}, "agencyml-state": {}, "mlflow-auth": {}},
    }
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=100)
