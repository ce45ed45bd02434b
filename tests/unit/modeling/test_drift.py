"""Drift against a training reference, on constructed distributions with known PSI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from pipelines.modeling.drift import (
    EPSILON,
    MIN_ROWS_PER_BUCKET,
    DriftAccumulator,
    DriftError,
    DriftReference,
    DriftResult,
    DriftThresholds,
    build_reference,
    psi,
    render_drift_report,
    rows_to_judge,
)

ROWS = 20_000


def training(seed: int = 0, rows: int = ROWS) -> tuple[pd.DataFrame, np.ndarray]:
    """x ~ N(0, 1) with every 10th value missing; region a/b/c at 50/30/20%; beta scores."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    x[::10] = np.nan
    frame = pd.DataFrame(
        {"x": x, "region": rng.choice(["a", "b", "c"], size=rows, p=[0.5, 0.3, 0.2])}
    )
    return frame, rng.beta(2, 5, size=rows)


def drift_of(
    reference: DriftReference, frame: pd.DataFrame, scores: np.ndarray, chunk: int | None = None
) -> DriftResult:
    accumulator = DriftAccumulator(reference)
    step = chunk or max(len(frame), 1)
    for start in range(0, len(frame), step):
        accumulator.update(frame.iloc[start : start + step], scores[start : start + step])
    return accumulator.result(DriftThresholds())


def mix(counts: dict[str | None, int]) -> pd.DataFrame:
    return pd.DataFrame({"region": [v for v, n in counts.items() for _ in range(n)]})


def test_psi_of_two_share_vectors_matches_the_formula() -> None:
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5) = 0.25 ln 2 + 0.25 ln 1.5
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.25 * math.log(3), rel=1e-12)
    # an empty bucket is floored at EPSILON, so PSI stays finite
    assert psi([0.0, 1.0], [0.05, 0.95]) == pytest.approx(
        (0.05 - EPSILON) * math.log(0.05 / EPSILON) + (-0.05) * math.log(0.95), rel=1e-12
    )


def test_thresholds_give_levels_at_their_boundaries() -> None:
    thresholds = DriftThresholds()

    assert [thresholds.level(v) for v in (0.0, 0.0999, 0.1, 0.2499, 0.25, 3.0)] == [
        "ok",
        "ok",
        "warn",
        "warn",
        "alert",
        "alert",
    ]
    with pytest.raises(DriftError, match="warn <= alert"):
        DriftThresholds(warn=0.3, alert=0.2)


def test_reference_bins_numeric_columns_at_training_deciles() -> None:
    frame, scores = training()

    reference = build_reference(frame, ["x"], ["region"], scores)

    x = reference.columns[0]
    assert len(x.edges) == 9
    assert x.edges[4] == pytest.approx(np.nanmedian(frame["x"]))
    # 90% of rows are numbers, split evenly into ten buckets; 10% are missing
    assert x.shares == pytest.approx([0.09] * 10 + [0.1], abs=1e-4)
    assert x.labels()[0].startswith("< ") and x.labels()[-2].startswith(">= ")
    assert x.labels()[-1] == "(missing)"
    assert reference.score.width == 1
    assert reference.score.mean == pytest.approx(scores.mean())
    assert reference.score.quantiles["q50"] == pytest.approx(np.median(scores))


def test_the_same_distribution_does_not_drift() -> None:
    frame, scores = training(seed=0)
    reference = build_reference(frame, ["x"], ["region"], scores)

    itself = drift_of(reference, frame, scores)
    fresh_frame, fresh_scores = training(seed=1)
    fresh = drift_of(reference, fresh_frame, fresh_scores)

    assert itself.psi == {"x": 0.0, "region": 0.0}
    assert itself.score_psi == 0.0 and itself.score_mean_shift == pytest.approx(0.0, abs=1e-12)
    # a new sample of the same distribution only differs by sampling noise
    assert max(fresh.psi.values()) < 0.005 and fresh.score_psi < 0.005
    assert abs(fresh.score_mean_shift) < 0.005
    assert fresh.level == "ok" and fresh.drifted == []


def test_a_numeric_column_shifted_by_one_sd_alerts_with_the_psi_theory_predicts() -> None:
    frame, scores = training(seed=0)
    reference = build_reference(frame, ["x"], ["region"], scores)
    shifted, _ = training(seed=1)
    shifted["x"] += 1.0

    result = drift_of(reference, shifted, scores)

    edges = np.asarray(reference.columns[0].edges)
    cdf = norm.cdf(np.r_[-np.inf, edges, np.inf] - 1.0)
    theory = psi(reference.columns[0].shares, [*(0.9 * np.diff(cdf)), 0.1])
    # on the exact deciles of N(0, 1) a 1 sd shift gives 0.9 * 0.926 = 0.834 (missing rows: 0)
    assert theory == pytest.approx(0.834, abs=0.02)
    assert result.psi["x"] == pytest.approx(theory, abs=0.03)
    assert result.levels == {"x": "alert", "region": "ok"}
    assert result.drifted == ["x"] and result.level == "alert"
    # the top bucket gained most: about 0.9 * P(N(1, 1) > 90th percentile of N(0, 1))
    moved = result.columns[0].moved(top=1)[0]
    assert moved["bucket"].startswith(">= ")
    assert moved["actual"] == pytest.approx(0.9 * norm.sf(edges[-1] - 1.0), abs=0.01)


def test_a_changed_category_mix_alerts() -> None:
    reference = build_reference(
        mix({"a": 500, "b": 300, "c": 200}), [], ["region"], np.full(1000, 0.5)
    )

    result = drift_of(reference, mix({"a": 200, "b": 300, "c": 500}), np.full(1000, 0.5))

    # (0.2 - 0.5) ln(0.2/0.5) + (0.5 - 0.2) ln(0.5/0.2); other and missing stay empty
    assert result.psi["region"] == pytest.approx(0.6 * math.log(2.5), rel=1e-12)
    assert result.levels["region"] == "alert"
    assert [m["bucket"] for m in result.columns[0].moved()] == ["a", "c"]


def test_unseen_and_rare_categories_count_as_other() -> None:
    reference = build_reference(
        mix({"a": 600, "b": 300, "c": 100}), [], ["region"], np.full(1000, 0.5), max_categories=2
    )
    column = reference.columns[0]
    assert column.labels() == ["a", "b", "(other)", "(missing)"]
    assert column.shares == [0.6, 0.3, 0.1, 0.0]

    result = drift_of(reference, mix({"a": 600, "b": 300, "z": 50, "c": 50}), np.full(1000, 0.5))

    drift = result.columns[0]
    assert drift.actual == [0.6, 0.3, 0.1, 0.0]
    assert result.psi["region"] == 0.0


def test_missing_values_have_their_own_bucket() -> None:
    reference = build_reference(
        pd.DataFrame({"x": [1.0, 2.0, 3.0, np.nan] * 25, "region": ["a", "b", "a", None] * 25}),
        ["x"],
        ["region"],
        np.full(100, 0.5),
        bins=4,
    )
    assert reference.columns[0].shares[-1] == 0.25
    assert reference.columns[1].shares == [0.5, 0.25, 0.0, 0.25]

    batch = pd.DataFrame({"x": [1.0, np.nan, np.nan, np.nan], "region": [None, None, None, "a"]})
    result = drift_of(reference, batch, np.full(4, 0.5))

    assert result.columns[0].actual[-1] == 0.75
    assert result.columns[1].actual == [0.25, 0.0, 0.0, 0.75]
    assert result.columns[1].moved(top=1) == [
        {"bucket": "(missing)", "expected": 0.25, "actual": 0.75}
    ]


def test_chunked_updates_equal_one_shot() -> None:
    frame, scores = training(seed=0)
    reference = build_reference(frame, ["x"], ["region"], scores)
    batch, batch_scores = training(seed=3, rows=5_000)
    batch["x"] *= 1.5

    whole = drift_of(reference, batch, batch_scores)
    chunked = drift_of(reference, batch, batch_scores, chunk=777)

    assert chunked.rows == whole.rows == 5_000
    assert chunked.psi == whole.psi and chunked.score_psi == whole.score_psi
    assert [c.actual for c in chunked.columns] == [c.actual for c in whole.columns]
    assert chunked.score_quantiles_actual == whole.score_quantiles_actual
    assert chunked.score_mean_shift == pytest.approx(whole.score_mean_shift, abs=1e-12)
    assert whole.levels["x"] in ("warn", "alert") and whole.psi["x"] > 0.1


def test_reference_round_trips_through_sorted_json_exactly() -> None:
    frame, scores = training()
    frame["code"] = np.where(np.arange(ROWS) % 3 == 0, 12.0, 7.0)  # codes read as floats
    reference = build_reference(frame, ["x"], ["region", "code"], scores)

    text = json.dumps(reference.to_dict(), sort_keys=True)
    restored = DriftReference.from_dict(json.loads(text))

    assert restored == reference
    assert json.dumps(restored.to_dict(), sort_keys=True) == text
    assert restored.column_names == ["x", "region", "code"]
    assert restored.columns[2].values == ["7", "12"]  # whole numbers without '.0'


def test_a_damaged_reference_says_what_is_wrong() -> None:
    frame, scores = training(rows=200)
    state = build_reference(frame, ["x"], [], scores).to_dict()

    with pytest.raises(DriftError, match=r"lacks \['score'\]"):
        DriftReference.from_dict({k: v for k, v in state.items() if k != "score"})
    state["columns"][0]["shares"] = state["columns"][0]["shares"][:-1]
    with pytest.raises(DriftError, match="10 shares for 11 buckets"):
        DriftReference.from_dict(state)


def test_multiclass_scores_drift_on_the_top_class_probability() -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"x": rng.normal(size=4000)})
    unsure = rng.dirichlet([2, 2, 2], size=4000)
    reference = build_reference(frame, ["x"], [], unsure)
    assert reference.score.width == 3
    assert reference.score.mean == pytest.approx(unsure.max(axis=1).mean())

    same = drift_of(reference, frame, unsure)
    sure = drift_of(reference, frame, rng.dirichlet([0.2, 0.2, 0.2], size=4000))

    assert same.score_psi == 0.0 and same.level == "ok"
    assert sure.score_level == "alert" and sure.drifted == ["score"]
    assert sure.score_mean_shift > 0.2  # a sure model's top class is near 1
    assert sure.score_quantiles_actual["q50"] > reference.score.quantiles["q50"] + 0.2
    with pytest.raises(DriftError, match="1 column"):
        DriftAccumulator(reference).update(frame, unsure[:, 0])


def test_bad_input_is_refused_with_the_reason() -> None:
    frame, scores = training(rows=100)
    reference = build_reference(frame, ["x"], ["region"], scores)
    accumulator = DriftAccumulator(reference)

    with pytest.raises(DriftError, match=r"lacks the drift columns \['region'\]"):
        accumulator.update(frame[["x"]], scores)
    with pytest.raises(DriftError, match="99 scores for 100 rows"):
        accumulator.update(frame, scores[:-1])
    with pytest.raises(DriftError, match=r"not probabilities in \[0, 1\]"):
        accumulator.update(frame, np.r_[scores[:-1], np.nan])
    with pytest.raises(DriftError, match="no rows were counted"):
        accumulator.result()
    with pytest.raises(DriftError, match=r"lacks the drift columns \['nope'\]"):
        build_reference(frame, ["nope"], [], scores)


def test_result_as_dict_and_metrics() -> None:
    reference = build_reference(
        mix({"a": 500, "b": 300, "c": 200}), [], ["region"], np.linspace(0, 1, 1000)
    )
    batch = mix({"a": 200, "b": 300, "c": 500})

    result = drift_of(reference, batch, np.linspace(0, 1, 1000) ** 2)
    summary = json.loads(json.dumps(result.as_dict(), allow_nan=False))

    assert result.metrics() == {
        "drift.psi.region": pytest.approx(0.6 * math.log(2.5)),
        "drift.score_psi": result.score_psi,
        "drift.score_mean_shift": pytest.approx(1 / 3 - 1 / 2, abs=1e-3),
    }
    assert summary["level"] == "alert" and summary["drifted"] == ["region", "score"]
    assert summary["columns"][0]["moved"][0] == {"bucket": "a", "expected": 0.5, "actual": 0.2}
    assert len(summary["score"]["buckets"]) == 10
    assert summary["score"]["mean_shift"] == pytest.approx(-1 / 6, abs=1e-3)


def test_report_files_are_written_and_escape_column_names(tmp_path: Path) -> None:
    frame, scores = training(rows=2000)
    frame["<b>x</b>"] = frame["x"]
    reference = build_reference(frame, ["x", "<b>x</b>"], ["region"], scores)
    batch = frame.copy()
    batch["<b>x</b>"] += 2.0

    result = drift_of(reference, batch, scores)
    html_path, png_path = tmp_path / "out" / "drift.html", tmp_path / "out" / "drift.png"
    render_drift_report(result, reference, html_path, png_path)

    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = html_path.read_text(encoding="utf-8")
    assert "data:image/png;base64," in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert "<td>region</td>" in page and "<td>x</td>" in page
    assert result.drifted == ["<b>x</b>"]
    assert result.metrics()["drift.psi._b_x__b_"] == result.psi["<b>x</b>"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["drift.html", "drift.png"]


def test_a_small_batch_from_the_training_distribution_does_not_alert() -> None:
    frame, scores = training(seed=0)
    reference = build_reference(frame, ["x"], ["region"], scores)
    batch, batch_scores = training(seed=11, rows=75)

    result = drift_of(reference, batch, batch_scores)

    # x has 11 filled buckets (10 deciles and missing): 75 rows read PSI 0.35 by chance alone
    assert result.psi["x"] > 0.25
    assert result.columns[0].rows_needed == 11 * MIN_ROWS_PER_BUCKET
    assert result.levels == {"x": "too few rows", "region": "ok"}  # region: 3 buckets, 60 rows
    assert result.score_level == "too few rows"
    assert result.level == "ok" and result.drifted == []
    assert result.summary == (
        "1 of 2 features judged; 1 had too few rows; the score had too few rows "
        "(fewer than 20 per expected bucket)"
    )
    # a PSI that is noise is not logged, so no chart of PSI over batches shows it as drift
    assert set(result.metrics()) == {"drift.psi.region", "drift.score_mean_shift"}
    summary = json.loads(json.dumps(result.as_dict(), allow_nan=False))
    assert (summary["features"], summary["features_judged"]) == (2, 1)
    assert summary["too_few_rows"] == ["x"]
    assert summary["columns"][0]["level"] == "too few rows"


def test_a_batch_too_small_for_every_column_has_no_drift_level_but_says_so() -> None:
    frame, scores = training(seed=0)
    reference = build_reference(frame, ["x"], ["region"], scores)
    batch, batch_scores = training(seed=1, rows=30)
    batch["region"] = "c"  # moved completely, but 30 rows cannot tell

    result = drift_of(reference, batch, batch_scores)

    assert result.level == "too few rows"
    assert set(result.levels.values()) == {"too few rows"} and result.drifted == []
    assert result.summary.startswith("0 of 2 features judged; 2 had too few rows")
    assert result.metrics() == {"drift.score_mean_shift": result.score_mean_shift}


def test_a_judged_column_still_alerts_beside_one_with_too_few_rows() -> None:
    frame, scores = training(seed=0)
    reference = build_reference(frame, ["x"], ["region"], scores)
    batch, batch_scores = training(seed=2, rows=100)
    batch["region"] = "c"
    batch["x"] += 5.0  # far off too, but 100 rows are too few for 11 buckets

    result = drift_of(reference, batch, batch_scores)

    assert result.levels == {"x": "too few rows", "region": "alert"}
    assert result.level == "alert" and result.drifted == ["region"]


def test_rows_to_judge_counts_the_buckets_training_filled() -> None:
    reference = build_reference(
        mix({"a": 600, "b": 300, "c": 100}), [], ["region"], np.full(1000, 0.5)
    )
    # a, b and c filled; (other) and (missing) empty: 3 buckets, and the score has one value
    assert rows_to_judge(reference.columns[0].shares) == 3 * MIN_ROWS_PER_BUCKET
    assert rows_to_judge(reference.score.shares) == MIN_ROWS_PER_BUCKET
    assert rows_to_judge([0.0, 0.0]) == MIN_ROWS_PER_BUCKET

    just_enough = drift_of(reference, mix({"a": 30, "b": 20, "c": 10}), np.full(60, 0.5))
    one_short = drift_of(reference, mix({"a": 30, "b": 20, "c": 9}), np.full(59, 0.5))

    assert just_enough.levels["region"] == "ok" and just_enough.level == "ok"
    assert one_short.levels["region"] == "too few rows" and one_short.score_level == "ok"


def test_the_report_shows_too_few_rows_apart_from_the_levels(tmp_path: Path) -> None:
    frame, scores = training(rows=2000)
    reference = build_reference(frame, ["x"], ["region"], scores)
    batch, batch_scores = training(seed=11, rows=75)

    result = drift_of(reference, batch, batch_scores)
    html_path, png_path = tmp_path / "drift.html", tmp_path / "drift.png"
    render_drift_report(result, reference, html_path, png_path)

    page = html_path.read_text(encoding="utf-8")
    assert '<td class="too-few-rows">too few rows (needs 220)</td>' in page
    assert "1 of 2 features judged; 1 had too few rows" in page
    assert 'class="too few rows"' not in page
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
