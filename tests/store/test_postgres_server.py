"""The test PostgreSQL server itself: starts, authenticates by password on TCP, gives each
test its own database (the PostgreSQL store tests build on it)."""

from __future__ import annotations

import pytest

from tests.postgres import PASSWORD, PostgresServer


def test_password_is_required_on_tcp(postgres: PostgresServer) -> None:
    import psycopg

    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(postgres.url(), connect_timeout=5).close()
    with psycopg.connect(postgres.url(), password=PASSWORD, connect_timeout=5) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("aicost",)


def test_each_database_is_new_and_empty(postgres: PostgresServer) -> None:
    import psycopg

    a, b = postgres.database(), postgres.database()
    assert a != b
    with psycopg.connect(postgres.url(a, password=True)) as conn:
        conn.execute("CREATE TABLE t (x int)")
    with psycopg.connect(postgres.url(b, password=True)) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 't'"
        ).fetchone()
        assert rows == (0,)
