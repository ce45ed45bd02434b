"""GX's SQL execution engine on DuckDB: the gate's batch as a DuckDB view over a parquet file,
and the two workarounds GX 1.24 and duckdb-engine 0.17 need to evaluate a suite on it.

Both workarounds swap a library attribute for the duration of a block and put it back after;
no installed file is edited. tests/unit/validation/test_gx_duckdb.py fails when either library
changes the internals they rely on, or stops needing them (docs/gate-engines.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# DESCRIBE's names that SQLAlchemy's duckdb dialect knows under another spelling
DUCKDB_TYPE_ALIASES = {"double": "double precision", "float": "real"}
VIEW = "batch"
# DuckDB's share of the gate's memory: past it, DuckDB spills to disk beside the database
# (the uniqueness check's hash table is the largest part: about 0.5 GB at 10M ids)
MEMORY_LIMIT = "256MB"


def engine_options(threads: int) -> dict[str, Any]:
    """SQLAlchemy engine options for the suite's DuckDB file: GX's engines and ours must open
    it with the same settings (DuckDB refuses a second connection with other ones). Threads:
    the cores this process may use, so DuckDB does not oversubscribe them."""
    return {"connect_args": {"config": {"threads": int(threads), "memory_limit": MEMORY_LIMIT}}}


class PersistedDialect(str):
    """A dialect name that also answers `.value`, as GX's own GXSqlDialect members do."""

    @property
    def value(self) -> str:
        return str(self)


@contextlib.contextmanager
def duckdb_keeps_its_connection() -> Iterator[None]:
    """Work around GX#10738: GX 1.24 reads a query's rows after closing its connection, and
    DuckDB drops the result with the connection, so most expectations fail. GX keeps one open
    connection for the dialects in _PERSISTED_CONNECTION_DIALECTS; DuckDB is added for the
    block (engine creation included) and the tuple is put back afterwards."""
    from great_expectations.execution_engine import sqlalchemy_execution_engine as engine

    original = engine._PERSISTED_CONNECTION_DIALECTS
    engine._PERSISTED_CONNECTION_DIALECTS = (*original, PersistedDialect("duckdb"))
    try:
        yield
    finally:
        engine._PERSISTED_CONNECTION_DIALECTS = original


def described_columns(
    dialect: Any, connection: Any, table_name: str, schema: str | None = None, **_: Any
) -> list[dict[str, Any]]:
    """A table's columns from DuckDB's DESCRIBE, typed through the dialect's own names."""
    from sqlalchemy import types

    quoted = table_name.replace('"', '""')
    rows = connection.exec_driver_sql(f'DESCRIBE "{quoted}"').fetchall()
    names = dialect.ischema_names

    def sql_type(kind: str) -> Any:
        return names.get(DUCKDB_TYPE_ALIASES.get(kind.lower(), kind.lower()), types.NullType)()

    return [
        {
            "name": name,
            "type": sql_type(kind),
            "nullable": null == "YES",
            "default": None,
        }
        for name, kind, null, *_ in rows
    ]


@contextlib.contextmanager
def duckdb_reflects_columns() -> Iterator[None]:
    """Work around duckdb_engine#1379: SQLAlchemy >= 2.0.45 reflects columns through
    pg_catalog.pg_collation, which DuckDB lacks, so GX would see no column types and every
    type check would raise. DuckDB's DESCRIBE answers instead for the block."""
    import duckdb_engine

    original = duckdb_engine.Dialect.get_columns
    duckdb_engine.Dialect.get_columns = described_columns
    try:
        yield
    finally:
        duckdb_engine.Dialect.get_columns = original


@contextlib.contextmanager
def gx_on_duckdb() -> Iterator[None]:
    """Both workarounds: a checkpoint on a DuckDB data source runs inside this block. GX's
    warning that it knows no type module for DuckDB is silenced for the block: each type check
    would repeat it, and SQLAlchemy's own type names (COLUMN_TYPES) are what the checks use."""
    import logging

    types_log = logging.getLogger("great_expectations.expectations.type_comparison")
    level = types_log.level
    types_log.setLevel(logging.ERROR)
    try:
        with duckdb_keeps_its_connection(), duckdb_reflects_columns():
            yield
    finally:
        types_log.setLevel(level)


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def point_view_at(database: Path, parquet: Path, *, threads: int) -> None:
    """(Re)create the view the suite's data source reads: the gate's parquet file, in place.

    Through duckdb-engine, as GX connects: DuckDB refuses a second connection to a file with
    other settings than the process's open ones."""
    import sqlalchemy

    literal = str(parquet).replace("'", "''")
    engine = sqlalchemy.create_engine(connection_string(database), **engine_options(threads))
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(
                f"CREATE OR REPLACE VIEW {VIEW} AS SELECT * FROM read_parquet('{literal}')"
            )
    finally:
        engine.dispose()


def connection_string(database: Path) -> str:
    return f"duckdb:///{database}"


def release(*sources: Any) -> None:
    """Close every connection GX's data sources keep to their DuckDB file (the engine of
    test_connection and the execution engine's), so that another process may open it: DuckDB
    lets one process at a time hold a database file, and a long-lived process (a worker, the
    inbox) would otherwise keep it."""
    for source in sources:
        engines = [
            getattr(source, "_engine", None),
            getattr(getattr(source, "_execution_engine", None), "engine", None),
        ]
        for engine in engines:
            if engine is not None:
                engine.dispose()


def sources_of(checkpoint: Any) -> list[Any]:
    """The data sources a checkpoint's validation definitions read."""
    return [d.data.data_asset.datasource for d in checkpoint.validation_definitions]
