"""Great Expectations adapter: the only module that imports great_expectations.

Each agency has its own file-backed GX context under the state directory (so Data Docs never
mix agencies), with one suite, ValidationDefinition and Checkpoint per use case and stage."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    import great_expectations as gx

    context = agency_context(agency, state)
    present = [
        c
        for c in checks
        if c.kind == "column_exists" or c.column is None or c.column in frame.columns
    ]
    suite = gx.ExpectationSuite(name=suite_name, expectations=[to_expectation(c) for c in present])
    suite = context.suites.add_or_update(suite)
    batch = whole_table_batch(context, suite_name)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=suite_name, data=batch, suite=suite)
    )
    checkpoint = context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=suite_name,
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data-docs")],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_KEY]},
        )
    )
    keyed = frame.reset_index(drop=True).assign(**{ROW_KEY: np.arange(len(frame))})
    outcome = checkpoint.run(batch_parameters={"dataframe": keyed})
    result_key, validation = next(iter(outcome.run_results.items()))
    by_name = {check.name: check for check in present}
    results = [
        read_result(by_name[r.expectation_config.meta[CHECK_META]], r) for r in validation.results
    ]
    return ValidationOutcome(
        suite_name=suite_name,
        rows=len(frame),
        results=results,
        result_id=str(result_key),
        data_docs=Path(context.root_directory) / "uncommitted" / "data_docs" / "local_site",
    )


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


def read_result(check: Check, result: Any) -> CheckResult:
    details = result.result or {}
    raised = (result.exception_info or {}).get("raised_exception")
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
        error=str((result.exception_info or {}).get("exception_message")) if raised else None,
    )
