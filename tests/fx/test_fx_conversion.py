"""Costs converted at the ECB rate of their own day, end to end over loopback HTTP.

A fake OpenAI org bills in USD; a fake ECB serves rates; the real scheduler polls, fetches,
converts and renders. Expected values are computed in ``tests/fx_scenario.py`` from the
fake ECB's own rate table, independently of ``exporter.fx``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest

from exporter.analytics.windows import windows_for
from exporter.app import App, build
from exporter.clock import midnight_ts
from exporter.demo.ecb import FakeEcbServer
from exporter.demo.openai import FakeOpenAIOrg, FakeOpenAIServer, Fault, generate_org
from tests.conftest import ALL_FAMILIES, KEY_ENV, make_config
from tests.fx_scenario import (
    AFTER_PUBLICATION,
    BEFORE_PUBLICATION,
    ECB_RATES,
    FX_TODAY,
    MutableClock,
    days_between,
    truth_converted,
    truth_rate,
)
from tests.helpers import parse_exposition
from tests.oracles.openai import truth_costs

YESTERDAY = FX_TODAY - timedelta(days=1)
ALL_DAYS = (FX_TODAY - timedelta(days=400), FX_TODAY + timedelta(days=1))


@pytest.fixture(scope="module")
def base_fx_org() -> FakeOpenAIOrg:
    return generate_org(today=FX_TODAY, days=60, seed=3)


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock(AFTER_PUBLICATION)


@pytest.fixture
def openai(base_fx_org: FakeOpenAIOrg, clock: MutableClock) -> Iterator[FakeOpenAIServer]:
    org = FakeOpenAIOrg(
        admin_key=base_fx_org.admin_key,
        projects=list(base_fx_org.projects),
        api_keys=dict(base_fx_org.api_keys),
        usage=list(base_fx_org.usage),
        costs=list(base_fx_org.costs),
    )
    with FakeOpenAIServer(org, now=clock) as server:
        yield server


@pytest.fixture
def ecb_server(clock: MutableClock) -> Iterator[FakeEcbServer]:
    with FakeEcbServer(ECB_RATES, now=clock) as server:
        yield server


def service_for(
    tmp_path: Path,
    openai: FakeOpenAIServer,
    ecb_server: FakeEcbServer,
    clock: MutableClock,
    currency: str,
    storage: str,
) -> App:
    config = make_config(
        tmp_path, openai.base_url, currency=currency, fx={"base_url": ecb_server.base_url},
        metrics=ALL_FAMILIES,  # every per-stream window is checked
        storage={"path": storage},
    )  # fmt: skip
    return build(config, clock=clock, env={KEY_ENV: openai.org.admin_key})


@pytest.fixture
def make_service(
    tmp_path: Path,
    openai: FakeOpenAIServer,
    ecb_server: FakeEcbServer,
    clock: MutableClock,
    storage_path: str,
) -> Iterator[Callable[[str], App]]:
    """Services on one history (a new one = a restart), stopped after the test; on SQLite
    and on PostgreSQL."""
    services: list[App] = []

    def make(currency: str) -> App:
        services.append(service_for(tmp_path, openai, ecb_server, clock, currency, storage_path))
        return services[-1]

    yield make
    for service in services:
        service.stop()


def samples_of(service: App) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse_exposition(service.rendered.text.decode())


def money(service: App, window: str) -> dict[tuple[str, str, str], tuple[float, str]]:
    """(project, model, cost_type) -> (value, currency) of one aicost_cost_<window>."""
    out = {}
    for (name, labels), value in samples_of(service).items():
        if name == f"aicost_cost_{window}":
            d = dict(labels)
            out[(d["project"], d["model"], d["cost_type"])] = (value, d["currency"])
    return out


PICO = Decimal("1E-12")


def assert_windows_equal_truth(
    service: App, org: FakeOpenAIOrg, currency: str, rates_at: datetime
) -> None:
    for w in windows_for(FX_TODAY):
        want = truth_converted(org, ECB_RATES, rates_at, currency, days_between(w.start, w.end))
        got = money(service, w.name)
        assert {k for k, v in want.items() if v} == {k for k, (v, _) in got.items() if v}, w
        for key, amount in want.items():
            value, label = got[key]
            assert label == currency
            assert round(Decimal(repr(value)), 2) == round(amount, 2), (w.name, key)
            assert abs(Decimal(repr(value)) - amount) < Decimal("1e-9"), (w.name, key)


def sample(service: App, name: str, **labels: str) -> float:
    return samples_of(service)[(name, frozenset(labels.items()))]


def audit(service: App, day: date) -> list[dict[str, Any]]:
    return service.store.cost_audit(day)


# -- exactness -----------------------------------------------------------------------------


@pytest.mark.parametrize("currency", ["EUR", "GBP"])
def test_every_money_window_equals_the_ecb_rate_of_each_day(
    make_service: Callable[[str], App],
    openai: FakeOpenAIServer,
    ecb_server: FakeEcbServer,
    clock: MutableClock,
    currency: str,
) -> None:
    service = make_service(currency)
    assert service.poll_once()
    assert_windows_equal_truth(service, openai.org, currency, AFTER_PUBLICATION)
    # a month of days, one by one: the stored audit trail against the independent truth
    for day in days_between(FX_TODAY - timedelta(days=30), FX_TODAY + timedelta(days=1)):
        rows = audit(service, day)
        want = sum(truth_converted(openai.org, ECB_RATES, clock.now, currency, [day]).values())
        got = sum(Decimal(r["fx_amount"]) for r in rows)
        assert round(got, 2) == round(want, 2), day
        for r in rows:
            rate = truth_rate(ECB_RATES, clock.now, "USD", currency, day)
            assert Decimal(r["fx_rate"]) == rate and r["fx_status"] == "final"
            exact = Decimal(r["amount"]) * rate  # stored at 12 decimals, half-even
            assert Decimal(r["fx_amount"]) == exact.quantize(PICO, ROUND_HALF_EVEN)
            assert r["fx_rate_date"] <= day.isoformat() and r["fx_source"].startswith("ecb-")
    labels = {"base": "USD", "quote": currency}
    assert sample(service, "aicost_fx_rate", **labels, source="ecb-daily") == float(
        truth_rate(ECB_RATES, clock.now, "USD", currency, FX_TODAY)
    )
    assert sample(service, "aicost_fx_rate_date_timestamp_seconds", **labels) == midnight_ts(
        FX_TODAY
    )
    # the daily file, then the 90-day file to fill the days after the bundled history
    assert ecb_server.files_requested() == ["eurofxref-daily.xml", "eurofxref-hist-90d.xml"]


def test_weekend_and_holiday_costs_carry_the_previous_working_days_rate(
    make_service: Callable[[str], App],
) -> None:
    service = make_service("EUR")
    assert service.poll_once()
    year = FX_TODAY.year - 1
    expected = {
        date(year, 12, 25): max(d for d in ECB_RATES.rates if d < date(year, 12, 25)),
        date(year, 12, 26): max(d for d in ECB_RATES.rates if d < date(year, 12, 25)),
        date(year + 1, 1, 1): date(year, 12, 31),
    }
    for day, rate_day in expected.items():
        rows = audit(service, day)
        assert rows and {r["fx_rate_date"] for r in rows} == {rate_day.isoformat()}, day
        assert {r["fx_status"] for r in rows} == {"final"}


def test_usd_accounting_needs_no_ecb_request_and_uses_identity(
    make_service: Callable[[str], App], openai: FakeOpenAIServer, ecb_server: FakeEcbServer
) -> None:
    service = make_service("USD")
    assert service.poll_once()
    service.fx_refresh()
    assert ecb_server.requests == []
    assert sample(service, "aicost_fx_rate", base="USD", quote="USD", source="identity") == 1.0
    for w in windows_for(FX_TODAY):
        want = truth_costs(openai.org, w.start, w.end)
        got = money(service, w.name)
        for key, amount in want.items():
            assert got[key][1] == "USD"
            assert abs(Decimal(repr(got[key][0])) - amount) < Decimal("1e-9")
    assert {r["fx_source"] for r in audit(service, YESTERDAY)} == {"identity"}


# -- late rates and outages ----------------------------------------------------------------


def test_todays_costs_are_reconverted_when_the_days_rate_is_published(
    make_service: Callable[[str], App], openai: FakeOpenAIServer, clock: MutableClock
) -> None:
    clock.now = BEFORE_PUBLICATION  # 14:00 CET: the daily file still holds yesterday
    service = make_service("EUR")
    assert service.poll_once()
    today = audit(service, FX_TODAY)
    assert today and {(r["fx_status"], r["fx_rate_date"]) for r in today} == {
        ("provisional", YESTERDAY.isoformat())
    }
    assert {r["fx_status"] for r in audit(service, YESTERDAY)} == {"final"}
    labels = {"base": "USD", "quote": "EUR"}
    assert sample(service, "aicost_fx_rate_date_timestamp_seconds", **labels) == midnight_ts(
        YESTERDAY
    )
    assert_windows_equal_truth(service, openai.org, "EUR", BEFORE_PUBLICATION)

    clock.now = AFTER_PUBLICATION  # 16:30 CET: today's rate is out
    service.fx_refresh()
    today = audit(service, FX_TODAY)
    assert {(r["fx_status"], r["fx_rate_date"]) for r in today} == {("final", FX_TODAY.isoformat())}
    assert sample(service, "aicost_fx_rate_date_timestamp_seconds", **labels) == midnight_ts(
        FX_TODAY
    )
    assert_windows_equal_truth(service, openai.org, "EUR", AFTER_PUBLICATION)


@pytest.mark.parametrize("outage", ["connection_refused", "http_500", "truncated_xml"])
def test_ecb_outage_falls_back_to_the_newest_cached_rate_and_says_so(
    make_service: Callable[[str], App],
    openai: FakeOpenAIServer,
    ecb_server: FakeEcbServer,
    clock: MutableClock,
    caplog: pytest.LogCaptureFixture,
    outage: str,
) -> None:
    clock.now = AFTER_PUBLICATION - timedelta(days=1)  # yesterday 16:30 CET: all well
    service = make_service("EUR")
    assert service.poll_once()
    clock.now = AFTER_PUBLICATION
    if outage == "connection_refused":
        ecb_server.stop()
    else:
        fault = Fault(status=500) if outage == "http_500" else Fault(truncate=True)
        ecb_server.inject(fault)
    caplog.set_level(logging.INFO, logger="exporter.fx")
    assert service.poll_once()  # the providers' poll is unaffected
    source_during = service.store.costs_between(*ALL_DAYS)
    assert "ECB refresh failed" in caplog.text and "fallback rate" in caplog.text
    reason = "parse" if outage == "truncated_xml" else "upstream"
    assert sample(service, "aicost_fx_refresh_errors_total", reason=reason) == 1
    labels = {"base": "USD", "quote": "EUR"}
    assert sample(service, "aicost_fx_rate_date_timestamp_seconds", **labels) == midnight_ts(
        YESTERDAY
    )
    assert {r["fx_status"] for r in audit(service, FX_TODAY)} == {"provisional"}
    # the newest cached rate (yesterday's) is what was published before the outage
    assert_windows_equal_truth(service, openai.org, "EUR", AFTER_PUBLICATION - timedelta(days=1))

    if outage == "connection_refused":
        ecb_server.start()
    service.fx_refresh()  # the ECB is back
    assert service.store.costs_between(*ALL_DAYS) == source_during  # source amounts untouched
    want = truth_costs(openai.org, min(c.day for c in source_during), ALL_DAYS[1])
    got: dict[tuple[str, str, str], Decimal] = {}
    for c in source_during:
        key = (c.project, c.model, c.cost_type)
        got[key] = got.get(key, Decimal(0)) + c.amount
        assert c.currency == "USD"
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}
    assert {r["fx_status"] for r in audit(service, FX_TODAY)} == {"final"}
    assert_windows_equal_truth(service, openai.org, "EUR", AFTER_PUBLICATION)


def test_no_rate_at_all_withholds_the_money_and_counts_the_records(
    make_service: Callable[[str], App],
    openai: FakeOpenAIServer,
    ecb_server: FakeEcbServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ecb_server.stop()  # unreachable from the start; the bundled history ends weeks earlier
    service = make_service("EUR")
    caplog.set_level(logging.INFO, logger="exporter.fx")
    assert service.poll_once()
    rows = service.store.cost_audit(YESTERDAY)
    assert rows and all(r["fx_status"] == "error" and r["fx_error"] == "stale" for r in rows)
    assert all(r["fx_amount"] is None for r in rows)
    samples = samples_of(service)
    assert not [k for k in samples if k[0].startswith("aicost_cost_")]  # withheld, never 1.0
    assert [k for k in samples if k[0] == "aicost_tokens_30d"]  # tokens are still there
    n = len(service.store.costs_between(*ALL_DAYS))
    labels = {"base": "USD", "quote": "EUR"}
    assert sample(service, "aicost_fx_unconverted_costs", **labels, reason="stale") == n
    assert sample(service, "aicost_fx_unconverted_costs", **labels, reason="no_rate") == 0
    # the newest rate known keeps its own (old) date, so AICostFxRateStale can fire
    rate_date = samples[("aicost_fx_rate_date_timestamp_seconds", frozenset(labels.items()))]
    assert rate_date < midnight_ts(YESTERDAY) - 5 * 86400
    assert "cannot be converted to EUR (stale)" in caplog.text

    ecb_server.start()
    service.fx_refresh()
    assert sample(service, "aicost_fx_unconverted_costs", **labels, reason="stale") == 0
    assert_windows_equal_truth(service, openai.org, "EUR", AFTER_PUBLICATION)


# -- currency changes ----------------------------------------------------------------------


def test_changing_the_currency_recomputes_every_amount_from_the_source(
    make_service: Callable[[str], App], openai: FakeOpenAIServer, ecb_server: FakeEcbServer
) -> None:
    first = make_service("EUR")
    assert first.poll_once()
    source = first.store.costs_between(*ALL_DAYS)
    first.stop()
    ecb_server.clear_requests()
    second = make_service("GBP")  # restart, no poll yet
    assert second.store.costs_between(*ALL_DAYS) == source
    assert_windows_equal_truth(second, openai.org, "GBP", AFTER_PUBLICATION)
    assert {r["fx_currency"] for r in audit(second, YESTERDAY)} == {"GBP"}
    assert not [k for k in samples_of(second) if ("currency", "EUR") in k[1]]
    assert ecb_server.requests == []  # the cached ECB files hold GBP too
