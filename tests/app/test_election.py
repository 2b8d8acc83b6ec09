"""The poller election (exporter.election) against a real PostgreSQL server: one session
wins an account's advisory lock, the other loses; closing or killing the winner frees it;
accounts do not share a lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from exporter.election import (
    MAINTENANCE,
    AdvisoryLocks,
    AlwaysLeader,
    LockConnection,
    job_key,
    poll_job,
)
from tests.postgres import PASSWORD, PostgresServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def connect(postgres: PostgresServer) -> Callable[[], LockConnection]:
    import psycopg

    url = postgres.url(postgres.database())

    def open_() -> LockConnection:
        conn: LockConnection = psycopg.connect(url, password=PASSWORD, autocommit=True)
        return conn

    return open_


@pytest.fixture
def pair(connect: Callable[[], LockConnection]) -> Iterator[tuple[AdvisoryLocks, AdvisoryLocks]]:
    a, b = AdvisoryLocks(connect), AdvisoryLocks(connect)
    yield a, b
    a.close()
    b.close()


def lock_holders(postgres: PostgresServer, key: int) -> int:
    import psycopg

    with psycopg.connect(postgres.url(password=True)) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND ((classid::bigint << 32) | objid::bigint) = %s",
            (key,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_one_session_wins_the_other_loses(
    pair: tuple[AdvisoryLocks, AdvisoryLocks], postgres: PostgresServer
) -> None:
    a, b = pair
    job = poll_job("openai", "main")
    assert a.holds(job)
    assert not b.holds(job)
    assert a.holds(job)  # still held, and not taken twice
    assert a.leader(job) and not b.leader(job)
    assert lock_holders(postgres, job_key(job)) == 1


def test_closing_the_winner_frees_the_lock(pair: tuple[AdvisoryLocks, AdvisoryLocks]) -> None:
    a, b = pair
    job = poll_job("openai", "main")
    assert a.holds(job) and not b.holds(job)
    a.close()  # the server ends the session (and frees its locks) just after
    assert wait_until(lambda: b.holds(job))
    assert not a.holds(job)  # the old winner reconnects and now loses
    assert not a.leader(job)


def test_a_terminated_session_loses_its_locks_and_notices(
    pair: tuple[AdvisoryLocks, AdvisoryLocks], postgres: PostgresServer
) -> None:
    """The server ends the winner's session (what a dropped network connection does): the
    winner forgets its lock at the next try instead of polling on without it."""
    a, b = pair
    job = poll_job("anthropic", "team-a")
    assert a.holds(job)
    conn: Any = a._conn  # the dedicated lock connection
    pid = conn.info.backend_pid
    postgres.execute(f"SELECT pg_terminate_backend({int(pid)})")
    assert wait_until(lambda: b.holds(job))
    assert not a.holds(job)
    assert not a.leader(job)


def test_sigkill_of_the_holder_frees_the_lock(postgres: PostgresServer) -> None:
    """A SIGKILLed holder process: the kernel closes its socket, PostgreSQL ends the session
    and the lock is free for the standby's next try."""
    database = postgres.database()
    job = poll_job("openai", "main")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, psycopg\n"
            "from exporter.election import AdvisoryLocks\n"
            "url, job = sys.argv[1], sys.argv[2]\n"
            "locks = AdvisoryLocks(lambda: psycopg.connect(url, password=sys.argv[3], "
            "autocommit=True))\n"
            "assert locks.holds(job)\n"
            "print('held', flush=True)\n"
            "time.sleep(600)\n",
            postgres.url(database),
            job,
            PASSWORD,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    import psycopg

    standby = AdvisoryLocks(
        lambda: psycopg.connect(postgres.url(database), password=PASSWORD, autocommit=True)
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert not standby.holds(job)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        assert wait_until(lambda: standby.holds(job)), "the lock was not freed by SIGKILL"
    finally:
        standby.close()
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()


def test_accounts_and_maintenance_have_their_own_locks(
    pair: tuple[AdvisoryLocks, AdvisoryLocks],
) -> None:
    a, b = pair
    assert a.holds(poll_job("openai", "org-a"))
    assert b.holds(poll_job("openai", "org-b"))  # another account: not blocked by a
    assert b.holds(poll_job("anthropic", "org-a"))  # same name, other provider
    assert a.holds(MAINTENANCE)
    assert not b.holds(MAINTENANCE)
    assert not a.holds(poll_job("openai", "org-b"))


def test_keys_are_stable_64_bit_and_distinct() -> None:
    """The same key in every process (not Python's salted ``hash``), within PostgreSQL's
    bigint, and different for different jobs."""
    jobs = [poll_job(p, f"acct-{i}") for p in ("openai", "anthropic", "xai") for i in range(300)]
    keys = [job_key(j) for j in jobs] + [job_key(MAINTENANCE)]
    assert len(set(keys)) == len(keys)
    assert all(-(2**63) <= k < 2**63 for k in keys)
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            "from exporter.election import job_key, poll_job; "
            "print(job_key(poll_job('openai', 'acct-7')))",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(other.stdout) == job_key(poll_job("openai", "acct-7"))


def test_an_unreachable_database_runs_nothing_here() -> None:
    def refuse() -> LockConnection:
        raise OSError("connection refused")

    locks = AdvisoryLocks(refuse)
    assert not locks.holds(poll_job("openai", "main"))
    assert not locks.leader(poll_job("openai", "main"))
    locks.close()


def test_sqlite_mode_is_always_leader() -> None:
    election = AlwaysLeader()
    assert election.holds(poll_job("openai", "main")) and election.leader(MAINTENANCE)


def test_the_composition_roots_election_locks_on_connections_the_store_opens(
    postgres: PostgresServer,
) -> None:
    """open_election on a PostgreSQL store: each election its own session (store.connect),
    authenticated with the configured password."""
    from exporter.app import open_election, open_store
    from exporter.config import validate

    url = postgres.url(postgres.database())
    config = validate({"storage": {"url": url, "password_env": "AICOST_TEST_PG_PW"}})
    store = open_store(config, env={"AICOST_TEST_PG_PW": PASSWORD})
    first, second = open_election(config, store), open_election(config, store)
    job = poll_job("openai", "main")
    try:
        assert isinstance(first, AdvisoryLocks)
        assert first.holds(job) and not second.holds(job)
        first.close()
        assert wait_until(lambda: second.holds(job))
    finally:
        first.close()
        second.close()
        store.close()
