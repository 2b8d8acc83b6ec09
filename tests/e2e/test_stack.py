"""End to end: fake provider -> exporter -> real Prometheus (shipped rules) -> real
Alertmanager (shipped routing) -> webhook. Every dashboard panel query returns data, and
stopping the provider delivers the poll-failing alert to the tickets receiver.

The stack is the one the README's "Add to an existing stack" builds: Prometheus runs the
README's scrape snippet (job name included; only target and interval are the test's), and
Alertmanager runs another organisation's config with alertmanager.example.yml merged in as
the README says, so docs, rules and routing cannot disagree: AICostExporterDown stays
silent, a budget alert pages through the AICost sub-route, and the other team's alert
still reaches its own receiver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import yaml

from exporter.clock import utc_now
from exporter.demo.ecb import EcbRates, FakeEcbServer
from exporter.demo.openai import CostRow, FakeOpenAIOrg, FakeOpenAIServer, generate_org
from exporter.demo.orgs import start_anthropic, start_azure_openai, start_xai
from tests.alertmanager_merge import merged
from tests.bundle.test_existing_stack import readme_prometheus_snippet
from tests.e2e.process import ExporterProcess
from tests.e2e.stack import ROOT, Alertmanager, Prometheus, Webhook, shorten_for, wait_until

pytestmark = pytest.mark.e2e

DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
VARIABLES = {
    "$job": "ai-cost-exporter",
    "$provider": ".*",
    "$account": ".*",
    "$project": ".*",
    "$model": ".*",
    "$budget": ".*",
    "$endpoint": ".*",
    "$__rate_interval": "15s",
    "$currency": "EUR",
}


def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        for p in json.loads(path.read_text())["panels"]:
            for t in p.get("targets", []):
                expr = t["expr"]
                for var, value in VARIABLES.items():
                    expr = expr.replace(var, value)
                out.append((path.name, p["title"], expr))
    return out


def alertmanager_config(webhook: Webhook) -> dict:
    """Another organisation's config with the shipped routing merged in (README), receivers
    pointed at the test webhook (path = receiver name) and short waits."""
    config = merged()
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{webhook.url}/{receiver['name']}"
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        for key in ("group_wait", "group_interval"):
            if key in route or route is config["route"]:
                route[key] = "1s"
        if "repeat_interval" in route or route is config["route"]:
            route["repeat_interval"] = "1m"
        routes.extend(route.get("routes", []))
    return config


def exporter_config(tmp: Path, openai_url: str, ecb_url: str, projects: list[dict]) -> dict:
    """EUR accounting, attribution and budgets: every dashboard panel has something to show."""
    search, support, pipeline, sandbox = (p["id"] for p in projects[:4])
    return {
        "currency": "EUR",
        "storage": {"path": str(tmp / "history.db")},
        "poll": {"interval": "2s", "backfill_days": 65, "max_attempts": 1, "timeout": "2s"},
        "fx": {"base_url": ecb_url, "refresh_interval": "1m"},
        "attribution": [
            {"match": {"project": search}, "team": "search", "pool": "eng/search",
             "cost_owner": "search-lead", "environment": "prod"},
            {"match": {"project": [support, pipeline]}, "team": "support", "pool": "ops",
             "environment": "prod"},
            {"match": {"project": sandbox}, "team": "research", "pool": "eng/rnd",
             "environment": "dev"},
        ],
        "budgets": [
            # far below the org's spend: AICostBudgetExceeded must page
            {"name": "eng-monthly", "period": "month", "limit": 1, "scope": {"pool": "eng"}},
            {"name": "ops-weekly", "period": "week", "limit": 100000, "scope": {"team": "support"}},
            {"name": "dev-daily", "period": "day", "limit": 100000,
             "scope": {"environment": "dev"}},
        ],
        "providers": [{"type": "openai", "name": "main", "base_url": openai_url,
                       "api_key_env": "TEST_OPENAI_KEY"}],
        "ingest": {"enabled": True, "token_env": "TEST_INGEST_TOKEN", "refresh_interval": "1s"},
    }  # fmt: skip


INGEST_TOKEN = "e2e-ingest-token"


def app_events(today: date) -> list[dict]:
    """Requests an application reports: two prompt versions of one endpoint (the newer one
    dearer), retries, outcomes, tenants; yesterday's on a model the fake org bills."""
    model = "gpt-4o-mini-2024-07-18"
    now = utc_now()
    out = []
    for i in range(30):
        yesterday = i < 15
        t = now - timedelta(days=1) if yesterday else now - timedelta(minutes=1)
        if yesterday:
            t = t.replace(hour=12, minute=0)
        out.append({
            "id": f"e2e-{i}", "time": t.isoformat(), "provider": "openai", "model": model,
            "input_tokens": 1000 if yesterday else 1300, "output_tokens": 200,
            "endpoint": "/summarize" if i % 3 else "/chat", "tenant": f"tenant-{i % 4}",
            "user": f"user-{i % 7}", "prompt_version": "v1" if yesterday else "v2",
            "outcome": "success" if i % 5 else "error", "retry": i % 6 == 0,
        })  # fmt: skip
    return out


def with_new_workload(org: FakeOpenAIOrg, today: date) -> FakeOpenAIOrg:
    """A model the org never used before appears two days ago (a new stream)."""
    project = org.projects[0]["id"]
    org.costs = [
        *org.costs,
        CostRow(today - timedelta(days=2), project, "gpt-4.1-2025-04-14, input", Decimal("3.5")),
        CostRow(today - timedelta(days=1), project, "gpt-4.1-2025-04-14, input", Decimal("4.25")),
    ]
    return org


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict]:
    started: list = []
    today = utc_now().date()
    org = with_new_workload(generate_org(today=today, days=65, seed=2), today)
    fake = FakeOpenAIServer(org).start()
    started.append(fake)
    ecb = FakeEcbServer(EcbRates.generate(today - timedelta(days=90), today)).start()
    started.append(ecb)
    webhook = Webhook()
    started.append(webhook)
    # the demo's Anthropic org, xAI team (prepaid credit, limit) and Azure subscription
    # (GPT-4o beside OpenAI's: the cross_provider recommendation)
    others = ExitStack()
    started.append(others)
    demo_orgs = [
        start_anthropic(others, today, 65, 3),
        start_xai(others, today, 65, 4),
        start_azure_openai(others, today, 65, 5),
    ]
    settings = exporter_config(tmp_path, fake.base_url, ecb.base_url, org.projects)
    settings["providers"] += [o.provider for o in demo_orgs]
    config = tmp_path / "exporter.yaml"
    config.write_text(yaml.safe_dump(settings))
    env = {"TEST_OPENAI_KEY": fake.org.admin_key, "TEST_INGEST_TOKEN": INGEST_TOKEN}
    for o in demo_orgs:
        env.update(o.env)
    exporter = ExporterProcess(["run", "--config", str(config)], env, tmp_path / "exporter.log")
    started.append(exporter)
    try:
        am = Alertmanager(tmp_path, alertmanager_config(webhook))
        started.append(am.process)
        snippet = readme_prometheus_snippet()
        # the README's rule files are the shipped ones (with `for:` shortened)
        shipped = [ROOT / "alerting" / Path(f).name for f in snippet["rule_files"]]
        rules = shorten_for(shipped, tmp_path)
        prom = Prometheus(
            tmp_path, [f"127.0.0.1:{exporter.port}"], rules, am.url, snippet["scrape_configs"]
        )
        started.append(prom.process)
        yield {"fake": fake, "webhook": webhook, "exporter": exporter, "prom": prom, "am": am}
    finally:
        for thing in reversed(started):
            thing.close() if isinstance(thing, ExitStack) else thing.stop()


def test_dashboards_and_alert_delivery(stack: dict) -> None:
    prom: Prometheus = stack["prom"]
    exporter: ExporterProcess = stack["exporter"]
    wait_until(
        lambda: len(prom.query('aicost_up{job="ai-cost-exporter"} == 1')) == 4,
        "Prometheus scrapes a successful poll of all four providers", 60, prom.process,
    )  # fmt: skip
    # an application reports its requests (the Unit economics dashboard's data)
    reply = httpx.post(
        f"http://127.0.0.1:{exporter.port}/api/v1/events",
        json=app_events(utc_now().date()),
        headers={"Authorization": f"Bearer {INGEST_TOKEN}"},
        timeout=10,
    )
    assert reply.status_code == 200 and reply.json()["new"] == 30, reply.text
    wait_until(
        lambda: bool(prom.query('rate(aicost_app_requests_total{job="ai-cost-exporter"}[15s])'))
        and bool(prom.query("aicost_app_estimate_to_billed_ratio")),
        "two samples of the app counters", 30, prom.process,
    )  # fmt: skip
    # rate()/increase() panels need a few samples
    wait_until(
        lambda: bool(prom.query('rate(aicost_api_requests_total{job="ai-cost-exporter"}[15s])')),
        "two samples of the counters", 30, prom.process,
    )  # fmt: skip

    webhook: Webhook = stack["webhook"]

    def paged(alertname: str) -> bool:
        return any(
            path == "/aicost-pager"
            and alert["labels"]["alertname"] == alertname
            and alert["labels"]["severity"] == "critical"
            and alert["status"] == "firing"
            for path, alert in webhook.alerts()
        )

    # a budget configured below current spend pages through the shipped routing
    wait_until(lambda: paged("AICostBudgetExceeded"), "AICostBudgetExceeded at the pager", 60,
               prom.process)  # fmt: skip
    # the README's job name is the one the rules select: the exporter is not "down"
    assert not prom.query('ALERTS{alertname="AICostExporterDown"}'), "AICostExporterDown"
    assert not [a for a in prom.alerts() if a["labels"]["alertname"] == "AICostExporterDown"]
    budget = next(
        a for p, a in webhook.alerts() if a["labels"]["alertname"] == "AICostBudgetExceeded"
    )
    # absolute links from the documented default (the compose Grafana), deep-linked
    assert budget["annotations"]["dashboard_url"] == (
        "http://localhost:3000/d/aicost-budgets/ai-cost-budgets-and-forecasts?var-budget=eng-monthly"
    )
    assert budget["annotations"]["runbook_url"].endswith("runbook.md#aicostbudgetexceeded")

    # another team's critical alert, merged config: their receiver, not our pager
    am: Alertmanager = stack["am"]
    am.post({"alertname": "PaymentsLatencyHigh", "team": "payments", "severity": "critical"})
    wait_until(
        lambda: any(a["labels"]["alertname"] == "PaymentsLatencyHigh" and p == "/payments-oncall"
                    for p, a in webhook.alerts()),
        "another team's alert at its own receiver", 30, am.process,
    )  # fmt: skip
    assert budget["labels"]["budget"] == "eng-monthly"
    assert budget["labels"]["currency"] == "EUR"
    assert budget["annotations"]["summary"] == "A budget is exceeded."
    # the lower tiers of the same budget are inhibited: never delivered
    assert not any(
        a["labels"]["alertname"] in ("AICostBudgetAlmostExhausted", "AICostBudgetThresholdReached")
        and a["labels"].get("budget") == "eng-monthly"
        for _, a in webhook.alerts()
    )

    empty = [(f, t, e) for f, t, e in panel_queries() if not prom.query(e)]
    assert not empty, "panel queries without data:\n" + "\n".join(map(str, empty))
    # money is in the accounting currency
    assert {s["metric"]["currency"] for s in prom.query("aicost_cost_month_to_date")} == {"EUR"}

    # the provider goes away: polls fail -> AICostProviderPollFailing -> tickets receiver
    stack["fake"].stop()

    def delivered() -> bool:
        return any(
            path == "/aicost-tickets"
            and alert["labels"]["alertname"] == "AICostProviderPollFailing"
            and alert["labels"]["severity"] == "warning"
            and alert["labels"]["provider"] == "openai"
            and alert["status"] == "firing"
            for path, alert in webhook.alerts()
        )

    wait_until(delivered, "AICostProviderPollFailing at the tickets webhook", 60, prom.process)
    assert exporter.proc.poll() is None, "the exporter must survive a provider outage"
    pages = {a["labels"]["alertname"] for path, a in webhook.alerts() if path == "/aicost-pager"}
    assert pages <= {"AICostBudgetExceeded"}, pages
    # only AICost alerts reach the aicost-* receivers, and ours reach no one else's
    for path, alert in webhook.alerts():
        assert path.startswith("/aicost-") == alert["labels"]["alertname"].startswith("AICost")
