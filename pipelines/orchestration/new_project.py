"""`agencyml init DIR`: a new project outside any checkout, ready for `agencyml demo`.

It holds params/ with one example agency (synthetic data, so it trains with nothing else),
data/, a git repository with DVC initialised and a local DVC remote in the state directory,
and dvc.yaml and prefect.yaml written from params/ as `agencyml sync` writes them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipelines.config import load_params
from pipelines.data import storage
from pipelines.data.versioning import DvcError
from pipelines.orchestration import deployments, dvc_stages

TEMPLATE = Path(__file__).with_name("project_template")
EXAMPLE = "business-aid"
GITIGNORE = """\
# agencyml's state (MLflow, Prefect, outputs, inbox) and DVC-versioned data
/.agencyml/
/data/ingested/
__pycache__/
"""


class ProjectExistsError(FileExistsError):
    """The folder already holds something: init never writes over a project or other files."""


@dataclass(frozen=True)
class NewProject:
    root: Path
    params: list[Path]
    versioned: bool  # git and DVC were initialised


def create_project(root: Path, *, example: bool = True, version: bool = True) -> NewProject:
    """Create the project at `root` (a new or empty folder). Raises ProjectExistsError when it
    is not empty, so nothing there is ever overwritten."""
    root = root.expanduser().resolve()
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ProjectExistsError(
            f"{root} already exists and is not an empty folder: init creates a project only in "
            "a new or empty folder, so nothing there is overwritten. Choose another DIR."
        )
    (root / "params").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    written = []
    if example:
        target = root / "params" / f"{EXAMPLE}.yaml"
        shutil.copyfile(TEMPLATE / f"{EXAMPLE}.yaml", target)
        written.append(target)
    storage.write_text(root / ".gitignore", GITIGNORE)
    write_pipeline_files(root)
    versioned = version and shutil.which("git") is not None
    if versioned:
        initialise_git_and_dvc(root)
    return NewProject(root=root, params=written, versioned=versioned)


def write_pipeline_files(root: Path) -> None:
    """dvc.yaml and prefect.yaml from the project's params/, as `agencyml sync` writes them."""
    directory = root / "params"
    agencies = [load_params(path.stem, directory) for path in sorted(directory.glob("*.yaml"))]
    specs = [params.use_case(name) for params in agencies for name in sorted(params.use_cases)]
    text = dvc_stages.render(agencies, code_deps=dvc_stages.has_code(root))
    storage.write_text(root / dvc_stages.DVC_YAML, text)
    storage.write_text(root / deployments.PREFECT_YAML, deployments.render(specs))


def initialise_git_and_dvc(root: Path) -> None:
    """git init, dvc init, a default DVC remote 'local' in the state directory, one commit."""

    def run(*command: str) -> None:
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            shown = " ".join(command).replace(f"{sys.executable} -m ", "")
            raise DvcError(f"`{shown}` failed in {root}: {done.stderr.strip()[-1500:]}")

    dvc = (sys.executable, "-m", "dvc")
    run("git", "init", "--quiet")
    run(*dvc, "init", "--quiet")
    run(*dvc, "config", "core.analytics", "false")
    run(*dvc, "remote", "add", "--default", "local", ".agencyml/dvc-remote")  # from root
    run("git", "add", "--all")
    run(
        "git",
        "-c",
        "user.name=agencyml init",
        "-c",
        "user.email=init@agencyml.invalid",
        "commit",
        "--quiet",
        "-m",
        "A new agencyml project",
    )
