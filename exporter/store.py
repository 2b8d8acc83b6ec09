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
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields, replace
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


def _m006_recommendations(db: sqlite_utils.Database) -> None:
    """When each recommendation (batch, downgrade, route, inactive key) was first seen."""
    db["recommendations"].create(
        {
            "id": str,
            "kind": str,
            "provider": str,
            "account": str,
            "project": str,
            "model": str,
            "api_key": str,
            "target": str,
            "first_seen": str,
            "last_seen": str,
        },
        pk="id",
        not_null={"id", "kind", "first_seen", "last_seen"},
    )


# The audit trail of a cost row's conversion to the accounting currency. ``amount`` and
# ``currency`` stay the provider's source amount and currency; these are filled by the
# conversion step (exporter.fx) and recomputed from the source amount whenever needed.
FX_COLUMNS = (
    "fx_amount",  # converted amount (decimal text); NULL when not converted
    "fx_currency",  # the accounting currency it was converted to
    "fx_rate",  # units of fx_currency per 1 unit of currency (decimal text)
    "fx_rate_date",  # date of the ECB rate used (latest publication <= day)
    "fx_source",  # ecb-daily | ecb-hist-90d | ecb-hist | bundled | identity
    "fx_status",  # final | provisional (fallback rate, re-converted later) | error
    "fx_error",  # no_rate | stale when fx_status = error
)


def _m002_fx(db: sqlite_utils.Database) -> None:
    for column in FX_COLUMNS:
        db["costs"].add_column(column, str)
    db["fx_rates"].create(
        {"day": str, "currency": str, "rate": str, "source": str, "fetched_at": str},
        pk=("day", "currency"),
        not_null={"day", "currency", "rate", "source"},
    )
    # Day ranges read from a complete ECB file: a TARGET working day inside one without a
    # rate was a closing day, not a gap to fill.
    db["fx_coverage"].create(
        {"first_day": str, "last_day": str, "source": str, "fetched_at": str},
        pk=("first_day", "last_day"),
    )


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("001_initial", _m001_initial),
    ("002_fx", _m002_fx),
    ("006_recommendations", _m006_recommendations),
]

RECOMMENDATION_FIELDS = ("kind", "provider", "account", "project", "model", "api_key", "target")

CostAnnotator = Callable[[CostRecord], Mapping[str, Any]]


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

    def replace_window(
        self,
        provider: str,
        account: str,
        result: FetchResult,
        annotate: CostAnnotator | None = None,
    ) -> None:
        """Atomically make the stored days ``[result.start, result.end)`` equal ``result``.

        ``annotate`` gives each cost row its FX columns (the conversion of its amount), so
        new rows land converted in the same transaction and are never seen half-written.
        """
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
            _insert(
                conn,
                "costs",
                [_cost_row(c) | dict(annotate(c) if annotate else {}) for c in result.costs],
            )
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

    def note_recommendations(self, seen: list[dict[str, str]], day: date) -> dict[str, date]:
        """Record that these recommendations hold on ``day``; return every first-seen date.

        Each dict has ``id`` and :data:`RECOMMENDATION_FIELDS`. A new id is first seen on
        ``day``; a known one keeps its first-seen date (``last_seen`` moves on).
        """
        rows = [
            (
                r["id"],
                *(r.get(f, "") for f in RECOMMENDATION_FIELDS),
                day.isoformat(),
                day.isoformat(),
            )
            for r in seen
        ]
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO recommendations (id, kind, provider, account, project, model, "
                "api_key, target, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen)",
                rows,
            )
        return self.recommendation_first_seen()

    def recommendation_first_seen(self) -> dict[str, date]:
        """First-seen date of every recommendation ever recorded, by id."""
        with self._lock:
            rows = self.db.execute("SELECT id, first_seen FROM recommendations").fetchall()
        return {rid: date.fromisoformat(first) for rid, first in rows}

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
        """Cost rows as the provider billed them (source amount and currency)."""
        return [_cost_record(r) for r in self._select("costs", start, end)]

    def converted_costs_between(
        self, start: date, end: date, currency: str
    ) -> tuple[list[CostRecord], list[CostRecord]]:
        """(converted, withheld): rows converted to ``currency`` (amount and currency are the
        converted ones), and the source rows without a usable conversion."""
        converted, withheld = [], []
        for r in self._select("costs", start, end):
            record = _cost_record(r)
            if r["fx_currency"] == currency and r["fx_status"] in ("final", "provisional"):
                converted.append(replace(record, amount=Decimal(r["fx_amount"]), currency=currency))
            elif record.currency == currency:  # same currency: no rate needed (identity)
                converted.append(record)
            else:
                withheld.append(record)
        return converted, withheld

    def cost_audit(self, day: date) -> list[dict[str, Any]]:
        """Every stored cost row of ``day`` with its conversion audit trail."""
        return self._select("costs", day, day + timedelta(days=1))

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

    # -- FX: the ECB rate cache and the conversion audit trail of cost rows ------------

    def cost_currencies(self) -> set[str]:
        """Source currencies of the stored cost rows."""
        with self._lock:
            return {r[0] for r in self.db.execute("SELECT DISTINCT currency FROM costs")}

    def first_cost_day(self, other_than: str) -> date | None:
        """The earliest day of a cost row billed in a currency other than ``other_than``."""
        with self._lock:
            row = self.db.execute(
                "SELECT MIN(day) FROM costs WHERE currency != ?", (other_than,)
            ).fetchone()
        return date.fromisoformat(row[0]) if row[0] else None

    def fx_rates(self, currencies: Iterable[str]) -> dict[str, dict[date, tuple[Decimal, str]]]:
        """Cached ECB rates: {currency: {day: (units per EUR, source)}}."""
        wanted = sorted(set(currencies))
        out: dict[str, dict[date, tuple[Decimal, str]]] = {c: {} for c in wanted}
        if not wanted:
            return out
        marks = ", ".join("?" for _ in wanted)
        with self._lock:
            rows = self.db.execute(
                f"SELECT day, currency, rate, source FROM fx_rates WHERE currency IN ({marks})",
                wanted,
            ).fetchall()
        for day, currency, rate, source in rows:
            out[currency][date.fromisoformat(day)] = (Decimal(rate), source)
        return out

    def fx_rate_days(self) -> set[date]:
        """Every day the cache holds a rate for (any currency)."""
        with self._lock:
            rows = self.db.execute("SELECT DISTINCT day FROM fx_rates").fetchall()
        return {date.fromisoformat(r[0]) for r in rows}

    def upsert_fx_rates(
        self, rates: Mapping[date, Mapping[str, Decimal]], source: str, fetched_at: datetime
    ) -> date | None:
        """Cache rates; return the earliest day whose rate was new or changed (else None)."""
        if not rates:
            return None
        first, last = min(rates).isoformat(), max(rates).isoformat()
        with self._transaction() as conn:
            known = {
                (day, currency): Decimal(rate)
                for day, currency, rate in conn.execute(
                    "SELECT day, currency, rate FROM fx_rates WHERE day >= ? AND day <= ?",
                    (first, last),
                )
            }
            changed = [
                (day.isoformat(), currency, format(rate, "f"))
                for day, by_currency in rates.items()
                for currency, rate in by_currency.items()
                if known.get((day.isoformat(), currency)) != rate
            ]
            conn.executemany(
                "INSERT OR REPLACE INTO fx_rates (day, currency, rate, source, fetched_at) "
                "VALUES (?, ?, ?, ?, ?)",
                [(*row, source, fetched_at.isoformat()) for row in changed],
            )
        return min((date.fromisoformat(row[0]) for row in changed), default=None)

    def fx_coverage(self) -> list[tuple[date, date]]:
        with self._lock:
            rows = self.db.execute("SELECT first_day, last_day FROM fx_coverage").fetchall()
        return [(date.fromisoformat(a), date.fromisoformat(b)) for a, b in rows]

    def add_fx_coverage(self, first: date, last: date, source: str, fetched_at: datetime) -> None:
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO fx_coverage (first_day, last_day, source, fetched_at) "
                "VALUES (?, ?, ?, ?)",
                (first.isoformat(), last.isoformat(), source, fetched_at.isoformat()),
            )

    def reconvert_costs(
        self, currency: str, since: date | None, convert: CostAnnotator
    ) -> list[tuple[CostRecord, Mapping[str, Any]]]:
        """Recompute the FX columns of every row not finally converted to ``currency`` (and of
        every row from ``since`` on) from its source amount, in one transaction, so a poll
        writing the same rows meanwhile cannot interleave. Returns (row, new columns)."""
        out = []
        with self._transaction() as conn:
            cursor = conn.execute(
                "SELECT rowid, * FROM costs WHERE fx_currency IS NULL OR fx_currency != ? "
                "OR fx_status IS NOT 'final' OR day >= ?",
                (currency, since.isoformat() if since else "9999-12-31"),
            )
            names = [d[0] for d in cursor.description]
            updates = []
            for values in cursor.fetchall():
                row = dict(zip(names, values, strict=True))
                record = _cost_record(row)
                columns = {c: None for c in FX_COLUMNS} | dict(convert(record))
                out.append((record, columns))
                updates.append((*(columns[c] for c in FX_COLUMNS), row["rowid"]))
            assignments = ", ".join(f"{c} = ?" for c in FX_COLUMNS)
            conn.executemany(f"UPDATE costs SET {assignments} WHERE rowid = ?", updates)
        return out

    def fx_unconverted(self, currency: str) -> dict[tuple[str, str], int]:
        """{(source currency, reason): rows} of cost rows without a usable conversion to
        ``currency``; reason is the row's error (no_rate, stale) or pending (not yet run)."""
        with self._lock:
            rows = self.db.execute(
                "SELECT currency, CASE WHEN fx_currency IS ? THEN fx_error ELSE 'pending' END, "
                "COUNT(*) FROM costs WHERE fx_currency IS NOT ? OR fx_status = 'error' "
                "GROUP BY 1, 2",
                (currency, currency),
            ).fetchall()
        return {(c, reason): n for c, reason, n in rows}

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


_COST_FIELDS = tuple(f.name for f in fields(CostRecord))


def _cost_record(row: Mapping[str, Any]) -> CostRecord:
    values = {k: row[k] for k in _COST_FIELDS}
    return CostRecord(
        **{**values, "day": date.fromisoformat(row["day"]), "amount": Decimal(row["amount"])}
    )


def _cost_row(c: CostRecord) -> dict[str, Any]:
    row = _plain(c)
    row["amount"] = format(c.amount, "f")
    return row


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def retention_cutoff(today: date, retention_days: int) -> date:
    return today - timedelta(days=retention_days)
