"""Calibration maps fitted on deliberately mis-calibrated scores, and their stored form."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from pipelines.config import UseCase
from pipelines.modeling.calibration import Calibrator, fit_calibrator, reliability
from pipelines.modeling.model import ModelBundle
from pipelines.modeling.training import fit_model, split_data


def overconfident_binary(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True probabilities p, labels drawn from them, and scores p**3: far too low."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, size=n)
    y = (rng.uniform(size=n) < p).astype(int)
    return p, y, p**3


def skewed_multiclass(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from true class probabilities; scores are those sharpened (too confident)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=1.0, size=(n, 3))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    sharp = p**4
    return y, sharp / sharp.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibrating_cubed_probabilities_lowers_ece_and_brier(method: str) -> None:
    _, y_fit, scores_fit = overconfident_binary(3000, seed=1)
    _, y_test, scores_test = overconfident_binary(3000, seed=2)

    calibrator = fit_calibrator(scores_fit, y_fit, method, "binary")
    calibrated = calibrator.apply(scores_test)

    before, after = reliability(y_test, scores_test), reliability(y_test, calibrated)
    assert before["ece"] > 0.2
    # a sigmoid in logit(p) cannot undo a cube exactly; isotonic gets within sampling noise
    assert after["ece"] < (0.05 if method == "sigmoid" else 0.03)
    assert brier_score_loss(y_test, calibrated) < brier_score_loss(y_test, scores_test) - 0.03
    assert calibrated.shape == scores_test.shape
    assert calibrated.min() >= 1e-6 and calibrated.max() <= 1 - 1e-6


def test_platt_scaling_flattens_and_lifts_cubed_scores() -> None:
    # cubing pushes scores towards 0 and spreads their logits: the fit undoes it with a slope
    # below 1 and a positive intercept
    _, y, scores = overconfident_binary(5000, seed=3)

    calibrator = fit_calibrator(scores, y, "sigmoid", "binary")

    assert 0.2 < calibrator.slopes[0] < 0.8
    assert calibrator.intercepts[0] > 0.5  # cubed scores are too low: shift up


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_multiclass_calibration_gives_rows_summing_to_one_and_lowers_log_loss(
    method: str,
) -> None:
    y_fit, scores_fit = skewed_multiclass(2400, seed=4)
    y_test, scores_test = skewed_multiclass(2400, seed=5)

    calibrator = fit_calibrator(scores_fit, y_fit, method, "multiclass")
    calibrated = calibrator.apply(scores_test)

    assert calibrated.shape == (2400, 3)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1.0, atol=1e-12)
    assert calibrator.n_classes == 3
    raw_loss = log_loss(y_test, scores_test, labels=[0, 1, 2])
    assert log_loss(y_test, calibrated, labels=[0, 1, 2]) < raw_loss - 0.05
    assert reliability(y_test, calibrated)["ece"] < reliability(y_test, scores_test)["ece"] / 2


@pytest.mark.parametrize(("method", "task"), [("isotonic", "binary"), ("sigmoid", "multiclass")])
def test_a_calibrator_survives_a_json_round_trip_exactly(method: str, task: str) -> None:
    if task == "binary":
        _, y, scores = overconfident_binary(500, seed=6)
    else:
        y, scores = skewed_multiclass(500, seed=6)
    calibrator = fit_calibrator(scores, y, method, task)

    stored = json.dumps(calibrator.to_dict(), sort_keys=True)
    restored = Calibrator.from_dict(json.loads(stored))

    assert restored == calibrator
    np.testing.assert_array_equal(restored.apply(scores), calibrator.apply(scores))


def test_a_class_missing_from_the_calibration_labels_is_refused() -> None:
    y, scores = skewed_multiclass(300, seed=7)
    y = np.where(y == 2, 0, y)

    with pytest.raises(ValueError, match=r"class index\(es\) \[2\] never occur"):
        fit_calibrator(scores, y, "isotonic", "multiclass")


def test_a_binary_calibration_set_without_positives_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\[1\] never occur"):
        fit_calibrator(np.array([0.1, 0.4, 0.3]), np.array([0, 0, 0]), "sigmoid", "binary")


def test_an_unknown_method_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown calibration method 'beta'.*'isotonic'"):
        fit_calibrator(np.array([0.1, 0.9]), np.array([0, 1]), "beta", "binary")


def test_scores_of_the_wrong_shape_are_refused() -> None:
    calibrator = fit_calibrator(
        np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]), "isotonic", "binary"
    )

    with pytest.raises(ValueError, match=r"shape \(n,\); got shape \(2, 2\)"):
        calibrator.apply(np.array([[0.1, 0.9], [0.5, 0.5]]))


def test_reliability_bins_a_perfect_forecast_with_zero_error() -> None:
    scores = np.repeat([0.25, 0.75], 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])

    points = reliability(y, scores, bins=4)

    assert points["ece"] == pytest.approx(0.0)
    assert points["mean_predicted"] == [0.25, 0.75]
    assert points["observed"] == [0.25, 0.75]
    assert points["count"] == [4, 4]
    assert points["bin_lower"] == [0.25, 0.75]
    json.dumps(points, allow_nan=False)


def test_multiclass_reliability_measures_top_class_confidence_against_accuracy() -> None:
    scores = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.1, 0.2, 0.7], [0.1, 0.2, 0.7]])
    y = np.array([0, 1, 2, 2])

    points = reliability(y, scores, bins=10)

    assert points["on"] == "top_class_confidence"
    # 0.9 confident, right half the time: 0.4 off; 0.7 confident, always right: 0.3 off
    assert points["ece"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.3)


def test_a_calibrated_bundle_scores_the_same_after_its_texts_round_trip() -> None:
    rng = np.random.default_rng(8)
    x = rng.normal(size=500)
    frame = pd.DataFrame(
        {"id": np.arange(500), "x": x, "y": np.select([x < -0.5, x < 0.5], ["a", "b"], "c")}
    )
    params = UseCase.model_validate(
        {
            "dataset": "cases",
            "id_column": "id",
            "target": "y",
            "task": "multiclass",
            "features": {"numeric": ["x"]},
            "lightgbm": {"num_iterations": 20, "min_data_in_leaf": 5, "num_threads": 1},
            "split": {"method": "random", "seed": 3},
            "decision": {"kind": "threshold", "threshold": 0.5},
            "calibration": {"method": "sigmoid", "fraction": 0.2},
            "min_training_rows": 10,
        }
    )
    bundle = fit_model(split_data(frame, params), params).bundle

    restored = ModelBundle.from_texts(bundle.to_texts())

    assert restored.calibrator == bundle.calibrator
    scores = restored.predict_proba(frame)
    np.testing.assert_array_equal(scores, bundle.predict_proba(frame))
    np.testing.assert_allclose(scores.sum(axis=1), 1.0)
    assert not np.allclose(scores, bundle.raw_proba(frame))
