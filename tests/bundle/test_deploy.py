"""Deploy files: every config passes its tool's check, generated manifests do not drift."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter.config import validate
from tests.helpers import promtool

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def test_kubernetes_manifests_are_generated_from_alerting_and_grafana() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_kubernetes.py"), "--check"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout


def test_prometheusrule_holds_exactly_the_shipped_groups() -> None:
    rule = yaml.safe_load((DEPLOY / "kubernetes" / "prometheusrule.yaml").read_text())
    shipped = []
    for path in sorted((ROOT / "alerting").glob("*.yaml")):
        shipped.extend(yaml.safe_load(path.read_text())["groups"])
    assert rule["kind"] == "PrometheusRule" and rule["spec"]["groups"] == shipped


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    # the container layout: prometheus.yml beside rules/ (alerting/ mounted)
    shutil.copy(DEPLOY / "prometheus" / "prometheus.yml", tmp_path / "prometheus.yml")
    (tmp_path / "rules").mkdir()
    for path in (ROOT / "alerting").glob("*.yaml"):
        shutil.copy(path, tmp_path / "rules" / path.name)
    proc = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr


def test_alertmanager_example_passes_amtool() -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        promtool()  # same skip/fail policy: CI installs both packages
        pytest.skip("amtool not installed")
    proc = subprocess.run(
        [amtool, "check-config", str(ROOT / "alerting" / "alertmanager.example.yml")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_compose_mounts_existing_files() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert set(compose["services"]) == {"ai-cost-exporter", "prometheus", "alertmanager", "grafana"}
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"compose mounts a missing path: {source}"


def test_kubernetes_exporter_manifests() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "exporter.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {
        "ConfigMap", "PersistentVolumeClaim", "Deployment", "Service", "ServiceMonitor",
    }  # fmt: skip
    config = validate(yaml.safe_load(kinds["ConfigMap"]["data"]["config.yaml"]))
    assert config.providers[0].api_key_file
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert kinds["Service"]["metadata"]["name"] == "ai-cost-exporter"  # the alerts' job


def test_grafana_provisioning_points_at_the_mounted_dashboards() -> None:
    dashboards = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "dashboards" / "ai-cost.yaml").read_text()
    )
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    path = dashboards["providers"][0]["options"]["path"]
    assert any(m.split(":")[1] == path for m in mounts)


def test_dockerfile_runs_non_root_with_healthcheck_and_volumes() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER 10001" in text and "HEALTHCHECK" in text and "/-/healthy" in text
    assert 'VOLUME ["/var/lib/ai-cost-exporter"]' in text


def _amtool() -> str:
    amtool = shutil.which("amtool")
    if amtool is None:
        promtool()  # same skip/fail policy: CI installs both packages
        pytest.skip("amtool not installed")
    return amtool


def test_alertmanager_example_is_one_aicost_sub_route() -> None:
    example = yaml.safe_load((ROOT / "alerting" / "alertmanager.example.yml").read_text())
    (sub_route,) = example["route"]["routes"]
    assert sub_route["matchers"] == ['alertname=~"AICost.*"']
    assert "matchers" not in example["route"] and "match" not in example["route"]
    for rule in example["inhibit_rules"]:  # inhibitions never touch other alerts
        assert all(m.startswith("alertname=") for m in rule["source_matchers"])
        assert all(m.startswith("alertname=") for m in rule["target_matchers"])


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        # another team's alerts keep their routes, even at severity critical
        ({"alertname": "PaymentsLatencyHigh", "team": "payments", "severity": "critical"},
         "payments-oncall"),
        ({"alertname": "NodeDown", "severity": "critical"}, "ops-pager"),
        ({"alertname": "DiskFilling", "severity": "warning"}, "ops-default"),
        # ours go through the sub-route
        ({"alertname": "AICostBudgetExceeded", "severity": "critical", "budget": "b"},
         "aicost-pager"),
        ({"alertname": "AICostProviderPollFailing", "severity": "warning"}, "aicost-tickets"),
        ({"alertname": "AICostNewWorkload", "severity": "info"}, "aicost-silent"),
    ],
)  # fmt: skip
def test_merged_example_routes_every_alert_to_its_own_receiver(
    labels: dict[str, str], receiver: str, tmp_path: Path
) -> None:
    from tests.alertmanager_merge import merged

    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(merged()))
    amtool = _amtool()
    check = subprocess.run([amtool, "check-config", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    proc = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}",
         *(f"{k}={v}" for k, v in labels.items())],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [receiver]
