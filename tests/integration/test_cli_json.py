"""Scriptable output: every command that prints a result takes --json and then writes exactly one
JSON document on stdout (progress, notices and errors on stderr), and tables on an 80-column
terminal never cut a batch id or a model name."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from flows.cli import app
from flows.cli.demo import scored_table, trained_table

runner = CliRunner()
FRAUD = "business-aid.fraud-risk"
TRIAGE = "product-safety.risk-triage"
MODELS = ("business-aid.case-routing", FRAUD, TRIAGE)


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args))


def one_document(*args: str, exit_code: int = 0) -> Any:
    """The command's stdout, which must be one JSON document and nothing else."""
    result = invoke(*args, "--json")
    assert result.exit_code == exit_code, f"{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def project(prefect_server, tmp_path_factory, make_small_project) -> dict[str, Any]:
    """A small project after `agencyml demo --json` (every use case trained, a held-out batch
    of each scored), with agencyml pointed at it and an 80-column terminal."""
    root = tmp_path_factory.mktemp("cli-json")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "AGENCYML_PROJECT_ROOT",
            str(make_small_project(root / "project", rasff_rows=2500, generated_rows=2500)),
        )
        patch.setenv("AGENCYML_HOME", str(root / "state"))
        patch.setenv("COLUMNS", "80")
        patch.chdir(root)
        demo = one_document("demo")
        yield {"root": root, "demo": demo, "batches": batch_ids(demo)}


def batch_ids(demo: dict[str, Any]) -> dict[str, str]:
    return {case["model_name"]: case["scored"]["batch_id"] for case in demo["use_cases"]}


def test_demo_json_names_every_model_and_batch(project):
    demo = project["demo"]
    assert {case["model_name"] for case in demo["use_cases"]} == set(MODELS)
    for case in demo["use_cases"]:
        assert case["trained_version"] == "1" and case["run_id"]
        assert case["scored"]["batch_id"].startswith("batch-")
        assert Path(case["scored"]["output_dir"], "manifest.json").is_file()
    assert {item["dataset"] for item in demo["ingested"]} >= {"applications", "rasff"}
    assert demo["dvc_remote"] is None  # not a git + DVC checkout


# (arguments, the keys the document has); {batch} is fraud-risk's held-out batch
READ_ONLY = [
    (["agencies"], {"use_cases"}),
    (["lineage", "{batch}"], {"kind", "label", "ids", "facts", "missing", "children"}),
    (["lineage", "--model", TRIAGE, "--version", "1"], {"kind", "ids", "children"}),
    (["history", TRIAGE, "--at", "2100-01-01"], {"model_name", "events", "champion_at"}),
    (["card", TRIAGE, "1"], {"model"}),
    (["evaluate", "-a", "product-safety", "-u", "risk-triage"], {"metrics", "model_version"}),
    (["validate", "-a", "business-aid", "-u", "fraud-risk"], {"success", "checks", "data_docs"}),
    (["ingest", "-a", "business-aid", "-d", "applications"], {"agency", "datasets"}),
    (["tokens", "list"], {"tokens"}),
    (["settings"], {"AGENCYML_HOME", "AGENCYML_PROJECT_ROOT", "AGENCYML_TOKEN"}),
    (["state-dir"], {"root", "tracking_uri", "outputs"}),
    (["sync"], {"files", "written", "use_cases"}),
    (["deploy", "--write", "--dry-run"], {"prefect_yaml", "matches", "registered"}),
    (["server", "--status"], {"running", "stopped"}),
]


@pytest.mark.parametrize(
    ("arguments", "keys"), READ_ONLY, ids=[" ".join(a[:1] + a[2:3]) for a, _ in READ_ONLY]
)
def test_json_is_one_document_on_stdout(project, arguments, keys):
    filled = [argument.format(batch=project["batches"][FRAUD]) for argument in arguments]
    # lineage says 12 when a link is missing (no git commit here); the document is still whole
    result = invoke(*filled, "--json")
    assert result.exit_code in ((0, 12) if filled[0] == "lineage" else (0,)), result.output
    document = json.loads(result.stdout)
    assert keys <= set(document), sorted(document)


def test_json_results_say_what_the_tables_say(project):
    agencies = one_document("agencies")["use_cases"]
    assert [case["registered_model"] for case in agencies] == list(MODELS)
    assert agencies[1] == {
        "agency": "business-aid",
        "use_case": "fraud-risk",
        "task": "binary",
        "registered_model": FRAUD,
        "description": agencies[1]["description"],
    }
    traced = invoke("lineage", project["batches"][FRAUD], "--json")
    assert project["batches"][FRAUD] in json.dumps(json.loads(traced.stdout))
    history = one_document("history", TRIAGE, "--at", "2100-01-01")
    assert history["champion_at"]["champion_version"] == "1"
    assert [event["action"] for event in history["events"]][-1:] == ["promote"]
    evaluated = one_document("evaluate", "-a", "product-safety", "-u", "risk-triage")
    assert evaluated["matches_training_run"] is True and 0.5 < evaluated["metrics"]["roc_auc"] <= 1
    settings = one_document("settings")
    assert settings["AGENCYML_HOME"] == str(project["root"] / "state")
    assert settings["AGENCYML_TOKEN"] is None


def test_sample_validate_and_score_json(project, tmp_path):
    batch = tmp_path / "batch.csv"
    sampled = one_document("sample", "-a", "business-aid", "-u", "fraud-risk", "-o", str(batch))
    assert sampled["output"] == str(batch) and sampled["rows"] > 0
    checked = one_document("validate", "-a", "business-aid", "-u", "fraud-risk", "-i", str(batch))
    assert checked["accepted"] is True and checked["checks"] and not checked["problems"]
    scored = one_document("score", "-a", "business-aid", "-u", "fraud-risk", "-i", str(batch))
    assert scored["newly_published"] is True and scored["rows"] == sampled["rows"]
    assert scored["model_name"] == FRAUD and re.fullmatch(r"batch-[0-9a-f]{20}", scored["batch_id"])
    # the progress bar went to stderr, so a pipe into jq still reads one document
    again = invoke("score", "-a", "business-aid", "-u", "fraud-risk", "-i", str(batch))
    assert scored["batch_id"] in again.stdout and "Batch already published" in again.stdout


def test_a_rejected_batch_still_prints_its_report_and_exits_4(project, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("nothing\n", encoding="utf-8")
    report = one_document(
        "validate", "-a", "business-aid", "-u", "fraud-risk", "-i", str(empty), exit_code=4
    )
    assert report["accepted"] is False and report["problems"]


def test_registry_commands_print_the_audit_event(project):
    trained = one_document("train", "-a", "business-aid", "-u", "fraud-risk")
    assert trained["model_name"] == FRAUD and trained["model_version"] == "2"
    assert trained["gate"]["decision"] == "hold"  # the same data: not better than v1
    assert {"run_id", "model_sha256", "metrics", "split_sizes"} <= set(trained)

    rejected = one_document("reject", FRAUD, "2", "--by", "ana", "--reason", "no better")
    assert rejected["action"] == "reject" and rejected["model_name"] == FRAUD

    # errors keep their exit codes and go to stderr; stdout says them as one document
    for refused in (
        ["approve", FRAUD, "1", "--by", "ana", "--reason", "x"],
        ["rollback", FRAUD, "--by", "ana", "--reason", "x"],
    ):
        result = invoke(*refused, "--json")
        assert result.exit_code == 10 and json.loads(result.stdout)["error"]["code"] == 10
        assert "error:" in result.stderr
    history = one_document("history", FRAUD)
    assert history["events"][-1]["seq"] == rejected["seq"]


def test_errors_go_to_stderr_with_their_exit_code(project):
    result = invoke("reproduce", "--model", TRIAGE, "--version", "1", "--json")
    assert result.exit_code == 7 and "records no git commit" in result.stderr
    assert "records no git commit" in json.loads(result.stdout)["error"]["message"]
    result = invoke("lineage", "batch-00000000000000000000", "--json")
    assert result.exit_code == 6 and "batch" in result.stderr
    said = json.loads(result.stdout)["error"]
    assert said["code"] == 6 and said["kind"] == "BatchNotFoundError"
    assert " ".join(said["message"].split()) in " ".join(result.stderr.split())


def test_tokens_json(project):
    created = new_token("ci")
    assert created["secret"] and created["agency"] == "business-aid"
    listed = one_document("tokens", "list")["tokens"]
    assert created["token_id"] in [token["token_id"] for token in listed]
    assert "secret" not in json.dumps(listed)
    revoked = one_document("tokens", "revoke", created["token_id"])
    assert revoked["token_id"] == created["token_id"] and revoked["revoked_at"]


def test_project_commands_json(project, tmp_path, monkeypatch):
    made = one_document("init", str(tmp_path / "platform"))
    assert made["root"] == str(tmp_path / "platform") and made["params"]

    generated = one_document("generate", "-o", str(tmp_path / "apps.parquet"), "--rows", "300")
    assert generated == {"output": str(tmp_path / "apps.parquet"), "rows": 300}

    monkeypatch.setenv("AGENCYML_PROJECT_ROOT", made["root"])
    drafted = one_document("new-agency", "tax", "--from", str(tmp_path / "apps.parquet"))
    assert drafted["agency"] == "tax" and drafted["to_fill_in"] == ["target", "positive_class"]
    assert drafted["rows"] == 300 and {"name", "kind"} <= set(drafted["columns"][0])


def test_pull_json(project, serve, tmp_path):
    created = new_token("puller")
    with serve(tmp_path / "service.log") as service:
        pulled = one_document(
            "pull", "-a", "business-aid", "--batch", project["batches"][FRAUD],
            "-o", str(tmp_path / "batch.parquet"), "--url", service["url"],
            "--token", created["secret"],
        )  # fmt: skip
    assert pulled["batch_id"] == project["batches"][FRAUD] and pulled["bytes"] > 0
    log = one_document("access-log")
    assert 200 in [entry["status"] for entry in log["entries"]]


def cut_ids(text: str, ids: list[str]) -> list[str]:
    """The ids not shown whole on one line; an ellipsis anywhere means something was cut."""
    return [i for i in ids if i not in text] + (["…"] if "…" in text else [])


def new_token(name: str) -> dict[str, Any]:
    return one_document("tokens", "create", "--name", name, "--agency", "business-aid")


NARROW = [
    (["agencies"], lambda p: list(MODELS)),
    (["score", "-a", "business-aid", "-u", "fraud-risk", "-i", "{holdout}"], lambda p: [
        p["batches"][FRAUD], FRAUD]),
    (["ingest", "-a", "product-safety"], lambda p: ["rasff"]),
    (["tokens", "list"], lambda p: [new_token("narrow")["token_id"], "business-aid"]),
    (["history", TRIAGE], lambda p: [TRIAGE]),
    (["settings"], lambda p: ["AGENCYML_PREFECT_SERVER", "AGENCYML_MLFLOW_UI_URL"]),
]  # fmt: skip


@pytest.mark.parametrize(("arguments", "ids"), NARROW, ids=[a[0] for a, _ in NARROW])
def test_tables_at_80_columns_keep_ids_whole(
    project, arguments: list[str], ids: Callable[[dict[str, Any]], list[str]]
):
    holdout = next((project["root"] / "state").rglob("holdout-batch.parquet"))
    filled = [argument.format(holdout=holdout) for argument in arguments]
    whole = ids(project)
    result = invoke(*filled)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert cut_ids(result.stdout, whole) == []


def test_demo_tables_at_80_columns_keep_ids_whole(project):
    results = [
        (
            SimpleNamespace(
                model_name=case["model_name"],
                model_version=case["trained_version"],
                metrics=case["metrics"],
            ),
            SimpleNamespace(**case["scored"]),
        )
        for case in project["demo"]["use_cases"]
    ]
    screen = Console(file=io.StringIO(), width=80)
    screen.print(trained_table(results))
    screen.print(scored_table(results))
    shown = screen.file.getvalue()
    assert max(len(line) for line in shown.splitlines()) <= 80
    assert cut_ids(shown, [*MODELS, *project["batches"].values()]) == []
