"""The validation gate on four engines: time, peak memory and whether they find the same rows.

Candidates, all fed the same suite (`scoring_checks`) and the same parquet file:
  baseline     today's path: one GX Checkpoint (COMPLETE) per 250k-row pandas chunk
  gx-two-pass  GX on pandas, 1M-row chunks: SUMMARY for every expectation, then COMPLETE
               with row ids only for the expectations that failed in that chunk
  gx-duckdb    GX's SQL engine on DuckDB over a view of the file (row number as id), one
               Checkpoint for the whole batch, failing rows fetched by id
  arrow-gx     the checks compiled to pyarrow.compute over record batches, then GX runs the
               same suite on the flagged rows only (the evidence still comes from GX)
Each measurement runs in its own process, so its peak RSS is its own.
Run: python benchmarks/gate_engines.py --rows 2000000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

CANDIDATES = ["baseline", "gx-two-pass", "gx-duckdb", "arrow-gx"]
NOW = datetime(2025, 1, 1, tzinfo=UTC)  # fixed, so every process builds the same suite
FAULT_ROWS = 40_000
FAULT_CHUNK_ROWS = 10_000  # chunk borders at 10k, 20k, 30k rows in the planted-fault batch
SQL_TYPES = {"numeric": ["DOUBLE_PRECISION"], "text": ["VARCHAR", "String"], "date": ["TIMESTAMP"]}
DUCKDB_CASTS = {"numeric": "DOUBLE", "text": "VARCHAR", "date": "TIMESTAMP"}

Verdict = dict[str, tuple[bool, int, list[int]]]  # check name -> success, count, failing rows


# --- the suite -------------------------------------------------------------------------------


def suite_inputs(profile_path: Path) -> tuple[list[Any], dict[str, str]]:
    """The fraud-risk checks and column kinds, from a profile stored by the parent process."""
    from pipelines.config import load_use_case
    from pipelines.validation.expectations import column_kinds, scoring_checks

    params = load_use_case("business-aid", "fraud-risk").params
    profile = json.loads(profile_path.read_text())
    return scoring_checks(params, profile, NOW), column_kinds(params)


def results_of(validation: Any, checks: list[Any]) -> list[Any]:
    """A GX validation's results as the gate reads them, each matched to its check."""
    from pipelines.validation import gx as gate

    by_name = {c.name: c for c in checks}
    return [
        gate.read_result(by_name[r.expectation_config.meta[gate.CHECK_META]], r)
        for r in validation.results
    ]


def verdict_of(results: list[Any]) -> Verdict:
    return {
        r.check.name: (bool(r.success), int(r.unexpected_count), sorted(map(int, r.failing_rows)))
        for r in results
    }


# --- 1. baseline -----------------------------------------------------------------------------


def run_baseline(path: Path, state: Path, chunk_rows: int) -> tuple[int, Verdict]:
    from pipelines.data import storage
    from pipelines.data.columns import conform_columns
    from pipelines.paths import StateDir
    from pipelines.validation.gx import run_checks_in_chunks

    checks, kinds = suite_inputs(state.parent / "profile.json")
    chunks = (conform_columns(c, kinds)[0] for c in storage.iter_table(path, chunk_rows))
    outcome = run_checks_in_chunks(
        chunks, checks, agency="bench", suite_name="baseline", state=StateDir(state)
    )
    return outcome.rows, verdict_of(outcome.results)


# --- 2. GX on pandas, SUMMARY first, COMPLETE for what failed ---------------------------------


def run_two_pass(path: Path, state: Path, chunk_rows: int) -> tuple[int, Verdict]:
    """SUMMARY costs no per-row bookkeeping; row ids are asked for only where rows failed."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    from pipelines.data import storage
    from pipelines.data.columns import conform_columns
    from pipelines.paths import StateDir
    from pipelines.validation import gx as gate

    checks, kinds = suite_inputs(state.parent / "profile.json")
    context = gate.agency_context("bench", StateDir(state))
    per_chunk = [c for c in checks if c.kind != "row_count"]
    by_name = {c.name: c for c in per_chunk}
    summary = summary_checkpoint(context, gate.build_checkpoint(context, "two-pass", per_chunk))
    totals = gate.ChunkTotals(by_name)
    keys, details = [], {}
    for chunk in storage.iter_table(path, 4 * chunk_rows):
        keyed = conform_columns(chunk.reset_index(drop=True), kinds)[0]
        keyed[gate.ROW_KEY] = np.arange(totals.rows, totals.rows + len(keyed))
        key, first = next(
            iter(summary.run(batch_parameters={"dataframe": keyed}).run_results.items())
        )
        keys.append(key)
        raws = {r.expectation_config.meta[gate.CHECK_META]: r for r in first.results}
        failed = [by_name[name] for name, r in raws.items() if not r.success]
        if failed:
            names = tuple(c.name for c in failed)
            if names not in details:  # a suite of the failed expectations, saved once a run
                details[names] = detail_checkpoint(context, f"two-pass-{len(details)}", failed)
            run = details[names].run(batch_parameters={"dataframe": keyed})
            key, second = next(iter(run.run_results.items()))
            keys.append(key)
            raws |= {r.expectation_config.meta[gate.CHECK_META]: r for r in second.results}
        totals.add(list(raws.values()), str(key), keyed)
    context.build_data_docs(
        resource_identifiers=[
            *keys,
            *(
                ExpectationSuiteIdentifier(name=s)
                for s in ["two-pass", *(c.name for c in details.values())]
            ),
        ],
        build_index=True,
    )
    results = totals.results()
    results += [gate.row_count_result(c, totals.rows) for c in checks if c.kind == "row_count"]
    return totals.rows, verdict_of(results)


def detail_checkpoint(context: Any, name: str, checks: list[Any]) -> Any:
    """COMPLETE results with row ids for some expectations, on the same pandas batch (a second
    data source would replace the first: GX's add_or_update_pandas drops its assets)."""
    import great_expectations as gx

    from pipelines.validation import gx as gate

    batch = context.checkpoints.get("two-pass").validation_definitions[0].batch_definition
    suite = context.suites.add_or_update(
        gx.ExpectationSuite(name=name, expectations=[gate.to_expectation(c) for c in checks])
    )
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=name,
            validation_definitions=[definition],
            actions=[],
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": [gate.ROW_KEY],
            },
        )
    )


def summary_checkpoint(context: Any, complete: Any) -> Any:
    """A second Checkpoint on the same ValidationDefinition that asks GX for counts only."""
    import great_expectations as gx

    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name=f"{complete.name}-summary",
            validation_definitions=complete.validation_definitions,
            actions=[],
            result_format={"result_format": "SUMMARY"},
        )
    )


# --- 3. GX's SQL engine on DuckDB ------------------------------------------------------------


class PersistedDialect(str):
    """A dialect name that also answers `.value`, as GX's own GXSqlDialect members do."""

    @property
    def value(self) -> str:
        return str(self)


@contextlib.contextmanager
def duckdb_keeps_its_connection() -> Iterator[None]:
    """Work around GX#10738: GX 1.24 reads a query's rows after its connection is closed, and
    DuckDB drops the result with the connection: 33 of this suite's 64 checks fail. GX
    keeps one open connection for the dialects in _PERSISTED_CONNECTION_DIALECTS; DuckDB is
    added for the duration of the block and the tuple is put back afterwards."""
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    original = engine._PERSISTED_CONNECTION_DIALECTS
    engine._PERSISTED_CONNECTION_DIALECTS = (*original, PersistedDialect("duckdb"))
    try:
        yield
    finally:
        engine._PERSISTED_CONNECTION_DIALECTS = original


DUCKDB_TYPE_ALIASES = {"double": "double precision", "float": "real"}


def described_columns(
    dialect: Any, connection: Any, table_name: str, schema: str | None = None, **_: Any
) -> list[dict]:
    """A table's columns from DuckDB's DESCRIBE, typed through the dialect's own names."""
    from sqlalchemy import types

    rows = connection.exec_driver_sql(f'DESCRIBE "{table_name}"').fetchall()
    names = dialect.ischema_names
    return [
        {
            "name": name,
            "type": names.get(
                DUCKDB_TYPE_ALIASES.get(kind.lower(), kind.lower()), types.NullType
            )(),
            "nullable": null == "YES",
            "default": None,
        }
        for name, kind, null, *_ in rows
    ]


@contextlib.contextmanager
def duckdb_reflects_columns() -> Iterator[None]:
    """Work around duckdb_engine#1379: SQLAlchemy >= 2.0.45 reflects columns through
    pg_catalog.pg_collation, which DuckDB lacks, so GX sees no column types. DuckDB's DESCRIBE
    answers instead for the duration of the block."""
    import duckdb_engine

    original = duckdb_engine.Dialect.get_columns
    duckdb_engine.Dialect.get_columns = described_columns
    try:
        yield
    finally:
        duckdb_engine.Dialect.get_columns = original


def create_batch_view(path: Path, database: Path, kinds: dict[str, str]) -> None:
    """A view over the parquet file in place: the file's row number is the id, and each column
    is cast to its kind (the SQL side of conform_columns)."""
    import duckdb
    import pyarrow.parquet as pq

    present = set(pq.read_schema(path).names)
    casts = ", ".join(
        f'CAST("{c}" AS {DUCKDB_CASTS[k]}) AS "{c}"' for c, k in kinds.items() if c in present
    )
    with duckdb.connect(str(database)) as connection:
        connection.execute(
            "CREATE OR REPLACE VIEW batch AS SELECT file_row_number AS __agencyml_row__, "
            f"* EXCLUDE (file_row_number) REPLACE ({casts}) "
            f"FROM read_parquet('{path}', file_row_number = true)"
        )


def sql_check(check: Any) -> Any:
    """The SQL engine sees SQL type names: a column's kind is matched against those instead."""
    if check.kind != "column_type":
        return check
    return replace(check, options={**check.options, "types": SQL_TYPES[check.options["kind"]]})


def duckdb_checkpoint(context: Any, database: Path, checks: list[Any], rows: int) -> Any:
    """A SQL data source on the DuckDB file, its view as a table asset, one whole-table batch.

    On SQL, GX cuts unexpected_index_list at partial_unexpected_count (20) even for COMPLETE:
    asking for as many as the batch has rows gives every failing id, as pandas does."""
    import great_expectations as gx

    from pipelines.validation import gx as gate

    suite = context.suites.add_or_update(
        gx.ExpectationSuite(name="duckdb", expectations=[gate.to_expectation(c) for c in checks])
    )
    source = context.data_sources.add_or_update_sql(
        "duckdb", connection_string=f"duckdb:///{database}"
    )
    batch = source.add_table_asset("batch", table_name="batch").add_batch_definition_whole_table(
        "whole-table"
    )
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name="duckdb", data=batch, suite=suite)
    )
    return context.checkpoints.add_or_update(
        gx.Checkpoint(
            name="duckdb",
            validation_definitions=[definition],
            actions=[],
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": [gate.ROW_KEY],
                "partial_unexpected_count": max(rows, 20),
            },
        )
    )


def run_duckdb(path: Path, state: Path, chunk_rows: int) -> tuple[int, Verdict]:
    """One Checkpoint over the whole file: uniqueness spans the batch, DuckDB streams it."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    from pipelines.paths import StateDir
    from pipelines.validation import gx as gate

    checks, kinds = suite_inputs(state.parent / "profile.json")
    state.mkdir(parents=True, exist_ok=True)
    create_batch_view(path, state / "batch.duckdb", kinds)
    context = gate.agency_context("bench", StateDir(state))
    sql_checks = [sql_check(c) for c in checks if c.kind != "row_count"]
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(path).metadata.num_rows
    checkpoint = duckdb_checkpoint(context, state / "batch.duckdb", sql_checks, rows)
    with duckdb_keeps_its_connection(), duckdb_reflects_columns():
        key, validation = next(iter(checkpoint.run().run_results.items()))
    context.build_data_docs(
        resource_identifiers=[key, ExpectationSuiteIdentifier(name="duckdb")], build_index=True
    )
    results = results_of(validation, checks)
    failing = sorted({row for r in results for row in r.failing_rows})
    fetch_rows_by_id(path, failing)
    results += [gate.row_count_result(c, rows) for c in checks if c.kind == "row_count"]
    return rows, verdict_of(results)


def fetch_rows_by_id(path: Path, ids: list[int]) -> Any:
    """The rows to quarantine, read from the file by row number (a connection of its own: GX's
    engine still holds the database file)."""
    import duckdb
    import pyarrow as pa

    with duckdb.connect() as connection:
        connection.register("failing_ids", pa.table({"id": pa.array(ids, pa.int64())}))
        return connection.execute(
            f"SELECT * FROM read_parquet('{path}', file_row_number = true) "
            "WHERE file_row_number IN (SELECT id FROM failing_ids)"
        ).to_arrow_table()


# --- 4. pyarrow.compute first, GX on the flagged rows -----------------------------------------


def arrow_mask(column: Any, check: Any) -> Any:
    """Rows failing one row-level check, as GX decides it: empty cells fail only not_null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    options = check.options
    if check.kind == "not_null":
        return pc.is_null(column, nan_is_null=True)
    if check.kind == "in_set":
        known = pc.is_in(column, value_set=pa.array(options["values"], column.type))
        return pc.and_(pc.is_valid(column), pc.invert(known))
    if check.kind == "max_length":
        return pc.greater(pc.utf8_length(column), options["max"])
    if check.kind == "not_future":
        return pc.greater(column, pa.scalar(np.datetime64(options["max"], "ns")))
    low, high = options.get("min"), options.get("max")
    too_low = pc.less(column, low) if low is not None else pa.nulls(len(column), pa.bool_())
    too_high = pc.greater(column, high) if high is not None else pa.nulls(len(column), pa.bool_())
    return pc.or_kleene(too_low, too_high)


def conformed_batch(batch: Any, kinds: dict[str, str]) -> Any:
    """Each column cast to its kind, as conform_columns does for pandas."""
    import pyarrow as pa

    types = {"numeric": pa.float64(), "text": pa.large_string(), "date": pa.timestamp("ns")}
    arrays = [
        batch.column(name).cast(types[kinds[name]]) if name in kinds else batch.column(name)
        for name in batch.schema.names
    ]
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


class ArrowScan:
    """One streaming pass: failing positions per row-level check, the ids for uniqueness, the
    rows that failed anything (kept to hand to GX) and the row count."""

    def __init__(self, checks: list[Any], kinds: dict[str, str]) -> None:
        self.kinds = kinds
        self.row_checks = [c for c in checks if c.level == "row"]
        self.unique = [c for c in checks if c.kind == "unique"]
        self.failing: dict[str, list[np.ndarray]] = {c.name: [] for c in self.row_checks}
        self.ids: dict[str, list[Any]] = {c.name: [] for c in self.unique}
        self.flagged: list[Any] = []
        self.rows = 0

    def add(self, raw: Any) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        batch = conformed_batch(raw, self.kinds)
        any_failed = np.zeros(batch.num_rows, dtype=bool)
        for check in self.row_checks:
            if check.column not in batch.schema.names:
                continue
            mask = arrow_mask(batch.column(check.column), check)
            failed = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
            self.failing[check.name].append(np.flatnonzero(failed) + self.rows)
            any_failed |= failed
        for check in self.unique:
            if check.column in batch.schema.names:
                self.ids[check.name].append(batch.column(check.column))
        positions = np.flatnonzero(any_failed)
        keyed = batch.append_column(
            "__agencyml_row__", pa.array(np.arange(self.rows, self.rows + batch.num_rows))
        )
        self.flagged.append(keyed.take(pa.array(positions)))
        self.rows += batch.num_rows

    def repeated_positions(self, name: str) -> np.ndarray:
        """Positions of every row whose id another row also has (GX's meaning of unique)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self.ids.get(name):
            return np.array([], dtype=np.int64)
        ids = pa.chunked_array(self.ids[name])
        counts = pc.value_counts(ids.drop_null())
        repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
        in_repeated = pc.fill_null(pc.is_in(ids, value_set=repeated), False)
        return np.flatnonzero(in_repeated.to_numpy(zero_copy_only=False))


def run_arrow_then_gx(path: Path, state: Path, chunk_rows: int) -> tuple[int, Verdict]:
    """GX sees only the rows pyarrow flagged: its results name the failing rows of the suite;
    counts over the whole batch (row count, uniqueness) come from the scan."""
    import pyarrow as pa

    from pipelines.data import storage
    from pipelines.data.columns import conform_columns
    from pipelines.paths import StateDir
    from pipelines.validation import gx as gate

    checks, kinds = suite_inputs(state.parent / "profile.json")
    scan = ArrowScan(checks, kinds)
    for batch in storage.iter_record_batches(path, 4 * chunk_rows):
        scan.add(batch)
    repeats = {c.name: scan.repeated_positions(c.name) for c in scan.unique}
    extra = np.unique(np.concatenate([np.array([], dtype=np.int64), *repeats.values()]))
    flagged = pa.Table.from_batches(scan.flagged)
    if len(extra):
        flagged = pa.concat_tables([flagged, rows_at(path, extra, kinds, 4 * chunk_rows)])
        flagged = flagged.take(unique_rows(flagged))
    frame = conform_columns(flagged.to_pandas(), kinds)[0]
    context = gate.agency_context("bench", StateDir(state))
    checkpoint = gate.build_checkpoint(
        context, "arrow-gx", [c for c in checks if c.kind != "row_count"]
    )
    key, validation = next(
        iter(checkpoint.run(batch_parameters={"dataframe": frame}).run_results.items())
    )
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    context.build_data_docs(
        resource_identifiers=[key, ExpectationSuiteIdentifier(name="arrow-gx")], build_index=True
    )
    results = results_of(validation, checks)
    scanned = {
        name: np.concatenate([np.array([], dtype=np.int64), *parts])
        for name, parts in scan.failing.items()
    }
    mismatched = [
        r.check.name
        for r in results
        if r.check.name in scanned and sorted(r.failing_rows) != scanned[r.check.name].tolist()
    ]
    if mismatched:
        print(f"pyarrow and GX disagree on {mismatched}", file=sys.stderr)
    results += [gate.row_count_result(c, scan.rows) for c in checks if c.kind == "row_count"]
    return scan.rows, verdict_of(results)


def rows_at(path: Path, positions: np.ndarray, kinds: dict[str, str], chunk_rows: int) -> Any:
    """A second pass over the file for rows known only at the end (repeated ids)."""
    import pyarrow as pa

    from pipelines.data import storage

    taken, start = [], 0
    for raw in storage.iter_record_batches(path, chunk_rows):
        batch = conformed_batch(raw, kinds)
        inside = positions[(positions >= start) & (positions < start + batch.num_rows)]
        if len(inside):
            keyed = batch.append_column(
                "__agencyml_row__", pa.array(np.arange(start, start + batch.num_rows))
            )
            taken.append(keyed.take(pa.array(inside - start)))
        start += batch.num_rows
    return pa.Table.from_batches(taken)


def unique_rows(table: Any) -> np.ndarray:
    """Each row once, in file order, when a row failed a check and also repeats an id."""
    keys = table.column("__agencyml_row__").to_numpy()
    _, first = np.unique(keys, return_index=True)
    return first[np.argsort(keys[first])]


# --- measuring -------------------------------------------------------------------------------


def run_read(path: Path, state: Path, chunk_rows: int) -> tuple[int, Verdict]:
    import pyarrow.parquet as pq

    return pq.read_table(path).num_rows, {}


RUNNERS = {
    "read": run_read,
    "baseline": run_baseline,
    "gx-two-pass": run_two_pass,
    "gx-duckdb": run_duckdb,
    "arrow-gx": run_arrow_then_gx,
}


def measure(name: str, path: Path, state: Path, chunk_rows: int, out: Path) -> dict[str, Any]:
    """One candidate in this process; its verdict goes to `out`, its costs to stdout."""
    started = time.perf_counter()
    rows, verdict = RUNNERS[name](path, state, chunk_rows)
    seconds = time.perf_counter() - started
    out.write_text(json.dumps(verdict))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "seconds": seconds, "peak_mb": peak_mb}


def in_subprocess(name: str, path: Path, state: Path, chunk_rows: int) -> dict[str, Any]:
    out = state.parent / f"{name}-verdict.json"
    command = [sys.executable, __file__, "--measure", name, "--path", str(path)]
    command += ["--state", str(state), "--chunk-rows", str(chunk_rows), "--out", str(out)]
    load = os.getloadavg()[0]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).parents[1])},
    )
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1], "load": load}
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return found | {"load": load, "verdict": json.loads(out.read_text()), "stderr": done.stderr}


# --- the batches -----------------------------------------------------------------------------


def write_batch(rows: int, path: Path) -> None:
    from pipelines.data.business_aid import iter_application_chunks
    from pipelines.data.storage import write_parquet_stream

    write_parquet_stream(iter_application_chunks(rows, 7), path)


def write_profile(path: Path, profile_path: Path) -> None:
    """Trained ranges and categories from the clean file's first 50k rows, for every process."""
    from pipelines.config import load_use_case
    from pipelines.data import storage
    from pipelines.validation.expectations import derive_profile

    params = load_use_case("business-aid", "fraud-risk").params
    profile = derive_profile(next(storage.iter_table(path, 50_000)), params)
    profile_path.write_text(json.dumps(profile))


PLANTED = {
    "null": [("scheme", 5), ("prior_revenue_dkk", 12_000), ("application_date", 25_000)],
    "out of range": [("company_age_years", 100), ("claimed_revenue_drop_pct", 15_000)],
    "unknown category": [("scheme", 200), ("region", 21_000), ("industry_code", 39_999)],
    "id of another row": [(5_001, 5_000), (10_000, 9_999), (30_500, 2)],  # (row, copied from)
    "too long": [("region", 17_000)],
    "future date": [("application_date", 22_000)],
}


def write_faulty_batch(path: Path) -> None:
    """Faults planted where a user would look for them; ids repeat within a chunk and across
    the chunk borders of the baseline (10k rows in this batch)."""
    import pandas as pd

    from pipelines.data.business_aid import generate_applications

    frame = generate_applications(FAULT_ROWS, 11).astype({"employees": "float64"})
    for column, row in PLANTED["null"]:
        frame.loc[row, column] = None
    frame.loc[100, "company_age_years"] = 250.0
    frame.loc[15_000, "claimed_revenue_drop_pct"] = -5.0
    frame.loc[31_000, "employees"] = -1.0
    frame.loc[200, "scheme"] = "loans"
    frame.loc[21_000, "region"] = "Atlantis"
    frame.loc[39_999, "industry_code"] = "ZZ"
    frame.loc[17_000, "region"] = "x" * 10_001
    frame.loc[22_000, "application_date"] = pd.Timestamp("2030-01-01")
    for row, source in PLANTED["id of another row"]:
        frame.loc[row, "application_id"] = frame.loc[source, "application_id"]
    frame.to_parquet(path, index=False)


# --- comparing and reporting -----------------------------------------------------------------


def differences(verdict: dict[str, Any], reference: dict[str, Any]) -> list[str]:
    """Checks whose flag, count or failing rows differ from the reference's, in short."""
    found = []
    for name in sorted(set(verdict) | set(reference)):
        mine, theirs = verdict.get(name), reference.get(name)
        if mine == theirs:
            continue
        if mine is None or theirs is None:
            found.append(f"{name}: only in {'the baseline' if mine is None else 'this one'}")
            continue
        extra, missing = (
            sorted(set(mine[2]) - set(theirs[2])),
            sorted(set(theirs[2]) - set(mine[2])),
        )
        found.append(
            f"{name}: {mine[1]} rows vs {theirs[1]}"
            + (f", also rows {extra[:6]}" if extra else "")
            + (f", not rows {missing[:6]}" if missing else "")
        )
    return found


def agreement(folder: Path, names: list[str]) -> dict[str, list[str]]:
    """Each candidate's verdict on the planted-fault batch against the baseline's."""
    path = folder / "faults.parquet"
    write_faulty_batch(path)
    (folder / "faults").mkdir()
    (folder / "faults" / "profile.json").write_text((folder / "profile.json").read_text())
    found = {n: in_subprocess(n, path, folder / "faults" / n, FAULT_CHUNK_ROWS) for n in names}
    reference = found["baseline"]["verdict"]
    failed = [f"{name} ({v[1]})" for name, v in reference.items() if not v[0]]
    print(f"\nbaseline, planted-fault batch ({FAULT_ROWS:,} rows), failed: {', '.join(failed)}")
    return {
        name: [found[name]["error"]]
        if "error" in found[name]
        else differences(found[name]["verdict"], reference)
        for name in names[1:]
    }


def machine_facts() -> str:
    import duckdb
    import great_expectations as gx
    import pandas as pd
    import pyarrow as pa

    return (
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, GX {gx.__version__}, pandas {pd.__version__}, "
        f"pyarrow {pa.__version__}, duckdb {duckdb.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--candidates", nargs="+", default=CANDIDATES, choices=CANDIDATES)
    parser.add_argument("--measure", choices=sorted(RUNNERS))
    parser.add_argument("--path", type=Path)
    parser.add_argument("--state", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.path, args.state, args.chunk_rows, args.out)))
        return
    print(machine_facts())
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        path = folder / f"batch-{args.rows}.parquet"
        write_batch(args.rows, path)
        write_profile(path, folder / "profile.json")
        names = ["baseline", *[c for c in args.candidates if c != "baseline"]]
        agreed = agreement(folder, names)
        report(folder, path, names, args, agreed)


def report(
    folder: Path, path: Path, names: list[str], args: argparse.Namespace, agreed: dict[str, Any]
) -> None:
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in ["read", *names]}
    for _ in range(args.repeats):
        for candidate in runs:  # interleaved, so a busy minute hits every candidate alike
            runs[candidate].append(in_subprocess(candidate, path, folder / candidate, 250_000))
    loads = [found["load"] for found_runs in runs.values() for found in found_runs]
    read = min(r["seconds"] for r in runs["read"])
    reference = runs["baseline"][0].get("verdict", {})
    print(f"\nload average (1 min) before each run: {min(loads):.2f} to {max(loads):.2f}\n")
    print(
        f"| candidate | rows | seconds (min of {args.repeats}) | vs read | peak RSS (MB) | "
        f"same as baseline at {args.rows:,} rows | same on planted faults |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for candidate, found in runs.items():
        good = [r for r in found if "error" not in r]
        if not good:
            print(f"| {candidate} | - | failed: {found[0]['error'][:80]} | - | - | - | - |")
            continue
        best, peak = min(r["seconds"] for r in good), max(r["peak_mb"] for r in good)
        same = "; ".join(differences(good[0]["verdict"], reference)) or "yes"
        planted = "; ".join(agreed.get(candidate, [])) or "yes"
        if candidate == "read":
            same = planted = "-"
        print(
            f"| {candidate} | {good[0]['rows']:,} | {best:.2f} | {best / read:.1f}x | "
            f"{peak:,.0f} | {same} | {planted} |"
        )


if __name__ == "__main__":
    main()
