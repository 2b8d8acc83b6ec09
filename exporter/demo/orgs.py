"""The simulated organisations ``ai-cost-exporter demo`` polls, one per provider.

Each starter runs a fake provider server on loopback (so the real provider code runs over
real HTTP) and returns the config block and environment pointing at it. Adding a provider
to the demo: write its starter and append it to :data:`DEMO_ORGS`.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from exporter.demo.anthropic import FakeAnthropicServer, generate_anthropic_org
from exporter.demo.azure_openai import FakeAzureServer, generate_subscription
from exporter.demo.bedrock import FakeBedrockServer, generate_account
from exporter.demo.openai import FakeOpenAIServer, generate_org
from exporter.demo.vertex import FakeBigQueryServer, generate_export
from exporter.demo.xai import FakeXaiServer, generate_team

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoOrg:
    provider: dict[str, Any]  # the `providers[]` config block
    env: dict[str, str]  # the environment holding its (fake) key
    description: str


# A starter returns None when its provider cannot run on this install (a missing extra).
Starter = Callable[[ExitStack, date, int, int], DemoOrg | None]


def _demo_org(kind: str, label: str, base_url: str, admin_key: str, **extra: str) -> DemoOrg:
    """``extra``: provider-specific config keys (xAI's ``team_id``)."""
    env_name = f"AICOST_DEMO_{kind.upper()}_KEY"
    return DemoOrg(
        provider={
            "type": kind,
            "name": f"{kind}-demo",
            "base_url": base_url,
            "api_key_env": env_name,
            **extra,
        },
        env={env_name: admin_key},
        description=f"simulated {label} on {base_url}",
    )


def start_openai(stack: ExitStack, today: date, days: int, seed: int) -> DemoOrg:
    org = generate_org(today=today, days=days, seed=seed)
    server = stack.enter_context(FakeOpenAIServer(org))
    return _demo_org("openai", "OpenAI org", server.base_url, org.admin_key)


def start_anthropic(stack: ExitStack, today: date, days: int, seed: int) -> DemoOrg:
    org = generate_anthropic_org(today=today, days=days, seed=seed)
    server = stack.enter_context(FakeAnthropicServer(org))
    return _demo_org("anthropic", "Anthropic org", server.base_url, org.admin_key)


def start_xai(stack: ExitStack, today: date, days: int, seed: int) -> DemoOrg:
    team = generate_team(today=today, days=days, seed=seed)
    server = stack.enter_context(FakeXaiServer(team))
    label = "xAI team (two Grok models)"
    return _demo_org("xai", label, server.base_url, team.management_key, team_id=team.team_id)


def start_azure_openai(stack: ExitStack, today: date, days: int, seed: int) -> DemoOrg:
    """GPT-4o on regional deployments (dearer than OpenAI's own route, so the
    ``cross_provider`` recommendation fires), GPT-4o mini on data zone, one PTU. Billed in
    USD so the demo needs no ECB rates beyond the bundled ones."""
    sub = generate_subscription(today=today, days=days, seed=seed, currency="USD")
    server = stack.enter_context(FakeAzureServer(sub))
    label = "Azure subscription (GPT-4o regional, GPT-4o mini data zone, a PTU)"
    return _demo_org(
        "azure_openai",
        label,
        server.base_url,
        sub.client_secret,
        login_url=server.base_url,
        scope=f"subscriptions/{sub.subscription_id}",
        tenant_id=sub.tenant_id,
        client_id=sub.client_id,
    )


def _has_extra(module: str, extra: str, provider: str) -> bool:
    if importlib.util.find_spec(module.split(".")[0]) is not None:
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            pass
    log.warning("demo: %s left out: it needs pip install 'ai-cost-exporter[%s]'", provider, extra)
    return False


def start_bedrock(stack: ExitStack, today: date, days: int, seed: int) -> DemoOrg | None:
    """Cost Explorer and CloudWatch on one port; boto3 signs with the account's fake key,
    read from an AWS shared-credentials file (the standard chain, no inline secret)."""
    if not _has_extra("boto3", "aws", "bedrock"):
        return None
    account = generate_account(today=today, days=days, seed=seed)
    server = stack.enter_context(FakeBedrockServer(account))
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aicost-demo-aws-")))
    credentials = folder / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {account.access_key_id}\n"
        f"aws_secret_access_key = {account.secret_access_key}\n",
        encoding="utf-8",
    )
    credentials.chmod(0o600)
    block = {
        "type": "bedrock",
        "name": "bedrock-demo",
        "account_id": account.account_id,
        "region": account.region,
        "base_url": server.base_url,
        "cloudwatch_url": server.base_url,
        "credentials_file": str(credentials),
    }
    label = "AWS account on Bedrock (Claude Sonnet 4.5 via Marketplace, Nova Pro)"
    return DemoOrg(block, {}, f"simulated {label} on {server.base_url}")


def start_vertex(stack: ExitStack, today: date, days: int, seed: int) -> DemoOrg | None:
    """A BigQuery billing export (Vertex AI and Gemini API), read with anonymous
    credentials as against a local emulator."""
    if not _has_extra("google.cloud.bigquery", "gcp", "vertex"):
        return None
    export = generate_export(today=today, days=days, seed=seed)
    server = stack.enter_context(FakeBigQueryServer(export))
    block = {
        "type": "vertex",
        "name": "vertex-demo",
        "billing_table": export.table,
        "base_url": server.base_url,
        "anonymous": True,
    }
    label = "Cloud Billing export in BigQuery (Vertex AI Claude + Gemini, Gemini API)"
    return DemoOrg(block, {}, f"simulated {label} on {server.base_url}")


DEMO_ORGS: list[Starter] = [
    start_openai,
    start_anthropic,
    start_xai,
    start_azure_openai,
    start_bedrock,
    start_vertex,
]

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
        orgs = [start(stack, today, days, seed) for start in DEMO_ORGS]
        yield [org for org in orgs if org is not None]
