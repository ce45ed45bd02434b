"""Typed columns from raw tables: numbers, text and dates read the same way for training,
validation and scoring, with a clear error for a column that will not cast."""

from __future__ import annotations

from collections.abc import Mapping

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
    frame: pd.DataFrame, kinds: dict[str, str], date_formats: Mapping[str, str] | None = None
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Cast each present column to its kind ('numeric', 'text' or 'date', read with its entry
    in `date_formats` if any); a column that will not cast stays as it was and its problem is
    returned, so every such column is reported."""
    conformed = frame.copy()
    problems: dict[str, str] = {}
    formats = date_formats or {}
    casts = {
        "numeric": lambda c: numeric_column(frame, c),
        "text": lambda c: text_column(frame[c]),
        "date": lambda c: date_column(frame, c, formats.get(c)),
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


DAYFIRST = "dayfirst"  # a column's date format: day before month, the layout otherwise free


class AmbiguousDatesError(FeatureError):
    """A date column reads differently day-first and month-first, and the params do not say."""


def parse_dates(values: pd.Series, column: str, date_format: str | None = None) -> pd.Series:
    """The column's values as UTC datetimes (NaT where a value is not a date), read one way
    for the whole column: with the declared strftime format, else ISO 8601 where a value is
    written so, and other layouts day-first if DAYFIRST is declared or else only where they read
    the same day-first and month-first: a value that reads both ways differently ('03/04/2024')
    raises AmbiguousDatesError."""
    try:
        if pd.api.types.is_datetime64_any_dtype(values):
            return pd.to_datetime(values, utc=True)
        if date_format and date_format != DAYFIRST:
            return pd.to_datetime(values, errors="coerce", format=date_format, utc=True)
        parsed = pd.to_datetime(values, errors="coerce", format="ISO8601", utc=True)
        rest = parsed.isna() & values.notna()  # not ISO 8601: another layout, or not a date
        if not rest.any():
            return parsed
        others = values[rest]
        dayfirst = date_format == DAYFIRST
        read = pd.to_datetime(others, errors="coerce", format="mixed", dayfirst=dayfirst, utc=True)
        swapped = pd.to_datetime(
            others, errors="coerce", format="mixed", dayfirst=not dayfirst, utc=True
        )
    except (TypeError, ValueError, OverflowError) as error:  # out-of-bounds dates among them
        raise FeatureError(f"column '{column}' holds values that are not dates: {error}") from error
    differ = read.notna() & swapped.notna() & (read != swapped)
    if differ.any() and not dayfirst:
        example = str(others[differ].iloc[0])
        raise AmbiguousDatesError(
            f"column '{column}' has dates that read differently day-first and month-first, "
            f"e.g. '{example}' ({read[differ].iloc[0]:%Y-%m-%d} or "
            f"{swapped[differ].iloc[0]:%Y-%m-%d}). Say which in the params: "
            f"features.date_formats: {{{column}: '%d/%m/%Y'}} (or the format it has), or "
            "features.dayfirst: true"
        )
    parsed[rest] = read
    return parsed


def date_column(frame: pd.DataFrame, column: str, date_format: str | None = None) -> pd.Series:
    values = frame[column]
    parsed = parse_dates(values, column, date_format)
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
