"""Great Expectations adapter: the only module that imports great_expectations.

Each agency has its own file-backed GX context under the state directory (so Data Docs never
mix agencies), with one suite, ValidationDefinition and Checkpoint per use case and stage."""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.paths import StateDir
from pipelines.validation.expectations import COLUMN_TYPES, Check

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
        if self.check.kind == "column_type":
            kind = next((k for k, names in COLUMN_TYPES.items() if self.observed in names), None)
            found = f"{kind} values ({self.observed})" if kind else self.observed
            return f"expected {self.check.describe()}, but found {found}"
        if self.check.kind in ("row_count", "recent"):
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
    """Validate a table given chunk by chunk, so a batch larger than memory can be checked."""
    chunks = iter(chunks)
    first = next(chunks)
    validation = BatchValidation(
        checks, agency=agency, suite_name=suite_name, state=state, columns=list(first.columns)
    )
    try:
        for chunk in itertools.chain([first], chunks):
            validation.add(chunk)
        return validation.finish()
    finally:
        validation.discard()


class BatchValidation:
    """One GX Checkpoint for a whole batch, on GX's SQL engine over DuckDB.

    `add` appends a chunk of conformed rows, with its rows' positions in the batch, to a
    parquet file in a scratch folder (only the columns the suite checks, each in one arrow type
    for the whole file: GateFile). `finish` points the suite's DuckDB view at that file and runs
    the suite's Checkpoint once: DuckDB reads the file in place and spills to disk, so memory
    stays flat, and a repeated id is found wherever its copies fall. Failing rows come back by
    position (ROW_KEY). Data Docs are built once, for the batch's result."""

    def __init__(
        self,
        checks: list[Check],
        *,
        agency: str,
        suite_name: str,
        state: StateDir,
        columns: list[str],
    ) -> None:
        self.checks, self.agency, self.state = checks, agency, state
        self.columns = [str(column) for column in columns]
        self.suite_name = suite_name
        self.suite_checks = [
            c
            for c in checks
            if c.kind != "row_count"
            and (c.kind == "column_exists" or c.column is None or c.column in self.columns)
        ]
        state.scratch_dir.mkdir(parents=True, exist_ok=True)
        self.scratch = Path(tempfile.mkdtemp(prefix="gate-", dir=state.scratch_dir))
        self.file = GateFile(self.scratch / "batch.parquet", self.suite_checks, self.columns)

    @property
    def rows(self) -> int:
        return self.file.rows

    def add(self, chunk: pd.DataFrame) -> None:
        self.file.add(chunk)

    def finish(self) -> ValidationOutcome:
        from pipelines.durable import file_lock

        rows = self.file.close()
        # one command at a time in an agency's GX project, from reading its config to its Data
        # Docs: GX writes those files in place, and the suites of every use case share them
        with file_lock(self.state.gx_lock(self.agency)):
            return self._validate(rows)

    def _validate(self, rows: int) -> ValidationOutcome:
        from pipelines.validation import gx_duckdb

        context = agency_context(self.agency, self.state)
        database = Path(context.root_directory) / "duckdb" / f"{self.suite_name}.duckdb"
        database.parent.mkdir(parents=True, exist_ok=True)
        results: list[CheckResult] = []
        result_id = ""
        data_docs = data_docs_site(context) / "runs" / self.suite_name / "no-checks"  # none made
        if self.suite_checks:
            # the suite's view names this batch's file (the agency's lock is held)
            gx_duckdb.point_view_at(database, self.file.path, threads=available_threads())
            checkpoint = None
            try:
                with gx_duckdb.gx_on_duckdb():
                    checkpoint = build_checkpoint(
                        context, self.suite_name, self.suite_checks, database
                    )
                    if checkpoint.result_format != result_format(rows):
                        checkpoint.result_format = result_format(rows)
                        checkpoint.save()  # GX runs only the saved form of a checkpoint
                    run = checkpoint.run()
            finally:
                gx_duckdb.release(
                    *context.data_sources.all().values(),
                    *(gx_duckdb.sources_of(checkpoint) if checkpoint is not None else []),
                )
            result_key, validation = next(iter(run.run_results.items()))
            by_name = {c.name: c for c in self.suite_checks}
            results = [
                read_result(by_name[raw.expectation_config.meta[CHECK_META]], raw)
                for raw in validation.results
            ]
            result_id = str(result_key)
            data_docs = build_data_docs(context, result_key, self.suite_name, validation.success)
        results = [
            replace(r, observed=self.columns)
            if r.check.kind == "column_exists" and not r.success
            else r
            for r in results
        ]
        results += [row_count_result(c, rows) for c in self.checks if c.kind == "row_count"]
        return ValidationOutcome(
            suite_name=self.suite_name,
            rows=rows,
            results=results,
            result_id=result_id,
            data_docs=data_docs,
            columns=self.columns,
        )

    def discard(self) -> None:
        self.file.abandon()
        shutil.rmtree(self.scratch, ignore_errors=True)


def available_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def result_format(rows: int) -> dict[str, Any]:
    """COMPLETE results with each failing row's position. On SQL, GX cuts the failing rows at
    partial_unexpected_count (20 by default) even for COMPLETE: the batch's row count lets
    every failing row through."""
    return {
        "result_format": "COMPLETE",
        "unexpected_index_column_names": [ROW_KEY],
        "partial_unexpected_count": max(rows, 20),
    }


def data_docs_site(context: Any) -> Path:
    return Path(context.root_directory) / "uncommitted" / "data_docs" / "local_site"


# what a validation's own pages use of the site's static files (the rest is GX's index's)
DATA_DOCS_STATIC = ("static/images/favicon.ico", "static/styles")


def build_data_docs(context: Any, result_key: Any, suite_name: str, success: bool) -> Path:
    """This validation's Data Docs on their own: its result page, its suite's page and an index
    of the two, copied from the agency's GX site into runs/<suite>/<run>/. Returns the folder.

    The GX site keeps every validation of the agency; a run logs only its own pages, so what a
    run logs stays the same size however many batches came before (the whole site was 4 MB of
    GX's images and fonts, plus every earlier page)."""
    import jinja2
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    suite_key = ExpectationSuiteIdentifier(name=suite_name)
    context.build_data_docs(resource_identifiers=[result_key, suite_key], build_index=False)
    site = data_docs_site(context)
    page = page_of(context, result_key).relative_to(site)
    suite_page = page_of(context, suite_key).relative_to(site)
    folder = site.parent / "runs" / page.relative_to("validations").with_suffix("")
    for name in (page, suite_page, *DATA_DOCS_STATIC):
        source, target = site / name, folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source.is_file():
            shutil.copyfile(source, target)
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    (folder / "index.html").write_text(
        environment.get_template("data_docs_index.html").render(
            suite=suite_name,
            run_time=str(result_key.run_id.run_time),
            success=bool(success),
            validation_page=page.as_posix(),
            suite_page=suite_page.as_posix(),
        ),
        encoding="utf-8",
    )
    return folder


def page_of(context: Any, key: Any) -> Path:
    """The file of a validation result's or a suite's page in the agency's GX site."""
    from urllib.parse import unquote, urlparse

    [site] = context.get_docs_sites_urls(resource_identifier=key, only_if_exists=True)
    return Path(unquote(urlparse(site["site_url"]).path))


class GateFile:
    """The rows a suite checks, as one parquet file: the checked columns present in the table,
    plus each row's position in the batch (ROW_KEY).

    Each column has one arrow type for the whole file, chosen from the first chunk: the type of
    its kind (float64, string, naive UTC timestamp) when the chunk holds that kind, else string,
    so that the column's type check fails and says what it found. A later chunk whose column
    will not take the file's type (a cast that failed in that chunk only, which rejects the
    batch anyway) is written as empty cells there."""

    def __init__(self, path: Path, checks: list[Check], columns: list[str]) -> None:
        self.path = path
        self.kinds = {
            c.column: c.options["kind"] for c in checks if c.kind == "column_type" and c.column
        }
        checked = {c.column for c in checks if c.column}
        self.columns = [c for c in columns if c in checked]
        self.schema: pa.Schema | None = None
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0

    def add(self, chunk: pd.DataFrame) -> None:
        chunk = chunk.reset_index(drop=True)
        if self.schema is None:
            self.schema = pa.schema(
                [pa.field(c, first_type(chunk[c], self.kinds.get(c))) for c in self.columns]
                + [pa.field(ROW_KEY, pa.int64())]
            )
            self.writer = pq.ParquetWriter(self.path, self.schema)
        types = self.schema.types[: len(self.columns)]
        arrays = [as_arrow(chunk[c], t) for c, t in zip(self.columns, types, strict=True)]
        arrays.append(pa.array(np.arange(self.rows, self.rows + len(chunk)), pa.int64()))
        assert self.writer is not None
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += len(chunk)

    def close(self) -> int:
        if self.writer is None:  # no chunk at all: an empty file with the columns as text
            self.add(pd.DataFrame({c: pd.Series([], dtype=object) for c in self.columns}))
        assert self.writer is not None
        self.writer.close()
        return self.rows

    def abandon(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()


TIMESTAMP = pa.timestamp("us")


def first_type(values: pd.Series, kind: str | None) -> pa.DataType:
    """The column's arrow type in the gate's file (GateFile)."""
    if kind == "numeric" and is_number(values):
        return pa.float64()
    if kind == "date" and pd.api.types.is_datetime64_any_dtype(values):
        return TIMESTAMP
    if kind is None:
        try:
            inferred = pa.array(values, from_pandas=True).type
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            return pa.string()
        if pa.types.is_timestamp(inferred):
            return TIMESTAMP
        return pa.string() if pa.types.is_null(inferred) else inferred
    return pa.string()


def is_number(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def as_arrow(values: pd.Series, arrow_type: pa.DataType) -> pa.Array:
    """The column in the file's type; empty cells where it will not take it (GateFile)."""
    try:
        if pa.types.is_string(arrow_type):
            try:  # conformed text: strings and empty cells already
                return pa.array(values, pa.string(), from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                text = values.astype(object).where(values.notna(), None)
                return pa.array([None if v is None else str(v) for v in text], pa.string())
        if arrow_type == TIMESTAMP:
            if not pd.api.types.is_datetime64_any_dtype(values):
                raise TypeError("not dates")
            if getattr(values.dt, "tz", None) is not None:
                values = values.dt.tz_convert("UTC").dt.tz_localize(None)
            return pa.array(values.astype("datetime64[us]"), TIMESTAMP, from_pandas=True)
        if pa.types.is_floating(arrow_type) and not is_number(values):
            raise TypeError("not numbers")
        return pa.array(values, arrow_type, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return pa.nulls(len(values), arrow_type)


def build_checkpoint(context: Any, suite_name: str, checks: list[Check], database: Path) -> Any:
    """One suite, DuckDB data source, ValidationDefinition and Checkpoint per use case and
    stage, kept in GX.

    Saving a suite compares every expectation with the stored ones (slow for large suites),
    so an unchanged suite, tagged with a digest of its checks, is reused as it is."""
    import great_expectations as gx

    from pipelines.validation import gx_duckdb

    source_name = f"duckdb-{suite_name}"
    connection = gx_duckdb.connection_string(database)
    options = gx_duckdb.engine_options(available_threads())
    digest = hashlib.sha256(
        json.dumps(
            {
                "checks": [asdict(c) for c in checks],
                "engine": [connection, options],
                "data docs": "once",
            },
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
    source = context.data_sources.add_or_update_sql(
        source_name, connection_string=connection, kwargs=options
    )
    batch = source.add_table_asset(
        gx_duckdb.VIEW, table_name=gx_duckdb.VIEW
    ).add_batch_definition_whole_table("whole-table")
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=suite_name, data=batch, suite=suite)
    )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=suite_name,
            validation_definitions=[definition],
            actions=[],  # Data Docs are built once per batch, by build_data_docs
            result_format=result_format(0),
        )
    )


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
    failing = sorted(
        int(item[ROW_KEY])
        for item in details.get("unexpected_index_list") or []
        if isinstance(item, dict) and ROW_KEY in item
    )
    observed = details.get("observed_value")
    return CheckResult(
        check=check,
        success=bool(result.success),
        unexpected_count=int(details.get("unexpected_count") or 0),
        failing_rows=failing,
        observed=observed if not isinstance(observed, np.generic) else observed.item(),
        error=message if raised else None,
    )
