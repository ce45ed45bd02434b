"""Great Expectations adapter: the only module that imports great_expectations.

Each agency has its own file-backed GX context under the state directory (so Data Docs never
mix agencies), with one suite, ValidationDefinition and Checkpoint per use case and stage."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.expectations import Check
from pipelines.paths import StateDir

ROW_KEY = "__agencyml_row__"
CHECK_META = "agencyml_check"


class DataValidationError(ValueError):
    """The data failed checks that make training or scoring meaningless."""

    def __init__(self, what: str, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{what} failed {len(problems)} check(s):\n{listed}")


@dataclass(frozen=True)
class CheckResult:
    check: Check
    success: bool
    unexpected_count: int = 0
    failing_rows: list[int] = field(default_factory=list)
    observed: Any = None
    error: str | None = None

    def explain(self) -> str:
        """What failed, in plain words: the expectation and what was seen instead."""
        seen = f"{self.unexpected_count} row(s) do not" if self.unexpected_count else "it does not"
        if self.check.kind in ("column_exists",):
            return f"expected {self.check.describe()}, but it is missing"
        if self.check.kind in ("row_count", "recent", "column_type"):
            return f"expected {self.check.describe()}, but found {self.observed}"
        if self.error:
            return f"expected {self.check.describe()}, but it could not be checked: {self.error}"
        return f"expected {self.check.describe()}, but {seen}"


@dataclass(frozen=True)
class ValidationOutcome:
    suite_name: str
    rows: int
    results: list[CheckResult]
    result_id: str
    data_docs: Path

    @property
    def failures(self) -> list[CheckResult]:
        return [result for result in self.results if not result.success]

    @property
    def success(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite_name,
            "result_id": self.result_id,
            "rows": self.rows,
            "success": self.success,
            "checks": [
                {
                    "check": r.check.name,
                    "level": r.check.level,
                    "success": r.success,
                    "expectation": r.check.describe(),
                    "unexpected_count": r.unexpected_count,
                    **({} if r.success else {"problem": r.explain()}),
                }
                for r in self.results
            ],
        }


def run_checks(
    frame: pd.DataFrame, checks: list[Check], *, agency: str, suite_name: str, state: StateDir
) -> ValidationOutcome:
    """Validate a table with a GX Checkpoint and read back, per check, the rows that failed."""
    return run_checks_in_chunks([frame], checks, agency=agency, suite_name=suite_name, state=state)


def run_checks_in_chunks(
    chunks: Iterable[pd.DataFrame],
    checks: list[Check],
    *,
    agency: str,
    suite_name: str,
    state: StateDir,
) -> ValidationOutcome:
    """Validate a table chunk by chunk, so a batch larger than memory can be checked.

    GX checks each chunk; what spans chunks (the row count, ids repeated across chunks) is
    counted here as the chunks pass. Row positions are global."""

    context = agency_context(agency, state)
    chunks = iter(chunks)
    first = next(chunks)
    per_chunk = [
        c
        for c in checks
        if c.kind != "row_count"
        and (c.kind == "column_exists" or c.column is None or c.column in first.columns)
    ]
    checkpoint = build_checkpoint(context, suite_name, per_chunk)
    text_columns = {
        c.column for c in per_chunk if c.kind == "column_type" and c.options["kind"] == "text"
    }
    totals = ChunkTotals({c.name: c for c in per_chunk})
    for chunk in itertools.chain([first], chunks):
        keyed = chunk.reset_index(drop=True)
        for column in keyed.select_dtypes(include=["string", "str"]).columns:
            if column in text_columns:
                keyed[column] = keyed[column].astype(object)  # GX's text check knows object
        keyed[ROW_KEY] = np.arange(totals.rows, totals.rows + len(chunk))
        run = checkpoint.run(batch_parameters={"dataframe": keyed})
        result_key, validation = next(iter(run.run_results.items()))
        totals.add(validation.results, str(result_key), keyed)
    results = totals.results()
    results += [row_count_result(c, totals.rows) for c in checks if c.kind == "row_count"]
    return ValidationOutcome(
        suite_name=suite_name,
        rows=totals.rows,
        results=results,
        result_id=",".join(totals.result_ids),
        data_docs=Path(context.root_directory) / "uncommitted" / "data_docs" / "local_site",
    )


def build_checkpoint(context: Any, suite_name: str, checks: list[Check]) -> Any:
    """One suite, ValidationDefinition and Checkpoint per use case and stage, kept in GX.

    Saving a suite compares every expectation with the stored ones (slow for large suites),
    so an unchanged suite, tagged with a digest of its checks, is reused as it is."""
    import great_expectations as gx

    digest = hashlib.sha256(
        json.dumps([asdict(c) for c in checks], sort_keys=True, default=str).encode()
    ).hexdigest()
    try:
        checkpoint = context.checkpoints.get(suite_name)
        if context.suites.get(suite_name).meta.get("agencyml_checks_sha256") == digest:
            return checkpoint
    except (gx.exceptions.DataContextError, KeyError, ValueError):
        pass
    suite = gx.ExpectationSuite(
        name=suite_name,
        expectations=[to_expectation(c) for c in checks],
        meta={"agencyml_checks_sha256": digest},
    )
    suite = context.suites.add_or_update(suite)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(
            name=suite_name, data=whole_table_batch(context, suite_name), suite=suite
        )
    )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=suite_name,
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data-docs")],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_KEY]},
        )
    )


class ChunkTotals:
    """Per-check results summed over chunks, plus the ids seen so far for cross-chunk repeats."""

    def __init__(self, checks: dict[str, Check]) -> None:
        self.checks = checks
        self.merged: dict[str, CheckResult] = {}
        self.rows = 0
        self.result_ids: list[str] = []
        self.seen_ids: set[Any] = set()

    def add(self, expectation_results: list[Any], result_id: str, keyed: pd.DataFrame) -> None:
        for raw in expectation_results:
            result = read_result(self.checks[raw.expectation_config.meta[CHECK_META]], raw)
            if result.check.kind == "unique" and result.check.column in keyed.columns:
                result = self.with_repeats_across_chunks(result, keyed)
            self.merge(result)
        self.rows += len(keyed)
        self.result_ids.append(result_id)

    def with_repeats_across_chunks(self, result: CheckResult, keyed: pd.DataFrame) -> CheckResult:
        ids = keyed[result.check.column]
        repeated = ids.isin(self.seen_ids).to_numpy() & ids.notna().to_numpy()
        self.seen_ids.update(ids.dropna().tolist())
        if not repeated.any():
            return result
        rows = keyed.loc[repeated, ROW_KEY].astype(int).tolist()
        return replace(
            result,
            success=False,
            unexpected_count=result.unexpected_count + len(rows),
            failing_rows=[*result.failing_rows, *rows],
        )

    def merge(self, result: CheckResult) -> None:
        earlier = self.merged.get(result.check.name)
        if earlier is None:
            self.merged[result.check.name] = result
            return
        # the newest date of the batch is recent if the newest of any chunk is
        either = result.check.kind == "recent"
        self.merged[result.check.name] = replace(
            earlier,
            success=(earlier.success or result.success)
            if either
            else (earlier.success and result.success),
            unexpected_count=earlier.unexpected_count + result.unexpected_count,
            failing_rows=[*earlier.failing_rows, *result.failing_rows],
            observed=earlier.observed if not earlier.success else result.observed,
            error=earlier.error or result.error,
        )

    def results(self) -> list[CheckResult]:
        return list(self.merged.values())


def row_count_result(check: Check, rows: int) -> CheckResult:
    low, high = check.options.get("min"), check.options.get("max")
    inside = (low is None or rows >= low) and (high is None or rows <= high)
    return CheckResult(check=check, success=inside, observed=rows)


def agency_context(agency: str, state: StateDir) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=state.root / "gx" / agency)
    if context.config.analytics_enabled is not False:
        context.enable_analytics(False)
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def whole_table_batch(context: Any, asset_name: str) -> Any:
    source = context.data_sources.add_or_update_pandas("agencyml")
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(asset_name)
    try:
        return asset.get_batch_definition("whole-table")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("whole-table")


def to_expectation(check: Check) -> Any:
    import great_expectations.expectations as gxe

    options, meta = check.options, {CHECK_META: check.name}
    column = {"column": check.column} if check.column else {}
    made = {
        "column_exists": lambda: gxe.ExpectColumnToExist(**column, meta=meta),
        "column_type": lambda: gxe.ExpectColumnValuesToBeInTypeList(
            **column, type_list=options["types"], meta=meta
        ),
        "row_count": lambda: gxe.ExpectTableRowCountToBeBetween(
            min_value=options.get("min"), max_value=options.get("max"), meta=meta
        ),
        "unique": lambda: gxe.ExpectColumnValuesToBeUnique(**column, meta=meta),
        "not_null": lambda: gxe.ExpectColumnValuesToNotBeNull(**column, meta=meta),
        "between": lambda: gxe.ExpectColumnValuesToBeBetween(
            **column, min_value=options.get("min"), max_value=options.get("max"), meta=meta
        ),
        "in_set": lambda: gxe.ExpectColumnValuesToBeInSet(
            **column, value_set=options["values"], meta=meta
        ),
        "not_future": lambda: gxe.ExpectColumnValuesToBeBetween(
            **column, max_value=pd.Timestamp(options["max"]), meta=meta
        ),
        "max_length": lambda: gxe.ExpectColumnValueLengthsToBeBetween(
            **column, max_value=options["max"], meta=meta
        ),
        "recent": lambda: gxe.ExpectColumnMaxToBeBetween(
            **column, min_value=pd.Timestamp(options["min"]), meta=meta
        ),
    }
    return made[check.kind]()


def raised_exception(info: dict[str, Any]) -> tuple[bool, str | None]:
    """GX reports an exception at the top of exception_info or under each metric's id."""
    candidates = [info, *(value for value in info.values() if isinstance(value, dict))]
    for candidate in candidates:
        if candidate.get("raised_exception"):
            return True, str(candidate.get("exception_message") or "an error in the check")
    return False, None


def read_result(check: Check, result: Any) -> CheckResult:
    details = result.result or {}
    raised, message = raised_exception(result.exception_info or {})
    failing = [
        int(item[ROW_KEY])
        for item in details.get("unexpected_index_list") or []
        if isinstance(item, dict) and ROW_KEY in item
    ]
    observed = details.get("observed_value")
    return CheckResult(
        check=check,
        success=bool(result.success),
        unexpected_count=int(details.get("unexpected_count") or 0),
        failing_rows=failing,
        observed=observed if not isinstance(observed, np.generic) else observed.item(),
        error=message if raised else None,
    )
