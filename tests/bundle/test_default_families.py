"""The shipped dashboards, recording rules and alerts read only families that are on by
default (issue 17: the per-stream tokens, ratios and ``7d`` windows are opt-in)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from exporter.analytics.cardinality import left_out
from exporter.config import MetricsConfig
from tests.bundle.test_dashboards import FILES, queries

ROOT = Path(__file__).resolve().parents[2]
OPT_IN = left_out(MetricsConfig())
NAME = re.compile(r"(?<![:\w])(aicost_[a-z0-9_]+)")


def rule_exprs() -> list[tuple[str, str, str]]:
    """(file, rule name, expr) of every alert and recording rule, shipped and generated."""
    paths = [*(ROOT / "alerting").glob("*.yaml"), ROOT / "deploy/kubernetes/prometheusrule.yaml",
             ROOT / "deploy/helm/ai-cost-exporter/files/prometheus-rules.yaml"]  # fmt: skip
    out = []
    for path in paths:
        doc = yaml.safe_load(path.read_text())
        groups = doc.get("spec", doc)["groups"]
        for group in groups:
            for rule in group["rules"]:
                out.append((path.name, rule.get("alert") or rule["record"], rule["expr"]))
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in FILES:
        for v in json.loads(path.read_text())["templating"]["list"]:
            if isinstance(v.get("query"), dict):
                out.append((path.name, v["name"], v["query"]["query"]))
    return out


def test_the_defaults_leave_out_exactly_the_opt_in_per_stream_families() -> None:
    assert OPT_IN == {
        "aicost_cost_7d", "aicost_requests_7d", "aicost_cache_hit_ratio",
        "aicost_cost_per_1k_tokens", "aicost_cost_per_request",
        *(f"aicost_tokens_{w}" for w in ("today", "yesterday", "7d", "30d", "month_to_date",
                                         "prev_7d")),
    }  # fmt: skip
    every = MetricsConfig.model_validate(
        {
            "windows": ["today", "yesterday", "7d", "30d", "month_to_date"],
            "token_types": True,
            "stream_ratios": True,
        }
    )
    assert left_out(every) == set()


@pytest.mark.parametrize(
    ("file", "name", "expr"),
    [*queries(), *variable_queries(), *rule_exprs()],
    ids=lambda x: str(x)[:40],
)
def test_reads_only_default_on_families(file: str, name: str, expr: str) -> None:
    used = set(NAME.findall(expr))
    assert not used & OPT_IN, f"{file}/{name} reads opt-in families {used & OPT_IN}"


def test_rule_files_were_found() -> None:
    rules = rule_exprs()
    assert {f for f, _, _ in rules} == {"alerts.yaml", "rules.yaml", "prometheusrule.yaml",
                                        "prometheus-rules.yaml"}  # fmt: skip
    assert any("aicost_project_tokens_7d" in e for _, _, e in rules)
