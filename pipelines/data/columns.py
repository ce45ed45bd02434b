"""Typed columns from raw tables: numbers, text and dates read the same way for training,
validation and scoring, with a clear error for a column that will not cast."""

from __future__ import annotations

import numpy as np
import pandas as pd


class FeatureError(ValueError):
    """A table cannot be turned into features: a column is missing or has the wrong kind."""


BOOLEAN_WORDS = {"True": 1.0, "False": 0.0, "true": 1.0, "false": 0.0}


def numeric_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    values = frame[column]
    if values.dtype == bool or values.dtype == "boolean":
        values = values.astype("float64")
    elif not pd.api.types.is_numeric_dtype(values):
        # text files spell booleans out
        values = values.replace(BOOLEAN_WORDS)
    try:
        return pd.to_numeric(values, errors="raise").astype("float64").to_numpy(na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise FeatureError(f"column '{column}' must be numeric: {error}") from error


def conform_columns(
    frame: pd.DataFrame, kinds: dict[str, str]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Cast each present column to its kind ('numeric', 'text' or 'date'); a column that will
    not cast stays as it was and its problem is returned, so every such column is reported."""
    conformed = frame.copy()
    problems: dict[str, str] = {}
    casts = {
        "numeric": lambda c: numeric_column(frame, c),
        "text": lambda c: text_column(frame[c]),
        "date": lambda c: date_column(frame, c),
    }
    for column, kind in kinds.items():
        if column not in frame.columns:
            continue
        try:
            conformed[column] = casts[kind](column)
        except FeatureError as error:
            problems[column] = str(error)
    return conformed, problems


def text_column(values: pd.Series) -> pd.Series:
    """Strings, with whole numbers written without '.0' (CSV readers turn codes into floats)."""
    if pd.api.types.is_float_dtype(values) and (values.dropna() % 1 == 0).all():
        values = values.astype("Int64")
    return values.astype("string").astype(object).where(values.notna(), None)


def date_column(frame: pd.DataFrame, column: str) -> pd.Series:
    values = frame[column]
    try:
        parsed = pd.to_datetime(values, errors="coerce", format="mixed", utc=True)
    except (TypeError, ValueError, OverflowError) as error:  # out-of-bounds dates among them
        raise FeatureError(f"column '{column}' holds values that are not dates: {error}") from error
    if isinstance(parsed, pd.Series) and parsed.dt.tz is not None:
        parsed = parsed.dt.tz_convert(None)  # offsets become UTC; tables hold naive dates
    unparsed = int((parsed.isna() & values.notna()).sum())
    if unparsed:
        examples = values[parsed.isna() & values.notna()].astype(str).unique()[:3].tolist()
        raise FeatureError(
            f"column '{column}' has {unparsed} value(s) that are not dates, e.g. {examples}"
        )
    try:
        return parsed.astype("datetime64[ns]")
    except (ValueError, OverflowError) as error:  # e.g. a 9999-12-31 sentinel
        raise FeatureError(
            f"column '{column}' holds dates outside 1677-2262, which cannot be stored: {error}"
        ) from error
