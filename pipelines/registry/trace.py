"""Lineage for auditors: from a scored batch (or a model version) back to the code, params, data
and validation evidence that produced it, with the MLflow ids to open each step in the UI.

Every link is followed through what MLflow and the state directory hold. A link that cannot be
followed (a deleted run, an artifact never logged, a tag that is absent) is written into the
node's `missing` list instead of raising, so an auditor sees the whole tree and where it breaks.

This module talks to MLflow through `MlflowClient` directly (after `tracking.configure`), because
it only reads: runs, artifacts, dataset inputs and registry entries that tracking.py wrote."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mlflow.entities import Run, ViewType
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from rich.text import Text
from rich.tree import Tree

from pipelines.data import integrity
from pipelines.data.storage import file_sha256
from pipelines.paths import StateDir, project_root
from pipelines.registry import tracking
from pipelines.registry.tracking import ModelNotFoundError
from pipelines.settings import settings

BATCH_TAG = "agencyml.batch_id"
DATA_TAG_PREFIX = "agencyml.data."
SCORING_MANIFEST = "manifest.json"
SCORING_VALIDATION = "validation/scoring_batch.json"
TRAINING_VALIDATION = "validation/training_data.json"
REJECTED_VALIDATION = "validation/score_data.json"  # a batch the gate rejected
REJECTION_REPORT = "quarantine/report.json"
DATA_DOCS = "validation/data_docs"
DATA_DOCS_INDEX = f"{DATA_DOCS}/index.html"
USE_CASE_PARAMS = "params/use_case.json"
MODEL_CARD = "model_card/model_card.html"
# Metrics shown on a training run node; the full set is in MLflow.
HEADLINE_METRICS = ("roc_auc", "pr_auc", "macro_f1", "accuracy", "log_loss", "brier")
# Dataset facts, in the order an auditor reads them.
DATASET_FIELDS = (
    "dvc_path",
    "md5",
    "dvc_md5",
    "dvc_stage",
    "dvc_status",
    "dvc_remote",
    "dvc_remote_url",
    "source",
    "file_sha256",
    "rows",
    "digest",
)
BATCH_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class BatchNotFoundError(LookupError):
    """No scoring run and no published directory carries the batch id asked for."""


@dataclass
class LineageNode:
    """One step of the lineage: what it is, the ids to open it in MLflow, what it records, what
    it came from, and which links that should exist could not be followed."""

    kind: str
    label: str
    ids: dict[str, str] = field(default_factory=dict)
    facts: dict[str, str] = field(default_factory=dict)
    children: list[LineageNode] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def walk(self) -> Iterator[LineageNode]:
        """This node, then every node below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, kind: str) -> list[LineageNode]:
        """Every node of one kind in the tree, e.g. all 'dataset' nodes."""
        return [node for node in self.walk() if node.kind == kind]

    def complete(self) -> bool:
        """True when no node in the tree has a link that could not be followed."""
        return not any(node.missing for node in self.walk())

    def for_people(self) -> LineageNode:
        """The tree as pages and the terminal show it: the gate's whole verdict (a long JSON
        tag) and the audit entries are left to the model card and `--json`; the gate's reason
        and the approval are in the approval node."""
        return LineageNode(
            kind=self.kind,
            label=self.label,
            ids=dict(self.ids),
            facts={
                key: value
                for key, value in self.facts.items()
                if key != "tag agencyml.gate.result" and not key.startswith("tag agencyml.audit.")
            },
            children=[child.for_people() for child in self.children],
            missing=list(self.missing),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only, for `--json` output and for archiving with an audit."""
        return {
            "kind": self.kind,
            "label": self.label,
            "ids": dict(self.ids),
            "facts": dict(self.facts),
            "missing": list(self.missing),
            "children": [child.to_dict() for child in self.children],
        }


# --- reading MLflow ----------------------------------------------------------------------------


def mlflow_ui_url() -> str:
    """Where people open MLflow's UI: AGENCYML_MLFLOW_UI_URL, default `agencyml ui`'s."""
    return settings().mlflow_ui_url.rstrip("/")


def client_for(state: StateDir) -> MlflowClient:
    """A client on the state directory's store: the registry and runs are in the same SQLite."""
    tracking.configure(state)
    return MlflowClient(state.tracking_uri, state.tracking_uri)


def run_ui_path(experiment_id: str, run_id: str) -> str:
    return f"#/experiments/{experiment_id}/runs/{run_id}"


def version_ui_path(model_name: str, version: str) -> str:
    return f"#/models/{quote(model_name, safe='')}/versions/{version}"


def get_run(client: MlflowClient, run_id: str) -> Run | None:
    """The run, or None when it was deleted or never existed."""
    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def get_version(client: MlflowClient, model_name: str, version: str) -> ModelVersion | None:
    try:
        return client.get_model_version(model_name, str(version))
    except MlflowException:
        return None


def artifact_exists(client: MlflowClient, run_id: str, path: str) -> bool:
    """Whether the run logged a file or folder at `path` (listing the parent, not downloading)."""
    parent = path.rsplit("/", 1)[0] if "/" in path else None
    try:
        return any(item.path == path for item in client.list_artifacts(run_id, parent))
    except (MlflowException, OSError):
        return False


def read_json_artifact(client: MlflowClient, run_id: str, path: str) -> dict[str, Any] | None:
    """A JSON document the run logged, or None when it is absent or unreadable."""
    if not artifact_exists(client, run_id, path):
        return None
    with tempfile.TemporaryDirectory(prefix="agencyml-trace-") as folder:
        try:
            local = client.download_artifacts(run_id, path, folder)
            document = json.loads(Path(local).read_text(encoding="utf-8"))
        except (MlflowException, OSError, ValueError):
            return None
    return document if isinstance(document, dict) else None


def timestamp(milliseconds: int | None) -> str:
    if not milliseconds:
        return "not recorded"
    return datetime.fromtimestamp(milliseconds / 1000, UTC).isoformat(timespec="seconds")


def show(value: Any) -> str:
    """Facts are text: None is 'not recorded', booleans are yes/no, floats get 4 decimals."""
    if value is None:
        return "not recorded"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


# --- the batch end -----------------------------------------------------------------------------


def trace_batch(batch_id: str, state: StateDir) -> LineageNode:
    """The lineage of one scored batch: scoring run, model version, training run and what the
    training run was made from. Raises BatchNotFoundError when nothing knows the batch id."""
    client = client_for(state)
    runs = scoring_runs(client, batch_id)
    published = published_manifests(state, batch_id)
    if not runs and not published:
        raise BatchNotFoundError(not_found_message(batch_id, state))
    run = preferred_run(runs)
    if run is not None and is_rejected(run) and not published:
        return rejected_batch_node(client, batch_id, run, state)
    run_manifest = read_json_artifact(client, run.info.run_id, SCORING_MANIFEST) if run else None
    node = batch_node(batch_id, run, run_manifest, published, state)
    if run is None:
        node.missing.append(
            f"no scoring run in {state.tracking_uri} has the tag {BATCH_TAG}={batch_id}; the "
            "batch was published but its run was deleted, or it was recorded in another store"
        )
        return node
    if len(runs) > 1:
        node.facts["scoring runs with this batch id"] = (
            f"{len(runs)}: {', '.join(r.info.run_id for r in runs)} (shown: {run.info.run_id})"
        )
    node.children.append(scoring_run_node(client, run, run_manifest, state))
    return node


def scoring_runs(client: MlflowClient, batch_id: str) -> list[Run]:
    """Runs tagged with the batch id, in every experiment (active or deleted), newest first."""
    if not BATCH_ID_PATTERN.fullmatch(batch_id):
        return []
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    if not experiments:
        return []
    return list(
        client.search_runs(
            experiments,
            filter_string=f"tags.`{BATCH_TAG}` = '{batch_id}'",
            run_view_type=ViewType.ALL,
            order_by=["attributes.start_time DESC"],
        )
    )


def is_rejected(run: Run) -> bool:
    """A run the validation gate failed: it recorded the evidence, but nothing was scored."""
    return run.data.tags.get("agencyml.validation") == "failed"


def preferred_run(runs: list[Run]) -> Run | None:
    """The run that published the batch; a rejected run (validation failed) only when no run
    published it, since a rejected batch id never reaches the outputs."""
    published = [run for run in runs if run.info.status == "FINISHED" and not is_rejected(run)]
    return (published or runs or [None])[0]


def published_manifests(state: StateDir, batch_id: str) -> dict[Path, dict[str, Any]]:
    """Published batch directories named by the id: <outputs>/<agency>/<use case>/<batch id>."""
    if not BATCH_ID_PATTERN.fullmatch(batch_id) or not state.outputs_dir.is_dir():
        return {}
    found: dict[Path, dict[str, Any]] = {}
    for manifest in sorted(state.outputs_dir.glob(f"*/*/{batch_id}/{SCORING_MANIFEST}")):
        try:
            document = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            document = {}
        found[manifest.parent] = document if isinstance(document, dict) else {}
    return found


def known_batch_ids(state: StateDir, limit: int = 5) -> list[str]:
    """The most recently published batch ids, to show when an id is not found."""
    if not state.outputs_dir.is_dir():
        return []
    folders = [p.parent for p in state.outputs_dir.glob(f"*/*/*/{SCORING_MANIFEST}")]
    folders.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    return [f"{p.name} ({p.parent.parent.name}/{p.parent.name})" for p in folders[:limit]]


def not_found_message(batch_id: str, state: StateDir) -> str:
    known = known_batch_ids(state)
    listing = (
        "Recently published: " + ", ".join(known)
        if known
        else "No batch has been published in this state directory yet."
    )
    return (
        f"no batch '{batch_id}': no MLflow run in {state.tracking_uri} has the tag "
        f"{BATCH_TAG}='{batch_id}', and no folder {state.outputs_dir}/<agency>/<use case>/"
        f"{batch_id} exists. Published batches are the folders under {state.outputs_dir} "
        f"(`ls {state.outputs_dir}/*/*`), and scoring runs carry the batch id as a tag "
        f"(MLflow UI search: tags.\"{BATCH_TAG}\" = '<id>'). Check AGENCYML_HOME points at the "
        f"state directory that scored it. {listing}"
    )


def batch_node(
    batch_id: str,
    run: Run | None,
    run_manifest: dict[str, Any] | None,
    published: dict[Path, dict[str, Any]],
    state: StateDir,
) -> LineageNode:
    """The batch as its manifests describe it, with the published folder checked against the
    manifest the scoring run logged."""
    node = LineageNode(kind="scored batch", label=batch_id, ids={"batch_id": batch_id})
    manifest = run_manifest or next(iter(published.values()), {})
    tags = run.data.tags if run else {}
    agency = manifest.get("agency") or tags.get("agencyml.agency")
    use_case = manifest.get("use_case") or tags.get("agencyml.use_case")
    node.facts.update(manifest_facts(manifest, agency, use_case))
    if run is not None and run_manifest is None:
        node.missing.append(
            f"scoring run {run.info.run_id} has no {SCORING_MANIFEST} artifact; facts come from "
            "the published folder only"
        )
    expected = state.output_dir(agency, use_case) / batch_id if agency and use_case else None
    folder = expected if expected in published else next(iter(published), None)
    if folder is None:
        where = expected or f"{state.outputs_dir}/<agency>/<use case>/{batch_id}"
        node.missing.append(f"the published batch folder {where} does not exist (deleted or moved)")
        return node
    node.facts["output path"] = str(folder)
    listed = published[folder].get("files") or ["scored.parquet"]
    scored = [name for name in listed if name.startswith("scored")]
    absent = [name for name in listed if not (folder / name).is_file()]
    node.facts["scored file"] = (
        "missing"
        if set(scored) & set(absent)
        else str(folder / scored[0])
        if len(scored) == 1
        else f"{folder / 'scored'} ({len(scored)} parts)"
    )
    node.missing += [f"{folder / name} does not exist" for name in absent]
    damaged = integrity.damage(folder, published[folder])
    node.missing += [
        f"{folder / name}: {problem}" for name, problem in damaged.items() if name not in absent
    ]
    if damaged.keys() - set(absent):
        node.facts["files intact"] = "no: `agencyml verify` lists the damage"
    elif integrity.recorded_hashes(published[folder]):
        node.facts["files intact"] = "yes (each file has the sha256 its manifest records)"
    drift = folder / "drift.html"
    node.facts["drift report"] = str(drift) if drift.is_file() else "not written"
    if run_manifest is not None and published[folder] != run_manifest:
        differing = sorted(
            key
            for key in set(run_manifest) | set(published[folder])
            if run_manifest.get(key) != published[folder].get(key)
        )
        node.missing.append(
            f"{folder / SCORING_MANIFEST} differs from the manifest logged on the scoring run "
            f"({', '.join(differing)}); the published folder was changed after scoring"
        )
    return node


def rejected_batch_node(
    client: MlflowClient, batch_id: str, run: Run, state: StateDir
) -> LineageNode:
    """A batch the gate rejected: its lineage ends at the run that recorded why, and the
    quarantined input. No model scored it, so there is no model version to follow."""
    tags = run.data.tags
    agency, use_case = tags.get("agencyml.agency"), tags.get("agencyml.use_case")
    report = read_json_artifact(client, run.info.run_id, REJECTION_REPORT)
    node = LineageNode(kind="rejected batch", label=batch_id, ids={"batch_id": batch_id})
    node.facts.update(manifest_facts(report or {}, agency, use_case))
    node.facts["outcome"] = "rejected by the validation gate: nothing was scored or published"
    node.facts["problems"] = "; ".join(map(str, (report or {}).get("rejected", []))) or "see run"
    if report is None:
        node.missing.append(f"run {run.info.run_id} has no {REJECTION_REPORT} artifact")
    if agency and use_case:
        folder = state.quarantine(agency, use_case) / batch_id
        node.facts["quarantine"] = str(folder)
        if not (folder / "report.json").is_file():
            node.missing.append(f"the quarantined input {folder} does not exist (deleted?)")
    scoring = run_node("scoring run", client, run)
    scoring.facts["validation result id"] = tags.get("agencyml.validation_result_id", "none")
    scoring.children.append(validation_node(client, run, REJECTED_VALIDATION, docs_required=False))
    node.children.append(scoring)
    return node


def mapping(value: Any) -> dict[str, Any]:
    """A manifest's sub-document, or {} when it is absent or not an object (edited by hand)."""
    return value if isinstance(value, dict) else {}


def manifest_facts(manifest: dict[str, Any], agency: Any, use_case: Any) -> dict[str, str]:
    """What a batch manifest (or a rejection report, whose 'rows' is a count) says."""
    rows = manifest.get("rows")
    counts = mapping(rows) or {"in": rows}
    given = mapping(manifest.get("input"))
    facts = {
        "agency": show(agency),
        "use case": show(use_case),
        "input path": show(given.get("path")),
        "input sha256": show(given.get("sha256")),
        "rows in": show(counts.get("in")),
    }
    if "created_at" in manifest:  # a published batch
        facts["rows scored"] = show(counts.get("scored"))
        facts["rows quarantined"] = show(counts.get("quarantined"))
        facts["scored at"] = show(manifest.get("created_at"))
    if given.get("dvc_path"):
        facts["input kept with DVC"] = f"{given['dvc_path']} (md5 {given.get('dvc_md5')})"
    if manifest.get("quarantine"):
        facts["quarantine"] = str(manifest["quarantine"])
    decisions = mapping(mapping(manifest.get("scores")).get("decisions"))
    if decisions:
        facts["decisions"] = ", ".join(f"{k}: {v}" for k, v in decisions.items())
    return facts


def scoring_run_node(
    client: MlflowClient, run: Run, manifest: dict[str, Any] | None, state: StateDir
) -> LineageNode:
    """The run that recorded the batch, its validation evidence, and the version it used."""
    tags = run.data.tags
    node = run_node("scoring run", client, run)
    node.facts["validation result id"] = tags.get("agencyml.validation_result_id", "not recorded")
    node.facts["git commit at scoring"] = tags.get("agencyml.git_commit", "not recorded")
    for name, value in sorted(run.data.metrics.items()):
        node.facts[name] = show(int(value) if float(value).is_integer() else value)
    node.children.append(validation_node(client, run, SCORING_VALIDATION, docs_required=False))
    model = mapping(mapping(manifest).get("model"))
    name = tags.get("agencyml.model_name") or model.get("name")
    version = tags.get("agencyml.model_version") or model.get("version")
    if not name or not version:
        node.missing.append(
            "the run records no model name and version (tags agencyml.model_name and "
            "agencyml.model_version), so the model that scored the batch cannot be followed"
        )
        return node
    found = get_version(client, name, str(version))
    if found is None:
        node.missing.append(
            f"model version {name} v{version} is not in the registry at {state.tracking_uri} "
            "(deleted?)"
        )
        return node
    recorded_run = tags.get("agencyml.model_run_id") or model.get("run_id")
    if recorded_run and found.run_id and recorded_run != found.run_id:
        node.missing.append(
            f"the run says the model came from run {recorded_run}, but {name} v{version} in the "
            f"registry was trained by run {found.run_id}: the version was re-registered"
        )
    node.children.append(model_version_node(client, found))
    return node


def run_node(kind: str, client: MlflowClient, run: Run) -> LineageNode:
    info = run.info
    experiment = experiment_name(client, info.experiment_id)
    return LineageNode(
        kind=kind,
        label=info.run_name or info.run_id,
        ids={
            "run_id": info.run_id,
            "experiment_id": str(info.experiment_id),
            "ui_path": run_ui_path(info.experiment_id, info.run_id),
        },
        facts={
            "experiment": experiment,
            "status": str(info.status),
            "started": timestamp(info.start_time),
            **({"lifecycle": "deleted"} if info.lifecycle_stage == "deleted" else {}),
        },
    )


def experiment_name(client: MlflowClient, experiment_id: str) -> str:
    try:
        return client.get_experiment(experiment_id).name
    except MlflowException:
        return "not found"


def validation_node(
    client: MlflowClient, run: Run, report_path: str, *, docs_required: bool
) -> LineageNode:
    """The Great Expectations result a run logged, and its Data Docs when they were logged."""
    info = run.info
    node = LineageNode(
        kind="validation",
        label="training data checks" if report_path == TRAINING_VALIDATION else "batch checks",
        ids={
            "run_id": info.run_id,
            "artifact": report_path,
            "ui_path": run_ui_path(info.experiment_id, info.run_id) + "/artifacts",
        },
    )
    report = read_json_artifact(client, info.run_id, report_path)
    tagged = run.data.tags.get("agencyml.validation_result_id")
    if report is None:
        node.missing.append(f"run {info.run_id} has no {report_path} artifact")
    else:
        listed = report.get("checks")
        checks = [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []
        failed = [c for c in checks if not c.get("success", True)]
        node.facts.update(
            {
                "success": show(report.get("success")),
                "result id": show(report.get("result_id")),
                "suite": show(report.get("suite")),
                "rows": show(report.get("rows")),
                "checks": f"{len(checks)} ({len(failed)} failed)",
            }
        )
        if tagged and report.get("result_id") and tagged != report["result_id"]:
            node.missing.append(
                f"the run's tag agencyml.validation_result_id ({tagged}) is not the result id "
                f"in {report_path} ({report['result_id']})"
            )
    has_docs = artifact_exists(client, info.run_id, DATA_DOCS_INDEX)
    node.facts["data docs"] = DATA_DOCS_INDEX if has_docs else "not logged"
    if docs_required and not has_docs:
        node.missing.append(f"run {info.run_id} has no Data Docs at {DATA_DOCS}/")
    return node


# --- the model end -----------------------------------------------------------------------------


def trace_model(model_name: str, version: str, state: StateDir) -> LineageNode:
    """The lineage of one registered version: its training run and what that run was made from.
    Raises ModelNotFoundError for an unknown model or version."""
    client = client_for(state)
    found = get_version(client, model_name, str(version))
    if found is None:
        raise ModelNotFoundError(unknown_version_message(client, model_name, version, state))
    return model_version_node(client, found)


def unknown_version_message(
    client: MlflowClient, model_name: str, version: str, state: StateDir
) -> str:
    try:
        versions = client.search_model_versions(f"name='{model_name}'")
    except MlflowException:
        versions = []
    if versions:
        known = ", ".join(sorted((str(v.version) for v in versions), key=int))
        return (
            f"no version {version} of model '{model_name}' in the registry at "
            f"{state.tracking_uri}; its versions are {known}"
        )
    names = sorted(m.name for m in client.search_registered_models())
    return (
        f"no model '{model_name}' in the registry at {state.tracking_uri}. Registered models: "
        f"{', '.join(names) or 'none (train one first: agencyml train)'}"
    )


def model_version_node(client: MlflowClient, found: ModelVersion) -> LineageNode:
    """The registry entry, and the training run it points at."""
    name, version = found.name, str(found.version)
    node = LineageNode(
        kind="model version",
        label=f"{name} v{version}",
        ids={"model_name": name, "version": version, "ui_path": version_ui_path(name, version)},
        facts={
            "aliases": ", ".join(found.aliases) or "none",
            "status": str(found.status),
            "registered": timestamp(found.creation_timestamp),
            "source": show(found.source),
            "model_sha256": found.tags.get("agencyml.model_sha256", "not recorded"),
        },
    )
    if found.model_id:
        node.ids["logged_model_id"] = found.model_id
    node.children.append(approval_node(found))
    run_id = found.run_id or found.tags.get("agencyml.run_id")
    if not run_id:
        node.missing.append("the version names no training run (run_id or tag agencyml.run_id)")
        return node
    node.ids["run_id"] = run_id
    run = get_run(client, run_id)
    if run is None:
        node.missing.append(f"training run {run_id} of {name} v{version} is not in MLflow")
        node.facts.update(registry_tags(found.tags, {}))
        return node
    node.facts.update(registry_tags(found.tags, run.data.tags))
    card = MODEL_CARD if artifact_exists(client, run_id, MODEL_CARD) else None
    node.facts["model card"] = f"{card} on run {run_id}" if card else "not logged"
    if card:
        node.ids["card_artifact"] = card
    run_sha = run.data.tags.get("agencyml.model_sha256")
    if run_sha and found.tags.get("agencyml.model_sha256") not in (None, run_sha):
        node.missing.append(
            f"the version's model_sha256 differs from its training run's ({run_sha})"
        )
    node.children.append(training_run_node(client, run))
    return node


def registry_tags(version_tags: dict[str, str], run_tags: dict[str, str]) -> dict[str, str]:
    """Tags the registry added to the version (the gate's whole verdict, audit entries): the
    ones copied from the training run at registration say nothing new, and the decision that
    made it champion is the approval node's."""
    return {
        f"tag {key}": value
        for key, value in sorted(version_tags.items())
        if run_tags.get(key) != value
        and key not in ("agencyml.model_sha256", "agencyml.run_id", *DECISION_TAGS)
        and not key.startswith(PERSON_TAG_PREFIXES)
    }


DECISION_TAGS = ("agencyml.gate.decision", "agencyml.gate.reason")
PERSON_TAG_PREFIXES = ("agencyml.approval", "agencyml.rejection", "agencyml.rejected")


def approval_node(found: ModelVersion) -> LineageNode:
    """Who or what let the version become champion: the gate alone, or a person after it (with
    their reason). A champion whose gate asked for approval and that has none recorded is a
    broken link."""
    tags = found.tags
    decision = tags.get("agencyml.gate.decision")
    facts = {"gate decision": decision or "not recorded"}
    if tags.get("agencyml.gate.reason"):
        facts["gate reason"] = tags["agencyml.gate.reason"]
    approval = person_tags(tags, "agencyml.approval")
    rejection = person_tags(tags, "agencyml.rejection", older="agencyml.rejected")
    if approval is not None:
        label = f"approved by {who(approval)}"
        facts.update(decision_facts("approval", approval))
    elif rejection is not None:
        label = f"rejected by {who(rejection)}"
        facts.update(decision_facts("rejection", rejection))
    elif decision == "await-approval":
        label = "awaiting a person's approval"
    elif decision == "promote":
        label = "not required: the gate promoted it"
    elif decision:
        label = f"the gate decided '{decision}'"
    else:
        label = "no gate decision is recorded (registered outside the gate)"
    node = LineageNode(kind="approval", label=label, facts=facts)
    if decision == "await-approval" and approval is None and tracking.CHAMPION in found.aliases:
        node.missing.append(
            "the gate asked for a person's approval, but the champion has no "
            "agencyml.approval.* tags"
        )
    return node


def person_tags(tags: dict[str, str], prefix: str, older: str | None = None) -> Any:
    """A person's decision from its readable tags (<prefix>.by, .reason, .time); versions
    decided before those tags existed hold one JSON tag (`older`, else the prefix itself)."""
    fields = {
        key: tags[f"{prefix}.{key}"]
        for key in ("by", "reason", "time")
        if f"{prefix}.{key}" in tags
    }
    if fields:
        return fields
    return loads_or_text(tags.get(older or prefix))


def loads_or_text(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def who(decision: Any) -> str:
    return show(decision.get("by")) if isinstance(decision, dict) else "a person"


def decision_facts(kind: str, value: Any) -> dict[str, str]:
    if isinstance(value, dict):
        return {f"{kind} {key}": show(item) for key, item in value.items()}
    return {kind: show(value)}


def training_run_node(client: MlflowClient, run: Run) -> LineageNode:
    """The run that trained the version, with the commit, params, data and validation behind it."""
    tags, metrics = run.data.tags, run.data.metrics
    node = run_node("training run", client, run)
    for name in HEADLINE_METRICS:
        if name in metrics:
            node.facts[name] = show(metrics[name])
    node.facts["params_sha256"] = tags.get("agencyml.params_sha256", "not recorded")
    node.facts["best_iteration"] = run.data.params.get("best_iteration", "not recorded")
    node.children.append(git_node(tags))
    node.children.append(params_node(client, run))
    datasets = dataset_nodes(run)
    if not datasets:
        node.missing.append(
            f"the run has no {DATA_TAG_PREFIX}<name>.* tags: its training data is not recorded"
        )
    node.children.extend(datasets)
    node.children.append(validation_node(client, run, TRAINING_VALIDATION, docs_required=True))
    return node


def git_node(tags: dict[str, str]) -> LineageNode:
    commit = tags.get("agencyml.git_commit")
    dirty = tags.get("agencyml.git_dirty", "not recorded")
    node = LineageNode(kind="git commit", label=(commit or "not recorded")[:12])
    if commit is None:
        node.missing.append("the training run has no agencyml.git_commit tag")
        return node
    node.facts["commit"] = commit
    node.facts["dirty"] = dirty
    if commit == "unknown":
        node.facts["note"] = (
            "the run was started outside a git checkout, so no commit could be recorded; the "
            "code version cannot be recovered from git"
        )
    elif dirty == "true":
        node.facts["note"] = "tracked files differed from the commit when the run started"
    return node


def params_node(client: MlflowClient, run: Run) -> LineageNode:
    """The params file hash the run recorded, checked against the file as it is now."""
    tags = run.data.tags
    agency = tags.get("agencyml.agency")
    relative = f"params/{agency}.yaml" if agency else "params/<agency>.yaml"
    recorded = tags.get("agencyml.params_sha256")
    node = LineageNode(
        kind="params",
        label=relative,
        ids={"run_id": run.info.run_id, "artifact": USE_CASE_PARAMS},
        facts={"params file": relative, "params_sha256": recorded or "not recorded"},
    )
    if recorded is None:
        node.missing.append("the training run has no agencyml.params_sha256 tag")
    current = project_root() / relative
    if agency and current.is_file():
        now = file_sha256(current)
        node.facts["current file"] = str(current)
        node.facts["current file matches"] = show(now == recorded)
    else:
        node.facts["current file"] = f"{current} not found"
    node.facts["use case params logged"] = show(
        artifact_exists(client, run.info.run_id, USE_CASE_PARAMS)
    )
    if not agency:
        node.missing.append("the training run has no agencyml.agency tag")
    return node


def dataset_tags(tags: dict[str, str]) -> dict[str, dict[str, str]]:
    """agencyml.data.<name>.<field> tags grouped by dataset name."""
    grouped: dict[str, dict[str, str]] = {}
    for key, value in tags.items():
        if key.startswith(DATA_TAG_PREFIX) and "." in key[len(DATA_TAG_PREFIX) :]:
            name, field_name = key[len(DATA_TAG_PREFIX) :].rsplit(".", 1)
            grouped.setdefault(name, {})[field_name] = value
    return grouped


def dataset_nodes(run: Run) -> list[LineageNode]:
    """One node per dataset the run's tags describe, matched with the MLflow dataset input."""
    inputs = {item.dataset.name: item.dataset for item in run.inputs.dataset_inputs}
    nodes = []
    for name, fields in sorted(dataset_tags(run.data.tags).items()):
        known = [f for f in DATASET_FIELDS if f in fields]
        facts = {f: fields[f] for f in known + sorted(set(fields) - set(known))}
        node = LineageNode(
            kind="dataset",
            label=f"{name}: {fields.get('dvc_path') or fields.get('source', 'unknown source')}",
            facts=facts,
        )
        dataset = inputs.get(name)
        if dataset is None:
            node.missing.append(f"the run has no MLflow dataset input named '{name}'")
        else:
            node.ids.update({"dataset_name": dataset.name, "dataset_digest": dataset.digest})
            node.facts["mlflow dataset source"] = show(dataset.source)
            expected = fields.get("md5") or fields.get("digest", "")[:32]
            if expected and dataset.digest != expected:
                node.missing.append(
                    f"the MLflow dataset digest {dataset.digest} is not the recorded "
                    f"{'md5' if 'md5' in fields else 'digest'} {expected}"
                )
        nodes.append(node)
    return nodes


# --- the command line view ---------------------------------------------------------------------


def render_tree(node: LineageNode, *, max_value: int = 100) -> Tree:
    """The lineage as a rich tree: kind in bold, the ids in cyan, facts, missing links in red.
    Values longer than max_value are shortened; `to_dict()` keeps them whole."""
    node = node.for_people()
    tree = Tree(node_text(node, max_value), guide_style="dim")
    add_children(tree, node, max_value)
    return tree


def add_children(tree: Tree, node: LineageNode, max_value: int) -> None:
    for child in node.children:
        add_children(tree.add(node_text(child, max_value)), child, max_value)


def node_text(node: LineageNode, max_value: int) -> Text:
    # Text objects, not markup: labels and facts come from files and must print as written
    lines = [Text.assemble((node.kind, "bold"), "  ", node.label)]
    lines += [pair(key, value, "cyan", max_value) for key, value in node.ids.items()]
    if "ui_path" in node.ids:
        lines.append(pair("open", f"{mlflow_ui_url()}/{node.ids['ui_path']}", "cyan", 10_000))
    lines += [pair(key, value, "dim", max_value) for key, value in node.facts.items()]
    lines += [Text(f"missing: {problem}", style="red") for problem in node.missing]
    return Text("\n").join(lines)


def pair(key: str, value: str, style: str, max_value: int) -> Text:
    return Text.assemble((f"{key}: ", style), shorten(value, max_value))


def shorten(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"
