"""The FX side of the history: cached ECB rates, which days they cover, and the
conversion columns of stored costs (re-converted from the source amounts)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from exporter.records import (
    CostRecord,
)
from exporter.store.compact import COST_PK, COST_ROW_COLUMNS, ROW_FX_PENDING, SCALE, day_number
from exporter.store.migrations import FX_COLUMNS
from exporter.store.rows import CostAnnotator
from exporter.store.streams import Days, StreamIndex

FX_AMOUNT_SCALE = str(SCALE)  # decimals of a stored converted amount (fx.rates.stored_amount)


class FxCache(StreamIndex):
    """The ECB rate cache (``fx_rates``, ``fx_coverage``) and the FX columns of cost rows."""

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
                "INSERT INTO fx_rates (day, currency, rate, source, fetched_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, currency) DO UPDATE SET "
                "rate = excluded.rate, source = excluded.source, fetched_at = excluded.fetched_at",
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
                "INSERT INTO fx_coverage (first_day, last_day, source, fetched_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (first_day, last_day) DO UPDATE SET "
                "source = excluded.source, fetched_at = excluded.fetched_at",
                (first.isoformat(), last.isoformat(), source, fetched_at.isoformat()),
            )

    def reconvert_costs(
        self,
        currency: str,
        since: date | None,
        convert: CostAnnotator,
        seen: Callable[[CostRecord, Mapping[str, Any]], None] | None = None,
    ) -> int:
        """Recompute the FX columns of every row not finally converted to ``currency`` (and of
        every row from ``since`` on) from its source amount, in one transaction, so a poll
        writing the same rows meanwhile cannot interleave; ``seen`` is told each row with its
        new columns. Returns how many rows were converted.

        Only a changed accounting currency reads every row; otherwise the pending rows come
        from a partial index and the ``since`` rows from the day index (and, once, the rows
        converted before amounts were stored at 12 decimals: ``fx_amount_scale``). Rows are
        read and updated a day at a time, so a full re-conversion holds one day's rows in
        memory, not the history's. The days touched get their version bumped (readers
        caching converted rows reload them)."""
        columns = ", ".join(COST_ROW_COLUMNS)
        after = day_number(since) if since else None
        converted = 0
        with self._transaction() as conn:
            conditions: list[tuple[str, tuple[Any, ...]]]
            if self._meta(conn, "fx_currency") == currency:
                conditions = [(ROW_FX_PENDING, ())]
                if after is not None:
                    conditions.append(("day >= ?", (after,)))
            else:  # first run, or `currency` changed: every row not final in it
                conditions = [
                    (
                        "fx IS NULL OR fx IN (SELECT id FROM fx_applied WHERE currency <> ?) "
                        "OR fx_status IS NULL OR fx_status <> 0 OR day >= ?",
                        (currency, after if after is not None else 1 << 40),
                    )
                ]
            if self._meta(conn, "fx_amount_scale") != FX_AMOUNT_SCALE:
                # converted before amounts were stored at 12 decimals (a cross rate's 28
                # digits kept as text): converted again once, so each is an integer again
                conditions.append(("fx_amount_exact IS NOT NULL", ()))
            days_to_read: set[int] = set()
            for condition, params in conditions:  # each on its own: the index it can use
                sql = f"SELECT DISTINCT day FROM cost_rows WHERE {condition}"
                days_to_read.update(d for (d,) in conn.execute(sql, params).fetchall())
            any_of = " OR ".join(f"({c})" for c, _ in conditions)
            any_params = tuple(p for _, ps in conditions for p in ps)
            streams, days = self._stream_map(), Days()
            touched: set[tuple[str, str, str]] = set()
            for d in sorted(days_to_read):
                rows = conn.execute(
                    f"SELECT {columns} FROM cost_rows WHERE day = ? AND ({any_of})",
                    (d, *any_params),
                ).fetchall()
                updates = []
                for row in rows:
                    record = self._cost_record(row, streams, days)
                    fx = {c: None for c in FX_COLUMNS} | dict(convert(record))
                    if seen is not None:
                        seen(record, fx)
                    updates.append((*self._fx_values(conn, fx), *row[: len(COST_PK)]))
                    touched.add((record.provider, record.account, record.day.isoformat()))
                conn.executemany(
                    "UPDATE cost_rows SET fx = ?, fx_status = ?, fx_amount = ?, "
                    f"fx_amount_exact = ? WHERE {' AND '.join(f'{c} = ?' for c in COST_PK)}",
                    updates,
                )
                converted += len(updates)
            self._bump(conn, sorted(touched))
            self._set_meta(conn, "fx_currency", currency)
            self._set_meta(conn, "fx_amount_scale", FX_AMOUNT_SCALE)
        return converted

    def fx_unconverted(self, currency: str) -> dict[tuple[str, str], int]:
        """{(source currency, reason): rows} of cost rows without a usable conversion to
        ``currency``; reason is the row's error (no_rate, stale) or pending (not yet run)."""
        with self._lock:
            # Converted in full to ``currency`` last time: only rows of the partial index
            # can be unconverted (new rows are written converted, or pending).
            pending = (
                f"AND {ROW_FX_PENDING} " if self._meta(self.db, "fx_currency") == currency else ""
            )
            rows = self.db.execute(
                "SELECT c.currency, f.currency, f.error, COUNT(*) FROM cost_rows c "
                "LEFT JOIN fx_applied f ON f.id = c.fx "
                "WHERE (f.currency IS NULL OR f.currency <> ? OR fx_status = 2) "
                f"{pending}GROUP BY 1, 2, 3",
                (currency,),
            ).fetchall()
        out: dict[Any, int] = {}  # a row errored without a reason counts under None
        for source, fx_currency, error, n in rows:
            reason = (error or None) if fx_currency == currency else "pending"
            key = (self._labels[source], reason)
            out[key] = out.get(key, 0) + n
        return out
