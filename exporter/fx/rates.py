"""Rates and conversion: the rate of a cost's own day, the cross through EUR, the audit
columns a converted cost row carries (see the package docstring for the rules)."""

from __future__ import annotations

import bisect
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from exporter.fx import ecb
from exporter.records import CostRecord

log = logging.getLogger(__name__)

MAX_STALENESS_DAYS = 5
DEFAULT_SOURCE_CURRENCY = "USD"  # what providers bill in, assumed while nothing is stored
CONVERSION_ERRORS: tuple[str, ...] = ("no_rate", "stale")
REFRESH_ERRORS: tuple[str, ...] = ("upstream", "timeout", "parse")
FINAL, PROVISIONAL, ERROR = "final", "provisional", "error"
# Rates keep 28 significant digits; a stored converted amount 12 decimals (stored_amount).
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


STORED_EXPONENT = Decimal("1E-12")  # a stored converted amount: pico-units of its currency
_QUANTIZE = Context(prec=60)  # room for the integer digits of any amount at 12 decimals


def stored_amount(converted: Decimal) -> Decimal:
    """A cost row's converted amount as it is stored: rounded half-even to 12 decimals
    (pico-units, the integer the history keeps and the refresh's arrays sum; a cross
    rate gives 28 significant digits that no integer holds). The rate stays exact in the
    audit columns, so amount x rate traces the stored value to within 5e-13; an amount
    with at most 12 decimals is kept as it is."""
    exponent = converted.as_tuple().exponent
    if not isinstance(exponent, int) or exponent >= -12:
        return converted
    return converted.quantize(STORED_EXPONENT, ROUND_HALF_EVEN, _QUANTIZE)


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
        "fx_amount": format(
            record.amount
            if rate.source == ecb.IDENTITY
            else stored_amount(rate.convert(record.amount)),
            "f",
        ),
        "fx_currency": currency,
        "fx_rate": format(rate.value, "f"),
        "fx_rate_date": rate.rate_date.isoformat(),
        "fx_source": rate.source,
        "fx_status": rate.status,
        "fx_error": None,
    }
