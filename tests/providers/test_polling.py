"""Poll cycles: backfill then lookback, revisions, failures that change nothing, retries."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from exporter.app import App, build
from exporter.config import Config
from exporter.demo.openai import FakeOpenAIServer, Fault
from tests.conftest import NOW, TODAY, fixed_clock, make_config
from tests.helpers import opened, parse_exposition
from tests.oracles.openai import truth_cost_total


def stored(service: App) -> tuple[list[str], list[str]]:
    start, end = TODAY - timedelta(days=400), TODAY + timedelta(days=1)
    return (
        sorted(map(repr, service.store.costs_between(start, end))),
        sorted(map(repr, service.store.usage_between(start, end))),
    )


def sample(service: App, name: str, **labels: str) -> float:
    return parse_exposition(service.rendered.text.decode())[(name, frozenset(labels.items()))]


HEALTH = {"provider": "openai", "account": "main"}


@pytest.fixture
def config(tmp_path: Path, fake: FakeOpenAIServer, storage_path: str) -> Config:
    """The poll cycles (backfill, lookback, revisions, failures) on SQLite and PostgreSQL."""
    return make_config(tmp_path, fake.base_url, storage={"path": storage_path})


def test_first_poll_backfills_then_polls_only_the_lookback_window(
    fake: FakeOpenAIServer, config, env
) -> None:
    service = opened(build(config, clock=fixed_clock, env=env))
    assert service.poll_once()
    first = next(r for r in fake.requests if r.path.endswith("/costs"))
    backfill_start = (NOW - timedelta(days=45)).replace(hour=0, minute=0)
    assert int(dict(first.query)["start_time"]) == int(backfill_start.timestamp())
    fake.clear_requests()
    assert service.poll_once()
    again = next(r for r in fake.requests if r.path.endswith("/costs"))
    start = int(dict(again.query)["start_time"])
    assert start == int((NOW - timedelta(days=3)).replace(hour=0, minute=0).timestamp())
    assert sample(service, "aicost_up", **HEALTH) == 1
    assert sample(service, "aicost_data_complete_through_timestamp_seconds", **HEALTH) == (
        NOW.replace(hour=0, minute=0).timestamp()
    )
    service.stop()


def test_revisions_up_and_down_are_mirrored_without_double_counting(
    fake: FakeOpenAIServer, config, env
) -> None:
    service = opened(build(config, clock=fixed_clock, env=env))
    assert service.poll_once()
    before = truth_cost_total(fake.org, TODAY - timedelta(days=45), TODAY + timedelta(days=1))
    with fake.lock:
        fake.org.scale_day(TODAY, Decimal("1.5"))
        fake.org.scale_day(TODAY - timedelta(days=1), Decimal("0.5"))
    for _ in range(3):  # repeated overlapping polls
        assert service.poll_once()
    after = truth_cost_total(fake.org, TODAY - timedelta(days=45), TODAY + timedelta(days=1))
    assert after != before
    got = sum(
        (
            c.amount
            for c in service.store.costs_between(
                TODAY - timedelta(days=45), TODAY + timedelta(days=1)
            )
        ),
        Decimal(0),
    )
    assert got == after
    service.stop()


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault("/costs", status=500, times=10), "upstream"),
        (Fault("/costs", delay=1.5, times=10), "timeout"),
        (Fault("/costs", truncate=True), "parse"),
        (Fault("/usage/embeddings", status=401), "auth"),
        (Fault("/costs", status=429, retry_after="3600"), "rate_limit"),
    ],
)
def test_a_failed_poll_changes_no_stored_row_and_is_counted(
    fake: FakeOpenAIServer, config, env, fault: Fault, reason: str, caplog
) -> None:
    service = opened(build(config, clock=fixed_clock, env=env))
    assert service.poll_once()
    with fake.lock:
        fake.org.scale_day(TODAY, Decimal("2"))
    before = stored(service)
    fake.inject(fault)
    with caplog.at_level(logging.ERROR):
        assert not service.poll_once()
    assert stored(service) == before
    assert sample(service, "aicost_up", **HEALTH) == 0
    assert sample(service, "aicost_poll_errors_total", **HEALTH, reason=reason) == 1
    assert f"reason={reason}" in caplog.text and fake.org.admin_key not in caplog.text
    fake.faults.clear()
    assert service.poll_once()  # retried next cycle
    assert stored(service) != before
    assert sample(service, "aicost_up", **HEALTH) == 1
    service.stop()


def test_429_honours_retry_after_and_5xx_retries_within_one_poll(
    fake: FakeOpenAIServer, config, env
) -> None:
    service = opened(build(config, clock=fixed_clock, env=env))
    fake.inject(Fault("/costs", status=429, retry_after="1"))
    fake.inject(Fault("/usage/completions", status=503))
    assert service.poll_once()
    codes = {(r[0], r[1]) for r in service.pollers[0].health.requests if r[1] in ("429", "503")}
    assert codes == {("costs", "429"), ("usage/completions", "503")}
    assert sample(service, "aicost_api_requests_total", **HEALTH, endpoint="costs", code="429") == 1
    costs_calls = [r for r in fake.requests if r.path.endswith("/costs")]
    assert len(costs_calls) == 2  # 429, then one page: costs take up to 180 daily buckets
    service.stop()


def test_missing_key_is_a_config_error_not_a_crash(fake: FakeOpenAIServer, config) -> None:
    service = opened(build(config, clock=fixed_clock, env={}))
    assert not service.poll_once()
    assert sample(service, "aicost_poll_errors_total", **HEALTH, reason="config") == 1
    assert fake.requests == []
    service.stop()


def test_costs_are_read_in_pages_of_the_api_maximum_of_180_days(
    fake: FakeOpenAIServer, tmp_path: Path, env: dict[str, str]
) -> None:
    config = make_config(tmp_path, fake.base_url, poll={"backfill_days": 200})
    service = opened(build(config, clock=fixed_clock, env=env))
    assert service.poll_once()
    pages = [r for r in fake.requests if r.path.endswith("/costs")]
    assert len(pages) == 2  # 201 days: 180 + 21 buckets
    assert {dict(r.query)["limit"] for r in pages} == {"180"}


def test_api_keys_are_listed_once_per_interval_not_on_every_poll(
    fake: FakeOpenAIServer, tmp_path: Path, env: dict[str, str]
) -> None:
    now = [NOW]
    service = opened(build(make_config(tmp_path, fake.base_url), clock=lambda: now[0], env=env))

    def key_listings() -> int:
        return sum(1 for r in fake.requests if r.path.endswith("/api_keys"))

    assert service.poll_once()
    first = key_listings()
    assert first == sum(1 for p in fake.org.projects if p.get("status") != "archived") > 0
    now[0] = NOW + timedelta(hours=23)
    assert service.poll_once()
    assert key_listings() == first  # usage and costs re-read, keys kept from the first poll
    assert service.store.api_keys()  # still stored for inactive-key detection
    now[0] = NOW + timedelta(hours=24)
    assert service.poll_once()
    assert key_listings() == 2 * first
