"""The bedrock provider through real boto3 against the fake Cost Explorer + CloudWatch."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.config import BedrockConfig, Secret, check, validate
from exporter.demo.bedrock import (
    NOVA_PRO,
    SONNET_45,
    BedrockUsageRow,
    FakeBedrockAccount,
    FakeBedrockServer,
    generate_account,
)
from exporter.demo.http import Fault
from exporter.providers.bedrock import BedrockProvider, classify_usage_type, service_model
from exporter.providers.errors import AuthError, ConfigError, ProviderTimeout
from exporter.providers.http import RetryPolicy
from tests.helpers import cloud_extra, opened
from tests.oracles.bedrock import truth_bedrock_other, truth_token_costs, truth_tokens

TODAY = date(2026, 3, 18)
START, END = TODAY - timedelta(days=6), TODAY + timedelta(days=1)


@pytest.fixture
def account() -> FakeBedrockAccount:
    cloud_extra("boto3", "aws")
    return generate_account(today=TODAY, days=10, seed=3)


@pytest.fixture
def fake(account: FakeBedrockAccount) -> Iterator[FakeBedrockServer]:
    with FakeBedrockServer(account) as server:
        yield server


def credentials(tmp_path: Path, key_id: str, secret: str) -> str:
    path = tmp_path / "aws-credentials"
    path.write_text(f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")
    return str(path)


def make_provider(
    tmp_path: Path, fake: FakeBedrockServer, *, attempts: int = 3, timeout: float = 5.0, **kw: Any
) -> tuple[BedrockProvider, list[tuple[str, str]]]:
    acct = fake.org
    block = {
        "type": "bedrock",
        "account_id": acct.account_id,
        "base_url": fake.base_url,
        "cloudwatch_url": fake.base_url,
        "credentials_file": credentials(
            tmp_path, kw.pop("key_id", acct.access_key_id), acct.secret_access_key
        ),
    }
    config = validate({"providers": [block]}).providers[0]
    seen: list[tuple[str, str]] = []
    provider = BedrockProvider(
        config,
        opened(httpx.Client(timeout=timeout)),
        Secret(""),
        retry=RetryPolicy(max_attempts=attempts, sleep=lambda s: None),
        observer=lambda e, c: seen.append((e, c)),
    )
    return provider, seen


def costs_by_key(result: Any) -> dict[tuple[date, str, str], Decimal]:
    out: dict[tuple[date, str, str], Decimal] = {}
    for c in result.costs:
        if c.cost_type == "tokens":
            key = (c.day, c.model, c.token_type)
            out[key] = out.get(key, Decimal(0)) + c.amount
    return out


def tokens_by_key(result: Any) -> dict[tuple[date, str, str], int]:
    return {
        (u.day, u.model, t): u.tokens(t)
        for u in result.usage
        for t in ("input", "output", "cache_read", "cache_write")
        if u.tokens(t)
    }


def test_costs_and_tokens_match_the_fake_to_the_cent(
    tmp_path: Path, fake: FakeBedrockServer
) -> None:
    provider, seen = make_provider(tmp_path, fake)
    result = provider.fetch(START, END)
    assert costs_by_key(result) == truth_token_costs(fake.org, START, END)  # exact Decimals
    assert tokens_by_key(result) == truth_tokens(fake.org, START, END)
    other = sum((c.amount for c in result.costs if c.cost_type == "other"), Decimal(0))
    assert other == truth_bedrock_other(fake.org, START, END)  # guardrails kept, Acme dropped
    assert all(c.model == "" for c in result.costs if c.cost_type == "other")
    # Marketplace cost joins the CloudWatch model id: one stream for cost and tokens.
    assert {c.model for c in result.costs if c.model} == {SONNET_45, NOVA_PRO}
    requests = {u.model: u.requests for u in result.usage if u.day == START}
    assert requests[SONNET_45] == next(
        r.invocations for r in fake.org.usage if r.day == START and r.model_id == SONNET_45
    )
    # One Cost Explorer request (USD 0.01) for the whole window.
    assert [e for e, _ in seen].count("ce/GetCostAndUsage") == 1
    body = next(r.json() for r in fake.requests if "GetCostAndUsage" in r.headers["x-amz-target"])
    assert body["TimePeriod"] == {"Start": START.isoformat(), "End": END.isoformat()}
    assert body["Granularity"] == "DAILY"


def test_next_page_token_is_followed_and_each_page_counted(
    tmp_path: Path, fake: FakeBedrockServer
) -> None:
    fake.org.ce_page_groups = 5
    fake.org.cw_page_results = 3
    provider, seen = make_provider(tmp_path, fake)
    result = provider.fetch(START, END)
    assert costs_by_key(result) == truth_token_costs(fake.org, START, END)
    assert tokens_by_key(result) == truth_tokens(fake.org, START, END)
    ce_pages = [c for e, c in seen if e == "ce/GetCostAndUsage"]
    assert len(ce_pages) == END.toordinal() - START.toordinal()  # 5 groups a page: one day each
    assert set(ce_pages) == {"200"}
    tokens = [
        r.json().get("NextPageToken")
        for r in fake.requests
        if r.json() and "TimePeriod" in r.json()
    ]
    assert tokens[0] is None and all(tokens[1:])


def test_a_revision_of_a_recent_day_is_read_again(tmp_path: Path, fake: FakeBedrockServer) -> None:
    provider, _ = make_provider(tmp_path, fake)
    first = costs_by_key(provider.fetch(START, END))
    day = TODAY - timedelta(days=1)
    fake.org.usage = [
        replace(r, input_tokens=r.input_tokens * 2)
        if (r.day, r.model_id) == (day, SONNET_45)
        else r
        for r in fake.org.usage
    ]
    second = costs_by_key(provider.fetch(START, END))
    assert second[(day, SONNET_45, "input")] == 2 * first[(day, SONNET_45, "input")]
    assert second == truth_token_costs(fake.org, START, END)


def test_unknown_usage_types_are_kept_as_other_and_logged(
    tmp_path: Path, fake: FakeBedrockServer, caplog: pytest.LogCaptureFixture
) -> None:
    provider, _ = make_provider(tmp_path, fake)
    with caplog.at_level(logging.WARNING):
        result = provider.fetch(START, END)
    assert "USE1-Guardrail-ContentPolicyUnitsConsumed" in caplog.text
    assert any(c.line_item.endswith("Guardrail-ContentPolicyUnitsConsumed") for c in result.costs)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_throttling_and_server_errors_are_retried(
    tmp_path: Path, fake: FakeBedrockServer, status: int
) -> None:
    fake.inject(Fault(status=status, times=2))
    provider, seen = make_provider(tmp_path, fake, attempts=3)
    result = provider.fetch(START, END)
    assert costs_by_key(result) == truth_token_costs(fake.org, START, END)
    assert [c for _, c in seen][:2] == [str(status)] * 2


def test_a_timeout_fails_the_poll_as_timeout(tmp_path: Path, fake: FakeBedrockServer) -> None:
    fake.inject(Fault(delay=2.0, times=5))
    provider, seen = make_provider(tmp_path, fake, attempts=2, timeout=0.3)
    with pytest.raises(ProviderTimeout):
        provider.fetch(START, END)
    assert [c for _, c in seen] == ["timeout", "timeout"]


def test_the_fake_refuses_an_unsigned_request(fake: FakeBedrockServer) -> None:
    boto3 = cloud_extra("boto3", "aws")
    from botocore import UNSIGNED
    from botocore.config import Config

    client = boto3.client(
        "ce", endpoint_url=fake.base_url, region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )  # fmt: skip
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as err:
        client.get_cost_and_usage(
            TimePeriod={"Start": "2026-03-01", "End": "2026-03-02"},
            Granularity="DAILY",
            Metrics=["UnblendedCost"],
        )
    assert err.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"


def test_an_unknown_access_key_is_an_auth_error_without_the_secret(
    tmp_path: Path, fake: FakeBedrockServer
) -> None:
    provider, _ = make_provider(tmp_path, fake, key_id="FAKEUNKNOWNACCESSKEY")
    with pytest.raises(AuthError) as err:
        provider.fetch(START, END)
    assert "UnrecognizedClientException" in str(err.value)
    assert fake.org.secret_access_key not in str(err.value)


def test_usage_types_and_services_parse_to_model_and_token_type() -> None:
    cases = {
        "USE1-MP:USE1_InputTokenCount-Units": ("", "input"),
        "USW2-MP:USW2_output_tokens_standard-Units": ("", "output"),
        "USE1-MP:USE1_CacheReadInputTokenCount-Units": ("", "cache_read"),
        "USE1-MP:USE1_CacheWriteInputTokenCount-Units": ("", "cache_write"),
        "USE1-Claude2.0-input-tokens": ("claude2.0", "input"),
        "USE1-NovaPro-cache-read-input-tokens": ("novapro", "cache_read"),
    }
    for usage_type, (model, token_type) in cases.items():
        line = classify_usage_type(usage_type)
        assert line is not None and (line.model, line.token_type) == (model, token_type), usage_type
    assert classify_usage_type("USE1-Guardrail-ContentPolicyUnitsConsumed") is None
    assert service_model("Claude 3.5 Sonnet (Amazon Bedrock Edition)") == "claude-3-5-sonnet"


def test_check_config_reports_every_problem_at_once_without_secrets() -> None:
    from exporter.config import ConfigErrors

    with pytest.raises(ConfigErrors) as err:
        validate(
            {
                "providers": [
                    {
                        "type": "bedrock",
                        "account_id": "12345",
                        "region": "moon",
                        "api_key": "sk-SECRET",
                    },
                    {"type": "vertex", "billing_table": "no-dots"},
                    {"type": "vertex", "billing_table": "billing-proj.b.t", "api_key_env": "X"},
                    {"type": "bedrock", "account_id": "123456789012", "cloudwatch_url": "ftp://x"},
                ]
            }
        )
    text = "\n".join(err.value.errors)
    for expected in (
        "account_id",
        "region",
        "api_key",
        "billing_table",
        "takes no admin key",
        "cloudwatch_url",
    ):
        assert expected in text, expected
    assert "sk-SECRET" not in text


def test_a_base_install_names_the_extra_a_cloud_provider_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "boto3" else real(name, *a)
    )
    config = validate({"providers": [{"type": "bedrock", "account_id": "123456789012"}]})
    problems = check(config)
    assert any("pip install 'ai-cost-exporter[aws]'" in p for p in problems), problems
    block = config.providers[0]
    assert isinstance(block, BedrockConfig)
    with pytest.raises(ConfigError, match=r"\[aws\]"):
        BedrockProvider(block, opened(httpx.Client()), Secret(""))


def test_a_day_without_traffic_stores_nothing(tmp_path: Path, fake: FakeBedrockServer) -> None:
    fake.org.usage = [r for r in fake.org.usage if r.day != START] + [
        BedrockUsageRow(START, NOVA_PRO)
    ]
    fake.org.lines = [x for x in fake.org.lines if x.day != START]
    provider, _ = make_provider(tmp_path, fake)
    result = provider.fetch(START, END)
    assert not [c for c in result.costs if c.day == START]
    assert not [u for u in result.usage if u.day == START]


def test_cost_explorer_is_polled_hourly_unless_configured(tmp_path: Path) -> None:
    from exporter.poller import Poller
    from exporter.providers import REGISTRY
    from exporter.store import Store

    config = validate(
        {
            "poll": {"interval": "15m"},
            "providers": [
                {"type": "bedrock", "account_id": "123456789012"},
                {
                    "type": "bedrock",
                    "name": "b2",
                    "account_id": "123456789012",
                    "poll_interval": "6h",
                },
                {"type": "openai", "api_key_env": "K"},
            ],
        }
    )
    store = opened(Store(str(tmp_path / "h.db")))
    intervals = [
        opened(Poller(config, p, store, REGISTRY[p.type])).interval for p in config.providers
    ]
    assert intervals == [3600.0, 21600.0, 900.0]  # 24 x USD 0.01 a day by default


@pytest.mark.parametrize("kind", ["bedrock", "vertex"])
def test_the_commented_example_block_is_a_valid_config(kind: str) -> None:
    import yaml

    lines = (Path(__file__).parents[2] / "config.example.yaml").read_text().splitlines()
    first = lines.index(f"  # - type: {kind}")
    block = []
    for line in lines[first:]:
        if not line.strip():
            break
        block.append(line.removeprefix("  # "))  # uncomment once; optional keys stay comments
    text = "\n".join(block)
    config = validate({"providers": yaml.safe_load(text)})
    assert config.providers[0].type == kind


def test_debug_logging_never_shows_the_credentials(
    tmp_path: Path, fake: FakeBedrockServer, caplog: pytest.LogCaptureFixture
) -> None:
    logging.getLogger("botocore").setLevel(logging.NOTSET)
    with caplog.at_level(logging.DEBUG):
        provider, _ = make_provider(tmp_path, fake)
        provider.fetch(START, END)
    assert caplog.records  # the exporter's own lines are there
    assert fake.org.access_key_id not in caplog.text
    assert fake.org.secret_access_key not in caplog.text
    assert "AWS4-HMAC-SHA256" not in caplog.text
