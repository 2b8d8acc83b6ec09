"""Deploy files: every config passes its tool's check, generated manifests do not drift."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    override = yaml.safe_load((DEPLOY / "compose.real.yaml").read_text())
    for service in [*compose["services"].values(), *override["services"].values()]:
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
    # kube-prometheus-stack's default selectors
    assert kinds["ServiceMonitor"]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rule = yaml.safe_load((DEPLOY / "kubernetes" / "prometheusrule.yaml").read_text())
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


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


def _compose(name: str = "compose.yaml") -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / name).read_text()))


def _interpolate_defaults(text: str) -> str:
    """Compose's ${VAR:-default} with nothing set; ${VAR:?msg} (a required variable) fails."""
    assert not re.search(r"\$\{[A-Z_]+:?\?", text), "a required variable: the demo needs none"
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def test_compose_demo_needs_no_keys_and_binds_loopback() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    compose = yaml.safe_load(_interpolate_defaults(text))
    exporter = compose["services"]["ai-cost-exporter"]
    assert exporter["command"][0] == "demo" and "environment" not in exporter
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    grafana = compose["services"]["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] and grafana["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_compose_real_override_reads_keys_from_an_env_file() -> None:
    override = _compose("compose.real.yaml")["services"]["ai-cost-exporter"]
    assert override["command"][:2] == ["run", "--config"]
    assert override["env_file"] == ["ai-cost.env"]
    assert "environment" not in override  # no key in the compose files
    example = (DEPLOY / "ai-cost.env.example").read_text()
    config = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    for provider in config["providers"]:
        assert f"{provider['api_key_env']}=" in example
    assert "deploy/ai-cost.env" in (ROOT / ".gitignore").read_text().splitlines()
    mount = override["volumes"][0].split(":")
    assert (DEPLOY / mount[0]).exists() and mount[1] == override["command"][2]


def test_dockerfile_healthcheck_has_no_fixed_port() -> None:
    text = (ROOT / "Dockerfile").read_text()
    healthcheck = text[text.index("HEALTHCHECK") :].split("\nENTRYPOINT")[0]
    assert "9877" not in healthcheck and "ai-cost-exporter-healthcheck" in healthcheck
    assert "COPY deploy/docker/healthcheck.py /usr/local/bin/ai-cost-exporter-healthcheck" in text
    assert "deploy" not in (ROOT / ".dockerignore").read_text().split()


def _healthcheck() -> Any:
    spec = importlib.util.spec_from_file_location(
        "healthcheck", DEPLOY / "docker" / "healthcheck.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_healthcheck_takes_the_address_the_exporter_takes(tmp_path: Path) -> None:
    hc = _healthcheck()
    config = tmp_path / "config.yaml"
    config.write_text('listen_address: "0.0.0.0:9100"\n')
    exe = ["/usr/local/bin/python", "/usr/local/bin/ai-cost-exporter"]
    assert hc.listen_address([*exe, "run", "--config", str(config)]) == "0.0.0.0:9100"
    assert hc.listen_address([*exe, "run", f"--config.file={config}"]) == "0.0.0.0:9100"
    assert (
        hc.listen_address([*exe, "run", "--config", str(config), "--web.listen-address", ":9200"])
        == ":9200"
    )
    assert hc.listen_address([*exe, "demo"]) == "0.0.0.0:9877"
    assert hc.health_url("0.0.0.0:9100") == "http://127.0.0.1:9100/-/healthy"
    assert hc.health_url(":9200") == "http://127.0.0.1:9200/-/healthy"
    assert hc.health_url("[::]:9300") == "http://[::1]:9300/-/healthy"
    assert hc.health_url("10.0.0.5:9877") == "http://10.0.0.5:9877/-/healthy"


def test_healthcheck_against_a_running_exporter_on_another_port(tmp_path: Path) -> None:
    from tests.e2e.process import ExporterProcess

    script = str(DEPLOY / "docker" / "healthcheck.py")
    demo = ExporterProcess(
        ["demo", "--days", "3", "--storage.path", str(tmp_path / "d.db")], {}, tmp_path / "log"
    )
    try:
        demo.wait_for(lambda: demo.get("/-/healthy").status_code == 200, "healthy")
        assert demo.port != 9877
        ok = subprocess.run([sys.executable, script, str(demo.proc.pid)],
                            capture_output=True, text=True)  # fmt: skip
        assert ok.returncode == 0, ok.stderr
    finally:
        demo.stop()
    down = subprocess.run([sys.executable, script, str(os.getpid())],
                          capture_output=True, text=True)  # fmt: skip
    assert down.returncode == 1 and "unhealthy" in down.stderr


def test_kubernetes_two_replica_shape_on_postgresql() -> None:
    """deploy/kubernetes/replicas.yaml: 2 replicas reading storage.url from the config and
    the password from a Secret, no history volume, a Service, a PodDisruptionBudget."""
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "replicas.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {
        "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "ServiceMonitor",
    }  # fmt: skip
    config = validate(yaml.safe_load(kinds["ConfigMap"]["data"]["config.yaml"]))
    assert config.storage.url and config.storage.password_env
    deployment = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env[config.storage.password_env]["valueFrom"]["secretKeyRef"]["name"]
    assert "history" not in {v["name"] for v in pod["volumes"]}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = kinds["PodDisruptionBudget"]
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kinds["Service"]["spec"]["selector"].items() <= labels.items()
    assert kinds["Service"]["metadata"]["name"] == "ai-cost-exporter"  # the alerts' job
    # one scrape target through the Service: the replicas are not summed twice
    (endpoint,) = kinds["ServiceMonitor"]["spec"]["endpoints"]
    address = endpoint["relabelings"][0]
    assert address["targetLabel"] == "__address__"
    assert address["replacement"] == "ai-cost-exporter.$1.svc:9877"
    base = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "exporter.yaml").read_text()))
    single = {d["kind"]: d for d in base}["Deployment"]["spec"]["template"]["spec"]
    same = ("securityContext", "readinessProbe", "livenessProbe", "resources", "args")
    for key in same:  # the same container as the one-replica shape, storage aside
        assert container[key] == single["containers"][0][key], key
