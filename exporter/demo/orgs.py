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

from exporter.demo.anthropic_traffic import generate_anthropic_org
from exporter.demo.fake_anthropic import FakeAnthropicServer
from exporter.demo.fake_openai import FakeOpenAIServer
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


def start_anthropic(stack: ExitStack, today: date, days: int, seed: int) -> DemoOrg:
    org = generate_anthropic_org(today=today, days=days, seed=seed)
    server = stack.enter_context(FakeAnthropicServer(org))
    return DemoOrg(
        provider={
            "type": "anthropic",
            "name": "anthropic-demo",
            "base_url": server.base_url,
            "api_key_env": "AICOST_DEMO_ANTHROPIC_KEY",
        },
        env={"AICOST_DEMO_ANTHROPIC_KEY": org.admin_key},
        description=f"simulated Anthropic org on {server.base_url}",
    )


DEMO_ORGS: list[Starter] = [start_openai, start_anthropic]


@contextmanager
def running_demo(today: date, days: int, seed: int) -> Iterator[list[DemoOrg]]:
    """Start every demo org; stop them all on exit."""
    with ExitStack() as stack:
        yield [start(stack, today, days, seed) for start in DEMO_ORGS]
