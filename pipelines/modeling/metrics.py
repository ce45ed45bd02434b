"""The threshold-free metrics of scores against true classes, one way for the model and its
baselines alike."""

from __future__ import annotations

from typing import Any

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
    """Accuracy, and macro and weighted F1 of the top class over the classes present in
    y_true: a class with no rows here has no recall to measure, and counting it as F1 0 would
    drag the average down for a reason that is not the model's. Log loss is over all n_classes
    (class indices 0..n_classes-1), so probability given to an absent class still costs."""
    predicted = scores.argmax(axis=1)
    present = np.unique(y_true).tolist()
    return {
        "accuracy": float(skm.accuracy_score(y_true, predicted)),
        "macro_f1": float(
            skm.f1_score(y_true, predicted, average="macro", labels=present, zero_division=0)
        ),
        "weighted_f1": float(
            skm.f1_score(y_true, predicted, average="weighted", labels=present, zero_division=0)
        ),
        "log_loss": float(skm.log_loss(y_true, scores, labels=list(range(n_classes)))),
    }


def class_support(y_true: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Which classes the rows hold and how many rows each: what macro F1 was averaged over.
    `present` and `absent` keep the order of `classes`; `support` counts every class."""
    if len(y_true) and (np.min(y_true) < 0 or np.max(y_true) >= len(classes)):
        raise ValueError(
            f"y_true must hold class indices 0..{len(classes) - 1}; drop rows whose class the "
            "model does not know first"
        )
    counts = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=len(classes))
    return {
        "present": [label for label, n in zip(classes, counts, strict=True) if n > 0],
        "absent": [label for label, n in zip(classes, counts, strict=True) if n == 0],
        "support": {label: int(n) for label, n in zip(classes, counts, strict=True)},
    }
