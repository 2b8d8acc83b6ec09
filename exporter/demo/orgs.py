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


DEMO_ORGS: list[Starter] = [start_openai]

# Attribution and budgets for the demo projects (by name), so `demo` shows the guardrails:
# one budget runs over its limit, one is close, one is comfortable.
DEMO_GOVERNANCE: dict[str, Any] = {
    "attribution": [
        {"match": {"project_name": "Search"}, "team": "search", "pool": "eng/search",
         "cost_owner": "search-lead", "environment": "prod"},
        {"match": {"project_name": "Support bot"}, "team": "support", "pool": "cx/support",
         "cost_owner": "cx-lead", "environment": "prod"},
        {"match": {"project_name": "Data pipeline"}, "team": "data", "pool": "eng/data",
         "cost_owner": "data-lead", "environment": "prod"},
        {"match": {"project_name": {"regex": "(?i).*sandbox.*"}}, "team": "research",
         "pool": "eng/research", "environment": "dev"},
    ],
    "budgets": [
        {"name": "eng-monthly", "period": "month", "limit": 600, "scope": {"pool": "eng"}},
        {"name": "support-weekly", "period": "week", "limit": 100,
         "scope": {"team": "support"}},
        {"name": "dev-daily", "period": "day", "limit": 5, "scope": {"environment": "dev"}},
    ],
}  # fmt: skip


@contextmanager
def running_demo(today: date, days: int, seed: int) -> Iterator[list[DemoOrg]]:
    """Start every demo org; stop them all on exit."""
    with ExitStack() as stack:
        yield [start(stack, today, days, seed) for start in DEMO_ORGS]
