"""Holdout metrics and the plots people would rather look at than read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: plots are files, never windows

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn import metrics as skm

from pipelines.config import UseCase
from pipelines.decisions import apply_policy
from pipelines.model import ModelBundle
from pipelines.training import encode_target


@dataclass
class Evaluation:
    metrics: dict[str, float]
    figures: dict[str, Figure] = field(default_factory=dict)
    # plot data as rows, for tools that draw their own plots (dvc plots)
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def evaluate(bundle: ModelBundle, holdout: pd.DataFrame, params: UseCase) -> Evaluation:
    """Score the holdout and measure it; figures are returned, never shown or saved here."""
    y_true = encode_target(holdout[params.target], params, bundle.classes)
    known = y_true >= 0
    scores = bundle.predict_proba(holdout)[known]
    y_true = y_true[known]
    if bundle.task == "binary":
        return evaluate_binary(y_true, scores, bundle)
    return evaluate_multiclass(y_true, scores, bundle)


def evaluate_binary(y_true: np.ndarray, scores: np.ndarray, bundle: ModelBundle) -> Evaluation:
    flagged = apply_policy(scores, bundle.policy, bundle.task, bundle.classes).flagged
    metrics = {
        "holdout_rows": float(len(y_true)),
        "holdout_positive_rate": float(y_true.mean()),
        "roc_auc": float(skm.roc_auc_score(y_true, scores)) if _both(y_true) else float("nan"),
        "pr_auc": float(skm.average_precision_score(y_true, scores)),
        "log_loss": float(skm.log_loss(y_true, scores, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y_true, scores)),
        "precision_at_policy": float(skm.precision_score(y_true, flagged, zero_division=0)),
        "recall_at_policy": float(skm.recall_score(y_true, flagged, zero_division=0)),
        "f1_at_policy": float(skm.f1_score(y_true, flagged, zero_division=0)),
        "flagged_rate": float(flagged.mean()),
    }
    figures = {
        "roc_curve.png": plot_roc(y_true, scores, metrics["roc_auc"]),
        "pr_curve.png": plot_pr(y_true, scores, metrics["pr_auc"]),
        "confusion_matrix.png": plot_confusion(y_true, flagged.astype(int), bundle.classes),
        "feature_importance.png": plot_importance(bundle),
    }
    curves = {"confusion": confusion_rows(y_true, flagged.astype(int), bundle.classes)}
    if _both(y_true):
        fpr, tpr, _ = skm.roc_curve(y_true, scores)
        precision, recall, _ = skm.precision_recall_curve(y_true, scores)
        curves["roc"] = thinned({"fpr": fpr, "tpr": tpr})
        curves["precision_recall"] = thinned({"recall": recall, "precision": precision})
    return Evaluation(metrics, figures, curves)


def thinned(columns: dict[str, np.ndarray], points: int = 200) -> list[dict[str, Any]]:
    """At most `points` rows of a curve, evenly spaced along it, end points kept."""
    length = len(next(iter(columns.values())))
    keep = np.unique(np.linspace(0, length - 1, min(points, length)).round().astype(int))
    return [{name: float(values[i]) for name, values in columns.items()} for i in keep]


def confusion_rows(
    y_true: np.ndarray, predicted: np.ndarray, classes: list[str]
) -> list[dict[str, Any]]:
    return [
        {"actual": classes[a], "predicted": classes[p]}
        for a, p in zip(y_true, predicted, strict=True)
    ]


def evaluate_multiclass(y_true: np.ndarray, scores: np.ndarray, bundle: ModelBundle) -> Evaluation:
    predicted = scores.argmax(axis=1)
    labels = list(range(len(bundle.classes)))
    metrics = {
        "holdout_rows": float(len(y_true)),
        "accuracy": float(skm.accuracy_score(y_true, predicted)),
        "macro_f1": float(skm.f1_score(y_true, predicted, average="macro", labels=labels)),
        "weighted_f1": float(skm.f1_score(y_true, predicted, average="weighted", labels=labels)),
        "log_loss": float(skm.log_loss(y_true, scores, labels=labels)),
    }
    per_class = skm.f1_score(y_true, predicted, average=None, labels=labels, zero_division=0)
    metrics.update(
        {f"f1_{label}": float(v) for label, v in zip(bundle.classes, per_class, strict=True)}
    )
    figures = {
        "confusion_matrix.png": plot_confusion(y_true, predicted, bundle.classes),
        "feature_importance.png": plot_importance(bundle),
    }
    return Evaluation(
        metrics, figures, {"confusion": confusion_rows(y_true, predicted, bundle.classes)}
    )


def _both(y_true: np.ndarray) -> bool:
    return len(np.unique(y_true)) == 2


def plot_roc(y_true: np.ndarray, scores: np.ndarray, auc: float) -> Figure:
    figure, axes = plt.subplots(figsize=(5, 5))
    if _both(y_true):
        fpr, tpr, _ = skm.roc_curve(y_true, scores)
        axes.plot(fpr, tpr, label=f"model (AUC {auc:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC, holdout")
    axes.legend(loc="lower right")
    return figure


def plot_pr(y_true: np.ndarray, scores: np.ndarray, average_precision: float) -> Figure:
    figure, axes = plt.subplots(figsize=(5, 5))
    precision, recall, _ = skm.precision_recall_curve(y_true, scores)
    axes.plot(recall, precision, label=f"model (AP {average_precision:.3f})")
    axes.axhline(y_true.mean(), linestyle="--", color="grey", label="base rate")
    axes.set(xlabel="Recall", ylabel="Precision", title="Precision-recall, holdout")
    axes.legend(loc="upper right")
    return figure


def plot_confusion(y_true: np.ndarray, predicted: np.ndarray, classes: list[str]) -> Figure:
    matrix = skm.confusion_matrix(y_true, predicted, labels=list(range(len(classes))))
    figure, axes = plt.subplots(figsize=(1.2 * len(classes) + 3, 1.2 * len(classes) + 2.5))
    skm.ConfusionMatrixDisplay(matrix, display_labels=classes).plot(
        ax=axes, colorbar=False, values_format="d"
    )
    axes.set_title("Confusion matrix, holdout")
    plt.setp(axes.get_xticklabels(), rotation=30, ha="right")
    figure.tight_layout()
    return figure


def plot_importance(bundle: ModelBundle, top: int = 20) -> Figure:
    """Gain per input column: hashed text buckets are summed back to their column."""
    gains = pd.Series(
        bundle.booster.feature_importance(importance_type="gain"),
        index=bundle.booster.feature_name(),
    )
    by_column = gains.groupby(gains.index.str.split("__").str[0]).sum()
    by_column = by_column.sort_values().tail(top)
    figure, axes = plt.subplots(figsize=(6, 0.35 * len(by_column) + 1.5))
    axes.barh(by_column.index, by_column.to_numpy())
    axes.set(xlabel="Total gain", title="Feature importance by gain")
    figure.tight_layout()
    return figure
