"""The tests' PostgreSQL: a throw-away database is a real, empty, writable database, and it is
gone after the test."""

from __future__ import annotations

from contextlib import closing

import postgres
import psycopg2


def query(url: str, sql: str, *args: object) -> tuple:
    with closing(psycopg2.connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute(sql, args or None)
        found = cursor.fetchone() if cursor.description else None
        connection.commit()
        return found


def test_a_throwaway_database_is_real_and_dropped_afterwards(postgres_database) -> None:
    with postgres.throwaway_database("fixture") as name:
        url = postgres.database_url(name)
        query(url, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2)")
        assert query(url, "SELECT sum(x) FROM t") == (3,)

    gone = query(postgres.SERVER, "SELECT count(*) FROM pg_database WHERE datname = %s", name)
    assert gone == (0,)


def test_the_factory_fixture_makes_distinct_empty_databases(postgres_database) -> None:
    first, second = postgres_database("one"), postgres_database("two")

    assert first != second and first.startswith("one_") and second.startswith("two_")
    tables = "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    assert query(postgres.database_url(second), tables) == (0,)
