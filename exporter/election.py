"""One poller per account across replicas: PostgreSQL session-level advisory locks.

With a PostgreSQL history several exporter processes (replicas, or one exporter per team)
share one database. Each account's poll runs only in the process that holds that account's
advisory lock; the others skip the provider calls and re-read the shared history.

* The key of a job is a stable signed 64-bit integer: the first 8 bytes of
  ``sha256("ai-cost-exporter:<job>")`` (``job`` = ``poll:<provider>:<account>`` or
  ``maintenance``), so every process derives the same key from the same account and two
  accounts collide only with probability 2^-64.
* The locks are taken with ``pg_try_advisory_lock`` (session level, never waits) on a
  **dedicated** autocommit connection. A lock is held as long as that connection lives:
  a stopped, crashed or SIGKILLed holder's connection closes and PostgreSQL frees its
  locks at once; the standby's next try (at its next scheduled poll) takes over.
* Each :meth:`AdvisoryLocks.holds` first checks the connection; a broken one means every
  lock it held is gone (the server ended the session), so they are forgotten, a new
  connection is opened and the locks are tried again.

SQLite mode has one process per file: :class:`AlwaysLeader` holds every key.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAINTENANCE = "maintenance"  # retention: one replica prunes


def job_key(job: str) -> int:
    """The advisory-lock key of ``job``: a signed 64-bit integer, the same in every process."""
    digest = hashlib.sha256(f"ai-cost-exporter:{job}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def poll_job(provider: str, account: str) -> str:
    return f"poll:{provider}:{account}"


class LockConnection(Protocol):
    """What the election needs of a (psycopg, autocommit) connection."""

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...

    def close(self) -> None: ...


class Election(Protocol):
    def holds(self, job: str) -> bool:
        """True if this process runs ``job`` now (taking its lock when it is free)."""
        ...

    def leader(self, job: str) -> bool:
        """True if this process held ``job`` at its last :meth:`holds` (no I/O)."""
        ...

    def close(self) -> None: ...


class AlwaysLeader:
    """One process per history (SQLite): every job runs here, no lock."""

    def holds(self, job: str) -> bool:
        return True

    def leader(self, job: str) -> bool:
        return True

    def close(self) -> None:
        pass


class AdvisoryLocks:
    """Session-level advisory locks on one dedicated connection (see the module doc)."""

    def __init__(self, connect: Callable[[], LockConnection]) -> None:
        """``connect``: opens a new autocommit connection to the shared database."""
        self._connect = connect
        self._conn: LockConnection | None = None
        self._held: set[str] = set()
        self._lock = threading.Lock()

    def _connection(self) -> LockConnection:
        """The live connection; after a failure the locks it held are forgotten."""
        if self._conn is not None:
            try:
                self._conn.execute("SELECT 1")
                return self._conn
            except Exception as exc:  # the session is gone, and with it every lock
                if self._held:
                    log.warning(
                        "election: lost the lock connection (%s); released %s",
                        type(exc).__name__,
                        ", ".join(sorted(self._held)),
                    )
                self._drop()
        self._conn = self._connect()
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._held.clear()
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken
                pass

    def holds(self, job: str) -> bool:
        with self._lock:
            try:
                conn = self._connection()
                if job in self._held:
                    return True
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (job_key(job),)).fetchone()
            except Exception as exc:  # unreachable database: nothing runs here this time
                log.warning("election: cannot reach the database to lock %s: %s", job, exc)
                self._drop()
                return False
            if row is not None and row[0]:
                self._held.add(job)
                log.info("election: this replica now runs %s", job)
                return True
            return False

    def leader(self, job: str) -> bool:
        return job in self._held

    def close(self) -> None:
        """Close the connection: every lock is released for the other replicas."""
        with self._lock:
            self._drop()
