"""Baselines on small synthetic problems where the features carry a real signal."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import roc_auc_score

from pipelines.modeling.baselines import (
    baseline_metrics,
    class_prior_scores,
    evaluate_baselines,
    plot_baselines,
)
from pipelines.modeling.metrics import binary_score_metrics

BINARY_KEYS = {"roc_auc", "pr_auc", "log_loss", "brier"}
MULTICLASS_KEYS = {"accuracy", "macro_f1", "weighted_f1", "log_loss"}


def binary_problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two numeric columns, the first one predictive, with some values missing."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x[:, 0] + rng.normal(scale=0.5, size=n) > 0.3).astype(int)
    x[rng.uniform(size=n) < 0.1, 1] = np.nan
    return x, y


def test_logistic_regression_beats_the_prior_whose_roc_auc_is_one_half() -> None:
    train_X, train_y = binary_problem(400, seed=1)
    holdout_X, holdout_y = binary_problem(200, seed=2)

    result = evaluate_baselines(train_X, train_y, holdout_X, holdout_y, "binary", 2)

    assert set(result) == {"class_prior", "logistic_regression"}
    prior, regression = result["class_prior"], result["logistic_regression"]
    assert set(prior) == set(regression) == BINARY_KEYS
    assert prior["roc_auc"] == 0.5
    assert prior["pr_auc"] == pytest.approx(holdout_y.mean())
    assert regression["roc_auc"] > 0.85
    assert regression["log_loss"] < prior["log_loss"] - 0.2
    assert regression["brier"] < prior["brier"]
    # the prior's Brier score is the spread of the labels around the training base rate
    base_rate = train_y.mean()
    assert prior["brier"] == pytest.approx(np.mean((holdout_y - base_rate) ** 2))


def test_a_csr_matrix_with_nan_in_its_dense_part_gives_the_dense_numbers() -> None:
    train_X, train_y = binary_problem(400, seed=3)
    holdout_X, holdout_y = binary_problem(200, seed=4)
    dense = evaluate_baselines(train_X, train_y, holdout_X, holdout_y, "binary", 2)
    # hashed-text-like 0/1 columns after the numeric ones, as the feature transform builds
    words = sp.random(600, 50, density=0.05, random_state=6, dtype=np.float32, format="csr")
    words.data[:] = 1.0
    sparse_train = sp.hstack([sp.csr_matrix(train_X), words[:400]], format="csr")
    sparse_holdout = sp.hstack([sp.csr_matrix(holdout_X), words[400:]], format="csr")
    assert np.isnan(sparse_train.data).any()

    same = evaluate_baselines(
        sp.csr_matrix(train_X), train_y, sp.csr_matrix(holdout_X), holdout_y, "binary", 2
    )
    with_words = evaluate_baselines(sparse_train, train_y, sparse_holdout, holdout_y, "binary", 2)

    assert same["logistic_regression"] == pytest.approx(dense["logistic_regression"], rel=1e-6)
    regression = with_words["logistic_regression"]
    assert all(np.isfinite(value) for value in regression.values())
    assert regression["roc_auc"] > 0.85


def test_multiclass_baselines_report_the_model_metric_names() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(600, 3))
    y = np.digitize(x[:, 0] + rng.normal(scale=0.3, size=600), [-0.5, 0.5])  # 0, 1, 2

    result = evaluate_baselines(x[:400], y[:400], x[400:], y[400:], "multiclass", 3)

    prior, regression = result["class_prior"], result["logistic_regression"]
    assert set(prior) == set(regression) == MULTICLASS_KEYS
    majority = np.bincount(y[:400]).argmax()
    assert prior["accuracy"] == pytest.approx(np.mean(y[400:] == majority))
    assert regression["accuracy"] > 0.75
    assert regression["macro_f1"] > prior["macro_f1"] + 0.4


def test_category_codes_are_one_hot_encoded_for_the_regression() -> None:
    # the middle code is the risky one: no straight line through the codes can find it
    rng = np.random.default_rng(8)
    codes = rng.integers(0, 3, size=900).astype(np.float32)
    codes[rng.uniform(size=900) < 0.05] = np.nan
    y = ((codes == 1) ^ (rng.uniform(size=900) < 0.1)).astype(int)
    x = codes.reshape(-1, 1)

    as_numbers = evaluate_baselines(x[:600], y[:600], x[600:], y[600:], "binary", 2)
    as_categories = evaluate_baselines(
        x[:600], y[:600], x[600:], y[600:], "binary", 2, categorical_indices=[0]
    )

    assert as_numbers["logistic_regression"]["roc_auc"] < 0.65
    assert as_categories["logistic_regression"]["roc_auc"] > 0.85


def test_the_prior_predicts_training_frequencies_and_zero_for_an_unseen_class() -> None:
    scores = class_prior_scores(
        np.array([0, 0, 1, 1, 1, 1]), rows=2, task="multiclass", n_classes=3
    )

    np.testing.assert_allclose(scores, [[1 / 3, 2 / 3, 0.0]] * 2)


def test_labels_outside_the_classes_are_refused() -> None:
    x, y = binary_problem(40, seed=9)

    with pytest.raises(ValueError, match=r"holdout_y must hold class indices 0..1; found \[-1\]"):
        evaluate_baselines(x, y, x, np.where(y == 0, -1, y), "binary", 2)


def test_baseline_metrics_are_flat_names_for_mlflow() -> None:
    flat = baseline_metrics({"class_prior": {"roc_auc": 0.5, "brier": 0.2}})

    assert flat == {"baseline.class_prior.roc_auc": 0.5, "baseline.class_prior.brier": 0.2}


def test_the_baseline_plot_has_one_bar_for_the_model_and_each_baseline() -> None:
    train_X, train_y = binary_problem(200, seed=10)
    holdout_X, holdout_y = binary_problem(100, seed=11)
    baselines = evaluate_baselines(train_X, train_y, holdout_X, holdout_y, "binary", 2)
    model = binary_score_metrics(holdout_y, np.clip(holdout_X[:, 0], 0, 1))

    figure = plot_baselines(model, baselines, "roc_auc")
    try:
        axes = figure.axes[0]
        assert [tick.get_text() for tick in axes.get_xticklabels()] == [
            "model",
            "class_prior",
            "logistic_regression",
        ]
        heights = [patch.get_height() for patch in axes.patches]
        assert heights == pytest.approx(
            [model["roc_auc"], 0.5, baselines["logistic_regression"]["roc_auc"]]
        )
        assert "higher is better" in axes.get_title()
    finally:
        plt.close(figure)


def test_plotting_a_metric_a_baseline_lacks_says_which() -> None:
    with pytest.raises(ValueError, match=r"'brier' is not measured for \['class_prior'\]"):
        plot_baselines({"brier": 0.1}, {"class_prior": {"roc_auc": 0.5}}, "brier")


def test_the_model_metric_helper_matches_sklearn() -> None:
    y = np.array([0, 1, 1, 0, 1])
    scores = np.array([0.2, 0.7, 0.4, 0.5, 0.9])

    assert binary_score_metrics(y, scores)["roc_auc"] == roc_auc_score(y, scores)
