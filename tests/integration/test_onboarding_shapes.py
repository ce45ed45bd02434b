"""An agency's own table, onboarded by a params file alone, end to end on real Prefect and MLflow:
a semicolon-separated `.txt` export with a decimal comma, day-first dates, free text, sixteen
classes whose labels carry punctuation, and one row without a label. It is ingested, trained,
sampled and scored with no code and no hand edit anywhere but params/."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from flows.cli import app
from flows.ingest import ingest
from flows.score import score
from flows.train import train
from pipelines.paths import state_dir
from pipelines.registry import model_card

AGENCY, USE_CASE = "tax-office", "program-routing"
PROGRAMS = [
    "Employee Stock Ownership Plan(ESOP)",
    "Sole Proprietorship/LLC",
    "Non-Profit (501c3)",
    "Corp.",
    "Partnership; limited",
    "Trust & Estate",
    "Cooperative",
    "Joint Venture",
    "Tenant-in-Common",
    "Rural, small",
    "Urban: large",
    "Public #1",
    "Public #2",
    'Quoted "name"',
    "Æblegrød A/S",
    "Other?",
]
SECTORS = ["retail", "farming", "transport", "health"]


def claims_table(rows: int, seed: int = 3) -> pd.DataFrame:
    """The program follows from the sector and the amount, so a model can learn it."""
    rng = np.random.default_rng(seed)
    sector = rng.choice(SECTORS, rows)
    amount = rng.gamma(2.0, 5_000.0, rows).round(2)
    band = np.minimum((amount / 2_500).astype(int), 3)
    program = [PROGRAMS[SECTORS.index(s) * 4 + b] for s, b in zip(sector, band, strict=True)]
    received = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, rows), "D")
    return pd.DataFrame(
        {
            "case_ref": [f"R-{index:05d}" for index in range(rows)],
            "received": received.strftime("%d/%m/%Y"),  # day-first: 03/04/2023 is 3 April
            "amount": [f"{value:.2f}".replace(".", ",") for value in amount],  # decimal comma
            "sector": sector,
            "description": [f"claim for {s} support, case {i % 7}" for i, s in enumerate(sector)],
            "program": program,
        }
    )


@pytest.fixture(scope="module")
def onboarded(prefect_server, tmp_path_factory, make_small_project):
    root = tmp_path_factory.mktemp("onboarding")
    project = make_small_project(root / "project")
    table = claims_table(1_600)
    table.loc[17, "program"] = None  # one row without a label
    folder = project / "data" / AGENCY
    folder.mkdir(parents=True)
    table.to_csv(folder / "claims export.txt", sep=";", index=False)
    params = {
        "agency": AGENCY,
        "datasets": {
            "claims": {"kind": "file", "path": f"data/{AGENCY}/claims export.txt", "decimal": ","}
        },
        "use_cases": {
            USE_CASE: {
                "dataset": "claims",
                "id_column": "case_ref",
                "target": "program",
                "task": "multiclass",
                "features": {
                    "numeric": ["amount"],
                    "categorical": ["sector"],
                    "text": ["description"],
                    "date": ["received"],
                    "dayfirst": True,
                    "text_hash_features": 64,
                },
                "lightgbm": {
                    "num_iterations": 40,
                    "learning_rate": 0.2,
                    "num_leaves": 15,
                    "min_data_in_leaf": 5,
                    "early_stopping_round": 10,
                },
                "split": {"method": "random", "seed": 1},
                "decision": {"kind": "threshold", "threshold": 0.3},
                "promotion": {"must_beat_baselines": False},
                "batch_format": {"decimal": ","},
            }
        },
    }
    (project / "params" / f"{AGENCY}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENCYML_PROJECT_ROOT", str(project))
        patch.setenv("AGENCYML_HOME", str(root / "state"))
        ingested = ingest(AGENCY)
        trained = train(AGENCY, USE_CASE)
        yield {"root": root, "project": project, "ingested": ingested, "trained": trained}


@pytest.fixture
def env(onboarded, monkeypatch):
    monkeypatch.setenv("AGENCYML_PROJECT_ROOT", str(onboarded["project"]))
    monkeypatch.setenv("AGENCYML_HOME", str(onboarded["root"] / "state"))
    return onboarded


def test_the_export_is_read_by_its_content_with_every_row(env):
    (ingested,) = env["ingested"]
    assert ingested.rows == 1_600
    frame = pd.read_parquet(env["project"] / ingested.path)
    assert list(frame.columns) == [
        "case_ref",
        "received",
        "amount",
        "sector",
        "description",
        "program",
    ]
    assert frame.loc[0, "amount"].count(",") == 0  # the decimal comma read as a number


def test_the_unlabelled_row_is_set_aside_counted_and_on_the_card(env):
    trained = env["trained"]
    uri = state_dir().tracking_uri
    run = MlflowClient(uri, uri).get_run(trained.run_id)
    assert run.data.metrics["rows_unlabelled"] == 1.0
    (folder,) = state_dir().quarantine(AGENCY, USE_CASE).glob("training-unlabelled-*")
    kept = pd.read_parquet(folder / "rows.parquet")
    assert kept["case_ref"].tolist() == ["R-00017"] and kept["row_number"].tolist() == [17]
    assert sum(trained.split_sizes.values()) == 1_599
    card = model_card.render_markdown(
        model_card.collect_card_facts(trained.model_name, trained.model_version, state_dir())
    )
    assert "Rows without a label" in card and "1, set aside in" in card


def test_labels_with_punctuation_train_and_keep_their_names(env):
    trained = env["trained"]
    assert trained.metrics["macro_f1"] > 0.5
    per_class = [name for name in trained.metrics if name.startswith("recall_")]
    assert "recall_Employee_Stock_Ownership_Plan_ESOP_" in per_class
    assert all("(" not in name and "/" not in name for name in per_class)
    card = model_card.render_markdown(
        model_card.collect_card_facts(trained.model_name, trained.model_version, state_dir())
    )
    assert "Employee Stock Ownership Plan(ESOP)" in card  # the real label, where people read


def test_a_sample_is_scored_and_every_row_accounted_for(env, tmp_path):
    sample = tmp_path / "try.csv"
    result = CliRunner().invoke(
        app, ["sample", "-a", AGENCY, "-u", USE_CASE, "--rows", "120", "-o", str(sample)]
    )
    assert result.exit_code == 0, result.output
    scored = score(AGENCY, USE_CASE, str(sample))
    assert scored.rows + scored.rows_quarantined == 120
    output = pd.read_parquet(scored.output_dir / "scored.parquet")
    assert f"proba_{PROGRAMS[0]}" in output.columns  # outputs keep the labels too
    assert set(output["predicted_label"]) <= {*PROGRAMS, "manual_review"}
