"""Great Expectations adapter: the only module that imports great_expectations.

Each agency has its own file-backed GX context under the state directory (so Data Docs never
mix agencies), with one suite, ValidationDefinition and Checkpoint per use case and stage."""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.paths import StateDir
from pipelines.validation.expectations import Check

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
            hint = closest_column_hint(str(self.check.column), self.observed)
            return f"expected {self.check.describe()}, but it is missing{hint}"
        if self.check.kind in ("row_count", "recent", "column_type"):
            return f"expected {self.check.describe()}, but found {self.observed}"
        if self.error:
            return f"expected {self.check.describe()}, but it could not be checked: {self.error}"
        return f"expected {self.check.describe()}, but {seen}"


def closest_column_hint(column: str, present: Any) -> str:
    """'; did you mean 'JobsReported'?' when a present column is a near spelling of it."""
    if not isinstance(present, list) or not present:
        return ""
    by_key = {name.strip().lower().replace(" ", "_"): name for name in map(str, present)}
    key = column.strip().lower().replace(" ", "_")
    close = [by_key[key]] if key in by_key else []
    close = close or difflib.get_close_matches(column, list(map(str, present)), n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""


SEPARATORS = {";": "';'", "\t": "a tab", "|": "'|'", ",": "','"}


def columns_found(columns: list[str], missing: int) -> str:
    """One line for a table that lacks columns: what it has; and, when it was read as one
    column, the separator its header seems to use instead."""
    if len(columns) == 1:
        header = str(columns[0])
        counts = {sep: header.count(sep) for sep in SEPARATORS}
        sep, count = max(counts.items(), key=lambda item: item[1])
        if count == 0 and len(header.split()) > 1:
            guess = ", which looks separated by spaces"
        else:
            guess = f", which looks separated by {SEPARATORS[sep]}" if count else ""
        return (
            f"the file was read as ONE column, '{header[:80]}'{guess}: {missing} expected "
            "column(s) are missing because the file's separator was not recognised; declare "
            "the dataset's (or the use case's batch) format in the params"
        )
    shown = ", ".join(f"'{name}'" for name in columns[:30])
    more = f" and {len(columns) - 30} more" if len(columns) > 30 else ""
    return f"the table's {len(columns)} columns are: {shown}{more}"


@dataclass(frozen=True)
class ValidationOutcome:
    suite_name: str
    rows: int
    results: list[CheckResult]
    result_id: str
    data_docs: Path
    columns: list[str] = field(default_factory=list)  # the columns the table had

    def missing_columns_note(self) -> list[str]:
        """What the table had, said once, when expected columns are missing."""
        missing = [r for r in self.failures if r.check.kind == "column_exists"]
        return [columns_found(self.columns, len(missing))] if missing and self.columns else []

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
    """Validate a table chunk by chunk, so a batch larger than memory can be checked."""
    chunks = iter(chunks)
    first = next(chunks)
    validation = ChunkedValidation(
        checks, agency=agency, suite_name=suite_name, state=state, columns=list(first.columns)
    )
    for chunk in itertools.chain([first], chunks):
        validation.add(chunk)
    return validation.finish()


SCHEMA_KINDS = ("column_exists", "column_type")


class ChunkedValidation:
    """One GX Checkpoint run per chunk, with what spans chunks counted here as they pass.

    `add` returns the chunk's own results (row positions are global), so a caller can set the
    chunk's failing rows aside at once; `finish` gives the outcome of the whole table: the row
    count, the newest date over all chunks, and ids repeated across chunks.

    Column presence and types are the table's, not a chunk's: every chunk of one file has the
    same columns, conformed to the same types. They are checked with the first chunk only (the
    whole suite); later chunks run the row checks alone (the suite '<name>-rows'), which saves
    about a quarter of each later checkpoint."""

    def __init__(
        self,
        checks: list[Check],
        *,
        agency: str,
        suite_name: str,
        state: StateDir,
        columns: list[str],
    ) -> None:
        context = agency_context(agency, state)
        self.checks = checks
        self.columns = [str(column) for column in columns]
        self.suite_name = suite_name
        per_chunk = [
            c
            for c in checks
            if c.kind != "row_count"
            and (c.kind == "column_exists" or c.column is None or c.column in columns)
        ]
        self.context = context
        self.checkpoint = build_checkpoint(context, suite_name, per_chunk)
        row_checks = [c for c in per_chunk if c.kind not in SCHEMA_KINDS]
        self.rows_suite = f"{suite_name}-rows"
        self.row_checkpoint = (
            build_checkpoint(context, self.rows_suite, row_checks) if row_checks else None
        )
        self.result_keys: list[Any] = []
        self.text_columns = {
            c.column for c in per_chunk if c.kind == "column_type" and c.options["kind"] == "text"
        }
        self.totals = ChunkTotals({c.name: c for c in per_chunk})
        self.data_docs = Path(context.root_directory) / "uncommitted" / "data_docs" / "local_site"

    def add(self, chunk: pd.DataFrame) -> list[CheckResult]:
        keyed = chunk.reset_index(drop=True)
        for column in keyed.select_dtypes(include=["string", "str"]).columns:
            if column in self.text_columns:
                keyed[column] = keyed[column].astype(object)  # GX's text check knows object
        keyed[ROW_KEY] = np.arange(self.totals.rows, self.totals.rows + len(chunk))
        first = not self.result_keys
        if not first and self.row_checkpoint is None:  # nothing but schema checks
            return self.totals.add([], None, keyed)
        checkpoint = self.checkpoint if first else self.row_checkpoint
        run = checkpoint.run(batch_parameters={"dataframe": keyed})
        result_key, validation = next(iter(run.run_results.items()))
        self.result_keys.append(result_key)
        return self.totals.add(validation.results, str(result_key), keyed)

    def build_data_docs(self) -> None:
        """Data Docs for the table's results, once: rebuilding the site's index after every
        chunk costs more the more results the store holds."""
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
        )

        self.context.build_data_docs(
            resource_identifiers=[
                *self.result_keys,
                ExpectationSuiteIdentifier(name=self.suite_name),
                *(
                    [ExpectationSuiteIdentifier(name=self.rows_suite)]
                    if len(self.result_keys) > 1
                    else []
                ),
            ],
            build_index=True,
        )

    def finish(self) -> ValidationOutcome:
        self.build_data_docs()
        results = [
            replace(r, observed=self.columns)
            if r.check.kind == "column_exists" and not r.success
            else r
            for r in self.totals.results()
        ]
        results += [
            row_count_result(c, self.totals.rows) for c in self.checks if c.kind == "row_count"
        ]
        return ValidationOutcome(
            suite_name=self.suite_name,
            rows=self.totals.rows,
            results=results,
            result_id=",".join(self.totals.result_ids),
            data_docs=self.data_docs,
            columns=self.columns,
        )


def build_checkpoint(context: Any, suite_name: str, checks: list[Check]) -> Any:
    """One suite, ValidationDefinition and Checkpoint per use case and stage, kept in GX.

    Saving a suite compares every expectation with the stored ones (slow for large suites),
    so an unchanged suite, tagged with a digest of its checks, is reused as it is."""
    import great_expectations as gx

    digest = hashlib.sha256(
        json.dumps(
            {"checks": [asdict(c) for c in checks], "actions": "data docs after the last chunk"},
            sort_keys=True,
            default=str,
        ).encode()
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
            actions=[],  # Data Docs are built once per table, after its last chunk
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_KEY]},
        )
    )


class ChunkTotals:
    """Per-check results summed over chunks. Ids repeated across chunks are found at the end
    from a 64-bit hash per row (8 bytes a row, not a set of the ids themselves)."""

    def __init__(self, checks: dict[str, Check]) -> None:
        self.checks = checks
        self.merged: dict[str, CheckResult] = {}
        self.rows = 0
        self.result_ids: list[str] = []
        self.id_hashes: dict[str, list[np.ndarray]] = {}
        self.id_present: dict[str, list[np.ndarray]] = {}

    def add(
        self, expectation_results: list[Any], result_id: str | None, keyed: pd.DataFrame
    ) -> list[CheckResult]:
        chunk_results = []
        for raw in expectation_results:
            result = read_result(self.checks[raw.expectation_config.meta[CHECK_META]], raw)
            if result.check.kind == "unique" and result.check.column in keyed.columns:
                self.remember_ids(result.check.name, keyed[result.check.column])
            chunk_results.append(result)
            self.merge(result)
        self.rows += len(keyed)
        if result_id is not None:
            self.result_ids.append(result_id)
        return chunk_results

    def remember_ids(self, name: str, ids: pd.Series) -> None:
        present = ids.notna().to_numpy()
        hashes = pd.util.hash_array(ids.astype(str).to_numpy(dtype=object), categorize=False)
        self.id_hashes.setdefault(name, []).append(hashes)
        self.id_present.setdefault(name, []).append(present)

    def with_repeats_across_chunks(self, result: CheckResult) -> CheckResult:
        """Every row whose id another row of the batch also has, as GX counts within one
        chunk (both copies), wherever in the batch the copies fall: GX saw each chunk alone.

        The usual batch has no repeats: its hashes are sorted in place and compared with their
        neighbours (about 9 bytes a row). Positions are worked out only for repeated hashes."""
        name = result.check.name
        if name not in self.id_hashes:
            return result
        present = np.concatenate(self.id_present[name])
        hashes = np.concatenate(self.id_hashes[name])
        if not present.all():
            hashes = hashes[present]
        hashes.sort()
        repeated = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
        del hashes
        if not len(repeated):
            return result
        hashes = np.concatenate(self.id_hashes[name])
        repeats = np.flatnonzero(present & np.isin(hashes, repeated))
        rows = sorted(set(repeats.tolist()) - set(result.failing_rows))
        if not rows:
            return result
        return replace(
            result,
            success=False,
            unexpected_count=result.unexpected_count + len(rows),
            failing_rows=sorted([*result.failing_rows, *rows]),
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
        return [self.with_repeats_across_chunks(result) for result in self.merged.values()]


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
    # found, not replaced: replacing the data source drops the other suites' assets
    try:
        source = context.data_sources.get("agencyml")
    except KeyError:
        source = context.data_sources.add_pandas("agencyml")
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
