"""MLflow isolated per agency: a real `mlflow server --app-name basic-auth` (NO_PERMISSIONS by
default, artifacts proxied), `agencyml mlflow-access sync`, then every read and write path an
agency's user could take to another agency's runs, metrics, artifacts and models, over REST."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from servers import free_port, stop, wait_until_up
from typer.testing import CliRunner

from flows.cli import app

ADMIN = ("admin", "admin-password-for-tests-only")
A, B = "business-aid", "product-safety"
MODEL = {A: "business-aid.fraud-risk", B: "product-safety.risk-triage"}
SECRET = {agency: f"artifact-of-{agency}-only" for agency in (A, B)}
ROC_AUC = {A: (0.7101, 0.8101, 0.8501), B: (0.6202, 0.7202, 0.9202)}  # told apart in answers


@dataclass
class Server:
    url: str
    state: Path
    experiments: dict[str, dict[str, str]] = field(default_factory=dict)  # agency -> name -> id
    runs: dict[str, str] = field(default_factory=dict)  # agency -> run id
    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # who -> (user, password)
    first_sync: str = ""


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """One basic-auth server for the module, two agencies' experiments, runs, artifacts and
    models on it (some made before the sync, as a platform that trained first would have),
    and the sync run once through the CLI."""
    root = tmp_path_factory.mktemp("mlflow-access")
    auth_ini = root / "auth.ini"
    auth_ini.write_text(
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {ADMIN[0]}\n"
        f"admin_password = {ADMIN[1]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # a checked password is remembered for a minute (one worker: a password change clears
        # it at once); without it each request pays the password hash again
        "auth_cache_ttl_seconds = 60\n",
        encoding="utf-8",
    )
    port = free_port()
    log = root / "server.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("mlflow")),
                "server",
                "--app-name",
                "basic-auth",
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--serve-artifacts",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env={
                **os.environ,
                "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini),
                "MLFLOW_FLASK_SERVER_SECRET_KEY": "tests-only",
            },
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/health", process, log)
        with pytest.MonkeyPatch.context() as patch:
            for name, value in {
                "MLFLOW_TRACKING_USERNAME": ADMIN[0],
                "MLFLOW_TRACKING_PASSWORD": ADMIN[1],
                "AGENCYML_TRACKING_URI": url,
                "AGENCYML_HOME": str(root / "state"),
                "PREFECT_HOME": str(root / "prefect"),
            }.items():
                patch.setenv(name, value)
            patch.delenv("AGENCYML_ARTIFACT_ROOT", raising=False)
            yield prepare(Server(url, root / "state"), root)
    finally:
        stop(process)


def prepare(server: Server, root: Path) -> Server:
    from mlflow.tracking import MlflowClient

    from pipelines.paths import state_dir
    from pipelines.registry import tracking

    client = MlflowClient(server.url, server.url)
    # business-aid trained before access was set up: its experiment and model exist already
    tracking.configure(state_dir())
    a_training = tracking.use_experiment(A, state_dir())
    server.runs[A] = log_run(client, a_training, A, root)
    register_version(client, MODEL[A], server.runs[A])

    result = CliRunner().invoke(app, ["mlflow-access", "sync", "--tracking-uri", server.url])
    assert result.exit_code == 0, result.output
    server.first_sync = result.output

    # the experiments are the ones agencyml's runs use, whoever made them first
    for agency in (A, B):
        server.experiments[agency] = {
            name: tracking.use_experiment(agency, state_dir(), purpose)
            for name, purpose in (
                (f"agencyml/{agency}", ""),
                (f"agencyml/{agency}/scoring", "scoring"),
            )
        }
    assert server.experiments[A][f"agencyml/{A}"] == a_training
    # product-safety trains after the sync, into what the sync created
    server.runs[B] = log_run(client, server.experiments[B][f"agencyml/{B}"], B, root)
    register_version(client, MODEL[B], server.runs[B])

    saved = json.loads((server.state / "mlflow-access" / "users.json").read_text())[server.url]
    for who, username in (("a", f"agency-{A}"), ("b", f"agency-{B}"), ("auditor", "auditor")):
        server.users[who] = (username, saved[username]["password"])
    return server


def log_run(client: Any, experiment_id: str, agency: str, root: Path) -> str:
    run = client.create_run(experiment_id, run_name=f"train-{agency}")
    for step, value in enumerate(ROC_AUC[agency]):
        client.log_metric(run.info.run_id, "roc_auc", value, step=step)
    notes = root / agency / f"notes-{agency}.txt"
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_text(SECRET[agency], encoding="utf-8")
    client.log_artifact(run.info.run_id, str(notes))  # through the server's artifact proxy
    client.log_artifact(run.info.run_id, str(notes), artifact_path="model")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def register_version(client: Any, model: str, run_id: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(model)
    except MlflowException as error:
        assert error.error_code == "RESOURCE_ALREADY_EXISTS"
    version = client.create_model_version(model, f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias(model, "champion", version.version)


# ---------------------------------------------------------------------------------------------
# the requests each check makes, as (label, method, path, params-or-json)


def reads_of(server: Server, agency: str) -> list[tuple[str, str, str, dict]]:
    """Every read path to one agency's experiment, run, metrics, artifacts and model."""
    experiment = server.experiments[agency][f"agencyml/{agency}"]
    run = server.runs[agency]
    model = MODEL[agency]
    proxy = f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts"
    return [
        ("get experiment", "GET", "/api/2.0/mlflow/experiments/get", {"experiment_id": experiment}),
        (
            "get experiment by name",
            "GET",
            "/api/2.0/mlflow/experiments/get-by-name",
            {"experiment_name": f"agencyml/{agency}"},
        ),
        ("get run", "GET", "/api/2.0/mlflow/runs/get", {"run_id": run}),
        (
            "search runs in its experiment",
            "POST",
            "/api/2.0/mlflow/runs/search",
            {"experiment_ids": [experiment]},
        ),
        (
            "metric history",
            "GET",
            "/api/2.0/mlflow/metrics/get-history",
            {"run_id": run, "metric_key": "roc_auc"},
        ),
        (
            "metric history, bulk interval (UI)",
            "GET",
            "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
            {"run_ids": run, "metric_key": "roc_auc"},
        ),
        ("list artifacts", "GET", "/api/2.0/mlflow/artifacts/list", {"run_id": run}),
        (
            "list artifacts through the proxy",
            "GET",
            "/api/2.0/mlflow-artifacts/artifacts",
            {"path": f"{experiment}/{run}/artifacts"},
        ),
        ("download an artifact through the proxy", "GET", f"{proxy}/notes-{agency}.txt", {}),
        (
            "download an artifact (UI's get-artifact)",
            "GET",
            "/get-artifact",
            {"path": f"notes-{agency}.txt", "run_uuid": run},
        ),
        ("get registered model", "GET", "/api/2.0/mlflow/registered-models/get", {"name": model}),
        (
            "get latest versions",
            "POST",
            "/api/2.0/mlflow/registered-models/get-latest-versions",
            {"name": model},
        ),
        (
            "get version by alias",
            "GET",
            "/api/2.0/mlflow/registered-models/alias",
            {"name": model, "alias": "champion"},
        ),
        (
            "get model version",
            "GET",
            "/api/2.0/mlflow/model-versions/get",
            {"name": model, "version": "1"},
        ),
        (
            "model version download uri",
            "GET",
            "/api/2.0/mlflow/model-versions/get-download-uri",
            {"name": model, "version": "1"},
        ),
        (
            "model version artifact (UI)",
            "GET",
            "/model-versions/get-artifact",
            {"path": f"notes-{agency}.txt", "name": model, "version": "1"},
        ),
        (
            "search model versions by name",
            "GET",
            "/api/2.0/mlflow/model-versions/search",
            {"filter": f"name='{model}'"},
        ),
        (
            "search model versions by run",
            "GET",
            "/api/2.0/mlflow/model-versions/search",
            {"filter": f"run_id='{run}'"},
        ),
        (
            "graphql get run",
            "POST",
            "/graphql",
            {
                "query": f'query {{ mlflowGetRun(input: {{runId: "{run}"}}) {{ run {{ info {{ '
                "runId experimentId } modelVersions { name version } } } }"
            },
        ),
        (
            "graphql search runs",
            "POST",
            "/graphql",
            {
                "query": f'query {{ mlflowSearchRuns(input: {{experimentIds: ["{experiment}"]}}) '
                "{ runs { info { runId } } } }"
            },
        ),
    ]


def searches_across_everything(server: Server) -> list[tuple[str, str, str, dict]]:
    """Searches that name no agency: their answers must be filtered per user."""
    every_experiment = [
        experiment for names in server.experiments.values() for experiment in names.values()
    ]
    return [
        ("search experiments", "POST", "/api/2.0/mlflow/experiments/search", {"max_results": 1000}),
        (
            "search runs across every experiment",
            "POST",
            "/api/2.0/mlflow/runs/search",
            {"experiment_ids": every_experiment},
        ),
        (
            "search registered models",
            "GET",
            "/api/2.0/mlflow/registered-models/search",
            {"max_results": 1000},
        ),
        (
            "search model versions",
            "GET",
            "/api/2.0/mlflow/model-versions/search",
            {"max_results": 1000},
        ),
        (
            "search model versions (ajax)",
            "GET",
            "/ajax-api/2.0/mlflow/model-versions/search",
            {"max_results": 1000},
        ),
        (
            "search logged models",
            "POST",
            "/api/2.0/mlflow/logged-models/search",
            {"experiment_ids": every_experiment},
        ),
        (
            "graphql search model versions",
            "POST",
            "/graphql",
            {"query": "query { mlflowSearchModelVersions(input: {}) { modelVersions { name } } }"},
        ),
    ]


def writes_to(server: Server, agency: str) -> list[tuple[str, str, str, dict]]:
    """Every write to one agency's experiment, run, artifacts and model."""
    experiment = server.experiments[agency][f"agencyml/{agency}"]
    run = server.runs[agency]
    model = MODEL[agency]
    return [
        ("create a run", "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": experiment}),
        (
            "log a metric",
            "POST",
            "/api/2.0/mlflow/runs/log-metric",
            {"run_id": run, "key": "roc_auc", "value": 1.0, "timestamp": 1, "step": 9},
        ),
        (
            "tag a run",
            "POST",
            "/api/2.0/mlflow/runs/set-tag",
            {"run_id": run, "key": "tampered", "value": "yes"},
        ),
        (
            "upload an artifact through the proxy",
            "PUT",
            f"/api/2.0/mlflow-artifacts/artifacts/{experiment}/{run}/artifacts/tampered.txt",
            {},
        ),
        (
            "rename the experiment",
            "POST",
            "/api/2.0/mlflow/experiments/update",
            {"experiment_id": experiment, "new_name": f"agencyml/{agency}-renamed"},
        ),
        ("delete the run", "POST", "/api/2.0/mlflow/runs/delete", {"run_id": run}),
        (
            "tag the registered model",
            "POST",
            "/api/2.0/mlflow/registered-models/set-tag",
            {"name": model, "key": "tampered", "value": "yes"},
        ),
        (
            "move the champion alias",
            "POST",
            "/api/2.0/mlflow/registered-models/alias",
            {"name": model, "alias": "champion", "version": "1"},
        ),
        (
            "create a model version",
            "POST",
            "/api/2.0/mlflow/model-versions/create",
            {"name": model, "source": f"runs:/{run}/model", "run_id": run},
        ),
        (
            "delete the registered model",
            "DELETE",
            "/api/2.0/mlflow/registered-models/delete",
            {"name": model},
        ),
    ]


def call(server: Server, who: tuple[str, str] | None, method: str, path: str, body: dict):
    arguments: dict[str, Any] = {"auth": who, "timeout": 30}
    if method == "GET":
        arguments["params"] = body
    elif method == "PUT":
        arguments["data"] = b"tampered"
    else:
        arguments["json"] = body
    return requests.request(method, server.url + path, **arguments)


def markers_of(server: Server, agency: str) -> list[str]:
    """What in an answer would show the agency's data: ids, names and file contents."""
    return [
        server.runs[agency],
        f"agencyml/{agency}",
        MODEL[agency],
        SECRET[agency],
        f"notes-{agency}.txt",
        str(ROC_AUC[agency][-1]),
        *(f'"experiment_id": "{experiment}"' for experiment in server.experiments[agency].values()),
    ]


def shows(answer: requests.Response, markers: list[str]) -> list[str]:
    text = re.sub(r'"experiment_id":\s*"', '"experiment_id": "', answer.text)
    text = re.sub(r'"experimentId":\s*"', '"experiment_id": "', text)
    return [marker for marker in markers if marker in text]


def refused(answer: requests.Response) -> bool:
    return answer.status_code in (401, 403)


# ---------------------------------------------------------------------------------------------


def test_sync_creates_users_with_passwords_only_the_operator_reads(server):
    path = server.state / "mlflow-access" / "users.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for _, password in server.users.values():
        assert len(password) >= 32 and password not in server.first_sync
    output = " ".join(server.first_sync.split())
    assert f"created experiment agencyml/{B}" in output
    assert f"created registered model {MODEL[B]}" in output
    assert f"created experiment agencyml/{A} " not in output + " "  # it existed: kept


def test_sync_is_idempotent_and_puts_drifted_grants_back(server):
    from mlflow.server import get_app_client

    invoke = CliRunner().invoke
    before = (server.state / "mlflow-access" / "users.json").read_text()
    again = invoke(app, ["mlflow-access", "sync", "--tracking-uri", server.url])
    assert again.exit_code == 0, again.output
    assert "already in sync" in again.output
    assert (server.state / "mlflow-access" / "users.json").read_text() == before
    scripted = invoke(app, ["mlflow-access", "sync", "--tracking-uri", server.url, "--json"])
    assert scripted.exit_code == 0, scripted.output
    document = json.loads(scripted.stdout)  # one JSON document, and no password in it
    assert document["granted"] == document["changed"] == document["revoked"] == []
    assert set(document["users"]) == {f"agency-{A}", f"agency-{B}", "auditor"}
    assert all(state == "kept" for state in document["users"].values())
    passwords = [
        user["password"] for users in json.loads(before).values() for user in users.values()
    ]
    assert passwords and not any(password in scripted.stdout for password in passwords)

    # someone widens agency A's access by hand; the next sync takes it back
    auth = get_app_client("basic-auth", tracking_uri=server.url)
    a_user = f"agency-{A}"
    b_experiment = server.experiments[B][f"agencyml/{B}"]
    auth.grant_user_permission(a_user, "experiment", b_experiment, "READ")
    auth.grant_user_permission(a_user, "registered_model", MODEL[B], "EDIT")
    own = server.experiments[A][f"agencyml/{A}"]
    (role,) = auth.list_user_roles(a_user)
    (own_grant,) = [p for p in role.permissions if p.resource_pattern == own]
    auth.update_role_permission(own_grant.id, "MANAGE")
    assert call(server, server.users["a"], "GET", *reads_of(server, B)[0][2:]).ok

    fixed = invoke(app, ["mlflow-access", "sync", "--tracking-uri", server.url])
    assert fixed.exit_code == 0, fixed.output
    output = " ".join(fixed.output.split())
    assert "1 changed, 2 revoked" in output
    assert refused(call(server, server.users["a"], "GET", *reads_of(server, B)[0][2:]))
    (role,) = auth.list_user_roles(a_user)
    assert {(p.resource_pattern, p.permission) for p in role.permissions} == {
        *((experiment, "EDIT") for experiment in server.experiments[A].values()),
        (MODEL[A], "EDIT"),
        ("business-aid.case-routing", "EDIT"),
    }

    rotated = invoke(
        app, ["mlflow-access", "sync", "--tracking-uri", server.url, "--rotate", "auditor"]
    )
    assert rotated.exit_code == 0, rotated.output
    saved = json.loads((server.state / "mlflow-access" / "users.json").read_text())[server.url]
    assert saved["auditor"]["password"] != server.users["auditor"][1]
    assert saved[a_user]["password"] == server.users["a"][1]
    assert refused(call(server, server.users["auditor"], "GET", *reads_of(server, A)[0][2:]))
    server.users["auditor"] = ("auditor", saved["auditor"]["password"])


def test_an_agency_sees_and_changes_nothing_of_another_agency(server):
    """The isolation matrix, both ways: every read of the other agency is refused or answers
    without its data, every search is filtered, every write is refused and changes nothing."""
    leaks, checks = [], 0
    for who, other in (("a", B), ("b", A)):
        user = server.users[who]
        for label, method, path, body in [
            *reads_of(server, other),
            *searches_across_everything(server),
        ]:
            answer = call(server, user, method, path, body)
            checks += 1
            shown = shows(answer, markers_of(server, other))
            if shown or not (refused(answer) or answer.ok):
                leaks.append(f"{user[0]}: {label} -> {answer.status_code} {shown}")
        for label, method, path, body in writes_to(server, other):
            answer = call(server, user, method, path, body)
            checks += 1
            if not refused(answer):
                leaks.append(f"{user[0]}: {label} -> {answer.status_code} {answer.text[:200]}")
    assert not leaks, "\n".join(leaks)
    assert checks == 2 * (
        len(reads_of(server, A))
        + len(searches_across_everything(server))
        + len(writes_to(server, A))
    )
    assert_untouched(server)


# MLflow 3.17 answers 500 to everyone, the admin included, for a model version's artifact when
# the server proxies artifacts (the handler resolves mlflow-artifacts:/ against its own database
# URI): not a question of access, and other users' refusal is still checked before it.
BROKEN_FOR_EVERYONE = {"model version artifact (UI)"}


def assert_reads(server: Server, user: tuple[str, str], agency: str) -> None:
    for label, method, path, body in reads_of(server, agency):
        answer = call(server, user, method, path, body)
        if label in BROKEN_FOR_EVERYONE:
            assert answer.status_code == 500, f"{label}: {answer.status_code}"
            continue
        assert answer.ok, f"{label} of {agency}: {answer.status_code} {answer.text[:300]}"
        assert shows(answer, markers_of(server, agency)), f"{label} of {agency}: {answer.text}"


def test_an_agency_reads_and_writes_its_own(server, tmp_path):
    user = server.users["a"]
    assert_reads(server, user, A)
    for label, method, path, body in searches_across_everything(server):
        answer = call(server, user, method, path, body)
        assert answer.ok, f"{label}: {answer.status_code} {answer.text[:300]}"
    search = call(server, user, *searches_across_everything(server)[1][1:]).json()
    assert [run["info"]["run_id"] for run in search["runs"]] == [server.runs[A]]

    from mlflow.tracking import MlflowClient

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", user[0])
        patch.setenv("MLFLOW_TRACKING_PASSWORD", user[1])
        client = MlflowClient(server.url, server.url)
        run = client.create_run(server.experiments[A][f"agencyml/{A}/scoring"])
        client.log_metric(run.info.run_id, "rows", 10)
        client.log_text(run.info.run_id, "scored", "summary.txt")  # through the proxy
        downloaded = client.download_artifacts(run.info.run_id, "summary.txt", str(tmp_path))
        assert Path(downloaded).read_text() == "scored"
        client.set_registered_model_tag(MODEL[A], "reviewed", "yes")
        assert client.get_registered_model(MODEL[A]).tags["reviewed"] == "yes"


def test_the_auditor_reads_everything_and_writes_nothing(server):
    user = server.users["auditor"]
    for agency in (A, B):
        assert_reads(server, user, agency)
    for label, method, path, body in searches_across_everything(server)[:4]:
        answer = call(server, user, method, path, body)
        assert answer.ok, f"{label}: {answer.status_code} {answer.text[:300]}"
        assert shows(answer, markers_of(server, A)) and shows(answer, markers_of(server, B)), label
    writes = [
        (label, call(server, user, method, path, body))
        for agency in (A, B)
        for label, method, path, body in writes_to(server, agency)
    ]
    assert [label for label, answer in writes if not refused(answer)] == []
    assert_untouched(server)

    # While workspaces are off, MLflow lets every signed-in user create experiments and models
    # of its own (README, "what MLflow's auth does not cover"): they are the auditor's alone,
    # and agencyml's own names were all taken by the sync, so none can be claimed
    create = "/api/2.0/mlflow/experiments/create"
    assert call(server, user, "POST", create, {"name": "auditor/notes"}).ok
    claim = call(
        server, user, "POST", "/api/2.0/mlflow/registered-models/create", {"name": MODEL[B]}
    )
    assert not claim.ok and "RESOURCE_ALREADY_EXISTS" in claim.text
    seen = call(server, server.users["a"], *searches_across_everything(server)[0][1:])
    assert "auditor/notes" not in seen.text and f"agencyml/{A}" in seen.text


def test_anonymous_requests_get_nothing_and_write_nothing(server):
    everything = [
        *reads_of(server, A),
        *reads_of(server, B),
        *searches_across_everything(server),
        *writes_to(server, A),
        *writes_to(server, B),
    ]
    answers = {
        label: call(server, None, method, path, body) for label, method, path, body in everything
    }
    assert {
        label: answer.status_code for label, answer in answers.items() if answer.status_code != 401
    } == {}
    assert_untouched(server)


def assert_untouched(server: Server) -> None:
    """Seen as the admin: no write of the matrix went through."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(server.url, server.url)
    for agency in (A, B):
        experiment = client.get_experiment(server.experiments[agency][f"agencyml/{agency}"])
        assert experiment.name == f"agencyml/{agency}"
        runs = client.search_runs([experiment.experiment_id])
        assert [run.info.run_id for run in runs] == [server.runs[agency]]
        (run,) = runs
        assert "tampered" not in run.data.tags and run.info.lifecycle_stage == "active"
        history = client.get_metric_history(run.info.run_id, "roc_auc")
        assert [metric.step for metric in history] == [0, 1, 2]
        assert "tampered.txt" not in [item.path for item in client.list_artifacts(run.info.run_id)]
        model = client.get_registered_model(MODEL[agency])
        assert "tampered" not in model.tags
        assert [v.version for v in client.search_model_versions(f"name='{MODEL[agency]}'")] == ["1"]


def test_sync_says_what_is_wrong_with_the_server_or_the_admin(server, monkeypatch):
    invoke = CliRunner().invoke
    nobody = f"http://127.0.0.1:{free_port()}"
    down = invoke(app, ["mlflow-access", "sync", "--tracking-uri", nobody])
    assert down.exit_code == 15 and "does not answer" in down.output
    typo = invoke(app, ["mlflow-access", "sync", "--tracking-uri", server.url, "--rotate", "x"])
    assert typo.exit_code == 15 and "cannot rotate x: sync manages only" in typo.output

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    wrong = invoke(app, ["mlflow-access", "sync", "--tracking-uri", server.url])
    assert wrong.exit_code == 15 and "refused the credentials of 'admin'" in wrong.output

    username, password = server.users["b"]
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    not_admin = invoke(app, ["mlflow-access", "sync", "--tracking-uri", server.url])
    assert not_admin.exit_code == 15 and "is not an admin" in not_admin.output

    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    unset = invoke(app, ["mlflow-access", "sync", "--tracking-uri", server.url])
    assert unset.exit_code == 15 and "MLFLOW_TRACKING_PASSWORD" in unset.output
