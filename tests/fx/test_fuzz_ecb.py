"""Fuzzing the ECB readers (Hypothesis): the XML files and the bundled CSV history in a zip.

Mutations start from what the ECB (and the fake ECB) really serve. Properties: a reader
returns rates that are all finite and positive, or raises ``EcbFormatError``, nothing else.
"""

from __future__ import annotations

import io
import sqlite3
import zipfile
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.config import validate
from exporter.demo.ecb import EcbRates, FakeEcbServer, render_xml
from exporter.fx.ecb import BundledHistory, EcbFormatError, parse_xml
from exporter.fx.service import FxService
from exporter.records import CostRecord, FetchResult
from exporter.store import Store
from tests.fuzzing import fuzz_settings, mutated_bytes
from tests.fx_scenario import ECB_RATES, FX_TODAY

RATES = EcbRates.generate(date(2026, 3, 2), date(2026, 3, 13), seed=5)
XML = render_xml(sorted(RATES.rates, reverse=True), RATES.rates)
CSV = (
    b"Date,USD,JPY,BGN,CYP,\n"
    b"2026-03-13,1.0850,162.31,N/A,N/A,\n"
    b"2026-03-12,1.0822,161.90,N/A,N/A,\n"
    b"1999-01-04,1.1789,133.73,N/A,0.58231,\n"
)


def _sane(rates: dict[date, dict[str, Decimal]]) -> None:
    for day, by_currency in rates.items():
        assert isinstance(day, date)
        for value in by_currency.values():
            assert value.is_finite() and value > 0


def test_the_unmutated_documents_parse() -> None:
    assert parse_xml(XML) == RATES.rates


# Text-level edits that keep the XML well-formed, so the checks below the parser run.
xml_edits = st.sampled_from(
    [
        (b"rate='", b"rate='-"),
        (b"rate='", b"rate='x"),
        (b"rate='1", b"rate='1e999999"),
        (b"currency='USD'", b"currency='usd'"),
        (b"currency='USD'", b"currency=''"),
        (b"time='2026-03-1", b"time='2026-13-1"),
        (b"time='", b"tim='"),
        (b"<Cube currency", b"<Cub currency"),
        (b'xmlns="http://www.ecb.int', b'xmlns="http://www.ecb.example'),
        (b"gesmes:Envelope", b"gesmes:Envelop"),
        (b"\t\t\t<Cube currency='USD'", b"\t\t\t<Cube currency='USD' rate='2'/><Cube x='1'"),
    ]
)


@fuzz_settings(examples=150)
@given(
    body=st.one_of(
        mutated_bytes(XML),
        st.tuples(xml_edits, st.integers(1, 3)).map(lambda e: XML.replace(e[0][0], e[0][1], e[1])),
        st.binary(max_size=64),
    )
)
def test_a_mutated_ecb_xml_file_gives_rates_or_a_format_error(body: bytes) -> None:
    try:
        rates = parse_xml(body)
    except EcbFormatError:
        return
    _sane(rates)


def _zip(csv: bytes, name: str = "eurofxref-hist.csv") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, csv)
    return out.getvalue()


@fuzz_settings(examples=150)
@given(
    archive=st.one_of(
        mutated_bytes(CSV).map(_zip),
        mutated_bytes(_zip(CSV)),
        st.just(_zip(CSV, "readme.txt")),
        st.just(_zip(b"")),
    )
)
def test_a_mutated_bundled_history_gives_rates_or_a_format_error(
    archive: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("ecb") / "eurofxref-hist.zip"
    path.write_bytes(archive)
    try:
        history = BundledHistory(str(path))
        rates = {
            day: {c: history.series(c)[day] for c in history.currencies_on(day)}
            for day in history.days
        }
    except EcbFormatError:
        return
    _sane(rates)


# -- the FX service: a mutated ECB file never reaches the rate cache half-read ------------


def _ecb_replay(fake: FakeEcbServer, mutate: Callable[[bytes], bytes]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        served = fake.handle(request.method, request.url.raw_path.decode(), {})
        return httpx.Response(served.status, content=mutate(served.body))

    return httpx.MockTransport(answer)


def _cache(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        lines = [line for line in conn.iterdump() if "fx_" in line]
    conn.close()
    return lines


@fuzz_settings(examples=40)
@given(data=st.data())
def test_a_mutated_ecb_download_is_stored_whole_or_not_at_all(
    data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    now = datetime.combine(FX_TODAY, time(17, 0), UTC)
    fake = FakeEcbServer(ECB_RATES, now=lambda: now)
    db = tmp_path_factory.mktemp("fx") / "history.db"
    store = Store(db)
    day = FX_TODAY - timedelta(days=1)
    cost = CostRecord("openai", "a", day, "p", "m", "tokens", Decimal("12.5"))
    store.replace_window("openai", "a", FetchResult(day, FX_TODAY, costs=[cost]))
    config = validate({"currency": "EUR", "fx": {"base_url": "http://ecb.invalid/stats"}})
    clean = fake.handle("GET", "/stats/eurofxref/eurofxref-daily.xml", {}).body
    body = data.draw(mutated_bytes(clean), label="daily file")
    fx = FxService(config, store, clock=lambda: now, transport=_ecb_replay(fake, lambda _: body))
    try:
        before = _cache(db)
        fx.refresh_rates()  # a failure is counted and logged, never raised
        if fx.health.last_refresh_failed:
            assert _cache(db) == before
            assert sum(fx.health.refresh_errors.values()) == 1
        else:
            assert _sane(parse_xml(body)) is None  # what was stored parsed completely
    finally:
        fx.close()
        store.close()
