"""Tracing a scored batch back to its code, params, data and validation, and the model card of
the version that scored it, against real MLflow and Prefect runs on small data."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from rich.console import Console
from typer.testing import CliRunner

from flows.cli import app
from flows.score import score
from flows.train import train
from pipelines.config import load_use_case
from pipelines.data.storage import file_sha256
from pipelines.paths import state_dir
from pipelines.registry.model_card import collect_card_facts, render_html, render_markdown
from pipelines.registry.trace import (
    BatchNotFoundError,
    render_tree,
    trace_batch,
    trace_model,
)
from pipelines.registry.tracking import ModelNotFoundError
from pipelines.scoring.batches import write_holdout_batch
from pipelines.validation.gate import BatchRejectedError

AGENCY, USE_CASE = "business-aid", "fraud-risk"
MODEL = f"{AGENCY}.{USE_CASE}"


def train_and_score() -> tuple[Any, Path, Any, MlflowClient]:
    """Version 1 (champion: the gate promotes a first version) scores the holdout batch."""
    trained = train(AGENCY, USE_CASE)
    state = state_dir()
    batch_path = write_holdout_batch(load_use_case(AGENCY, USE_CASE), state)
    result = score(AGENCY, USE_CASE, str(batch_path))
    return trained, batch_path, result, MlflowClient(state.tracking_uri, state.tracking_uri)


def test_a_scored_batch_traces_to_every_record_that_produced_it(
    prefect_server, small_project, tmp_path
):
    trained, batch_path, result, client = train_and_score()
    state = state_dir()

    tree = trace_batch(result.batch_id, state)

    assert tree.complete(), json.dumps(tree.to_dict(), indent=1)
    assert all(not node.missing for node in tree.walk())
    kinds = [node.kind for node in tree.walk()]
    assert kinds == [
        "scored batch",
        "scoring run",
        "validation",
        "model version",
        "approval",
        "training run",
        "git commit",
        "params",
        "dataset",
        "validation",
    ]

    # the batch, as both its manifests describe it
    rows = len(pd.read_parquet(batch_path))
    assert tree.ids == {"batch_id": result.batch_id}
    assert tree.facts["input sha256"] == file_sha256(batch_path)
    assert tree.facts["rows scored"] == str(rows) == tree.facts["rows in"]
    assert tree.facts["output path"] == str(result.output_dir)
    manifest = json.loads((result.output_dir / "manifest.json").read_text())
    assert tree.facts["scored at"] == manifest["created_at"]

    # the scoring run: the one the flow recorded, and the one tagged with the batch id
    [scoring] = tree.children
    [tagged] = client.search_runs(
        [scoring.ids["experiment_id"]], f"tags.`agencyml.batch_id` = '{result.batch_id}'"
    )
    assert scoring.kind == "scoring run"
    assert scoring.ids["run_id"] == result.run_id == tagged.info.run_id
    assert (
        scoring.ids["ui_path"] == f"#/experiments/{tagged.info.experiment_id}/runs/{result.run_id}"
    )
    assert scoring.facts["experiment"] == f"agencyml/{AGENCY}/scoring"
    assert scoring.facts["validation result id"] == manifest["validation"]["result_id"]
    batch_checks, version = scoring.children
    assert batch_checks.facts["success"] == "yes"
    assert batch_checks.facts["result id"] == manifest["validation"]["result_id"]
    assert batch_checks.facts["data docs"] == "validation/data_docs/index.html"

    # the model version that scored it, and the run that trained it
    registered = client.get_model_version(MODEL, "1")
    assert version.ids["model_name"] == MODEL and version.ids["version"] == "1"
    assert version.ids["ui_path"] == f"#/models/{MODEL}/versions/1"
    assert "champion" in version.facts["aliases"]
    assert version.facts["model_sha256"] == trained.model_sha256
    approval, training = version.children
    assert approval.label == "not required: the gate promoted it"
    assert approval.facts["gate decision"] == "promote"
    assert training.ids["run_id"] == registered.run_id == trained.run_id
    assert training.facts["roc_auc"] == f"{trained.metrics['roc_auc']:.4f}"
    run = client.get_run(trained.run_id)

    git, params, dataset, training_checks = training.children
    commit = run.data.tags["agencyml.git_commit"]
    assert git.facts["commit"] == commit
    assert git.facts["dirty"] == run.data.tags["agencyml.git_dirty"]
    if commit == "unknown":  # the small project is no git checkout: the node says so
        assert "outside a git checkout" in git.facts["note"]

    params_file = small_project / "params" / f"{AGENCY}.yaml"
    assert params.facts["params_sha256"] == file_sha256(params_file)
    assert params.facts["params file"] == f"params/{AGENCY}.yaml"
    assert params.facts["current file matches"] == "yes"
    assert training.facts["params_sha256"] == file_sha256(params_file)

    ingested = small_project / "data" / "ingested" / AGENCY / "applications.parquet"
    md5 = hashlib.md5(ingested.read_bytes(), usedforsecurity=False).hexdigest()
    assert dataset.facts["md5"] == md5 == dataset.ids["dataset_digest"]
    assert dataset.facts["dvc_path"] == f"data/ingested/{AGENCY}/applications.parquet"
    assert dataset.facts["dvc_status"] == "untracked"  # no DVC repository here, and it says so
    assert dataset.facts["source"].startswith("generator:business-aid")
    assert dataset.facts["rows"] == str(sum(trained.split_sizes.values()))

    assert training_checks.label == "training data checks"
    assert training_checks.facts["success"] == "yes"
    assert training_checks.facts["result id"] == run.data.tags["agencyml.validation_result_id"]
    assert training_checks.facts["data docs"] == "validation/data_docs/index.html"

    # the same tree from the model's end, as JSON, and for the terminal
    assert trace_model(MODEL, "1", state).to_dict() == version.to_dict()
    with pytest.raises(ModelNotFoundError, match="its versions are 1"):
        trace_model(MODEL, "99", state)
    assert json.loads(json.dumps(tree.to_dict()))["children"][0]["ids"]["run_id"] == result.run_id
    console = Console(record=True, width=200)
    console.print(render_tree(tree))
    shown = console.export_text()
    assert result.batch_id in shown and trained.run_id in shown and "missing" not in shown
    # whole links for the terminal, and the gate's long JSON left to --json and the card
    assert f"open: http://127.0.0.1:5000/#/models/{MODEL}/versions/1" in shown
    assert "agencyml.gate.result" not in shown and "tag agencyml.gate.result" in version.facts
    assert tree.facts["drift report"] == str(result.output_dir / "drift.html")
    assert version.facts["model card"] == f"model_card/model_card.html on run {trained.run_id}"
    # the card logged on the run embeds the run's plots, for auditors who stay in MLflow
    logged = Path(
        client.download_artifacts(trained.run_id, "model_card/model_card.html", str(tmp_path))
    )
    card = logged.read_text()
    assert 'alt="ROC curve on the holdout rows"' in card
    assert card.count("data:image/png;base64,") >= 6
    printed = CliRunner().invoke(app, ["card", MODEL, "1", "-o", str(tmp_path / "card")])
    assert printed.exit_code == 0, printed.output
    assert "# Model card: business-aid.fraud-risk v1" in printed.output
    written = (tmp_path / "card" / "model_card.html").read_text()
    assert written.count("data:image/png;base64,") == card.count("data:image/png;base64,")

    # the model card of that version states its real figures
    facts = collect_card_facts(MODEL, "1", state)
    markdown = render_markdown(facts)
    assert f"{trained.metrics['roc_auc']:.4f}" in markdown
    assert md5 in markdown and trained.model_sha256 in markdown
    assert file_sha256(params_file) in markdown
    assert "Flag applications for a fraud check" in markdown
    assert "synthetic data" in markdown  # a generated limitation of this small project
    page = render_html(facts)
    assert f"{trained.metrics['roc_auc']:.4f}" in page and md5 in page


def test_broken_links_are_reported_not_raised(prefect_server, small_project):
    trained, batch_path, result, client = train_and_score()
    state = state_dir()
    shutil.rmtree(result.output_dir)
    artifacts = Path(client.get_run(trained.run_id).info.artifact_uri.removeprefix("file://"))
    (artifacts / "validation" / "training_data.json").unlink()

    tree = trace_batch(result.batch_id, state)

    assert not tree.complete()
    assert any("does not exist" in problem for problem in tree.missing)
    [training_checks] = [n for n in tree.find("validation") if n.label == "training data checks"]
    assert training_checks.missing == [
        f"run {trained.run_id} has no validation/training_data.json artifact"
    ]
    assert tree.find("dataset")[0].missing == []  # the rest of the tree is still followed
    console = Console(record=True, width=200)
    console.print(render_tree(tree))
    assert "missing: run" in console.export_text()

    # a batch the gate rejected ends at the run that says why, and its quarantined input
    bad = pd.read_parquet(batch_path).assign(scheme="no-such-scheme")
    bad_path = batch_path.with_name("bad.parquet")
    bad.to_parquet(bad_path)
    with pytest.raises(BatchRejectedError) as rejection:
        score(AGENCY, USE_CASE, str(bad_path))
    rejected_id = Path(rejection.value.quarantine_dir).name
    rejected = trace_batch(rejected_id, state)
    assert rejected.kind == "rejected batch" and rejected.complete()
    assert rejected.facts["input sha256"] == file_sha256(bad_path)
    assert "max_quarantine_fraction" in rejected.facts["problems"]
    [run_node] = rejected.children
    assert run_node.facts["status"] == "FAILED"
    assert run_node.children[0].facts["success"] == "no"


def test_an_unknown_batch_or_version_says_where_it_looked(prefect_server, small_project):
    state = state_dir()
    with pytest.raises(BatchNotFoundError, match="no batch 'batch-0000'") as raised:
        trace_batch("batch-0000", state)
    assert str(state.outputs_dir) in str(raised.value)
    assert "agencyml.batch_id" in str(raised.value)
    with pytest.raises(BatchNotFoundError):
        trace_batch("x' OR '1'='1", state)
    with pytest.raises(ModelNotFoundError, match=r"no model 'business-aid\.fraud-risk'"):
        trace_model(MODEL, "1", state)
    with pytest.raises(ModelNotFoundError):
        collect_card_facts(MODEL, "1", state)
