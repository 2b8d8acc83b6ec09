"""Alert and recording rules: promtool checks and tests, conventions, runbook coverage."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers import promtool

ROOT = Path(__file__).resolve().parents[2]
ALERTING = ROOT / "alerting"
RULE_FILES = sorted(ALERTING.glob("*.yaml"))
TEST_FILES = sorted((ALERTING / "tests").glob("*.yaml"))


def alerts() -> list[dict]:
    out = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.extend(r for r in group["rules"] if "alert" in r)
    return out


def test_promtool_check_rules() -> None:
    proc = subprocess.run(
        [promtool(), "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_promtool_test_rules(test_file: Path) -> None:
    proc = subprocess.run(
        [promtool(), "test", "rules", str(test_file)],
        capture_output=True, text=True, cwd=test_file.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("rule", alerts(), ids=lambda r: r["alert"])
def test_alert_conventions(rule: dict) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"AICost[A-Z][A-Za-z0-9]+", name)
    assert rule["labels"]["severity"] in ("critical", "warning", "info")
    notes = rule["annotations"]
    assert notes["summary"].endswith(".") and "{{" not in notes["summary"]
    assert "{{" in notes["description"], "description should template labels or value"
    assert notes["runbook_url"].endswith("docs/runbook.md#" + name.lower())
    assert notes["dashboard_url"].startswith("/d/aicost-")


def test_every_alert_has_a_runbook_entry_and_a_promtool_test() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    tests = "\n".join(p.read_text() for p in TEST_FILES)
    for rule in alerts():
        name = rule["alert"]
        assert f"\n## {name}\n" in runbook, f"docs/runbook.md lacks ## {name}"
        assert f"alertname: {name}\n" in tests, f"no promtool test evaluates {name}"


def test_every_recording_rule_is_pinned_by_a_promql_expr_test() -> None:
    tests = "\n".join(p.read_text() for p in TEST_FILES)
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    name = rule["record"]
                    assert re.fullmatch(r"[a-z_]+:aicost_[a-z0-9_]+:[a-z0-9_]+", name), name
                    assert f"expr: {name}\n" in tests, f"no promql_expr_test for {name}"


def test_readme_alert_table_matches_the_rules() -> None:
    readme = (ROOT / "README.md").read_text()
    for rule in alerts():
        row = (
            f"| `{rule['alert']}` | {rule['labels']['severity']} | {rule['for']} | "
            f"{rule['annotations']['summary']} |"
        )
        assert row in readme, f"README alerts table lacks or misstates: {row}"
