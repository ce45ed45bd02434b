"""Run-time set-up for the embedded defaults: call before Prefect or MLflow is first imported."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from pipelines.paths import StateDir
from pipelines.settings import SettingsError

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


PRIVATE_UMASK = 0o077


def make_private(state: StateDir) -> None:
    """Whatever this process (and the servers, workers and flow runs it starts) creates is its
    user's alone: umask 077, and the state root 0700 even if it was made looser before."""
    os.umask(PRIVATE_UMASK)
    try:
        state.root.mkdir(parents=True, exist_ok=True)
    except OSError as refused:
        raise SettingsError(
            f"the state directory {state.root} cannot be made ({refused.strerror}): point "
            "AGENCYML_HOME at a folder this user can write, or unset it to keep the state in "
            "the project's .agencyml/."
        ) from None
    mode = stat.S_IMODE(state.root.stat().st_mode)
    if mode & PRIVATE_UMASK:
        # someone else's folder stays as it is: loose_permissions reports it, the run goes on
        with contextlib.suppress(PermissionError):
            state.root.chmod(mode & ~PRIVATE_UMASK)


def prepare_environment(state: StateDir, *, verbose: bool = False) -> None:
    """Keep Prefect's local server and its database under the state directory, and quiet.

    Only defaults are set: a user's own PREFECT_API_URL (a shared server) still wins."""
    make_private(state)
    os.environ.setdefault("PREFECT_HOME", str(state.prefect_home))
    for name, value in QUIET_DEFAULTS.items():
        if verbose and ("LOGGING" in name or "PROGRESS" in name):
            if os.environ.get(name) == value:  # inherited from a quiet agencyml process
                del os.environ[name]
            continue
        os.environ.setdefault(name, value)
    for name in ("mlflow", "alembic", "urllib3", "git"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    # the chained logs' heads go to the tracking store too (pipelines.registry.log_heads)
    from pipelines import hashlog
    from pipelines.registry.log_heads import MlflowHeads

    hashlog.keep_heads_in(MlflowHeads(state))
