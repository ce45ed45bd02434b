"""Scored batches: deterministic batch ids, one row per input row, a summary for the manifest."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from pipelines.config import CapacityPolicy, DecisionPolicy, Features, ThresholdPolicy
from pipelines.features import fit_transform_spec
from pipelines.model import ModelBundle
from pipelines.scoring import batch_id_for, build_scored_batch, summarize_scores

SCORED_AT = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
PROVENANCE = ["batch_id", "model_name", "model_version", "scored_at"]


def tiny_bundle(task: str, classes: list[str], policy: DecisionPolicy) -> ModelBundle:
    """A real, if tiny, LightGBM model on one numeric column."""
    frame = pd.DataFrame({"x": np.arange(60, dtype=float)})
    transform = fit_transform_spec(frame, Features(numeric=["x"]))
    labels = (np.arange(60) * len(classes)) // 60  # x decides the class
    objective = (
        {"objective": "binary"}
        if task == "binary"
        else {"objective": "multiclass", "num_class": len(classes)}
    )
    booster = lgb.train(
        {**objective, "num_threads": 1, "min_data_in_leaf": 2, "verbosity": -1},
        lgb.Dataset(transform.transform(frame), labels),
        num_boost_round=3,
    )
    return ModelBundle(task, classes, "case_id", transform, booster, policy)


@pytest.fixture(scope="module")
def binary_bundle() -> ModelBundle:
    policy = ThresholdPolicy(threshold=0.5, flag_label="inspect", pass_label="release")
    return tiny_bundle("binary", ["not-serious", "serious"], policy)


@pytest.fixture(scope="module")
def multiclass_bundle() -> ModelBundle:
    policy = ThresholdPolicy(threshold=0.6, fallback_label="manual_review")
    return tiny_bundle("multiclass", ["deep", "fast", "standard"], policy)


def batch(*ids: str) -> pd.DataFrame:
    return pd.DataFrame({"case_id": list(ids), "x": np.linspace(0, 59, len(ids))})


# --- batch_id_for ---------------------------------------------------------------------------------


def test_batch_id_is_deterministic_and_short() -> None:
    first = batch_id_for("ab" * 32, "product-safety.risk-triage", "3")

    assert first == batch_id_for("ab" * 32, "product-safety.risk-triage", "3")
    assert re.fullmatch(r"batch-[0-9a-f]{20}", first)


@pytest.mark.parametrize(
    "changed",
    [
        ("cd" * 32, "product-safety.risk-triage", "3"),
        ("ab" * 32, "business-aid.fraud-risk", "3"),
        ("ab" * 32, "product-safety.risk-triage", "4"),
    ],
    ids=["input", "model", "version"],
)
def test_batch_id_changes_with_each_input(changed: tuple[str, str, str]) -> None:
    assert batch_id_for(*changed) != batch_id_for("ab" * 32, "product-safety.risk-triage", "3")


def test_batch_id_does_not_confuse_where_one_part_ends() -> None:
    assert batch_id_for("abc", "m", "1") != batch_id_for("ab", "cm", "1")
    assert batch_id_for("a", "m1", "") != batch_id_for("a", "m", "1")


# --- build_scored_batch ---------------------------------------------------------------------------


def test_binary_scored_batch_has_one_row_per_input_with_decision_and_provenance(
    binary_bundle: ModelBundle,
) -> None:
    rows = batch("n-1", "n-2", "n-3")
    probabilities = pd.DataFrame({"probability": [0.1, 0.5, 0.8]})

    scored = build_scored_batch(
        rows,
        probabilities,
        binary_bundle,
        batch_id="batch-x",
        model_name="product-safety.risk-triage",
        model_version="2",
        scored_at=SCORED_AT,
    )

    assert list(scored.columns) == [
        "case_id",
        "probability",
        "predicted_label",
        "decision",
        *PROVENANCE,
    ]
    assert scored["case_id"].tolist() == ["n-1", "n-2", "n-3"]
    assert scored["probability"].tolist() == [0.1, 0.5, 0.8]
    assert scored["predicted_label"].tolist() == ["not-serious", "serious", "serious"]
    assert scored["decision"].tolist() == ["release", "inspect", "inspect"]
    assert set(scored["batch_id"]) == {"batch-x"}
    assert set(scored["model_name"]) == {"product-safety.risk-triage"}
    assert set(scored["model_version"]) == {"2"}
    assert (scored["scored_at"] == pd.Timestamp(SCORED_AT)).all()


def test_multiclass_scored_batch_has_a_probability_per_class(
    multiclass_bundle: ModelBundle,
) -> None:
    rows = batch("a", "b")
    probabilities = pd.DataFrame(
        {"proba_deep": [0.1, 0.4], "proba_fast": [0.7, 0.35], "proba_standard": [0.2, 0.25]}
    )

    scored = build_scored_batch(
        rows,
        probabilities,
        multiclass_bundle,
        batch_id="batch-y",
        model_name="business-aid.case-routing",
        model_version="1",
        scored_at=SCORED_AT,
    )

    assert list(scored.columns) == [
        "case_id",
        "proba_deep",
        "proba_fast",
        "proba_standard",
        "predicted_label",
        "decision",
        *PROVENANCE,
    ]
    assert scored["predicted_label"].tolist() == ["fast", "deep"]
    assert scored["decision"].tolist() == ["fast", "manual_review"]


def test_capacity_policy_flags_top_rows_of_the_batch() -> None:
    bundle = tiny_bundle("binary", ["not-1", "1"], CapacityPolicy(top_k=1, flag_label="check"))

    scored = build_scored_batch(
        batch("a", "b", "c"),
        pd.DataFrame({"probability": [0.2, 0.3, 0.1]}),
        bundle,
        batch_id="b",
        model_name="m",
        model_version="1",
        scored_at=SCORED_AT,
    )

    assert scored["decision"].tolist() == ["pass", "check", "pass"]


def test_scores_from_the_model_itself_build_a_batch(binary_bundle: ModelBundle) -> None:
    rows = batch(*(f"n-{i}" for i in range(8))).set_axis(range(100, 108))

    scored = build_scored_batch(
        rows,
        binary_bundle.probability_frame(rows),
        binary_bundle,
        batch_id="b",
        model_name="m",
        model_version="1",
    )

    assert len(scored) == 8 and scored.index.tolist() == list(range(8))
    assert scored["case_id"].tolist() == rows["case_id"].tolist()
    assert scored["probability"].between(0, 1).all()
    # without scored_at, the time is now, in UTC
    assert scored["scored_at"].dt.tz is not None
    age = pd.Timestamp.now(tz="UTC") - scored["scored_at"].iloc[0]
    assert pd.Timedelta(0) <= age < pd.Timedelta(minutes=5)


def test_mismatched_lengths_raise_value_error(binary_bundle: ModelBundle) -> None:
    with pytest.raises(ValueError, match="2 scores for 3 rows"):
        build_scored_batch(
            batch("a", "b", "c"),
            pd.DataFrame({"probability": [0.1, 0.2]}),
            binary_bundle,
            batch_id="b",
            model_name="m",
            model_version="1",
        )


def test_multiclass_scores_missing_a_class_column_raise_key_error(
    multiclass_bundle: ModelBundle,
) -> None:
    with pytest.raises(KeyError, match="proba_standard"):
        build_scored_batch(
            batch("a"),
            pd.DataFrame({"proba_deep": [0.5], "proba_fast": [0.5]}),
            multiclass_bundle,
            batch_id="b",
            model_name="m",
            model_version="1",
        )


# --- summarize_scores -----------------------------------------------------------------------------


def test_binary_summary_counts_decisions_and_describes_the_scores(
    binary_bundle: ModelBundle,
) -> None:
    probabilities = pd.DataFrame({"probability": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]})
    scored = build_scored_batch(
        batch(*"abcdefghi"),
        probabilities,
        binary_bundle,
        batch_id="b",
        model_name="m",
        model_version="1",
        scored_at=SCORED_AT,
    )

    summary = summarize_scores(scored, binary_bundle)

    # 0.5 and above are flagged: five of nine
    assert summary["decisions"] == {"inspect": 5, "release": 4}
    assert summary["predicted_labels"] == {"serious": 5, "not-serious": 4}
    spread = summary["probability"]
    assert set(spread) == {"mean", "q00", "q10", "q50", "q90", "q100"}
    assert spread["mean"] == pytest.approx(0.5)
    assert spread["q00"] == pytest.approx(0.1) and spread["q100"] == pytest.approx(0.9)
    assert spread["q50"] == pytest.approx(0.5)
    # linear interpolation: the 10th percentile of nine evenly spaced values
    assert spread["q10"] == pytest.approx(0.18) and spread["q90"] == pytest.approx(0.82)
    assert all(type(v) is int for v in summary["decisions"].values())


def test_multiclass_summary_has_counts_but_no_probability_spread(
    multiclass_bundle: ModelBundle,
) -> None:
    scored = build_scored_batch(
        batch("a", "b", "c"),
        pd.DataFrame(
            {
                "proba_deep": [0.8, 0.1, 0.3],
                "proba_fast": [0.1, 0.8, 0.3],
                "proba_standard": [0.1, 0.1, 0.4],
            }
        ),
        multiclass_bundle,
        batch_id="b",
        model_name="m",
        model_version="1",
        scored_at=SCORED_AT,
    )

    summary = summarize_scores(scored, multiclass_bundle)

    assert summary == {
        "decisions": {"deep": 1, "fast": 1, "manual_review": 1},
        "predicted_labels": {"deep": 1, "fast": 1, "standard": 1},
    }


def test_summary_of_a_table_without_decisions_raises_key_error(
    binary_bundle: ModelBundle,
) -> None:
    with pytest.raises(KeyError, match="decision"):
        summarize_scores(pd.DataFrame({"probability": [0.5]}), binary_bundle)
