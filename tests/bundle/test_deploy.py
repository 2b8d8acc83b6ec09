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
