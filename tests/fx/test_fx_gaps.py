"""Costs with and without a rate in one poll; the rate in use older than the fallback limit.

The scenario's today lies 40+ days after the bundled ECB history (``tests/fx_scenario.py``),
so with the ECB stopped a backfill reaching back into the bundled history holds days the
bundled rates cover and days no rate covers. The poll must succeed, store every row with
its source amount, withhold and count the unconverted ones, and convert them once the ECB
answers again.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from exporter.app import App, build
from exporter.clock import midnight_ts
from exporter.demo.ecb import EcbRates, FakeEcbServer
from exporter.demo.openai import FakeOpenAIOrg, FakeOpenAIServer, generate_org
from exporter.fx.ecb import bundled
from exporter.records import CostRecord, FetchResult
from exporter.store import Store
from tests.conftest import KEY_ENV, make_config
from tests.fx_scenario import AFTER_PUBLICATION, ECB_RATES, FX_TODAY, MutableClock
from tests.helpers import opened, parse_exposition, promtool

ALERTS = Path(__file__).resolve().parents[2] / "alerting" / "alerts.yaml"
# back into the bundled history's last days, so some days have a rate and the rest none
BACKFILL = (FX_TODAY - bundled().last).days + 3


def _cost(day_offset: int, amount: str) -> CostRecord:
    day = FX_TODAY - timedelta(days=day_offset)
    return CostRecord("openai", "main", day, "p1", "gpt-4o", "tokens", Decimal(amount),
                      line_item=f"gpt-4o, input {day_offset}")  # fmt: skip


@pytest.mark.parametrize("converted_first", [True, False])
def test_a_poll_with_converted_and_unconvertible_rows_stores_them_all(
    tmp_path: Path, converted_first: bool
) -> None:
    store = Store(tmp_path / "h.db")
    rows = [_cost(2, "1.5"), _cost(1, "2.25")]
    converted = {
        "fx_amount": "3",
        "fx_currency": "EUR",
        "fx_rate": "2",
        "fx_rate_date": "2020-01-01",
        "fx_source": "ecb-daily",
        "fx_status": "final",
        "fx_error": None,
    }
    failed = {"fx_currency": "EUR", "fx_rate_date": None, "fx_status": "error",
              "fx_error": "no_rate"}  # fmt: skip
    first, second = (converted, failed) if converted_first else (failed, converted)
    columns = {rows[0].day: first, rows[1].day: second}
    result = FetchResult(rows[0].day, FX_TODAY, [], rows)
    store.replace_window("openai", "main", result, lambda c: columns[c.day])
    assert sorted(store.costs_between(rows[0].day, FX_TODAY), key=lambda c: c.day) == rows
    audit = {r["day"]: r for d in (rows[0].day, rows[1].day) for r in store.cost_audit(d)}
    ok, bad = (rows[0], rows[1]) if converted_first else (rows[1], rows[0])
    assert audit[ok.day.isoformat()]["fx_amount"] == "3"
    assert audit[bad.day.isoformat()]["fx_amount"] is None
    assert audit[bad.day.isoformat()]["fx_error"] == "no_rate"
    assert store.fx_unconverted("EUR") == {("USD", "no_rate"): 1}
    store.close()


@dataclass
class World:
    """A fake OpenAI org and a fake ECB on loopback, both on one hand-moved clock."""

    clock: MutableClock
    openai: FakeOpenAIServer
    ecb: FakeEcbServer


@contextmanager
def world_at(now: datetime, rates: EcbRates, org: FakeOpenAIOrg) -> Iterator[World]:
    clock = MutableClock(now)
    with FakeOpenAIServer(org, now=clock) as openai, FakeEcbServer(rates, now=clock) as ecb:
        yield World(clock, openai, ecb)


@pytest.fixture
def world() -> Iterator[World]:
    org = generate_org(today=FX_TODAY, days=BACKFILL + 5, seed=3)
    with world_at(AFTER_PUBLICATION, ECB_RATES, org) as w:
        yield w


def _app(tmp_path: Path, w: World, backfill: int = BACKFILL) -> App:
    config = make_config(
        tmp_path,
        w.openai.base_url,
        currency="EUR",
        poll={"backfill_days": backfill},
        fx={"base_url": w.ecb.base_url},
    )
    return opened(build(config, clock=w.clock, env={KEY_ENV: w.openai.org.admin_key}))


def _samples(app: App) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse_exposition(app.rendered.text.decode())


def _value(app: App, name: str, **labels: str) -> float | None:
    return _samples(app).get((name, frozenset(labels.items())))


def test_a_fresh_install_without_ecb_polls_withholds_and_converts_when_rates_arrive(
    tmp_path: Path, world: World
) -> None:
    openai, ecb = world.openai, world.ecb
    ecb.stop()  # no ECB reachable: only the bundled history, which ends weeks before today
    app = _app(tmp_path, world)
    assert app.poll_once()
    assert _value(app, "aicost_up", provider="openai", account="main") == 1
    assert _value(app, "aicost_poll_errors_total", provider="openai", account="main",
                  reason="parse") == 0  # fmt: skip
    start = FX_TODAY - timedelta(days=BACKFILL)
    stored = app.store.costs_between(start, FX_TODAY + timedelta(days=1))
    assert stored and {c.currency for c in stored} == {"USD"}
    assert sum(c.amount for c in stored) == sum(
        r.amount for r in openai.org.costs if start <= r.day <= FX_TODAY
    )
    unconverted = app.store.fx_unconverted("EUR")
    assert set(unconverted) == {("USD", "stale")}  # the bundled rate is too old for them
    withheld = unconverted[("USD", "stale")]
    assert 0 < withheld < len(stored)  # the days the bundled history covers are converted
    assert _value(app, "aicost_fx_unconverted_costs", base="USD", quote="EUR",
                  reason="stale") == withheld  # fmt: skip

    ecb.start()
    app.fx_refresh()
    assert app.store.fx_unconverted("EUR") == {}
    assert _value(app, "aicost_fx_unconverted_costs", base="USD", quote="EUR",
                  reason="stale") == 0  # fmt: skip


def test_a_scheduled_backfill_refreshes_fx_after_it(tmp_path: Path) -> None:
    """At start the FX refresh and the first poll run together. A refresh that ran before
    any cost was stored read only the recent files; the backfill then stores days that
    only the full ECB history has rates for, so the backfill must be followed by a refresh.
    """
    today = bundled().last + timedelta(days=120)  # older than the 90-day file reaches
    rates = EcbRates.generate(today - timedelta(days=400), today, seed=5)
    backfill = (today - bundled().last).days + 3
    org = generate_org(today=today, days=backfill + 5, seed=3)
    with world_at(datetime.combine(today, time(15, 30), UTC), rates, org) as w:
        ecb = w.ecb
        app = _app(tmp_path, w, backfill)
        app.fx_refresh()  # the start-up refresh won the race: nothing stored yet
        assert "eurofxref-hist.xml" not in ecb.files_requested()
        app.poll(app.pollers[0])  # the scheduled first poll: a backfill
        assert app.pollers[0].last_backfill
        assert app.store.fx_unconverted("EUR") == {}
        assert "eurofxref-hist.xml" in ecb.files_requested()
        app.stop()


# -- the rate in use older than the fallback limit ------------------------------------------


def test_a_stale_rate_keeps_its_date_series_and_fires_the_stale_alert(
    tmp_path: Path, world: World
) -> None:
    """ECB unreachable since the bundled history ended: the exporter's own exposition in
    that state, fed to promtool with the real ``AICostFxRateStale`` rule."""
    world.ecb.stop()
    app = _app(tmp_path, world)
    assert app.poll_once()
    last = bundled().last
    samples = _samples(app)
    date_key = ("aicost_fx_rate_date_timestamp_seconds",
                frozenset({"base": "USD", "quote": "EUR"}.items()))  # fmt: skip
    assert samples[date_key] == midnight_ts(last)
    rates = {dict(k[1])["source"]: v for k, v in samples.items() if k[0] == "aicost_fx_rate"}
    assert rates == {"bundled": float(bundled().series("USD")[last] ** -1)}
    _promtool_fires_stale(tmp_path, samples[date_key] - world.clock.now.timestamp())


def _duration(seconds: float) -> str:
    """promtool's ``humanizeDuration`` of a whole number of seconds over a day."""
    left = round(seconds)
    days, left = divmod(left, 86400)
    hours, left = divmod(left, 3600)
    minutes, secs = divmod(left, 60)
    return f"{days}d {hours}h {minutes}m {secs}s"


def _promtool_fires_stale(tmp_path: Path, age_offset: float) -> None:
    """promtool's clock starts at 0: the series is shifted by the scrape time, so at
    ``eval_time`` t, ``time() - value`` is the real age of the rate plus t."""
    rules = yaml.safe_load(ALERTS.read_text())
    rule = next(r for g in rules["groups"] for r in g["rules"]
                if r.get("alert") == "AICostFxRateStale")  # fmt: skip
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [
        {"name": "fx", "rules": [rule]}]}))  # fmt: skip
    series = 'aicost_fx_rate_date_timestamp_seconds{job="ai-cost-exporter",base="USD",quote="EUR"}'
    test = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": series, "values": f"{age_offset:.0f}x120"}],
        "alert_rule_test": [
            {"eval_time": "59m", "alertname": "AICostFxRateStale", "exp_alerts": []},
            {"eval_time": "60m", "alertname": "AICostFxRateStale", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "job": "ai-cost-exporter",
                               "base": "USD", "quote": "EUR"},
                "exp_annotations": {
                    **rule["annotations"],
                    "description": rule["annotations"]["description"]
                    .replace("{{ $labels.base }}", "USD").replace("{{ $labels.quote }}", "EUR")
                    .replace("{{ $value | humanizeDuration }}", _duration(3600 - age_offset)),
                }}]},
        ]}]}  # fmt: skip
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    proc = subprocess.run([promtool(), "test", "rules", "test.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
