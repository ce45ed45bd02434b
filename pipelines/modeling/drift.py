"""Drift: how far a scored batch's inputs and scores have moved from what the model trained on.

At training time `build_reference` bins each monitored column and the model's scores and stores
the expected share per bucket (plain JSON, kept with the model). At scoring time a
`DriftAccumulator` counts the batch into the same buckets chunk by chunk, so memory stays the
same however many rows a batch has, and `result` turns the counts into the population
stability index (PSI) per column and for the scores, with a level per column.

PSI = sum over buckets of (actual - expected) * ln(actual / expected), with both shares
floored at EPSILON. Conventional reading: below 0.1 nothing to see, 0.1 to 0.25 a moderate
shift worth a look, above 0.25 a shift large enough that the model's scores may no longer mean
what they meant on the holdout. A batch too small for a column's buckets gets no reading at all
for it: its level is 'too few rows' (see MIN_ROWS_PER_BUCKET)."""

from __future__ import annotations

import base64
import html
import io
import itertools
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import matplotlib

matplotlib.use("Agg")  # headless: plots are files, never windows

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from pipelines.data.columns import numeric_column, text_column
from pipelines.data.storage import current_umask
from pipelines.modeling.slices import sanitise

Level = Literal["ok", "warn", "alert", "too few rows"]
Kind = Literal["numeric", "categorical"]

LEVELS: tuple[Level, ...] = ("ok", "warn", "alert")  # the judged levels, mildest first
TOO_FEW_ROWS: Level = "too few rows"  # not judged: never a warning, never an alert
# PSI of a clean sample of n rows over k buckets is about (k - 1) / n (it behaves like a
# chi-square statistic over n), so a small batch drifts by chance alone: 75 rows drawn from the
# training distribution over 10 deciles read 0.13 on average, 6 batches in 10 warn and 1 in 16
# alerts. A column (and the score) is judged only when the batch has at least this many rows per
# bucket the reference expects rows in (200 for ten deciles). At 20, chance alone reads about
# 0.05, half the usual warn line: on simulated samples of the training distribution 2-5% of such
# batches warn and under 0.1% alert, against 40-70% and up to 4% at 10 rows per bucket.
MIN_ROWS_PER_BUCKET = 20
MISSING = "(missing)"
OTHER = "(other)"
SCORE = "score"
REFERENCE_VERSION = 1
# Shares are floored at EPSILON before the logarithm: a bucket empty on one side would make PSI
# infinite. 1e-4 (one row in 10,000) keeps PSI finite while a bucket that appears from nothing
# still counts: going from 0 to 5% of rows adds 0.05 * ln(0.05 / 1e-4) = 0.31, an alert alone.
EPSILON = 1e-4
SCORE_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
# the batch's score quantiles come from a fixed histogram of this many bins over [0, 1]
# (bounded memory), so they are exact to half a bin: +-0.0005
SCORE_RESOLUTION = 1000


class DriftError(ValueError):
    """Drift cannot be measured: a column is missing, scores have the wrong shape, or a stored
    reference is incomplete."""


@dataclass(frozen=True)
class DriftThresholds:
    """PSI at or above `warn` is 'warn', at or above `alert` is 'alert'."""

    warn: float = 0.1
    alert: float = 0.25

    def __post_init__(self) -> None:
        if not 0 <= self.warn <= self.alert:
            raise DriftError(
                f"drift thresholds need 0 <= warn <= alert; got warn={self.warn}, "
                f"alert={self.alert}"
            )

    def level(self, psi: float) -> Level:
        if psi >= self.alert:
            return "alert"
        return "warn" if psi >= self.warn else "ok"


DEFAULT_THRESHOLDS = DriftThresholds()


def rows_to_judge(shares: Sequence[float]) -> int:
    """The fewest batch rows whose PSI over these buckets means more than sampling noise."""
    return MIN_ROWS_PER_BUCKET * max(1, sum(1 for share in shares if share > 0))


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """Population stability index of two share vectors over the same buckets; both floored at
    EPSILON so an empty bucket gives a large but finite contribution."""
    e = np.maximum(np.asarray(expected, dtype=float), EPSILON)
    a = np.maximum(np.asarray(actual, dtype=float), EPSILON)
    if e.shape != a.shape:
        raise DriftError(f"expected and actual shares differ in length: {e.shape} vs {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class ColumnReference:
    """One column's buckets and the share of training rows in each.

    numeric: `edges` are ascending cut points; buckets are (-inf, e0), [e0, e1), ...,
    [e_last, inf), then missing (NaN). categorical: `values` are the most frequent training
    values, most frequent first; buckets are each value, '(other)' for the rest (and values
    never seen), then missing. `shares` has one entry per bucket, in that order."""

    column: str
    kind: Kind
    shares: list[float]
    edges: list[float] = field(default_factory=list)
    values: list[str] = field(default_factory=list)

    def labels(self) -> list[str]:
        if self.kind == "numeric":
            return [*_range_labels(self.edges, None, None), MISSING]
        return [*self.values, OTHER, MISSING]

    def count(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows of `frame` per bucket."""
        if self.kind == "numeric":
            values = numeric_column(frame, self.column)
            missing = np.isnan(values)
            index = np.searchsorted(np.asarray(self.edges, dtype=float), values, side="right")
            index[missing] = len(self.edges) + 1
            return np.bincount(index, minlength=len(self.edges) + 2)
        as_text = text_column(frame[self.column])
        codes = pd.Categorical(as_text, categories=self.values).codes.astype(np.int64)
        codes[codes < 0] = len(self.values)  # unseen and rare values
        codes[as_text.isna().to_numpy()] = len(self.values) + 1
        return np.bincount(codes, minlength=len(self.values) + 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind,
            "shares": list(self.shares),
            "edges": list(self.edges),
            "values": list(self.values),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ColumnReference:
        _require(state, ("column", "kind", "shares", "edges", "values"), "a drift column")
        if state["kind"] not in ("numeric", "categorical"):
            raise DriftError(
                f"drift column '{state['column']}' has kind {state['kind']!r}; expected "
                "'numeric' or 'categorical'"
            )
        reference = cls(
            column=str(state["column"]),
            kind=state["kind"],
            shares=[float(s) for s in state["shares"]],
            edges=[float(e) for e in state["edges"]],
            values=[str(v) for v in state["values"]],
        )
        _check_buckets(reference.shares, reference.labels(), f"column '{reference.column}'")
        return reference


@dataclass(frozen=True)
class ScoreReference:
    """The training score distribution. `width` is the number of scores per row: 1 for binary,
    whose positive probability is binned; k for multiclass, whose top-class probability (how
    sure the model is) is binned. `edges` are ascending cut
    points inside [0, 1]; buckets are [0, e0), [e0, e1), ..., [e_last, 1]. `quantiles` are
    keyed 'q05', 'q25', 'q50', 'q75', 'q95'."""

    width: int
    shares: list[float]
    edges: list[float]
    mean: float
    quantiles: dict[str, float]

    def labels(self) -> list[str]:
        return _range_labels(self.edges, 0.0, 1.0)

    def count(self, top: np.ndarray) -> np.ndarray:
        index = np.searchsorted(np.asarray(self.edges, dtype=float), top, side="right")
        return np.bincount(index, minlength=len(self.edges) + 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "shares": list(self.shares),
            "edges": list(self.edges),
            "mean": self.mean,
            "quantiles": dict(self.quantiles),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ScoreReference:
        _require(state, ("width", "shares", "edges", "mean", "quantiles"), "the drift score")
        reference = cls(
            width=int(state["width"]),
            shares=[float(s) for s in state["shares"]],
            edges=[float(e) for e in state["edges"]],
            mean=float(state["mean"]),
            quantiles={str(k): float(v) for k, v in state["quantiles"].items()},
        )
        _check_buckets(reference.shares, reference.labels(), "the score")
        return reference


@dataclass(frozen=True)
class DriftReference:
    """What training data and training scores looked like, bucket by bucket. Plain JSON via
    to_dict/from_dict; columns are a list so a JSON writer that sorts keys keeps their order."""

    rows: int
    columns: list[ColumnReference]
    score: ScoreReference
    bins: int
    max_categories: int
    version: int = REFERENCE_VERSION

    @property
    def column_names(self) -> list[str]:
        return [reference.column for reference in self.columns]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "rows": self.rows,
            "bins": self.bins,
            "max_categories": self.max_categories,
            "columns": [reference.to_dict() for reference in self.columns],
            "score": self.score.to_dict(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> DriftReference:
        _require(
            state, ("version", "rows", "bins", "max_categories", "columns", "score"), "a drift"
        )
        if state["version"] != REFERENCE_VERSION:
            raise DriftError(
                f"the drift reference has version {state['version']}, this code reads version "
                f"{REFERENCE_VERSION}; rebuild it with build_reference from the training data"
            )
        return cls(
            rows=int(state["rows"]),
            columns=[ColumnReference.from_dict(c) for c in state["columns"]],
            score=ScoreReference.from_dict(state["score"]),
            bins=int(state["bins"]),
            max_categories=int(state["max_categories"]),
            version=int(state["version"]),
        )


def build_reference(
    frame: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    scores: np.ndarray,
    bins: int = 10,
    max_categories: int = 50,
) -> DriftReference:
    """Bucket the training rows and their scores: numeric columns and scores at training
    quantiles (so each bucket starts out holding about 1/bins of the rows, where ties allow),
    categorical columns by their `max_categories` most frequent values. `scores` are the model's
    probabilities on these rows: (n,) for binary, (n, classes) for multiclass."""
    if bins < 1 or max_categories < 1:
        raise DriftError(
            f"bins and max_categories must be at least 1; got {bins}, {max_categories}"
        )
    names = [*numeric, *categorical]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DriftError(f"columns {repeated} are named more than once; monitor each column once")
    absent = [name for name in names if name not in frame.columns]
    if absent:
        raise DriftError(f"the training table lacks the drift columns {absent}")
    if frame.empty:
        raise DriftError("the training table has no rows; a drift reference needs some")
    top, width = top_scores(scores, rows=len(frame))
    columns = [_numeric_reference(frame, c, bins) for c in numeric]
    columns += [_categorical_reference(frame, c, max_categories) for c in categorical]
    score_edges = _quantile_edges(top, bins)
    partial = ScoreReference(width, [], score_edges, 0.0, {})
    quantiles = np.quantile(top, SCORE_QUANTILES)
    score = ScoreReference(
        width=width,
        shares=_shares(partial.count(top)),
        edges=score_edges,
        mean=float(top.mean()),
        quantiles={
            _quantile_key(q): float(v) for q, v in zip(SCORE_QUANTILES, quantiles, strict=True)
        },
    )
    return DriftReference(
        rows=len(frame), columns=columns, score=score, bins=bins, max_categories=max_categories
    )


def _numeric_reference(frame: pd.DataFrame, column: str, bins: int) -> ColumnReference:
    values = numeric_column(frame, column)
    edges = _quantile_edges(values[~np.isnan(values)], bins)
    partial = ColumnReference(column, "numeric", [], edges=edges)
    return ColumnReference(column, "numeric", _shares(partial.count(frame)), edges=edges)


def _categorical_reference(frame: pd.DataFrame, column: str, top: int) -> ColumnReference:
    counts = text_column(frame[column]).dropna().value_counts()
    values = sorted(counts.index, key=lambda v: (-counts[v], v))[:top]
    partial = ColumnReference(column, "categorical", [], values=values)
    return ColumnReference(column, "categorical", _shares(partial.count(frame)), values=values)


def _quantile_edges(values: np.ndarray, bins: int) -> list[float]:
    """Interior cut points at the 1/bins, ..., (bins-1)/bins quantiles of the finite values,
    duplicates dropped (a column with many ties gets fewer, wider buckets)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or bins < 2:
        return []
    cuts = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
    return [float(edge) for edge in np.unique(cuts)]


def _shares(counts: np.ndarray) -> list[float]:
    total = int(counts.sum())
    return [float(count) / total for count in counts] if total else [0.0] * len(counts)


def _quantile_key(q: float) -> str:
    return f"q{round(q * 100):02d}"


def top_scores(scores: np.ndarray, rows: int | None = None) -> tuple[np.ndarray, int]:
    """The score drift is measured on: binary (n,) as it is, multiclass (n, k) the top-class
    probability. Returns it with the number of scores per row (1 for binary, k otherwise)."""
    values = np.asarray(scores, dtype=float)
    if values.ndim == 1:
        top, width = values, 1
    elif values.ndim == 2 and values.shape[1] >= 2:
        top, width = values.max(axis=1), values.shape[1]
    else:
        raise DriftError(
            f"scores must be (rows,) for binary or (rows, classes) for multiclass; got shape "
            f"{values.shape}"
        )
    if rows is not None and len(top) != rows:
        raise DriftError(f"{len(top)} scores for {rows} rows; pass one score per row")
    bad = ~((top >= 0) & (top <= 1))  # NaN fails both comparisons
    if bad.any():
        raise DriftError(
            f"{int(bad.sum())} score(s) are not probabilities in [0, 1], e.g. "
            f"{top[bad][:3].tolist()}; pass the model's predict_proba output"
        )
    return top, width


def _range_labels(edges: list[float], low: float | None, high: float | None) -> list[str]:
    """'< a', '[a, b)', '>= b' for open ends; '[0, a)' ... '[b, 1]' when bounded."""
    if not edges:
        return ["(any value)" if low is None else f"[{low:g}, {high:g}]"]
    texts = _distinct_texts(edges)
    first = f"< {texts[0]}" if low is None else f"[{low:g}, {texts[0]})"
    last = f">= {texts[-1]}" if high is None else f"[{texts[-1]}, {high:g}]"
    middle = [f"[{a}, {b})" for a, b in itertools.pairwise(texts)]
    return [first, *middle, last]


def _distinct_texts(numbers: list[float]) -> list[str]:
    """Short forms of distinct numbers that stay distinct: 4 significant digits, more when two
    edges would otherwise print alike."""
    for digits in range(4, 18):
        texts = [f"{number:.{digits}g}" for number in numbers]
        if len(set(texts)) == len(texts):
            return texts
    return [repr(number) for number in numbers]


def _check_buckets(shares: list[float], labels: list[str], what: str) -> None:
    if len(shares) != len(labels):
        raise DriftError(
            f"the drift reference for {what} has {len(shares)} shares for {len(labels)} "
            "buckets; it was edited or damaged, rebuild it with build_reference"
        )


def _require(state: dict[str, Any], keys: Sequence[str], what: str) -> None:
    missing = [key for key in keys if key not in state]
    if missing:
        raise DriftError(
            f"{what} reference lacks {missing}; it was not written by DriftReference.to_dict, "
            "rebuild it with build_reference"
        )


@dataclass(frozen=True)
class ColumnDrift:
    """One column's (or the score's) shares per bucket, expected and actual, and its PSI. With
    fewer batch rows than `rows_needed` the level is 'too few rows' whatever the PSI."""

    column: str
    kind: str  # 'numeric', 'categorical' or 'score'
    psi: float
    level: Level
    labels: list[str]
    expected: list[float]
    actual: list[float]
    rows_needed: int = 0

    @property
    def judged(self) -> bool:
        return self.level != TOO_FEW_ROWS

    def moved(self, top: int = 3) -> list[dict[str, Any]]:
        """The buckets whose share changed most, largest change first (ties in bucket order);
        buckets that did not move are left out."""
        changes = [
            (abs(a - e), i, label, e, a)
            for i, (label, e, a) in enumerate(
                zip(self.labels, self.expected, self.actual, strict=True)
            )
            if a != e
        ]
        changes.sort(key=lambda change: (-change[0], change[1]))
        return [
            {"bucket": label, "expected": e, "actual": a} for _, _, label, e, a in changes[:top]
        ]

    def as_dict(self, buckets: bool = False) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "column": self.column,
            "kind": self.kind,
            "psi": self.psi,
            "level": self.level,
            "rows_needed": self.rows_needed,
            "moved": self.moved(),
        }
        if buckets:
            summary["buckets"] = [
                {"bucket": label, "expected": e, "actual": a}
                for label, e, a in zip(self.labels, self.expected, self.actual, strict=True)
            ]
        return summary


@dataclass(frozen=True)
class DriftResult:
    """Drift of one batch against its model's reference. `columns` keeps the reference's column
    order. `drifted`: the columns at 'alert', then 'score' when the score distribution is (so a
    feature column itself named 'score' is told apart by `score.level`). `level`: the worst of
    the judged columns and score; 'too few rows' when none could be judged. Actual score
    quantiles are approximate, to +-0.0005."""

    rows: int
    columns: list[ColumnDrift]
    score: ColumnDrift
    score_mean_expected: float
    score_mean_actual: float
    score_quantiles_expected: dict[str, float]
    score_quantiles_actual: dict[str, float]
    thresholds: DriftThresholds
    drifted: list[str]
    level: Level

    @property
    def psi(self) -> dict[str, float]:
        return {drift.column: drift.psi for drift in self.columns}

    @property
    def too_few_rows(self) -> list[str]:
        """The feature columns the batch was too small to judge."""
        return [drift.column for drift in self.columns if not drift.judged]

    @property
    def summary(self) -> str:
        """How many features could be judged, e.g. '3 of 12 features judged; 9 had too few
        rows (fewer than 20 per expected bucket)'."""
        unjudged = len(self.too_few_rows)
        text = f"{len(self.columns) - unjudged} of {len(self.columns)} features judged"
        if unjudged:
            text += f"; {unjudged} had too few rows"
        if not self.score.judged:
            text += "; the score had too few rows"
        if unjudged or not self.score.judged:
            text += f" (fewer than {MIN_ROWS_PER_BUCKET} per expected bucket)"
        return text

    @property
    def levels(self) -> dict[str, Level]:
        return {drift.column: drift.level for drift in self.columns}

    @property
    def score_psi(self) -> float:
        return self.score.psi

    @property
    def score_level(self) -> Level:
        return self.score.level

    @property
    def score_mean_shift(self) -> float:
        """Mean score of the batch minus mean score in training: positive means higher scores."""
        return self.score_mean_actual - self.score_mean_expected

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly for a manifest (every number is finite): per column its PSI, level and
        the buckets that moved most; the score with all its buckets."""
        return {
            "rows": self.rows,
            "level": self.level,
            "drifted": list(self.drifted),
            "summary": self.summary,
            "features": len(self.columns),
            "features_judged": len(self.columns) - len(self.too_few_rows),
            "too_few_rows": self.too_few_rows,
            "min_rows_per_bucket": MIN_ROWS_PER_BUCKET,
            "thresholds": {"warn": self.thresholds.warn, "alert": self.thresholds.alert},
            "epsilon": EPSILON,
            "columns": [drift.as_dict() for drift in self.columns],
            "score": {
                **self.score.as_dict(buckets=True),
                "mean_expected": self.score_mean_expected,
                "mean_actual": self.score_mean_actual,
                "mean_shift": self.score_mean_shift,
                "quantiles_expected": dict(self.score_quantiles_expected),
                "quantiles_actual": dict(self.score_quantiles_actual),
            },
        }

    def metrics(self) -> dict[str, float]:
        """Flat names for MLflow: 'drift.psi.<column>' (column names sanitised to
        [A-Za-z0-9_.-], numbered when two sanitise alike), 'drift.score_psi' and
        'drift.score_mean_shift'. A PSI with too few rows is left out: it is noise, and a chart
        of PSI over batches would show it as drift."""
        flat: dict[str, float] = {}
        taken: set[str] = set()
        for drift in self.columns:
            base = name = f"drift.psi.{sanitise(drift.column)}"
            number = 2
            while name in taken:
                name, number = f"{base}_{number}", number + 1
            taken.add(name)
            if drift.judged:
                flat[name] = drift.psi
        if self.score.judged:
            flat["drift.score_psi"] = self.score_psi
        flat["drift.score_mean_shift"] = self.score_mean_shift
        return flat


class DriftAccumulator:
    """Counts a batch into its reference's buckets one chunk at a time. Memory holds the counts
    only (a few dozen integers per column, SCORE_RESOLUTION for the score quantiles), whatever
    the number of rows."""

    def __init__(self, reference: DriftReference) -> None:
        self.reference = reference
        self._counts = [np.zeros(len(c.shares), dtype=np.int64) for c in reference.columns]
        self._score_counts = np.zeros(len(reference.score.shares), dtype=np.int64)
        self._score_histogram = np.zeros(SCORE_RESOLUTION, dtype=np.int64)
        self._score_sum = 0.0
        self._rows = 0

    @property
    def rows(self) -> int:
        """Rows counted so far."""
        return self._rows

    def update(self, chunk: pd.DataFrame, scores: np.ndarray) -> None:
        """Count one chunk and its scores (the model's probabilities for these rows, in the
        same shape the reference was built from)."""
        absent = [name for name in self.reference.column_names if name not in chunk.columns]
        if absent:
            raise DriftError(
                f"the chunk lacks the drift columns {absent}; drift needs every column its "
                "reference was built with"
            )
        top, width = top_scores(scores, rows=len(chunk))
        if width != self.reference.score.width:
            raise DriftError(
                f"scores have {width} column(s) per row but the reference was built from "
                f"{self.reference.score.width} (1 is binary); score with the model the "
                "reference belongs to"
            )
        for counts, column in zip(self._counts, self.reference.columns, strict=True):
            counts += column.count(chunk)
        self._score_counts += self.reference.score.count(top)
        fine = np.minimum((top * SCORE_RESOLUTION).astype(np.int64), SCORE_RESOLUTION - 1)
        self._score_histogram += np.bincount(fine, minlength=SCORE_RESOLUTION)
        self._score_sum += float(top.sum())
        self._rows += len(chunk)

    def result(self, thresholds: DriftThresholds = DEFAULT_THRESHOLDS) -> DriftResult:
        if self._rows == 0:
            raise DriftError(
                "no rows were counted, so there is no distribution to compare; call update "
                "with at least one non-empty chunk (check `rows` first for empty batches)"
            )
        columns = [
            _drift(c.column, c.kind, c.labels(), c.shares, counts, thresholds)
            for c, counts in zip(self.reference.columns, self._counts, strict=True)
        ]
        score_reference = self.reference.score
        score = _drift(
            SCORE,
            SCORE,
            score_reference.labels(),
            score_reference.shares,
            self._score_counts,
            thresholds,
        )
        drifted = [drift.column for drift in columns if drift.level == "alert"]
        if score.level == "alert":
            drifted.append(SCORE)
        judged = [LEVELS.index(d.level) for d in [*columns, score] if d.judged]
        level = LEVELS[max(judged)] if judged else TOO_FEW_ROWS
        return DriftResult(
            rows=self._rows,
            columns=columns,
            score=score,
            score_mean_expected=score_reference.mean,
            score_mean_actual=self._score_sum / self._rows,
            score_quantiles_expected=dict(score_reference.quantiles),
            score_quantiles_actual=_histogram_quantiles(self._score_histogram),
            thresholds=thresholds,
            drifted=drifted,
            level=level,
        )


def _drift(
    column: str,
    kind: str,
    labels: list[str],
    expected: list[float],
    counts: np.ndarray,
    thresholds: DriftThresholds,
) -> ColumnDrift:
    actual = _shares(counts)
    value = psi(expected, actual)
    needed = rows_to_judge(expected)
    level = thresholds.level(value) if counts.sum() >= needed else TOO_FEW_ROWS
    return ColumnDrift(column, kind, value, level, labels, expected, actual, needed)


def _histogram_quantiles(histogram: np.ndarray) -> dict[str, float]:
    """SCORE_QUANTILES from fixed-width bin counts: the middle of the first bin at which the
    cumulative count reaches q of all rows."""
    cumulative = np.cumsum(histogram)
    total = cumulative[-1]
    quantiles = {}
    for q in SCORE_QUANTILES:
        index = int(np.searchsorted(cumulative, max(q * total, 1), side="left"))
        quantiles[_quantile_key(q)] = (index + 0.5) / len(histogram)
    return quantiles


LEVEL_COLOURS = {"ok": "#2e7d32", "warn": "#ef6c00", "alert": "#c62828", TOO_FEW_ROWS: "#9e9e9e"}


def level_class(level: str) -> str:
    """The level as a CSS class name: 'too few rows' -> 'too-few-rows'."""
    return level.replace(" ", "-")


def plot_drift(result: DriftResult) -> Figure:
    """Left: PSI per column (and the score) with the warn and alert lines; a column with too
    few rows gets no bar, only the words. Right: the score distribution's expected and actual
    share per bucket."""
    entries = [*result.columns, result.score]
    height = max(3.5, 0.35 * len(entries) + 1.5)
    figure, (bars, shares) = plt.subplots(1, 2, figsize=(12, height))
    positions = np.arange(len(entries))[::-1]  # first column on top
    bars.barh(
        positions,
        [d.psi if d.judged else 0.0 for d in entries],
        color=[LEVEL_COLOURS[d.level] for d in entries],
    )
    for position, drift in zip(positions, entries, strict=True):
        if not drift.judged:
            bars.text(0.0, position, f" {TOO_FEW_ROWS}", va="center", color="#616161")
    bars.set_yticks(positions, [d.column if d.kind != SCORE else "(score)" for d in entries])
    for value, name, style in (
        (result.thresholds.warn, "warn", "--"),
        (result.thresholds.alert, "alert", "-"),
    ):
        bars.axvline(value, color=LEVEL_COLOURS[name], linestyle=style, label=f"{name} {value:g}")
    bars.set(xlabel="PSI", title=f"Drift per column ({result.rows:,} rows)\n{result.summary}")
    bars.legend(loc="lower right")
    buckets = np.arange(len(result.score.labels))
    shares.bar(buckets - 0.2, result.score.expected, width=0.4, label="training", color="grey")
    shares.bar(buckets + 0.2, result.score.actual, width=0.4, label="this batch")
    shares.set_xticks(buckets, result.score.labels)
    plt.setp(shares.get_xticklabels(), rotation=45, ha="right")
    shares.set(
        ylabel="Share of rows",
        title=f"Scores (PSI {result.score_psi:.3f}, mean shift {result.score_mean_shift:+.3f})",
    )
    shares.legend(loc="best")
    figure.tight_layout()
    return figure


def render_drift_report(
    result: DriftResult, reference: DriftReference, path_html: Path, path_png: Path
) -> None:
    """Write the drift chart as a PNG and a self-contained HTML page (the same chart embedded,
    a table per column with the buckets that moved most). Each file is written to a temporary
    sibling and moved into place, so a reader never sees half a report."""
    if [d.column for d in result.columns] != reference.column_names:
        raise DriftError(
            f"the result covers columns {[d.column for d in result.columns]} but the reference "
            f"{reference.column_names}; pass the reference the accumulator was built with"
        )
    figure = plot_drift(result)
    try:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
    finally:
        plt.close(figure)
    png = buffer.getvalue()
    _write_atomic(Path(path_png), png)
    _write_atomic(Path(path_html), drift_html(result, reference, png).encode("utf-8"))


def drift_html(result: DriftResult, reference: DriftReference, png: bytes) -> str:
    """The report page; every piece of text from data is escaped."""
    e = html.escape
    rows = "\n".join(_html_row(d) for d in [*result.columns, result.score])
    quantiles = "\n".join(
        f"<tr><td>{e(key)}</td><td>{result.score_quantiles_expected.get(key, math.nan):.3f}</td>"
        f"<td>{value:.3f}</td></tr>"
        for key, value in result.score_quantiles_actual.items()
    )
    drifted = ", ".join(e(name) for name in result.drifted) or "none"
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Drift report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }}
.ok {{ color: {LEVEL_COLOURS["ok"]}; }}
.warn {{ color: {LEVEL_COLOURS["warn"]}; font-weight: bold; }}
.alert {{ color: {LEVEL_COLOURS["alert"]}; font-weight: bold; }}
.too-few-rows {{ color: {LEVEL_COLOURS[TOO_FEW_ROWS]}; font-style: italic; }}
img {{ max-width: 100%; }}
</style>
</head>
<body>
<h1>Drift report</h1>
<p>Level: <span class="{level_class(result.level)}">{e(result.level)}</span>.
Drifted (PSI &ge; {result.thresholds.alert:g}): {drifted}.</p>
<p>{e(result.summary)}.</p>
<p>{result.rows:,} scored rows compared with {reference.rows:,} training rows.
PSI warns at {result.thresholds.warn:g} and alerts at {result.thresholds.alert:g};
shares are floored at {EPSILON:g}. A column is judged only with at least
{MIN_ROWS_PER_BUCKET} rows per bucket the training rows filled: below that its PSI is sampling
noise, shown but marked &ldquo;{TOO_FEW_ROWS}&rdquo; and left out of the level.</p>
<img alt="PSI per column and the score distribution" src="data:image/png;base64,{image}">
<h2>Columns</h2>
<table>
<tr><th>Column</th><th>Kind</th><th>PSI</th><th>Level</th>
<th>Buckets that moved most (training &rarr; batch)</th></tr>
{rows}
</table>
<h2>Scores</h2>
<p>Mean {result.score_mean_expected:.3f} in training, {result.score_mean_actual:.3f} in this
batch (shift {result.score_mean_shift:+.3f}).</p>
<table>
<tr><th>Quantile</th><th>Training</th><th>This batch (&plusmn;0.0005)</th></tr>
{quantiles}
</table>
</body>
</html>
"""


def _html_row(drift: ColumnDrift) -> str:
    e = html.escape
    moved = "<br>".join(
        f"{e(m['bucket'])}: {m['expected']:.1%} &rarr; {m['actual']:.1%}" for m in drift.moved()
    )
    name = "(score)" if drift.kind == SCORE else drift.column
    level = drift.level if drift.judged else f"{drift.level} (needs {drift.rows_needed:,})"
    return (
        f"<tr><td>{e(name)}</td><td>{e(drift.kind)}</td><td>{drift.psi:.4f}</td>"
        f'<td class="{level_class(drift.level)}">{e(level)}</td><td>{moved or "-"}</td></tr>'
    )


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, then os.replace: the old file or the new, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    partial = Path(name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(partial, 0o666 & ~current_umask())  # mkstemp's 0600 would hide the report
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
