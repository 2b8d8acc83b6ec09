"""The SQLite history: the exporter's source of truth.

* Schema changes are numbered migrations recorded in ``_migrations``; applying them again
  is a no-op.
* WAL journal, one connection per :class:`Store`, guarded by a lock (the scheduler writes,
  the snapshot builder reads).
* :meth:`Store.replace_window` writes one poll in **one transaction**: every usage and cost
  row of the polled days for that account is replaced by what the provider returned. A
  re-polled bucket therefore overwrites (values may go up or down, rows may vanish), and
  overlapping polls never double count. A failed poll never reaches the store.
* Money is stored as exact decimal text, never as a float.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlite_utils

from exporter.records import (
    ApiKeyRecord,
    CostRecord,
    FetchResult,
    ProjectRecord,
    UsageRecord,
)

USAGE_KEY = (
    "provider", "account", "day", "project", "model", "source",
    "api_key", "batch", "service_tier", "unit",
)  # fmt: skip
COST_KEY = (
    "provider", "account", "day", "project", "line_item", "model", "api_key", "service_tier",
)  # fmt: skip


def _m001_initial(db: sqlite_utils.Database) -> None:
    db["usage"].create(
        {
            "provider": str,
            "account": str,
            "day": str,
            "project": str,
            "model": str,
            "source": str,
            "api_key": str,
            "batch": str,
            "service_tier": str,
            "unit": str,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_write_tokens": int,
            "requests": int,
            "units": int,
        },
        pk=USAGE_KEY,
        not_null=set(USAGE_KEY),
    )
    db["costs"].create(
        {
            "provider": str,
            "account": str,
            "day": str,
            "project": str,
            "line_item": str,
            "model": str,
            "api_key": str,
            "service_tier": str,
            "cost_type": str,
            "token_type": str,
            "amount": str,
            "currency": str,
            "attribution": str,
        },
        pk=COST_KEY,
        not_null=set(COST_KEY) | {"amount", "currency", "cost_type"},
    )
    db["usage"].create_index(["day"])
    db["costs"].create_index(["day"])
    db["projects"].create(
        {
            "provider": str,
            "account": str,
            "project": str,
            "name": str,
            "status": str,
            "created_at": str,
            "archived_at": str,
            "updated_at": str,
        },
        pk=("provider", "account", "project"),
    )
    db["api_keys"].create(
        {
            "provider": str,
            "account": str,
            "key_id": str,
            "project": str,
            "name": str,
            "status": str,
            "owner_type": str,
            "created_at": str,
            "last_used_at": str,
            "updated_at": str,
        },
        pk=("provider", "account", "key_id"),
    )
    db["provider_state"].create(
        {
            "provider": str,
            "account": str,
            "last_success": float,
            "data_complete_through": float,
            "backfilled_from": str,
        },
        pk=("provider", "account"),
    )


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("001_initial", _m001_initial),
]


class Store:
    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        """``read_only``: open an existing history without creating, migrating or writing
        it (``check-config`` inspects the store of a running exporter this way)."""
        self.path = str(path)
        self._lock = threading.RLock()
        if read_only:
            uri = f"{Path(self.path).resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
            self.db = sqlite_utils.Database(conn)
            return
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self.db = sqlite_utils.Database(conn)
        with self._lock:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self.migrate()

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    # -- schema -------------------------------------------------------------------------

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied (empty when up to date)."""
        with self._lock:
            table = self.db["_migrations"]
            if not table.exists():
                self.db["_migrations"].create({"name": str, "applied_at": str}, pk="name")
            done = {row["name"] for row in self.db["_migrations"].rows}
            applied = []
            for name, step in MIGRATIONS:
                if name in done:
                    continue
                with self._transaction():
                    step(self.db)
                    self.db.conn.execute(
                        "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                        (name, datetime.now(UTC).isoformat()),
                    )
                applied.append(name)
            return applied

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: all of it lands, or (on error or SIGKILL) none of it."""
        with self._lock, self.db.atomic():
            yield self.db.conn

    # -- writes -------------------------------------------------------------------------

    def replace_window(self, provider: str, account: str, result: FetchResult) -> None:
        """Atomically make the stored days ``[result.start, result.end)`` equal ``result``."""
        for row in (*result.usage, *result.costs):
            if (row.provider, row.account) != (provider, account):
                raise ValueError("a record belongs to another provider account")
            if not result.start <= row.day < result.end:
                raise ValueError(f"a record for {row.day} lies outside the polled window")
        start, end = result.start.isoformat(), result.end.isoformat()
        now = datetime.now(UTC).isoformat()
        with self._transaction() as conn:
            for table in ("usage", "costs"):
                conn.execute(
                    f"DELETE FROM {table} WHERE provider = ? AND account = ? "
                    "AND day >= ? AND day < ?",
                    (provider, account, start, end),
                )
            _insert(conn, "usage", [_usage_row(u) for u in result.usage])
            _insert(conn, "costs", [_cost_row(c) for c in result.costs])
            _insert(
                conn,
                "projects",
                [_plain(p) | {"updated_at": now} for p in result.projects],
                replace=True,
            )
            _insert(
                conn,
                "api_keys",
                [_plain(k) | {"updated_at": now} for k in result.api_keys],
                replace=True,
            )

    def record_success(
        self,
        provider: str,
        account: str,
        finished: datetime,
        complete_through: datetime,
        backfilled_from: date | None = None,
    ) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO provider_state (provider, account, last_success, "
                "data_complete_through, backfilled_from) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(provider, account) DO UPDATE SET "
                "last_success = excluded.last_success, "
                "data_complete_through = excluded.data_complete_through, "
                "backfilled_from = COALESCE(provider_state.backfilled_from, "
                "excluded.backfilled_from)",
                (
                    provider,
                    account,
                    finished.timestamp(),
                    complete_through.timestamp(),
                    backfilled_from.isoformat() if backfilled_from else None,
                ),
            )

    def prune(self, before: date) -> int:
        """Retention: delete usage and cost rows of days before ``before``."""
        with self._transaction() as conn:
            n = conn.execute("DELETE FROM usage WHERE day < ?", (before.isoformat(),)).rowcount
            n += conn.execute("DELETE FROM costs WHERE day < ?", (before.isoformat(),)).rowcount
        return n

    # -- reads --------------------------------------------------------------------------

    def provider_state(self, provider: str, account: str) -> dict[str, Any] | None:
        with self._lock:
            rows = list(
                self.db.query(
                    "SELECT * FROM provider_state WHERE provider = ? AND account = ?",
                    (provider, account),
                )
            )
        return rows[0] if rows else None

    def usage_between(self, start: date, end: date) -> list[UsageRecord]:
        rows = self._select("usage", start, end)
        return [UsageRecord(**{**r, "day": date.fromisoformat(r["day"])}) for r in rows]

    def costs_between(self, start: date, end: date) -> list[CostRecord]:
        rows = self._select("costs", start, end)
        return [
            CostRecord(**{**r, "day": date.fromisoformat(r["day"]), "amount": Decimal(r["amount"])})
            for r in rows
        ]

    def projects(self) -> list[ProjectRecord]:
        with self._lock:
            rows = list(self.db.query("SELECT * FROM projects ORDER BY provider, account, project"))
        return [
            ProjectRecord(
                **{
                    k: v
                    for k, v in r.items()
                    if k not in ("updated_at", "created_at", "archived_at")
                },
                created_at=_dt(r["created_at"]),
                archived_at=_dt(r["archived_at"]),
            )
            for r in rows
        ]

    def api_keys(self) -> list[ApiKeyRecord]:
        with self._lock:
            rows = list(self.db.query("SELECT * FROM api_keys ORDER BY provider, account, key_id"))
        return [
            ApiKeyRecord(
                **{
                    k: v
                    for k, v in r.items()
                    if k not in ("updated_at", "created_at", "last_used_at")
                },
                created_at=_dt(r["created_at"]),
                last_used_at=_dt(r["last_used_at"]),
            )
            for r in rows
        ]

    def days_with_data(self, provider: str, account: str) -> int:
        with self._lock:
            row = self.db.execute(
                "SELECT COUNT(DISTINCT day) FROM costs WHERE provider = ? AND account = ?",
                (provider, account),
            ).fetchone()
        return int(row[0])

    def streams_first_seen(self, since: date) -> dict[tuple[str, str, str, str], date]:
        """Streams (provider, account, project, model) whose first day with usage or cost
        data in the store is on or after ``since``, with that day."""
        sql = (
            "SELECT provider, account, project, model, MIN(day) AS first FROM ("
            "SELECT provider, account, project, model, day FROM costs UNION ALL "
            "SELECT provider, account, project, model, day FROM usage) "
            "GROUP BY provider, account, project, model HAVING MIN(day) >= ?"
        )
        with self._lock:
            rows = self.db.execute(sql, (since.isoformat(),)).fetchall()
        return {(p, a, proj, m): date.fromisoformat(first) for p, a, proj, m, first in rows}

    def _select(self, table: str, start: date, end: date) -> list[dict[str, Any]]:
        with self._lock:
            return list(
                self.db.query(
                    f"SELECT * FROM {table} WHERE day >= ? AND day < ? ORDER BY day",
                    (start.isoformat(), end.isoformat()),
                )
            )


def _insert(
    conn: sqlite3.Connection, table: str, rows: list[dict[str, Any]], *, replace: bool = False
) -> None:
    if not rows:
        return
    columns = list(rows[0])
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    sql = f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    conn.executemany(sql, [tuple(r[c] for c in columns) for r in rows])


def _plain(record: Any) -> dict[str, Any]:
    out = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        out[f.name] = value
    return out


def _usage_row(u: UsageRecord) -> dict[str, Any]:
    return _plain(u)


def _cost_row(c: CostRecord) -> dict[str, Any]:
    row = _plain(c)
    row["amount"] = format(c.amount, "f")
    return row


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def retention_cutoff(today: date, retention_days: int) -> date:
    return today - timedelta(days=retention_days)
