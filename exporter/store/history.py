"""The SQLite history: the exporter's source of truth.

* Schema changes are numbered migrations recorded in ``_migrations``; applying them again
  is a no-op.
* WAL journal, one connection per :class:`Store`, guarded by a lock (the pollers write,
  the snapshot builder reads).
* :meth:`Store.replace_window` writes one poll in **one transaction**: every usage and cost
  row of the polled days for that account is replaced by what the provider returned. A
  re-polled bucket therefore overwrites (values may go up or down, rows may vanish), and
  overlapping polls never double count. A failed poll never reaches the store.
* Money is stored as exact integer pico-units (see :mod:`exporter.store.compact`), never
  as a float.
* Billing state (prepaid balance, spending limit, invoice preview) keeps only the latest
  value per (provider, account, kind); each successful poll replaces the account's set.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from exporter.store.compact import (
    COST_KEY_LABELS,
    COST_LABELS,
    COST_PK,
    COST_ROW_COLUMNS,
    USAGE_LABELS,
    USAGE_PK,
    USAGE_ROW_COLUMNS,
    day_number,
    day_of,
    decode_money,
    encode_money,
    fx_columns,
)
from exporter.store.dialect import Connection
from exporter.store.rows import (
    CostAnnotator,
    billing_row,
    cost_row,
    insert_rows,
    parse_datetime,
    plain_row,
)
from exporter.store.streams import ACCOUNT_STREAMS, Days, StreamIndex


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
        now = datetime.now(UTC).isoformat()
        where, params = account_days_where(result.start, result.end, (provider, account))
        with self._transaction() as conn:
            for table in ("usage_rows", "cost_rows"):
                conn.execute(f"DELETE FROM {table} WHERE {where}", params)
            ids = self._index_window(
                conn, provider, account, result.start, result.end, result.usage, result.costs
            )
            conn.executemany(
                f"INSERT INTO usage_rows ({', '.join(USAGE_ROW_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in USAGE_ROW_COLUMNS)})",
                self._usage_rows(conn, ids, result.usage),
            )
            conn.executemany(
                f"INSERT INTO cost_rows ({', '.join(COST_ROW_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in COST_ROW_COLUMNS)})",
                self._cost_rows(conn, ids, result.costs, annotate),
            )
            insert_rows(
                conn,
                "projects",
                [plain_row(p) | {"updated_at": now} for p in result.projects],
                key=("provider", "account", "project"),
            )
            insert_rows(
                conn,
                "api_keys",
                [plain_row(k) | {"updated_at": now} for k in result.api_keys],
                key=("provider", "account", "key_id"),
            )
            conn.execute(
                "DELETE FROM billing_state WHERE provider = ? AND account = ?",
                (provider, account),
            )
            insert_rows(conn, "billing_state", [billing_row(b, now) for b in result.billing])

    def _usage_rows(
        self, conn: Connection, ids: dict[tuple[str, str], int], rows: list[UsageRecord]
    ) -> list[tuple[Any, ...]]:
        names = self._name_ids(
            conn, {getattr(u, c) for u in rows for c in USAGE_LABELS}
        )  # fmt: skip
        return [
            (day_number(u.day), ids[(u.project, u.model)], names[u.source], names[u.api_key],
             names[u.batch], names[u.service_tier], names[u.unit], u.input_tokens,
             u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.requests, u.units)
            for u in rows
        ]  # fmt: skip

    def _cost_rows(
        self,
        conn: Connection,
        ids: dict[tuple[str, str], int],
        rows: list[CostRecord],
        annotate: CostAnnotator | None,
    ) -> list[tuple[Any, ...]]:
        names = self._name_ids(
            conn, {getattr(c, f) for c in rows for f in (*COST_KEY_LABELS, *COST_LABELS)}
        )
        out = []
        for c in rows:
            out.append(
                (day_number(c.day), ids[(c.project, c.model)], names[c.line_item],
                 names[c.api_key], names[c.service_tier], names[c.cost_type],
                 names[c.token_type], names[c.attribution], names[c.currency],
                 *encode_money(c.amount), *self._fx_values(conn, annotate(c) if annotate else {}))
            )  # fmt: skip
        return out

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
            cutoff = (day_number(before),)
            n = int(conn.execute("DELETE FROM usage_rows WHERE day < ?", cutoff).rowcount)
            n += int(conn.execute("DELETE FROM cost_rows WHERE day < ?", cutoff).rowcount)
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
        streams, label, days = self._stream_map(), self._labels, Days()
        out = []
        for row in self._rows(USAGE_ROW_COLUMNS, "usage_rows", start, end, account):
            d, sid, src, key, batch, tier, unit, i, o, cr, cw, requests, units = row
            p, a, proj, model = streams[sid]
            out.append(
                UsageRecord(p, a, days[d], proj, model, label[src], label[key], label[batch],
                            label[tier], i, o, cr, cw, requests, units, label[unit])
            )  # fmt: skip
        return out

    def costs_between(self, start: date, end: date) -> list[CostRecord]:
        """Cost rows as the provider billed them (source amount and currency)."""
        return [record for record, _ in self._costs(start, end, None)]

    def converted_costs_between(
        self, start: date, end: date, currency: str, account: tuple[str, str] | None = None
    ) -> tuple[list[CostRecord], list[CostRecord]]:
        """(converted, withheld): rows converted to ``currency`` (amount and currency are the
        converted ones), and the source rows without a usable conversion."""
        converted: list[CostRecord] = []
        withheld: list[CostRecord] = []
        streams, label, days, refs = self._stream_map(), self._labels, Days(), self._fx_refs
        wanted = {i for i, ref in refs.items() if ref[0] == currency}
        for row in self._rows(COST_ROW_COLUMNS, "cost_rows", start, end, account):
            d, sid, line_item, key, tier, cost_type, token_type, attribution, cur = row[:9]
            units, exact, fx, status, fx_units, fx_exact = row[9:]
            if fx is not None and fx not in refs:
                self._fx_ref(fx)
                wanted = {i for i, ref in refs.items() if ref[0] == currency}
            p, a, proj, model = streams[sid]
            source = label[cur]
            if fx in wanted and status in (0, 1):  # final, provisional
                amount, out, money = decode_money(fx_units, fx_exact), converted, currency
            else:  # same currency: no rate needed (identity)
                amount, money = decode_money(units, exact), source
                out = converted if source == currency else withheld
            out.append(
                CostRecord(p, a, days[d], proj, model, label[cost_type], amount, money,
                           label[line_item], label[token_type], label[key], label[tier],
                           label[attribution])
            )  # fmt: skip
        return converted, withheld

    def _costs(
        self, start: date, end: date, account: tuple[str, str] | None
    ) -> list[tuple[CostRecord, tuple[Any, ...]]]:
        """Source cost records of the days ``[start, end)`` with each row's FX values."""
        streams, days = self._stream_map(), Days()
        return [
            (self._cost_record(row, streams, days), tuple(row[11:]))
            for row in self._rows(COST_ROW_COLUMNS, "cost_rows", start, end, account)
        ]

    def cost_audit(self, day: date) -> list[dict[str, Any]]:
        """Every stored cost row of ``day`` with its conversion audit trail (the columns of
        the ``costs`` view)."""
        out = []
        for record, (fx, status, fx_units, fx_exact) in self._costs(
            day, day + timedelta(days=1), None
        ):
            row = cost_row(record) | fx_columns(self._fx_ref(fx), status, fx_units, fx_exact)
            row["amount"] = format(record.amount, "f")
            out.append(row)
        return out

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
                f"SELECT COUNT(DISTINCT day) FROM cost_rows WHERE {ACCOUNT_STREAMS}",
                (provider, account),
            ).fetchone()
        return int(row[0])

    def _rows(
        self,
        columns: Sequence[str],
        table: str,
        start: date,
        end: date,
        account: tuple[str, str] | None,
    ) -> list[tuple[Any, ...]]:
        """Plain tuples of compact rows, in key order: the hot read path of a refresh."""
        where = "day >= ? AND day < ?"
        params: list[Any] = [day_number(start), day_number(end)]
        if account is not None:  # one seek per (day, stream) of the account
            where, params = account_days_where(start, end, account)
        key = USAGE_PK if table == "usage_rows" else COST_PK
        with self._lock:
            return list(
                self.db.execute(
                    f"SELECT {', '.join(columns)} FROM {table} WHERE {where} "
                    f"ORDER BY {', '.join(key)}",
                    params,
                ).fetchall()
            )

    def first_day(self) -> date | None:
        """The oldest day with a stored cost or usage row (None: an empty history)."""
        with self._lock:
            row = self.db.execute(
                "SELECT MIN(day) FROM (SELECT MIN(day) AS day FROM cost_rows "
                "UNION ALL SELECT MIN(day) FROM usage_rows) AS firsts"
            ).fetchone()
        return None if not row or row[0] is None else day_of(row[0])


def account_days_where(start: date, end: date, account: tuple[str, str]) -> tuple[str, list[Any]]:
    """The WHERE of an account's rows of the days ``[start, end)``: both leading key columns
    constrained, so the primary key is searched, not scanned over the other accounts."""
    days = list(range(day_number(start), day_number(end)))
    marks = ", ".join("?" for _ in days)
    return f"day IN ({marks}) AND {ACCOUNT_STREAMS}", [*days, *account]


def retention_cutoff(today: date, retention_days: int) -> date:
    return today - timedelta(days=retention_days)


class ConversionRule:
    """Which amount of a compact cost row counts in ``currency``: its conversion when it was
    converted to ``currency`` (final or provisional), its source amount when it is already
    in ``currency``, else none (withheld): the rule of
    :meth:`History.converted_costs_between`, for readers that sum raw rows."""

    def __init__(self, store: History, currency: str) -> None:
        self.store = store
        self.currency = currency
        self._same: dict[int, bool] = {}  # currency id -> is ``currency``
        self._wanted: set[int] = set()  # fx_applied ids converting to ``currency``
        self._known = -1  # how many fx_applied rows ``_wanted`` was built from

    def amount(
        self,
        currency_id: int,
        units: int | None,
        exact: str | None,
        fx: int | None,
        status: int | None,
        fx_units: int | None,
        fx_exact: str | None,
    ) -> tuple[int | None, str | None] | None:
        """(pico-units, exact text) of the amount that counts, None when withheld."""
        refs = self.store._fx_refs
        if fx is not None and fx not in refs:
            self.store._fx_ref(fx)
        if self._known != len(refs):
            self._known = len(refs)
            self._wanted = {i for i, ref in refs.items() if ref[0] == self.currency}
        if fx in self._wanted and status in (0, 1):  # final, provisional
            return fx_units, fx_exact
        same = self._same.get(currency_id)
        if same is None:
            same = self._same[currency_id] = self.store._labels[currency_id] == self.currency
        return (units, exact) if same else None
