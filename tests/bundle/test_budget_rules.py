"""docs/budgets-and-forecasts.md: its config validates and the shipped alerts it names fire.

There is one set of alert rules (alerting/alerts.yaml): the doc names which shipped alert
implements each seed guardrail. The shipped rule file is run through ``promtool test rules``
with input series taken from the exporter's own exposition for a scenario where each
guardrail is breached exactly once: exactly the alerts the doc names fire, with the labels
below, and no other alert does.
"""

from __future__ import annotations

import re
import subprocess
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from exporter.analytics import cardinality
from exporter.analytics.governance import compute_governance
from exporter.analytics.rollups import compute_rollups
from exporter.analytics.windows import compute_windows
from exporter.clock import day_range
from exporter.config import MetricsConfig, validate
from exporter.exposition import render
from exporter.records import CostRecord, ProjectRecord, Stream, UsageRecord
from exporter.snapshot import Snapshot
from tests.helpers import parse_exposition, promtool

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "budgets-and-forecasts.md"
ALERTS = ROOT / "alerting" / "alerts.yaml"
TODAY = date(2026, 3, 18)  # a Wednesday
YESTERDAY = TODAY - timedelta(days=1)
HOURS = 8  # input series length; `for:` clauses are at most 6h


def yaml_blocks() -> list[Any]:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]


def shipped_alerts() -> list[str]:
    doc = yaml.safe_load(ALERTS.read_text())
    return [r["alert"] for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_every_config_example_in_the_doc_validates() -> None:
    configs = yaml_blocks()
    assert len(configs) >= 3
    for block in configs:
        validate(block)
    seed = next(b for b in configs if "budgets" in b and "attribution" in b)
    assert [b["name"] for b in seed["budgets"]] == ["staging-daily"]


def test_the_doc_has_no_second_rule_group_and_names_only_shipped_alerts() -> None:
    text = DOC.read_text()
    assert not [b for b in yaml_blocks() if "groups" in b], "rules belong in alerting/alerts.yaml"
    named = set(re.findall(r"`(AICost[A-Za-z0-9]+)`", text))
    assert named, "the doc should name the shipped alerts"
    assert named <= set(shipped_alerts()), named - set(shipped_alerts())
    # each guardrail row names the alert that the scenario below makes fire
    assert set(EXPECTED) <= named


def scenario() -> str:
    """60 days where staging overspends today, dev tokens grow 50 % week over week, one prod
    stream triples yesterday and a new stream starts two days ago; rendered /metrics text."""
    seed = next(b for b in yaml_blocks() if "budgets" in b and "attribution" in b)
    budgets = [*seed["budgets"], {"name": "ghost", "period": "month", "limit": 5,
                                  "scope": {"team": "ghost"}}]  # fmt: skip
    config = validate({**seed, "budgets": budgets})
    projects = [
        ProjectRecord("openai", "main", "p_stg", "search-staging"),
        ProjectRecord("openai", "main", "p_dev", "dev sandbox"),
        ProjectRecord("openai", "main", "p_prod", "Search"),
    ]
    costs, usage = [], []

    def cost(day: date, project: str, model: str, amount: int) -> None:
        costs.append(CostRecord("openai", "main", day, project, model, "tokens", Decimal(amount)))

    for day in day_range(TODAY - timedelta(days=59), TODAY + timedelta(days=1)):
        cost(day, "p_stg", "gpt-4o-mini", 60 if day == TODAY else 30)
        cost(day, "p_dev", "gpt-4o", 5)
        cost(day, "p_prod", "gpt-4o", 400 if day == YESTERDAY else 100)
        if day >= TODAY - timedelta(days=2):
            cost(day, "p_prod", "gpt-4o-mini", 5)
        tokens = 1500 if day >= TODAY - timedelta(days=7) else 1000
        usage.append(UsageRecord("openai", "main", day, "p_dev", "gpt-4o", "completions",
                                 input_tokens=tokens, requests=10))  # fmt: skip
        usage.append(UsageRecord("openai", "main", day, "p_stg", "gpt-4o-mini", "completions",
                                 input_tokens=1000, requests=10))  # fmt: skip
    first_seen = {Stream("openai", "main", "p_prod", "gpt-4o-mini"): TODAY - timedelta(days=2)}
    totals = compute_windows(TODAY, usage, costs)
    snapshot = Snapshot(  # what the app publishes with the default metrics.* options
        totals=cardinality.select(totals, MetricsConfig()),
        rollups=compute_rollups(TODAY, totals),
        governance=compute_governance(config, TODAY, costs, usage, projects, first_seen),
    )
    return render(snapshot).text.decode()


def input_series(text: str) -> list[dict[str, str]]:
    out = []
    for (name, labels), value in sorted(parse_exposition(text).items()):
        selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels))
        number = format(value, ".10g") if abs(value) < 1e9 else format(value, ".0f")
        out.append({"series": f"{name}{{{selector}}}", "values": " ".join([number] * HOURS * 6)})
    return out


STREAM = {"provider": "openai", "account": "main", "project": "p_prod"}
EXPECTED: dict[str, list[dict[str, str]]] = {
    "AICostDailyCapExceeded": [
        {"budget": "staging-daily", "period": "day", "currency": "USD", "severity": "critical"}
    ],
    "AICostBudgetScopeUnmatched": [{"budget": "ghost", "severity": "warning"}],
    "AICostTokenGrowthWeekOverWeek": [{"environment": "dev", "severity": "info"}],
    "AICostSpendAnomaly": [{**STREAM, "model": "gpt-4o", "severity": "warning"}],
    "AICostNewWorkload": [{**STREAM, "model": "gpt-4o-mini", "severity": "info"}],
}
# needs Prometheus' own `up` series, which a rule unit test has not got
NOT_EVALUATED = {"AICostExporterDown"}


def test_each_guardrail_fires_its_shipped_alert_and_nothing_else(tmp_path: Path) -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)  # templated text; test_alerting.py covers it
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    test = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "10m",
        "tests": [
            {
                "interval": "10m",
                "input_series": input_series(scenario()),
                "alert_rule_test": [
                    {
                        "eval_time": f"{HOURS - 1}h",
                        "alertname": name,
                        "exp_alerts": [{"exp_labels": labels} for labels in EXPECTED.get(name, [])],
                    }
                    for name in shipped_alerts()
                    if name not in NOT_EVALUATED
                ],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(test))
    proc = subprocess.run(
        [promtool(), "test", "rules", "test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
