"""The PostgreSQL store: concurrent writers, and errors a user can act on."""

from __future__ import annotations

import sys
import threading
import time
from datetime import date, timedelta
from decimal import Decimal

import pytest

from exporter.records import CostRecord, FetchResult, UsageRecord
from exporter.store import StorageError, Store
from tests.postgres import PASSWORD, PostgresServer

D = date(2026, 3, 1)
END = D + timedelta(days=3)


def result(n: int) -> FetchResult:
    """One poll's answer; ``n`` makes its amounts (and some labels) its own."""
    costs = [
        CostRecord("openai", "acct", D + timedelta(days=d), f"p{p}", "gpt-4o", "tokens",
                   Decimal(n) + Decimal(p) / 1000, line_item=f"line {n % 3}")
        for d in range(3) for p in range(20)
    ]  # fmt: skip
    usage = [
        UsageRecord("openai", "acct", D + timedelta(days=d), f"p{p}", "gpt-4o", "completions",
                    api_key=f"key-{n}", requests=n)
        for d in range(3) for p in range(20)
    ]  # fmt: skip
    return FetchResult(D, END, usage=usage, costs=costs)


def test_two_writers_of_one_account_never_interleave(postgres: PostgresServer) -> None:
    """Two replicas (two connections) replacing the same account's window at once: every
    write lands whole, so the history always equals exactly one poll's answer."""
    url = postgres.url(postgres.database())
    stores = [Store(url, password=PASSWORD) for _ in range(2)]
    errors: list[BaseException] = []

    def writer(store: Store, first: int) -> None:
        try:
            for n in range(first, first + 10):
                store.replace_window("openai", "acct", result(n))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s, i * 100)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    costs = stores[0].costs_between(D, END)
    (n,) = {int(c.amount) for c in costs}  # one poll's rows, never a mix of two
    assert sorted(costs, key=repr) == sorted(result(n).costs, key=repr)
    assert len(stores[1].usage_between(D, END)) == len(result(n).usage)
    assert stores[1].day_versions(D, END) == {("openai", "acct", D + timedelta(days=d)): 20
                                              for d in range(3)}  # fmt: skip
    assert stores[0].stream_count() == 20
    for s in stores:
        s.close()


def test_postgres_errors_name_the_cause_and_never_the_password(postgres: PostgresServer) -> None:
    db = postgres.database()
    with pytest.raises(StorageError, match="authentication failed") as auth:
        Store(postgres.url(db), password="wrong-password-xyz")
    assert "wrong-password-xyz" not in str(auth.value)
    with pytest.raises(StorageError, match="create the database"):
        Store(postgres.url("no_such_db"), password=PASSWORD)
    with pytest.raises(StorageError, match="cannot reach the PostgreSQL server"):
        Store("postgresql://aicost@127.0.0.1:1/x", password=PASSWORD)
    with pytest.raises(StorageError, match="never inline") as inline:
        Store(postgres.url(db, password=True))
    assert PASSWORD not in str(inline.value)


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StorageError, match=r"ai-cost-exporter\[postgres\]"):
        Store("postgresql://aicost@127.0.0.1:5432/history", password="x")


def test_a_read_only_postgres_store_reads_but_cannot_write(postgres: PostgresServer) -> None:
    url = postgres.url(postgres.database())
    writer = Store(url, password=PASSWORD)
    writer.replace_window("openai", "acct", result(1))
    reader = Store(url, password=PASSWORD, read_only=True)
    assert reader.costs_between(D, END) == writer.costs_between(D, END)
    with pytest.raises(Exception, match="read-only"):
        reader.replace_window("openai", "acct", result(2))
    writer.close()
    reader.close()


def test_a_further_connection_holds_a_session_advisory_lock(postgres: PostgresServer) -> None:
    """What a replica electing the poller of an account needs: a lock another connection
    cannot take while it is held, released when its connection closes."""
    url = postgres.url(postgres.database())
    store = Store(url, password=PASSWORD)
    assert store.dialect.name == "postgresql"
    first, second = store.connect(), store.connect()
    take = "SELECT pg_try_advisory_lock(?)"
    assert first.execute(take, (17,)).fetchone()[0] is True
    assert second.execute(take, (17,)).fetchone()[0] is False
    first.close()  # the server releases the lock when that session ends (asynchronously)
    deadline = time.monotonic() + 30
    while not second.execute(take, (17,)).fetchone()[0]:
        assert time.monotonic() < deadline, "the lock outlived its connection"
        time.sleep(0.05)
    second.close()
    store.close()
