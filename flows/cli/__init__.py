"""The agencyml command line: the typer app and what every command shares in app.py, and one
module per group of commands, each registering its commands on that app. Nothing here imports
this package back."""

from flows.cli import batches, data, demo, mlflow_access, models, orchestration, service  # noqa: F401
from flows.cli.app import app, main

__all__ = ["app", "main"]
