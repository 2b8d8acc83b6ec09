"""Restart: SIGKILL (idle and during a poll) and start again -> identical data on /metrics.

Also: the process connects to no host but the configured provider.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from exporter.clock import utc_now
from exporter.demo.openai import FakeOpenAIServer, Fault, generate_org
from tests.e2e.process import ExporterProcess
from tests.helpers import parse_exposition

pytestmark = pytest.mark.e2e

DATA_PREFIXES = (
    "aicost_cost_", "aicost_tokens_", "aicost_requests_", "aicost_cache_hit_ratio",
    "aicost_project_info", "aicost_data_complete",
)  # fmt: skip


def data_values(text: str) -> dict:
    return {k: v for k, v in parse_exposition(text).items() if k[0].startswith(DATA_PREFIXES)}


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(generate_org(today=utc_now().date(), days=40, seed=5)) as server:
        yield server


def test_sigkill_and_restart_keep_every_data_value(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage": {"path": str(tmp_path / "history.db")},
                "poll": {"interval": "1h", "backfill_days": 40, "timeout": "20s"},
                "providers": [{"type": "openai", "name": "main", "base_url": fake.base_url,
                               "api_key_env": "TEST_OPENAI_KEY"}],
            }
        )
    )  # fmt: skip
    audit = tmp_path / "connects.log"
    env = {"TEST_OPENAI_KEY": fake.org.admin_key, "AICOST_AUDIT_CONNECT_LOG": str(audit)}

    def start() -> ExporterProcess:
        return ExporterProcess(["run", "--config", str(config)], env, tmp_path / "exporter.log")

    def polled(p: ExporterProcess) -> bool:
        return 'aicost_up{account="main",provider="openai"} 1.0' in p.metrics()

    first = start()
    try:
        first.wait_for(lambda: polled(first), "the backfill poll")
        before = data_values(first.metrics())
        assert any(k[0] == "aicost_cost_month_to_date" and v > 0 for k, v in before.items())
    finally:
        first.kill()  # SIGKILL while idle

    # SIGKILL during a poll: the provider answers /costs only after a long delay
    fake.inject(Fault("/organization/costs", delay=15.0))
    fake.clear_requests()
    second = start()
    try:
        second.wait_for(lambda: second.get("/-/ready").status_code == 200, "ready")
        assert data_values(second.metrics()) == before  # served from SQLite, before any poll
        second.wait_for(
            lambda: any(r.path.endswith("/organization/costs") for r in fake.requests),
            "the poll to reach /costs",
        )
        time.sleep(0.2)
    finally:
        second.kill()
    fake.faults.clear()

    third = start()
    try:
        third.wait_for(lambda: third.get("/-/ready").status_code == 200, "ready")
        assert data_values(third.metrics()) == before
        third.wait_for(lambda: polled(third), "a poll after the restart")
        assert data_values(third.metrics()) == before
    finally:
        third.stop()

    peers = {ast.literal_eval(line)[:2] for line in audit.read_text().splitlines()}
    exporter_ports = {first.port, second.port, third.port}
    assert peers - {("127.0.0.1", p) for p in exporter_ports} == {("127.0.0.1", fake.port)}
