"""The gate's two workarounds of library internals (pipelines/validation/gx_duckdb.py), on a
real GX file context and a real DuckDB file: they still fit the libraries, they are put back
after use, the gate finds every failing row with them, and they are still needed. When GX or
duckdb-engine fixes the bug a workaround covers, a test here fails and says to delete it."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from great_expectations.execution_engine import sqlalchemy_execution_engine as gx_engine

from pipelines.paths import StateDir
from pipelines.validation import gx_duckdb
from pipelines.validation.expectations import COLUMN_TYPES, Check
from pipelines.validation.gx import (
    CHECK_META,
    BatchValidation,
    GateFile,
    agency_context,
    build_checkpoint,
    read_result,
    result_format,
)

ROWS = 600
FAR_ABOVE = list(range(100, 350))  # 250 failing rows: above GX's cuts at 20 and at 200


def planted_faults() -> pd.DataFrame:
    """Conformed rows with one fault of each kind at known positions."""
    frame = pd.DataFrame(
        {
            "case_id": [f"c-{i}" for i in range(ROWS)],
            "amount": np.linspace(0, 50, ROWS),
            "region": ["north", "south"] * (ROWS // 2),
            "received": pd.date_range("2024-01-01", periods=ROWS, freq="h", tz="UTC"),
        }
    ).astype({"case_id": object, "region": object})
    frame.loc[3, "region"] = None
    frame.loc[FAR_ABOVE, "amount"] = 1_000.0
    frame.loc[7, "region"] = "atlantis"
    frame.loc[[9, 599], "case_id"] = "c-dup"
    frame.loc[11, "region"] = "x" * 40
    frame.loc[13, "received"] = pd.Timestamp("2031-01-01", tz="UTC")
    return frame


CHECKS = [
    Check("exists:amount", "column_exists", "batch", "amount"),
    Check(
        "type:amount",
        "column_type",
        "batch",
        "amount",
        {"kind": "numeric", "types": COLUMN_TYPES["numeric"]},
    ),
    Check(
        "type:region",
        "column_type",
        "batch",
        "region",
        {"kind": "text", "types": COLUMN_TYPES["text"]},
    ),
    Check(
        "type:received",
        "column_type",
        "batch",
        "received",
        {"kind": "date", "types": COLUMN_TYPES["date"]},
    ),
    Check("unique:case_id", "unique", "batch", "case_id"),
    Check("not_null:region", "not_null", "row", "region"),
    Check("between:amount", "between", "row", "amount", {"min": 0, "max": 100}),
    Check("allowed:region", "in_set", "row", "region", {"values": ["north", "south", "x" * 40]}),
    Check("max_length:region", "max_length", "row", "region", {"max": 12}),
    Check("not_future:received", "not_future", "row", "received", {"max": "2025-01-01T00:00:00"}),
]

EXPECTED = {  # check -> (success, failing rows), worked out from planted_faults by hand
    "exists:amount": (True, []),
    "type:amount": (True, []),
    "type:region": (True, []),
    "type:received": (True, []),
    "unique:case_id": (False, [9, 599]),
    "not_null:region": (False, [3]),
    "between:amount": (False, FAR_ABOVE),
    "allowed:region": (False, [7]),
    "max_length:region": (False, [11]),
    "not_future:received": (False, [13]),
}


def verdicts(results: list) -> dict[str, tuple[bool, list[int]]]:
    return {r.check.name: (r.success, r.failing_rows) for r in results}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[StateDir, Path, Path]:
    """A gate file of the planted faults, and the suite's DuckDB file with its view on it."""
    root = tmp_path_factory.mktemp("duckdb")
    state = StateDir(root / "state")
    file = GateFile(root / "batch.parquet", CHECKS, list(planted_faults().columns))
    file.add(planted_faults())
    file.close()
    database = root / "suite.duckdb"
    gx_duckdb.point_view_at(database, file.path, threads=1)
    return state, file.path, database


def run_without_workarounds(state: StateDir, database: Path) -> dict[str, tuple[bool, list[int]]]:
    context = agency_context("bare", state)
    checkpoint = build_checkpoint(context, "bare", [c for c in CHECKS], database)
    checkpoint.result_format = result_format(ROWS)
    checkpoint.save()
    try:
        run = checkpoint.run()
    finally:
        gx_duckdb.release(*context.data_sources.all().values(), *gx_duckdb.sources_of(checkpoint))
    [validation] = run.run_results.values()
    by_name = {c.name: c for c in CHECKS}
    return verdicts(
        [read_result(by_name[r.expectation_config.meta[CHECK_META]], r) for r in validation.results]
    )


# --- 1, 2: the workarounds fit the libraries and are put back --------------------------------


def test_the_persisted_dialects_constant_has_the_shape_the_workaround_assumes() -> None:
    original = gx_engine._PERSISTED_CONNECTION_DIALECTS
    assert isinstance(original, tuple) and all(hasattr(d, "value") for d in original)
    assert not gx_engine._dialect_requires_persisted_connection(connection_string="duckdb:///x")

    with gx_duckdb.duckdb_keeps_its_connection():
        assert gx_engine._dialect_requires_persisted_connection(connection_string="duckdb:///x")

    assert gx_engine._PERSISTED_CONNECTION_DIALECTS is original


def test_both_workarounds_are_put_back_when_the_block_raises() -> None:
    import duckdb_engine

    dialects, get_columns = (
        gx_engine._PERSISTED_CONNECTION_DIALECTS,
        duckdb_engine.Dialect.get_columns,
    )
    with pytest.raises(RuntimeError, match="inside"), gx_duckdb.gx_on_duckdb():
        assert duckdb_engine.Dialect.get_columns is gx_duckdb.described_columns
        raise RuntimeError("inside")

    assert gx_engine._PERSISTED_CONNECTION_DIALECTS is dialects
    assert duckdb_engine.Dialect.get_columns is get_columns


def test_the_versions_the_workarounds_were_written_against() -> None:
    # an upgrade is a deliberate change: pyproject.toml and constraints.txt pin these ranges
    assert version("great_expectations").startswith("1.24.")
    assert version("duckdb_engine").startswith("0.17.")


# --- 3: the gate with the workarounds finds every fault ----------------------------------------


def test_the_gate_on_duckdb_finds_every_planted_fault_and_row(
    prepared: tuple[StateDir, Path, Path],
) -> None:
    state, _, _ = prepared
    frame = planted_faults()
    validation = BatchValidation(
        CHECKS, agency="alpha", suite_name="planted", state=state, columns=list(frame.columns)
    )
    for start in range(0, ROWS, 250):  # three chunks: the duplicate id spans two of them
        validation.add(frame.iloc[start : start + 250])
    outcome = validation.finish()
    validation.discard()

    assert verdicts(outcome.results) == EXPECTED
    assert all(r.error is None for r in outcome.results)
    between = next(r for r in outcome.results if r.check.name == "between:amount")
    assert between.unexpected_count == len(between.failing_rows) == len(FAR_ABOVE)


# --- 4: the workarounds are still needed --------------------------------------------------------


def test_gx_still_needs_the_persisted_connection_for_duckdb(
    prepared: tuple[StateDir, Path, Path],
) -> None:
    state, _, database = prepared
    with gx_duckdb.duckdb_reflects_columns():
        bare = run_without_workarounds(state, database)

    assert bare != EXPECTED, (
        "GX now evaluates the suite on DuckDB without a persisted connection (GX#10738 is "
        "fixed): delete duckdb_keeps_its_connection from pipelines/validation/gx_duckdb.py"
    )


def test_duckdb_engine_still_needs_columns_from_describe(
    prepared: tuple[StateDir, Path, Path],
) -> None:
    _, _, database = prepared
    engine = sa.create_engine(gx_duckdb.connection_string(database))
    try:
        with gx_duckdb.duckdb_reflects_columns():
            described = sa.inspect(engine).get_columns(gx_duckdb.VIEW)
        assert [c["name"] for c in described][:2] == ["case_id", "amount"]
        assert str(described[1]["type"]) == "DOUBLE PRECISION"
        try:
            sa.inspect(engine).get_columns(gx_duckdb.VIEW)
        except Exception as error:
            assert "pg_collation" in str(error) or "Catalog" in str(error), error
        else:
            pytest.fail(
                "duckdb-engine now reflects DuckDB's columns (duckdb_engine#1379 is fixed): "
                "delete duckdb_reflects_columns from pipelines/validation/gx_duckdb.py"
            )
    finally:
        engine.dispose()


# --- a long-lived process does not keep the suite's DuckDB file -----------------------------------

ANOTHER_PROCESS = """
import sys
import pandas as pd
from pipelines.paths import StateDir
from pipelines.validation.expectations import Check
from pipelines.validation.gx import run_checks

checks = [Check("between:amount", "between", "row", "amount", {"min": 0, "max": 1})]
outcome = run_checks(pd.DataFrame({"amount": [0.5, 7.0]}), checks, agency="alpha",
                     suite_name="shared", state=StateDir(__import__("pathlib").Path(sys.argv[1])))
print(outcome.results[0].failing_rows)
"""


def test_another_process_validates_the_same_suite_while_this_one_lives(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    checks = [Check("between:amount", "between", "row", "amount", {"min": 0, "max": 1})]
    frame = pd.DataFrame({"amount": [3.0, 0.5]})
    from pipelines.validation.gx import run_checks

    here = run_checks(frame, checks, agency="alpha", suite_name="shared", state=state)
    # this process lives on, as a worker or the inbox does, while another validates
    there = subprocess.run(
        [sys.executable, "-c", ANOTHER_PROCESS, str(state.root)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert here.results[0].failing_rows == [0]
    assert there.returncode == 0, there.stderr[-2000:]
    assert there.stdout.strip().splitlines()[-1] == "[1]"
    again = run_checks(frame, checks, agency="alpha", suite_name="shared", state=state)
    assert again.results[0].failing_rows == [0]
