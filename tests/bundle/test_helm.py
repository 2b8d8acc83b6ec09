"""deploy/helm/ai-cost-exporter: rendered with its values and with overrides, checked object
by object (no helm binary in Debian or PyPI: tests/bundle/helm_render.py renders the Go
template subset the chart uses, and refuses anything outside it)."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from exporter.config import validate
from tests.bundle.helm_render import Renderer

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "ai-cost-exporter"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())

_spec = importlib.util.spec_from_file_location("gen_rules", ROOT / "scripts" / "gen_rules.py")
assert _spec and _spec.loader
gen_rules = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_rules)


def render(overrides: dict[str, Any] | None = None, release: str = "aicost") -> dict[str, Any]:
    values = copy.deepcopy(VALUES)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    docs = Renderer(CHART, values, release).manifests()
    by_kind: dict[str, Any] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def one(by_kind: dict[str, Any], kind: str, suffix: str = "") -> dict[str, Any]:
    (doc,) = [d for d in by_kind[kind] if d["metadata"]["name"].endswith(suffix)]
    return dict(doc)


def shipped_groups() -> list[dict[str, Any]]:
    """alerting/*.yaml's groups (test_deploy.py pins the plain PrometheusRule to them)."""
    rule = yaml.safe_load((ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml").read_text())
    return list(rule["spec"]["groups"])


def test_default_render_has_every_object() -> None:
    by_kind = render()
    assert {k: len(v) for k, v in by_kind.items()} == {
        "ConfigMap": 2, "PersistentVolumeClaim": 1, "Deployment": 1, "Service": 1,
        "ServiceMonitor": 1, "PrometheusRule": 1,
    }  # fmt: skip


def test_config_validates_with_the_currency_value_and_secret_references() -> None:
    by_kind = render({"currency": "EUR"})
    config_map = one(by_kind, "ConfigMap", "-config")
    config = validate(yaml.safe_load(config_map["data"]["config.yaml"]))
    assert config.currency == "EUR"
    pod = one(by_kind, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    assert volumes["secrets"]["secret"]["secretName"] == "ai-cost-exporter"
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    key_file = config.providers[0].api_key_file
    assert key_file and key_file.startswith(mounts["secrets"] + "/")
    assert str(config.storage.path).startswith(mounts["history"] + "/")
    assert pod["containers"][0]["args"][:3] == [
        "run",
        "--config",
        f"{mounts['config']}/config.yaml",
    ]


def test_extra_env_and_no_secret() -> None:
    env = [{"name": "ANTHROPIC_ADMIN_KEY",
            "valueFrom": {"secretKeyRef": {"name": "keys", "key": "anthropic"}}}]  # fmt: skip
    pod = one(render({"extraEnv": env, "existingSecret": ""}), "Deployment")["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["env"] == env
    assert "secrets" not in {v["name"] for v in pod["spec"]["volumes"]}


def test_scrape_path_gives_the_job_the_alerts_select() -> None:
    by_kind = render(release="my-release")
    service, monitor = one(by_kind, "Service"), one(by_kind, "ServiceMonitor")
    pod_labels = one(by_kind, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
    # the Prometheus Operator takes the job from this Service label, not the release name
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "ai-cost-exporter"
    exprs = [r["expr"] for g in shipped_groups() for r in g["rules"]]
    assert any('up{job="ai-cost-exporter"}' in e for e in exprs)


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
def test_kube_prometheus_stack_release_label_is_configurable(kind: str) -> None:
    assert one(render(), kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    key = "serviceMonitor" if kind == "ServiceMonitor" else "prometheusRule"
    custom = one(render({key: {"labels": {"release": "prom", "team": "sre"}}}), kind)
    assert custom["metadata"]["labels"]["release"] == "prom"
    assert custom["metadata"]["labels"]["team"] == "sre"


def test_prometheus_rule_is_the_shipped_rules_with_your_links() -> None:
    links = {"grafanaUrl": "https://grafana.corp.example/", "runbookUrl": "https://wiki.example/rb"}
    rule = one(render({"links": links}), "PrometheusRule")
    expected = [
        yaml.safe_load(gen_rules.relink(yaml.safe_dump(g, width=1000),
                                        "https://grafana.corp.example", "https://wiki.example/rb"))
        for g in shipped_groups()
    ]  # fmt: skip
    assert rule["spec"]["groups"] == expected
    urls = [
        r["annotations"][k]
        for g in rule["spec"]["groups"]
        for r in g["rules"]
        if "alert" in r
        for k in ("dashboard_url", "runbook_url")
    ]
    assert urls and all(u.startswith(("https://grafana.corp.example/d/", "https://wiki.example/rb#"))
                        for u in urls)  # fmt: skip
    assert one(render(), "PrometheusRule")["spec"]["groups"] == shipped_groups()


def test_dashboards_config_map_holds_the_generated_dashboards() -> None:
    cm = one(render(), "ConfigMap", "-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    files = {p.name: p.read_text() for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    assert {k: json.loads(v) for k, v in cm["data"].items()} == {
        k: json.loads(v) for k, v in files.items()
    }
    (only,) = render({"dashboards": {"enabled": False}})["ConfigMap"]
    assert only["metadata"]["name"].endswith("-config")


def test_web_port_and_persistence_values() -> None:
    by_kind = render({"web": {"port": 9100}, "persistence": {"enabled": False}})
    assert "PersistentVolumeClaim" not in by_kind
    pod = one(by_kind, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["ports"][0]["containerPort"] == 9100
    assert container["args"][-2:] == ["--web.listen-address", "0.0.0.0:9100"]
    assert {v["name"]: v for v in pod["volumes"]}["history"] == {"name": "history", "emptyDir": {}}
    assert one(by_kind, "Service")["spec"]["ports"][0]["port"] == 9100
    config = yaml.safe_load(one(by_kind, "ConfigMap", "-config")["data"]["config.yaml"])
    assert config["listen_address"] == "0.0.0.0:9100"


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("name: x\nversion: 0.1.0\nappVersion: '1'\n")
    (chart / "templates" / "a.yaml").write_text('kind: {{ lower "X" }}\n')
    with pytest.raises(NotImplementedError, match="lower"):
        Renderer(chart, {}).render()


POSTGRES = {
    "url": "postgresql://aicost@postgres.db.svc:5432/aicost",
    "password_env": "AICOST_POSTGRES_PASSWORD",
}


def test_postgresql_storage_renders_the_two_replica_shape() -> None:
    config_values = {**VALUES["config"], "storage": POSTGRES}
    by_kind = render({"config": config_values})
    assert {k: len(v) for k, v in by_kind.items()} == {  # no PersistentVolumeClaim
        "ConfigMap": 2, "Deployment": 1, "Service": 1, "PodDisruptionBudget": 1,
        "ServiceMonitor": 1, "PrometheusRule": 1,
    }  # fmt: skip
    config = validate(yaml.safe_load(one(by_kind, "ConfigMap", "-config")["data"]["config.yaml"]))
    assert config.storage.url == POSTGRES["url"]
    deployment = one(by_kind, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    pod = deployment["spec"]["template"]["spec"]
    (env,) = pod["containers"][0]["env"]
    assert env == {
        "name": "AICOST_POSTGRES_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "ai-cost-exporter-postgres", "key": "password"}},
    }
    assert "history" not in {v["name"] for v in pod["volumes"]}
    assert "history" not in {m["name"] for m in pod["containers"][0]["volumeMounts"]}
    pdb = one(by_kind, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    relabel = one(by_kind, "ServiceMonitor")["spec"]["endpoints"][0]["relabelings"][0]
    assert relabel["replacement"] == f"{one(by_kind, 'Service')['metadata']['name']}.$1.svc:9877"


def test_postgresql_replicas_secret_and_extra_env_values() -> None:
    env = [{"name": "X_KEY", "valueFrom": {"secretKeyRef": {"name": "keys", "key": "x"}}}]
    by_kind = render({
        "config": {**VALUES["config"], "storage": POSTGRES}, "replicaCount": 3, "extraEnv": env,
        "postgresPassword": {"secretName": "pg", "key": "pw"},
        "podDisruptionBudget": {"minAvailable": 2},
    })  # fmt: skip
    deployment = one(by_kind, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert [e["name"] for e in container["env"]] == ["AICOST_POSTGRES_PASSWORD", "X_KEY"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "pg", "key": "pw"}
    assert one(by_kind, "PodDisruptionBudget")["spec"]["minAvailable"] == 2


def test_sqlite_ignores_the_replica_count() -> None:
    by_kind = render({"replicaCount": 3})
    deployment = one(by_kind, "Deployment")
    assert (
        deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    )
    assert "PodDisruptionBudget" not in by_kind
    assert "relabelings" not in one(by_kind, "ServiceMonitor")["spec"]["endpoints"][0]
