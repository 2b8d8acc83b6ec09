"""A real history for the FinOps commands: the demo's organisations (OpenAI, Anthropic,
xAI, Azure OpenAI, Bedrock, Vertex fakes on loopback) polled by the real providers into
SQLite, with the demo's attribution, in EUR (ECB rates from the fake ECB server) and in
USD."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.app import build
from exporter.clock import utc_now
from exporter.config import Config
from exporter.demo.ecb import EcbRates, FakeEcbServer
from exporter.demo.orgs import DEMO_GOVERNANCE, running_demo

DAYS = 130  # more than four months: backfill reaches a day months back


@dataclass(frozen=True)
class DemoHistory:
    config: Config
    path: Path  # the config file
    today: date
    env: dict[str, str]  # the demo orgs' (fake) keys, for an exporter polling them


def _poll(tmp: Path, currency: str, today: date, orgs: list[Any], ecb_url: str) -> DemoHistory:
    env: dict[str, str] = {}
    for org in orgs:
        env.update(org.env)
    data = {
        "currency": currency,
        "storage": {"path": str(tmp / "history.db")},
        "poll": {"backfill_days": DAYS, "max_attempts": 1, "timeout": "5s"},
        "fx": {"base_url": ecb_url},
        "providers": [org.provider for org in orgs],
        **DEMO_GOVERNANCE,
    }
    config = Config.model_validate(data)
    app = build(config, env=env)
    try:
        app.fx_refresh()  # rates first, so the first poll's rows land converted
        assert app.poll_once()
    finally:
        app.stop()
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return DemoHistory(config, path, today, env)


@pytest.fixture(scope="session")
def histories(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DemoHistory]]:
    today = utc_now().date()
    with ExitStack() as stack:
        orgs = stack.enter_context(running_demo(today, DAYS, 11))
        ecb = FakeEcbServer(EcbRates.generate(today - timedelta(days=DAYS + 10), today)).start()
        stack.callback(ecb.stop)
        yield {
            cur: _poll(tmp_path_factory.mktemp(f"finops-{cur}"), cur, today, orgs, ecb.base_url)
            for cur in ("EUR", "USD")
        }


@pytest.fixture(scope="session")
def eur(histories: dict[str, DemoHistory]) -> DemoHistory:
    return histories["EUR"]


@pytest.fixture(scope="session")
def usd(histories: dict[str, DemoHistory]) -> DemoHistory:
    return histories["USD"]
