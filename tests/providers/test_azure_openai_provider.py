"""The azure_openai provider against the fake Entra ID + Cost Management server on loopback.

Expected values come from the fake subscription's own truth (tests/oracles/azure_openai.py)
and, for conversions, from the fake ECB's rate table (tests/fx_scenario.py).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from exporter.analytics.windows import windows_for
from exporter.app import App, build
from exporter.config import Config, ConfigErrors, Secret, check, validate
from exporter.demo.azure_openai import (
    DEFAULT_SUBSCRIPTION as DEFAULT_SUB,
)
from exporter.demo.azure_openai import (
    AzureCostRow,
    FakeAzureServer,
    FakeAzureSubscription,
    generate_subscription,
    resource_id,
)
from exporter.demo.ecb import FakeEcbServer
from exporter.demo.http import Fault
from exporter.providers.azure_openai import AzureOpenAIProvider, Meter, parse_meter
from exporter.providers.errors import (
    AuthError,
    ClientError,
    ConfigError,
    ParseError,
    ProviderTimeout,
)
from exporter.providers.http import RetryPolicy
from exporter.records import FetchResult
from tests.conftest import ALL_FAMILIES, TODAY, fixed_clock
from tests.fx_scenario import AFTER_PUBLICATION, ECB_RATES, FX_TODAY, MutableClock, truth_rate
from tests.helpers import opened, parse_exposition
from tests.oracles.azure_openai import truth_costs, truth_tokens

SECRET_ENV = "AICOST_TEST_AZURE_SECRET"
ACCOUNT = "azure-prod"
START, END = TODAY - timedelta(days=45), TODAY + timedelta(days=1)


@pytest.fixture(scope="module")
def base_sub() -> FakeAzureSubscription:
    return generate_subscription(today=TODAY, days=60, seed=5)


@pytest.fixture
def sub(base_sub: FakeAzureSubscription) -> FakeAzureSubscription:
    """A fresh copy per test, so tests may revise it."""
    return replace(base_sub, rows=list(base_sub.rows), tokens_issued=set())


@pytest.fixture
def fake(sub: FakeAzureSubscription) -> Iterator[FakeAzureServer]:
    with FakeAzureServer(sub, now=fixed_clock) as server:
        yield server


def block(fake: FakeAzureServer, **provider: Any) -> dict[str, Any]:
    return {
        "type": "azure_openai",
        "name": ACCOUNT,
        "base_url": fake.base_url,
        "login_url": fake.base_url,
        "scope": f"subscriptions/{fake.subscription.subscription_id}",
        "tenant_id": fake.subscription.tenant_id,
        "client_id": fake.subscription.client_id,
        "api_key_env": SECRET_ENV,
        **provider,
    }


def azure_config(tmp_path: Path, fake: FakeAzureServer, **top: Any) -> Config:
    provider = top.pop("provider", {})
    return validate(
        {
            "storage": {"path": str(tmp_path / "history.db")},
            "poll": {"backfill_days": 45, "timeout": "1s", "max_attempts": 3,
                     "backoff_initial": "10ms", "backoff_max": "50ms"},
            "providers": [block(fake, **provider)],
            "metrics": ALL_FAMILIES,  # every per-stream window is checked
            **top,
        }
    )  # fmt: skip


def service(tmp_path: Path, fake: FakeAzureServer, clock: Any = fixed_clock, **top: Any) -> App:
    env = {SECRET_ENV: fake.subscription.client_secret}
    svc = build(azure_config(tmp_path, fake, **top), clock=clock, env=env)
    opened(svc)
    return svc


def provider(fake: FakeAzureServer, secret: str | None = None, **kw: Any) -> AzureOpenAIProvider:
    config = validate({"providers": [block(fake, **kw.pop("config", {}))]}).providers[0]
    client = opened(httpx.Client(timeout=kw.pop("timeout", 2)))
    retry = kw.pop("retry", RetryPolicy(max_attempts=2, backoff_initial=0.01, backoff_max=0.01))
    key = Secret(secret or fake.subscription.client_secret)
    return AzureOpenAIProvider(config, client, key, retry=retry, **kw)  # type: ignore[arg-type]


def samples(svc: App) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse_exposition(svc.rendered.text.decode())


def gauge(svc: App, name: str, **labels: str) -> float | None:
    return samples(svc).get((name, frozenset(labels.items())))


def records(result: FetchResult) -> tuple[list[str], list[str]]:
    return sorted(map(repr, result.costs)), sorted(map(repr, result.usage))


def queries(fake: FakeAzureServer) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/query")]


# -- meters ------------------------------------------------------------------------------

METER_TABLE: list[tuple[str, Meter | None]] = [
    ("gpt-4o-0806-Inp-glbl Tokens", Meter("gpt-4o-0806", "input", "global", 1000)),
    ("gpt-4o-0806-Outp-glbl Tokens", Meter("gpt-4o-0806", "output", "global", 1000)),
    ("gpt-4o-mini-0718-Inp-glbl Tokens", Meter("gpt-4o-mini-0718", "input", "global", 1000)),
    ("gpt 4o 1120 cached Inp glbl Tokens", Meter("gpt-4o-1120", "cache_read", "global", 1000)),
    ("gpt-4o-0806-Inp-regnl Tokens", Meter("gpt-4o-0806", "input", "regional", 1000)),
    ("gpt-4o-0806-Outp-dz Tokens", Meter("gpt-4o-0806", "output", "data_zone", 1000)),
    ("GPT-4o Inp Glbl 1M Tokens", Meter("gpt-4o", "input", "global", 1_000_000)),
    ("gpt-4.1-nano Outp Data Zone 1M Tokens",
     Meter("gpt-4.1-nano", "output", "data_zone", 1_000_000)),
    ("5.4 mini cd Inp Gl", Meter("gpt-5.4-mini", "cache_read", "global", 1000)),
    ("4o mini 0718 cd Inp DZ 1M Tokens",
     Meter("gpt-4o-mini-0718", "cache_read", "data_zone", 1_000_000)),
    ("o3 mini Inp batch glbl 1M Tokens", Meter("o3-mini", "input", "global_batch", 1_000_000)),
    ("gpt4o Outp Batch 1K Tokens", Meter("gpt-4o", "output", "batch", 1000)),
    ("text-embedding-3-large Tokens", None),  # no direction: kept as other
    ("Provisioned Managed Global Hour", None),
    ("Standard S0 Hosting Unit", None),
    ("Inp Glbl Tokens", None),  # no model word
    ("gpt-4o cached Outp glbl Tokens", None),  # a cached output is not a known meter
]  # fmt: skip


@pytest.mark.parametrize(("meter", "want"), METER_TABLE)
def test_meter_names_map_to_model_token_type_and_deployment(meter: str, want: Meter | None) -> None:
    assert parse_meter(meter) == want


# -- config ------------------------------------------------------------------------------


def test_config_defaults_to_azure_endpoints_and_a_pinned_api_version(fake: FakeAzureServer) -> None:
    cfg = validate({"providers": [{**block(fake), "base_url": "", "login_url": ""}]}).providers[0]
    assert cfg.url == "https://management.azure.com"
    assert cfg.login == "https://login.microsoftonline.com"  # type: ignore[attr-defined]
    assert cfg.api_version == "2023-03-01"  # type: ignore[attr-defined]
    assert cfg.account == ACCOUNT and cfg.uses_key


def test_config_reports_every_problem_at_once_without_echoing_the_secret() -> None:
    inline = "s3cr3t-Value~that-must-not-leak"
    with pytest.raises(ConfigErrors) as info:
        validate(
            {
                "providers": [
                    {"type": "azure_openai", "scope": "subscriptions/not-a-guid",
                     "client_secret": inline, "api_key": inline, "tenant_id": "contoso",
                     "api_version": "latest", "cost_kind": "Billed"},
                ]
            }
        )  # fmt: skip
    text = str(info.value)
    assert inline not in text
    for where in ("scope", "client_secret", "api_key", "tenant_id", "api_version", "cost_kind"):
        assert f"providers[0].{where}:" in text, where
    assert len(info.value.errors) == 6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tenant_id": None}, "auth client_secret needs tenant_id"),
        ({"api_key_env": None}, "api_key_env or api_key_file (the client secret)"),
        ({"auth": "azure_identity"}, "auth azure_identity takes no secret"),
        ({"api_key_file": "/run/secrets/azure"}, "set only one of api_key_env and api_key_file"),
    ],
)
def test_credential_settings_must_fit_the_auth_mode(
    fake: FakeAzureServer, change: dict[str, Any], message: str
) -> None:
    data = {k: v for k, v in {**block(fake), **change}.items() if v is not None}
    with pytest.raises(ConfigErrors) as info:
        validate({"providers": [data]})
    assert message in str(info.value)


def test_check_config_names_the_extra_azure_identity_needs(
    fake: FakeAzureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = {k: v for k, v in block(fake, auth="azure_identity").items() if k != "api_key_env"}
    config = validate({"providers": [data]})
    monkeypatch.setitem(sys.modules, "azure.identity", None)  # as on a base install
    assert check(config, env={}) == [
        f"providers[{ACCOUNT}]: the azure_openai provider needs the optional extra: "
        "pip install 'ai-cost-exporter[azure]'"
    ]
    with pytest.raises(ConfigError, match=r"pip install 'ai-cost-exporter\[azure\]'"):
        provider(fake, config={"auth": "azure_identity", "api_key_env": None}).fetch(START, END)


def test_client_secret_auth_needs_no_extra(fake: FakeAzureServer, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    assert check(validate({"providers": [block(fake)]}), env={SECRET_ENV: "x"}) == []
    assert provider(fake).fetch(TODAY, TODAY + timedelta(days=1)).costs


# -- truth -------------------------------------------------------------------------------


def stored_costs(svc: App, start: Any, end: Any) -> dict[tuple[str, str, str], Decimal]:
    got: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for c in svc.store.costs_between(start, end):
        got[(c.project, c.model, c.cost_type)] += c.amount
    return dict(got)


def test_eur_rows_are_stored_in_eur_and_equal_the_truth_per_day_resource_and_model(
    fake: FakeAzureServer, tmp_path: Path
) -> None:
    svc = service(tmp_path, fake, currency="EUR")
    assert svc.poll_once()
    assert {c.currency for c in svc.store.costs_between(START, END)} == {"EUR"}
    for day in (TODAY - timedelta(days=n) for n in range(46)):
        nxt = day + timedelta(days=1)
        assert stored_costs(svc, day, nxt) == truth_costs(fake.subscription, day, nxt), day
    got = samples(svc)
    for w in windows_for(TODAY):
        for (resource, model, cost_type), amount in truth_costs(
            fake.subscription, w.start, w.end
        ).items():
            labels = {"provider": "azure_openai", "account": ACCOUNT, "project": resource,
                      "model": model, "cost_type": cost_type, "currency": "EUR"}  # fmt: skip
            assert got[(f"aicost_cost_{w.name}", frozenset(labels.items()))] == float(amount)
        for (resource, model, token_type), n in truth_tokens(
            fake.subscription, w.start, w.end
        ).items():
            labels = {"provider": "azure_openai", "account": ACCOUNT, "project": resource,
                      "model": model, "token_type": token_type}  # fmt: skip
            assert got[(f"aicost_tokens_{w.name}", frozenset(labels.items()))] == n


def test_eur_rows_convert_to_usd_at_each_days_ecb_rate_to_the_cent(
    base_sub: FakeAzureSubscription, tmp_path: Path, storage_path: str
) -> None:
    clock = MutableClock(AFTER_PUBLICATION)
    sub = generate_subscription(today=FX_TODAY, days=40, seed=5, currency="EUR")
    with FakeAzureServer(sub, now=clock) as fake, FakeEcbServer(ECB_RATES, now=clock) as ecb:
        svc = service(
            tmp_path,
            fake,
            clock=clock,
            currency="USD",
            fx={"base_url": ecb.base_url},
            storage={"path": storage_path},
        )  # SQLite and PostgreSQL
        assert svc.poll_once()
        got = samples(svc)
        for w in windows_for(FX_TODAY):
            want: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
            for row in sub.rows:
                if w.start <= row.day < w.end:
                    key = (row.resource_id.rsplit("/", 1)[-1], row.model,
                           "tokens" if row.model else "other")  # fmt: skip
                    want[key] += row.cost * truth_rate(ECB_RATES, clock.now, "EUR", "USD", row.day)
            assert want
            for (resource, model, cost_type), amount in want.items():
                labels = {"provider": "azure_openai", "account": ACCOUNT, "project": resource,
                          "model": model, "cost_type": cost_type, "currency": "USD"}  # fmt: skip
                value = got[(f"aicost_cost_{w.name}", frozenset(labels.items()))]
                assert round(Decimal(value), 2) == round(amount, 2), (w.name, labels)
                eur = sum(
                    (r.cost for r in sub.rows if w.start <= r.day < w.end
                     and r.resource_id.endswith("/" + resource) and r.model == model),
                    Decimal(0),
                )  # fmt: skip
                assert abs(Decimal(value) - eur) > Decimal("0.01"), "EUR read as USD"


def test_usd_subscription_rows_stay_exact_in_usd(tmp_path: Path) -> None:
    sub = generate_subscription(today=TODAY, days=50, seed=2, currency="USD")
    with FakeAzureServer(sub, now=fixed_clock) as fake:
        svc = service(tmp_path, fake)
        assert svc.poll_once()
        assert stored_costs(svc, START, END) == truth_costs(sub, START, END)
        assert {c.currency for c in svc.store.costs_between(START, END)} == {"USD"}


def test_a_row_without_a_currency_is_a_parse_error_never_usd(fake: FakeAzureServer) -> None:
    body = (
        b'{"properties": {"nextLink": null, "columns": [{"name": "Cost", "type": "Number"},'
        b'{"name": "UsageQuantity", "type": "Number"},{"name": "UsageDate", "type": "Number"},'
        b'{"name": "Meter", "type": "String"},{"name": "ResourceId", "type": "String"},'
        b'{"name": "Currency", "type": "String"}],'
        b'"rows": [[1.5, 10, 20260317, "gpt-4o-0806-Inp-glbl Tokens", "/x/accounts/a", ""]]}}'
    )
    fake.inject(Fault("/query", body=body))
    with pytest.raises(ParseError, match="never read as USD"):
        provider(fake).fetch(TODAY - timedelta(days=1), TODAY)
    no_column = body.replace(b',{"name": "Currency", "type": "String"}', b"").replace(
        b', ""]]', b"]]"
    )
    fake.inject(Fault("/query", body=no_column))
    with pytest.raises(ParseError, match="columns Currency missing"):
        provider(fake).fetch(TODAY - timedelta(days=1), TODAY)


def test_columns_are_read_by_name_not_position(fake: FakeAzureServer) -> None:
    body = (
        b'{"properties": {"nextLink": null, "columns": [{"name": "Currency", "type": "String"},'
        b'{"name": "ResourceId", "type": "String"},{"name": "UsageDate", "type": "Number"},'
        b'{"name": "PreTaxCost", "type": "Number"},{"name": "Meter", "type": "String"},'
        b'{"name": "UsageQuantity", "type": "Number"}],'
        b'"rows": [["eur", "/subscriptions/s/resourcegroups/g/providers/microsoft.cognitive'
        b'services/accounts/Acct-1", 20260317, 0.1977, "gpt-4o-0806-Outp-glbl Tokens", 19.77]]}}'
    )
    fake.inject(Fault("/query", body=body))
    (cost,) = provider(fake).fetch(TODAY - timedelta(days=1), TODAY).costs
    assert (cost.project, cost.model, cost.token_type, cost.amount, cost.currency) == (
        "acct-1",
        "gpt-4o-0806",
        "output",
        Decimal("0.1977"),
        "EUR",
    )


def test_unknown_meters_keep_their_money_as_other_on_the_resource(
    fake: FakeAzureServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        result = provider(fake).fetch(START, END)
    other = [c for c in result.costs if c.cost_type == "other"]
    assert other and {(c.project, c.model, c.line_item) for c in other} == {
        ("contoso-aoai-ptu", "", "Provisioned Managed Global Hour")
    }
    assert (
        sum(c.amount for c in other)
        == truth_costs(fake.subscription, START, END)[("contoso-aoai-ptu", "", "other")]
    )
    warnings = [r for r in caplog.records if "not recognised" in r.getMessage()]
    assert len(warnings) == 1 and "Provisioned Managed Global Hour" in warnings[0].getMessage()


# -- the wire ----------------------------------------------------------------------------


def test_the_query_is_daily_grouped_by_meter_and_resource_with_a_bearer_token(
    fake: FakeAzureServer,
) -> None:
    provider(fake).fetch(TODAY - timedelta(days=2), TODAY + timedelta(days=1))
    token, query = fake.requests
    assert token.path == f"/{fake.subscription.tenant_id}/oauth2/v2.0/token"
    assert b"grant_type=client_credentials" in token.body
    assert b"scope=https%3A%2F%2Fmanagement.azure.com%2F.default" in token.body
    assert query.method == "POST" and ("api-version", "2023-03-01") in query.query
    assert query.headers["authorization"] == "Bearer fake-arm-token-1"
    body = query.json()
    assert body["timePeriod"] == {"from": "2026-03-16T00:00:00Z", "to": "2026-03-18T23:59:59Z"}
    assert body["dataset"]["granularity"] == "Daily"
    assert [g["name"] for g in body["dataset"]["grouping"]] == ["Meter", "ResourceId"]


def test_next_link_pages_give_the_same_records_as_one_page(fake: FakeAzureServer) -> None:
    whole = provider(fake).fetch(START, END)
    assert len(queries(fake)) == 2  # 46 days: 31 + 15
    fake.clear_requests()
    fake.subscription.page_rows = 7
    paged = provider(fake).fetch(START, END)
    pages = queries(fake)
    assert len(pages) > 40
    assert sum(1 for r in pages if any(k == "$skiptoken" for k, _ in r.query)) == len(pages) - 2
    assert records(paged) == records(whole)
    assert {r.body for r in pages[:3]} == {pages[0].body}  # a page re-posts the same query


def test_a_next_link_to_another_query_is_refused(fake: FakeAzureServer) -> None:
    body = (
        b'{"properties": {"nextLink": "https://evil.example/other/path?$skiptoken=x",'
        b'"columns": [{"name": "Cost"}, {"name": "UsageDate"}, {"name": "Meter"},'
        b'{"name": "ResourceId"}, {"name": "Currency"}], "rows": []}}'
    )
    fake.inject(Fault("/query", body=body))
    with pytest.raises(ParseError, match="nextLink does not continue this query"):
        provider(fake).fetch(TODAY, TODAY + timedelta(days=1))
    assert all(r.path.endswith(("/query", "/token")) for r in fake.requests)


def test_an_empty_result_204_stores_no_rows(tmp_path: Path) -> None:
    sub = FakeAzureSubscription(rows=[])
    with FakeAzureServer(sub, now=fixed_clock) as fake:
        result = provider(fake).fetch(START, END)
        assert (result.costs, result.usage) == ([], [])
        assert {r.path for r in queries(fake)} and len(queries(fake)) == 2


def test_a_wrong_api_version_is_refused_and_not_retried(fake: FakeAzureServer) -> None:
    with pytest.raises(ClientError, match=r"InvalidApiVersionParameter"):
        provider(fake, config={"api_version": "2019-11-01"}).fetch(TODAY, END)
    assert len(queries(fake)) == 1


def test_revisions_up_and_down_are_mirrored(
    fake: FakeAzureServer, tmp_path: Path, storage_path: str
) -> None:
    svc = service(tmp_path, fake, currency="EUR", storage={"path": storage_path})  # both backends
    assert svc.poll_once()
    yesterday, before = TODAY - timedelta(days=1), TODAY - timedelta(days=2)
    fake.subscription.scale_day(yesterday, "1.5")
    fake.subscription.scale_day(before, "0.5")
    assert svc.poll_once()
    for day in (yesterday, before):
        nxt = day + timedelta(days=1)
        assert stored_costs(svc, day, nxt) == truth_costs(fake.subscription, day, nxt)
    labels = {"provider": "azure_openai", "account": ACCOUNT, "project": "contoso-aoai-swc",
              "model": "gpt-4o-0806", "cost_type": "tokens", "currency": "EUR"}  # fmt: skip
    want = truth_costs(fake.subscription, yesterday, TODAY)[("contoso-aoai-swc", "gpt-4o-0806",
                                                             "tokens")]  # fmt: skip
    assert gauge(svc, "aicost_cost_yesterday", **labels) == float(want)


# -- faults ------------------------------------------------------------------------------


@pytest.mark.parametrize("standard_header", [True, False])
def test_throttling_429_honours_retry_after(fake: FakeAzureServer, standard_header: bool) -> None:
    waits: list[float] = []
    fake.subscription.queries_per_window = 1
    fake.subscription.retry_after = 7
    fake.subscription.standard_retry_after = standard_header
    retry = RetryPolicy(max_attempts=3, sleep=waits.append)
    result = provider(fake, retry=retry).fetch(START, END)
    assert waits == [7.0]  # the second query was throttled once, then served
    assert len(queries(fake)) == 3 and result.costs
    fake.subscription.queries_per_window = 0
    assert records(result) == records(provider(fake).fetch(START, END))


def test_429_and_5xx_are_retried_and_counted_within_one_poll(
    fake: FakeAzureServer, tmp_path: Path
) -> None:
    svc = service(tmp_path, fake)
    fake.inject(Fault("/query", status=429, retry_after="0"))
    fake.inject(Fault("/query", status=503))
    assert svc.poll_once()
    health = {"provider": "azure_openai", "account": ACCOUNT}
    for code in ("429", "503"):
        assert gauge(svc, "aicost_api_requests_total", **health,
                     endpoint="costmanagement/query", code=code) == 1  # fmt: skip
    assert gauge(svc, "aicost_api_requests_total", **health, endpoint="login/token",
                 code="200") == 1  # fmt: skip
    assert gauge(svc, "aicost_up", **health) == 1


def test_a_timeout_fails_the_poll_and_keeps_stored_data(
    fake: FakeAzureServer, tmp_path: Path
) -> None:
    svc = service(tmp_path, fake)
    assert svc.poll_once()
    before = svc.store.costs_between(START, END)
    fake.inject(Fault("/query", delay=3, times=3))
    assert not svc.poll_once()
    assert svc.store.costs_between(START, END) == before
    health = {"provider": "azure_openai", "account": ACCOUNT}
    assert gauge(svc, "aicost_poll_errors_total", **health, reason="timeout") == 1
    assert gauge(svc, "aicost_up", **health) == 0
    with pytest.raises(ProviderTimeout):
        fake.inject(Fault("/query", delay=3, times=2))
        provider(fake, timeout=0.5).fetch(TODAY, END)


def test_a_wrong_client_secret_is_an_auth_error_that_never_shows_the_secret(
    fake: FakeAzureServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "Wr0ng~client~secret~value"
    with pytest.raises(AuthError) as info:
        provider(fake, secret=wrong).fetch(TODAY, END)
    assert "invalid_client" in str(info.value) and wrong not in str(info.value)
    assert queries(fake) == []
    svc = build(azure_config(tmp_path, fake), clock=fixed_clock, env={SECRET_ENV: wrong})
    opened(svc)
    with caplog.at_level(logging.DEBUG):
        assert not svc.poll_once()
    assert wrong not in caplog.text and wrong not in svc.rendered.text.decode()
    assert gauge(svc, "aicost_poll_errors_total", provider="azure_openai", account=ACCOUNT,
                 reason="auth") == 1  # fmt: skip


def test_a_token_the_fake_did_not_issue_is_refused(fake: FakeAzureServer) -> None:
    class Stale:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            return type("Token", (), {"token": "expired", "expires_on": 0})()

    with pytest.raises(AuthError, match=r"InvalidAuthenticationToken|access token is invalid"):
        provider(fake, credential=Stale()).fetch(TODAY, END)


# -- azure-identity ----------------------------------------------------------------------


def require_azure_identity() -> None:
    try:
        import azure.identity  # noqa: F401
    except ImportError:
        if os.environ.get("AICOST_REQUIRE_EXTRAS") == "1":
            pytest.fail("the [azure] extra is required (scripts/test installs it)")
        pytest.skip("azure-identity not installed (pip install 'ai-cost-exporter[azure]')")


class FakeCredential:
    """An azure-core TokenCredential that hands out a token the fake server issued."""

    def __init__(self, server: FakeAzureServer) -> None:
        self.server = server
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        self.scopes.append(scopes)
        token = "fake-identity-token"
        self.server.subscription.tokens_issued.add(token)
        return AccessToken(token, int(datetime(2030, 1, 1).timestamp()))


def test_azure_identity_auth_uses_default_azure_credential(
    fake: FakeAzureServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_azure_identity()
    import azure.identity

    made: list[FakeCredential] = []

    def default_credential(**kwargs: Any) -> FakeCredential:
        made.append(FakeCredential(fake))
        return made[-1]

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", default_credential)
    p = provider(fake, config={"auth": "azure_identity", "api_key_env": None})
    result = p.fetch(TODAY - timedelta(days=3), END)
    assert result.costs and made[0].scopes == [("https://management.azure.com/.default",)]
    assert [r.path.endswith("/token") for r in fake.requests] == [False]  # no secret flow
    assert fake.requests[0].headers["authorization"] == "Bearer fake-identity-token"


def test_a_failing_identity_is_an_auth_error(fake: FakeAzureServer) -> None:
    require_azure_identity()
    from azure.core.exceptions import ClientAuthenticationError

    class NoIdentity:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")

    with pytest.raises(AuthError, match="ClientAuthenticationError"):
        provider(fake, credential=NoIdentity()).fetch(TODAY, END)


def test_a_resource_group_scope_reads_only_its_resources(fake: FakeAzureServer) -> None:
    sub = fake.subscription
    other = AzureCostRow(TODAY, resource_id(sub.subscription_id, "elsewhere", "rg-other"),
                         "gpt-4o-0806-Inp-glbl Tokens", Decimal("9.99"), Decimal(1))  # fmt: skip
    sub.rows = [*sub.rows, other]
    scope = f"subscriptions/{sub.subscription_id}/resourceGroups/rg-ai-prod"
    result = provider(fake, config={"scope": scope}).fetch(TODAY, END)
    assert result.costs and "elsewhere" not in {c.project for c in result.costs}
    assert "elsewhere" in {c.project for c in provider(fake).fetch(TODAY, END).costs}


@pytest.mark.parametrize(
    ("meter", "group"),
    [
        ("gpt-4o-0806-Inp-glbl Tokens", "gpt-4o"),
        ("gpt 4o 1120 cached Inp glbl Tokens", "gpt-4o"),
        ("GPT-4o-mini-0718 Inp DZ 1M Tokens", "gpt-4o-mini"),
        ("gpt-4.1-nano Outp Data Zone 1M Tokens", "gpt-4.1-nano"),
        ("o3 mini Inp batch glbl 1M Tokens", "o3-mini"),
    ],
)
def test_azure_meter_models_join_the_openai_equivalence_group(meter: str, group: str) -> None:
    from exporter.pricing import load_maps

    parsed = parse_meter(meter)
    assert parsed is not None
    maps = load_maps({}, {}, {})
    assert maps.group("azure_openai", parsed.model) == group
    assert maps.group("openai", group) == group


# -- check-config, as a real process -----------------------------------------------------


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )  # fmt: skip


def test_check_config_lists_every_azure_problem_without_the_secret(tmp_path: Path) -> None:
    inline = "Sup3r~inline~secret"
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {"providers": [
                {"type": "azure_openai", "scope": "subscriptions/abc", "api_key": inline},
                {"type": "azure_openai", "name": "b", "scope": f"subscriptions/{DEFAULT_SUB}",
                 "tenant_id": DEFAULT_SUB, "client_id": DEFAULT_SUB, "api_key_env": "X",
                 "api_version": "v1", "login_url": "ftp://login"},
            ]}
        )
    )  # fmt: skip
    proc = cli("check-config", str(path), env={})
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()[1:]
    assert sorted(line.split(":")[0].strip() for line in lines) == [
        "providers[0].api_key", "providers[0].scope",
        "providers[1]",  # its key variable X is not set: reported in the same pass
        "providers[1].api_version", "providers[1].login_url",
    ]  # fmt: skip
    assert inline not in proc.stdout + proc.stderr


def test_check_config_on_a_base_install_names_the_azure_extra(tmp_path: Path) -> None:
    base = tmp_path / "base-install"
    base.mkdir()
    # as if azure-identity were not installed: its import fails in the child process
    (base / "sitecustomize.py").write_text("import sys\nsys.modules['azure.identity'] = None\n")
    path = tmp_path / "cfg.yaml"
    path.write_text(
        yaml.safe_dump(
            {"providers": [
                {"type": "openai", "api_key_env": "AICOST_T_OPENAI"},
                {"type": "azure_openai", "scope": f"subscriptions/{DEFAULT_SUB}",
                 "auth": "azure_identity"},
            ]}
        )
    )  # fmt: skip
    proc = cli("check-config", str(path), env={"PYTHONPATH": str(base), "AICOST_T_OPENAI": "k"})
    assert proc.returncode == 1
    assert "the azure_openai provider needs the optional extra: pip install " in proc.stderr
    assert "'ai-cost-exporter[azure]'" in proc.stderr
    assert "openai" in proc.stderr and "AICOST_T_OPENAI" not in proc.stderr  # openai is fine


def test_the_watermark_trails_by_azures_expected_lag(fake: FakeAzureServer, tmp_path: Path) -> None:
    svc = service(tmp_path, fake)
    assert svc.poll_once()
    health = {"provider": "azure_openai", "account": ACCOUNT}
    midnight = datetime(TODAY.year, TODAY.month, TODAY.day, tzinfo=UTC)
    assert gauge(svc, "aicost_data_expected_lag_seconds", **health) == 2 * 86400
    assert (
        gauge(svc, "aicost_data_complete_through_timestamp_seconds", **health)
        == (midnight - timedelta(days=2)).timestamp()
    )


def test_data_lag_days_overrides_the_default(fake: FakeAzureServer, tmp_path: Path) -> None:
    svc = service(tmp_path, fake, provider={"data_lag_days": 4})
    assert svc.poll_once()
    health = {"provider": "azure_openai", "account": ACCOUNT}
    assert gauge(svc, "aicost_data_expected_lag_seconds", **health) == 4 * 86400
