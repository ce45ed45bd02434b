"""The agencyml command line: the typer app and what every command shares in app.py, and one
module per group of commands, each registering its commands on that app. Nothing here imports
this package back."""

from flows.cli import (  # noqa: F401
    batches,
    data,
    demo,
    deployment,
    mlflow_access,
    models,
    orchestration,
    project,
    service,
    verify,
)
from flows.cli.app import app, main

__all__ = ["app", "main"]
