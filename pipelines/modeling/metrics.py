"""The threshold-free metrics of scores against true classes, one way for the model and its
baselines alike."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def both_classes(y_true: np.ndarray) -> bool:
    return len(np.unique(y_true)) == 2


def binary_score_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The threshold-free binary metrics, one way for the model and its baselines alike.
    ROC AUC is NaN when the rows hold one class only."""
    return {
        "roc_auc": float(skm.roc_auc_score(y_true, scores))
        if both_classes(y_true)
        else float("nan"),
        "pr_auc": float(skm.average_precision_score(y_true, scores)),
        "log_loss": float(skm.log_loss(y_true, scores, labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y_true, scores)),
    }


def multiclass_score_metrics(
    y_true: np.ndarray, scores: np.ndarray, n_classes: int
) -> dict[str, float]:
    """Accuracy, macro and weighted F1 of the top class, and log loss over all n_classes
    (class indices 0..n_classes-1), so a class absent from these rows still counts."""
    predicted = scores.argmax(axis=1)
    labels = list(range(n_classes))
    return {
        "accuracy": float(skm.accuracy_score(y_true, predicted)),
        "macro_f1": float(skm.f1_score(y_true, predicted, average="macro", labels=labels)),
        "weighted_f1": float(skm.f1_score(y_true, predicted, average="weighted", labels=labels)),
        "log_loss": float(skm.log_loss(y_true, scores, labels=labels)),
    }
