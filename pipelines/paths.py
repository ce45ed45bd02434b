"""Where things live: the project root and the state directory, defined once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipelines.settings import settings

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
PROJECT_MARKER = "params"


class ProjectNotFoundError(LookupError):
    """No agencyml project here: no params/ folder in the working directory or above it."""


def project_root() -> Path:
    """The project that holds params/ and data/: AGENCYML_PROJECT_ROOT, else the nearest
    folder with params/ from the working directory up (never where the package is
    installed)."""
    override = settings().project_root
    if override is not None:
        root = override.expanduser().resolve()
        if not root.is_dir():
            raise ProjectNotFoundError(
                f"AGENCYML_PROJECT_ROOT={override} is not a folder. Point it at a project "
                "(a folder with params/), or create one with `agencyml init DIR`."
            )
        return root
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_MARKER).is_dir():
            return folder
    raise ProjectNotFoundError(
        f"no agencyml project here: neither {here} nor a folder above it has a params/ folder. "
        "Create one with `agencyml init DIR` and run commands inside it, or set "
        "AGENCYML_PROJECT_ROOT to an existing project."
    )


@dataclass(frozen=True)
class StateDir:
    """The platform's state: MLflow, Prefect, scored outputs and DVC's local remote."""

    root: Path

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def tracking_uri(self) -> str:
        """MLflow's tracking and registry store: AGENCYML_TRACKING_URI (a shared MLflow server,
        e.g. http://mlflow:5000), or SQLite in the state directory."""
        return settings().tracking_uri or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    def artifact_location(self, agency: str, purpose: str = "") -> str | None:
        """Where a new experiment keeps its artifacts: under AGENCYML_ARTIFACT_ROOT (e.g.
        s3://bucket/agencyml), else the tracking server's own default, else the state
        directory."""
        parts = [agency, purpose] if purpose else [agency]
        configured = settings()
        if configured.artifact_root:
            return "/".join([configured.artifact_root.rstrip("/"), *parts])
        if (configured.tracking_uri or "").startswith(("http://", "https://")):
            return None  # the server stores (or proxies) artifacts where it is told to
        return self.artifact_root.joinpath(*parts).as_uri()

    @property
    def artifact_root(self) -> Path:
        return self.mlflow_dir / "artifacts"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def outputs_dir(self) -> Path:
        return self.root / "outputs"

    @property
    def inbox_dir(self) -> Path:
        return self.root / "inbox"

    @property
    def scratch_dir(self) -> Path:
        """Working files of one command, removed when it ends (e.g. the gate's batch file)."""
        return self.root / "scratch"

    @property
    def samples_dir(self) -> Path:
        return self.root / "samples"

    def inbox(self, agency: str, use_case: str) -> Path:
        """Where batch files for a use case are dropped to be scored automatically."""
        return self.inbox_dir / agency / use_case

    def training_lock(self, agency: str, use_case: str) -> Path:
        """The lock a training holds: one training of a model at a time, however started."""
        return self.root / "locks" / "training" / agency / f"{use_case}.lock"

    def gx_lock(self, agency: str) -> Path:
        """The lock held while a command reads or writes an agency's GX project: GX rewrites
        its great_expectations.yml and stores in place, so a reader beside a writer could see a
        file cut short."""
        return self.root / "locks" / "gx" / f"{agency}.lock"

    def inbox_lock(self, agency: str, use_case: str) -> Path:
        """The lock one inbox poll holds while it works through a use case's inbox."""
        return self.root / "locks" / "inbox" / agency / f"{use_case}.lock"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    def quarantine(self, agency: str, use_case: str) -> Path:
        return self.quarantine_dir / agency / use_case

    @property
    def dvc_remote(self) -> Path:
        return self.root / "dvc-remote"

    def output_dir(self, agency: str, use_case: str) -> Path:
        return self.outputs_dir / agency / use_case

    def batch_lock(self, agency: str, use_case: str, batch_id: str) -> Path:
        """The lock file one run holds while it scores a batch (outside the output area)."""
        return self.root / "locks" / "batches" / agency / use_case / f"{batch_id}.lock"


def state_dir() -> StateDir:
    """The state directory: AGENCYML_HOME, or .agencyml/ in the project."""
    override = settings().home
    root = override.expanduser() if override else project_root() / ".agencyml"
    return StateDir(root.resolve())
