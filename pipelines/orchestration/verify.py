"""`agencyml verify`: every kind of damage the platform can see, in one pass. Published batches
and quarantines are re-hashed against their manifests and reports, model files against their
recorded sha256, the audit and access logs checked along their chains, the champion aliases
against the audit log, DVC's objects against their md5, and the state directory's permissions.

It only reads and reports; it repairs nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines import config, hashlog
from pipelines.data import integrity
from pipelines.data.versioning import default_remote
from pipelines.paths import ProjectNotFoundError, StateDir, project_root
from pipelines.permissions import loose_permissions
from pipelines.registry import model_files, promotion, trace
from pipelines.service import access

# The kinds of thing verify checks, in the order it reports them.
KINDS = (
    "batch",
    "quarantine",
    "model",
    "audit log",
    "access log",
    "alias",
    "dvc cache",
    "dvc remote",
    "permissions",
)


@dataclass(frozen=True)
class Finding:
    """One damaged thing: what kind, which one (a path or a model), and what is wrong."""

    kind: str
    where: str
    problem: str


@dataclass
class VerifyReport:
    """How many things of each kind were checked, and what was found damaged."""

    agency: str | None
    checked: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings

    def add(self, kind: str, where: Any, problem: str) -> None:
        self.findings.append(Finding(kind, str(where), problem))

    def to_dict(self) -> dict[str, Any]:
        return {
            "agency": self.agency,
            "clean": self.clean,
            "checked": dict(self.checked),
            "findings": [asdict(finding) for finding in self.findings],
            "notes": list(self.notes),
        }


class DamageFoundError(RuntimeError):
    """`agencyml verify` found something damaged (listed above the message)."""


def verify_state(state: StateDir, agency: str | None = None) -> VerifyReport:
    """Check everything one state directory (and the project's DVC cache) holds; with an
    agency, only its batches, quarantines and models, besides the shared logs and files."""
    if agency is not None:
        check_agency_known(state, agency)
    report = VerifyReport(agency)
    check_batches(state, agency, report)
    check_quarantines(state, agency, report)
    check_models(state, agency, report)
    check_logs(state, report)
    check_dvc(state, report)
    check_permissions(state, report)
    return report


def check_agency_known(state: StateDir, agency: str) -> None:
    """An agency with params, or with batches or quarantines left in the state directory (its
    params may be gone); UnknownAgencyError otherwise, rather than a clean report of nothing."""
    try:
        known = set(config.list_agencies())
    except ProjectNotFoundError:
        known = set()
    for root in (state.outputs_dir, state.quarantine_dir):
        if root.is_dir():
            known |= {path.name for path in root.iterdir() if path.is_dir()}
    if agency not in known:
        raise config.UnknownAgencyError(
            f"unknown agency '{agency}': it has no params file and nothing in {state.root}. "
            f"Known agencies: {', '.join(sorted(known)) or 'none'}"
        )


def damage_message(report: VerifyReport) -> str:
    """The error a damaged project exits with, after the table of findings."""
    kinds = sorted({f.kind for f in report.findings}, key=KINDS.index)
    return (
        f"verify found {len(report.findings)} problem(s) ({', '.join(kinds)}), listed above. "
        "Restore damaged files from a backup (or the DVC remote), put a moved alias back, and "
        "tighten permissions with `chmod -R go-rwx` on the state directory; then run "
        "`agencyml verify` again"
    )


# --- batches and quarantines -------------------------------------------------------------------


def folders_with(root: Path, marker: str, agency: str | None) -> Iterator[Path]:
    """<root>/<agency>/<use case>/<folder>/ holding `marker`; hidden (staging) folders skipped."""
    if not root.is_dir():
        return
    pattern = f"{agency or '*'}/*/*/{marker}"
    for path in sorted(root.glob(pattern)):
        if not path.parent.name.startswith("."):
            yield path.parent


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def check_batches(state: StateDir, agency: str | None, report: VerifyReport) -> None:
    """Each batch's files against its manifest, and the manifest against the one its scoring
    run logged in MLflow: a file changed together with its hash in the manifest is found too."""
    client = trace.client_for(state)
    unrecorded = 0
    for folder in folders_with(state.outputs_dir, "manifest.json", agency):
        report.checked["batch"] += 1
        manifest = read_record(folder / "manifest.json")
        if manifest is None:
            report.add("batch", folder / "manifest.json", "the manifest is not a JSON object")
            continue
        if not integrity.recorded_hashes(manifest):
            report.add("batch", folder, "its manifest records no file hashes to check against")
        for name, problem in integrity.damage(folder, manifest, cached=False).items():
            report.add("batch", folder / name, problem)
        logged = logged_manifest(client, folder.name)
        if logged is None:
            unrecorded += 1
        elif logged != manifest:
            differing = sorted(k for k in {*logged, *manifest} if logged.get(k) != manifest.get(k))
            report.add(
                "batch",
                folder / "manifest.json",
                f"it differs from the manifest its scoring run logged in MLflow "
                f"({', '.join(differing)}): it was edited after publishing",
            )
    if unrecorded:
        report.notes.append(
            f"{unrecorded} published batch(es) have no scoring run with a logged manifest in "
            f"{state.tracking_uri}, so their manifests could only be checked against their files"
        )


def logged_manifest(client: Any, batch_id: str) -> dict[str, Any] | None:
    """The manifest the batch's scoring run logged, or None without such a run."""
    run = trace.preferred_run(trace.scoring_runs(client, batch_id))
    if run is None or trace.is_rejected(run):
        return None
    return trace.read_json_artifact(client, run.info.run_id, trace.SCORING_MANIFEST)


def check_quarantines(state: StateDir, agency: str | None, report: VerifyReport) -> None:
    unhashed = 0
    for folder in folders_with(state.quarantine_dir, "report.json", agency):
        report.checked["quarantine"] += 1
        record = read_record(folder / "report.json")
        if record is None:
            report.add("quarantine", folder / "report.json", "the report is not a JSON object")
            continue
        if not integrity.quarantine_hashes(folder, record):
            unhashed += 1
        for name, problem in integrity.quarantine_damage(folder, record, cached=False).items():
            report.add("quarantine", folder / name, problem)
    if unhashed:
        report.notes.append(
            f"{unhashed} quarantine folder(s) were written before quarantines recorded their "
            "files' hashes; only their report could be read"
        )


# --- the registry and the logs -----------------------------------------------------------------


def check_models(state: StateDir, agency: str | None, report: VerifyReport) -> None:
    """Each version's model files, and each model's champion alias against the audit log."""
    for name in model_files.registered_models(state, agency):
        for checked in model_files.check_versions(name, state):
            report.checked["model"] += 1
            if checked.problem is not None:
                report.add("model", f"{name} v{checked.version}", checked.problem)
        report.checked["alias"] += 1
        try:
            disagreement = promotion.alias_disagreement(name, state)
        except (hashlog.LogTamperedError, hashlog.LogAnchorError):
            continue  # the audit log's own finding says why the aliases cannot be checked
        if disagreement is not None:
            report.add("alias", name, disagreement)


def check_logs(state: StateDir, report: VerifyReport) -> None:
    """Each log along its chain, and its end against the heads kept in its head file and the
    tracking store (pipelines.hashlog)."""
    logs = (
        ("audit log", promotion.audit_path(state), lambda: promotion.read_events(state)),
        ("access log", access.access_log_path(state), lambda: access.read_access_log(state)),
    )
    for kind, path, read in logs:
        report.checked[kind] += 1
        try:
            read()
        except hashlog.LogTamperedError as error:
            report.add(kind, error.path, str(error))
        except hashlog.LogAnchorError as error:
            report.add(kind, path, f"its head could not be checked: {error}")


# --- DVC ---------------------------------------------------------------------------------------


def check_dvc(state: StateDir, report: VerifyReport) -> None:
    """The project's DVC cache, falling back to the default remote for a corrupt object (is an
    intact copy there?), and the remote's own objects when it is a folder."""
    try:
        root = project_root()
    except ProjectNotFoundError:
        report.notes.append("no project here, so no DVC cache was checked")
        return
    cache = root / ".dvc" / "cache"
    remote = local_remote(root) or (state.dvc_remote if state.dvc_remote.is_dir() else None)
    for path in integrity.dvc_objects(cache):
        report.checked["dvc cache"] += 1
        problem = integrity.dvc_object_problem(path)
        if problem is not None:
            report.add("dvc cache", path, problem + remote_copy(path, cache, remote))
    if remote is None:
        return
    for path in integrity.dvc_objects(remote):
        report.checked["dvc remote"] += 1
        problem = integrity.dvc_object_problem(path)
        if problem is not None:
            report.add("dvc remote", path, problem + "; push an intact copy again (`dvc push`)")


def local_remote(root: Path) -> Path | None:
    """The default DVC remote when it is a folder on this machine."""
    if not (root / ".dvc").is_dir():
        return None
    _, url = default_remote(root)
    if url is None or "://" in url:
        return None
    path = Path(url) if Path(url).is_absolute() else (root / ".dvc" / url).resolve()
    return path if path.is_dir() else None


def remote_copy(path: Path, cache: Path, remote: Path | None) -> str:
    """What the remote holds of a corrupt cache object, as the fix to add to the finding."""
    if remote is None:
        return "; no local remote to restore it from"
    copy = remote / path.relative_to(cache)
    if not copy.is_file():
        return f"; the remote {remote} has no copy of it"
    if integrity.dvc_object_problem(copy) is not None:
        return f"; the remote's copy {copy} is corrupt too"
    return f"; the remote {remote} holds an intact copy: delete {path} and run `dvc fetch`"


# --- permissions -------------------------------------------------------------------------------


def check_permissions(state: StateDir, report: VerifyReport) -> None:
    report.checked["permissions"] += 1
    for path in loose_permissions(state):
        try:
            mode = f"mode {path.lstat().st_mode & 0o777:o}: "
        except OSError:  # removed since the walk
            continue
        report.add("permissions", path, f"{mode}group or others may read or write it")
