"""The vertex provider through google-cloud-bigquery against the fake BigQuery REST API."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from exporter.config import Secret, validate
from exporter.demo.http import Fault
from exporter.demo.vertex import BillingRow, FakeBigQueryServer, FakeBillingExport, generate_export
from exporter.providers.errors import ProviderTimeout, RateLimitError
from exporter.providers.http import RetryPolicy
from exporter.providers.vertex import VertexProvider, classify_sku
from tests.helpers import cloud_extra, opened
from tests.oracles.vertex import truth_by_sku

TODAY = date(2026, 3, 18)
START, END = TODAY - timedelta(days=5), TODAY + timedelta(days=1)
SERVICES = ("Vertex AI", "Gemini API")


@pytest.fixture
def export() -> FakeBillingExport:
    cloud_extra("google.cloud.bigquery", "gcp")
    return generate_export(today=TODAY, days=12, seed=5, currency="EUR")


@pytest.fixture
def fake(export: FakeBillingExport) -> Iterator[FakeBigQueryServer]:
    with FakeBigQueryServer(export) as server:
        yield server


def make_provider(
    fake: FakeBigQueryServer,
    *,
    attempts: int = 3,
    timeout: float = 5.0,
    page_size: int | None = None,
    **kw: Any,
) -> tuple[VertexProvider, list[tuple[str, str]]]:
    block = {
        "type": "vertex",
        "billing_table": fake.org.table,
        "base_url": fake.base_url,
        "anonymous": True,
        **kw,
    }
    config = validate({"providers": [block]}).providers[0]
    seen: list[tuple[str, str]] = []
    provider = VertexProvider(
        config,
        opened(httpx.Client(timeout=timeout)),
        Secret(""),
        retry=RetryPolicy(max_attempts=attempts, sleep=lambda s: None),
        observer=lambda e, c: seen.append((e, c)),
        page_size=page_size,
    )
    return provider, seen


def by_sku(result: Any) -> dict[tuple[date, str], tuple[Decimal, Decimal]]:
    out: dict[tuple[date, str], tuple[Decimal, Decimal]] = {}
    for c in result.costs:
        sku = c.line_item.split(", ", 1)[1].removesuffix(", credits")
        gross, credits = out.get((c.day, sku), (Decimal(0), Decimal(0)))
        if c.cost_type == "credit":
            credits += c.amount
        else:
            gross += c.amount
        out[(c.day, sku)] = (gross, credits)
    return out


def test_gross_and_credits_match_the_export_to_the_cent_in_its_currency(
    fake: FakeBigQueryServer,
) -> None:
    provider, _ = make_provider(fake)
    result = provider.fetch(START, END)
    truth = truth_by_sku(fake.org, START, END, SERVICES)
    assert by_sku(result) == {k: (g, c) for k, (g, c, _) in truth.items() if g or c}
    assert {c.currency for c in result.costs} == {"EUR"}  # the billing account's, kept
    assert all(c.amount < 0 for c in result.costs if c.cost_type == "credit")
    gross = sum((c.amount for c in result.costs if c.cost_type != "credit"), Decimal(0))
    net = sum((c.amount for c in result.costs), Decimal(0))
    assert net == sum((g + c for g, c, _ in truth.values()), Decimal(0))
    assert gross == sum((g for g, _, _ in truth.values()), Decimal(0))
    assert net < gross  # Gemini API free-tier credits
    assert "Tax" not in {c.line_item.split(", ")[1] for c in result.costs}  # cost_type tax


def test_tokens_come_from_usage_amount_per_model_and_token_type(fake: FakeBigQueryServer) -> None:
    provider, _ = make_provider(fake)
    result = provider.fetch(START, END)
    truth = truth_by_sku(fake.org, START, END, SERVICES)
    want: dict[tuple[date, str, str], int] = {}
    for (day, sku), (_, _, amount) in truth.items():
        line = classify_sku(sku)
        assert line is not None
        key = (day, line.model, line.token_type)
        want[key] = want.get(key, 0) + int(amount)
    got = {
        (u.day, u.model, t): u.tokens(t)
        for u in result.usage
        for t in ("input", "output", "cache_read", "cache_write")
        if u.tokens(t)
    }
    assert got == want
    assert {u.model for u in result.usage} == {
        "claude-sonnet-4-5",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
    }


def test_late_rows_in_later_partitions_are_read_and_the_scan_is_bounded(
    fake: FakeBigQueryServer, caplog: pytest.LogCaptureFixture
) -> None:
    day = START
    late = BillingRow(
        datetime(day.year, day.month, day.day, 3, tzinfo=UTC), TODAY, "genai-prod-4711",
        "Vertex AI", "Gemini 2.5 Pro Text Output - Predictions", Decimal("7.123456"),
        usage_amount=Decimal(712_345), currency="EUR",
    )  # fmt: skip
    fake.org.rows.append(late)
    provider, _ = make_provider(fake)
    with caplog.at_level(logging.INFO, logger="exporter.providers.vertex"):
        result = provider.fetch(START, END)
    assert by_sku(result) == {
        k: (g, c) for k, (g, c, _) in truth_by_sku(fake.org, START, END, SERVICES).items()
    }
    body = next(r.json() for r in fake.requests if r.method == "POST")
    params = {p["name"]: p["parameterValue"] for p in body["queryParameters"]}
    assert params["partition_start"]["value"].startswith(str(START - timedelta(days=5)))
    # The bytes BigQuery reports are logged: only the partitions from the bound on.
    scanned = sum(1 for r in fake.org.rows if r.partition >= START - timedelta(days=5)) * 200
    assert f"processed {scanned} bytes" in caplog.text
    assert scanned < len(fake.org.rows) * 200


def test_page_tokens_are_followed(fake: FakeBigQueryServer) -> None:
    provider, seen = make_provider(fake, page_size=7)
    result = provider.fetch(START, END)
    assert by_sku(result) == {
        k: (g, c) for k, (g, c, _) in truth_by_sku(fake.org, START, END, SERVICES).items()
    }
    pages = [r for r in fake.requests if "/queries/" in r.path]
    assert len(pages) >= 3
    assert all(dict(r.query).get("pageToken") for r in pages)
    assert ("bigquery/jobs.query", "200") in seen
    assert seen.count(("bigquery/jobs.getQueryResults", "200")) == len(pages)


def test_a_revision_replaces_the_old_value(fake: FakeBigQueryServer) -> None:
    provider, _ = make_provider(fake)
    before = by_sku(provider.fetch(START, END))
    day = TODAY - timedelta(days=1)
    fake.org.rows = [
        replace(r, cost=r.cost * 3) if r.day == day and r.sku.startswith("Claude") else r
        for r in fake.org.rows
    ]
    after = by_sku(provider.fetch(START, END))
    key = (day, "Claude Sonnet 4.5 Output Tokens")
    assert after[key][0] == 3 * before[key][0]


def test_an_unknown_sku_is_kept_as_other(
    fake: FakeBigQueryServer, caplog: pytest.LogCaptureFixture
) -> None:
    moment = datetime(TODAY.year, TODAY.month, TODAY.day, tzinfo=UTC)
    fake.org.rows.append(
        BillingRow(moment, TODAY, "genai-prod-4711", "Vertex AI", "Online prediction node hours",
                   Decimal("4.20"), currency="EUR", usage_unit="hour")
    )  # fmt: skip
    provider, _ = make_provider(fake)
    with caplog.at_level(logging.WARNING):
        result = provider.fetch(START, END)
    other = [c for c in result.costs if c.cost_type == "other"]
    assert [(c.model, c.amount) for c in other] == [("", Decimal("4.20"))]
    assert "Online prediction node hours" in caplog.text


def test_the_fake_refuses_a_query_without_a_partition_filter(fake: FakeBigQueryServer) -> None:
    bigquery = cloud_extra("google.cloud.bigquery", "gcp")
    from google.api_core.client_options import ClientOptions
    from google.api_core.exceptions import BadRequest
    from google.auth.credentials import AnonymousCredentials

    client = bigquery.Client(
        project="billing-admin-01",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=fake.base_url),
    )
    with pytest.raises(BadRequest, match="_PARTITIONTIME"):
        client.query_and_wait(f"SELECT cost FROM `{fake.org.table}`", retry=None, job_retry=None)


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rate_limits_and_server_errors_are_retried(fake: FakeBigQueryServer, status: int) -> None:
    fake.inject(Fault(path_contains="/queries", status=status, times=1))
    provider, seen = make_provider(fake)
    result = provider.fetch(START, END)
    assert result.costs
    assert seen[0] == ("bigquery/jobs.query", str(status))


def test_persistent_throttling_fails_as_rate_limit(fake: FakeBigQueryServer) -> None:
    fake.inject(Fault(path_contains="/queries", status=429, times=10))
    provider, _ = make_provider(fake, attempts=2)
    with pytest.raises(RateLimitError):
        provider.fetch(START, END)


def test_a_timeout_fails_as_timeout(fake: FakeBigQueryServer) -> None:
    fake.inject(Fault(path_contains="/queries", delay=2.0, times=5))
    provider, _ = make_provider(fake, attempts=2, timeout=0.3)
    with pytest.raises(ProviderTimeout):
        provider.fetch(START, END)


def test_sku_descriptions_parse_to_model_and_token_type() -> None:
    cases = {
        "Generate content cached input token count gemini 2.5 pro long input": (
            "gemini-2.5-pro",
            "cache_read",
        ),
        "Generate content output token count gemini 2.5 flash lite": (
            "gemini-2.5-flash-lite",
            "output",
        ),
        "Gemini 2.5 Pro Text Input - Predictions": ("gemini-2.5-pro", "input"),
        "Claude Sonnet 4.5 Output Tokens": ("claude-sonnet-4-5", "output"),
        "Claude 3.5 Sonnet Input Tokens": ("claude-3-5-sonnet", "input"),
        "Claude Opus 4.1 Cache Write Input Tokens": ("claude-opus-4-1", "cache_write"),
    }
    for sku, want in cases.items():
        line = classify_sku(sku)
        assert line is not None and (line.model, line.token_type) == want, sku
    assert classify_sku("Online prediction node hours") is None
    storage = classify_sku("Gemini 2.5 Pro context cache storage per hour")
    assert storage is not None and storage.token_type == ""


def test_anonymous_credentials_need_an_endpoint() -> None:
    from exporter.config import ConfigErrors

    with pytest.raises(ConfigErrors, match="anonymous"):
        validate(
            {
                "providers": [
                    {"type": "vertex", "billing_table": "billing-proj.b.t", "anonymous": True}
                ]
            }
        )
