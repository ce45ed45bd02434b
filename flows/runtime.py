"""Run-time set-up for the embedded defaults: call before Prefect or MLflow is first imported."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pipelines.paths import StateDir

QUIET_LOGGING = Path(__file__).with_name("logging.yml")
QUIET_DEFAULTS = {
    "PREFECT_LOGGING_CONFIG_PATH": str(QUIET_LOGGING),
    "PREFECT_LOGGING_LEVEL": "INFO",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_UI_ENABLED": "false",
    # Prefect's temporary server waits 20 s by default, too short for a busy 2-core machine
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


def prepare_environment(state: StateDir, *, verbose: bool = False) -> None:
    """Keep Prefect's local server and its database under the state directory, and quiet.

    Only defaults are set: a user's own PREFECT_API_URL (a shared server) still wins."""
    state.root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(state.prefect_home))
    for name, value in QUIET_DEFAULTS.items():
        if verbose and ("LOGGING" in name or "PROGRESS" in name):
            if os.environ.get(name) == value:  # inherited from a quiet agencyml process
                del os.environ[name]
            continue
        os.environ.setdefault(name, value)
    for name in ("mlflow", "alembic", "urllib3", "git"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
