"""The gate against the baselines, the classes macro F1 is over, and drift on a small batch, on
small data against real MLflow and Prefect, as a user reads them: the gate's verdict, the model
card and the scored batch's manifest."""

from __future__ import annotations

import json

import pandas as pd
import yaml
from mlflow.tracking import MlflowClient

from flows.score import score
from flows.train import train
from pipelines.config import load_use_case
from pipelines.paths import state_dir
from pipelines.registry.model_card import collect_card_facts, render_markdown
from pipelines.scoring.batches import write_holdout_batch

MODEL = "business-aid.fraud-risk"


def set_params(project, use_case: str, **changes) -> None:
    """Change one business-aid use case's params in the small project's params file."""
    path = project / "params" / "business-aid.yaml"
    params = yaml.safe_load(path.read_text())
    declared = params["use_cases"][use_case]
    for section, value in changes.items():
        declared[section] = {**declared.get(section, {}), **value}
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_version_that_does_not_beat_a_baseline_is_held_and_its_card_says_so(
    prefect_server, small_project
):
    client = MlflowClient(state_dir().tracking_uri, state_dir().tracking_uri)
    # two trees: far too few to beat a logistic regression on PR AUC
    set_params(
        small_project,
        "fraud-risk",
        lightgbm={"num_iterations": 2, "early_stopping_round": 2},
        promotion={"must_beat_baselines": True},
    )

    held = train("business-aid", "fraud-risk")

    assert held.gate["decision"] == "hold"
    assert held.aliases == ["challenger"]  # no champion: nothing scores with it
    regression = held.baselines["logistic_regression"]["pr_auc"]
    assert held.metrics["pr_auc"] < regression
    assert (
        f"pr_auc {held.metrics['pr_auc']:.4f} does not beat the best baseline, "
        f"logistic_regression {regression:.4f}"
    ) in held.gate["reason"]
    assert client.get_model_version(MODEL, "1").tags["agencyml.gate.decision"] == "hold"
    card = render_markdown(collect_card_facts(MODEL, "1", state_dir()))
    assert "- Does not beat its best baseline: pr_auc" in card

    # the same weak model with the rule reported only: promoted, the shortfall on the verdict
    set_params(small_project, "fraud-risk", promotion={"must_beat_baselines": False})
    reported = train("business-aid", "fraud-risk")

    assert reported.gate["decision"] == "promote" and reported.aliases == ["champion"]
    check = next(c for c in reported.gate["checks"] if c["name"] == "beats-baselines")
    assert check["passed"] is False and check["enforced"] is False
    assert "reported only" in reported.gate["reason"]
    card = render_markdown(collect_card_facts(MODEL, "2", state_dir()))
    assert "- Does not beat its best baseline: pr_auc" in card


def test_a_small_batch_is_judged_only_where_it_has_rows_enough(prefect_server, small_project):
    set_params(small_project, "fraud-risk", promotion={"must_beat_baselines": False})
    train("business-aid", "fraud-risk")
    holdout = write_holdout_batch(load_use_case("business-aid", "fraud-risk"), state_dir())
    small = holdout.with_name("small-batch.parquet")
    pd.read_parquet(holdout).head(75).to_parquet(small)

    result = score("business-aid", "fraud-risk", str(small))

    drift = json.loads((result.output_dir / "manifest.json").read_text())["drift"]
    unjudged = [c for c in drift["columns"] if c["level"] == "too few rows"]
    assert unjudged and drift["too_few_rows"] == [c["column"] for c in unjudged]
    assert all(c["rows_needed"] > 75 for c in unjudged)
    assert drift["score"]["level"] == "too few rows"  # ten score buckets need 200 rows
    assert drift["summary"].startswith(
        f"{drift['features_judged']} of {drift['features']} features judged; "
        f"{len(unjudged)} had too few rows"
    )
    assert not set(drift["too_few_rows"]) & set(result.drifted)
    # the batch's level is the worst of what could be judged; too few rows never counts
    every = [*drift["columns"], drift["score"]]
    judged = [c["level"] for c in every if c["level"] != "too few rows"]
    order = ["ok", "warn", "alert"]
    assert result.drift_level == max(judged, key=order.index, default="too few rows")
    run = MlflowClient(state_dir().tracking_uri).get_run(result.run_id)
    assert run.data.tags["agencyml.drift_judged"] == drift["summary"]
    assert not any(f"drift.psi.{c['column']}" in run.data.metrics for c in unjudged)
    assert "drift.score_psi" not in run.data.metrics
    page = (result.output_dir / "drift.html").read_text()
    assert drift["summary"] in page and 'class="too-few-rows"' in page


def test_the_model_card_says_which_classes_macro_f1_is_over(prefect_server, small_project):
    set_params(small_project, "case-routing", promotion={"must_beat_baselines": True})

    trained = train("business-aid", "case-routing")

    # a multiclass model on real features beats both baselines by far
    assert trained.gate["decision"] == "promote", trained.gate["reason"]
    assert "beats the best baseline, logistic_regression" in trained.gate["reason"]
    facts = collect_card_facts(trained.model_name, trained.model_version, state_dir())
    classes = facts["classes"]
    assert classes["absent"] == [] and sum(classes["support"].values()) == int(
        trained.metrics["holdout_rows"]
    )
    card = render_markdown(facts)
    assert f"Macro F1 over all {len(classes['present'])} classes; each has holdout rows." in card
    assert "Holdout rows per class:" in card
