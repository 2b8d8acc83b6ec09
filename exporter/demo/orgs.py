"""The simulated organisations ``ai-cost-exporter demo`` polls, one per provider.

Each starter runs a fake provider server on loopback (so the real provider code runs over
real HTTP) and returns the config block and environment pointing at it. Adding a provider
to the demo: write its starter and append it to :data:`DEMO_ORGS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from exporter.demo.fake_openai import FakeOpenAIServer
from exporter.demo.fake_xai import FakeXaiServer, generate_team
from exporter.demo.traffic import generate_org


@dataclass(frozen=True)
class DemoOrg:
    provider: dict[str, Any]  # the `providers[]` config block
    env: dict[str, str]  # the environment holding its (fake) key
    description: str


Starter = Callable[[ExitStack, date, int, int], DemoOrg]


def start_openai(stack: ExitStack, today: date, days: int, seed: int) -> DemoOrg:
    org = generate_org(today=today, days=days, seed=seed)
    server = stack.enter_context(FakeOpenAIServer(org))
    return DemoOrg(
        provider={
            "type": "openai",
            "name": "openai-demo",
            "base_url": server.base_url,
            "api_key_env": "AICOST_DEMO_OPENAI_KEY",
        },
        env={"AICOST_DEMO_OPENAI_KEY": org.admin_key},
        description=f"simulated OpenAI org on {server.base_url}",
    )


def start_xai(stack: ExitStack, today: date, days: int, seed: int) -> DemoOrg:
    team = generate_team(today=today, days=days, seed=seed)
    server = stack.enter_context(FakeXaiServer(team))
    return DemoOrg(
        provider={
            "type": "xai",
            "name": "xai-demo",
            "base_url": server.base_url,
            "api_key_env": "AICOST_DEMO_XAI_KEY",
            "team_id": team.team_id,
        },
        env={"AICOST_DEMO_XAI_KEY": team.management_key},
        description=f"simulated xAI team (two Grok models) on {server.base_url}",
    )


DEMO_ORGS: list[Starter] = [start_openai, start_xai]


@contextmanager
def running_demo(today: date, days: int, seed: int) -> Iterator[list[DemoOrg]]:
    """Start every demo org; stop them all on exit."""
    with ExitStack() as stack:
        yield [start(stack, today, days, seed) for start in DEMO_ORGS]
