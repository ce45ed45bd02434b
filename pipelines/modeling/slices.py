"""Metrics per group of rows (slices) and how far apart the groups' recall is (disparity).

A model can do well on average and still miss most cases of one group; the slice report makes
that visible per column the use case names, and the gate can refuse a model on it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: plots are files, never windows

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn import metrics as skm

from pipelines.data.columns import text_column

MISSING = "(missing)"
OTHER = "(other)"
# Binary: a group with fewer positives than this (the params default, slices.min_positives) is
# "too few positives" and left out of the ratio. Recall over n positives moves in steps of 1/n:
# under 10, one case caught or missed shifts it by more than 0.1, and a ratio on it is noise.
MIN_POSITIVES = 10
# A slice's `status`: whether its recall counts towards the column's ratio, and if not, why.
JUDGED = "judged"
RECALL_ZERO = "recall 0"  # judged: with another group above 0 the ratio is undefined
TOO_FEW_ROWS = "too few rows"
TOO_FEW_POSITIVES = "too few positives"
# the per-row keys that describe a slice rather than measure it
_LABELS = ("column", "value", "in_disparity", "status")


@dataclass(frozen=True)
class SliceReport:
    """`rows`: one dict per (column, value) with its metrics; None where a metric is undefined
    (recall without positives, precision with nothing flagged, ROC AUC with one class).
    `disparity`: per column, max/min of `recall_metric` over the slices that count (at least
    min_rows rows, and for binary at least min_positives positives); inf when the worst slice
    has recall 0 and another does not, NaN when every slice has recall 0: both are undefined.
    Columns with fewer than two such slices are absent. Each row's `status` says whether it
    counted ('judged', 'recall 0') or why not ('too few rows', 'too few positives').
    `flagged_columns`: ratio above `max_recall_ratio`, or undefined (flagged with or without a
    limit: a group whose cases are all missed is never within limits)."""

    task: str
    rows: list[dict[str, Any]]
    disparity: dict[str, float]
    flagged_columns: list[str]
    passed: bool
    recall_metric: str
    min_rows: int
    max_recall_ratio: float | None = None
    unmeasured_columns: list[str] = field(default_factory=list)

    @property
    def undefined_columns(self) -> list[str]:
        """Columns whose ratio is undefined (infinite or NaN): a judged group has recall 0."""
        return [column for column, ratio in self.disparity.items() if not math.isfinite(ratio)]

    def ratio_notes(self) -> dict[str, str]:
        """Why a column's ratio is undefined, naming its groups with recall 0."""
        notes = {}
        for column in self.undefined_columns:
            zero = [
                str(row["value"])
                for row in self.rows
                if row["column"] == column and row["status"] == RECALL_ZERO
            ]
            where = (
                "every group" if math.isnan(self.disparity[column]) else "group " + ", ".join(zero)
            )
            notes[column] = f"{self.recall_metric} 0 in {where}: ratio undefined, not within limits"
        return notes

    def metrics(self) -> dict[str, float]:
        """Flat names for MLflow: 'slice.<column>.<value>.<metric>' and
        'disparity.<column>.recall_ratio' (multiclass: the ratio of macro recall). An undefined
        ratio is left out (as_dict's notes say why): no number would be true."""
        flat: dict[str, float] = {}
        names: dict[tuple[str, str], str] = {}
        for row in self.rows:
            key = names.setdefault(
                (row["column"], row["value"]), _unique_name(row["column"], row["value"], names)
            )
            for metric, value in row.items():
                if metric not in _LABELS and value is not None:
                    flat[f"slice.{key}.{metric}"] = float(value)
        for column, ratio in self.disparity.items():
            if math.isfinite(ratio):
                flat[f"disparity.{sanitise(column)}.recall_ratio"] = ratio
        return flat

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly (json.dumps(allow_nan=False) works): an undefined ratio is null, with
        a note saying why."""
        return {
            "task": self.task,
            "recall_metric": self.recall_metric,
            "min_rows": self.min_rows,
            "max_recall_ratio": self.max_recall_ratio,
            "rows": [dict(row) for row in self.rows],
            "disparity": {c: (r if math.isfinite(r) else None) for c, r in self.disparity.items()},
            "notes": self.ratio_notes(),
            "unmeasured_columns": list(self.unmeasured_columns),
            "flagged_columns": list(self.flagged_columns),
            "passed": self.passed,
        }


def slice_report(
    frame: pd.DataFrame,
    columns: list[str],
    y_true: np.ndarray,
    scores: np.ndarray,
    flagged: np.ndarray | None,
    task: str,
    min_rows: int = 30,
    max_recall_ratio: float | None = None,
    min_positives: int = MIN_POSITIVES,
) -> SliceReport:
    """Metrics per value of each slice column, over the rows of `frame` in the same order as
    y_true, scores and flagged.

    Binary: y_true 0/1, scores the positive probability (n,), flagged the policy's decision;
    each slice gets rows, positives, positive_rate, flagged_rate, recall, precision, roc_auc.
    Multiclass: y_true class indices, scores (n, k); each slice gets rows, accuracy and
    macro_recall (over the classes the slice holds), plus confident_rate when flagged (the
    policy's confident rows) is given. Missing values are the slice '(missing)'; values with
    fewer than min_rows rows are pooled as '(other)'. Binary slices with fewer than
    min_positives positives are 'too few positives': shown, but left out of the ratio."""
    if task not in ("binary", "multiclass"):
        raise ValueError(f"unknown task '{task}'; use 'binary' or 'multiclass'")
    if min_rows < 1 or min_positives < 1:
        raise ValueError(
            f"min_rows and min_positives must be at least 1; got {min_rows} and {min_positives}"
        )
    absent = [column for column in columns if column not in frame.columns]
    if absent:
        raise ValueError(
            f"the table lacks the slice columns {absent}; slices.columns must name columns of "
            "the scored table"
        )
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=float)
    if task == "binary" and flagged is None:
        raise ValueError("a binary slice report needs flagged, the policy's decision per row")
    flags = None if flagged is None else np.asarray(flagged, dtype=bool)
    lengths = {len(frame), len(y_true), len(scores), *([] if flags is None else [len(flags)])}
    if len(lengths) != 1:
        raise ValueError(
            f"frame, y_true, scores and flagged must have one entry per row; got lengths "
            f"{len(frame)}, {len(y_true)}, {len(scores)} and "
            f"{'-' if flags is None else len(flags)}"
        )
    recall_metric = "recall" if task == "binary" else "macro_recall"
    rows: list[dict[str, Any]] = []
    disparity: dict[str, float] = {}
    unmeasured: list[str] = []
    for column in columns:
        groups = slice_values(frame[column], min_rows)
        measured = []
        for value in slice_order(groups):
            member = (groups == value).to_numpy()
            measure = binary_slice if task == "binary" else multiclass_slice
            metrics = measure(
                y_true[member], scores[member], None if flags is None else flags[member]
            )
            status = slice_status(metrics, recall_metric, min_rows, min_positives)
            counts = status in (JUDGED, RECALL_ZERO)
            rows.append(
                {
                    "column": column,
                    "value": value,
                    "in_disparity": counts,
                    "status": status,
                    **metrics,
                }
            )
            if counts:
                measured.append(metrics[recall_metric])
        if len(measured) < 2:
            unmeasured.append(column)
        else:
            disparity[column] = recall_ratio(measured)
    flagged_columns = [
        column
        for column, ratio in disparity.items()
        if not math.isfinite(ratio) or (max_recall_ratio is not None and ratio > max_recall_ratio)
    ]
    return SliceReport(
        task=task,
        rows=rows,
        disparity=disparity,
        flagged_columns=flagged_columns,
        passed=not flagged_columns,
        recall_metric=recall_metric,
        min_rows=min_rows,
        max_recall_ratio=max_recall_ratio,
        unmeasured_columns=unmeasured,
    )


def slice_status(
    metrics: dict[str, Any], recall_metric: str, min_rows: int, min_positives: int
) -> str:
    """Whether a slice's recall is judged: enough rows, and for binary enough positives."""
    if metrics["rows"] < min_rows:
        return TOO_FEW_ROWS
    if "positives" in metrics and metrics["positives"] < min_positives:
        return TOO_FEW_POSITIVES
    return RECALL_ZERO if metrics[recall_metric] == 0 else JUDGED


def slice_values(values: pd.Series, min_rows: int) -> pd.Series:
    """Each row's slice: its value as text (codes read as floats lose their '.0'),
    '(missing)', or '(other)' for values with fewer than min_rows rows."""
    as_text = text_column(values).fillna(MISSING).astype(str)
    counts = as_text.value_counts()
    rare = counts.index[counts < min_rows]
    return as_text.where(~as_text.isin(rare), OTHER).reset_index(drop=True)


def slice_order(groups: pd.Series) -> list[str]:
    """Largest slice first, ties by value, '(other)' last: the same order on every run."""
    counts = groups.value_counts()
    return sorted(counts.index, key=lambda value: (value == OTHER, -counts[value], value))


def binary_slice(
    y_true: np.ndarray, scores: np.ndarray, flagged: np.ndarray | None
) -> dict[str, Any]:
    assert flagged is not None  # slice_report insists on it for binary
    positives = int((y_true == 1).sum())
    flagged_count = int(flagged.sum())
    caught = int((flagged & (y_true == 1)).sum())
    both = 0 < positives < len(y_true)
    return {
        "rows": len(y_true),
        "positives": positives,
        "positive_rate": positives / len(y_true),
        "flagged_rate": flagged_count / len(y_true),
        "recall": caught / positives if positives else None,
        "precision": caught / flagged_count if flagged_count else None,
        "roc_auc": float(skm.roc_auc_score(y_true, scores)) if both else None,
    }


def multiclass_slice(
    y_true: np.ndarray, scores: np.ndarray, flagged: np.ndarray | None
) -> dict[str, Any]:
    predicted = scores.argmax(axis=1)
    present = np.unique(y_true)
    recall = skm.recall_score(y_true, predicted, labels=present, average="macro", zero_division=0)
    measured: dict[str, Any] = {
        "rows": len(y_true),
        "accuracy": float((predicted == y_true).mean()),
        "macro_recall": float(recall),
    }
    if flagged is not None:
        measured["confident_rate"] = float(flagged.mean())
    return measured


def recall_ratio(recalls: list[float]) -> float:
    """max/min; inf when the worst is 0 and the best is not, NaN when all are 0: undefined
    either way (all 0 is not "equal", it is a model that misses every group)."""
    best, worst = max(recalls), min(recalls)
    if worst == 0:
        return math.nan if best == 0 else math.inf
    return best / worst


def sanitise(text: str) -> str:
    """A metric-name part: anything outside [A-Za-z0-9_.-] becomes '_'."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def metric_parts(labels: list[str]) -> dict[str, str]:
    """Each label as a metric-name part: MLflow refuses names with other characters than
    [A-Za-z0-9_.-], so those become '_', numbered when two labels come out alike. Reports,
    cards and outputs keep the labels themselves."""
    parts: dict[str, str] = {}
    for label in labels:
        base = name = sanitise(str(label))
        number = 2
        while name in parts.values():
            name, number = f"{base}_{number}", number + 1
        parts[label] = name
    return parts


def _unique_name(column: str, value: str, taken: dict[tuple[str, str], str]) -> str:
    """'<column>.<value>' sanitised, numbered when two values of a column sanitise alike."""
    base = f"{sanitise(column)}.{sanitise(value)}"
    used = set(taken.values())
    name, number = base, 2
    while name in used:
        name, number = f"{base}_{number}", number + 1
    return name


def plot_slices(report: SliceReport, metric: str | None = None) -> Figure:
    """One horizontal bar per slice, grouped by column; `metric` defaults to the report's
    recall metric. A slice where the metric is undefined shows 'n/a' instead of a bar."""
    metric = metric or report.recall_metric
    known = {key for row in report.rows for key in row} - set(_LABELS)
    if report.rows and metric not in known:
        raise ValueError(f"slices have no metric '{metric}'; choose one of {sorted(known)}")
    labels = [f"{row['column']} = {row['value']} (n={row['rows']})" for row in report.rows]
    values = [row.get(metric) for row in report.rows]
    columns = list(dict.fromkeys(row["column"] for row in report.rows))
    colours = [f"C{columns.index(row['column']) % 10}" for row in report.rows]
    figure, axes = plt.subplots(figsize=(7, 0.35 * len(labels) + 1.5))
    positions = np.arange(len(labels))[::-1]  # first slice on top
    axes.barh(positions, [0.0 if v is None else v for v in values], color=colours)
    for position, value in zip(positions, values, strict=True):
        if value is None:
            axes.text(0.01, position, "n/a", va="center")
    axes.set_yticks(positions, labels)
    ratios = ", ".join(
        f"{column} {ratio:.2f}" if math.isfinite(ratio) else f"{column} undefined"
        for column, ratio in report.disparity.items()
    )
    title = f"{metric} by slice" + (
        f" (max/min {report.recall_metric}: {ratios})" if ratios else ""
    )
    axes.set(xlabel=metric, title=title)
    figure.tight_layout()
    return figure
