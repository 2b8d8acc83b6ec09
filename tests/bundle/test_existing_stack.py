"""README "Add to an existing stack": what it tells a user matches the rules and dashboards.

The e2e (tests/e2e/test_stack.py) runs the README's Prometheus snippet against a real
Prometheus; these tests keep the rest of the section true without starting anything.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import promtool

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def readme_prometheus_snippet() -> dict[str, Any]:
    """The Prometheus config block of "Add to an existing stack" (rule_files + scrape)."""
    blocks = re.findall(r"```yaml\n(.*?)```", section("Add to an existing stack"), re.S)
    (block,) = [yaml.safe_load(b) for b in blocks if "scrape_configs" in b]
    return dict(block)


def _alert_exprs() -> list[str]:
    doc = yaml.safe_load((ROOT / "alerting" / "alerts.yaml").read_text())
    return [r["expr"] for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_readme_scrape_job_is_the_job_the_alerts_select() -> None:
    snippet = readme_prometheus_snippet()
    jobs = {c["job_name"] for c in snippet["scrape_configs"]}
    selected = {j for e in _alert_exprs() for j in re.findall(r'job="([^"]+)"', e)}
    assert selected and jobs == selected, (jobs, selected)
    # the README's rule files are the shipped ones
    assert sorted(Path(f).name for f in snippet["rule_files"]) == ["alerts.yaml", "rules.yaml"]


def test_no_other_readme_snippet_names_another_job() -> None:
    for block in re.findall(r"```yaml\n(.*?)```", README, re.S):
        for name in re.findall(r"job_name:\s*(\S+)", block):
            assert name == "ai-cost-exporter", f"README scrape snippet with job {name}"


def test_readme_names_every_panel_that_needs_a_rule_file() -> None:
    text = " ".join(section("Add to an existing stack").split())
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        for p in json.loads(path.read_text())["panels"]:
            for t in p.get("targets", []):
                recorded = re.findall(r"\b([a-z_]+:aicost_[a-z0-9_]+:[a-z0-9_]+)", t["expr"])
                if recorded or "ALERTS{" in t["expr"]:
                    title = p["title"].removesuffix(" ($currency)")
                    assert f'"{title}"' in text, f"README does not say {title} needs rules"
                    for name in recorded:
                        assert f"`{name}`" in text


def test_first_command_runs_in_a_venv_not_the_system_python() -> None:
    first = re.search(r"```sh\n(.*?)\n", README).group(1)  # type: ignore[union-attr]
    # the extras the demo's Bedrock and Vertex accounts need, so command 1 shows every provider
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install '.[aws,gcp]' ")
    assert ".venv/bin/ai-cost-exporter demo" in first
    assert "docker run --rm -p 127.0.0.1:9877:9877 ai-cost-exporter demo" in README


def test_readme_prometheus_snippet_passes_promtool_with_the_shipped_rules(tmp_path: Path) -> None:
    snippet = readme_prometheus_snippet()
    for rule_file in snippet["rule_files"]:  # copied where step 1 says: ai-cost/
        target = tmp_path / rule_file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "alerting" / Path(rule_file).name, target)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(snippet))
    proc = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr and "rules found" in proc.stdout + proc.stderr
