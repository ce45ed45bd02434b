"""Scored batches: deterministic batch ids, one row per input row, a summary for the manifest,
and a capacity policy's top k found chunk by chunk as if the whole batch were sorted at once."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipelines.config import CapacityPolicy, DecisionPolicy, Features, ThresholdPolicy
from pipelines.data.storage import PartWriter
from pipelines.modeling.decisions import apply_policy
from pipelines.modeling.features import fit_transform_spec
from pipelines.modeling.model import ModelBundle
from pipelines.scoring.batch_ids import batch_id_for
from pipelines.scoring.streaming import ScoreSummary, TopK, flag_top_k, scored_table

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


def provenance(**changed: Any) -> dict[str, Any]:
    return {
        "batch_id": "batch-x",
        "model_name": "product-safety.risk-triage",
        "model_version": "2",
        "scored_at": SCORED_AT,
        **changed,
    }


def score(bundle: ModelBundle, ids: list[str], scores: np.ndarray, **changed: Any) -> pa.Table:
    """A scored table as the stream writes it, with the bundle's own policy deciding."""
    decided = apply_policy(scores, bundle.policy, bundle.task, bundle.classes)
    return scored_table(
        pa.array(ids, type=pa.string()),
        scores,
        decided.predicted_label,
        decided.decision,
        bundle,
        provenance(**changed),
    )


def summarised(bundle: ModelBundle, scores: np.ndarray, chunk_rows: int) -> dict[str, Any]:
    """A summary fed chunk by chunk, each chunk decided by the bundle's policy."""
    summary = ScoreSummary(bundle)
    for start in range(0, len(scores), chunk_rows):
        chunk = scores[start : start + chunk_rows]
        decided = apply_policy(chunk, bundle.policy, bundle.task, bundle.classes)
        summary.update(chunk, decided.predicted_label, decided.decision)
    return summary.as_dict()


def tied_scores(rows: int, seed: int = 3) -> np.ndarray:
    """Scores with many ties: only 20 distinct values."""
    return np.random.default_rng(seed).integers(0, 20, rows) / 20


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


# --- scored_table ---------------------------------------------------------------------------------


def test_binary_scored_table_has_one_row_per_input_with_decision_and_provenance(
    binary_bundle: ModelBundle,
) -> None:
    scored = score(binary_bundle, ["n-1", "n-2", "n-3"], np.array([0.1, 0.5, 0.8]))

    assert scored.column_names == [
        "case_id",
        "probability",
        "predicted_label",
        "decision",
        *PROVENANCE,
    ]
    assert scored["case_id"].to_pylist() == ["n-1", "n-2", "n-3"]
    assert scored["probability"].to_pylist() == [0.1, 0.5, 0.8]
    assert scored["predicted_label"].to_pylist() == ["not-serious", "serious", "serious"]
    assert scored["decision"].to_pylist() == ["release", "inspect", "inspect"]
    assert set(scored["batch_id"].to_pylist()) == {"batch-x"}
    assert set(scored["model_name"].to_pylist()) == {"product-safety.risk-triage"}
    assert set(scored["model_version"].to_pylist()) == {"2"}
    assert scored["scored_at"].to_pylist() == [SCORED_AT] * 3


def test_scored_table_column_types_are_fixed(binary_bundle: ModelBundle) -> None:
    scored = score(binary_bundle, ["n-1"], np.array([0.25]), model_version=7)

    types = {field.name: field.type for field in scored.schema}
    assert types == {
        "case_id": pa.string(),
        "probability": pa.float64(),
        "predicted_label": pa.string(),
        "decision": pa.string(),
        "batch_id": pa.string(),
        "model_name": pa.string(),
        "model_version": pa.string(),
        "scored_at": pa.timestamp("us", tz="UTC"),
    }
    assert scored["model_version"].to_pylist() == ["7"]  # a version is text, whatever it came as


def test_multiclass_scored_table_has_a_probability_per_class(
    multiclass_bundle: ModelBundle,
) -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.4, 0.35, 0.25]])

    scored = score(multiclass_bundle, ["a", "b"], scores)

    assert scored.column_names == [
        "case_id",
        "proba_deep",
        "proba_fast",
        "proba_standard",
        "predicted_label",
        "decision",
        *PROVENANCE,
    ]
    assert scored["proba_fast"].to_pylist() == [0.7, 0.35]
    assert scored["predicted_label"].to_pylist() == ["fast", "deep"]
    assert scored["decision"].to_pylist() == ["fast", "manual_review"]


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_scores_from_the_model_itself_build_a_table(
    binary_bundle: ModelBundle, multiclass_bundle: ModelBundle, task: str
) -> None:
    bundle = binary_bundle if task == "binary" else multiclass_bundle
    rows = batch(*(f"n-{i}" for i in range(8))).set_axis(range(100, 108))
    scores = bundle.predict_proba(rows)

    scored = score(bundle, rows["case_id"].tolist(), scores)

    assert scored.num_rows == 8
    assert scored["case_id"].to_pylist() == rows["case_id"].tolist()
    columns = ["probability"] if task == "binary" else [f"proba_{c}" for c in bundle.classes]
    probabilities = np.column_stack([scored[column].to_numpy() for column in columns])
    np.testing.assert_allclose(probabilities, scores.reshape(8, -1))
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    decided = apply_policy(scores, bundle.policy, bundle.task, bundle.classes)
    assert scored["decision"].to_pylist() == decided.decision.tolist()


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_an_empty_scored_table_has_the_same_columns_and_types(
    binary_bundle: ModelBundle, multiclass_bundle: ModelBundle, task: str
) -> None:
    bundle = binary_bundle if task == "binary" else multiclass_bundle
    empty = np.empty((0,) if task == "binary" else (0, len(bundle.classes)))
    one = np.array([0.5]) if task == "binary" else np.array([[0.2, 0.3, 0.5]])

    scored = scored_table(
        pa.array([], type=pa.string()), empty, np.empty(0), np.empty(0), bundle, provenance()
    )

    assert scored.num_rows == 0
    assert scored.schema == score(bundle, ["n-1"], one).schema


def test_scores_and_ids_of_different_lengths_are_refused(binary_bundle: ModelBundle) -> None:
    decided = apply_policy(np.array([0.1, 0.2]), binary_bundle.policy, "binary", ["n", "s"])

    with pytest.raises(pa.ArrowInvalid):
        scored_table(
            pa.array(["a", "b", "c"]),
            np.array([0.1, 0.2]),
            decided.predicted_label,
            decided.decision,
            binary_bundle,
            provenance(),
        )


# --- ScoreSummary ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_scores() -> np.ndarray:
    """10,001 scores, so the 10th, 50th and 90th percentiles fall on a row; and both ends."""
    scores = np.random.default_rng(11).beta(2, 5, 10_001)
    scores[[17, 4_000]] = [0.0, 1.0]
    return scores


@pytest.mark.parametrize("chunk_rows", [10_001, 1_000, 333])
def test_binary_summary_counts_decisions_and_describes_the_scores(
    binary_bundle: ModelBundle, many_scores: np.ndarray, chunk_rows: int
) -> None:
    summary = summarised(binary_bundle, many_scores, chunk_rows)

    flagged = int((many_scores >= 0.5).sum())
    assert summary["decisions"] == {"inspect": flagged, "release": len(many_scores) - flagged}
    assert summary["predicted_labels"] == {
        "serious": flagged,
        "not-serious": len(many_scores) - flagged,
    }
    assert all(type(v) is int for v in summary["decisions"].values())
    spread = summary["probability"]
    assert set(spread) == {"mean", "q00", "q10", "q50", "q90", "q100"}
    assert spread["mean"] == pytest.approx(many_scores.mean(), abs=1e-12)
    assert (spread["q00"], spread["q100"]) == (0.0, 1.0)  # the ends are exact
    for name, q in (("q10", 0.1), ("q50", 0.5), ("q90", 0.9)):
        assert spread[name] == pytest.approx(np.quantile(many_scores, q), abs=1e-4), name


def test_a_summary_does_not_depend_on_the_chunk_size(
    binary_bundle: ModelBundle, many_scores: np.ndarray
) -> None:
    whole = summarised(binary_bundle, many_scores, len(many_scores))

    for chunk_rows in (1_000, 333, 7):
        chunked = summarised(binary_bundle, many_scores, chunk_rows)
        assert chunked["decisions"] == whole["decisions"]
        assert chunked["predicted_labels"] == whole["predicted_labels"]
        assert chunked["probability"] == pytest.approx(whole["probability"], abs=1e-12)


def test_binary_summary_of_the_models_own_scores(binary_bundle: ModelBundle) -> None:
    rows = batch(*(f"n-{i}" for i in range(9)))
    scores = binary_bundle.predict_proba(rows)

    spread = summarised(binary_bundle, scores, 4)["probability"]

    assert (spread["q00"], spread["q100"]) == (scores.min(), scores.max())
    assert spread["q00"] <= spread["q10"] <= spread["q50"] <= spread["q90"] <= spread["q100"]


def test_multiclass_summary_has_counts_but_no_probability_spread(
    multiclass_bundle: ModelBundle,
) -> None:
    scores = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])

    summary = summarised(multiclass_bundle, scores, 2)

    assert summary == {
        "decisions": {"deep": 1, "fast": 1, "manual_review": 1},
        "predicted_labels": {"deep": 1, "fast": 1, "standard": 1},
    }


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_a_summary_of_no_rows_is_empty(
    binary_bundle: ModelBundle, multiclass_bundle: ModelBundle, task: str
) -> None:
    bundle = binary_bundle if task == "binary" else multiclass_bundle
    summary = ScoreSummary(bundle)
    assert summary.as_dict() == {}

    empty = np.empty((0,) if task == "binary" else (0, len(bundle.classes)))
    summary.update(empty, np.empty(0, dtype=object), np.empty(0, dtype=object))

    assert summary.as_dict() == {}


# --- TopK and flag_top_k --------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_rows", [1, 7, 250, 1_000])
@pytest.mark.parametrize("k", [1, 13, 400, 1_000, 1_200])
def test_top_k_chunk_by_chunk_picks_the_rows_a_stable_sort_of_the_batch_picks(
    chunk_rows: int, k: int
) -> None:
    scores = tied_scores(1_000)
    top = TopK(k)

    for start in range(0, len(scores), chunk_rows):
        top.update(scores[start : start + chunk_rows], start)

    expected = np.argsort(-scores, kind="stable")[:k]
    assert top.positions.tolist() == expected.tolist()  # ties go to the earlier row
    np.testing.assert_array_equal(top.scores, scores[expected])


def test_top_k_of_no_rows_is_empty() -> None:
    top = TopK(5)

    top.update(np.empty(0), 0)

    assert top.positions.tolist() == [] and top.scores.tolist() == []


def write_unflagged_parts(
    bundle: ModelBundle, scores: np.ndarray, folder: Path, chunk_rows: int, part_rows: int
) -> tuple[list[Path], TopK]:
    """Parts written chunk by chunk as the stream writes them under a capacity policy: every
    row passed until the whole batch is known, its top k tracked on the way."""
    policy = bundle.policy
    assert isinstance(policy, CapacityPolicy)
    writer: PartWriter | None = None
    top = TopK(policy.top_k)
    for start in range(0, len(scores), chunk_rows):
        chunk = scores[start : start + chunk_rows]
        top.update(chunk, start)
        table = scored_table(
            pa.array([f"c-{i}" for i in range(start, start + len(chunk))]),
            chunk,
            np.full(len(chunk), bundle.classes[0], dtype=object),
            np.full(len(chunk), policy.pass_label, dtype=object),
            bundle,
            provenance(),
        )
        writer = writer or PartWriter(folder, table.schema, part_rows)
        writer.write(table)
    assert writer is not None
    return writer.close(), top


@pytest.mark.parametrize("top_k", [1, 37, 1_000, 3_000])
def test_flag_top_k_rewrites_the_parts_as_the_policy_decides_on_the_whole_batch(
    binary_bundle: ModelBundle, tmp_path: Path, top_k: int
) -> None:
    policy = CapacityPolicy(top_k=top_k, flag_label="check", pass_label="skip")
    bundle = dataclasses.replace(binary_bundle, policy=policy)
    scores = tied_scores(2_500)
    parts, top = write_unflagged_parts(bundle, scores, tmp_path / "scored", 300, 1_000)
    assert [pq.read_metadata(part).num_rows for part in parts] == [1_000, 1_000, 500]

    flag_top_k(parts, set(top.positions.tolist()), bundle)

    scored = pa.concat_tables(pq.read_table(part) for part in parts)
    expected = apply_policy(scores, policy, "binary", bundle.classes)
    assert scored["decision"].to_pylist() == expected.decision.tolist()
    assert scored["predicted_label"].to_pylist() == expected.predicted_label.tolist()
    assert scored["case_id"].to_pylist() == [f"c-{i}" for i in range(2_500)]
    np.testing.assert_array_equal(scored["probability"].to_numpy(), scores)
    assert scored.schema == pq.read_schema(parts[0])


def test_a_capacity_summary_is_recounted_once_the_top_k_is_flagged(
    binary_bundle: ModelBundle,
) -> None:
    policy = CapacityPolicy(top_k=40, flag_label="check", pass_label="skip")
    bundle = dataclasses.replace(binary_bundle, policy=policy)
    scores = tied_scores(500)
    summary = ScoreSummary(bundle)
    for start in range(0, 500, 64):
        chunk = scores[start : start + 64]
        summary.update(chunk, np.full(len(chunk), "not-serious"), np.full(len(chunk), "skip"))

    summary.recount_decisions(40, policy)

    expected = apply_policy(scores, policy, "binary", bundle.classes)
    counted = summary.as_dict()
    assert counted["decisions"] == pd.Series(expected.decision).value_counts().to_dict()
    assert counted["predicted_labels"] == {"not-serious": 460, "serious": 40}


def test_summary_quantiles_interpolate_between_ranks_like_numpy(binary_bundle: ModelBundle) -> None:
    for values in ([0.1, 0.9], [0.1 * i for i in range(1, 10)]):
        scores = np.array(values)
        summary = ScoreSummary(binary_bundle)
        summary.update(
            scores, np.full(len(scores), "x", dtype=object), np.full(len(scores), "y", dtype=object)
        )

        spread = summary.as_dict()["probability"]

        for name, q in (("q10", 0.1), ("q50", 0.5), ("q90", 0.9)):
            assert spread[name] == pytest.approx(np.quantile(scores, q), abs=1e-5)
