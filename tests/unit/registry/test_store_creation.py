"""Commands started together on a fresh state directory share one SQLite tracking store:
its tables are created once, by whichever process comes first, and every process goes on."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from pipelines.paths import PACKAGE_ROOT

OPEN_STORE = """
import sys, time
from pathlib import Path
from mlflow.tracking import MlflowClient
from pipelines.paths import StateDir
from pipelines.registry.tracking import configure
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
configure(StateDir(Path(sys.argv[1])))
print(len(MlflowClient().search_registered_models()))
"""


def test_four_processes_open_a_fresh_store_at_once_and_all_succeed(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    env.pop("AGENCYML_TRACKING_URI", None)
    start = time.time() + 8  # every process has imported MLflow by then
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_STORE, str(tmp_path / "state"), str(start)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [process.communicate(timeout=300) for process in processes]
    failures = [
        err[-2000:]
        for process, (_, err) in zip(processes, results, strict=True)
        if process.returncode
    ]
    assert failures == []
    assert [out.strip() for out, _ in results] == ["0"] * 4
    assert (tmp_path / "state" / "mlflow" / "mlflow.db").stat().st_size > 0
