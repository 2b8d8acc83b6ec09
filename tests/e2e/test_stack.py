"""End to end: fake provider -> exporter -> real Prometheus (shipped rules) -> real
Alertmanager (shipped routing) -> webhook. Every dashboard panel query returns data, and
stopping the provider delivers the poll-failing alert to the tickets receiver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from exporter.clock import utc_now
from exporter.demo.fake_openai import FakeOpenAIServer
from exporter.demo.traffic import generate_org
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
    "$__rate_interval": "15s",
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
    """The shipped routing, with receivers pointed at the test webhook and short waits."""
    config = yaml.safe_load((ROOT / "alerting" / "alertmanager.example.yml").read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{webhook.url}/{receiver['name']}"
    route = config["route"]
    route.update(group_wait="1s", group_interval="1s", repeat_interval="1m")
    return config


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict]:
    started: list = []
    fake = FakeOpenAIServer(generate_org(today=utc_now().date(), days=35, seed=2)).start()
    started.append(fake)
    webhook = Webhook()
    started.append(webhook)
    config = tmp_path / "exporter.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "storage": {"path": str(tmp_path / "history.db")},
                "poll": {"interval": "2s", "backfill_days": 35, "max_attempts": 1,
                         "timeout": "2s"},
                "providers": [{"type": "openai", "name": "main", "base_url": fake.base_url,
                               "api_key_env": "TEST_OPENAI_KEY"}],
            }
        )
    )  # fmt: skip
    exporter = ExporterProcess(
        ["run", "--config", str(config)],
        {"TEST_OPENAI_KEY": fake.org.admin_key},
        tmp_path / "exporter.log",
    )
    started.append(exporter)
    try:
        am = Alertmanager(tmp_path, alertmanager_config(webhook))
        started.append(am.process)
        rules = shorten_for(sorted((ROOT / "alerting").glob("*.yaml")), tmp_path)
        prom = Prometheus(tmp_path, [f"127.0.0.1:{exporter.port}"], rules, am.url)
        started.append(prom.process)
        yield {"fake": fake, "webhook": webhook, "exporter": exporter, "prom": prom}
    finally:
        for thing in reversed(started):
            thing.stop()


def test_dashboards_and_alert_delivery(stack: dict) -> None:
    prom: Prometheus = stack["prom"]
    exporter: ExporterProcess = stack["exporter"]
    wait_until(
        lambda: any(s["value"][1] == "1" for s in prom.query('aicost_up{job="ai-cost-exporter"}')),
        "Prometheus scrapes a successful poll", 60, prom.process,
    )  # fmt: skip
    # rate()/increase() panels need a few samples
    wait_until(
        lambda: bool(prom.query('rate(aicost_api_requests_total{job="ai-cost-exporter"}[15s])')),
        "two samples of the counters", 30, prom.process,
    )  # fmt: skip

    empty = [(f, t, e) for f, t, e in panel_queries() if not prom.query(e)]
    assert not empty, "panel queries without data:\n" + "\n".join(map(str, empty))

    # the provider goes away: polls fail -> AICostProviderPollFailing -> tickets receiver
    stack["fake"].stop()
    webhook: Webhook = stack["webhook"]

    def delivered() -> bool:
        return any(
            path == "/tickets"
            and alert["labels"]["alertname"] == "AICostProviderPollFailing"
            and alert["labels"]["severity"] == "warning"
            and alert["labels"]["provider"] == "openai"
            and alert["status"] == "firing"
            for path, alert in webhook.alerts()
        )

    wait_until(delivered, "AICostProviderPollFailing at the tickets webhook", 60, prom.process)
    assert exporter.proc.poll() is None, "the exporter must survive a provider outage"
    assert not any(path == "/pager" for path, _ in webhook.alerts())
