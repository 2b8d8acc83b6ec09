"""The fake ECB server speaks the real files: namespaces, quoting, calendar, 16:00 switch."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest

from exporter.demo.ecb import EcbRates, FakeEcbServer, berlin_time
from exporter.demo.openai import Fault
from exporter.fx.ecb import EcbFormatError, parse_xml

# 2026: Good Friday 3 April, Easter Monday 6 April, 1 May a Friday.
RATES = EcbRates.generate(date(2026, 3, 20), date(2026, 5, 8), seed=5)


def get(server: FakeEcbServer, name: str) -> httpx.Response:
    return httpx.get(f"{server.base_url}/{name}", timeout=5)


def test_files_use_the_ecb_namespaces_and_single_quoted_attributes() -> None:
    clock = datetime(2026, 5, 8, 15, 0, tzinfo=UTC)  # 17:00 CEST
    with FakeEcbServer(RATES, now=lambda: clock) as server:
        body = get(server, "eurofxref-daily.xml").text
    assert 'xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01"' in body
    assert 'xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref"' in body
    assert "<Cube time='2026-05-08'>" in body
    assert f"<Cube currency='USD' rate='{RATES.rate('USD', date(2026, 5, 8))}'/>" in body
    assert parse_xml(body.encode()) == {date(2026, 5, 8): RATES.rates[date(2026, 5, 8)]}


def test_no_rates_on_weekends_and_target_holidays() -> None:
    days = set(RATES.rates)
    for closed in ("2026-04-03", "2026-04-06", "2026-05-01", "2026-05-02", "2026-05-03"):
        assert date.fromisoformat(closed) not in days
    assert date(2026, 4, 2) in days and date(2026, 4, 7) in days
    clock = datetime(2026, 5, 8, 15, 0, tzinfo=UTC)
    with FakeEcbServer(RATES, now=lambda: clock) as server:
        hist = parse_xml(get(server, "eurofxref-hist.xml").content)
    assert set(hist) == days
    assert list(hist) == sorted(days, reverse=True)  # newest first, like the ECB


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 5, 7, 13, 59, tzinfo=UTC), date(2026, 5, 6)),  # 15:59 CEST
        (datetime(2026, 5, 7, 14, 0, tzinfo=UTC), date(2026, 5, 7)),  # 16:00 CEST
        (datetime(2026, 3, 23, 14, 30, tzinfo=UTC), date(2026, 3, 20)),  # 15:30 CET, Monday
        (datetime(2026, 3, 23, 15, 0, tzinfo=UTC), date(2026, 3, 23)),  # 16:00 CET
        (datetime(2026, 5, 2, 12, 0, tzinfo=UTC), date(2026, 4, 30)),  # Saturday after 1 May
    ],
)
def test_daily_file_switches_at_1600_berlin_time(now: datetime, expected: date) -> None:
    with FakeEcbServer(RATES, now=lambda: now) as server:
        assert list(parse_xml(get(server, "eurofxref-daily.xml").content)) == [expected]


def test_berlin_time_follows_the_eu_summer_time_rule() -> None:
    assert berlin_time(datetime(2026, 3, 29, 0, 59, tzinfo=UTC)).hour == 1  # CET
    assert berlin_time(datetime(2026, 3, 29, 1, 0, tzinfo=UTC)).hour == 3  # CEST
    assert berlin_time(datetime(2026, 10, 25, 0, 59, tzinfo=UTC)).hour == 2  # CEST
    assert berlin_time(datetime(2026, 10, 25, 1, 0, tzinfo=UTC)).hour == 2  # CET


def test_ninety_day_file_holds_the_last_ninety_days_only() -> None:
    rates = EcbRates.generate(date(2025, 10, 1), date(2026, 3, 18), seed=2)
    clock = datetime(2026, 3, 18, 16, 0, tzinfo=UTC)
    with FakeEcbServer(rates, now=lambda: clock) as server:
        days = list(parse_xml(get(server, "eurofxref-hist-90d.xml").content))
    assert days[0] == date(2026, 3, 18) and days[-1] > date(2025, 12, 18)
    assert {d for d in rates.rates if d > date(2025, 12, 18)} == set(days)


def test_faults_500_truncated_and_stopped() -> None:
    clock = datetime(2026, 5, 8, 15, 0, tzinfo=UTC)
    server = FakeEcbServer(RATES, now=lambda: clock).start()
    try:
        server.inject(Fault(path_contains="daily", status=500))
        assert get(server, "eurofxref-daily.xml").status_code == 500
        server.inject(Fault(path_contains="daily", truncate=True))
        truncated = get(server, "eurofxref-daily.xml")
        assert truncated.status_code == 200
        with pytest.raises(EcbFormatError):
            parse_xml(truncated.content)
        assert get(server, "eurofxref-daily.xml").status_code == 200  # faults are used up
        assert get(server, "nope.xml").status_code == 404
        url = server.base_url
        server.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/eurofxref-daily.xml", timeout=2)
        server.start()
        assert server.base_url == url
        assert get(server, "eurofxref-daily.xml").status_code == 200
    finally:
        server.stop()


def test_rates_are_exact_decimals_with_the_ecb_precision() -> None:
    day = date(2026, 4, 2)
    assert RATES.rate("USD", day).as_tuple().exponent == -4
    assert RATES.rate("GBP", day).as_tuple().exponent == -5
    assert RATES.rate("JPY", day).as_tuple().exponent == -2
    assert all(isinstance(r, Decimal) for r in RATES.rates[day].values())
