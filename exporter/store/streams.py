"""Maintained indexes of the history, so a refresh never scans every stored row.

Kept by the writes in the same transaction (migration ``011_stream_index``):

* ``streams``: one row per stream (provider, account, project, model) with an id and the
  first day it has usage or cost data in the store (what "new stream" detection reads);
* ``cost_currencies``: the source currencies of stored cost rows and the first day of each;
* ``day_versions``: a version per (provider, account, day), bumped whenever that day's rows
  (or their conversion) may have changed; a reader that caches decoded rows reloads only
  the days whose version moved (:class:`~exporter.analytics.cube.Cube`);
* ``store_meta`` ``fx_currency``: the accounting currency of the last full conversion, so
  the conversion step re-reads only pending rows (partial index ``costs_fx_pending``) until
  ``currency`` changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from exporter.records import CostRecord, Stream, UsageRecord
from exporter.store.compact import (
    day_number,
    day_of,
    decode_money,
    encode_money,
    fx_ref,
    status_code,
)
from exporter.store.db import Database
from exporter.store.dialect import Connection, least

DayKey = tuple[str, str, date]  # provider, account, day

_FIRST_DAY_AFTER = (  # parameters: day, stream, day, stream
    "SELECT MIN(day) FROM (SELECT MIN(day) AS day FROM cost_rows WHERE day >= ? "
    "AND stream = ? UNION ALL SELECT MIN(day) FROM usage_rows WHERE day >= ? AND stream = ?) "
    "AS firsts"
)
ACCOUNT_STREAMS = "stream IN (SELECT id FROM streams WHERE provider = ? AND account = ?)"


class Days(dict[int, date]):
    """Day numbers of compact rows, decoded once per read."""

    def __missing__(self, number: int) -> date:
        self[number] = found = day_of(number)
        return found


class StreamIndex(Database):
    """The ``streams``, ``cost_currencies``, ``day_versions`` and ``store_meta`` tables."""

    def _index_window(
        self,
        conn: Connection,
        provider: str,
        account: str,
        start: date,
        end: date,
        usage: Iterable[UsageRecord],
        costs: list[CostRecord],
    ) -> dict[tuple[str, str], int]:
        """Called by ``replace_window`` inside its transaction, after the old rows of the
        window are deleted and before the new ones are written: the days ``[start, end)`` of
        the account will hold exactly ``usage`` and ``costs``. Returns the stream ids of the
        account by (project, model), those of the new rows included."""
        s, e = start.isoformat(), end.isoformat()
        firsts: dict[tuple[str, str], str] = {}
        rows: list[UsageRecord | CostRecord] = [*usage, *costs]
        for r in rows:
            k, d = (r.project, r.model), r.day.isoformat()
            if d < firsts.get(k, "9999-12-31"):
                firsts[k] = d
        conn.executemany(
            "INSERT INTO streams (provider, account, project, model, first_day) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (provider, account, project, model) "
            "DO UPDATE SET first_day = " + least("streams.first_day", "excluded.first_day"),
            [(provider, account, p, m, d) for (p, m), d in firsts.items()],
        )
        # A stream first seen inside the window starts where the window now says, or (no
        # rows left in it) at its next stored day after the window, or it has no data.
        for id_, project, model in conn.execute(
            "SELECT id, project, model FROM streams WHERE provider = ? AND account = ? "
            "AND first_day >= ? AND first_day < ?",
            (provider, account, s, e),
        ).fetchall():
            key = (provider, account, project, model)
            first = firsts.get((project, model))
            if first is None:
                after = conn.execute(_FIRST_DAY_AFTER, (day_number(end), id_) * 2).fetchone()[0]
                first = None if after is None else day_of(after).isoformat()
            if first is None:
                conn.execute(
                    "DELETE FROM streams WHERE provider = ? AND account = ? AND project = ? "
                    "AND model = ?",
                    key,
                )
            else:
                conn.execute(
                    "UPDATE streams SET first_day = ? WHERE provider = ? AND account = ? "
                    "AND project = ? AND model = ?",
                    (first, *key),
                )
        currencies: dict[str, str] = {}
        for c in costs:
            if c.day.isoformat() < currencies.get(c.currency, "9999-12-31"):
                currencies[c.currency] = c.day.isoformat()
        conn.executemany(
            "INSERT INTO cost_currencies (currency, first_day) VALUES (?, ?) "
            "ON CONFLICT (currency) DO UPDATE SET first_day = "
            + least("cost_currencies.first_day", "excluded.first_day"),
            list(currencies.items()),
        )
        days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days)]
        self._bump(conn, [(provider, account, d) for d in days])
        return {
            (project, model): id_
            for id_, project, model in conn.execute(
                "SELECT id, project, model FROM streams WHERE provider = ? AND account = ?",
                (provider, account),
            )
        }

    def _cost_record(
        self, row: Sequence[Any], streams: Mapping[int, Stream], days: Days
    ) -> CostRecord:
        """The source record of a compact cost row (``COST_ROW_COLUMNS`` order)."""
        d, sid, line_item, key, tier, cost_type, token_type, attribution, cur, units, exact = row[
            :11
        ]
        p, a, proj, model = streams[sid]
        label = self._labels.__getitem__
        return CostRecord(
            p, a, days[d], proj, model, label(cost_type), decode_money(units, exact),
            label(cur), label(line_item), label(token_type), label(key), label(tier),
            label(attribution),
        )  # fmt: skip

    def _fx_values(
        self, conn: Connection, columns: Mapping[str, Any]
    ) -> tuple[int | None, int | None, int | None, str | None]:
        """(fx, fx_status, fx_amount, fx_amount_exact) of a row's FX columns."""
        ref = fx_ref(columns)
        amount = columns.get("fx_amount")
        units, exact = (None, None) if amount is None else encode_money(Decimal(amount))
        return (
            None if ref is None else self._fx_id(conn, ref),
            status_code(columns.get("fx_status")),
            units,
            exact,
        )

    def _stream_map(self) -> Mapping[int, Stream]:
        """Every stream by id (the compact rows name their stream by id; ids are never
        reused, so the map is kept and re-read only for an id it does not know)."""
        return self._streams

    @staticmethod
    def _bump(conn: Connection, keys: Iterable[tuple[str, str, str]]) -> None:
        conn.executemany(
            "INSERT INTO day_versions (provider, account, day, version) VALUES (?, ?, ?, 1) "
            "ON CONFLICT (provider, account, day) DO UPDATE SET version = day_versions.version + 1",
            list(keys),
        )

    def _index_prune(self, conn: Connection, before: date) -> None:
        """Retention removed the rows of days before ``before``: no first day lies earlier."""
        cutoff = before.isoformat()
        conn.execute("UPDATE streams SET first_day = ? WHERE first_day < ?", (cutoff, cutoff))
        conn.execute(
            "UPDATE cost_currencies SET first_day = ? WHERE first_day < ?", (cutoff, cutoff)
        )
        conn.execute("DELETE FROM day_versions WHERE day < ?", (cutoff,))

    def _reclaim(self) -> None:
        """Give the pages retention freed back to the file system: incrementally where the
        file was created with ``auto_vacuum=INCREMENTAL``; an older file keeps its free
        pages for reuse (``VACUUM`` it once, offline, to shrink it)."""
        with self._lock:
            if self.dialect.name != "sqlite":  # PostgreSQL: autovacuum reuses the space
                return
            if self.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:  # incremental
                # executescript steps the pragma to completion (execute frees one page)
                self.db.conn.executescript("PRAGMA incremental_vacuum;")

    def streams_first_seen(self, since: date) -> dict[Stream, date]:
        """Streams (provider, account, project, model) whose first day with usage or cost
        data in the store is on or after ``since``, with that day."""
        with self._lock:
            rows = self.db.execute(
                "SELECT provider, account, project, model, first_day FROM streams "
                "WHERE first_day >= ?",
                (since.isoformat(),),
            ).fetchall()
        return {Stream(p, a, proj, m): date.fromisoformat(first) for p, a, proj, m, first in rows}

    def stream_count(self) -> int:
        """Streams with data in the store."""
        with self._lock:
            return int(self.db.execute("SELECT COUNT(*) FROM streams").fetchone()[0])

    def stream_kinds(self) -> tuple[int, int]:
        """(model streams, tool-cost streams with ``model=""``) in the store."""
        with self._lock:
            row = self.db.execute(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN model = '' THEN 1 ELSE 0 END), 0) "
                "FROM streams"
            ).fetchone()
        return int(row[0]) - int(row[1]), int(row[1])

    def cost_currencies(self) -> set[str]:
        """Source currencies of the stored cost rows."""
        with self._lock:
            return {r[0] for r in self.db.execute("SELECT currency FROM cost_currencies")}

    def first_cost_day(self, other_than: str) -> date | None:
        """The earliest day of a cost row billed in a currency other than ``other_than``."""
        with self._lock:
            row = self.db.execute(
                "SELECT MIN(first_day) FROM cost_currencies WHERE currency != ?", (other_than,)
            ).fetchone()
        return date.fromisoformat(row[0]) if row[0] else None

    def day_versions(self, start: date, end: date) -> dict[DayKey, int]:
        """{(provider, account, day): version} of the days ``[start, end)`` with writes."""
        with self._lock:
            rows = self.db.execute(
                "SELECT provider, account, day, version FROM day_versions "
                "WHERE day >= ? AND day < ?",
                (start.isoformat(), end.isoformat()),
            ).fetchall()
        return {(p, a, date.fromisoformat(d)): v for p, a, d, v in rows}
