"""docs/budgets-and-forecasts.md: its config validates and its rules fire on our output.

The rule file in the doc is run through ``promtool test rules`` with input series taken
from the exporter's own exposition for a scenario where each seed guardrail is breached
exactly once, so the documented PromQL is known to work against the real metric names and
labels (annotations are checked by ``promtool check rules`` only).
"""

from __future__ import annotations

import re
import subprocess
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from exporter.analytics.governance import compute_governance
from exporter.analytics.windows import compute_windows
from exporter.clock import day_range
from exporter.config import validate
from exporter.exposition import render
from exporter.records import CostRecord, ProjectRecord, Stream, UsageRecord
from exporter.snapshot import Snapshot
from tests.helpers import parse_exposition, promtool

DOC = Path(__file__).resolve().parents[2] / "docs" / "budgets-and-forecasts.md"
TODAY = date(2026, 3, 18)  # a Wednesday
YESTERDAY = TODAY - timedelta(days=1)
HOURS = 8  # input series length; `for:` clauses are at most 6h


def yaml_blocks() -> list[Any]:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]


def rule_file() -> dict[str, Any]:
    return next(b for b in yaml_blocks() if "groups" in b)


def test_every_config_example_in_the_doc_validates() -> None:
    configs = [b for b in yaml_blocks() if "groups" not in b]
    assert len(configs) >= 3
    for block in configs:
        validate(block)
    seed = next(b for b in configs if "budgets" in b and "attribution" in b)
    assert [b["name"] for b in seed["budgets"]] == ["staging-daily"]


def test_promtool_accepts_the_rule_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule_file()))
    proc = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


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
    snapshot = Snapshot(
        totals=compute_windows(TODAY, usage, costs),
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
    "AICostStagingDailyBudgetExceeded": [
        {"budget": "staging-daily", "period": "day", "currency": "USD", "severity": "warning"}
    ],
    "AICostBudgetThresholdReached": [
        {
            "budget": "staging-daily",
            "period": "day",
            "currency": "USD",
            "threshold": t,
            "severity": "info",
        }
        for t in ("0.5", "0.8", "1")
    ],
    "AICostBudgetForecastOverrun": [
        {"budget": "staging-daily", "period": "day", "currency": "USD", "severity": "warning"}
    ],
    "AICostBudgetScopeMatchesNothing": [{"budget": "ghost", "severity": "info"}],
    "AICostDevTokensWeekOverWeek": [{"environment": "dev", "severity": "warning"}],
    "AICostSpendSpike": [{**STREAM, "model": "gpt-4o", "severity": "warning"}],
    "AICostSpendAboveRolling7d": [{**STREAM, "model": "gpt-4o", "severity": "info"}],
    "AICostNewWorkload": [{**STREAM, "model": "gpt-4o-mini", "severity": "info"}],
}


def test_each_documented_guardrail_fires_on_the_exporters_output(tmp_path: Path) -> None:
    rules = rule_file()
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)  # templated text; `check rules` covers it
    alerts = [r["alert"] for g in rules["groups"] for r in g["rules"]]
    assert sorted(alerts) == sorted(EXPECTED)
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
                        "exp_alerts": [{"exp_labels": labels} for labels in expected],
                    }
                    for name, expected in EXPECTED.items()
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
