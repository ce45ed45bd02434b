"""The state directory is private: real `agencyml` processes started under umask 022 leave
nothing in it that group or others could read or write, inputs copied into quarantine included,
and loose_permissions finds a file made readable afterwards."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
from servers import free_port, stop, wait_until_up

from pipelines.paths import PACKAGE_ROOT, StateDir
from pipelines.permissions import loose_permissions

FRAUD = ("-a", "business-aid", "-u", "fraud-risk")
USERS_UMASK = 0o022


def agencyml(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        umask=USERS_UMASK,
    )


def public_input(path: Path, frame: pd.DataFrame) -> Path:
    """A batch file as a user leaves it: readable by everyone."""
    frame.to_csv(path, index=False)
    path.chmod(0o644)
    return path


def fetch_once(env: dict[str, str], secret: str, log: Path) -> None:
    """`agencyml serve` under the user's umask answers one request, so it logs one access."""
    port = free_port()
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows", "serve", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            umask=USERS_UMASK,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/openapi.json", process, log)
        request = urllib.request.Request(
            f"{url}/v1/agencies/business-aid/batches",
            headers={"Authorization": f"Bearer {secret}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
    finally:
        stop(process)


def modes(root: Path) -> dict[str, str]:
    """Every folder and file under root (root included) with its permission bits."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        if not path.is_symlink():
            found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def test_commands_under_umask_022_keep_the_state_directory_private(
    prefect_server, make_small_project, tmp_path
):
    from prefect.settings import PREFECT_API_URL

    state = tmp_path / "state"
    env = {
        **os.environ,
        "PYTHONPATH": str(PACKAGE_ROOT),
        "COLUMNS": "200",
        "AGENCYML_PROJECT_ROOT": str(make_small_project(tmp_path / "project")),
        "AGENCYML_HOME": str(state),
        "PREFECT_API_URL": PREFECT_API_URL.value(),
    }
    trained = agencyml(env, "train", *FRAUD)
    assert trained.returncode == 0, trained.stderr[-3000:]
    sampled = agencyml(env, "sample", *FRAUD, "--rows", "200", "-o", str(tmp_path / "s.csv"))
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    batch = pd.read_csv(tmp_path / "s.csv")
    batch.loc[0, "requested_amount_dkk"] = -1.0
    one_bad_row = public_input(tmp_path / "batch.csv", batch)
    scored = agencyml(env, "score", *FRAUD, "-i", str(one_bad_row), "--json")
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert json.loads(scored.stdout)["rows_quarantined"] == 1
    rejected = public_input(tmp_path / "rejected.csv", batch.drop(columns=["region"]))
    refused = agencyml(env, "score", *FRAUD, "-i", str(rejected))
    assert refused.returncode == 4, refused.stderr[-3000:]
    created = agencyml(env, "tokens", "create", "--name", "ops", "-a", "business-aid", "--json")
    assert created.returncode == 0, created.stderr[-3000:]
    fetch_once(env, json.loads(created.stdout)["secret"], tmp_path / "serve.log")

    quarantine = state / "quarantine" / "business-aid" / "fraud-risk"
    expected = [
        state / "mlflow" / "mlflow.db",
        state / "access" / "tokens.json",
        state / "access" / "access.jsonl",
        *quarantine.glob("*/input.csv"),
        *quarantine.glob("*/rows.parquet"),
        *(state / "outputs").rglob("scored.parquet"),
    ]
    assert len(expected) == 6, modes(state)
    assert all(path.is_file() for path in expected)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    loose = {name: mode for name, mode in modes(state).items() if int(mode, 8) & 0o077}
    assert loose == {}
    assert loose_permissions(StateDir(state)) == []

    published = expected[-1]
    published.chmod(0o644)
    assert loose_permissions(StateDir(state)) == [published]
