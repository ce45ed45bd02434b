"""Holdout metrics and the plots people would rather look at than read."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import matplotlib

matplotlib.use("Agg")  # headless: plots are files, never windows

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.sparse as sp
from matplotlib.figure import Figure
from sklearn import metrics as skm

from pipelines.config import ParamsError, UseCase
from pipelines.modeling.baselines import evaluate_baselines
from pipelines.modeling.calibration import reliability
from pipelines.modeling.decisions import apply_policy
from pipelines.modeling.features import DATE_PARTS
from pipelines.modeling.metrics import (
    binary_score_metrics,
    both_classes,
    class_support,
    multiclass_score_metrics,
)
from pipelines.modeling.model import ModelBundle
from pipelines.modeling.slices import SliceReport, metric_parts, plot_slices, slice_report
from pipelines.modeling.training import DataSplit, encode_target


@dataclass
class Evaluation:
    metrics: dict[str, float]
    figures: dict[str, Figure] = field(default_factory=dict)
    # plot data as rows, for tools that draw their own plots (dvc plots)
    curves: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    slices: SliceReport | None = None
    # JSON-friendly extras for the evaluation report and the model card
    details: dict[str, Any] = field(default_factory=dict)


def evaluate(
    bundle: ModelBundle, holdout: pd.DataFrame, params: UseCase, *, detailed: bool = True
) -> Evaluation:
    """Score the holdout and measure it; figures are returned, never shown or saved here.
    `detailed` adds calibration, SHAP, per-class and slice reports (the gate skips them)."""
    y_true = encode_target(holdout[params.target], params, bundle.classes)
    known = y_true >= 0
    rows = holdout[known].reset_index(drop=True)
    scores = bundle.predict_proba(rows)
    y_true = y_true[known]
    if bundle.task == "binary":
        evaluation = evaluate_binary(y_true, scores, bundle)
    else:
        evaluation = evaluate_multiclass(y_true, scores, bundle)
    if detailed:
        add_details(evaluation, bundle, rows, y_true, scores, params)
    return evaluation


def add_details(
    evaluation: Evaluation,
    bundle: ModelBundle,
    rows: pd.DataFrame,
    y_true: np.ndarray,
    scores: np.ndarray,
    params: UseCase,
) -> None:
    """Calibration before/after, a SHAP summary, per-class figures and slices."""
    raw = bundle.raw_proba(rows) if bundle.calibrator is not None else scores
    calibrated = scores if bundle.calibrator is not None else None
    evaluation.figures["reliability.png"] = plot_reliability(
        y_true, raw, "Reliability on the holdout", calibrated_scores=calibrated
    )
    evaluation.details["calibration"] = {
        "method": None if bundle.calibrator is None else bundle.calibrator.method,
        "before": probability_quality(y_true, raw, bundle.task, len(bundle.classes)),
        **(
            {"after": probability_quality(y_true, scores, bundle.task, len(bundle.classes))}
            if calibrated is not None
            else {}
        ),
    }
    features = bundle.transform.transform(rows)
    evaluation.figures["shap_summary.png"] = plot_shap_summary(
        bundle.booster, features, bundle.transform.feature_names
    )
    if bundle.task == "multiclass":
        predicted = scores.argmax(axis=1)
        report = per_class_report(y_true, predicted, bundle.classes)
        evaluation.details["per_class"] = report
        parts = metric_parts(list(report))
        for label, values in report.items():
            if values["support"] > 0:  # no holdout rows: recall is undefined, not 0
                part = parts[label]
                evaluation.metrics[f"precision_{part}"] = values["precision"]
                evaluation.metrics[f"recall_{part}"] = values["recall"]
    if params.slices.columns:
        missing = [c for c in params.slices.columns if c not in rows.columns]
        if missing:
            raise ParamsError(
                f"slices.columns names {missing}, which the data does not have; remove them "
                "from the params or add them to the dataset"
            )
        flagged = apply_policy(scores, bundle.policy, bundle.task, bundle.classes).flagged
        report = slice_report(
            rows,
            params.slices.columns,
            y_true,
            scores,
            flagged,
            bundle.task,
            min_rows=params.slices.min_rows,
            max_recall_ratio=params.slices.max_recall_ratio,
            min_positives=params.slices.min_positives,
        )
        evaluation.slices = report
        evaluation.metrics.update(report.metrics())
        evaluation.details["slices"] = report.as_dict()
        evaluation.figures["slices.png"] = plot_slices(report)


def probability_quality(
    y_true: np.ndarray, scores: np.ndarray, task: str, n_classes: int
) -> dict[str, float]:
    """How trustworthy the probabilities are: calibration error, and the proper scores."""
    quality = {"ece": float(reliability(y_true, scores)["ece"])}
    if task == "binary":
        quality["brier"] = float(skm.brier_score_loss(y_true, scores))
        quality["log_loss"] = float(skm.log_loss(y_true, scores, labels=[0, 1]))
    else:
        quality["log_loss"] = float(skm.log_loss(y_true, scores, labels=list(range(n_classes))))
    return quality


def baselines_for(bundle: ModelBundle, split: DataSplit, params: UseCase) -> dict[str, Any]:
    """The class prior and a logistic regression on the model's own features, trained on the
    rows the model was fitted on (training, plus validation when the model was refitted on
    them) and measured on the same holdout as the model."""
    fitted_on = split.train
    if params.lightgbm.refit_on_validation:
        fitted_on = pd.concat([split.train, split.validation], ignore_index=True)
    train_y = encode_target(fitted_on[params.target], params, bundle.classes)
    holdout_y = encode_target(split.holdout[params.target], params, bundle.classes)
    train_known, holdout_known = train_y >= 0, holdout_y >= 0
    return evaluate_baselines(
        bundle.transform.transform(fitted_on[train_known]),
        train_y[train_known],
        bundle.transform.transform(split.holdout[holdout_known]),
        holdout_y[holdout_known],
        bundle.task,
        len(bundle.classes),
        categorical_indices=bundle.transform.categorical_indices,
    )


def evaluate_binary(y_true: np.ndarray, scores: np.ndarray, bundle: ModelBundle) -> Evaluation:
    flagged = apply_policy(scores, bundle.policy, bundle.task, bundle.classes).flagged
    metrics = {
        "holdout_rows": float(len(y_true)),
        "holdout_positive_rate": float(y_true.mean()),
        **binary_score_metrics(y_true, scores),
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
    if both_classes(y_true):
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
    """Macro and weighted F1 over the classes the holdout holds; per-class F1 only for those
    (a class without holdout rows has no F1). `details['classes']` names the absent ones."""
    predicted = scores.argmax(axis=1)
    classes = class_support(y_true, bundle.classes)
    metrics = {
        "holdout_rows": float(len(y_true)),
        **multiclass_score_metrics(y_true, scores, len(bundle.classes)),
    }
    present = [i for i, label in enumerate(bundle.classes) if classes["support"][label] > 0]
    per_class = skm.f1_score(y_true, predicted, average=None, labels=present, zero_division=0)
    parts = metric_parts(bundle.classes)
    metrics.update(
        {
            f"f1_{parts[bundle.classes[i]]}": float(v)
            for i, v in zip(present, per_class, strict=True)
        }
    )
    figures = {
        "confusion_matrix.png": plot_confusion(y_true, predicted, bundle.classes),
        "feature_importance.png": plot_importance(bundle),
    }
    return Evaluation(
        metrics,
        figures,
        {"confusion": confusion_rows(y_true, predicted, bundle.classes)},
        details={"classes": classes},
    )


def per_class_report(
    y_true: np.ndarray, predicted: np.ndarray, classes: list[str]
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support (row count) per class name, from sklearn's
    classification report; a class never predicted has precision 0, not a warning."""
    report = skm.classification_report(
        y_true,
        predicted,
        labels=list(range(len(classes))),
        target_names=classes,
        output_dict=True,
        zero_division=0,
    )
    return {
        label: {
            "precision": float(report[label]["precision"]),
            "recall": float(report[label]["recall"]),
            "f1": float(report[label]["f1-score"]),
            "support": float(report[label]["support"]),
        }
        for label in classes
    }


def plot_roc(y_true: np.ndarray, scores: np.ndarray, auc: float) -> Figure:
    figure, axes = plt.subplots(figsize=(5, 5))
    if both_classes(y_true):
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


def plot_reliability(
    y_true: np.ndarray,
    scores: np.ndarray,
    title: str,
    calibrated_scores: np.ndarray | None = None,
) -> Figure:
    """Reliability diagram: mean predicted probability against the observed rate per bin,
    raw scores and, when given, calibrated ones, each labelled with its ECE. Binary plots the
    positive probability; multiclass (scores (n, k)) the top-class confidence."""
    shown = {"raw": scores, "calibrated": calibrated_scores}
    # measured before drawing, so bad input raises without leaving an open figure behind
    curves = {name: reliability(y_true, v) for name, v in shown.items() if v is not None}
    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for name, points in curves.items():
        axes.plot(
            points["mean_predicted"],
            points["observed"],
            marker="o",
            label=f"{name} (ECE {points['ece']:.3f})",
        )
    on = "positive probability" if np.ndim(scores) == 1 else "top-class confidence"
    axes.set(
        xlabel=f"Mean predicted {on}",
        ylabel="Observed rate" if np.ndim(scores) == 1 else "Observed accuracy",
        xlim=(0, 1),
        ylim=(0, 1),
        title=title,
    )
    axes.legend(loc="upper left")
    return figure


_GROUPED_FEATURE = re.compile(rf"^(?P<column>.+)__(hash\d+|{'|'.join(DATE_PARTS)})$")


# TreeSHAP costs time per row (about 9 ms a row for risk-triage's 8,199 features: 18 s for
# 2,000 rows, 4.6 s for 500, 1.8 s for 200). Mean |SHAP| per column on 200 holdout rows, three
# seeds, against 2,000 rows: the same columns in the same order, within 4-5% on average
# (500 rows: 2-4%); docs/modeling.md has the figures
SHAP_ROWS = 200


def shap_values(
    booster: lgb.Booster,
    features: np.ndarray | sp.csr_matrix,
    feature_names: list[str],
    max_rows: int = SHAP_ROWS,
    seed: int = 0,
) -> tuple[list[str], np.ndarray]:
    """SHAP contributions from LightGBM's exact TreeSHAP (`pred_contrib=True`), per input
    column: hashed text buckets and date parts are summed back into their column, which SHAP's
    additivity allows. TreeSHAP costs time per row, so at most `max_rows` rows are explained:
    a seeded sample, the same on every run.

    Returns the column names and an array (rows, classes, columns); binary has one class (the
    log-odds of the positive), and the expected-value column is dropped."""
    if booster.num_feature() != len(feature_names):
        raise ValueError(
            f"the booster has {booster.num_feature()} features but {len(feature_names)} names "
            "were given; pass the transform's feature_names"
        )
    rows = features.shape[0]
    if rows > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(rows, size=max_rows, replace=False))
        features = features[keep]
    contributions = booster.predict(features, pred_contrib=True)
    per_class = _contribution_blocks(contributions, booster.num_model_per_iteration())
    columns = [_input_column(name) for name in feature_names]
    names = list(dict.fromkeys(columns))
    position = {name: i for i, name in enumerate(names)}
    # features x columns, 1 where a feature belongs to a column: one product groups them all
    grouping = sp.csr_matrix(
        (np.ones(len(columns)), (np.arange(len(columns)), [position[c] for c in columns])),
        shape=(len(columns), len(names)),
    )
    grouped = [_dense(block[:, :-1] @ grouping) for block in per_class]
    return names, np.stack(grouped, axis=1)


def _contribution_blocks(contributions: Any, n_classes: int) -> list[Any]:
    """LightGBM's pred_contrib output as one (rows, features + 1) block per class: dense
    output packs classes side by side, sparse multiclass output is already a list."""
    if isinstance(contributions, list):
        return [sp.csr_matrix(block) for block in contributions]
    if sp.issparse(contributions):
        return [sp.csr_matrix(contributions)]
    width = contributions.shape[1] // n_classes
    return [contributions[:, k * width : (k + 1) * width] for k in range(n_classes)]


def _dense(matrix: Any) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)


def _input_column(feature_name: str) -> str:
    match = _GROUPED_FEATURE.match(feature_name)
    return match.group("column") if match else feature_name


def shap_importance(
    booster: lgb.Booster,
    features: np.ndarray | sp.csr_matrix,
    feature_names: list[str],
    top: int = 20,
    max_rows: int = SHAP_ROWS,
    seed: int = 0,
) -> list[tuple[str, float]]:
    """Input columns by mean |SHAP| (summed over classes for multiclass), largest first."""
    names, values = shap_values(booster, features, feature_names, max_rows, seed)
    importance = np.abs(values).mean(axis=0).sum(axis=0)
    order = np.argsort(-importance, kind="stable")[:top]
    return [(names[i], float(importance[i])) for i in order]


def plot_shap_summary(
    booster: lgb.Booster,
    features: np.ndarray | sp.csr_matrix,
    feature_names: list[str],
    top: int = 20,
    max_rows: int = SHAP_ROWS,
    seed: int = 0,
) -> Figure:
    """Left: mean |SHAP| per input column, top `top`. Right: each sampled row's contribution
    per column (binary: signed log-odds; multiclass: |contribution| summed over classes), so a
    column that matters a lot for a few rows shows as a long tail. For a bundle:
    plot_shap_summary(bundle.booster, bundle.transform.transform(frame),
    bundle.transform.feature_names)."""
    names, values = shap_values(booster, features, feature_names, max_rows, seed)
    importance = np.abs(values).mean(axis=0).sum(axis=0)
    order = np.argsort(-importance, kind="stable")[:top][::-1]  # barh draws bottom-up
    per_row = values[:, 0, :] if values.shape[1] == 1 else np.abs(values).sum(axis=1)
    figure, (bars, strips) = plt.subplots(1, 2, figsize=(11, 0.35 * len(order) + 1.8), sharey=True)
    positions = np.arange(len(order))
    bars.barh(positions, importance[order])
    bars.set_yticks(positions, [names[i] for i in order])
    bars.set(xlabel="Mean |SHAP value|", title="Feature impact")
    jitter = np.random.default_rng(seed).uniform(-0.25, 0.25, size=len(per_row))
    for position, column in zip(positions, order, strict=True):
        strips.scatter(per_row[:, column], position + jitter, s=4, alpha=0.4, color="tab:blue")
    strips.axvline(0, color="grey", linewidth=0.8)
    explained = len(per_row)
    sample = (
        f"{explained:,} of {features.shape[0]:,} rows, a seeded sample"
        if explained < features.shape[0]
        else f"all {explained:,} rows"
    )
    strips.set(
        xlabel="SHAP value (log-odds)" if values.shape[1] == 1 else "|SHAP value|, all classes",
        title=f"Per row ({sample})",
    )
    figure.tight_layout()
    return figure
