"""Request-level usage pushed by applications: raw requests, daily roll-ups, carry.

* ``app_requests``: one row per counted request, keyed by its idempotency id (span or
  event id), kept ``ingest.retention_days``; an id seen before is never counted again,
  across restarts.
* ``app_daily``: the daily roll-up per (day, provider, model, endpoint, tenant, prompt
  version, outcome), kept like the billed history (``storage.retention_days``);
  ``app_users`` the same per (day, user), for ``top --by user`` only.
* ``app_carry``: what retention folded away from ``app_daily`` (per label set, without
  the day), so the persisted counters never go down.
* ``app_labels``: when each endpoint, tenant and prompt version was first seen; the
  series caps admit values in that order, so a capped label never moves between series.

Estimated cost is stored as an exact integer of pico-USD (1e-12 USD): catalogue prices
are USD per million tokens with at most six decimals, so a token's price is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from exporter.records import TOKEN_TYPES, RequestRecord
from exporter.store.db import Database
from exporter.store.dialect import Connection, least, quote

PICO = Decimal(10) ** 12
DAILY_KEY = ("day", "provider", "model", "endpoint", "tenant", "prompt_version", "outcome")
USER_KEY = ("day", "user")
SUMS = ("requests", "retries", *(f"{t}_tokens" for t in TOKEN_TYPES), "cost_pusd", "unpriced")
_CHUNK = 500  # ids per "IN (...)" lookup
RAW_COLUMNS = (
    "id", "ts", "day", "provider", "model", "endpoint", "tenant", "user", "prompt_version",
    "outcome", "retry", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "cost_pusd",
)  # fmt: skip
_RAW_INDEX = {c: i for i, c in enumerate(RAW_COLUMNS)}


@dataclass(frozen=True)
class DailyRow:
    """One roll-up row: of ``app_daily`` (``user`` ""), of ``app_users`` (only ``day`` and
    ``user`` set) or of the carry (``day`` None)."""

    day: date | None
    provider: str
    model: str
    endpoint: str
    tenant: str
    user: str
    prompt_version: str
    outcome: str
    requests: int
    retries: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_pusd: int  # estimated cost of the priced requests, pico-USD
    unpriced: int  # requests whose model has no catalogue price
    first_ts: float = 0.0
    carried_cost: Decimal | None = None  # carry rows: the cost already converted

    def tokens(self, token_type: str) -> int:
        return int(getattr(self, f"{token_type}_tokens"))

    @property
    def cost_usd(self) -> Decimal:
        return Decimal(self.cost_pusd) / PICO


def to_pico(usd: Decimal) -> int:
    """USD -> pico-USD (exact for prices with up to six decimals per million tokens)."""
    return int((usd * PICO).to_integral_value())


class RequestLog(Database):
    """Ingested requests: idempotent writes, roll-ups, caps' first-seen order, top lists."""

    def record_requests(self, priced: Sequence[tuple[RequestRecord, int | None]]) -> int:
        """Count each request not seen before (by id); return how many were new.

        ``priced``: each request with its estimated cost in pico-USD (None: no catalogue
        price). One transaction: the raw rows, the roll-ups and the label first-seen times
        land together, so a crash never counts a request without remembering its id. The
        roll-ups are summed from the rows just inserted (ids seen before, within the batch
        too, are skipped; the write lock keeps two writers from racing on an id).
        """
        if not priced:
            return 0
        raw = [
            (r.id, r.time.timestamp(), r.day.isoformat(), r.provider, r.model, r.endpoint,
             r.tenant, r.user, r.prompt_version, r.outcome, int(r.retry), r.input_tokens,
             r.output_tokens, r.cache_read_tokens, r.cache_write_tokens, pusd)
            for r, pusd in priced
        ]  # fmt: skip
        # first-seen time of each capped label value (endpoint, tenant, prompt version,
        # outcome; an endpoint's prompt versions); requests seen before change nothing
        # here (their values are stored with the same or an earlier time)
        labels: dict[tuple[str, str], float] = {}
        for r, _ in priced:
            ts = r.time.timestamp()
            for kind, value in (("endpoint", r.endpoint), ("tenant", r.tenant),
                                ("prompt_version", r.prompt_version), ("outcome", r.outcome),
                                ("prompt_version@" + r.endpoint, r.prompt_version)):  # fmt: skip
                if labels.get((kind, value), ts) >= ts:
                    labels[(kind, value)] = ts
        with self._transaction() as conn:
            seen = self._stored_ids(conn, [row[0] for row in raw])
            fresh = []
            for row in raw:  # the first of the ids seen neither before nor in this batch
                if row[0] not in seen:
                    seen.add(row[0])
                    fresh.append(row)
            if not fresh:
                return 0
            conn.executemany(
                f"INSERT INTO app_requests ({', '.join(quote(c) for c in RAW_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in RAW_COLUMNS)})",
                fresh,
            )
            for table, key, rows in (("app_daily", DAILY_KEY, _rollup(fresh, DAILY_KEY)),
                                     ("app_users", USER_KEY, _rollup(
                                         [r for r in fresh if r[7] != ""], USER_KEY))):  # fmt: skip
                keys = ", ".join(quote(k) for k in key)
                sums = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in SUMS)
                conn.executemany(
                    f"INSERT INTO {table} ({keys}, {', '.join(SUMS)}, first_ts) "
                    f"VALUES ({', '.join('?' for _ in (*key, *SUMS, 'first_ts'))}) "
                    f"ON CONFLICT ({keys}) DO UPDATE SET {sums}, "
                    f"first_ts = {least(f'{table}.first_ts', 'excluded.first_ts')}",
                    rows,
                )
            (seq,) = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM app_labels").fetchone()
            conn.executemany(
                "INSERT INTO app_labels (kind, value, first_ts, seq) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (kind, value) DO UPDATE SET "
                f"first_ts = {least('app_labels.first_ts', 'excluded.first_ts')}",
                [(kind, value, ts, seq + i)
                 for i, ((kind, value), ts) in enumerate(labels.items(), start=1)],
            )  # fmt: skip
        return len(fresh)

    def _stored_ids(self, conn: Connection, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                v
                for (v,) in conn.execute(
                    f"SELECT id FROM app_requests WHERE id IN ({marks})", chunk
                )
            )
        return found

    def request_days(self, start: date | None = None, end: date | None = None) -> list[DailyRow]:
        """Roll-up rows of days in ``[start, end)`` (all when not given)."""
        labels, sums = ", ".join(DAILY_KEY), ", ".join(SUMS)
        rows = self._days(f"SELECT {labels}, {sums}, first_ts FROM app_daily", start, end)
        return [_daily(date.fromisoformat(r[0]), r[1:7], "", r[7:15], r[15]) for r in rows]

    def request_users(self, start: date | None = None, end: date | None = None) -> list[DailyRow]:
        """Per-user roll-up rows of days in ``[start, end)`` (only ``day``, ``user`` and the
        sums set): what ``top --by user`` reads; users never reach Prometheus."""
        sql = f'SELECT day, "user", {", ".join(SUMS)}, first_ts FROM app_users'
        return [
            _daily(date.fromisoformat(r[0]), ("",) * 6, r[1], r[2:10], r[10])
            for r in self._days(sql, start, end)
        ]

    def _days(self, sql: str, start: date | None, end: date | None) -> list[tuple[Any, ...]]:
        where, args = [], []
        if start is not None:
            where.append("day >= ?")
            args.append(start.isoformat())
        if end is not None:
            where.append("day < ?")
            args.append(end.isoformat())
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            return list(self.db.execute(sql, args).fetchall())

    def request_carry(self, currency: str) -> list[DailyRow]:
        """Totals folded away by retention; their cost only when it was converted to
        ``currency`` (a changed accounting currency cannot re-convert them)."""
        with self._lock:
            rows = self.db.execute(
                f"SELECT provider, model, endpoint, tenant, prompt_version, outcome, "
                f"{', '.join(SUMS)}, cost, currency FROM app_carry"
            ).fetchall()
        return [
            _daily(None, r[:6], "", r[6:14], 0.0,
                   Decimal(r[14]) if r[15] == currency and r[14] is not None else None)
            for r in rows
        ]  # fmt: skip

    def label_order(self, kind: str) -> list[str]:
        """Values of a capped dimension in the order the exporter first stored them (so a
        late request with an old timestamp never displaces an admitted value); for
        ``prompt_version@<endpoint>``, that endpoint's prompt versions by the time of their
        first request (the newest version is the last)."""
        order = "first_ts, value" if kind.startswith("prompt_version@") else "seq"
        with self._lock:
            rows = self.db.execute(
                f"SELECT value FROM app_labels WHERE kind = ? ORDER BY {order}", (kind,)
            ).fetchall()
        return [v for (v,) in rows]

    def prune_requests(
        self,
        raw_before: date,
        daily_before: date,
        convert: Callable[[DailyRow], Decimal | None],
        currency: str,
    ) -> int:
        """Retention: drop raw requests of days before ``raw_before`` and fold roll-ups of
        days before ``daily_before`` into the carry (``convert``: a row's estimated cost in
        ``currency``, None without a rate). Returns the rows removed."""
        with self._transaction() as conn:
            n = int(
                conn.execute(
                    "DELETE FROM app_requests WHERE day < ?", (raw_before.isoformat(),)
                ).rowcount
            )
            old = self.request_days(end=daily_before)
            if not old:
                return n
            carry = {_carry_key(r): r for r in self.request_carry(currency)}
            for row in old:
                cost = convert(row) if row.cost_pusd else Decimal(0)
                key = _carry_key(row)
                prev = carry.get(key)
                if prev is None:
                    carry[key] = _as_carry(row, cost)
                    continue
                both = (
                    None if prev.carried_cost is None or cost is None else prev.carried_cost + cost
                )
                sums = [getattr(prev, c) + getattr(row, c) for c in SUMS]
                carry[key] = _daily(None, key, "", sums, 0.0, both)
            for table in ("app_daily", "app_users"):
                n += conn.execute(
                    f"DELETE FROM {table} WHERE day < ?", (daily_before.isoformat(),)
                ).rowcount
            conn.executemany(
                "INSERT INTO app_carry (provider, model, endpoint, tenant, "
                f"prompt_version, outcome, {', '.join(SUMS)}, cost, currency) "
                f"VALUES ({','.join('?' * (6 + len(SUMS) + 2))}) ON CONFLICT (provider, "
                "model, endpoint, tenant, prompt_version, outcome) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in (*SUMS, "cost", "currency")),
                [
                    (*key, *(getattr(r, c) for c in SUMS),
                     None if r.carried_cost is None else str(r.carried_cost), currency)
                    for key, r in carry.items()
                ],
            )  # fmt: skip
        return n

    def request_ids(self, ids: Iterable[str]) -> set[str]:
        """Which of ``ids`` are stored (tests and the benchmark check idempotency)."""
        wanted = list(ids)
        with self._lock:
            found: set[str] = set()
            for i in range(0, len(wanted), _CHUNK):
                chunk = wanted[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                found.update(
                    v for (v,) in self.db.execute(
                        f"SELECT id FROM app_requests WHERE id IN ({marks})", chunk
                    )
                )  # fmt: skip
        return found


def _rollup(rows: list[tuple[Any, ...]], key: Sequence[str]) -> list[tuple[Any, ...]]:
    """The roll-up rows (key, SUMS, first_ts) of raw request rows (``RAW_COLUMNS``)."""
    at = [_RAW_INDEX[k] for k in key]
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for r in rows:
        k = tuple(r[i] for i in at)
        acc = sums.get(k)
        if acc is None:
            acc = sums[k] = [0, 0, 0, 0, 0, 0, 0, 0, r[1]]
        pusd = r[15]
        acc[0] += 1
        acc[1] += r[10]
        acc[2] += r[11]
        acc[3] += r[12]
        acc[4] += r[13]
        acc[5] += r[14]
        acc[6] += pusd or 0
        acc[7] += pusd is None
        acc[8] = min(acc[8], r[1])
    return [(*k, *v) for k, v in sums.items()]


def _carry_key(row: DailyRow) -> tuple[str, str, str, str, str, str]:
    return (row.provider, row.model, row.endpoint, row.tenant, row.prompt_version, row.outcome)


def _as_carry(row: DailyRow, cost: Decimal | None) -> DailyRow:
    return _daily(None, _carry_key(row), "", [getattr(row, c) for c in SUMS], 0.0, cost)


def _daily(
    day: date | None,
    key: Sequence[str],
    user: str,
    sums: Sequence[int],
    first_ts: float = 0.0,
    cost: Decimal | None = None,
) -> DailyRow:
    """A roll-up row of the label ``key`` (provider, model, endpoint, tenant, prompt version,
    outcome) and the :data:`SUMS`."""
    labels = dict(zip(("provider", "model", "endpoint", "tenant", "prompt_version", "outcome"),
                      key, strict=True))  # fmt: skip
    values: dict[str, Any] = {**labels, **dict(zip(SUMS, sums, strict=True))}
    return DailyRow(day=day, user=user, first_ts=first_ts, carried_cost=cost, **values)
