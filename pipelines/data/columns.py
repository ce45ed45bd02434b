"""Typed columns from raw tables: numbers, text and dates read the same way for training,
validation and scoring. A cell that will not cast is a fault of its row (RowFault): scoring
quarantines the row, training refuses the column with examples."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd


class FeatureError(ValueError):
    """A table cannot be turned into features: a column is missing or has the wrong kind."""


BOOLEAN_WORDS = {"True": 1.0, "False": 0.0, "true": 1.0, "false": 0.0}
EPOCH_SECONDS = "%s"  # a date column's declared format for integer seconds since 1970
EPOCH_HINT = "not a number (epoch seconds are read only where features.date_formats says '%s')"
DIGITS = re.compile(r"^\s*[+-]?\d+(\.\d*)?\s*$")


@dataclass(frozen=True, slots=True)
class RowFault:
    """A cell that cannot be cast to its column's kind: the expectation and the raw value."""

    column: str
    expectation: str
    value: str

    def __str__(self) -> str:
        shown = self.value if len(self.value) <= 80 else f"{self.value[:77]}..."
        return f"{self.expectation}, found '{shown}'"


RowFaults = dict[int, list[RowFault]]  # by the row's position in the table (0, 1, ...)


def numeric_cells(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The values as float64 and a mask of the cells that are not numbers (left as NaN);
    an empty or blank cell is missing, not a fault."""
    if values.dtype == bool or values.dtype == "boolean":
        return values.astype("float64").to_numpy(na_value=np.nan), np.zeros(len(values), bool)
    if pd.api.types.is_numeric_dtype(values):
        return values.astype("float64").to_numpy(na_value=np.nan), np.zeros(len(values), bool)
    # text files spell booleans out; cells that are neither text nor numbers are not numbers
    replaced = values.map(_number_or_word).infer_objects()
    try:
        numbers = pd.to_numeric(replaced, errors="coerce")
    except (TypeError, ValueError):  # cells holding lists or other objects
        numbers = pd.Series(
            [_number_or_nan(value) for value in replaced], index=values.index, dtype="float64"
        )
    floats = pd.Series(numbers, index=values.index).astype("float64").to_numpy(na_value=np.nan)
    bad = np.isnan(floats) & _present(values)
    return floats, bad


def _number_or_word(value: object) -> object:
    if isinstance(value, str):
        return BOOLEAN_WORDS.get(value, value)
    return value if value is None or isinstance(value, int | float | np.number) else "?"


def _number_or_nan(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.nan


MISSING_WORDS = {"", "nan", "-nan"}  # what pd.to_numeric reads as missing


def _present(values: pd.Series) -> np.ndarray:
    """Cells that hold something: not null, not blank and not 'NaN'."""
    present = values.notna().to_numpy().copy()
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        words = values.astype(str).str.strip().str.lower()
        present &= ~words.isin(MISSING_WORDS).to_numpy()
    return present


def numeric_column(frame: pd.DataFrame, column: str) -> np.ndarray:
    floats, bad = numeric_cells(frame[column])
    if bad.any():
        examples = _examples(frame[column], bad)
        raise FeatureError(
            f"column '{column}' must be numeric: {int(bad.sum())} value(s) are not, e.g. {examples}"
        )
    return floats


def _examples(values: pd.Series, bad: np.ndarray) -> list[str]:
    return values[bad].astype(str).unique()[:3].tolist()


def conform_columns(
    frame: pd.DataFrame, kinds: dict[str, str], date_formats: Mapping[str, str] | None = None
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Cast each present column to its kind ('numeric', 'text' or 'date', read with its entry
    in `date_formats` if any); a column that will not cast stays as it was and its problem is
    returned, so every such column is reported (training: the whole column must cast)."""
    conformed, problems, faults = conform_rows(frame, kinds, date_formats)
    by_column: dict[str, list[int]] = {}
    for row, row_faults in faults.items():
        for fault in row_faults:
            by_column.setdefault(fault.column, []).append(row)
    for column, rows in by_column.items():
        bad = np.zeros(len(frame), dtype=bool)
        bad[rows] = True
        examples = _examples(frame[column].reset_index(drop=True), bad)
        conformed[column] = frame[column]
        problems[column] = (
            f"column '{column}' has {len(rows)} value(s) that are not dates, e.g. {examples}"
            if kinds[column] == "date"
            else f"column '{column}' must be numeric: {len(rows)} value(s) are not, e.g. {examples}"
        )
    return conformed, problems


def conform_rows(
    frame: pd.DataFrame, kinds: dict[str, str], date_formats: Mapping[str, str] | None = None
) -> tuple[pd.DataFrame, dict[str, str], RowFaults]:
    """Cast each present column to its kind; a cell that will not cast is left empty and is a
    fault of its row. Returns the conformed table, the problems of whole columns (dates that
    read both ways: the params must say which) and each faulty row's faults."""
    conformed = frame.copy()
    problems: dict[str, str] = {}
    faults: RowFaults = {}
    formats = date_formats or {}
    for column, kind in kinds.items():
        if column not in frame.columns:
            continue
        values = frame[column]
        if isinstance(values, pd.DataFrame):  # a repeated name: the reader refuses it
            problems[column] = f"the table has more than one column named '{column}'"
            continue
        try:
            if kind == "text":
                conformed[column] = text_column(values)
                continue
            if kind == "numeric":
                cast, bad = numeric_cells(values)
                expectation = f"column '{column}' holds numbers"
                expectations = np.full(len(values), expectation, dtype=object)
            else:
                cast, bad, expectations = date_cells(values, column, formats.get(column))
        except FeatureError as error:
            problems[column] = str(error)
            continue
        conformed[column] = cast
        for row in np.flatnonzero(bad).tolist():
            fault = RowFault(column, str(expectations[row]), str(values.iloc[row]))
            faults.setdefault(row, []).append(fault)
    return conformed, problems, faults


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
    raises AmbiguousDatesError. Numbers are dates only as declared epoch seconds ('%s')."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True)
    if date_format == EPOCH_SECONDS:
        seconds = pd.to_numeric(values, errors="coerce")
        return pd.to_datetime(seconds, unit="s", errors="coerce", utc=True)
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    values = values.where(_present(values), None)
    if values.dtype == object:  # a number among text is not a date (pandas reads epoch ns)
        values = values.where(values.map(_written_or_dated), None)
    try:
        if date_format and date_format != DAYFIRST:
            return _each_or_whole(values, format=date_format)
        parsed = _each_or_whole(values, format="ISO8601")
        rest = parsed.isna() & values.notna()  # not ISO 8601: another layout, or not a date
        if not rest.any():
            return parsed
        others = values[rest]
        dayfirst = date_format == DAYFIRST
        read = _each_or_whole(others, format="mixed", dayfirst=dayfirst)
        swapped = _each_or_whole(others, format="mixed", dayfirst=not dayfirst)
    except (TypeError, ValueError) as error:  # cells that are not text at all
        raise FeatureError(f"column '{column}' holds values that are not dates: {error}") from error
    differ = read.notna() & swapped.notna() & (read != swapped)
    if not dayfirst:
        _refuse_both_orders(others, column)
    if differ.any() and not dayfirst:
        example = str(others[differ].iloc[0])
        raise AmbiguousDatesError(
            f"column '{column}' has dates that read differently day-first and month-first, "
            f"e.g. '{example}' ({read[differ].iloc[0]:%Y-%m-%d} or "
            f"{swapped[differ].iloc[0]:%Y-%m-%d}). Say which in the params: "
            f"features.date_formats: {{{column}: '%d/%m/%Y'}} (or the format it has), or "
            "features.dayfirst: true"
        )
    parsed = parsed.astype("datetime64[ns, UTC]")
    parsed[rest] = read.astype("datetime64[ns, UTC]")
    return parsed


NUMERIC_DATE = re.compile(r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-]\d{2,4}\b")


def _refuse_both_orders(values: pd.Series, column: str) -> None:
    """A column where some dates can only be day-first (13/10/2021) and others only
    month-first (10/13/2021) is refused: read either way, some of its rows are wrong."""
    parts = values.dropna().astype(str).str.extract(NUMERIC_DATE).dropna().astype(int)
    if parts.empty:
        return
    day_first = parts[parts[0] > 12]
    month_first = parts[parts[1] > 12]
    if len(day_first) and len(month_first):
        one = values.dropna().astype(str)[day_first.index[0]]
        other = values.dropna().astype(str)[month_first.index[0]]
        raise AmbiguousDatesError(
            f"column '{column}' has dates written day-first ('{one}') and month-first "
            f"('{other}'): say which in the params (features.date_formats: {{{column}: "
            "'%d/%m/%Y'}, or the format it has) and its other rows are quarantined"
        )


def _written_or_dated(value: object) -> bool:
    return value is None or isinstance(value, str | date | np.datetime64)


def _each_or_whole(values: pd.Series, **options: object) -> pd.Series:
    """pd.to_datetime over the column, NaT where a value is not a date; value by value when one
    of them stops the whole column (a date beyond what pandas holds)."""
    try:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, **options)  # type: ignore[call-overload]
        return pd.Series(parsed, index=values.index).astype("datetime64[ns, UTC]")
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
        return pd.Series(
            [_one_date(value, options) for value in values],
            index=values.index,
            dtype="datetime64[ns, UTC]",
        )


def _one_date(value: object, options: dict[str, object]) -> pd.Timestamp:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return pd.NaT
    try:
        parsed = pd.to_datetime(value, errors="coerce", utc=True, **options)  # type: ignore[call-overload]
        return pd.Timestamp(parsed).as_unit("ns")
    except (ValueError, OverflowError, TypeError, pd.errors.OutOfBoundsDatetime):
        return pd.NaT


def date_cells(
    values: pd.Series, column: str, date_format: str | None = None
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """The values as naive UTC datetimes, a mask of the cells that are not dates (left as
    NaT), and each cell's expectation in words."""
    parsed = parse_dates(values, column, date_format)
    if parsed.dt.tz is not None:
        parsed = parsed.dt.tz_convert(None)  # offsets become UTC; tables hold naive dates
    parsed = parsed.astype("datetime64[ns]")
    bad = parsed.isna().to_numpy() & _present(values)
    bad = bad.copy()
    declared = "" if date_format in (None, DAYFIRST) else f" written '{date_format}'"
    expectations = np.full(len(values), f"column '{column}' holds dates{declared}", dtype=object)
    if date_format != EPOCH_SECONDS and bad.any():
        numbers = (
            np.ones(len(values), dtype=bool)
            if pd.api.types.is_numeric_dtype(values)
            else values.astype(str).str.match(DIGITS).to_numpy()
        )
        expectations[bad & numbers] = f"column '{column}' holds dates, {EPOCH_HINT}"
    return parsed, bad, expectations


def date_column(frame: pd.DataFrame, column: str, date_format: str | None = None) -> pd.Series:
    values = frame[column]
    parsed, bad, _ = date_cells(values, column, date_format)
    if bad.any():
        examples = _examples(values.reset_index(drop=True), bad)
        raise FeatureError(
            f"column '{column}' has {int(bad.sum())} value(s) that are not dates, e.g. {examples}"
        )
    return parsed
