"""Probability calibration: isotonic or Platt (sigmoid) maps fitted on held-aside rows.

The fitted state is plain lists of floats, so a calibrator travels inside the model bundle's
JSON and applies with numpy alone: no pickle, no sklearn object at scoring time."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

import numpy as np
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression

Method = Literal["isotonic", "sigmoid"]
Task = Literal["binary", "multiclass"]
METHODS: tuple[Method, ...] = ("isotonic", "sigmoid")
TASKS: tuple[Task, ...] = ("binary", "multiclass")

# Calibrated probabilities never reach 0 or 1: one confident mistake would make log loss infinite.
EPSILON = 1e-6


@dataclass(frozen=True)
class Calibrator:
    """A per-class map from raw to calibrated probability; binary has one class (the positive).

    Isotonic: `x_thresholds[c]`, `y_thresholds[c]`, applied with np.interp (flat beyond the
    ends). Sigmoid (Platt): `slopes[c]`, `intercepts[c]`, p' = sigmoid(a * logit(p) + b).
    Multiclass calibrates each class one-vs-rest, then rescales rows to sum to 1."""

    method: Method
    task: Task
    x_thresholds: list[list[float]] = field(default_factory=list)
    y_thresholds: list[list[float]] = field(default_factory=list)
    slopes: list[float] = field(default_factory=list)
    intercepts: list[float] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        """Classes the model scores: 2 for binary, though only the positive one is mapped."""
        maps = len(self.x_thresholds) if self.method == "isotonic" else len(self.slopes)
        return 2 if self.task == "binary" else maps

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """Binary: (n,) positive probabilities in, (n,) out. Multiclass: (n, k) in, (n, k) out
        with rows summing to 1. Values stay within [EPSILON, 1 - EPSILON] (multiclass: before
        the rows are rescaled)."""
        scores = np.asarray(scores, dtype=float)
        if self.task == "binary":
            if scores.ndim != 1:
                raise ValueError(
                    f"a binary calibrator takes one positive probability per row, shape (n,); "
                    f"got shape {scores.shape}"
                )
            return self._map(0, scores)
        if scores.ndim != 2 or scores.shape[1] != self.n_classes:
            raise ValueError(
                f"this calibrator was fitted on {self.n_classes} classes and takes scores of "
                f"shape (n, {self.n_classes}); got shape {scores.shape}"
            )
        mapped = np.column_stack([self._map(c, scores[:, c]) for c in range(self.n_classes)])
        return mapped / mapped.sum(axis=1, keepdims=True)

    def _map(self, index: int, probabilities: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            mapped = np.interp(probabilities, self.x_thresholds[index], self.y_thresholds[index])
        else:
            mapped = _sigmoid(self.slopes[index] * _logit(probabilities) + self.intercepts[index])
        return np.clip(mapped, EPSILON, 1 - EPSILON)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Calibrator:
        """The calibrator `to_dict` described; a missing or unknown key raises TypeError."""
        method, task = state.get("method"), state.get("task")
        if method not in METHODS or task not in TASKS:
            raise ValueError(
                f"a stored calibrator needs method in {list(METHODS)} and task in {list(TASKS)}; "
                f"got method={method!r}, task={task!r}"
            )
        return cls(
            **{
                **state,
                "x_thresholds": [[float(v) for v in xs] for xs in state.get("x_thresholds", [])],
                "y_thresholds": [[float(v) for v in ys] for ys in state.get("y_thresholds", [])],
                "slopes": [float(v) for v in state.get("slopes", [])],
                "intercepts": [float(v) for v in state.get("intercepts", [])],
            }
        )


def fit_calibrator(scores: np.ndarray, y_true: np.ndarray, method: str, task: str) -> Calibrator:
    """Fit on rows the model did not train on. y_true: binary 0/1; multiclass indices 0..k-1,
    where k is the number of score columns and every class must occur at least once."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method '{method}'; use one of {list(METHODS)}")
    if task not in TASKS:
        raise ValueError(f"unknown task '{task}'; use one of {list(TASKS)}")
    scores = np.asarray(scores, dtype=float)
    y_true = np.asarray(y_true)
    columns = _class_columns(scores, task)
    _check_labels(y_true, len(scores), len(columns) if task == "multiclass" else 2)
    if not np.isfinite(scores).all():
        raise ValueError("calibration scores must be finite probabilities; some are NaN or inf")
    targets = [y_true == 1] if task == "binary" else [y_true == c for c in range(len(columns))]
    pairs = list(zip(columns, targets, strict=True))
    if method == "isotonic":
        fitted = [_isotonic(column, target) for column, target in pairs]
        return Calibrator(
            "isotonic",
            cast(Task, task),
            x_thresholds=[xs for xs, _ in fitted],
            y_thresholds=[ys for _, ys in fitted],
        )
    platt = [_platt(column, target) for column, target in pairs]
    return Calibrator(
        "sigmoid",
        cast(Task, task),
        slopes=[a for a, _ in platt],
        intercepts=[b for _, b in platt],
    )


def _class_columns(scores: np.ndarray, task: str) -> list[np.ndarray]:
    if task == "binary":
        if scores.ndim != 1:
            raise ValueError(
                f"binary calibration takes the positive probability per row, shape (n,); "
                f"got shape {scores.shape}"
            )
        return [scores]
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(
            f"multiclass calibration takes one probability column per class, shape (n, k>=2); "
            f"got shape {scores.shape}"
        )
    return [scores[:, c] for c in range(scores.shape[1])]


def _check_labels(y_true: np.ndarray, rows: int, n_classes: int) -> None:
    if y_true.ndim != 1 or len(y_true) != rows:
        raise ValueError(f"y_true needs one label per score row ({rows}); got shape {y_true.shape}")
    unexpected = sorted(set(np.unique(y_true).tolist()) - set(range(n_classes)))
    if unexpected:
        raise ValueError(
            f"y_true must hold class indices 0..{n_classes - 1}; found {unexpected[:5]}"
        )
    missing = sorted(set(range(n_classes)) - set(np.unique(y_true).tolist()))
    if missing:
        raise ValueError(
            f"class index(es) {missing} never occur in the calibration labels, so their "
            "probabilities cannot be calibrated; use a larger calibration fraction"
        )


def _isotonic(probabilities: np.ndarray, target: np.ndarray) -> tuple[list[float], list[float]]:
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    fitted.fit(probabilities, target.astype(float))
    return fitted.X_thresholds_.tolist(), fitted.y_thresholds_.tolist()


def _platt(probabilities: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Platt's fit: logistic regression on logit(p) against smoothed targets, so a separable
    calibration set gives a steep but finite slope rather than an infinite one."""
    logits = _logit(probabilities)
    positives = float(target.sum())
    negatives = float(len(target) - positives)
    smoothed = np.where(target, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * logits + params[1]
        # log(1 + e^z) - t z, written to stay finite for large |z|
        value = float(np.sum(np.logaddexp(0, z) - smoothed * z))
        residual = _sigmoid(z) - smoothed
        return value, np.array([np.dot(residual, logits), residual.sum()])

    result = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
    return float(result.x[0]), float(result.x[1])


def _logit(probabilities: np.ndarray) -> np.ndarray:
    clipped = np.clip(probabilities, EPSILON, 1 - EPSILON)
    return np.log(clipped / (1 - clipped))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * z))  # exact sigmoid, no overflow warnings


def reliability(y_true: np.ndarray, scores: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Expected calibration error and the reliability-diagram points, JSON-friendly.

    Binary (scores shape (n,)): the positive probability against the positive rate.
    Multiclass (shape (n, k)): the top-class confidence against how often the top class is right.
    Equal-width bins over [0, 1]; only bins holding rows are listed, with their edges."""
    scores = np.asarray(scores, dtype=float)
    y_true = np.asarray(y_true)
    if bins < 1:
        raise ValueError(f"bins must be at least 1; got {bins}")
    if len(scores) != len(y_true):
        raise ValueError(f"{len(y_true)} labels for {len(scores)} score rows; they must match")
    if scores.ndim == 1:
        confidence, outcome, kind = scores, (y_true == 1).astype(float), "positive_probability"
    elif scores.ndim == 2:
        confidence = scores.max(axis=1)
        outcome = (scores.argmax(axis=1) == y_true).astype(float)
        kind = "top_class_confidence"
    else:
        raise ValueError(f"scores must have shape (n,) or (n, k); got {scores.shape}")
    index = np.clip(np.floor(confidence * bins).astype(int), 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=confidence, minlength=bins)
    observed = np.bincount(index, weights=outcome, minlength=bins)
    held = count > 0
    mean_predicted = predicted[held] / count[held]
    mean_observed = observed[held] / count[held]
    weights = count[held] / max(len(scores), 1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    return {
        "ece": float(np.sum(weights * np.abs(mean_predicted - mean_observed))),
        "on": kind,
        "bins": bins,
        "bin_lower": edges[:-1][held].tolist(),
        "bin_upper": edges[1:][held].tolist(),
        "mean_predicted": mean_predicted.tolist(),
        "observed": mean_observed.tolist(),
        "count": count[held].astype(int).tolist(),
    }
