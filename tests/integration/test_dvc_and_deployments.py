"""dvc.yaml and prefect.yaml work: `dvc repro` trains, `prefect deploy --all` registers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient
from prefect.settings import PREFECT_API_URL

from pipelines.config import list_use_cases
from pipelines.paths import PACKAGE_ROOT

BIN = Path(sys.executable).parent


def run(command: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def dvc_repo(project_copy: Path, tmp_path: Path) -> dict[str, str]:
    """project_copy as a git + DVC repository with a local default remote; returns its env."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "AGENCYML_PROJECT_ROOT": str(project_copy),
        "AGENCYML_HOME": str(tmp_path / "state"),
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    env.pop("PREFECT_API_URL", None)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    run([*git, "init", "-q"], project_copy, env)
    run(["dvc", "init", "-q"], project_copy, env)
    run(["dvc", "remote", "add", "-d", "local", str(tmp_path / "remote")], project_copy, env)
    run([*git, "add", "-A"], project_copy, env)
    run([*git, "commit", "-qm", "copy"], project_copy, env)
    return env


def test_dvc_repro_trains_and_skips_when_nothing_changed(project_copy, tmp_path):
    env = dvc_repo(project_copy, tmp_path)
    state = tmp_path / "state"

    stage = "train@business-aid-fraud-risk"
    run(["dvc", "repro", stage], project_copy, env)
    metrics_file = project_copy / "metrics" / "business-aid" / "fraud-risk.json"
    metrics = json.loads(metrics_file.read_text())
    assert metrics["model_version"] == "1" and 0.5 < metrics["roc_auc"] <= 1
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], project_copy, env))
    assert "roc_auc" in json.dumps(shown)
    plots = project_copy / "plots" / "business-aid" / "fraud-risk"
    assert {p.name for p in plots.iterdir()} == {"roc.csv", "precision_recall.csv", "confusion.csv"}
    rendered = json.loads(run(["dvc", "plots", "show", "--json"], project_copy, env))
    assert any(name.endswith("fraud-risk/roc.csv") for name in rendered["data"])
    experiments = run(["dvc", "exp", "show", "--json"], project_copy, env)
    assert "roc_auc" in experiments

    again = run(["dvc", "repro", stage], project_copy, env)
    assert "didn't change" in again or "up to date" in again
    uri = f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name='business-aid.fraud-risk'")
    assert [str(v.version) for v in versions] == ["1"]

    # an experiment with a changed hyper-parameter retrains and shows up in MLflow too
    setting = "params/business-aid.yaml:use_cases.fraud-risk.lightgbm.learning_rate=0.2"
    run(["dvc", "exp", "run", "-n", "faster", "-S", setting, stage], project_copy, env)
    [experiment] = client.search_model_versions(
        "name='business-aid.fraud-risk' and version_number=2"
    )
    experiment_run = client.get_run(experiment.run_id)
    assert experiment_run.data.params["lightgbm.learning_rate"] == "0.2"
    assert experiment_run.data.tags["agencyml.dvc_experiment"] == "faster"
    assert "faster" in run(["dvc", "exp", "show", "--json"], project_copy, env)


def test_dvc_yaml_has_a_stage_for_every_use_case():
    stages = yaml.safe_load((PACKAGE_ROOT / "dvc.yaml").read_text())["stages"]
    declared = {(i["agency"], i["use_case"]) for i in stages["train"]["foreach"].values()}
    assert declared == {(spec.agency, spec.name) for spec in list_use_cases()}


def test_prefect_yaml_deploys_a_train_and_score_deployment_per_use_case(
    prefect_server, project_copy, tmp_path
):
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    run(
        ["prefect", "work-pool", "create", "agencyml-local", "--type", "process", "--overwrite"],
        project_copy,
        env,
    )
    run(["prefect", "--no-prompt", "deploy", "--all"], project_copy, env)
    listed = run(["prefect", "deployment", "ls"], project_copy, {**env, "COLUMNS": "300"})
    for spec in list_use_cases():
        assert f"train/{spec.agency}-{spec.name}-train" in listed
        assert f"score/{spec.agency}-{spec.name}-score" in listed


def test_reproduce_retrains_a_version_from_its_commit_and_detects_a_difference(
    project_copy, tmp_path
):
    env = dvc_repo(project_copy, tmp_path)
    cli = [sys.executable, "-m", "flows"]
    run([*cli, "train", "-a", "business-aid", "-u", "fraud-risk"], project_copy, env)

    reproduced = run(
        [*cli, "reproduce", "-m", "business-aid.fraud-risk", "-V", "1"],
        project_copy,
        {**env, "COLUMNS": "200"},
    )
    assert "reproduced exactly" in reproduced and "roc_auc" in reproduced

    # version 2 is trained from an uncommitted change, so its commit cannot reproduce it
    params = project_copy / "params" / "business-aid.yaml"
    params.write_text(params.read_text().replace("learning_rate: 0.03", "learning_rate: 0.2"))
    run([*cli, "train", "-a", "business-aid", "-u", "fraud-risk"], project_copy, env)
    differs = subprocess.run(
        [*cli, "reproduce", "-m", "business-aid.fraud-risk", "-V", "2"],
        cwd=project_copy,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert differs.returncode == 8
    assert "uncommitted changes" in differs.stdout
    assert "agencyml.params_sha256" in differs.stderr

    missing = subprocess.run(
        [*cli, "reproduce", "-m", "business-aid.fraud-risk", "-V", "9"],
        cwd=project_copy,
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 6 and "no version 9" in missing.stderr


def test_two_processes_storing_inputs_with_dvc_at_once_both_succeed(project_copy, tmp_path):
    env = dvc_repo(project_copy, tmp_path)
    sources = []
    for index in range(2):
        source = tmp_path / f"input-{index}.csv"
        source.write_text(f"application_id\nBA-{index}\n")
        sources.append(source)
    code = (
        "import sys; from pathlib import Path; from pipelines.versioning import store_with_dvc; "
        "print(store_with_dvc(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]).md5)"
    )
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                str(source),
                str(project_copy),
                f"data/scored-inputs/{source.name}",
            ],
            cwd=project_copy,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for source in sources
    ]
    outcomes = [worker.communicate(timeout=300) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], outcomes
    status = run(["dvc", "status", "--cloud", "--json"], project_copy, env)
    assert json.loads(status) == {}, "both files are in the remote"
    for source in sources:
        assert (project_copy / "data" / "scored-inputs" / f"{source.name}.dvc").is_file()


def test_score_with_store_input_keeps_the_exact_input_in_dvc(project_copy, tmp_path):
    env = dvc_repo(project_copy, tmp_path)
    cli = [sys.executable, "-m", "flows"]
    run([*cli, "train", "-a", "business-aid", "-u", "fraud-risk"], project_copy, env)
    batch = tmp_path / "batch.csv"
    from pipelines.business_aid import generate_applications

    generate_applications(50, seed=3).drop(columns=["is_fraud", "review_track"]).to_csv(
        batch, index=False
    )
    run(
        [
            *cli,
            "score",
            "-a",
            "business-aid",
            "-u",
            "fraud-risk",
            "-i",
            str(batch),
            "--store-input",
        ],
        project_copy,
        env,
    )
    [manifest_file] = (tmp_path / "state" / "outputs").rglob("manifest.json")
    stored = json.loads(manifest_file.read_text())["input"]
    kept = project_copy / stored["dvc_path"]
    assert kept.read_bytes() == batch.read_bytes()
    assert stored["dvc_remote"] == "local" and len(stored["dvc_md5"]) == 32
    kept.unlink()  # an auditor restores it from the remote
    run(["dvc", "pull", f"{stored['dvc_path']}.dvc"], project_copy, env)
    assert kept.read_bytes() == batch.read_bytes()
