"""Baselines the model must beat, measured on the same holdout with the same metric functions.

A model that cannot beat the class prior learned nothing; one that cannot beat a logistic
regression on its own features may not be worth its complexity. Both are cheap to fit."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: plots are files, never windows

import matplotlib.pyplot as plt
import numpy as np
import scipy.sparse as sp
from matplotlib.figure import Figure
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import MaxAbsScaler, OneHotEncoder

from pipelines.config import LOWER_IS_BETTER
from pipelines.modeling.metrics import binary_score_metrics, multiclass_score_metrics

Matrix = np.ndarray | sp.csr_matrix

BASELINES = ("class_prior", "logistic_regression")
SEED = 0


def evaluate_baselines(
    train_X: Matrix,
    train_y: np.ndarray,
    holdout_X: Matrix,
    holdout_y: np.ndarray,
    task: str,
    n_classes: int,
    categorical_indices: Sequence[int] = (),
) -> dict[str, dict[str, float]]:
    """Holdout metrics per baseline, keyed 'class_prior' and 'logistic_regression'.

    X: the model's transformed features (`bundle.transform.transform(frame)`), dense or CSR,
    NaN allowed. y: encoded targets (binary 0/1; multiclass 0..n_classes-1). The metrics are
    the model's threshold-free holdout metrics, from the same functions: binary roc_auc,
    pr_auc, log_loss, brier; multiclass accuracy, macro_f1 and weighted_f1 (over the classes
    holdout_y holds, as for the model), log_loss (over all n_classes).
    `categorical_indices` (the transform's) are one-hot encoded for the regression: a linear
    model cannot use category codes as numbers."""
    if task not in ("binary", "multiclass"):
        raise ValueError(f"unknown task '{task}'; use 'binary' or 'multiclass'")
    train_y, holdout_y = np.asarray(train_y), np.asarray(holdout_y)
    if task == "binary" and n_classes != 2:
        raise ValueError(f"a binary task has 2 classes; got n_classes={n_classes}")
    for name, y in (("train_y", train_y), ("holdout_y", holdout_y)):
        outside = sorted(set(np.unique(y).tolist()) - set(range(n_classes)))
        if outside:
            raise ValueError(
                f"{name} must hold class indices 0..{n_classes - 1}; found {outside[:5]} "
                "(drop rows whose class the model does not know)"
            )
    scored = {
        "class_prior": class_prior_scores(train_y, len(holdout_y), task, n_classes),
        "logistic_regression": logistic_regression_scores(
            train_X, train_y, holdout_X, task, n_classes, categorical_indices
        ),
    }
    if task == "binary":
        return {name: binary_score_metrics(holdout_y, s) for name, s in scored.items()}
    return {name: multiclass_score_metrics(holdout_y, s, n_classes) for name, s in scored.items()}


def class_prior_scores(train_y: np.ndarray, rows: int, task: str, n_classes: int) -> np.ndarray:
    """The training class frequencies for every row: what a model knowing no feature says."""
    frequencies = np.bincount(train_y, minlength=n_classes)[:n_classes] / len(train_y)
    if task == "binary":
        return np.full(rows, frequencies[1])
    return np.tile(frequencies, (rows, 1))


def logistic_regression_scores(
    train_X: Matrix,
    train_y: np.ndarray,
    holdout_X: Matrix,
    task: str,
    n_classes: int,
    categorical_indices: Sequence[int] = (),
) -> np.ndarray:
    """Probabilities from a logistic regression (multinomial for multiclass) on the model's
    features: missing values as 0, category codes one-hot, every column scaled by its largest
    absolute value (keeps CSR sparse). Binary: shape (n,); multiclass: (n, n_classes), with
    zeros for a class the training rows never held."""
    if len(np.unique(train_y)) < 2:
        raise ValueError("the training rows hold one class; a logistic regression needs two")
    encoder = (
        OneHotEncoder(handle_unknown="ignore", dtype=np.float32) if categorical_indices else None
    )
    if encoder is not None:
        encoder.fit(_categories(train_X, categorical_indices))
    scaler = MaxAbsScaler()
    train = scaler.fit_transform(_design(train_X, categorical_indices, encoder))
    holdout = scaler.transform(_design(holdout_X, categorical_indices, encoder))
    regression = LogisticRegression(max_iter=2000, random_state=SEED)
    probabilities = regression.fit(train, train_y).predict_proba(holdout)
    if task == "binary":
        return probabilities[:, list(regression.classes_).index(1)]
    full = np.zeros((probabilities.shape[0], n_classes))
    full[:, regression.classes_.astype(int)] = probabilities
    return full


def _categories(features: Matrix, indices: Sequence[int]) -> np.ndarray:
    """Category code columns as text, missing as its own category."""
    codes = features[:, list(indices)]
    codes = codes.toarray() if sp.issparse(codes) else np.asarray(codes)
    missing = np.isnan(codes)
    return np.where(missing, "missing", np.where(missing, 0, codes).astype(int).astype(str))


def _design(
    features: Matrix, categorical: Sequence[int], encoder: OneHotEncoder | None
) -> sp.csr_matrix:
    """The features as CSR with non-finite values as 0 and category codes one-hot."""
    matrix = sp.csr_matrix(features, dtype=np.float64, copy=True)
    matrix.data[~np.isfinite(matrix.data)] = 0.0
    if encoder is None:
        matrix.eliminate_zeros()
        return matrix
    one_hot_columns = set(categorical)
    others = [i for i in range(matrix.shape[1]) if i not in one_hot_columns]
    one_hot = encoder.transform(_categories(features, categorical))
    combined = sp.hstack([matrix[:, others], one_hot], format="csr")
    combined.eliminate_zeros()
    return combined


def baseline_metrics(baselines: dict[str, dict[str, float]]) -> dict[str, float]:
    """Flat names for MLflow: 'baseline.<name>.<metric>'."""
    return {
        f"baseline.{name}.{metric}": value
        for name, measured in baselines.items()
        for metric, value in measured.items()
    }


def plot_baselines(
    model_metrics: dict[str, float], baselines: dict[str, dict[str, float]], metric: str
) -> Figure:
    """One bar for the model and one per baseline on one holdout metric, values written on."""
    missing = [
        name
        for name, measured in {"model": model_metrics, **baselines}.items()
        if metric not in measured
    ]
    if missing:
        raise ValueError(f"metric '{metric}' is not measured for {missing}; pick one all share")
    names = ["model", *baselines]
    values = [model_metrics[metric], *(measured[metric] for measured in baselines.values())]
    figure, axes = plt.subplots(figsize=(1.6 * len(names) + 2, 4))
    bars = axes.bar(names, values, color=["tab:blue", *["tab:grey"] * len(baselines)])
    axes.bar_label(bars, fmt="%.3f")
    better = "lower" if metric in LOWER_IS_BETTER else "higher"
    axes.set(ylabel=metric, title=f"{metric} on the holdout ({better} is better)")
    axes.margins(y=0.15)
    figure.tight_layout()
    return figure
