"""Projects outside this repository: `agencyml init` makes one, commands find it from the
working directory (never from where the package is installed), and outside one they say how to
make one. The last test builds a wheel, installs it into a fresh virtualenv and runs the demo in
a folder far from this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import yaml

from pipelines.orchestration import deployments, dvc_stages
from pipelines.orchestration.new_project import EXAMPLE, TEMPLATE
from pipelines.paths import PACKAGE_ROOT


def agencyml(*args: str, cwd: Path, executable: str = sys.executable, **env: str):
    """`agencyml ARGS` in its own process from `cwd`, with no AGENCYML_* or PREFECT_* setting
    inherited from the test run (a new user's shell)."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AGENCYML_", "PREFECT_")) and key != "PYTHONPATH"
    }
    if executable == sys.executable:  # this checkout's code, from anywhere
        environment["PYTHONPATH"] = str(PACKAGE_ROOT)
    environment.update(env)
    return subprocess.run(
        [executable, "-m", "flows", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_init_makes_a_versioned_project_with_its_pipeline_files(tmp_path) -> None:
    made = agencyml("init", "platform", cwd=tmp_path)
    root = tmp_path / "platform"

    assert made.returncode == 0, made.stderr
    assert (root / "params" / f"{EXAMPLE}.yaml").read_bytes() == (
        TEMPLATE / f"{EXAMPLE}.yaml"
    ).read_bytes()
    assert (root / "data").is_dir()
    log = subprocess.run(
        ["git", "-C", str(root), "log", "--format=%s"], capture_output=True, text=True
    )
    assert log.stdout.strip() == "A new agencyml project"
    dvc_config = (root / ".dvc" / "config").read_text()
    assert "remote = local" in dvc_config and "url = ../.agencyml/dvc-remote" in dvc_config
    # the pipeline files are what `agencyml sync` writes: `sync --check` agrees
    check = agencyml("sync", "--check", cwd=root)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "matches params/" in check.stdout
    stages = yaml.safe_load((root / dvc_stages.DVC_YAML).read_text())
    assert "ingest" in stages["stages"]
    assert (root / deployments.PREFECT_YAML).is_file()


def test_the_example_is_the_repositorys_own_params() -> None:
    assert (TEMPLATE / f"{EXAMPLE}.yaml").read_bytes() == (
        PACKAGE_ROOT / "params" / f"{EXAMPLE}.yaml"
    ).read_bytes()


def test_init_never_writes_into_a_folder_that_holds_something(tmp_path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")

    refused = agencyml("init", str(taken), cwd=tmp_path)

    assert refused.returncode == 2
    assert "not an empty folder" in refused.stdout + refused.stderr
    assert sorted(p.name for p in taken.iterdir()) == ["notes.txt"]
    assert (taken / "notes.txt").read_text() == "mine"


def test_commands_find_the_project_from_a_subfolder(tmp_path) -> None:
    assert agencyml("init", "p", "--no-example", cwd=tmp_path).returncode == 0
    deep = tmp_path / "p" / "data" / "somewhere"
    deep.mkdir(parents=True)
    (tmp_path / "p" / "params" / "tiny.yaml").write_bytes(
        (TEMPLATE / f"{EXAMPLE}.yaml")
        .read_bytes()
        .replace(b"agency: business-aid", b"agency: tiny")
    )

    listed = agencyml("agencies", cwd=deep, COLUMNS="200")

    assert listed.returncode == 0, listed.stderr
    assert "tiny" in listed.stdout and "business-aid" not in listed.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["agencies"],
        ["train", "-a", "x", "-u", "y"],
        ["lineage", "batch-0"],
        ["state-dir"],
        ["ui", "--port", "1"],
        ["serve", "--port", "1"],
        ["tokens", "list"],
    ],
)
def test_outside_a_project_a_command_says_how_to_make_one(tmp_path, command) -> None:
    done = agencyml(*command, cwd=tmp_path)

    assert done.returncode == 2
    said = " ".join((done.stdout + done.stderr).split())
    assert "no agencyml project here" in said and "agencyml init DIR" in said
    assert "Traceback" not in done.stderr


def test_a_project_root_that_is_not_a_folder_and_a_bad_setting_are_clear(tmp_path) -> None:
    missing = agencyml("agencies", cwd=tmp_path, AGENCYML_PROJECT_ROOT=str(tmp_path / "nope"))
    bad = agencyml("settings", cwd=tmp_path, AGENCYML_SESSION_IDLE_MINUTES="soon")
    shown = agencyml("settings", cwd=tmp_path, AGENCYML_TOKEN="aml_secret_value", COLUMNS="200")

    assert missing.returncode == 2 and "is not a folder" in missing.stderr
    assert bad.returncode == 2 and "AGENCYML_SESSION_IDLE_MINUTES='soon'" in bad.stderr
    assert shown.returncode == 0 and "aml_secret_value" not in shown.stdout
    assert "AGENCYML_TOKEN" in shown.stdout and "(set)" in shown.stdout


def fresh_virtualenv(folder: Path) -> Path:
    """A new virtualenv whose only link to this one is a .pth line naming its site-packages, so
    the dependencies come from there but agencyml only from what is installed into it."""
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def test_a_built_wheel_installed_elsewhere_inits_and_runs_the_demo(tmp_path) -> None:
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), "."],
        cwd=PACKAGE_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = wheels.glob("agencyml-*.whl")
    python = fresh_virtualenv(tmp_path / "env")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", wheel],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr
    where = subprocess.run(
        [python, "-c", "import flows, pipelines; print(flows.__file__, pipelines.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(PACKAGE_ROOT) not in where and "site-packages" in where

    outside = tmp_path / "far" / "away"
    outside.mkdir(parents=True)
    assert agencyml("init", "platform", cwd=outside, executable=str(python)).returncode == 0
    project = outside / "platform"
    params = project / "params" / f"{EXAMPLE}.yaml"
    smaller = yaml.safe_load(params.read_text())
    smaller["datasets"]["applications"]["rows"] = 12000  # the demo's steps, on less data
    params.write_text(yaml.safe_dump(smaller, sort_keys=False))
    assert agencyml("sync", cwd=project, executable=str(python)).returncode == 0

    try:
        demo = agencyml("demo", cwd=project, executable=str(python), COLUMNS="200")
    finally:
        agencyml("server", "--stop", cwd=project, executable=str(python))

    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "business-aid.fraud-risk" in demo.stdout
    outputs = project / ".agencyml" / "outputs" / "business-aid"
    assert sorted(p.name for p in outputs.iterdir()) == ["case-routing", "fraud-risk"]
    assert list(outputs.glob("fraud-risk/batch-*/manifest.json"))
    assert (project / "dvc.lock").is_file()  # the ingested data is versioned by DVC
    assert "site-packages" not in str(project)
