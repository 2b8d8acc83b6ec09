"""Alert and recording rules: promtool checks and tests, conventions, runbook coverage."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import promtool

ROOT = Path(__file__).resolve().parents[2]
ALERTING = ROOT / "alerting"
GEN_RULES = ROOT / "scripts" / "gen_rules.py"
_spec = importlib.util.spec_from_file_location("gen_rules", GEN_RULES)
assert _spec and _spec.loader
gen_rules = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_rules)
GRAFANA_URL: str = gen_rules.GRAFANA_URL
RUNBOOK_URL: str = gen_rules.RUNBOOK_URL
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
    # absolute links from one documented setting (scripts/gen_rules.py rewrites the prefixes)
    assert notes["runbook_url"] == f"{RUNBOOK_URL}#{name.lower()}"
    assert notes["dashboard_url"].startswith(f"{GRAFANA_URL}/d/aicost-")


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


def test_gen_rules_puts_your_grafana_and_runbook_into_every_link(tmp_path: Path) -> None:
    out = tmp_path / "rules"
    proc = subprocess.run(
        [sys.executable, str(GEN_RULES), "--grafana-url", "https://grafana.corp.example/",
         "--runbook-url", "https://wiki.corp.example/ai-cost", "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    shipped = {r["alert"]: r for r in alerts()}
    rendered = [
        r
        for path in sorted(out.glob("*.yaml"))
        for g in yaml.safe_load(path.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    ]
    assert [r["alert"] for r in rendered] == list(shipped)
    for rule in rendered:
        notes, name = rule["annotations"], rule["alert"]
        assert notes["runbook_url"] == f"https://wiki.corp.example/ai-cost#{name.lower()}"
        assert notes["dashboard_url"] == shipped[name]["annotations"]["dashboard_url"].replace(
            GRAFANA_URL, "https://grafana.corp.example"
        )
        # nothing else changes
        same = {k: v for k, v in notes.items() if not k.endswith("_url")}
        assert same == {
            k: v for k, v in shipped[name]["annotations"].items() if not k.endswith("_url")
        }
        assert {k: v for k, v in rule.items() if k != "annotations"} == {
            k: v for k, v in shipped[name].items() if k != "annotations"
        }
    check = subprocess.run([promtool(), "check", "rules", *map(str, sorted(out.glob("*.yaml")))],
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("bad", ["grafana.corp", "ftp://x", "https://g?orgId=1", "/d/x"])
def test_gen_rules_refuses_a_url_that_is_not_absolute(bad: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(GEN_RULES), "--grafana-url", bad, "--out", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2 and "absolute http(s) URL" in proc.stderr
    assert not list(tmp_path.iterdir())
