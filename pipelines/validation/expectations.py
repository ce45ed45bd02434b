"""What data must look like, as plain checks: built from the params and the training profile.

gx.py turns these checks into Great Expectations expectations; the gate reads the
results back. Nothing here imports GX, so the rules can be read and tested on their own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipelines.config import UseCase
from pipelines.data.columns import text_column

Level = Literal["batch", "row"]
# each kind's column types as GX's SQL engine names them in the gate's file (validation.gx)
COLUMN_TYPES = {
    "numeric": ["DOUBLE_PRECISION"],
    "text": ["VARCHAR", "String"],
    "date": ["TIMESTAMP"],
}
MAX_PROFILED_CATEGORIES = 5_000


@dataclass(frozen=True)
class Check:
    """One expectation. Row-level checks can quarantine rows; batch-level ones reject a batch."""

    name: str
    kind: str
    level: Level
    column: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """The check in plain words, for error messages, reports and quarantine reasons."""
        column, options = f"'{self.column}'", self.options
        words: dict[str, Callable[[], str]] = {
            "column_exists": lambda: f"column {column} is present",
            "column_type": lambda: f"column {column} holds {options['kind']} values",
            "row_count": lambda: f"between {options['min']} and {options['max'] or 'any'} rows",
            "unique": lambda: f"values in {column} are unique",
            "not_null": lambda: f"{column} is not empty",
            "between": lambda: f"{column} is {bounds_in_words(options['min'], options['max'])}",
            "in_set": lambda: f"{column} is one of the {len(options['values'])} known values",
            "not_future": lambda: f"{column} is not after {options['max']}",
            "recent": lambda: f"the newest {column} is on or after {options['min']}",
            "max_length": lambda: f"{column} is at most {options['max']} characters long",
        }
        return words[self.kind]()


def bounds_in_words(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "any value"
    if low is not None and high is not None:
        return f"between {readable(low)} and {readable(high)}"
    return f"at least {readable(low)}" if low is not None else f"at most {readable(high)}"


def readable(value: float) -> str:
    """12345678.9 -> '12,345,679'; 0.25 -> '0.25': no exponents in messages people read."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


def column_kinds(params: UseCase) -> dict[str, str]:
    """Each input column's kind: the id is text, categories and free text are both text."""
    features = params.features
    kinds = {params.row_key: "text"}
    kinds.update({column: "numeric" for column in features.numeric})
    kinds.update({column: "text" for column in [*features.categorical, *features.text]})
    kinds.update({column: "date" for column in features.date})
    return kinds


def schema_checks(
    kinds: dict[str, str], id_column: str, rows: dict[str, int | None]
) -> list[Check]:
    checks = [Check(f"exists:{c}", "column_exists", "batch", c) for c in kinds]
    checks += [
        Check(f"type:{c}", "column_type", "batch", c, {"kind": kind, "types": COLUMN_TYPES[kind]})
        for c, kind in kinds.items()
    ]
    checks.append(Check("row_count", "row_count", "batch", None, dict(rows)))
    checks.append(Check(f"unique:{id_column}", "unique", "batch", id_column))
    return checks


def declared_checks(params: UseCase, now: datetime) -> list[Check]:
    """Not-null, ranges, allowed sets and freshness, as the params declare them."""
    expectations = params.expectations
    checks = [
        Check(f"not_null:{c}", "not_null", "row", c)
        for c in dict.fromkeys([params.row_key, *expectations.required])
    ]
    for column, rule in expectations.columns.items():
        if rule.min is not None or rule.max is not None:
            checks.append(
                Check(
                    f"between:{column}",
                    "between",
                    "row",
                    column,
                    {"min": rule.min, "max": rule.max},
                )
            )
        if rule.allowed is not None:
            checks.append(
                Check(
                    f"allowed:{column}", "in_set", "row", column, {"values": sorted(rule.allowed)}
                )
            )
    textual = [params.row_key, *params.features.categorical, *params.features.text]
    checks += [
        Check(f"max_length:{c}", "max_length", "row", c, {"max": expectations.max_text_length})
        for c in textual
    ]
    freshness = expectations.freshness
    today = pd.Timestamp(now.replace(tzinfo=None)).floor("D")  # dates in tables are naive
    latest = today + timedelta(days=freshness.allow_future_days)
    for column in params.features.date:
        checks.append(
            Check(f"not_future:{column}", "not_future", "row", column, {"max": latest.isoformat()})
        )
        if freshness.max_age_days is not None:
            oldest = today - timedelta(days=freshness.max_age_days)
            checks.append(
                Check(f"recent:{column}", "recent", "batch", column, {"min": oldest.isoformat()})
            )
    return checks


def training_checks(params: UseCase, now: datetime) -> list[Check]:
    """The suite training data must pass in full before a model is fitted."""
    kinds = {**column_kinds(params), params.target: "text"}
    rows = {"min": params.min_training_rows, "max": None}
    target = [Check(f"not_null:{params.target}", "not_null", "row", params.target)]
    checks = [*schema_checks(kinds, params.row_key, rows), *target, *declared_checks(params, now)]
    return list({check.name: check for check in checks}.values())  # the target may be required


def scoring_checks(params: UseCase, profile: dict[str, Any], now: datetime) -> list[Check]:
    """The suite each batch meets: the declared checks plus what the model was trained on."""
    bounds = params.expectations.batch_rows
    checks = schema_checks(
        column_kinds(params), params.row_key, {"min": bounds.min, "max": bounds.max}
    )
    checks += [c for c in declared_checks(params, now) if c.column != params.target]
    for column, (low, high) in profile.get("ranges", {}).items():
        checks.append(
            Check(f"trained_range:{column}", "between", "row", column, {"min": low, "max": high})
        )
    if params.expectations.unseen_categories == "quarantine":
        for column, values in profile.get("categories", {}).items():
            checks.append(
                Check(f"trained_categories:{column}", "in_set", "row", column, {"values": values})
            )
    return checks


def derive_profile(train: pd.DataFrame, params: UseCase) -> dict[str, Any]:
    """Ranges (widened by the tolerance) and category sets seen in training, stored with the
    model so every batch is checked against what its model learned from."""
    tolerance = params.expectations.range_tolerance
    ranges: dict[str, list[float]] = {}
    for column in params.features.numeric:
        values = pd.to_numeric(train[column], errors="coerce").to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if finite.size:
            low, high = float(finite.min()), float(finite.max())
            margin = tolerance * (high - low)
            ranges[column] = [low - margin, high + margin]
    categories: dict[str, list[str]] = {}
    for column in params.features.categorical:
        seen = text_column(train[column]).dropna().unique()
        if len(seen) <= MAX_PROFILED_CATEGORIES:
            categories[column] = sorted(seen.tolist())
    return {
        "ranges": ranges,
        "categories": categories,
        "unseen_categories": params.expectations.unseen_categories,
    }
