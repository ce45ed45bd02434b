"""Whether a registered version's model files are still the ones it was registered with: their
hash, made as at training, against the version's recorded `agencyml.model_sha256`.

Only reads the registry and the artifact store, through `MlflowClient` after `tracking.configure`
(as trace.py does)."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository
from mlflow.tracking import MlflowClient

from pipelines.modeling.model import BOOSTER_FILE, BUNDLE_FILE
from pipelines.paths import StateDir
from pipelines.registry import tracking

SHA_TAG = "agencyml.model_sha256"
MODEL_FILES = (BOOSTER_FILE, BUNDLE_FILE)


@dataclass(frozen=True)
class ModelVersionFiles:
    name: str
    version: str
    recorded: str | None
    problem: str | None  # None when the files hash to what was recorded


def files_sha256(contents: dict[str, bytes]) -> str:
    """The digest ModelBundle.sha256 makes of the model's texts, from the files' bytes."""
    digest = hashlib.sha256()
    for name, data in sorted(contents.items()):
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()


def registered_models(state: StateDir, agency: str | None = None) -> list[str]:
    """The registry's model names (`agency.use_case`), of one agency when named, sorted."""
    tracking.configure(state)
    names = [model.name for model in MlflowClient().search_registered_models(max_results=1000)]
    return sorted(n for n in names if agency is None or n.split(".", 1)[0] == agency)


def check_versions(model_name: str, state: StateDir) -> list[ModelVersionFiles]:
    """Every version of the model, its model files hashed against its recorded sha256."""
    tracking.configure(state)
    versions = MlflowClient().search_model_versions(f"name='{model_name}'", max_results=1000)
    checked = []
    for found in sorted(versions, key=lambda v: int(v.version)):
        recorded = found.tags.get(SHA_TAG)
        problem = version_problem(model_name, str(found.version), recorded)
        checked.append(ModelVersionFiles(model_name, str(found.version), recorded, problem))
    return checked


def version_problem(model_name: str, version: str, recorded: str | None) -> str | None:
    """Why the version's model files do not match its record, or None when they do."""
    if not recorded:
        return f"the version records no {SHA_TAG}, so its files cannot be checked"
    repository = ModelsArtifactRepository(f"models:/{model_name}/{version}")
    contents: dict[str, bytes] = {}
    scratch = tempfile.TemporaryDirectory(prefix="agencyml-verify-")
    with scratch as folder, tracking.no_download_bars():
        try:
            for name in MODEL_FILES:
                local = repository.download_artifacts(f"artifacts/{name}", dst_path=folder)
                contents[name] = Path(local).read_bytes()
        except (MlflowException, OSError) as error:
            missing = sorted(set(MODEL_FILES) - set(contents))
            return f"its model files ({', '.join(missing)}) cannot be read: {error}"
    actual = files_sha256(contents)
    if actual != recorded:
        return (
            f"its model files hash to {actual}, but {recorded} was recorded at training: the "
            "files in the artifact store were changed"
        )
    return None
