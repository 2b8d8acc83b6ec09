"""Two replicas on one PostgreSQL history (issue 18): two ``ai-cost-exporter run`` processes
against one fake OpenAI org and one database.

* after the first polls the provider saw one replica's worth of API calls: every request
  the fake counted was made (and counted in ``aicost_api_requests_total``) by the leader;
* both serve identical money, token, request and health values;
* SIGKILL of the leader: the standby takes over at its next scheduled poll, nothing stored
  is lost, and data revised after the takeover arrives.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from exporter.app import open_store
from exporter.clock import utc_now
from exporter.config import load
from exporter.demo.openai import FakeOpenAIServer, generate_org
from tests.e2e.process import ExporterProcess
from tests.helpers import parse_exposition
from tests.postgres import PASSWORD, PostgresServer

pytestmark = pytest.mark.e2e

INTERVAL = 3.0  # seconds: poll.interval of both replicas
PW_ENV = "AICOST_TEST_PG_PASSWORD"
KEY_ENV = "TEST_OPENAI_KEY"
ACCOUNT = '{account="main",provider="openai"}'
SHARED = (
    "aicost_cost_", "aicost_tokens_", "aicost_requests_", "aicost_cache_hit_ratio",
    "aicost_project_info", "aicost_budget_", "aicost_savings_", "aicost_up",
    "aicost_last_success_timestamp_seconds", "aicost_data_complete_through",
    "aicost_poll_duration_seconds", "aicost_fx_rate",
)  # fmt: skip

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def shared(p: ExporterProcess) -> Samples:
    return {k: v for k, v in parse_exposition(p.metrics()).items() if k[0].startswith(SHARED)}


def sample(p: ExporterProcess, name: str) -> float | None:
    for line in p.metrics().splitlines():
        if line.startswith(name + ACCOUNT + " "):
            return float(line.split()[-1])
    return None


def counted_calls(p: ExporterProcess) -> Counter[str]:
    """This replica's aicost_api_requests_total, per endpoint."""
    out: Counter[str] = Counter()
    for (name, labels), value in parse_exposition(p.metrics()).items():
        if name == "aicost_api_requests_total":
            out[dict(labels)["endpoint"]] += int(value)
    return out


def history_totals(config_path: Path) -> tuple[int, Decimal, int, int]:
    """(cost rows, their amount, usage rows, their tokens) of the shared history."""
    config = load(config_path)
    store = open_store(config, read_only=True, env={PW_ENV: PASSWORD})
    try:
        today = utc_now().date()
        start = today.replace(year=today.year - 1)
        costs = store.costs_between(start, today.replace(year=today.year + 1))
        usage = store.usage_between(start, today.replace(year=today.year + 1))
    finally:
        store.close()
    tokens = sum(
        u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_write_tokens for u in usage
    )
    return len(costs), sum((c.amount for c in costs), Decimal(0)), len(usage), tokens


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(generate_org(today=utc_now().date(), days=20, seed=7)) as server:
        yield server


def test_two_replicas_one_poller_identical_metrics_and_takeover(
    postgres: PostgresServer, fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "storage": {"url": postgres.url(postgres.database()), "password_env": PW_ENV},
        "poll": {"interval": f"{INTERVAL}s", "backfill_days": 15, "lookback_days": 2,
                 "timeout": "20s"},
        "providers": [{"type": "openai", "name": "main", "base_url": fake.base_url,
                       "api_key_env": KEY_ENV}],
    }))  # fmt: skip
    env = {KEY_ENV: fake.org.admin_key, PW_ENV: PASSWORD}
    replicas = [
        ExporterProcess(["run", "--config", str(config)], env, tmp_path / f"replica-{i}.log")
        for i in range(2)
    ]
    try:
        for p in replicas:
            p.wait_for(lambda p=p: sample(p, "aicost_up") == 1.0, "a poll's health", 90)
        leaders = [p for p in replicas if sample(p, "aicost_poller_leader") == 1.0]
        assert len(leaders) == 1, "exactly one replica polls the account"
        (leader,) = leaders
        (standby,) = [p for p in replicas if p is not leader]
        assert sample(standby, "aicost_poller_leader") == 0.0

        # one replica's worth of provider calls: all of them made by the leader
        def fake_calls() -> Counter[str]:
            return Counter(r.path.rsplit("/organization/", 1)[-1] for r in fake.requests)

        leader.wait_for(
            lambda: sum(fake_calls().values()) == sum(counted_calls(leader).values()) > 0,
            "the provider's count to match the leader's",
        )
        assert counted_calls(standby) == Counter()
        polls = fake_calls()["costs"]
        leader.wait_for(lambda: fake_calls()["costs"] > polls, "another poll by the leader")
        assert counted_calls(standby) == Counter()

        # identical money, tokens, requests and health on both
        standby.wait_for(lambda: shared(standby) == shared(leader), "identical /metrics", 60)
        values = shared(leader)
        assert any(k[0] == "aicost_cost_month_to_date" and v > 0 for k, v in values.items())
        assert any(k[0].startswith("aicost_tokens_") and v > 0 for k, v in values.items())
        before = history_totals(config)
        assert before[0] > 0 and before[1] > 0

        # SIGKILL of the leader: the standby takes over at its next scheduled poll
        leader.kill(signal.SIGKILL)
        calls = len(fake.requests)
        standby.wait_for(
            lambda: sample(standby, "aicost_poller_leader") == 1.0,
            "the standby to take over",
            timeout=3 * INTERVAL + 15,
        )
        standby.wait_for(lambda: len(fake.requests) > calls, "a poll by the new leader")
        assert "election: this replica now runs poll:openai:main" in standby.tail()
        assert history_totals(config) == before, "the takeover lost or doubled stored data"

        # new data after the takeover arrives: the provider revises yesterday (in the
        # lookback window and in the last 7 complete days)
        yesterday = utc_now().date() - timedelta(days=1)
        week = {k: v for k, v in shared(standby).items() if k[0] == "aicost_cost_7d"}
        assert sum(week.values()) > 0
        fake.org.scale_day(yesterday, 2)
        standby.wait_for(
            lambda: history_totals(config)[1] > before[1], "the revised day in the history", 60
        )
        standby.wait_for(
            lambda: sum(v for k, v in shared(standby).items() if k in week) > sum(week.values()),
            "the revised day on /metrics",
            60,
        )
    finally:
        for p in replicas:
            p.stop()
