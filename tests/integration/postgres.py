"""A real PostgreSQL for the tests that need one (the shared topology's MLflow and Prefect
servers): throw-away databases on the server .ci/run starts (Debian's PostgreSQL 15, role
agencyml_test). Where no server answers, those tests are skipped with the reason; nothing else
in the suite needs it."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SERVER = os.environ.get(
    "AGENCYML_TEST_POSTGRES", "postgresql://agencyml_test:agencyml_test@127.0.0.1:5432/postgres"
)


def unavailable() -> str | None:
    """Why the tests' PostgreSQL cannot be used, or None when it answers."""
    import psycopg2

    try:
        psycopg2.connect(SERVER, connect_timeout=3).close()
    except psycopg2.Error as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return (
            f"no PostgreSQL for the tests at {redacted(SERVER)} ({first}): .ci/run starts it "
            "(pg_ctlcluster 15 main start) and creates the role agencyml_test"
        )
    return None


def redacted(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}:{parts.port}" if parts.password else parts.netloc
    return urlunsplit(parts._replace(netloc=netloc))


def database_url(name: str, driver: str = "postgresql") -> str:
    """The URL of database `name` on the tests' server, for a SQLAlchemy `driver` such as
    postgresql (psycopg2, MLflow) or postgresql+asyncpg (Prefect)."""
    parts = urlsplit(SERVER)
    return urlunsplit(parts._replace(scheme=driver, path=f"/{name}"))


@contextlib.contextmanager
def throwaway_database(prefix: str = "agencyml") -> Iterator[str]:
    """A new empty database, dropped afterwards (with any connection still open to it)."""
    import psycopg2

    name = f"{prefix}_{secrets.token_hex(6)}"
    admin = psycopg2.connect(SERVER, connect_timeout=10)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield name
    finally:
        try:
            drop(admin, name)
        finally:
            admin.close()


def drop(admin: Any, name: str, attempts: int = 30) -> None:
    """DROP DATABASE ... WITH (FORCE). Without pg_signal_backend (`.ci/run` grants it) the
    role may not end an autovacuum worker busy on the database: wait for it to finish."""
    import psycopg2

    for attempt in range(attempts):
        try:
            with admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except psycopg2.errors.InsufficientPrivilege:
            if attempt == attempts - 1:
                raise
            time.sleep(1)
