"""MLflow access per agency, on a tracking server that runs MLflow's basic-auth app: one MLflow
user per agency with EDIT on its own experiments and registered models only, and a read-only
auditor. The adapter for MLflow's auth service, as tracking.py is for tracking itself."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests
from mlflow.exceptions import MlflowException
from mlflow.server import get_app_client
from mlflow.server.auth.client import AuthServiceClient
from mlflow.tracking import MlflowClient

from pipelines import config
from pipelines.registry.records import SCORING
from pipelines.settings import settings

AGENCY_USER_PREFIX = "agency-"
AUDITOR = "auditor"
AGENCY_PERMISSION = "EDIT"  # read and write its own; MANAGE would let it grant others access
AUDITOR_PERMISSION = "READ"
EXPERIMENT = "experiment"
REGISTERED_MODEL = "registered_model"
EVERY = "*"  # MLflow's wildcard grant: every resource of the type, present and future
PROBE_TIMEOUT = 10  # seconds; MLflow's own client retries for minutes before giving up


class MlflowAccessError(RuntimeError):
    """The tracking server cannot be reached, refuses the admin, or does not run basic-auth."""


@dataclass(frozen=True)
class AgencyResources:
    """What one agency owns on the tracking server, by name."""

    agency: str
    experiments: tuple[str, ...]
    models: tuple[str, ...]

    @property
    def username(self) -> str:
        return f"{AGENCY_USER_PREFIX}{self.agency}"


@dataclass(frozen=True)
class Grant:
    """One permission of one user on one resource (an experiment id, a model name, or *)."""

    resource_type: str
    resource_id: str
    permission: str
    label: str  # what a person reads: the experiment's name, the model's name, or "every ..."


@dataclass
class SyncReport:
    """What one sync found and changed."""

    tracking_uri: str
    passwords_file: Path
    created_experiments: list[str] = field(default_factory=list)
    created_models: list[str] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)  # username -> created | rotated | kept
    grants: dict[str, list[Grant]] = field(default_factory=dict)  # username -> its grants
    granted: list[tuple[str, Grant]] = field(default_factory=list)
    changed: list[tuple[str, Grant]] = field(default_factory=list)
    revoked: list[tuple[str, str, str]] = field(default_factory=list)  # user, type, id
    other_roles: dict[str, list[str]] = field(default_factory=dict)  # user -> role names


def experiment_names(agency: str) -> tuple[str, ...]:
    """The agency's experiments, named as tracking.use_experiment names them."""
    training = f"agencyml/{agency}"
    return (training, f"{training}/{SCORING}")


def agency_resources(agencies: Iterable[str] | None = None) -> list[AgencyResources]:
    """Every agency in params/ with its experiments and registered models (`<agency>.<use
    case>`); bad params fail here, before the server is touched."""
    names = config.list_agencies() if agencies is None else list(agencies)
    resources = []
    for agency in names:
        params = config.load_params(agency)
        models = tuple(params.use_case(name).model_name for name in sorted(params.use_cases))
        resources.append(AgencyResources(agency, experiment_names(agency), models))
    return resources


def planned_grants(
    resources: list[AgencyResources], experiment_ids: dict[str, str]
) -> dict[str, list[Grant]]:
    """Who may do what: each agency's user on its own experiments and models, the auditor
    READ on every experiment and model (the wildcard also covers ones created later)."""
    plan = {
        owned.username: [
            *(
                Grant(EXPERIMENT, experiment_ids[name], AGENCY_PERMISSION, name)
                for name in owned.experiments
            ),
            *(Grant(REGISTERED_MODEL, name, AGENCY_PERMISSION, name) for name in owned.models),
        ]
        for owned in resources
    }
    plan[AUDITOR] = [
        Grant(EXPERIMENT, EVERY, AUDITOR_PERMISSION, "every experiment"),
        Grant(REGISTERED_MODEL, EVERY, AUDITOR_PERMISSION, "every registered model"),
    ]
    return plan


def passwords_path(state_root: Path) -> Path:
    return state_root / "mlflow-access" / "users.json"


def sync(
    tracking_uri: str,
    state_root: Path,
    *,
    rotate: Iterable[str] = (),
    agencies: Iterable[str] | None = None,
) -> SyncReport:
    """Create what is missing (experiments, registered models, users) and make every managed
    user's grants exactly the plan's. Admin credentials come from MLflow's own variables,
    MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD. Passwords are generated for new
    users (and `rotate`d ones) and written to a file only the operator can read."""
    tracking_uri = tracking_uri.rstrip("/")
    resources = agency_resources(agencies)
    managed = {owned.username for owned in resources} | {AUDITOR}
    unknown = set(rotate) - managed
    if unknown:
        raise MlflowAccessError(
            f"cannot rotate {', '.join(sorted(unknown))}: sync manages only "
            f"{', '.join(sorted(managed))}"
        )
    check_admin(tracking_uri)
    report = SyncReport(tracking_uri, passwords_path(state_root))
    tracking = MlflowClient(tracking_uri, tracking_uri)
    experiment_ids = {
        name: ensure_experiment(tracking, name, report)
        for owned in resources
        for name in owned.experiments
    }
    for owned in resources:
        for name in owned.models:
            ensure_registered_model(tracking, name, owned.agency, report)

    auth: AuthServiceClient = get_app_client("basic-auth", tracking_uri=tracking_uri)
    plan = planned_grants(resources, experiment_ids)
    for username, grants in plan.items():
        password = ensure_user(auth, username, rotate=username in set(rotate), report=report)
        if password is not None:  # saved at once: a later failure must not lose it
            save_passwords(report.passwords_file, tracking_uri, {username: password})
        apply_grants(auth, username, grants, report)
    report.grants = plan
    return report


def check_admin(tracking_uri: str) -> None:
    """Fail fast, and say what to do, when the server is down, refuses the credentials, does
    not run the basic-auth app, or the user is not an admin."""
    username = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if not username or not password:
        raise MlflowAccessError(
            "no admin credentials: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            "to the admin user of the MLflow server's auth config (admin_username, "
            "admin_password)"
        )
    if not tracking_uri.startswith(("http://", "https://")):
        raise MlflowAccessError(
            f"'{tracking_uri}' is not a tracking server: MLflow's access control exists only "
            "on a server started with `mlflow server --app-name basic-auth`; pass its URL with "
            "--tracking-uri (or set AGENCYML_TRACKING_URI)"
        )
    try:
        answer = requests.get(
            f"{tracking_uri}/api/2.0/mlflow/users/get",
            params={"username": username},
            auth=(username, password),
            timeout=PROBE_TIMEOUT,
        )
    except requests.RequestException as error:
        raise MlflowAccessError(
            f"the MLflow server at {tracking_uri} does not answer ({type(error).__name__}). "
            "Start it with `mlflow server --app-name basic-auth` (MLFLOW_AUTH_CONFIG_PATH "
            "pointing at its auth ini), or pass its URL with --tracking-uri"
        ) from None
    if answer.status_code == 401:
        raise MlflowAccessError(
            f"the MLflow server at {tracking_uri} refused the credentials of '{username}': "
            "check MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD against the admin "
            "user of its auth config"
        )
    if answer.status_code == 404 or "user" not in _json_or_empty(answer):
        raise MlflowAccessError(
            f"the MLflow server at {tracking_uri} does not run MLflow's basic-auth app "
            f"(GET users/get answered {answer.status_code}): restart it with "
            "`mlflow server --app-name basic-auth` and MLFLOW_AUTH_CONFIG_PATH set to an auth "
            "ini whose default_permission is NO_PERMISSIONS"
        )
    if not answer.ok:
        raise MlflowAccessError(
            f"the MLflow server at {tracking_uri} answered {answer.status_code} to "
            f"users/get: {answer.text[:300]}"
        )
    if not answer.json()["user"].get("is_admin"):
        raise MlflowAccessError(
            f"'{username}' is not an admin on {tracking_uri}: sync creates users and grants "
            "permissions, which only an admin may do; use the admin of the auth config"
        )


def _json_or_empty(answer: requests.Response) -> dict:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def ensure_experiment(tracking: MlflowClient, name: str, report: SyncReport) -> str:
    """The experiment's id, created when missing so its grants have something to name, and so
    that no other signed-in user can create it first and own it."""
    experiment = tracking.get_experiment_by_name(name)
    if experiment is None:
        report.created_experiments.append(name)
        return tracking.create_experiment(name, artifact_location=artifact_location(name))
    if experiment.lifecycle_stage != "active":
        raise MlflowAccessError(
            f"experiment '{name}' ({experiment.experiment_id}) is deleted: restore it with "
            f"`mlflow experiments restore --experiment-id {experiment.experiment_id}` "
            "before syncing"
        )
    return experiment.experiment_id


def artifact_location(experiment_name: str) -> str | None:
    """AGENCYML_ARTIFACT_ROOT's folder for the experiment, as StateDir.artifact_location makes
    it; without it, the server's own (proxied) artifact root."""
    root = settings().artifact_root
    if not root:
        return None
    return "/".join([root.rstrip("/"), *experiment_name.split("/")[1:]])


def ensure_registered_model(
    tracking: MlflowClient, name: str, agency: str, report: SyncReport
) -> None:
    """Create the registered model (without versions) when missing, so that no other agency
    can register the name first and own it."""
    try:
        tracking.get_registered_model(name)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        tracking.create_registered_model(
            name, description=f"{agency}'s model; versions are registered by agencyml train."
        )
        report.created_models.append(name)


def ensure_user(
    auth: AuthServiceClient, username: str, *, rotate: bool, report: SyncReport
) -> str | None:
    """Create the user (never an admin) with a generated password, or rotate its password when
    asked; the new password, if any, is returned to be saved and never printed or logged."""
    try:
        user = auth.get_user(username)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        password = secrets.token_urlsafe(24)
        auth.create_user(username, password)
        report.users[username] = "created"
        return password
    if user.is_admin:
        auth.update_user_admin(username, False)
    if not rotate:
        report.users[username] = "kept"
        return None
    password = secrets.token_urlsafe(24)
    auth.update_user_password(username, password)
    report.users[username] = "rotated"
    return password


def apply_grants(
    auth: AuthServiceClient, username: str, grants: list[Grant], report: SyncReport
) -> None:
    """Make the user's own grants exactly `grants`: add the missing, correct the level of the
    others, and revoke any grant the plan does not name."""
    user_id = auth.get_user(username).id
    own_role = f"__user_{user_id}__"  # MLflow's per-user role, where user grants live
    current = {}
    for role in auth.list_user_roles(username):
        if role.name != own_role:
            report.other_roles.setdefault(username, []).append(role.name)
            continue
        for permission in role.permissions:
            current[(permission.resource_type, permission.resource_pattern)] = permission
    wanted = {(grant.resource_type, grant.resource_id): grant for grant in grants}
    for key, existing in current.items():
        if key not in wanted:
            auth.revoke_user_permission(username, *key)
            report.revoked.append((username, *key))
        elif existing.permission != wanted[key].permission:
            auth.update_role_permission(existing.id, wanted[key].permission)
            report.changed.append((username, wanted[key]))
    for key, grant in wanted.items():
        if key not in current:
            auth.grant_user_permission(username, *key, grant.permission)
            report.granted.append((username, grant))


def save_passwords(path: Path, tracking_uri: str, passwords: dict[str, str]) -> None:
    """Merge new passwords into the operator's file (mode 0600), per tracking server; it is
    rewritten whole and renamed into place, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    saved = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    server = saved.setdefault(tracking_uri, {})
    for username, password in passwords.items():
        server[username] = {"password": password, "set_at": now}
    partial = path.with_name(f".{path.name}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump(saved, file, indent=2, sort_keys=True)
        file.write("\n")
    os.chmod(partial, 0o600)
    os.replace(partial, path)


def saved_password(state_root: Path, tracking_uri: str, username: str) -> str | None:
    """A user's password from the operator's file, if sync set it."""
    path = passwords_path(state_root)
    if not path.is_file():
        return None
    entry = json.loads(path.read_text(encoding="utf-8")).get(tracking_uri.rstrip("/"), {})
    return entry.get(username, {}).get("password")
