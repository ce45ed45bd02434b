"""MLflow adapter: the only module that logs runs, registers models and loads them by alias."""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from matplotlib import pyplot as plt
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from pipelines.data.lineage import DataLineage
from pipelines.durable import file_lock
from pipelines.modeling.model import ModelBundle
from pipelines.paths import StateDir

CHAMPION = "champion"
MODEL_CODE = Path(__file__).with_name("tracking_model.py")


class ModelNotFoundError(LookupError):
    """No registered model, or no version under the alias asked for."""


class BatchSchemaError(ValueError):
    """A batch does not match the input schema its model was logged with."""


@dataclass(frozen=True)
class RegisteredModel:
    run_id: str
    name: str
    version: str
    aliases: list[str]


@dataclass(frozen=True)
class ModelRef:
    """A registered model version as the registry names it, without loading the model."""

    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


@dataclass(frozen=True)
class LoadedModel(ModelRef):
    pyfunc: Any
    bundle: ModelBundle


def configure(state: StateDir) -> None:
    """Point MLflow at the tracking store (the state directory's SQLite unless
    AGENCYML_TRACKING_URI names a server); call at run time, never at import."""
    state.mlflow_dir.mkdir(parents=True, exist_ok=True)
    state.artifact_root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(state.tracking_uri)
    mlflow.set_registry_uri(state.tracking_uri)
    if state.tracking_uri.startswith("sqlite:"):
        create_store_once(state)


def create_store_once(state: StateDir) -> None:
    """Open the SQLite store under a lock, so that its tables are created by one process.
    MLflow creates them on first use without a lock: commands started together on a fresh
    state directory ran the same migrations at once and all but one failed."""
    with file_lock(state.mlflow_dir / ".mlflow.db.lock"):
        client = MlflowClient(tracking_uri=state.tracking_uri, registry_uri=state.tracking_uri)
        client.search_experiments(max_results=1)  # the tracking tables (all of them)
        client.search_registered_models(max_results=1)  # the registry's store, now a lookup


def use_experiment(agency: str, state: StateDir, purpose: str = "") -> str:
    """An agency's experiment (training and evaluation), or one beside it for a purpose such
    as scoring, with artifacts where StateDir.artifact_location says. Two commands that make
    it at once (two use cases trained together) both get the one that was made."""
    name = f"agencyml/{agency}" + (f"/{purpose}" if purpose else "")
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return mlflow.create_experiment(
            name, artifact_location=state.artifact_location(agency, purpose)
        )
    except MlflowException:
        experiment = mlflow.get_experiment_by_name(name)  # another process made it first
        if experiment is None:
            raise
        return experiment.experiment_id


@dataclass
class RunRecord:
    """Everything one run records besides a model."""

    run_name: str
    tags: dict[str, str]
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifact_dirs: dict[str, Path] = field(default_factory=dict)
    inputs: list[tuple[pd.DataFrame, DataLineage]] = field(default_factory=list)
    files: list[FileInput] = field(default_factory=list)


@dataclass(frozen=True)
class FileInput:
    """A file logged as a run's input dataset by its digest, without loading it."""

    path: str
    name: str
    digest: str
    context: str

    def dataset(self) -> Any:
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*interpreted in multiple ways")
            source = resolve_dataset_source(self.path)
        # MLflow keeps a short digest; the full sha256 is in the run's tags
        return MetaDataset(source=source, name=self.name, digest=self.digest[:32])


def _log_contents(record: RunRecord) -> None:
    mlflow.set_tags(record.tags)
    if record.params:
        mlflow.log_params(record.params)
    mlflow.log_metrics({k: v for k, v in record.metrics.items() if v == v})  # NaN can't be logged
    for name, figure in record.figures.items():
        mlflow.log_figure(figure, f"plots/{name}")
        plt.close(figure)
    for name, document in record.documents.items():
        mlflow.log_dict(document, name)
    for frame, lineage in record.inputs:
        mlflow.log_input(dataset_of(frame, lineage), context=lineage.name)
    for file in record.files:
        mlflow.log_input(file.dataset(), context=file.context)
    for name, folder in record.artifact_dirs.items():
        if Path(folder).is_dir():
            mlflow.log_artifacts(str(folder), name)


def dataset_of(frame: pd.DataFrame, lineage: DataLineage) -> Any:
    """The table as an MLflow dataset, so it shows in the UI with its source and digest."""
    from mlflow.data.code_dataset_source import CodeDatasetSource

    source = (
        lineage.dataset_source
        if not lineage.dataset_source.startswith("generator:")
        else CodeDatasetSource(tags={"generator": lineage.dataset_source})
    )
    # the digest is DVC's md5 of the file; the table's full sha256 is in the run's tags
    with warnings.catch_warnings():
        # a local path matches MLflow's file source twice over; both readings are the same
        warnings.filterwarnings("ignore", message=".*interpreted in multiple ways")
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        dataset = mlflow.data.from_pandas(
            frame, source=source, name=lineage.name, digest=lineage.dataset_digest
        )
        return with_sampled_schema(dataset, frame)


SCHEMA_ROWS = 1_000


def with_sampled_schema(dataset: Any, frame: pd.DataFrame) -> Any:
    """MLflow infers a dataset's schema from every row when it is logged (2.5 s of a
    60,000-row training). The types come from the columns' dtypes, and an object column's from
    its values, which its first rows show as well: the schema is inferred from those. The
    profile (row and element counts) stays the whole table's."""
    if len(frame) <= SCHEMA_ROWS:
        return dataset
    if not isinstance(type(dataset).__dict__.get("schema"), functools.cached_property):
        return dataset  # another MLflow: let it infer as it does
    try:
        schema = infer_signature(frame.head(SCHEMA_ROWS)).inputs
    except MlflowException:
        return dataset
    dataset.__dict__["schema"] = schema  # where cached_property keeps its value
    return dataset


def log_run(record: RunRecord, experiment_id: str, *, failed: bool = False) -> str:
    """A run without a model: a scored or rejected batch, or training data that failed."""
    # tagged as it is created: a run its process was killed while recording is still found
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=record.run_name, tags=record.tags
    ) as run:
        _log_contents(record)
    if failed:
        MlflowClient().set_terminated(run.info.run_id, status="FAILED")
    return run.info.run_id


def log_training_run(
    record: RunRecord,
    experiment_id: str,
    *,
    model_name: str,
    bundle: ModelBundle,
    input_example: pd.DataFrame,
) -> RegisteredModel:
    """Log one training run and register its model; aliases are the promotion gate's job."""
    with mlflow.start_run(experiment_id=experiment_id, run_name=record.run_name) as run:
        _log_contents(record)
        model_info = _log_bundle(bundle, input_example)
        version = mlflow.register_model(
            model_info.model_uri,
            model_name,
            tags={"agencyml.run_id": run.info.run_id, **record.tags},
        )
    return RegisteredModel(run.info.run_id, model_name, str(version.version), [])


# what the logged model needs to load and predict (tracking_model.py and the bundle's modules)
MODEL_PACKAGES = (
    "agencyml",
    "mlflow",
    "lightgbm",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "scipy",
    "pydantic",
)


def model_requirements() -> list[str]:
    """The model's pip requirements, pinned to what trained it. Declared, because MLflow would
    otherwise infer them by loading the model in a subprocess (3.6 s of every training), and
    its inference left lightgbm out."""
    pinned = []
    for package in MODEL_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):  # agencyml run from a checkout
            pinned.append(f"{package}=={metadata.version(package)}")
    return pinned


def _log_bundle(bundle: ModelBundle, input_example: pd.DataFrame) -> Any:
    output_example = bundle.probability_frame(input_example)
    with warnings.catch_warnings():
        # integer columns stay integers: a batch must send the types the model was trained on
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        signature = infer_signature(input_example, output_example)
    with tempfile.TemporaryDirectory() as folder:
        artifacts = {}
        for key, (name, text) in zip(("booster", "bundle"), bundle.to_texts().items(), strict=True):
            path = Path(folder) / name
            path.write_text(text, encoding="utf-8")
            artifacts[key] = str(path)
        # MLflow copies the model's code with its mode: a copy written here follows the umask
        model_code = Path(folder) / MODEL_CODE.name
        model_code.write_text(MODEL_CODE.read_text(encoding="utf-8"), encoding="utf-8")
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(model_code),
            artifacts=artifacts,
            signature=signature,
            input_example=input_example,
            pip_requirements=model_requirements(),
        )


def find_model(
    model_name: str, state: StateDir, alias: str = CHAMPION, version: str | None = None
) -> ModelRef:
    """Which version models:/<name>@<alias> (or the numbered version) is: a registry lookup,
    nothing loaded, so finding a batch that is already published costs no model load."""
    configure(state)
    client = MlflowClient()
    try:
        if version is None:
            found = client.get_model_version_by_alias(model_name, alias)
        else:
            found = client.get_model_version(model_name, str(version))
    except MlflowException as error:
        wanted = f"@{alias}" if version is None else f" version {version}"
        held = why_no_alias(client, model_name, alias) if version is None else None
        raise ModelNotFoundError(
            f"no model version '{model_name}{wanted}' in the registry. "
            + (
                held
                or f"Train one first: agencyml train --agency {model_name.split('.')[0]} "
                f"--use-case {model_name.split('.', 1)[-1]}"
            )
        ) from error
    return ModelRef(model_name, str(found.version), found.run_id or "")


def why_no_alias(client: MlflowClient, model_name: str, alias: str) -> str | None:
    """When versions were trained but none holds the alias: what the gate said of the newest,
    and what to do. None when the model has no version at all."""
    try:
        versions = client.search_model_versions(f"name = '{model_name}'")
    except MlflowException:
        return None
    if not versions:
        return None
    newest = max(versions, key=lambda v: int(v.version))
    tags = newest.tags or {}
    decision = tags.get("agencyml.gate.decision")
    reason = tags.get("agencyml.gate.reason", "").rstrip(".")
    if decision == "await-approval":
        return (
            f"Version {newest.version} passed the promotion gate and awaits a person's approval: "
            f"agencyml approve {model_name} {newest.version} --by WHO --reason TEXT"
        )
    if decision == "hold":
        return (
            f"{len(versions)} version(s) were trained, but the promotion gate held the newest "
            f"(version {newest.version}): {reason}. Change the model or the use case's "
            "promotion settings in its params file, then train again"
        )
    return (
        f"{len(versions)} version(s) were trained, but none is '@{alias}' (the newest is "
        f"version {newest.version}, gate decision: {decision or 'none recorded'})"
    )


def load_model(
    model_name: str, state: StateDir, alias: str = CHAMPION, version: str | None = None
) -> LoadedModel:
    """Load models:/<name>@<alias> (or one numbered version) as pyfunc, with its bundle."""
    found = find_model(model_name, state, alias, version)
    alias_modules_of_older_releases()
    pyfunc = mlflow.pyfunc.load_model(found.uri)
    bundle = pyfunc.unwrap_python_model().bundle
    return LoadedModel(found.name, found.version, found.run_id, pyfunc, bundle)


def run_plots(run_id: str | None, state: StateDir) -> dict[str, bytes]:
    """The PNG plots a training run logged under plots/, by file name (none if the run is gone),
    for model cards that embed them."""
    if not run_id:
        return {}
    configure(state)
    client = MlflowClient()
    try:
        listed = [a.path for a in client.list_artifacts(run_id, "plots") if a.path.endswith(".png")]
        with tempfile.TemporaryDirectory() as folder, no_download_bars():
            return {
                Path(path).name: Path(client.download_artifacts(run_id, path, folder)).read_bytes()
                for path in listed
            }
    except (MlflowException, OSError):
        return {}


@contextlib.contextmanager
def no_download_bars() -> Iterator[None]:
    """No MLflow progress bar for downloading two small files."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def load_bundle(
    model_name: str, state: StateDir, alias: str = CHAMPION, version: str | None = None
) -> tuple[ModelRef, ModelBundle]:
    """The version's bundle (booster, transform, policy, training profile) read from its two
    artifact files, without loading the logged pyfunc (about 2 s): for what needs the model's
    facts, not its signature check, e.g. the profile a batch is validated against."""
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

    found = find_model(model_name, state, alias, version)
    repository = ModelsArtifactRepository(found.uri)
    with tempfile.TemporaryDirectory() as folder, no_download_bars():
        texts = {}
        for artifact in repository.list_artifacts("artifacts"):
            local = repository.download_artifacts(artifact.path, dst_path=folder)
            texts[Path(artifact.path).name] = Path(local).read_text(encoding="utf-8")
    return found, ModelBundle.from_texts(texts)


# A logged model runs its own copy of tracking_model.py, which imports the bundle's module by
# the name it had when the model was logged; registered models must keep loading after a move.
MODULES_OF_OLDER_RELEASES = {"pipelines.model": "pipelines.modeling.model"}


def alias_modules_of_older_releases() -> None:
    for old, current in MODULES_OF_OLDER_RELEASES.items():
        if old not in sys.modules:
            sys.modules[old] = importlib.import_module(current)


def predict(model: LoadedModel, batch: pd.DataFrame) -> pd.DataFrame:
    """Probabilities through the pyfunc, so the logged signature checks the batch's schema."""
    columns = model.bundle.transform.input_columns
    try:
        return model.pyfunc.predict(batch[columns])
    except MlflowException as error:
        raise BatchSchemaError(
            f"the batch does not match the input schema of {model.name} v{model.version}: "
            f"{schema_problem(error.message)}"
        ) from error


def find_run(tags: dict[str, str]) -> str | None:
    """The newest finished run, in any experiment, with all these tags; None if none."""
    runs = _runs_tagged(tags, "FINISHED", max_results=1)
    return runs[0].info.run_id if runs else None


def close_unfinished_runs(tags: dict[str, str]) -> list[str]:
    """Mark KILLED the runs with all these tags that are still RUNNING; returns their ids.
    Call it only under the lock their recording held, so that none of them is live."""
    client = MlflowClient()
    runs = _runs_tagged(tags, "RUNNING", max_results=100)
    for run in runs:
        client.set_terminated(run.info.run_id, status="KILLED")
    return [run.info.run_id for run in runs]


def _runs_tagged(tags: dict[str, str], status: str, max_results: int) -> list[Any]:
    client = MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    wanted = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    return list(
        client.search_runs(
            experiments,
            filter_string=f"{wanted} and attributes.status = '{status}'",
            order_by=["attributes.start_time DESC"],
            max_results=max_results,
        )
    )


def schema_problem(message: str) -> str:
    """MLflow's schema errors quote the whole batch; keep only the sentence that matters."""
    found = re.search(r"Error: (.*)$", message, flags=re.S)
    return " ".join((found.group(1) if found else message).split())[:500]


@dataclass(frozen=True)
class VersionFacts:
    name: str
    version: str
    run_id: str
    tags: dict[str, str]
    metrics: dict[str, float]


def version_facts(model_name: str, version: str, state: StateDir) -> VersionFacts:
    """What the registry holds about one model version and the run that trained it."""
    model_version = _model_version(model_name, version, state)
    run = MlflowClient().get_run(model_version.run_id)
    return VersionFacts(
        model_name, str(version), model_version.run_id, dict(run.data.tags), dict(run.data.metrics)
    )


def latest_version_facts(model_name: str, state: StateDir) -> VersionFacts:
    configure(state)
    versions = MlflowClient().search_model_versions(f"name='{model_name}'")
    if not versions:
        raise ModelNotFoundError(f"no versions of model '{model_name}' at {state.tracking_uri}")
    newest = max(versions, key=lambda v: int(v.version))
    return version_facts(model_name, str(newest.version), state)


@dataclass(frozen=True)
class VersionEntry:
    name: str
    version: str
    tags: dict[str, str]
    aliases: list[str]
    registered_ms: int


def versions_tagged_any(state: StateDir, model_name: str) -> list[VersionEntry]:
    """Every version of one model, with its tags and aliases."""
    configure(state)
    return [
        VersionEntry(
            str(v.name),
            str(v.version),
            dict(v.tags),
            list(v.aliases),
            int(v.creation_timestamp or 0),
        )
        for v in MlflowClient().search_model_versions(f"name='{model_name}'", max_results=1000)
    ]


def versions_tagged(state: StateDir, key: str, value: str) -> list[VersionEntry]:
    """Every registered version, of any model, whose tag `key` is `value`."""
    configure(state)
    client = MlflowClient()
    found = []
    for model in client.search_registered_models(max_results=1000):
        for version in client.search_model_versions(f"name='{model.name}'", max_results=1000):
            if version.tags.get(key) == value:
                found.append(
                    VersionEntry(
                        str(version.name),
                        str(version.version),
                        dict(version.tags),
                        list(version.aliases),
                        int(version.creation_timestamp or 0),
                    )
                )
    return found


# --- aliases and version tags: the registry's moving parts -----------------------------------


def alias_version(model_name: str, alias: str, state: StateDir) -> str | None:
    """The version an alias points at, or None when the alias (or the model) does not exist."""
    configure(state)
    try:
        return str(MlflowClient().get_model_version_by_alias(model_name, alias).version)
    except MlflowException:
        return None


def set_alias(model_name: str, alias: str, version: str, state: StateDir) -> None:
    configure(state)
    MlflowClient().set_registered_model_alias(model_name, alias, str(version))


def remove_alias(model_name: str, alias: str, state: StateDir) -> None:
    configure(state)
    with contextlib.suppress(MlflowException):
        MlflowClient().delete_registered_model_alias(model_name, alias)


def set_version_tags(model_name: str, version: str, tags: dict[str, str], state: StateDir) -> None:
    configure(state)
    client = MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(model_name, str(version), key, value[:5000])


def set_version_description(
    model_name: str, version: str, description: str, state: StateDir
) -> None:
    configure(state)
    MlflowClient().update_model_version(model_name, str(version), description=description)


def version_aliases(model_name: str, version: str, state: StateDir) -> list[str]:
    return list(_model_version(model_name, version, state).aliases)


def model_version_tags(model_name: str, version: str, state: StateDir) -> dict[str, str]:
    return dict(_model_version(model_name, version, state).tags)


def _model_version(model_name: str, version: str, state: StateDir) -> Any:
    configure(state)
    try:
        return MlflowClient().get_model_version(model_name, str(version))
    except MlflowException as error:
        raise ModelNotFoundError(
            f"no version {version} of model '{model_name}' in the registry at {state.tracking_uri}"
        ) from error


def log_texts(run_id: str, texts: dict[str, str], state: StateDir) -> None:
    """Write text artifacts to an existing (possibly finished) run, e.g. a refreshed card."""
    configure(state)
    client = MlflowClient()
    for artifact_file, text in texts.items():
        client.log_text(run_id, text, artifact_file)
