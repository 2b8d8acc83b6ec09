"""README command 1: the demo serves real numbers with no keys and no network."""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pytest

from tests.e2e.process import ExporterProcess
from tests.helpers import parse_exposition

pytestmark = pytest.mark.e2e


def all_up(response: httpx.Response) -> bool:
    if response.status_code != 200:  # 503 "Not ready" while the history loads
        return False
    ups = [v for (name, _), v in parse_exposition(response.text).items() if name == "aicost_up"]
    return bool(ups) and all(v == 1.0 for v in ups)


def test_demo_serves_month_to_date_cost_from_loopback_only(tmp_path: Path) -> None:
    audit = tmp_path / "connects.log"
    demo = ExporterProcess(
        ["demo", "--days", "30", "--storage.path", str(tmp_path / "demo.db")],
        {"AICOST_AUDIT_CONNECT_LOG": str(audit)},
        tmp_path / "demo.log",
    )
    try:
        # /metrics answers 503 "Not ready" (not an exposition) until the history is loaded
        demo.wait_for(
            lambda: demo.get("/-/ready").status_code == 200 and all_up(demo.get("/metrics")),
            "the demo's first poll",
        )
        samples = parse_exposition(demo.metrics())
        mtd = {
            dict(labels)["provider"]: value
            for (name, labels), value in samples.items()
            if name == "aicost_cost_month_to_date" and value > 0
        }
        assert {"openai", "anthropic", "xai", "azure_openai"} <= set(mtd)
        routes = {
            (dict(labels)["provider"], dict(labels)["target"])
            for (name, labels), value in samples.items()
            if name == "aicost_savings_monthly"
            and dict(labels)["recommendation"] == "cross_provider"
            and value > 0
        }
        assert ("azure_openai", "openai") in routes  # GPT-4o on Azure vs OpenAI direct
        info = {
            dict(labels)["project_name"]
            for (name, labels), _ in samples.items()
            if name == "aicost_project_info" and dict(labels)["provider"] == "anthropic"
        }
        assert "Default workspace" in info
        billing = {name for (name, labels), _ in samples.items() if ("provider", "xai") in labels}
        assert {"aicost_prepaid_balance", "aicost_invoice_preview_gap"} <= billing
        budgets = {
            dict(labels)["budget"]: value
            for (name, labels), value in samples.items()
            if name == "aicost_budget_spend"
        }
        assert set(budgets) == {"eng-monthly", "support-weekly", "dev-daily"}
        assert budgets["eng-monthly"] > 0
        assert "<a href='/metrics'>" in demo.get("/").text

        # a simulated application reports its requests: the Unit economics metrics fill in
        def app_metrics() -> dict[str, float]:
            wanted = ("aicost_app_requests_total", "aicost_app_prompt_version_cost_change_ratio")
            return {
                name: value
                for (name, _), value in parse_exposition(demo.metrics()).items()
                if name in wanted
            }

        demo.wait_for(lambda: len(app_metrics()) == 2, "the demo application's requests", 60)
        samples = parse_exposition(demo.metrics())
        ratio = {
            dict(labels)["prompt_version"]: value
            for (name, labels), value in samples.items()
            if name == "aicost_app_prompt_version_cost_change_ratio"
        }
        assert ratio["summarizer_v4"] == pytest.approx(1.22, rel=0.05)
    finally:
        demo.stop()
    hosts = {ast.literal_eval(line)[0] for line in audit.read_text().splitlines()}
    assert hosts == {"127.0.0.1"}
