"""Fuzzing the ECB readers (Hypothesis): the XML files and the bundled CSV history in a zip.

Mutations start from what the ECB (and the fake ECB) really serve. Properties: a reader
returns rates that are all finite and positive, or raises ``EcbFormatError``, nothing else.
"""

from __future__ import annotations

import io
import zipfile
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.demo.ecb import EcbRates, render_xml
from exporter.fx.ecb import BundledHistory, EcbFormatError, parse_xml
from tests.fuzzing import fuzz_settings, mutated_bytes

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
