"""Shared fixtures: a small copy of the project (params + data) and a temporary state directory."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipelines.paths import PACKAGE_ROOT

# Commands run by the tests (in this process or as subprocesses, dvc repro's stages included)
# without a Prefect API use Prefect's temporary server, as before, rather than each starting a
# background server that outlives its test; test_fixed_costs.py tests the background server.
os.environ.setdefault("AGENCYML_PREFECT_SERVER", "temporary")

RASFF = PACKAGE_ROOT / "data" / "product-safety" / "RASFF_data.csv.gz"


def write_small_project(root: Path, *, rasff_rows: int = 4000, generated_rows: int = 4000) -> Path:
    """params/ and data/ like the real project, with fewer rows and boosting rounds."""
    (root / "params").mkdir(parents=True, exist_ok=True)
    data_dir = root / "data" / "product-safety"
    data_dir.mkdir(parents=True, exist_ok=True)
    raw = pd.read_csv(RASFF, sep=";", encoding="utf-8-sig", dtype=str, keep_default_na=False)
    sample = raw.sample(n=rasff_rows, random_state=7)
    sample.to_csv(data_dir / RASFF.name, sep=";", index=False, encoding="utf-8-sig")
    for params_file in (PACKAGE_ROOT / "params").glob("*.yaml"):
        params = yaml.safe_load(params_file.read_text())
        for name, source in params["datasets"].items():
            if source["kind"] == "generator":
                params["datasets"][name] = {**source, "rows": generated_rows}
        for use_case in params["use_cases"].values():
            use_case["lightgbm"]["num_iterations"] = 60
            use_case["lightgbm"]["early_stopping_round"] = 10
            # 60 trees on 4,000 rows may not beat the logistic regression (fraud-risk: PR AUC
            # 0.306 against 0.325; on the full data 0.357 against 0.278); tests of the gate
            # that hold such a version set it back themselves
            use_case.setdefault("promotion", {})["must_beat_baselines"] = False
            if use_case["decision"]["kind"] == "capacity":
                use_case["decision"]["top_k"] = 20
        (root / "params" / params_file.name).write_text(yaml.safe_dump(params, sort_keys=False))
    return root


@pytest.fixture
def small_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small project root and an empty state directory, both in tmp_path."""
    root = write_small_project(tmp_path / "project")
    monkeypatch.setenv("AGENCYML_PROJECT_ROOT", str(root))
    monkeypatch.setenv("AGENCYML_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    return root


@pytest.fixture
def project_copy(tmp_path: Path) -> Path:
    """The files dvc.yaml and prefect.yaml refer to, copied into a fresh folder."""
    target = tmp_path / "repo"
    for name in ("dvc.yaml", "prefect.yaml", ".gitignore"):
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(PACKAGE_ROOT / name, target / name)
    shutil.copytree(
        PACKAGE_ROOT / "pipelines",
        target / "pipelines",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copytree(
        PACKAGE_ROOT / "flows", target / "flows", ignore=shutil.ignore_patterns("__pycache__")
    )
    write_small_project(target)
    return target


@pytest.fixture(scope="session")
def make_small_project():
    """write_small_project, for fixtures with a wider scope than one test."""
    return write_small_project


@pytest.fixture(autouse=True)
def restore_umask():
    """A command run in-process makes the state private with umask 077; each test starts with
    the umask the session started with, so no test depends on which ran before it."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)
