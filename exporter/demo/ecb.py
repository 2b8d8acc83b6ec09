"""A fake ECB euro reference rate service on loopback (reference ``provider-apis.md`` §7).

Serves ``<base>/eurofxref-daily.xml``, ``eurofxref-hist-90d.xml`` and ``eurofxref-hist.xml``
under ``/stats/eurofxref`` like the real site:

* the gesmes envelope with the ``gesmes`` and default eurofxref namespaces, three levels
  of ``Cube``, single-quoted attributes, newest day first;
* rates only on TARGET working days (no weekends, 1 January, Good Friday, Easter Monday,
  1 May, 25/26 December), plus any extra ``closed`` days;
* a day's rates appear at 16:00 Europe/Berlin (CET/CEST) by the injected clock: before
  that the daily file still holds the previous working day;
* faults: a stopped server refuses connections; :class:`Fault` scripts an HTTP status
  (500) or a truncated body.

The rate table (:class:`EcbRates`) is the fake's truth: tests compute expected conversions
from it independently of ``exporter.fx``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

from exporter.demo.http import FakeHTTPServer, RecordedRequest, Response
from exporter.fx.ecb import DAILY, EUROFXREF_NS, GESMES_NS, HIST, HIST_90D, is_target_working_day

PREFIX = "/stats/eurofxref"
PUBLICATION = time(16, 0)  # Europe/Berlin

# Start values and quoted decimals, roughly the ECB's (units per 1 EUR).
CURRENCIES: dict[str, tuple[str, int]] = {
    "USD": ("1.0850", 4),
    "JPY": ("161.20", 2),
    "GBP": ("0.85310", 5),
    "CHF": ("0.9460", 4),
    "AUD": ("1.6420", 4),
    "CAD": ("1.4710", 4),
    "SEK": ("11.2450", 4),
}


@dataclass
class EcbRates:
    """{day: {currency: units per 1 EUR}}, TARGET working days only."""

    rates: dict[date, dict[str, Decimal]] = field(default_factory=dict)

    @classmethod
    def generate(
        cls,
        start: date,
        end: date,
        seed: int = 11,
        closed: Iterable[date] = (),
        currencies: Iterable[str] = tuple(CURRENCIES),
    ) -> EcbRates:
        """A seeded random walk for the working days in ``[start, end]``."""
        rng = random.Random(seed)
        closed_days = set(closed)
        level = {c: float(CURRENCIES[c][0]) for c in currencies}
        rates: dict[date, dict[str, Decimal]] = {}
        day = start
        while day <= end:
            if is_target_working_day(day) and day not in closed_days:
                rates[day] = {}
                for c in level:
                    level[c] *= 1 + rng.gauss(0, 0.004)
                    rates[day][c] = Decimal(f"{level[c]:.{CURRENCIES[c][1]}f}")
            day += timedelta(days=1)
        return cls(rates)

    def rate(self, currency: str, day: date) -> Decimal:
        return self.rates[day][currency]

    def published(self, now: datetime) -> list[date]:
        """Days whose rates are out at ``now``, newest first."""
        local = berlin_time(now)
        cutoff = local.date() if local.time() >= PUBLICATION else local.date() - timedelta(days=1)
        return sorted((d for d in self.rates if d <= cutoff), reverse=True)


def berlin_time(now: datetime) -> datetime:
    """Naive Europe/Berlin wall time: CET, CEST from the last Sunday of March 01:00 UTC to
    the last Sunday of October 01:00 UTC (the EU rule)."""
    utc = now.astimezone(UTC).replace(tzinfo=None)

    def last_sunday(month: int) -> datetime:
        day = date(utc.year, month + 1, 1) - timedelta(days=1)
        day -= timedelta(days=(day.weekday() + 1) % 7)
        return datetime.combine(day, time(1, 0))

    summer = last_sunday(3) <= utc < last_sunday(10)
    return utc + timedelta(hours=2 if summer else 1)


def render_xml(days: Iterable[date], rates: dict[date, dict[str, Decimal]]) -> bytes:
    """The ECB envelope, in the real file's layout (single-quoted Cube attributes)."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<gesmes:Envelope xmlns:gesmes="{GESMES_NS}" xmlns="{EUROFXREF_NS}">',
        "\t<gesmes:subject>Reference rates</gesmes:subject>",
        "\t<gesmes:Sender>",
        "\t\t<gesmes:name>European Central Bank</gesmes:name>",
        "\t</gesmes:Sender>",
        "\t<Cube>",
    ]
    for day in days:
        lines.append(f"\t\t<Cube time='{day.isoformat()}'>")
        for currency, rate in rates[day].items():
            lines.append(f"\t\t\t<Cube currency='{currency}' rate='{rate}'/>")
        lines.append("\t\t</Cube>")
    lines += ["\t</Cube>", "</gesmes:Envelope>", ""]
    return "\n".join(lines).encode()


class FakeEcbServer(FakeHTTPServer[EcbRates]):
    """Serves an :class:`EcbRates` on loopback; ``now`` (any tz) decides what is published.

    The loopback lifecycle, fault queue and request log are the fake servers' shared ones
    (inherited); only :meth:`handle` speaks ECB. Use as a context manager and point
    ``fx.base_url`` at :attr:`base_url`. :meth:`stop` then :meth:`start` again keeps the
    port, so a client sees "connection refused" in between.
    """

    name = "fake-ecb"

    def __init__(
        self,
        rates: EcbRates,
        now: Callable[[], datetime] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(rates, host=host, port=port, now=now)

    @property
    def rates(self) -> EcbRates:
        return self.org

    def start(self) -> FakeEcbServer:
        super().start()
        self._requested_port = self.port  # a restart binds the same port again
        return self

    @property
    def base_url(self) -> str:
        """Valid while stopped too (it then refuses connections)."""
        return f"http://{self.host}:{self._requested_port}{PREFIX}"

    def files_requested(self) -> list[str]:
        return [r.path.rsplit("/", 1)[-1] for r in self.requests]

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        """Answer one request (called by the HTTP layer)."""
        path = urlsplit(target).path
        with self.lock:
            self._requests.append(RecordedRequest(method, path, [], dict(headers)))
        fault = self._take_fault(target)
        if fault is not None and fault.status is not None:
            return Response(fault.status, b"<html><body>Internal error</body></html>", _HTML)
        response = self._ecb_file(method, path)
        if fault is not None and fault.truncate:
            response = replace(response, body=response.body[: len(response.body) // 2])
        return response

    def _ecb_file(self, method: str, path: str) -> Response:
        if method != "GET":
            return Response(405, b"method not allowed", _HTML)
        directory, _, name = path.rpartition("/")
        if directory != PREFIX or name not in (DAILY, HIST_90D, HIST):
            return Response(404, b"<html><body>Not found</body></html>", _HTML)
        with self.lock:
            published = self.rates.published(self.now())
            if name == DAILY:
                days = published[:1]
            elif name == HIST_90D:
                days = [d for d in published if published and d > published[0] - _NINETY]
            else:
                days = published
            body = render_xml(days, self.rates.rates)
        return Response(200, body, {"Content-Type": "text/xml"})


_HTML = {"Content-Type": "text/html"}
_NINETY = timedelta(days=90)
