"""The FX service: fetch the ECB files the stored costs need, cache them in the store,
look rates up and (re)convert stored costs; its state is what ``aicost_fx_*`` shows."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx

from exporter.clock import Clock, utc_now
from exporter.config import Config
from exporter.fx import ecb
from exporter.fx.rates import (
    CONVERSION_ERRORS,
    DEFAULT_SOURCE_CURRENCY,
    ERROR,
    FINAL,
    MAX_STALENESS_DAYS,
    PROVISIONAL,
    REFRESH_ERRORS,
    FxError,
    Rate,
    RateTable,
    conversion_columns,
    legs_of,
)
from exporter.records import CostRecord
from exporter.snapshot import FxRateSample, FxState, UnconvertedKey
from exporter.store import Store

log = logging.getLogger(__name__)


class FetchError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class FxHealth:
    refresh_errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REFRESH_ERRORS, 0))
    last_refresh_failed: bool = False


class FxService:
    """ECB rates for the accounting currency: fetch, cache, look up, convert stored costs."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Clock = utc_now,
        transport: httpx.BaseTransport | None = None,
        history: ecb.BundledHistory | None = None,
    ) -> None:
        self.currency = config.currency
        self._base_url = config.fx.base_url.rstrip("/")
        self._store = store
        self._clock = clock
        self._history = history
        self._timeout = config.poll.timeout
        self._transport = transport
        self._client: httpx.Client | None = None  # created on the first fetch
        self._lock = threading.Lock()  # one refresh at a time
        self.health = FxHealth()
        self.table = RateTable({}, (), ())
        self.table = self._load_table()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # -- rates ---------------------------------------------------------------------------

    def source_currencies(self) -> set[str]:
        return self._store.cost_currencies() or {DEFAULT_SOURCE_CURRENCY}

    def _needed(self) -> set[str]:
        """Non-EUR currencies whose rates the stored costs need (empty: identity only)."""
        pairs = {(c, self.currency) for c in self.source_currencies() if c != self.currency}
        return {c for base, quote in pairs for c in legs_of(base, quote)}

    def _bundled(self) -> ecb.BundledHistory:
        if self._history is None:
            self._history = ecb.bundled()
        return self._history

    def _load_table(self, *extra: str) -> RateTable:
        """Cache over bundled, for the currencies in use (and ``extra`` ones)."""
        currencies = {*self._needed(), *extra, *self.table.currencies()} - {ecb.EUR}
        if not currencies:  # identity only (e.g. USD costs, USD accounting): nothing to read
            return RateTable({}, (), ())
        history = self._bundled()
        cached = self._store.fx_rates(currencies)
        cached_days = self._store.fx_rate_days()
        series = {
            c: {d: (r, ecb.BUNDLED) for d, r in history.series(c).items() if d not in cached_days}
            | cached[c]
            for c in currencies
        }
        covered = [(history.first, history.last), *self._store.fx_coverage()]
        return RateTable(series, set(history.days) | cached_days, covered)

    def _ensure(self, base: str, quote: str) -> RateTable:
        """The current table, reloaded first when it lacks a currency ``base`` -> ``quote``
        needs (an identity pair needs none)."""
        wanted = set(legs_of(base, quote)) if base != quote else set()
        if wanted - self.table.currencies():
            self.table = self._load_table(*wanted)
        return self.table

    def rate(self, base: str, quote: str, day: date) -> Rate:
        """The rate for amounts of ``base`` dated ``day`` in ``quote``; raise FxError."""
        return self._ensure(base, quote).rate(base, quote, day)

    def refresh_rates(self) -> date | None:
        """Fetch what the stored costs need; return the earliest day whose cached rate is new
        or changed. The daily file every time; the 90-day file when a working day is
        missing; the full history when the gap is older than the 90-day file."""
        with self._lock:
            if not self._needed():
                log.debug("fx: every cost is in %s already; no ECB rate needed", self.currency)
                return None
            changed: date | None = None
            try:
                changed = self._fetch(ecb.DAILY)
                self.table = self._load_table()
                start = self._needed_from()
                for name in (ecb.HIST_90D, ecb.HIST):
                    missing = self.table.missing_days(start, self.table.newest or start)
                    if not missing:
                        break
                    log.info(
                        "fx: %d ECB working day(s) from %s without a rate; reading %s",
                        len(missing),
                        missing[0],
                        name,
                    )
                    changed = _earliest(changed, self._fetch(name))
                    self.table = self._load_table()
            except FetchError as exc:
                self.health.refresh_errors[exc.reason] += 1
                self.health.last_refresh_failed = True
                newest = self.table.newest
                log.warning(
                    "fx: ECB refresh failed (reason=%s): %s; falling back to the newest "
                    "known rate (%s)",
                    exc.reason,
                    exc,
                    newest.isoformat() if newest else "none",
                )
                self.table = self._load_table()
                return changed
            self.health.last_refresh_failed = False
            return changed

    def _needed_from(self) -> date:
        """The first day a carry-forward rate may be needed for."""
        today = self._clock().date()
        first = self._store.first_cost_day(self.currency) or today
        return min(first, today) - timedelta(days=MAX_STALENESS_DAYS + 2)

    def _fetch(self, name: str) -> date | None:
        url = f"{self._base_url}/{name}"
        if self._client is None:
            self._client = httpx.Client(
                timeout=self._timeout, transport=self._transport, follow_redirects=True
            )
        try:
            response = self._client.get(url)
        except httpx.TimeoutException:
            raise FetchError("timeout", f"GET {url} timed out") from None
        except httpx.HTTPError as exc:
            raise FetchError("upstream", f"GET {url} failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise FetchError("upstream", f"GET {url} answered HTTP {response.status_code}")
        try:
            rates = ecb.parse_xml(response.content)
        except ecb.EcbFormatError as exc:
            raise FetchError("parse", f"GET {url}: {exc}") from None
        now = self._clock()
        source = ecb.SOURCES[name]
        changed = self._store.upsert_fx_rates(rates, source, now)
        if name != ecb.DAILY:  # a complete file: its missing working days were closing days
            self._store.add_fx_coverage(min(rates), max(rates), source, now)
        log.info(
            "fx: read %s (%d day(s), newest %s)%s",
            name,
            len(rates),
            max(rates),
            f"; new rates from {changed}" if changed else "",
        )
        return changed

    # -- conversion ----------------------------------------------------------------------

    def columns(self, record: CostRecord) -> dict[str, Any]:
        """The FX columns of one cost row (used when a poll writes its rows)."""
        table = self._ensure(record.currency, self.currency)
        return conversion_columns(table, record, self.currency)

    def convert_stored(self, since: date | None = None) -> dict[str, int]:
        """The conversion step: (re)convert every stored cost row that is not finally
        converted to the accounting currency, and every row from ``since`` on (new rates).
        Returns the number of rows per status."""
        if self._needed() - self.table.currencies():
            self.table = self._load_table()
        table = self.table
        report = _Report(self.health.last_refresh_failed)
        self._store.reconvert_costs(
            self.currency, since, lambda r: conversion_columns(table, r, self.currency), report
        )
        report.log(self.currency)
        return report.counts

    # -- metrics -------------------------------------------------------------------------

    def state(self, today: date) -> FxState:
        """Rates applied for ``today`` to each source currency, and the error counts.

        A rate older than the fallback limit (``stale``) still shows, as the newest rate
        known with its own date, so ``AICostFxRateStale`` sees its age; only a pair with no
        rate at all has no sample."""
        samples = []
        for base in sorted(self.source_currencies()):
            try:
                rate = self.rate(base, self.currency, today)
            except FxError as exc:
                if exc.rate_date is None:
                    continue
                rate = self.rate(base, self.currency, exc.rate_date)
            samples.append(
                FxRateSample(base, self.currency, rate.source, rate.value, rate.rate_date)
            )
        unconverted = {
            UnconvertedKey(base, self.currency, reason): 0
            for base in self._store.cost_currencies() - {self.currency}
            for reason in CONVERSION_ERRORS
        }
        for (base, reason), n in self._store.fx_unconverted(self.currency).items():
            unconverted[UnconvertedKey(base, self.currency, reason)] = n
        return FxState(samples, unconverted, dict(self.health.refresh_errors))


def _earliest(a: date | None, b: date | None) -> date | None:
    return min((d for d in (a, b) if d is not None), default=None)


class _Report:
    """What a conversion step converted, per status, and the rows to log: converted at a
    fallback rate (ECB unreachable) or not at all, as counts and day ranges (a full
    re-conversion can touch millions of rows)."""

    def __init__(self, refresh_failed: bool) -> None:
        self.refresh_failed = refresh_failed
        self.counts = dict.fromkeys((FINAL, PROVISIONAL, ERROR), 0)
        self.errors: dict[tuple[str, str], list[Any]] = {}  # -> [rows, first day, last day]
        self.fallback: dict[tuple[str, str], list[Any]] = {}

    def __call__(self, record: CostRecord, columns: Mapping[str, Any]) -> None:
        status = columns["fx_status"]
        self.counts[status] += 1
        if status == ERROR:
            self._note(self.errors, (record.currency, columns["fx_error"]), record.day)
        elif status == PROVISIONAL and self.refresh_failed:
            key = (record.currency, columns["fx_rate_date"] or "")
            self._note(self.fallback, key, record.day)

    @staticmethod
    def _note(into: dict[tuple[str, str], list[Any]], key: tuple[str, str], day: date) -> None:
        held = into.get(key)
        if held is None:
            into[key] = [1, day, day]
        else:
            held[0] += 1
            held[1], held[2] = min(held[1], day), max(held[2], day)

    def log(self, currency: str) -> None:
        for level, template, rows in (
            (logging.WARNING, _FALLBACK_LOG, self.fallback),
            (logging.ERROR, _ERROR_LOG, self.errors),
        ):
            for (source, detail), (n, first, last) in sorted(rows.items()):
                log.log(level, template, n, source, first, last, currency, detail)


_FALLBACK_LOG = (
    "fx: ECB unreachable: %d %s cost row(s) of %s..%s converted to %s with the fallback rate "
    "of %s; re-converted when the rate of their day arrives"
)
_ERROR_LOG = (
    "fx: %d %s cost row(s) of %s..%s cannot be converted to %s (%s); stored unconverted, their "
    "money metrics are withheld"
)
