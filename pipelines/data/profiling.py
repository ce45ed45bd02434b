"""What an agency's table holds, column by column, for a first params file: an id, numbers,
categories, free text or dates; columns left out (constant, empty, one value per row) with the
reason; and columns that would leak the target because they predict it almost perfectly."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.tree import DecisionTreeClassifier

from pipelines.config import ROW_ID
from pipelines.data.columns import AmbiguousDatesError, FeatureError, parse_dates, text_column
from pipelines.data.row_ids import ROW_NUMBER

Kind = Literal["id", "numeric", "categorical", "text", "date", "left out"]
PARSED_SHARE = 0.98  # a column is numbers (or dates) when this share of its values read so
TEXT_WORDS = 4  # free text: values of this many words on average ...
TEXT_DISTINCT = 0.5  # ... and mostly different from each other
MAX_CATEGORIES = 1_000  # more distinct values than this: read as words (hashed), ...
CODE_DISTINCT = 0.5  # ... unless most values are different one-word codes: left out
LEAK_ACCURACY = 0.99  # a column that alone predicts the target this well leaks it
MAX_CLASSES = 50


class ProfileError(ValueError):
    """The table cannot be profiled as asked (no rows, or no such target column)."""


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    kind: Kind
    note: str = ""  # why it was left out, or what to check
    example: str = ""
    dayfirst: bool = False  # dates that read one way only day-first


@dataclass(frozen=True)
class TableProfile:
    rows: int
    columns: list[ColumnProfile]
    target: str | None = None
    classes: dict[str, int] = field(default_factory=dict)  # label -> rows
    leaks: dict[str, float] = field(default_factory=dict)  # column -> accuracy alone

    def of_kind(self, kind: Kind) -> list[str]:
        return [c.name for c in self.columns if c.kind == kind and c.name not in self.leaks]

    @property
    def decimal_comma(self) -> bool:
        return any(c.note == "numbers with a decimal comma" for c in self.columns)

    @property
    def id_column(self) -> str | None:
        ids = self.of_kind("id")
        return ids[0] if ids else None

    @property
    def task(self) -> str | None:
        if not self.classes:
            return None
        return "binary" if len(self.classes) == 2 else "multiclass"

    @property
    def positive_class(self) -> str | None:
        """Binary: the rarer class, which is usually the one to find."""
        if self.task != "binary":
            return None
        return min(self.classes, key=lambda label: (self.classes[label], label))


def profile_table(frame: pd.DataFrame, target: str | None = None) -> TableProfile:
    """Each column's kind, from its values; with a target, its classes and the columns that
    predict it almost perfectly on their own."""
    if frame.empty:
        raise ProfileError("the table has no rows to learn what its columns hold")
    if target is not None and target not in frame.columns:
        names = [str(name) for name in frame.columns]
        alike = [name for name in names if name.strip().lower() == target.strip().lower()]
        alike = alike or difflib.get_close_matches(target, names, n=1)
        hint = f"did you mean '{alike[0]}'? " if alike else ""
        raise ProfileError(f"no column '{target}' in the table; {hint}its columns are {names}")
    columns = [profile_column(frame[name], str(name)) for name in frame.columns if name != target]
    if target is None:
        return TableProfile(len(frame), columns)
    labels = text_column(frame[target])
    classes = {str(k): int(v) for k, v in labels.value_counts().sort_index().items()}
    if len(classes) < 2:
        raise ProfileError(f"'{target}' holds {len(classes)} class(es); a model needs two or more")
    if len(classes) > MAX_CLASSES:
        raise ProfileError(
            f"'{target}' has {len(classes)} distinct values: agencyml trains classifiers, and "
            f"more than {MAX_CLASSES} classes is more like a number to predict or an id"
        )
    leaks = leaking_columns(frame, columns, labels)
    return TableProfile(len(frame), columns, target, classes, leaks)


def profile_column(values: pd.Series, name: str) -> ColumnProfile:
    if name in (ROW_ID, ROW_NUMBER):  # scoring refuses a batch that brings them
        return ColumnProfile(
            name, "left out", "a name agencyml writes itself: rename the column to use it"
        )
    present = values.dropna()
    if pd.api.types.is_string_dtype(present) or present.dtype == object:
        present = present[present.astype(str).str.strip() != ""]
    example = str(present.iloc[0]) if len(present) else ""
    if present.empty:
        return ColumnProfile(name, "left out", "empty: no values")
    distinct = present.astype(str).nunique()
    if distinct == 1:
        return ColumnProfile(name, "left out", f"constant: every value is '{example}'", example)
    numbers = pd.to_numeric(present, errors="coerce")
    fillers = _fillers(present, numbers)
    if fillers:
        shown = ", ".join(f"'{value}'" for value in fillers[:3])
        return ColumnProfile(
            name,
            "left out",
            f"numbers with {shown} for a missing value, which training refuses in a number "
            "column: empty those cells in the file, then list it under numeric",
            example,
        )
    if numbers.notna().mean() < PARSED_SHARE and _decimal_comma(present):
        return ColumnProfile(name, "numeric", "numbers with a decimal comma", example)
    unique_per_row = distinct == len(values) and values.notna().all()
    if numbers.notna().mean() >= PARSED_SHARE:
        integral = bool((numbers.dropna() % 1 == 0).all())
        if unique_per_row and integral and _looks_like_id(name):
            return ColumnProfile(name, "id", "one value per row", example)
        return ColumnProfile(name, "numeric", example=example)
    date = _date_profile(present, name, example)
    if date is not None:
        return date
    if unique_per_row and _short(present):
        return ColumnProfile(name, "id", "one value per row", example)
    words = present.astype(str).str.split().str.len().mean()
    if words >= TEXT_WORDS and distinct / len(present) >= TEXT_DISTINCT:
        return ColumnProfile(name, "text", example=example)
    if distinct > MAX_CATEGORIES:
        if words < 2 and distinct / len(present) >= CODE_DISTINCT:
            return ColumnProfile(
                name,
                "left out",
                f"{distinct:,} distinct one-word values: codes, too many for categories",
                example,
            )
        return ColumnProfile(
            name,
            "text",
            f"{distinct:,} distinct values: too many for categories, read as words",
            example,
        )
    return ColumnProfile(name, "categorical", example=example)


DECIMAL_COMMA = r"[+-]?\d+(,\d+)?"


def _decimal_comma(values: pd.Series) -> bool:
    """Numbers written 1234,5: every value so, and some with the comma."""
    text = values.astype(str).str.strip()
    return bool(
        text.str.fullmatch(DECIMAL_COMMA).mean() >= PARSED_SHARE and text.str.contains(",").any()
    )


def _fillers(values: pd.Series, numbers: pd.Series) -> list[str]:
    """Marks such as '-' or '?' that stand for a missing value among numbers: read as
    categories they would turn the numbers into hundreds of unrelated labels."""
    if numbers.notna().all():
        return []
    text = values.astype(str).str.strip()
    marks = text.str.fullmatch(r"[^\w\s]+") & numbers.isna()
    rest = values[~marks]
    if not marks.any() or rest.empty:
        return []
    written = pd.to_numeric(rest, errors="coerce").notna().mean() >= PARSED_SHARE
    if not written and not _decimal_comma(rest):
        return []
    return sorted(text[marks].unique())


def _looks_like_id(name: str) -> bool:
    lowered = name.lower()
    return lowered.endswith(("id", "nr", "no", "num", "number", "ref", "key", "code"))


def _short(values: pd.Series) -> bool:
    return bool(values.astype(str).str.split().str.len().mean() < 2)


def _date_profile(values: pd.Series, name: str, example: str) -> ColumnProfile | None:
    sample = values.astype(str).head(5_000)
    if sample.str.fullmatch(r"[+-]?\d+([.,]\d+)?").mean() > 0.5:
        return None  # numbers are not dates, whatever a parser makes of them
    try:
        parsed = parse_dates(sample, name)
    except AmbiguousDatesError:
        try:
            parsed = parse_dates(sample, name, "dayfirst")
        except FeatureError:
            return None
        if parsed.notna().mean() >= PARSED_SHARE:
            return ColumnProfile(
                name,
                "date",
                "reads both day-first and month-first: check dayfirst below",
                example,
                dayfirst=True,
            )
        return None
    except FeatureError:
        return None
    return ColumnProfile(name, "date", example=example) if parsed.notna().mean() >= 0.95 else None


def leaking_columns(
    frame: pd.DataFrame, columns: list[ColumnProfile], labels: pd.Series
) -> dict[str, float]:
    """Columns that on their own predict the target almost perfectly (a small decision tree,
    cross-validated): often a field filled in after the outcome was known."""
    known = labels.notna().to_numpy()
    y = labels[known].astype(str).to_numpy()
    if len(y) < 20 or len(set(y)) < 2:
        return {}
    majority = pd.Series(y).value_counts(normalize=True).iloc[0]
    leaks = {}
    for column in columns:
        if column.kind not in ("numeric", "categorical", "date"):
            continue
        values = frame.loc[known, column.name]
        if column.kind == "numeric":
            x = pd.to_numeric(values, errors="coerce").fillna(-1e18).to_numpy()
        else:
            x = pd.Series(pd.Categorical(values.astype(str)).codes).to_numpy()
        folds = min(3, int(pd.Series(y).value_counts().min()))
        if folds < 2:
            continue
        tree = DecisionTreeClassifier(max_depth=4, random_state=0)
        # shuffled folds: a table sorted by its target would otherwise hide a column that
        # follows the row order (a running number), which a random split then leaks
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
        accuracy = float(np.mean(cross_val_score(tree, x.reshape(-1, 1).astype(float), y, cv=cv)))
        if accuracy >= LEAK_ACCURACY and accuracy > majority + 0.02:
            leaks[column.name] = round(accuracy, 4)
    return leaks
