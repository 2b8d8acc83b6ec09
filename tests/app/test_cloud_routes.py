"""The demo's cloud routes end to end: Claude Sonnet 4.5 on Anthropic, Bedrock and Vertex
at different effective prices, through the real provider code over loopback HTTP, makes
the cross_provider recommendation fire with the cheapest route as target and the saving an
independent computation from the fakes' own truth gives."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from exporter.app import App, build
from exporter.clock import utc_now
from exporter.config import Config
from exporter.demo import orgs as demo_orgs
from exporter.demo.anthropic import FakeAnthropicOrg
from exporter.demo.bedrock import SONNET_45, FakeBedrockAccount
from exporter.demo.vertex import FakeBillingExport
from exporter.pricing import model_family
from exporter.snapshot import SavingsKey
from tests.helpers import cloud_extra, parse_exposition
from tests.oracles.anthropic import truth_costs as anthropic_costs
from tests.oracles.anthropic import truth_tokens as anthropic_tokens
from tests.oracles.bedrock import truth_token_costs, truth_tokens

DAYS = 40
GROUP = "claude-sonnet-4-5"


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[App, dict[str, Any]]]:
    cloud_extra("boto3", "aws")
    cloud_extra("google.cloud.bigquery", "gcp")
    truth: dict[str, Any] = {}
    # Keep each fake's truth for the oracle (the starters build them internally).
    for name, attr in (
        ("generate_anthropic_org", "anthropic"),
        ("generate_account", "bedrock"),
        ("generate_export", "vertex"),
    ):
        original = getattr(demo_orgs, name)

        def keep(*a: Any, _o: Any = original, _k: str = attr, **kw: Any) -> Any:
            truth[_k] = _o(*a, **kw)
            return truth[_k]

        monkeypatch.setattr(demo_orgs, name, keep)
    today = utc_now().date()
    with demo_orgs.running_demo(today, DAYS, 0) as started:
        env: dict[str, str] = {}
        for org in started:
            env.update(org.env)
        config = Config.model_validate(
            {
                "storage": {"path": str(tmp_path / "demo.db")},
                "poll": {"backfill_days": DAYS, "max_attempts": 1},
                "providers": [org.provider for org in started],
            }
        )
        app = build(config, env=env)
        try:
            assert app.poll_once(), [p.health for p in app.pollers]
            yield app, truth
        finally:
            app.stop()


def _route_anthropic(
    org: FakeAnthropicOrg, start: Any, end: Any
) -> dict[tuple[str, str], list[Decimal]]:
    out: dict[tuple[str, str], list[Decimal]] = {}
    for (project, model, _), n in anthropic_tokens(org, start, end).items():
        if model_family(model) == GROUP:
            out.setdefault((project, model), [Decimal(0), Decimal(0)])[0] += n
    for (project, model, cost_type), amount in anthropic_costs(org, start, end).items():
        if cost_type == "tokens" and model_family(model) == GROUP:
            out.setdefault((project, model), [Decimal(0), Decimal(0)])[1] += amount
    return out


def _route_bedrock(account: FakeBedrockAccount, start: Any, end: Any) -> list[Decimal]:
    tokens = sum(n for (_, m, _), n in truth_tokens(account, start, end).items() if m == SONNET_45)
    cost = sum(
        (c for (_, m, _), c in truth_token_costs(account, start, end).items() if m == SONNET_45),
        Decimal(0),
    )
    return [Decimal(tokens), cost]


def _route_vertex(export: FakeBillingExport, start: Any, end: Any) -> list[Decimal]:
    rows = [
        r
        for r in export.rows
        if start <= r.day < end
        and r.cost_type == "regular"
        and r.sku.startswith("Claude Sonnet 4.5")
    ]
    return [
        sum((r.usage_amount for r in rows), Decimal(0)),
        sum((r.cost for r in rows), Decimal(0)),
    ]


def test_cloud_costs_are_published_beside_the_direct_providers(
    demo: tuple[App, dict[str, Any]],
) -> None:
    app, truth = demo
    samples = parse_exposition(app.refresh().text.decode())
    providers = {
        dict(labels)["provider"]
        for (name, labels), _ in samples.items()
        if name == "aicost_cost_30d"
    }
    assert {"openai", "anthropic", "xai", "bedrock", "vertex"} <= providers
    up = {dict(lab)["provider"]: v for (n, lab), v in samples.items() if n == "aicost_up"}
    assert up["bedrock"] == 1 and up["vertex"] == 1
    credit = [
        v
        for (n, lab), v in samples.items()
        if n == "aicost_cost_30d" and dict(lab)["cost_type"] == "credit"
    ]
    assert credit and all(v < 0 for v in credit)  # Gemini API credits: net below gross
    ce_calls = [
        v for (n, lab), v in samples.items()
        if n == "aicost_api_requests_total" and dict(lab).get("endpoint") == "ce/GetCostAndUsage"
    ]  # fmt: skip
    # One grouped Cost Explorer query (USD 0.01 a page); pages only as whole days of at
    # most ce_page_groups groups fill them.
    account = truth["bedrock"]
    per_day: dict[Any, set[tuple[str, str]]] = {}
    for day, service, usage_type, _, entity in account.cost_lines():
        if service == "Amazon Bedrock" or entity == "AWS Marketplace":
            per_day.setdefault(day, set()).add((service, usage_type))
    pages, filled = 1, 0
    for day in sorted(per_day):
        if filled and filled + len(per_day[day]) > account.ce_page_groups:
            pages, filled = pages + 1, 0
        filled += len(per_day[day])
    assert sum(ce_calls) == pages


def test_cross_provider_targets_the_cheapest_route_with_the_independent_saving(
    demo: tuple[App, dict[str, Any]],
) -> None:
    app, truth = demo
    today = utc_now().date()
    start, end = today - timedelta(days=30), today
    anthropic = _route_anthropic(truth["anthropic"], start, end)
    routes = {
        "anthropic": [
            sum((v[0] for v in anthropic.values()), Decimal(0)),
            sum((v[1] for v in anthropic.values()), Decimal(0)),
        ],
        "bedrock": _route_bedrock(truth["bedrock"], start, end),
        "vertex": _route_vertex(truth["vertex"], start, end),
    }
    rates = {p: cost / tokens for p, (tokens, cost) in routes.items()}
    cheapest = min(rates, key=lambda p: rates[p])
    assert cheapest == "vertex"  # 10 % under list; Bedrock's regional endpoint 10 % over
    expected = {
        ("bedrock", "bedrock-demo", "123456789012", SONNET_45): routes["bedrock"][1]
        - routes["bedrock"][0] * rates["vertex"],
    }
    for (project, model), (tokens, cost) in anthropic.items():
        saving = cost - tokens * rates["vertex"]
        if saving >= 1:
            expected[("anthropic", "anthropic-demo", project, model)] = saving
    savings = app.snapshot().recommendations.savings
    maps = app.config.recommendations.maps()

    def in_group(k: SavingsKey) -> bool:
        return k.recommendation == "cross_provider" and maps.group(k.provider, k.model) == GROUP

    got = {
        (k.provider, k.account, k.project, k.model): v for k, v in savings.items() if in_group(k)
    }
    assert {k.target for k in savings if in_group(k)} == {"vertex"}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key].quantize(Decimal("0.01")) == value.quantize(Decimal("0.01")), key


BASE_INSTALL = r"""
import importlib.abc, importlib.machinery, sys

def cloud(name):
    return name.split(".")[0] in ("boto3", "botocore") or name.startswith("google.cloud")

class NoCloudSdks(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if cloud(name):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoCloudSdks())
import importlib.util
_find = importlib.util.find_spec
importlib.util.find_spec = lambda n, *a: None if cloud(n) else _find(n, *a)

from exporter.app import build
from exporter.config import check, validate

config = validate({
    "storage": {"path": sys.argv[1]},
    "providers": [
        {"type": "openai", "base_url": "http://127.0.0.1:9", "api_key_env": "K"},
        {"type": "bedrock", "account_id": "123456789012", "base_url": "http://127.0.0.1:9"},
        {"type": "vertex", "billing_table": "billing-proj.b.t", "base_url": "http://127.0.0.1:9",
         "anonymous": True},
    ],
})
for problem in check(config, {"K": "x"}):
    print("CHECK", problem)
app = build(config, env={"K": "x"})
for poller in app.pollers:
    poller.poll()
    print("HEALTH", poller.type, {k: v for k, v in poller.health.errors.items() if v})
app.stop()
"""


def test_a_base_install_runs_the_direct_providers_and_names_the_missing_extras(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", BASE_INSTALL, str(tmp_path / "h.db")],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert (
        "the bedrock provider needs the optional extra: pip install 'ai-cost-exporter[aws]'" in out
    )
    assert "pip install 'ai-cost-exporter[gcp]'" in out
    # The direct provider is polled (its fake endpoint is closed: upstream), the cloud
    # ones fail as config errors naming the extra, in the log too.
    assert "HEALTH openai {'upstream': 1}" in out
    assert "HEALTH bedrock {'config': 1}" in out and "HEALTH vertex {'config': 1}" in out
    assert "ai-cost-exporter[aws]" in proc.stderr


def test_check_config_reports_every_cloud_error_at_once_without_secrets(tmp_path: Path) -> None:
    import subprocess
    import sys

    import yaml

    secret_file = tmp_path / "sa.json"
    path = tmp_path / "cloud.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "providers": [
                    {"type": "bedrock", "account_id": "12-34", "aws_secret_access_key": "wJSECRET"},
                    {"type": "vertex", "billing_table": "x", "api_key": "AIzaSECRET"},
                    {"type": "vertex", "name": "v2", "billing_table": "billing-proj.b.t",
                     "credentials_file": str(secret_file)},
                ]
            }
        )
    )  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for expected in (
        "providers[0].account_id",
        "providers[0].aws_secret_access_key: unknown key",
        "providers[1].billing_table",
        "providers[1].api_key",
    ):
        assert expected in out, (expected, out)
    assert "SECRET" not in out
    path.write_text(
        yaml.safe_dump({"providers": [yaml.safe_load(path.read_text())["providers"][2]]})
    )
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "cannot read credentials_file" in proc.stdout + proc.stderr
