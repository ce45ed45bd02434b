"""The feature transform: fitted on training rows only, stored as plain JSON inside the model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from pipelines.config import Features
from pipelines.data.columns import (
    FeatureError,
    conform_columns,
    numeric_column,
    parse_dates,
    text_column,
)

OTHER = "__other__"


@dataclass(frozen=True)
class FeatureTransform:
    """Numeric pass-through, category codes, hashed word n-grams and calendar parts of dates.

    Text hashing is stateless, so the fitted state is only the category vocabularies."""

    numeric: list[str]
    categories: dict[str, list[str]]
    text: list[str]
    date: list[str]
    text_hash_features: int
    text_ngram_max: int
    feature_names: list[str] = field(default_factory=list)
    date_formats: dict[str, str] = field(default_factory=dict)  # as Features.date_format_of

    @property
    def input_columns(self) -> list[str]:
        return [*self.numeric, *self.categories, *self.text, *self.date]

    @property
    def categorical_indices(self) -> list[int]:
        start = len(self.numeric)
        return list(range(start, start + len(self.categories)))

    def to_dict(self) -> dict[str, Any]:
        # categories as [column, values] pairs: their order is the feature order, and a JSON
        # writer that sorts keys must not change it
        return {**asdict(self), "categories": [[c, v] for c, v in self.categories.items()]}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> FeatureTransform:
        if "categories" not in state:
            return cls(**state)  # names what is missing
        categories = state["categories"]
        pairs = categories.items() if isinstance(categories, dict) else categories
        return cls(**{**state, "categories": {column: list(known) for column, known in pairs}})

    def conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The input columns in the types the model was logged with, whatever file they came
        from: numbers as float64, categories and text as strings, dates as datetimes."""
        missing = [column for column in self.input_columns if column not in frame.columns]
        if missing:
            raise FeatureError(f"the table lacks the feature columns {missing}")
        kinds = {
            **{column: "numeric" for column in self.numeric},
            **{column: "text" for column in [*self.categories, *self.text]},
            **{column: "date" for column in self.date},
        }
        conformed, problems = conform_columns(frame, kinds, self.date_formats)
        if problems:
            raise FeatureError("; ".join(problems.values()))
        return conformed[self.input_columns]

    def transform(self, frame: pd.DataFrame) -> np.ndarray | sp.csr_matrix:
        """Features as float32: dense without text columns, sparse CSR with them."""
        missing = [column for column in self.input_columns if column not in frame.columns]
        if missing:
            raise FeatureError(f"the table lacks the feature columns {missing}")
        dense = (
            np.column_stack(
                [numeric_column(frame, column) for column in self.numeric]
                + [
                    category_codes(frame[column], known)
                    for column, known in self.categories.items()
                ]
                + [
                    part
                    for column in self.date
                    for part in date_parts(frame, column, self.date_formats.get(column))
                ]
            )
            if (self.numeric or self.categories or self.date)
            else np.empty((len(frame), 0))
        )
        dense = dense.astype(np.float32, copy=False)
        if not self.text:
            return dense
        hashed = [self._vectorizer().transform(text_values(frame, c)) for c in self.text]
        return sp.hstack([sp.csr_matrix(dense), *hashed], format="csr", dtype=np.float32)

    def _vectorizer(self) -> HashingVectorizer:
        return HashingVectorizer(
            n_features=self.text_hash_features,
            ngram_range=(1, self.text_ngram_max),
            alternate_sign=False,
            norm=None,
            binary=True,
            dtype=np.float32,
        )


def fit_transform_spec(train: pd.DataFrame, features: Features) -> FeatureTransform:
    """Learn category vocabularies from the training rows; everything else is declared."""
    missing = [column for column in features.all_columns() if column not in train.columns]
    if missing:
        raise FeatureError(f"the training table lacks the feature columns {missing}")
    categories = {
        column: frequent_categories(train[column], features.min_category_count)
        for column in features.categorical
    }
    names = [
        *features.numeric,
        *features.categorical,
        *[f"{column}__{part}" for column in features.date for part in DATE_PARTS],
        *[
            f"{column}__hash{index}"
            for column in features.text
            for index in range(features.text_hash_features)
        ],
    ]
    return FeatureTransform(
        numeric=list(features.numeric),
        categories=categories,
        text=list(features.text),
        date=list(features.date),
        text_hash_features=features.text_hash_features,
        text_ngram_max=features.text_ngram_max,
        feature_names=names,
        date_formats={c: f for c, f in features.date_format_of().items() if c in features.date},
    )


def frequent_categories(values: pd.Series, min_count: int) -> list[str]:
    """Values seen at least min_count times, most frequent first; the rest share one code."""
    counts = text_column(values).dropna().value_counts()
    return sorted(counts[counts >= min_count].index, key=lambda v: (-counts[v], v))


def category_codes(values: pd.Series, known: list[str]) -> np.ndarray:
    """0..n-1 for known values, n for rare or unseen ones, NaN for missing."""
    as_text = text_column(values)
    codes = pd.Categorical(as_text, categories=known).codes.astype("float64")
    codes[codes < 0] = len(known)  # unseen or rare: one shared code
    codes[as_text.isna().to_numpy()] = np.nan
    return codes


DATE_PARTS = ("month", "weekday", "day")


def date_parts(
    frame: pd.DataFrame, column: str, date_format: str | None = None
) -> list[np.ndarray]:
    """Calendar parts only: absolute time would not carry over to future batches."""
    dates = parse_dates(frame[column], column, date_format).dt.tz_convert(None)
    return [
        dates.dt.month.astype("float64").to_numpy(na_value=np.nan),
        dates.dt.day_of_week.astype("float64").to_numpy(na_value=np.nan),
        dates.dt.day.astype("float64").to_numpy(na_value=np.nan),
    ]


def text_values(frame: pd.DataFrame, column: str) -> list[str]:
    return frame[column].fillna("").astype(str).tolist()
