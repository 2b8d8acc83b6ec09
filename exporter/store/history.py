"""The SQLite history: the exporter's source of truth.

* Schema changes are numbered migrations recorded in ``_migrations``; applying them again
  is a no-op.
* WAL journal, one connection per :class:`Store`, guarded by a lock (the pollers write,
  the snapshot builder reads).
* :meth:`Store.replace_window` writes one poll in **one transaction**: every usage and cost
  row of the polled days for that account is replaced by what the provider returned. A
  re-polled bucket therefore overwrites (values may go up or down, rows may vanish), and
  overlapping polls never double count. A failed poll never reaches the store.
* Money is stored as exact decimal text, never as a float.
* Billing state (prepaid balance, spending limit, invoice preview) keeps only the latest
  value per (provider, account, kind); each successful poll replaces the account's set.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from exporter.records import (
    ApiKeyRecord,
    BillingRecord,
    CostRecord,
    FetchResult,
    ProjectRecord,
    UsageRecord,
)
from exporter.store.rows import (
    CostAnnotator,
    billing_row,
    cost_record,
    cost_row,
    insert_rows,
    parse_datetime,
    plain_row,
    usage_row,
)
from exporter.store.streams import StreamIndex


class History(StreamIndex):
    """Usage, cost, project, key and billing rows, and the poll state of each account."""

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
        rows: list[UsageRecord | CostRecord] = [*result.usage, *result.costs]
        for row in rows:
            if (row.provider, row.account) != (provider, account):
                raise ValueError("a record belongs to another provider account")
            if not result.start <= row.day < result.end:
                raise ValueError(f"a record for {row.day} lies outside the polled window")
        if any((b.provider, b.account) != (provider, account) for b in result.billing):
            raise ValueError("a billing record belongs to another provider account")
        start, end = result.start.isoformat(), result.end.isoformat()
        now = datetime.now(UTC).isoformat()
        with self._transaction() as conn:
            for table in ("usage", "costs"):
                conn.execute(
                    f"DELETE FROM {table} WHERE provider = ? AND account = ? "
                    "AND day >= ? AND day < ?",
                    (provider, account, start, end),
                )
            insert_rows(conn, "usage", [usage_row(u) for u in result.usage])
            insert_rows(
                conn,
                "costs",
                [cost_row(c) | dict(annotate(c) if annotate else {}) for c in result.costs],
            )
            insert_rows(
                conn,
                "projects",
                [plain_row(p) | {"updated_at": now} for p in result.projects],
                replace=True,
            )
            insert_rows(
                conn,
                "api_keys",
                [plain_row(k) | {"updated_at": now} for k in result.api_keys],
                replace=True,
            )
            conn.execute(
                "DELETE FROM billing_state WHERE provider = ? AND account = ?",
                (provider, account),
            )
            insert_rows(conn, "billing_state", [billing_row(b, now) for b in result.billing])
            self._index_window(
                conn, provider, account, result.start, result.end, result.usage, result.costs
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
            self._index_prune(conn, before)
        if n:
            self._reclaim()
        return n

    def provider_state(self, provider: str, account: str) -> dict[str, Any] | None:
        with self._lock:
            rows = list(
                self.db.query(
                    "SELECT * FROM provider_state WHERE provider = ? AND account = ?",
                    (provider, account),
                )
            )
        return rows[0] if rows else None

    def usage_between(
        self, start: date, end: date, account: tuple[str, str] | None = None
    ) -> list[UsageRecord]:
        """Usage rows of the days ``[start, end)`` (of one (provider, account) if given)."""
        return [
            UsageRecord(p, a, date.fromisoformat(d), *rest)
            for p, a, d, *rest in self._tuples(_USAGE_COLUMNS, "usage", start, end, account)
        ]

    def costs_between(self, start: date, end: date) -> list[CostRecord]:
        """Cost rows as the provider billed them (source amount and currency)."""
        return [cost_record(r) for r in self._select("costs", start, end)]

    def converted_costs_between(
        self, start: date, end: date, currency: str, account: tuple[str, str] | None = None
    ) -> tuple[list[CostRecord], list[CostRecord]]:
        """(converted, withheld): rows converted to ``currency`` (amount and currency are the
        converted ones), and the source rows without a usable conversion."""
        converted: list[CostRecord] = []
        withheld: list[CostRecord] = []
        days: dict[str, date] = {}
        for row in self._tuples(_COST_COLUMNS, "costs", start, end, account):
            p, a, d, proj, model, cost_type, amount, source, *rest, fx_amount, fx_cur, status = row
            day = days.get(d) or days.setdefault(d, date.fromisoformat(d))
            if fx_cur == currency and status in ("final", "provisional"):
                converted.append(
                    CostRecord(
                        p, a, day, proj, model, cost_type, Decimal(fx_amount), currency, *rest
                    )
                )
            else:
                record = CostRecord(
                    p, a, day, proj, model, cost_type, Decimal(amount), source, *rest
                )
                # same currency: no rate needed (identity)
                (converted if source == currency else withheld).append(record)
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
                created_at=parse_datetime(r["created_at"]),
                archived_at=parse_datetime(r["archived_at"]),
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
                created_at=parse_datetime(r["created_at"]),
                last_used_at=parse_datetime(r["last_used_at"]),
            )
            for r in rows
        ]

    def billing(self) -> list[BillingRecord]:
        """The latest billing-state value of every account and kind."""
        with self._lock:
            rows = list(
                self.db.query("SELECT * FROM billing_state ORDER BY provider, account, kind")
            )
        return [
            BillingRecord(
                **{k: v for k, v in r.items() if k not in ("amount", "observed_at")},
                amount=Decimal(r["amount"]),
                observed_at=parse_datetime(r["observed_at"]),
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

    def _tuples(
        self,
        columns: str,
        table: str,
        start: date,
        end: date,
        account: tuple[str, str] | None,
    ) -> list[tuple[Any, ...]]:
        """Plain tuples (no dict per row): the hot read path of a refresh."""
        where, params = "day >= ? AND day < ?", [start.isoformat(), end.isoformat()]
        if account is not None:
            where = f"provider = ? AND account = ? AND {where}"
            params = [*account, *params]
        with self._lock:
            return self.db.execute(
                f"SELECT {columns} FROM {table} WHERE {where} ORDER BY day, rowid", params
            ).fetchall()

    def first_day(self) -> date | None:
        """The oldest day with a stored cost or usage row (None: an empty history)."""
        with self._lock:
            row = self.db.execute(
                "SELECT MIN(day) FROM (SELECT MIN(day) AS day FROM costs "
                "UNION ALL SELECT MIN(day) FROM usage)"
            ).fetchone()
        return date.fromisoformat(row[0]) if row and row[0] else None

    def _select(self, table: str, start: date, end: date) -> list[dict[str, Any]]:
        with self._lock:
            return list(
                self.db.query(
                    f"SELECT * FROM {table} WHERE day >= ? AND day < ? ORDER BY day",
                    (start.isoformat(), end.isoformat()),
                )
            )


# Column orders matching the record constructors (positional, after provider/account/day).
_USAGE_COLUMNS = ", ".join(f.name for f in fields(UsageRecord))
_COST_COLUMNS = ", ".join(
    [f.name for f in fields(CostRecord)] + ["fx_amount", "fx_currency", "fx_status"]
)


def retention_cutoff(today: date, retention_days: int) -> date:
    return today - timedelta(days=retention_days)
