"""xAI billing state in a non-USD accounting currency, end to end over loopback HTTP.

The fake xAI team bills in USD; a fake ECB serves rates; the real scheduler polls,
converts and renders. Expected values come from the fake ECB's rate table
(``tests/fx_scenario.py``) and the fake team's own truth, independently of ``exporter.fx``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from exporter.app import App, build
from exporter.config import validate
from exporter.demo.ecb import FakeEcbServer
from exporter.demo.xai import FakeXaiServer, FakeXaiTeam, generate_team
from tests.fx_scenario import AFTER_PUBLICATION, ECB_RATES, FX_TODAY, MutableClock, truth_rate
from tests.helpers import parse_exposition
from tests.oracles.xai import truth_period_usd, truth_prepaid_remaining, truth_preview_total

KEY_ENV = "AICOST_TEST_XAI_KEY"
BILLING = ("aicost_prepaid_balance", "aicost_spending_limit", "aicost_invoice_preview",
           "aicost_invoice_preview_gap")  # fmt: skip


@pytest.fixture(scope="module")
def base_team() -> FakeXaiTeam:
    return generate_team(today=FX_TODAY, days=60, seed=5)


@pytest.fixture
def clock() -> MutableClock:
    return MutableClock(AFTER_PUBLICATION)


@pytest.fixture
def fake(base_team: FakeXaiTeam, clock: MutableClock) -> Iterator[FakeXaiServer]:
    with FakeXaiServer(replace(base_team, usage=list(base_team.usage)), now=clock) as server:
        yield server


@pytest.fixture
def ecb_server(clock: MutableClock) -> Iterator[FakeEcbServer]:
    with FakeEcbServer(ECB_RATES, now=clock) as server:
        yield server


def make_service(tmp_path: Path, fake: FakeXaiServer, ecb_url: str, clock: MutableClock) -> App:
    config = validate(
        {
            "storage": {"path": str(tmp_path / "history.db")},
            "currency": "EUR",
            "fx": {"base_url": ecb_url},
            "poll": {"backfill_days": 45, "timeout": "1s", "max_attempts": 2,
                     "backoff_initial": "10ms", "backoff_max": "20ms"},
            "providers": [{"type": "xai", "name": "grok", "base_url": fake.base_url,
                           "api_key_env": KEY_ENV, "team_id": fake.team.team_id}],
        }
    )  # fmt: skip
    return build(config, clock=clock, env={KEY_ENV: fake.team.management_key})


def billing_samples(service: App) -> dict[tuple[str, str], float]:
    """(metric, currency) -> value of the billing gauges."""
    return {
        (name, dict(labels)["currency"]): value
        for (name, labels), value in parse_exposition(service.rendered.text.decode()).items()
        if name in BILLING
    }


def test_billing_is_converted_at_the_rate_of_the_day_it_was_observed(
    tmp_path: Path, fake: FakeXaiServer, ecb_server: FakeEcbServer, clock: MutableClock
) -> None:
    svc = make_service(tmp_path, fake, ecb_server.base_url, clock)
    try:
        assert svc.poll_once()
        svc.refresh()
        team = fake.team
        rate = truth_rate(ECB_RATES, clock.now, "USD", "EUR", FX_TODAY)
        # The gap in the billed currency first (preview total vs the daily USD costs of the
        # month), then converted: the daily costs' own-day rates play no part in it.
        gap = truth_preview_total(team, FX_TODAY) - truth_period_usd(team, FX_TODAY)
        want = {
            ("aicost_prepaid_balance", "EUR"): truth_prepaid_remaining(team, FX_TODAY) * rate,
            ("aicost_spending_limit", "EUR"): Decimal(team.spending_limit_cents or 0) / 100 * rate,
            ("aicost_invoice_preview", "EUR"): truth_preview_total(team, FX_TODAY) * rate,
            ("aicost_invoice_preview_gap", "EUR"): gap * rate,
        }
        got = billing_samples(svc)
        assert set(got) == set(want)  # nothing labelled USD
        for key, value in want.items():
            assert got[key] == pytest.approx(float(value), rel=1e-12), key
        assert rate != 1
    finally:
        svc.stop()


def test_billing_without_a_rate_is_withheld_with_a_warning_never_shown_as_usd(
    tmp_path: Path, fake: FakeXaiServer, clock: MutableClock, caplog: pytest.LogCaptureFixture
) -> None:
    ecb = FakeEcbServer(ECB_RATES, now=clock)
    with ecb:
        url = ecb.base_url
    # The ECB is unreachable and the bundled history ends long before FX_TODAY: no rate.
    with caplog.at_level(logging.WARNING):
        svc = make_service(tmp_path, fake, url, clock)
        try:
            assert svc.poll_once()
            svc.refresh()
            svc.refresh()
            assert billing_samples(svc) == {}
        finally:
            svc.stop()
    withheld = [
        r.getMessage() for r in caplog.records if "withheld: no USD->EUR rate" in r.getMessage()
    ]
    assert len(withheld) == 3  # prepaid balance, spending limit, invoice preview; once each
    assert all(m.startswith("xai/grok: ") for m in withheld)
