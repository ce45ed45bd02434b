"""Train then score each agency's use cases, on small data, against real MLflow and Prefect."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightgbm
import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from flows.score import score
from flows.train import train
from pipelines.config import UnknownUseCaseError, load_use_case
from pipelines.data.storage import InputFileError, file_sha256
from pipelines.paths import state_dir
from pipelines.registry import tracking
from pipelines.registry.tracking import ModelNotFoundError
from pipelines.scoring.batches import write_holdout_batch

USE_CASES = [
    ("product-safety", "risk-triage"),
    ("business-aid", "fraud-risk"),
    ("business-aid", "case-routing"),
]


def batch_dirs(agency: str, use_case: str) -> list[Path]:
    folder = state_dir().output_dir(agency, use_case)
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize(("agency", "use_case"), USE_CASES)
def test_train_registers_a_champion_and_score_publishes_a_traceable_batch(
    prefect_server, small_project, agency, use_case
):
    trained = train(agency, use_case)

    assert trained.model_name == f"{agency}.{use_case}"
    assert trained.model_version == "1"
    assert "champion" in trained.aliases
    client = MlflowClient(state_dir().tracking_uri)
    champion = client.get_model_version_by_alias(trained.model_name, "champion")
    assert champion.tags["agencyml.run_id"] == trained.run_id
    run = client.get_run(trained.run_id)
    assert run.data.params["lightgbm.num_iterations"] == "60"
    assert run.data.tags["agencyml.params_sha256"]
    headline = "roc_auc" if use_case != "case-routing" else "macro_f1"
    assert 0.5 < run.data.metrics[headline] <= 1.0
    plots = {item.path for item in client.list_artifacts(trained.run_id, "plots")}
    assert "plots/confusion_matrix.png" in plots and "plots/feature_importance.png" in plots
    # the model's requirements are declared and pinned to what trained it, LightGBM included
    requirements = Path(
        mlflow.artifacts.download_artifacts(f"models:/{trained.model_name}/1/requirements.txt")
    ).read_text()
    assert f"lightgbm=={lightgbm.__version__}" in requirements.splitlines()

    batch_path = write_holdout_batch(load_use_case(agency, use_case), state_dir())
    batch = pd.read_parquet(batch_path)
    result = score(agency, use_case, str(batch_path))

    assert result.newly_published and result.rows == len(batch)
    scored = pd.read_parquet(result.output_dir / "scored.parquet")
    id_column = load_use_case(agency, use_case).params.id_column
    assert list(scored[id_column]) == list(batch[id_column])
    assert {"predicted_label", "decision", "batch_id", "model_name", "model_version"} <= set(
        scored.columns
    )
    assert set(scored["model_version"]) == {"1"} and set(scored["batch_id"]) == {result.batch_id}
    score_columns = [c for c in scored.columns if c.startswith(("probability", "proba_"))]
    assert score_columns and scored[score_columns].to_numpy().min() >= 0
    manifest = pd.read_json(result.output_dir / "manifest.json", typ="series")
    assert manifest["input"]["sha256"] == file_sha256(batch_path)
    assert manifest["model"]["version"] == "1" and manifest["rows"]["scored"] == len(batch)
    scoring_run = client.get_run(result.run_id)
    assert scoring_run.data.tags["agencyml.batch_id"] == result.batch_id
    assert scoring_run.data.tags["agencyml.model_version"] == "1"


def test_rescoring_returns_the_existing_batch_and_retraining_keeps_the_champion(
    prefect_server, small_project
):
    first_model = train("business-aid", "fraud-risk")
    batch_path = write_holdout_batch(load_use_case("business-aid", "fraud-risk"), state_dir())
    first = score("business-aid", "fraud-risk", str(batch_path))
    again = score("business-aid", "fraud-risk", str(batch_path))

    assert again.batch_id == first.batch_id and not again.newly_published
    assert batch_dirs("business-aid", "fraud-risk") == [first.output_dir]

    second = train("business-aid", "fraud-risk")
    assert second.model_version == "2" and "champion" not in second.aliases
    champion = tracking.load_model("business-aid.fraud-risk", state_dir())
    assert champion.version == "1"
    # the bundle alone, read from its artifact files without the pyfunc, is the same model
    found, bundle = tracking.load_bundle("business-aid.fraud-risk", state_dir())
    assert (found.version, found.run_id) == ("1", champion.run_id)
    assert bundle.to_texts() == champion.bundle.to_texts()
    assert not (Path.cwd() / "mlflow.db").exists(), "MLflow must only write to the state dir"

    # training is deterministic: the same data and params give the same model and metrics
    assert second.metrics == first_model.metrics
    booster = [
        Path(mlflow.artifacts.download_artifacts(f"models:/business-aid.fraud-risk/{v}"))
        / "artifacts"
        / "booster.txt"
        for v in (1, 2)
    ]
    assert booster[0].read_bytes() == booster[1].read_bytes()


def test_training_records_its_data_lineage_on_the_run_and_the_model_version(
    prefect_server, small_project
):
    trained = train("product-safety", "risk-triage")
    client = MlflowClient(state_dir().tracking_uri, state_dir().tracking_uri)
    run = client.get_run(trained.run_id)
    raw_file = small_project / "data" / "product-safety" / "RASFF_data.csv.gz"
    tags = run.data.tags
    assert tags["agencyml.data.training.source"] == "data/product-safety/RASFF_data.csv.gz"
    assert tags["agencyml.data.training.file_sha256"] == file_sha256(raw_file)
    assert int(tags["agencyml.data.training.rows"]) == sum(trained.split_sizes.values())
    [dataset_input] = run.inputs.dataset_inputs
    assert dataset_input.dataset.name == "training"
    ingested = small_project / "data" / "ingested" / "product-safety" / "rasff.parquet"
    md5 = hashlib.md5(ingested.read_bytes(), usedforsecurity=False).hexdigest()
    assert dataset_input.dataset.digest == tags["agencyml.data.training.md5"] == md5
    assert tags["agencyml.data.training.dvc_path"] == "data/ingested/product-safety/rasff.parquet"
    # this small project is no DVC repository: nothing records the file, and the tag says so
    assert tags["agencyml.data.training.dvc_status"] == "untracked"
    version = client.get_model_version("product-safety.risk-triage", trained.model_version)
    for key in (
        "agencyml.data.training.digest",
        "agencyml.data.training.md5",
        "agencyml.git_commit",
        "agencyml.params_sha256",
        "agencyml.model_sha256",
    ):
        assert version.tags[key] == tags[key]


def test_scoring_before_any_training_says_how_to_train(prefect_server, small_project, tmp_path):
    batch = tmp_path / "batch.parquet"
    pd.DataFrame({"application_id": ["a"]}).to_parquet(batch)
    with pytest.raises(ModelNotFoundError, match="agencyml train --agency business-aid"):
        score("business-aid", "fraud-risk", str(batch))


def test_a_missing_file_or_unknown_use_case_fails_before_anything_is_written(
    prefect_server, small_project, tmp_path
):
    """The other bad inputs are the validation gate's battery (test_validation_gate.py)."""
    train("business-aid", "fraud-risk")
    with pytest.raises(InputFileError, match="not found"):
        score("business-aid", "fraud-risk", str(tmp_path / "missing.parquet"))
    with pytest.raises(UnknownUseCaseError, match="case-routing, fraud-risk"):
        score("business-aid", "no-such-use-case", str(tmp_path / "missing.parquet"))
    assert batch_dirs("business-aid", "fraud-risk") == []
    assert not state_dir().quarantine_dir.exists()


def test_each_scored_batch_reports_its_drift_from_the_training_reference(
    prefect_server, small_project, tmp_path
):
    train("business-aid", "fraud-risk")
    spec = load_use_case("business-aid", "fraud-risk")
    holdout = write_holdout_batch(spec, state_dir())

    same = score("business-aid", "fraud-risk", str(holdout))

    # the holdout comes from the same generator as the reference: nothing alerts
    manifest = json.loads((same.output_dir / "manifest.json").read_text())
    assert same.drift_level in {"ok", "warn"} and same.drifted == []
    assert {p.name for p in same.output_dir.iterdir()} >= {"drift.html", "drift.png"}
    columns = {c["column"]: c for c in manifest["drift"]["columns"]}
    assert set(columns) >= {"requested_amount_dkk", "region", "scheme"}
    assert all(c["psi"] < 0.25 for c in columns.values())
    assert "region" in (same.output_dir / "drift.html").read_text()

    # every application now from one region: that feature alerts, and the run records it
    shifted = tmp_path / "one-region.parquet"
    pd.read_parquet(holdout).assign(region="nordjylland").to_parquet(shifted)
    moved = score("business-aid", "fraud-risk", str(shifted))

    assert moved.drift_level == "alert" and moved.drifted == ["region"]
    client = MlflowClient(state_dir().tracking_uri, state_dir().tracking_uri)
    run = client.get_run(moved.run_id)
    assert run.data.tags["agencyml.drift_level"] == "alert"
    assert run.data.metrics["drift.psi.region"] > 0.25
