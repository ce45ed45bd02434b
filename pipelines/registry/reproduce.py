"""Reproducing a registered model from its recorded commit, to check its metrics exactly."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.data.versioning import DataIntegrityError, DvcError, restore_file, temporary_worktree
from pipelines.paths import StateDir, project_root
from pipelines.registry import tracking

# Facts that must match too: the same data and the same params, not only the same numbers.
COMPARED_TAGS = (
    "agencyml.data.training.md5",
    "agencyml.data.training.digest",
    "agencyml.params_sha256",
    "agencyml.model_sha256",
)


class ReproductionError(RuntimeError):
    """The model version cannot be retrained from what was recorded."""


@dataclass(frozen=True)
class Reproduction:
    model_name: str
    version: str
    commit: str
    recorded: dict[str, float]
    reproduced: dict[str, float]
    recorded_tags: dict[str, str] = field(default_factory=dict)
    reproduced_tags: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def mismatches(self) -> list[str]:
        keys = sorted(set(self.recorded) | set(self.reproduced))
        differing = [k for k in keys if self.recorded.get(k) != self.reproduced.get(k)]
        differing += [
            t for t in COMPARED_TAGS if self.recorded_tags.get(t) != self.reproduced_tags.get(t)
        ]
        return differing

    @property
    def matches(self) -> bool:
        return not self.mismatches()


def reproduce_model(model_name: str, version: str, state: StateDir) -> Reproduction:
    """Check out the recorded commit in a temporary worktree, retrain there with a scratch
    state directory, and compare metrics, data digest and params hash with the record."""
    recorded = tracking.version_facts(model_name, version, state)
    commit = recorded.tags.get("agencyml.git_commit", "unknown")
    if commit == "unknown":
        raise ReproductionError(f"{model_name} v{version} records no git commit to reproduce from")
    notes = []
    if recorded.tags.get("agencyml.git_dirty") == "true":
        notes.append("trained from a working tree with uncommitted changes; the commit may differ")
    agency, use_case = recorded.tags["agencyml.agency"], recorded.tags["agencyml.use_case"]
    with temporary_worktree(project_root(), commit) as tree, tempfile.TemporaryDirectory() as tmp:
        notes += restore_training_data(tree, recorded.tags)
        scratch = StateDir(Path(tmp) / "state")
        retrain(tree, scratch, agency, use_case)
        reproduced = tracking.latest_version_facts(model_name, scratch)
    return Reproduction(
        model_name,
        str(version),
        commit,
        recorded.metrics,
        reproduced.metrics,
        recorded.tags,
        reproduced.tags,
        notes,
    )


def restore_training_data(tree: Path, tags: dict[str, str]) -> list[str]:
    """Put the training data back into the worktree from its recorded DVC path and md5."""
    prefix = "agencyml.data.training"
    path, md5 = tags.get(f"{prefix}.dvc_path"), tags.get(f"{prefix}.md5")
    status, stage = tags.get(f"{prefix}.dvc_status"), tags.get(f"{prefix}.dvc_stage", "none")
    if path is None or md5 is None:
        return ["no DVC record of the training data; it is re-ingested from the commit's sources"]
    if status == "untracked" or stage == "none":
        return [
            f"{path} was not versioned by DVC when trained; it is re-ingested from the commit's "
            "sources and compared by md5"
        ]
    try:
        restore_file(tree, project_root(), path, md5, stage)
    except (DvcError, DataIntegrityError) as error:
        # DVC trusts its cache: a corrupt object there is fetched again from the remote alone
        return restore_from_remote(tree, path, md5, stage, error)
    return [f"restored {path} (md5 {md5}) with DVC"]


def restore_from_remote(
    tree: Path, path: str, md5: str, stage: str, first: DvcError | DataIntegrityError
) -> list[str]:
    """The second try of a restore that the cache failed: an empty cache inside the worktree
    (removed with it), so DVC fetches the file from the default remote and checks its md5."""
    fresh_cache = tree / ".dvc" / "cache-from-remote"
    try:
        restore_file(tree, project_root(), path, md5, stage, cache=fresh_cache)
    except DvcError as error:
        raise ReproductionError(
            f"cannot restore {path} (md5 {md5}): DVC found no intact copy in the cache or on "
            "the remote. Either it was never pushed (run `dvc push` in the repository the model "
            "was trained in), or the copy there is corrupt: DVC checks the md5 of what it "
            f"fetches and refuses a mismatch. DVC said: {error}"
        ) from error
    except DataIntegrityError as error:
        raise ReproductionError(
            f"cannot restore {path} (md5 {md5}): neither the DVC cache nor the remote holds an "
            f"intact copy ({error}). Push one from a checkout that has it (`dvc push`)"
        ) from error
    why = "is corrupt" if isinstance(first, DataIntegrityError) else "could not be checked out"
    return [
        f"restored {path} (md5 {md5}) from the DVC remote: the copy in the cache {why} "
        "(`agencyml verify` lists corrupt cache objects)"
    ]


def retrain(tree: Path, scratch: StateDir, agency: str, use_case: str) -> None:
    """Train with the worktree's own code, params and data, into a scratch state."""
    env = {
        **os.environ,
        "AGENCYML_PROJECT_ROOT": str(tree),
        "AGENCYML_HOME": str(scratch.root),
        "PREFECT_HOME": str(scratch.root / "prefect"),
        "PYTHONPATH": os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]),
        # Prefect's temporary server: a background one would outlive the scratch state
        "AGENCYML_PREFECT_SERVER": "temporary",
    }
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, "-m", "flows", "train", "--agency", agency, "--use-case", use_case]
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ReproductionError(
            f"retraining {agency}.{use_case} at the recorded commit failed "
            f"(exit {done.returncode}):\n{done.stderr[-2000:]}"
        )
