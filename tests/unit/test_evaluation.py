"""Holdout metrics and figures for small fitted binary and multiclass models."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from pipelines.config import UseCase
from pipelines.evaluation import Evaluation, evaluate, plot_confusion, plot_roc
from pipelines.features import FeatureError
from pipelines.model import ModelBundle
from pipelines.training import DataSplit, fit_model, split_data

BINARY_METRICS = {
    "holdout_rows",
    "holdout_positive_rate",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "precision_at_policy",
    "recall_at_policy",
    "f1_at_policy",
    "flagged_rate",
}
MULTICLASS_METRICS = {
    "holdout_rows",
    "accuracy",
    "macro_f1",
    "weighted_f1",
    "log_loss",
    "f1_high",
    "f1_low",
    "f1_mid",
}


def use_case(task: str) -> UseCase:
    declared: dict[str, Any] = {
        "dataset": "cases",
        "id_column": "id",
        "target": "y",
        "task": task,
        "features": {"numeric": ["x1", "x2"], "categorical": ["colour"], "min_category_count": 2},
        "lightgbm": {
            "num_iterations": 30,
            "learning_rate": 0.2,
            "num_leaves": 7,
            "min_data_in_leaf": 5,
            "early_stopping_round": 10,
            "num_threads": 1,
        },
        "split": {"method": "random", "seed": 3},
        "decision": {"kind": "threshold", "threshold": 0.5},
        "min_training_rows": 10,
    }
    if task == "binary":
        declared["positive_class"] = 1
    return UseCase.model_validate(declared)


def synthetic(n: int, task: str) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    x1 = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    signal = 2.0 * x1 + (colour == "red") + rng.normal(scale=0.3, size=n)
    if task == "binary":
        y: np.ndarray = (signal > 0.5).astype(int)
    else:
        y = np.select([signal < -0.7, signal < 1.2], ["low", "mid"], "high")
    return pd.DataFrame(
        {"id": np.arange(n), "x1": x1, "x2": rng.normal(size=n), "colour": colour, "y": y}
    )


def fitted(task: str, rows: int) -> tuple[ModelBundle, DataSplit, UseCase]:
    params = use_case(task)
    split = split_data(synthetic(rows, task), params)
    return fit_model(split, params).bundle, split, params


@pytest.fixture(scope="module")
def binary() -> tuple[ModelBundle, DataSplit, UseCase]:
    return fitted("binary", 400)


@pytest.fixture(scope="module")
def multiclass() -> tuple[ModelBundle, DataSplit, UseCase]:
    return fitted("multiclass", 450)


@pytest.fixture
def closing() -> Iterator[list[Evaluation]]:
    """Evaluations made by a test; their figures are closed afterwards."""
    made: list[Evaluation] = []
    yield made
    for evaluation in made:
        for figure in evaluation.figures.values():
            plt.close(figure)


def assert_png_figures(figures: dict[str, Figure], names: set[str]) -> None:
    assert set(figures) == names
    for figure in figures.values():
        assert isinstance(figure, Figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        assert buffer.getvalue().startswith(b"\x89PNG\r\n\x1a\n")


def test_binary_evaluation_reports_the_documented_metrics_and_figures(
    binary: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = binary
    holdout = split.holdout

    result = evaluate(bundle, holdout, params)
    closing.append(result)

    metrics = result.metrics
    assert set(metrics) == BINARY_METRICS
    assert all(isinstance(value, float) for value in metrics.values())
    assert metrics["holdout_rows"] == len(holdout)
    assert metrics["holdout_positive_rate"] == pytest.approx(holdout["y"].mean())
    scores = bundle.predict_proba(holdout)
    assert metrics["flagged_rate"] == pytest.approx((scores >= 0.5).mean())
    for name in ("roc_auc", "pr_auc", "brier", "precision_at_policy", "recall_at_policy"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert metrics["roc_auc"] > 0.9  # the label follows x1 closely
    assert metrics["log_loss"] > 0
    assert_png_figures(
        result.figures,
        {"roc_curve.png", "pr_curve.png", "confusion_matrix.png", "feature_importance.png"},
    )


def test_multiclass_evaluation_reports_per_class_f1_and_figures(
    multiclass: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = multiclass

    result = evaluate(bundle, split.holdout, params)
    closing.append(result)

    metrics = result.metrics
    assert set(metrics) == MULTICLASS_METRICS
    assert metrics["holdout_rows"] == len(split.holdout)
    for name in MULTICLASS_METRICS - {"holdout_rows", "log_loss"}:
        assert 0.0 <= metrics[name] <= 1.0, name
    predicted = np.asarray(bundle.classes)[bundle.predict_proba(split.holdout).argmax(axis=1)]
    assert metrics["accuracy"] == pytest.approx((predicted == split.holdout["y"]).mean())
    assert metrics["accuracy"] > 0.6
    assert_png_figures(result.figures, {"confusion_matrix.png", "feature_importance.png"})


def test_holdout_rows_with_a_class_the_model_never_saw_are_left_out(
    multiclass: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = multiclass
    stranger = split.holdout.head(1).assign(y="unheard-of")
    holdout = pd.concat([split.holdout, stranger], ignore_index=True)

    result = evaluate(bundle, holdout, params)
    closing.append(result)

    assert result.metrics["holdout_rows"] == len(split.holdout)


@pytest.mark.filterwarnings("ignore:No positive class found in y_true")
def test_a_single_class_binary_holdout_has_no_roc_auc(
    binary: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = binary
    negatives = split.holdout[split.holdout["y"] == 0]

    result = evaluate(bundle, negatives, params)
    closing.append(result)

    assert np.isnan(result.metrics["roc_auc"])
    assert result.metrics["holdout_positive_rate"] == 0.0
    assert result.metrics["recall_at_policy"] == 0.0


def test_evaluating_a_holdout_without_a_feature_column_raises_feature_error(
    binary: tuple[ModelBundle, DataSplit, UseCase],
) -> None:
    bundle, split, params = binary

    with pytest.raises(FeatureError, match=r"lacks the feature columns \['x2'\]"):
        evaluate(bundle, split.holdout.drop(columns="x2"), params)


def test_evaluating_a_holdout_without_the_target_raises_key_error(
    binary: tuple[ModelBundle, DataSplit, UseCase],
) -> None:
    bundle, split, params = binary

    with pytest.raises(KeyError, match="'y'"):
        evaluate(bundle, split.holdout.drop(columns="y"), params)


def test_confusion_matrix_plot_labels_every_class() -> None:
    figure = plot_confusion(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]), ["a", "b", "c"])
    try:
        labels = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
        assert labels == ["a", "b", "c"]
    finally:
        plt.close(figure)


def test_roc_plot_of_scores_and_labels_of_different_lengths_raises() -> None:
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        plot_roc(np.array([0, 1, 1]), np.array([0.2, 0.8]), 1.0)
    plt.close("all")


def test_binary_curves_are_plot_data_from_corner_to_corner(
    binary: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = binary
    result = evaluate(bundle, split.holdout, params)
    closing.append(result)

    assert set(result.curves) == {"roc", "precision_recall", "confusion"}
    roc = result.curves["roc"]
    assert len(roc) <= 200
    assert (roc[0]["fpr"], roc[0]["tpr"]) == (0.0, 0.0)
    assert (roc[-1]["fpr"], roc[-1]["tpr"]) == (1.0, 1.0)
    confusion = pd.DataFrame(result.curves["confusion"])
    assert len(confusion) == len(split.holdout)
    assert set(confusion["actual"]) <= set(bundle.classes)


def test_multiclass_curves_hold_only_the_confusion_rows(
    multiclass: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = multiclass
    result = evaluate(bundle, split.holdout, params)
    closing.append(result)

    assert list(result.curves) == ["confusion"]
    predicted = {row["predicted"] for row in result.curves["confusion"]}
    assert predicted <= set(bundle.classes)
