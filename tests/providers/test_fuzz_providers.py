"""Fuzzing every provider parser with mutated pages of the demo fakes (Hypothesis).

Each example replays a poll against a fake (OpenAI, Anthropic, xAI) in-process, through an
``httpx.MockTransport`` that answers with the fake's own responses and mutates one of
them (a value replaced by arbitrary JSON, a key deleted, an item duplicated, the body cut
or corrupted). Properties: a fetch returns records or raises a typed ``ProviderError``,
never anything else; a poll that fails leaves the SQLite history byte for byte as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.config import Config, Secret, validate
from exporter.demo.anthropic import FakeAnthropicServer, generate_anthropic_org
from exporter.demo.http import FakeHTTPServer
from exporter.demo.openai import FakeOpenAIServer, generate_org
from exporter.demo.xai import FakeXaiServer, generate_team
from exporter.poller import Poller
from exporter.providers import REGISTRY
from exporter.providers.errors import ProviderError
from exporter.providers.http import RetryPolicy
from exporter.store import Store
from tests.conftest import TODAY, fixed_clock
from tests.fuzzing import fuzz_settings, mutated_json_body

KEY_ENV = "AICOST_FUZZ_KEY"
START, END = TODAY - timedelta(days=6), TODAY + timedelta(days=1)


@dataclass
class Target:
    """A provider type, its fake (not listening: answered in-process) and its key."""

    type: str
    fake: FakeHTTPServer[Any]
    key: str
    extra: dict[str, str]

    def config(self, storage: str = ":memory:") -> Config:
        return validate(
            {
                "storage": {"path": storage},
                "poll": {"backfill_days": 6, "lookback_days": 2, "max_attempts": 1},
                "providers": [
                    {
                        "type": self.type,
                        "name": "fuzz",
                        "base_url": "http://fake.invalid" + self.fake.path_prefix,
                        "api_key_env": KEY_ENV,
                        **self.extra,
                    }
                ],
            }
        )


def _openai() -> Target:
    org = generate_org(today=TODAY, days=10, seed=21)
    return Target("openai", FakeOpenAIServer(org, now=fixed_clock), org.admin_key, {})


def _anthropic() -> Target:
    org = generate_anthropic_org(today=TODAY, days=10, seed=21)
    return Target("anthropic", FakeAnthropicServer(org, now=fixed_clock), org.admin_key, {})


def _xai() -> Target:
    team = generate_team(today=TODAY, days=10, seed=21)
    fake = FakeXaiServer(team, now=fixed_clock)
    return Target("xai", fake, team.management_key, {"team_id": team.team_id})


TARGETS: dict[str, Callable[[], Target]] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "xai": _xai,
}


class Replay:
    """Answers with the fake's responses; the ``mutate_at``-th one goes through ``mutate``."""

    def __init__(self, fake: FakeHTTPServer[Any]) -> None:
        self.fake = fake
        self.bodies: list[bytes] = []
        self.mutate_at = -1
        self.mutate: Callable[[bytes], bytes] = bytes

    def reset(self, mutate_at: int = -1, mutate: Callable[[bytes], bytes] = bytes) -> None:
        self.bodies, self.mutate_at, self.mutate = [], mutate_at, mutate
        self.fake.clear_requests()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        answer = self.fake.handle(
            request.method, request.url.raw_path.decode(), headers, request.content
        )
        body = answer.body
        if len(self.bodies) == self.mutate_at:
            body = self.mutate(body)
        self.bodies.append(answer.body)
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        return httpx.Response(answer.status, content=body, headers=headers)


@pytest.fixture(scope="module", params=list(TARGETS))
def target(request: pytest.FixtureRequest) -> Target:
    return TARGETS[request.param]()


@pytest.fixture
def replay(target: Target) -> Iterator[Replay]:
    replay = Replay(target.fake)
    yield replay
    target.fake.clear_requests()


def _fetch(target: Target, replay: Replay) -> None:
    provider_config = target.config().providers[0]
    with httpx.Client(transport=httpx.MockTransport(replay)) as client:
        provider = REGISTRY[target.type](
            provider_config,
            client,
            Secret(target.key),
            retry=RetryPolicy(max_attempts=1, backoff_initial=0.001, backoff_max=0.001),
        )
        provider.fetch(START, END)


@fuzz_settings(examples=60)
@given(data=st.data())
def test_a_mutated_page_gives_records_or_a_typed_error(
    target: Target, replay: Replay, data: st.DataObject
) -> None:
    replay.reset()
    _fetch(target, replay)  # the clean exchange: which responses there are to mutate
    clean = list(replay.bodies)
    at = data.draw(st.integers(0, len(clean) - 1), label="response")
    mutation = data.draw(mutated_json_body(clean[at]), label="body")
    replay.reset(at, lambda _: mutation)
    try:
        _fetch(target, replay)
    except ProviderError as exc:
        assert target.key not in str(exc)


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        lines = list(db.iterdump())
    db.close()
    return lines


@fuzz_settings(examples=25)
@given(data=st.data())
def test_a_failed_poll_on_a_mutated_page_stores_nothing(
    target: Target, replay: Replay, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    db = tmp_path_factory.mktemp("fuzz") / "history.db"
    config = target.config(str(db))
    store = Store(str(db))
    poller = Poller(
        config,
        config.providers[0],
        store,
        REGISTRY[target.type],
        clock=fixed_clock,
        transport=httpx.MockTransport(replay),
        env={KEY_ENV: target.key},
    )
    try:
        replay.reset()
        assert poller.poll()  # the backfill, clean
        replay.reset()
        assert poller.poll()  # a clean lookback poll: the responses to mutate
        clean = list(replay.bodies)
        at = data.draw(st.integers(0, len(clean) - 1), label="response")
        mutation = data.draw(mutated_json_body(clean[at]), label="body")
        before = _dump(db)
        replay.reset(at, lambda _: mutation)
        if not poller.poll():
            assert _dump(db) == before
            assert poller.health.up is False
    finally:
        poller.close()
        store.close()
