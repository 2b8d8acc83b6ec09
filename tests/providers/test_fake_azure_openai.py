"""The fake Azure server refuses what Entra ID and Cost Management refuse (raw HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest

from exporter.demo.azure_openai import (
    FakeAzureServer,
    FakeAzureSubscription,
    generate_subscription,
)

DAY = date(2026, 3, 18)


@pytest.fixture
def fake() -> Iterator[FakeAzureServer]:
    sub = generate_subscription(today=DAY, days=10, seed=1)
    with FakeAzureServer(sub) as server:
        yield server


def token(fake: FakeAzureServer, **form: str) -> httpx.Response:
    sub = fake.subscription
    data = {"grant_type": "client_credentials", "client_id": sub.client_id,
            "client_secret": sub.client_secret,
            "scope": "https://management.azure.com/.default", **form}  # fmt: skip
    return httpx.post(f"{fake.base_url}/{sub.tenant_id}/oauth2/v2.0/token", data=data)


def body(**dataset: Any) -> dict[str, Any]:
    return {
        "type": "ActualCost",
        "timeframe": "Custom",
        "timePeriod": {"from": "2026-03-16T00:00:00Z", "to": "2026-03-17T23:59:59Z"},
        "dataset": {
            "granularity": "Daily",
            "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
            "grouping": [{"type": "Dimension", "name": "Meter"}],
            **dataset,
        },
    }


def query(
    fake: FakeAzureServer, payload: Any, version: str | None = "2023-03-01", bearer: str = ""
) -> httpx.Response:
    sub = fake.subscription
    if not bearer:
        bearer = token(fake).json()["access_token"]
    params = {"api-version": version} if version else {}
    scope = f"subscriptions/{sub.subscription_id}"
    url = f"{fake.base_url}/{scope}/providers/Microsoft.CostManagement/query"
    return httpx.post(
        url, params=params, json=payload, headers={"Authorization": f"Bearer {bearer}"}
    )


def arm_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def test_the_token_endpoint_checks_grant_scope_client_and_secret(fake: FakeAzureServer) -> None:
    assert token(fake).json()["token_type"] == "Bearer"
    assert token(fake, client_secret="nope").json()["error"] == "invalid_client"
    assert token(fake, client_secret="nope").status_code == 401
    assert token(fake, grant_type="password").json()["error"] == "unsupported_grant_type"
    assert token(fake, scope="https://management.azure.com").json()["error"] == "invalid_scope"
    assert token(fake, client_id="someone").json()["error"] == "unauthorized_client"


def test_api_version_is_required_and_must_be_known(fake: FakeAzureServer) -> None:
    assert arm_code(query(fake, body(), version=None)) == "MissingApiVersionParameter"
    wrong = query(fake, body(), version="2019-11-01")
    assert wrong.status_code == 400 and arm_code(wrong) == "InvalidApiVersionParameter"
    assert query(fake, body(), version="2025-03-01").status_code == 200


def test_only_tokens_it_issued_are_accepted(fake: FakeAzureServer) -> None:
    refused = query(fake, body(), bearer="made-up")
    assert refused.status_code == 401 and arm_code(refused) == "InvalidAuthenticationToken"


@pytest.mark.parametrize(
    "dataset",
    [
        {"granularity": "Hourly"},
        {"aggregation": {"x": {"name": "Profit", "function": "Sum"}}},
        {"aggregation": {"x": {"name": "Cost", "function": "Avg"}}},
        {
            "grouping": [
                {"type": "Dimension", "name": n} for n in ("Meter", "ResourceId", "ServiceName")
            ]
        },
        {"grouping": [{"type": "Dimension", "name": "Colour"}]},
    ],
)
def test_queries_a_real_service_refuses_get_400(
    fake: FakeAzureServer, dataset: dict[str, Any]
) -> None:
    refused = query(fake, body(**dataset))
    assert refused.status_code == 400 and arm_code(refused) == "BadRequest"


def test_rows_are_positional_with_yyyymmdd_days_and_the_billing_currency(
    fake: FakeAzureServer,
) -> None:
    props = query(fake, body()).json()["properties"]
    assert [c["name"] for c in props["columns"]] == ["Cost", "UsageDate", "Meter", "Currency"]
    assert {r[1] for r in props["rows"]} == {20260316, 20260317}
    assert {r[3] for r in props["rows"]} == {"EUR"}


def test_paging_by_next_link_with_the_same_body(fake: FakeAzureServer) -> None:
    fake.subscription.page_rows = 3
    first = query(fake, body()).json()["properties"]
    link = first["nextLink"]
    assert "$skiptoken=" in link and "api-version=2023-03-01" in link
    bearer = token(fake).json()["access_token"]
    second = httpx.post(link, json=body(), headers={"Authorization": f"Bearer {bearer}"}).json()
    assert second["properties"]["rows"] != first["rows"] and len(first["rows"]) == 3


def test_an_empty_result_is_204_without_a_body() -> None:
    with FakeAzureServer(FakeAzureSubscription(rows=[])) as fake:
        empty = query(fake, body())
        assert empty.status_code == 204 and empty.content == b""


def test_throttling_answers_429_with_the_qpu_headers(fake: FakeAzureServer) -> None:
    fake.subscription.queries_per_window = 2
    fake.subscription.retry_after = 11
    assert [query(fake, body()).status_code for _ in range(2)] == [200, 200]
    throttled = query(fake, body())
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "11"
    assert throttled.headers["x-ms-ratelimit-microsoft.costmanagement-qpu-retry-after"] == "11"
    assert throttled.headers["x-ms-ratelimit-microsoft.costmanagement-qpu-remaining"] == "0"
    assert query(fake, body()).status_code == 200  # a client that waited is served again
    assert json.loads(throttled.content)["error"]["code"] == "429"
