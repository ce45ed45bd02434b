"""dvc.yaml works: `dvc repro` trains and evaluates, reproducibly, from a commit and md5s alone."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from pipelines.config import list_datasets, list_use_cases
from pipelines.paths import PACKAGE_ROOT

BIN = Path(sys.executable).parent
CLI = [sys.executable, "-m", "flows"]


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def locked_md5(root: Path, stage: str) -> str:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return lock["stages"][stage]["outs"][0]["md5"]


FRAUD = "evaluate@business-aid-fraud-risk"


def test_dvc_repro_runs_ingest_validate_train_evaluate_reproducibly(dvc_project):
    root = dvc_project.root
    ran = dvc_project.run("dvc", "repro", FRAUD)
    for stage in ("ingest@business-aid-applications", "validate@business-aid-fraud-risk"):
        assert f"Running stage '{stage}'" in ran
    assert ran.index("'train@business-aid-fraud-risk'") < ran.index(f"'{FRAUD}'")

    # metrics and plots are declared: dvc shows them
    metrics_file = root / "metrics" / "business-aid" / "fraud-risk.json"
    metrics = json.loads(metrics_file.read_text())
    assert 0.5 < metrics["roc_auc"] <= 1
    shown = json.loads(dvc_project.run("dvc", "metrics", "show", "--json"))
    assert "roc_auc" in json.dumps(shown)
    plots = root / "plots" / "business-aid" / "fraud-risk"
    assert {p.name for p in plots.iterdir()} == {"roc.csv", "precision_recall.csv", "confusion.csv"}
    rendered = json.loads(dvc_project.run("dvc", "plots", "show", "--json"))
    assert any(name.endswith("fraud-risk/roc.csv") for name in rendered["data"])
    assert "roc_auc" in dvc_project.run("dvc", "exp", "show", "--json")
    report = json.loads((root / "reports/business-aid/fraud-risk/validation.json").read_text())
    assert report["success"] is True

    # the model version records the DVC path, md5, stage and remote of its data
    data = "data/ingested/business-aid/applications.parquet"
    md5 = locked_md5(root, "ingest@business-aid-applications")
    assert md5 == md5_of(root / data)
    client = mlflow_client(dvc_project.state)
    [first] = client.search_model_versions("name='business-aid.fraud-risk'")
    tags = first.tags
    assert tags["agencyml.data.training.dvc_path"] == data
    assert tags["agencyml.data.training.md5"] == tags["agencyml.data.training.dvc_md5"] == md5
    assert tags["agencyml.data.training.dvc_status"] == "tracked"
    assert tags["agencyml.data.training.dvc_stage"] == "ingest@business-aid-applications"
    assert tags["agencyml.data.training.dvc_remote"] == "local"
    assert tags["agencyml.data.training.dvc_remote_url"] == str(dvc_project.remote)
    assert tags["agencyml.git_commit"] == dvc_project.git("rev-parse", "HEAD").strip()
    assert len(tags["agencyml.params_sha256"]) == 64
    [dataset_input] = client.get_run(first.run_id).inputs.dataset_inputs
    assert dataset_input.dataset.digest == md5
    assert data in dataset_input.dataset.source

    # nothing changed: nothing reruns
    again = dvc_project.run("dvc", "repro", FRAUD)
    assert "Running stage" not in again
    assert len(client.search_model_versions("name='business-aid.fraud-risk'")) == 1

    # forced to run again, training gives identical metrics and an identical model file
    metrics_before = metrics_file.read_bytes()
    dvc_project.run("dvc", "repro", "--force", "--single-item", "train@business-aid-fraud-risk")
    dvc_project.run("dvc", "repro", "--force", "--single-item", FRAUD)
    assert metrics_file.read_bytes() == metrics_before
    second = client.get_model_version("business-aid.fraud-risk", "2")
    assert second.tags["agencyml.model_sha256"] == tags["agencyml.model_sha256"]
    assert client.get_run(second.run_id).data.metrics == client.get_run(first.run_id).data.metrics

    # an experiment with a changed hyper-parameter retrains and shows up in MLflow too
    setting = "params/business-aid.yaml:use_cases.fraud-risk.lightgbm.learning_rate=0.2"
    experiment = dvc_project.run("dvc", "exp", "run", "-n", "faster", "-S", setting, FRAUD)
    assert "Running stage 'ingest@" not in experiment  # only what the setting touches reruns
    [third] = client.search_model_versions("name='business-aid.fraud-risk' and version_number=3")
    experiment_run = client.get_run(third.run_id)
    assert experiment_run.data.params["lightgbm.learning_rate"] == "0.2"
    assert experiment_run.data.tags["agencyml.dvc_experiment"] == "faster"
    assert third.tags["agencyml.model_sha256"] != tags["agencyml.model_sha256"]
    assert "faster" in dvc_project.run("dvc", "exp", "show", "--json")


def mlflow_client(state: Path) -> MlflowClient:
    uri = f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_dvc_yaml_has_stages_for_every_dataset_and_use_case():
    stages = yaml.safe_load((PACKAGE_ROOT / "dvc.yaml").read_text())["stages"]
    datasets = {(i["agency"], i["dataset"]) for i in stages["ingest"]["foreach"].values()}
    assert datasets == {(d.agency, d.name) for d in list_datasets()}
    for name in ("validate", "train", "evaluate"):
        declared = {
            (i["agency"], i["use_case"], i["dataset"]) for i in stages[name]["foreach"].values()
        }
        assert declared == {(s.agency, s.name, s.data.name) for s in list_use_cases()}


def reproduce(project, version: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "reproduce", "-m", "business-aid.fraud-risk", "-V", version],
        cwd=project.root,
        env={**project.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_a_version_is_reproduced_from_its_commit_and_md5_alone(dvc_project):
    """The acceptance path: train with `dvc repro`, commit, push; then with no local data and
    an empty cache, the recorded commit and md5 restore the data and the metrics match."""
    root = dvc_project.root
    dvc_project.run("dvc", "repro", "train@business-aid-fraud-risk")
    dvc_project.git("add", "-A")
    dvc_project.git("commit", "-qm", "trained fraud-risk")
    dvc_project.run("dvc", "push")
    data = root / "data" / "ingested" / "business-aid" / "applications.parquet"
    md5 = md5_of(data)
    data.unlink()
    shutil.rmtree(root / ".dvc" / "cache")

    done = reproduce(dvc_project, "1")

    assert done.returncode == 0, done.stderr
    assert "reproduced exactly" in done.stdout
    assert f"restored data/ingested/business-aid/applications.parquet (md5 {md5})" in done.stdout
    for fact in ("roc_auc", "agencyml.model_sha256", "agencyml.data.training.md5"):
        assert fact in done.stdout

    # the remote's copy corrupted (and no cache to fall back on): refused, with a clear error
    shutil.rmtree(root / ".dvc" / "cache")
    remote_object = dvc_project.remote / "files" / "md5" / md5[:2] / md5[2:]
    remote_object.chmod(0o644)
    remote_object.write_bytes(remote_object.read_bytes()[::-1])

    refused = reproduce(dvc_project, "1")

    assert refused.returncode == 7
    assert "DVC found no intact copy" in refused.stderr and md5 in refused.stderr
    assert "reproduced" not in refused.stdout


def test_reproduce_detects_a_version_trained_from_uncommitted_changes(dvc_project):
    cli = [*CLI]
    dvc_project.run(*cli, "train", "-a", "business-aid", "-u", "fraud-risk")

    # trained outside DVC: the data is re-ingested from the commit's sources and compared
    reproduced = reproduce(dvc_project, "1")
    assert reproduced.returncode == 0, reproduced.stderr
    assert "reproduced exactly" in reproduced.stdout
    assert "re-ingested from the commit's sources" in reproduced.stdout

    # version 2 is trained from an uncommitted change, so its commit cannot reproduce it
    params = dvc_project.root / "params" / "business-aid.yaml"
    params.write_text(params.read_text().replace("learning_rate: 0.03", "learning_rate: 0.2"))
    dvc_project.run(*cli, "train", "-a", "business-aid", "-u", "fraud-risk")
    differs = reproduce(dvc_project, "2")
    assert differs.returncode == 8
    assert "uncommitted changes" in differs.stdout
    assert "agencyml.params_sha256" in differs.stderr

    missing = reproduce(dvc_project, "9")
    assert missing.returncode == 6 and "no version 9" in missing.stderr


def test_two_processes_using_dvc_at_once_both_succeed(dvc_project, tmp_path):
    """DVC's own repo lock fails at once when held; agencyml serialises its DVC operations."""
    sources = []
    for index in range(2):
        source = tmp_path / f"input-{index}.csv"
        source.write_text(f"application_id\nBA-{index}\n")
        sources.append(source)
    code = (
        "import sys; from pathlib import Path; "
        "from pipelines.data.versioning import store_with_dvc; "
        "print(store_with_dvc(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]).md5)"
    )
    commands = [
        [sys.executable, "-c", code, str(source), str(dvc_project.root), f"data/in/{source.name}"]
        for source in sources
    ]
    # and two ingests, each committing its output to dvc.lock and pushing it
    commands += [[*CLI, "ingest", "-a", agency] for agency in ("business-aid", "product-safety")]
    workers = [
        subprocess.Popen(
            command,
            cwd=dvc_project.root,
            env=dvc_project.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    outcomes = [worker.communicate(timeout=600) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0, 0], outcomes
    status = dvc_project.run("dvc", "status", "--cloud", "--json")
    assert json.loads(status) == {}, "every file is in the remote"
    for source in sources:
        assert (dvc_project.root / "data" / "in" / f"{source.name}.dvc").is_file()
    for dataset in list_datasets():
        recorded = locked_md5(dvc_project.root, dataset.stage)
        assert recorded == md5_of(dvc_project.root / dataset.path)


def test_score_with_store_input_keeps_the_exact_input_in_dvc(dvc_project, tmp_path):
    dvc_project.run(*CLI, "train", "-a", "business-aid", "-u", "fraud-risk")
    batch = tmp_path / "batch.csv"
    from pipelines.data.business_aid import generate_applications

    generate_applications(50, seed=3).drop(columns=["is_fraud", "review_track"]).to_csv(
        batch, index=False
    )
    dvc_project.run(
        *CLI, "score", "-a", "business-aid", "-u", "fraud-risk", "-i", str(batch), "--store-input"
    )
    [manifest_file] = (dvc_project.state / "outputs").rglob("manifest.json")
    stored = json.loads(manifest_file.read_text())["input"]
    kept = dvc_project.root / stored["dvc_path"]
    assert kept.read_bytes() == batch.read_bytes()
    assert stored["dvc_remote"] == "local" and len(stored["dvc_md5"]) == 32
    kept.unlink()  # an auditor restores it from the remote
    dvc_project.run("dvc", "pull", f"{stored['dvc_path']}.dvc")
    assert kept.read_bytes() == batch.read_bytes()


def test_a_new_agency_is_ingested_after_sync_with_no_hand_edit(dvc_project):
    """A params file alone: ingest refuses, writing nothing, until `agencyml sync` has written
    dvc.yaml; then it ingests and DVC records the new stage."""
    from pipelines.data.business_aid import generate_applications

    root = dvc_project.root
    (root / "data" / "tax-office").mkdir(parents=True)
    generate_applications(300, seed=4).to_csv(root / "data" / "tax-office" / "claims.csv")
    params = yaml.safe_load((root / "params" / "business-aid.yaml").read_text())
    params["agency"] = "tax-office"
    params["datasets"] = {
        "claims": {"kind": "file", "reader": "csv", "path": "data/tax-office/claims.csv"}
    }
    params["use_cases"] = {"claim-risk": {**params["use_cases"]["fraud-risk"], "dataset": "claims"}}
    (root / "params" / "tax-office.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc_project.git("add", "-A")
    dvc_project.git("commit", "-qm", "a new agency")

    refused = subprocess.run(
        [*CLI, "ingest", "--agency", "tax-office"],
        cwd=root,
        env={**dvc_project.env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert refused.returncode == 14, refused.stderr[-2000:]
    assert "does not match params/" in refused.stderr and "agencyml sync" in refused.stderr
    assert not (root / "data" / "ingested" / "tax-office").exists()

    dvc_project.run(*CLI, "sync")
    dvc_project.run(*CLI, "sync", "--check")
    dvc_project.run(*CLI, "ingest", "--agency", "tax-office")

    assert locked_md5(root, "ingest@tax-office-claims") == md5_of(
        root / "data" / "ingested" / "tax-office" / "claims.parquet"
    )
    status = dvc_project.run("dvc", "status", "--json", "ingest@tax-office-claims")
    assert json.loads(status) == {}  # recorded: nothing for DVC to redo
