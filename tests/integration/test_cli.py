"""The command line: result tables, clear errors and distinct exit codes for bad input."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from pipelines.data.sources import SOURCE_KEY
from pipelines.data.storage import parquet_metadata, write_parquet

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_agencies_lists_every_agency_and_use_case(small_project):
    code, output = invoke("agencies")
    assert code == 0
    for name in ("product-safety", "risk-triage", "business-aid", "fraud-risk", "case-routing"):
        assert name in output


def test_unknown_agency_lists_the_known_ones(small_project):
    code, output = invoke("train", "--agency", "tax", "--use-case", "fraud-risk")
    assert code == 2
    assert "unknown agency 'tax'" in output
    assert "business-aid, product-safety" in output


def test_unknown_use_case_lists_the_known_ones(small_project):
    code, output = invoke("score", "-a", "business-aid", "-u", "nope", "-i", "x.parquet")
    assert code == 2
    assert "no use case 'nope'" in output and "case-routing, fraud-risk" in output


def test_bad_params_name_the_file_and_the_key(small_project):
    params_file = small_project / "params" / "business-aid.yaml"
    params_file.write_text(
        params_file.read_text().replace("num_leaves:", "num_leafs:", 1), encoding="utf-8"
    )
    code, output = invoke("train", "--agency", "business-aid", "--use-case", "fraud-risk")
    assert code == 2
    assert "business-aid.yaml" in output
    assert "use_cases.fraud-risk.lightgbm.num_leafs" in output and "unknown key" in output


def test_missing_input_exits_3_and_writes_nothing(prefect_server, small_project, tmp_path):
    path = tmp_path / "batch.parquet"
    code, output = invoke("score", "-a", "business-aid", "-u", "fraud-risk", "-i", str(path))
    assert code == 3
    assert "input file not found" in output
    state = Path(os.environ["AGENCYML_HOME"])
    assert not (state / "outputs").exists() and not (state / "quarantine").exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("batch.parquet", b"PAR1 not really parquet", "cannot read"),
        ("batch.parquet", b"", "cannot read"),
        ("batch.xlsx", b"PK\x03\x04 not really a workbook", "cannot read"),
    ],
    ids=["corrupt", "empty-file", "not-a-workbook"],
)
def test_unreadable_input_is_rejected_with_exit_4_and_quarantined(
    prefect_server, small_project, tmp_path, name, content, message
):
    path = tmp_path / name
    path.write_bytes(content)
    code, output = invoke("score", "-a", "business-aid", "-u", "fraud-risk", "-i", str(path))
    assert code == 4
    assert message in output and "The input and the report are in" in output
    state = Path(os.environ["AGENCYML_HOME"])
    assert not (state / "outputs").exists()
    [folder] = (state / "quarantine" / "business-aid" / "fraud-risk").iterdir()
    assert (folder / ("input" + path.suffix)).read_bytes() == content
    assert message in (folder / "report.json").read_text()


def test_generate_writes_the_rows_asked_for(tmp_path):
    output = tmp_path / "applications.parquet"
    code, text = invoke("generate", "-o", str(output), "--rows", "12345", "--chunk-rows", "5000")
    assert code == 0, text
    table = pd.read_parquet(output)
    assert len(table) == 12345 and table["application_id"].is_unique
    assert not list(tmp_path.glob(".*partial"))


def test_console_script_runs_train_and_score_end_to_end(small_project, tmp_path):
    """The installed `agencyml` command, in its own process with Prefect's local server."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    command = [
        sys.executable,
        "-m",
        "flows",
    ]
    trained = subprocess.run(
        [*command, "train", "-a", "business-aid", "-u", "fraud-risk"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Trained business-aid.fraud-risk" in trained.stdout and "roc_auc" in trained.stdout
    batch = tmp_path / "batch.csv"
    from pipelines.config import load_use_case
    from pipelines.paths import state_dir
    from pipelines.scoring.batches import write_holdout_batch

    pd.read_parquet(
        write_holdout_batch(load_use_case("business-aid", "fraud-risk"), state_dir())
    ).head(50).to_csv(batch, index=False)
    scored = subprocess.run(
        [*command, "score", "-a", "business-aid", "-u", "fraud-risk", "-i", str(batch)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert "batch-" in scored.stdout and "fraud-check: 20" in scored.stdout
    assert "Traceback" not in scored.stderr
    # the progress bar: a CSV's rows as they are read, and the speed
    assert "50 rows" in scored.stderr and "rows/s" in scored.stderr


def test_scoring_without_a_champion_exits_6_and_says_how_to_train(
    prefect_server, small_project, tmp_path
):
    path = tmp_path / "batch.csv"
    path.write_text("application_id,scheme\nBA-1,salary\n")
    code, output = invoke("score", "-a", "business-aid", "-u", "fraud-risk", "-i", str(path))
    assert code == 6
    assert "agencyml train --agency business-aid --use-case fraud-risk" in output


def test_validate_reports_without_scoring_and_exits_4_on_rejection(
    prefect_server, small_project, tmp_path
):
    from pipelines.config import load_use_case
    from pipelines.paths import state_dir
    from pipelines.scoring.batches import write_holdout_batch

    holdout = pd.read_parquet(
        write_holdout_batch(load_use_case("business-aid", "fraud-risk"), state_dir())
    ).head(100)
    holdout.loc[:4, "requested_amount_dkk"] = -1.0
    accepted = holdout.to_csv(tmp_path / "accepted.csv", index=False) or tmp_path / "accepted.csv"
    code, output = invoke("validate", "-a", "business-aid", "-u", "fraud-risk", "-i", str(accepted))
    assert code == 0, output
    assert (
        "params only (no champion model yet): accepted (in: 100, scored: 95, quarantined: 5)"
        in (output)
    )
    rejected = tmp_path / "rejected.csv"
    holdout.drop(columns=["region"]).to_csv(rejected, index=False)
    code, output = invoke("validate", "-a", "business-aid", "-u", "fraud-risk", "-i", str(rejected))
    assert code == 4
    assert "rejected" in output and "column 'region' is present, but it is missing" in output
    state = Path(os.environ["AGENCYML_HOME"])
    assert not (state / "outputs").exists() and not (state / "quarantine").exists()


def test_demo_trains_and_scores_every_use_case(prefect_server, small_project):
    code, output = invoke("demo")
    assert code == 0, output
    state = Path(os.environ["AGENCYML_HOME"])
    for model in (
        "product-safety.risk-triage",
        "business-aid.fraud-risk",
        "business-aid.case-routing",
    ):
        agency, use_case = model.split(".")
        [batch] = (state / "outputs" / agency / use_case).iterdir()
        assert (batch / "manifest.json").is_file() and str(batch) in output
    assert "agencyml ui" in output and "Data Docs" in output
    for path in ("data/ingested/business-aid/applications.parquet", "rasff.parquet"):
        assert path in output
    assert "not a git + DVC checkout" in output


def test_ingest_writes_each_dataset_and_names_unknown_ones(prefect_server, small_project):
    code, output = invoke("ingest", "-a", "business-aid", "-d", "payments")
    assert code == 2 and "no dataset 'payments'. Known datasets: applications" in output
    assert not (small_project / "data" / "ingested").exists()

    code, output = invoke("ingest", "-a", "business-aid")

    written = small_project / "data" / "ingested" / "business-aid" / "applications.parquet"
    assert code == 0, output
    assert written.is_file() and "4,000" in output
    assert hashlib.md5(written.read_bytes(), usedforsecurity=False).hexdigest() in output


def test_train_model_out_then_evaluate_model_ref_gives_the_training_metrics(
    prefect_server, small_project, tmp_path
):
    model_ref = tmp_path / "model.json"
    code, output = invoke("evaluate", "-a", "business-aid", "-u", "fraud-risk")
    assert code == 6 and "no model version 'business-aid.fraud-risk@champion'" in output
    code, output = invoke(
        "evaluate", "-a", "business-aid", "-u", "fraud-risk", "--model-ref", str(model_ref)
    )
    assert code == 3 and "file not found" in output

    code, output = invoke(
        "train", "-a", "business-aid", "-u", "fraud-risk", "--model-out", str(model_ref)
    )
    assert code == 0, output
    reference = json.loads(model_ref.read_text())
    assert reference["model_version"] == "1" and len(reference["model_sha256"]) == 64
    metrics_out, plots_out = tmp_path / "metrics.json", tmp_path / "plots"
    code, output = invoke(
        "evaluate",
        "-a",
        "business-aid",
        "-u",
        "fraud-risk",
        "--model-ref",
        str(model_ref),
        "--metrics-out",
        str(metrics_out),
        "--plots-out",
        str(plots_out),
    )

    assert code == 0, output
    assert "Equal to the metrics its training run logged: yes" in output
    assert 0.5 < json.loads(metrics_out.read_text())["roc_auc"] <= 1
    assert {p.name for p in plots_out.iterdir()} == {
        "roc.csv",
        "precision_recall.csv",
        "confusion.csv",
    }


def test_validate_without_input_checks_the_training_data(prefect_server, small_project, tmp_path):
    report = tmp_path / "report.json"
    code, output = invoke(
        "validate", "-a", "business-aid", "-u", "fraud-risk", "--report-out", str(report)
    )
    assert code == 0, output
    assert "Training data of business-aid.fraud-risk: passed" in output
    assert json.loads(report.read_text())["success"] is True

    # the ingested table loses its target: the training suite fails, and no report is written
    ingested = small_project / "data" / "ingested" / "business-aid" / "applications.parquet"
    source = {SOURCE_KEY: parquet_metadata(ingested)[SOURCE_KEY]}  # still from its source
    write_parquet(pd.read_parquet(ingested).drop(columns="is_fraud"), ingested, metadata=source)
    report.unlink()
    code, output = invoke(
        "validate", "-a", "business-aid", "-u", "fraud-risk", "--report-out", str(report)
    )
    assert code == 4 and "is_fraud" in output and "no model registered" in output
    assert not report.exists()


def test_sample_writes_holdout_rows_without_the_target_and_refuses_other_formats(
    small_project, tmp_path
):
    from pipelines.config import load_use_case
    from pipelines.scoring.batches import holdout_batch

    spec = load_use_case("business-aid", "fraud-risk")
    holdout = holdout_batch(spec)
    code, output = invoke(
        "sample",
        "-a",
        "business-aid",
        "-u",
        "fraud-risk",
        "--rows",
        "40",
        "-o",
        str(tmp_path / "s.parquet"),
    )
    assert code == 0, output
    assert "wrote" in output and "40 holdout rows" in output and "agencyml score" in output
    drawn = pd.read_parquet(tmp_path / "s.parquet")
    assert list(drawn.columns) == spec.params.required_columns(with_target=False)
    assert spec.params.target not in drawn.columns and len(drawn) == 40
    assert set(drawn[spec.params.id_column]) <= set(holdout[spec.params.id_column])

    code, output = invoke(
        "sample", "-a", "business-aid", "-u", "fraud-risk", "-o", str(tmp_path / "all.csv")
    )
    assert code == 0, output
    assert len(pd.read_csv(tmp_path / "all.csv")) == len(holdout)

    code, output = invoke(
        "sample", "-a", "business-aid", "-u", "fraud-risk", "-o", str(tmp_path / "s.xlsx")
    )
    assert code == 2 and "name the file *.parquet or *.csv" in output
    assert not (tmp_path / "s.xlsx").exists()


def test_training_data_missing_a_column_names_the_closest_and_the_columns_there_are(
    prefect_server, small_project
):
    params_file = small_project / "params" / "business-aid.yaml"
    params = yaml.safe_load(params_file.read_text())
    numeric = params["use_cases"]["fraud-risk"]["features"]["numeric"]
    numeric[numeric.index("days_since_bank_account_change")] = "days_since_bank_acount_change"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))

    code, output = invoke("train", "-a", "business-aid", "-u", "fraud-risk")

    assert code == 4, output
    assert "did you mean 'days_since_bank_account_change'?" in output
    assert "the table's" in output and "'requested_amount_dkk'" in output


def test_a_target_that_cannot_train_the_task_is_exit_5_and_says_what_to_change(
    prefect_server, small_project
):
    params_file = small_project / "params" / "business-aid.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["use_cases"]["fraud-risk"]["positive_class"] = "fraud"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))

    code, output = invoke("train", "-a", "business-aid", "-u", "fraud-risk")

    assert code == 5, output
    assert "expected positive_class 'fraud' in 'is_fraud'" in output
    assert "set positive_class to the value that counts as positive" in output
