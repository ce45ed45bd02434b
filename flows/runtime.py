"""Run-time set-up for the embedded defaults: call before Prefect or MLflow is first imported."""

from __future__ import annotations

import logging
import os

from pipelines.paths import StateDir

QUIET_DEFAULTS = {
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_UI_ENABLED": "false",
    "GIT_PYTHON_REFRESH": "quiet",
}


def prepare_environment(state: StateDir, *, verbose: bool = False) -> None:
    """Keep Prefect's local server and its database under the state directory, and quiet.

    Only defaults are set: a user's own PREFECT_API_URL (a shared server) still wins."""
    state.root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(state.prefect_home))
    for name, value in QUIET_DEFAULTS.items():
        if verbose and name.endswith("LOGGING_LEVEL"):
            continue
        os.environ.setdefault(name, value)
    for name in ("mlflow", "alembic", "urllib3", "git"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
