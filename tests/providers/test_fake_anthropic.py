"""Tests of the fake Anthropic server itself, over real HTTP on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from exporter.demo.anthropic import (
    PRICES,
    SONNET_4,
    CostRow,
    FakeAnthropicOrg,
    FakeAnthropicServer,
    UsageRow,
    generate_anthropic_org,
    midnight_rfc3339,
)
from exporter.demo.http import Fault
from tests.oracles.anthropic import (
    truth_cache_hit_ratio,
    truth_cost_total,
    truth_costs,
    truth_days,
    truth_tokens,
    truth_web_search_requests,
)

DAY1 = date(2026, 1, 1)
NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
ADMIN_KEY = "fake-admin-key-of-the-small-org"
HEADERS = {"x-api-key": ADMIN_KEY, "anthropic-version": "2023-06-01"}
USAGE = "/v1/organizations/usage_report/messages"
COSTS = "/v1/organizations/cost_report"
HAIKU = "claude-haiku-4-5-20251001"


def small_org() -> FakeAnthropicOrg:
    """Usage on 1 and 2 January 2026 only; costs on 1 January only."""
    usage = [
        UsageRow(DAY1, None, SONNET_4, "apikey_a", uncached_input_tokens=1000,
                 cache_creation_5m_input_tokens=100, cache_creation_1h_input_tokens=50,
                 cache_read_input_tokens=400, output_tokens=200, web_search_requests=3),
        UsageRow(DAY1, "wrkspc_b", HAIKU, "apikey_b", service_tier="batch",
                 uncached_input_tokens=5000, output_tokens=900),
        UsageRow(DAY1, None, SONNET_4, None, uncached_input_tokens=70, output_tokens=30),
        UsageRow(date(2026, 1, 2), "wrkspc_b", SONNET_4, "apikey_b", uncached_input_tokens=10,
                 output_tokens=1),
    ]  # fmt: skip
    out = "Claude Sonnet 4 Usage - Output Tokens"
    costs = [
        CostRow(DAY1, None, out, Decimal("123.78912"), model=SONNET_4,
                token_type="output_tokens", service_tier="standard", context_window="0-200k"),
        CostRow(DAY1, None, out, Decimal("0.00001"), model=SONNET_4,
                token_type="output_tokens", service_tier="standard", context_window="200k-1M"),
        CostRow(DAY1, "wrkspc_b", "Web Search Usage", Decimal("250.00"), "web_search"),
        CostRow(DAY1, "wrkspc_b", "Code Execution Usage", Decimal("7.5"), "code_execution"),
        CostRow(DAY1, None, "Web Search Usage", Decimal("3"), "web_search"),
    ]  # fmt: skip
    workspaces = [
        {"id": f"wrkspc_{c}", "type": "workspace", "name": f"W {c}",
         "created_at": "2025-06-01T10:00:00Z", "archived_at": None}
        for c in "abcd"
    ]  # fmt: skip
    workspaces[2]["archived_at"] = "2025-12-01T00:00:00Z"
    statuses = ("active", "inactive", "archived", "expired", "active")
    keys = [
        {"id": f"apikey_{i}", "type": "api_key", "name": f"k{i}", "status": status,
         "workspace_id": None if i % 2 else "wrkspc_b", "created_at": "2025-06-01T10:00:00Z"}
        for i, status in enumerate(statuses)
    ]  # fmt: skip
    return FakeAnthropicOrg(
        admin_key=ADMIN_KEY, workspaces=workspaces, api_keys=keys, usage=usage, costs=costs
    )


@pytest.fixture
def server() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer(small_org(), now=lambda: NOW) as srv:
        yield srv


@pytest.fixture
def client(server: FakeAnthropicServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=5) as c:
        yield c


def _window(days: int = 9, start: date = DAY1) -> dict[str, Any]:
    return {
        "starting_at": midnight_rfc3339(start),
        "ending_at": midnight_rfc3339(start + timedelta(days)),
    }


def _walk(client: httpx.Client, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """All pages of a report; asserts the envelope on every page."""
    buckets: list[dict[str, Any]] = []
    page: str | None = None
    while True:
        r = client.get(path, params=params | ({"page": page} if page else {}))
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"data", "has_more", "next_page"}
        buckets += body["data"]
        if not body["has_more"]:
            assert body["next_page"] is None
            return buckets
        page = body["next_page"]
        assert isinstance(page, str) and page.startswith("page_")


def _results(client: httpx.Client, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    (bucket,) = client.get(path, params=_window(1) | params).json()["data"]
    return list(bucket["results"])


def test_binds_loopback_and_serves_the_origin(server: FakeAnthropicServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}"


@pytest.mark.parametrize(
    ("headers", "status", "kind"),
    [
        ({}, 401, "authentication_error"),
        ({"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        ({"x-api-key": "wrong", "anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        ({"x-api-key": ADMIN_KEY}, 401, "authentication_error"),
        ({"x-api-key": ADMIN_KEY, "anthropic-version": "1999-01-01"}, 400,
         "invalid_request_error"),
        ({"authorization": f"Bearer {ADMIN_KEY}", "anthropic-version": "2023-06-01"}, 401,
         "authentication_error"),
    ],
)  # fmt: skip
def test_auth_and_version_headers_are_required(
    server: FakeAnthropicServer, headers: dict[str, str], status: int, kind: str
) -> None:
    r = httpx.get(f"{server.base_url}{COSTS}", params=_window(), headers=headers)
    assert r.status_code == status
    body = r.json()
    assert body["type"] == "error" and body["request_id"]
    assert body["error"]["type"] == kind and body["error"]["message"]
    assert r.headers["request-id"].startswith("req_")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        (USAGE, {}),
        (USAGE, {"starting_at": "soon"}),
        (USAGE, {"starting_at": "2026-01-01T00:00:00"}),  # no offset
        (USAGE, {"starting_at": "2026-01-02T00:00:00Z", "ending_at": "2026-01-01T00:00:00Z"}),
        (USAGE, {"starting_at": "2026-01-01T00:00:00Z", "limit": 32}),
        (USAGE, {"starting_at": "2026-01-01T00:00:00Z", "limit": 0}),
        (USAGE, {"starting_at": "2026-01-01T00:00:00Z", "group_by[]": "description"}),
        (USAGE, {"starting_at": "2026-01-01T00:00:00Z", "bucket_width": "1h"}),
        (USAGE, {"starting_at": "2026-01-01T00:00:00Z", "bucket_width": "1w"}),
        (USAGE, {"starting_at": "2026-01-01T00:00:00Z", "page": "nonsense"}),
        (COSTS, {"starting_at": "2026-01-01T00:00:00Z", "group_by[]": "model"}),
        (COSTS, {"starting_at": "2026-01-01T00:00:00Z", "bucket_width": "1h"}),
        (COSTS, {"starting_at": "2026-01-01T00:00:00Z", "limit": 32}),
        ("/v1/organizations/api_keys", {"status": "unused"}),
        ("/v1/organizations/api_keys", {"limit": 1001}),
        ("/v1/organizations/workspaces", {"after_id": "wrkspc_nope"}),
    ],
)
def test_bad_requests_answer_400_invalid_request_error(
    client: httpx.Client, path: str, params: dict[str, Any]
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_unknown_path_is_404_not_found_error(client: httpx.Client) -> None:
    for path in ("/v1/organizations/usage_report/nope", "/nope", "/v1/organization/costs"):
        r = client.get(path, params=_window())
        assert r.status_code == 404
        assert r.json()["error"]["type"] == "not_found_error"


def test_paging_walks_every_day_including_empty_ones(
    server: FakeAnthropicServer, client: httpx.Client
) -> None:
    buckets = _walk(client, USAGE, _window(9) | {"limit": 2})
    assert [b["starting_at"] for b in buckets] == [
        midnight_rfc3339(DAY1 + timedelta(i)) for i in range(9)
    ]
    assert [b["ending_at"] for b in buckets] == [
        midnight_rfc3339(DAY1 + timedelta(i + 1)) for i in range(9)
    ]
    assert [bool(b["results"]) for b in buckets] == [True, True] + [False] * 7
    pages = [r for r in server.requests if r.path == USAGE]
    assert len(pages) == 5 and all(("limit", "2") in r.query for r in pages)


def test_starting_at_snaps_to_the_day_and_ending_at_defaults_to_now(client: httpx.Client) -> None:
    data = client.get(COSTS, params={"starting_at": "2026-01-08T17:45:00Z"}).json()["data"]
    assert [b["starting_at"] for b in data] == [
        "2026-01-08T00:00:00Z",
        "2026-01-09T00:00:00Z",
        "2026-01-10T00:00:00Z",
    ]
    assert data[-1]["ending_at"] == "2026-01-11T00:00:00Z"


def test_usage_results_nest_cache_and_tool_fields_and_echo_null_dimensions(
    client: httpx.Client,
) -> None:
    (total,) = _results(client, USAGE, {})
    assert total == {
        "uncached_input_tokens": 6070,
        "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 50},
        "cache_read_input_tokens": 400,
        "output_tokens": 1130,
        "server_tool_use": {"web_search_requests": 3},
        "api_key_id": None,
        "workspace_id": None,
        "model": None,
        "service_tier": None,
        "context_window": None,
        "inference_geo": None,
        "speed": None,
        "account_id": None,
        "service_account_id": None,
    }
    grouped = _results(client, USAGE, {"group_by[]": ["workspace_id", "api_key_id"]})
    assert [(r["workspace_id"], r["api_key_id"], r["uncached_input_tokens"]) for r in grouped] == [
        (None, "apikey_a", 1000),  # the default workspace
        ("wrkspc_b", "apikey_b", 5000),
        (None, None, 70),  # Console usage: no API key
    ]
    only = _results(client, USAGE, {"service_tiers[]": "batch", "group_by[]": "service_tier"})
    assert [(r["service_tier"], r["output_tokens"]) for r in only] == [("batch", 900)]


def test_cost_amounts_are_exact_cent_strings_and_details_need_description(
    client: httpx.Client,
) -> None:
    (total,) = _results(client, COSTS, {})
    assert total["amount"] == "384.28913" and total["currency"] == "USD"
    assert total["cost_type"] is total["description"] is total["model"] is None
    by_workspace = _results(client, COSTS, {"group_by[]": "workspace_id"})
    assert {r["workspace_id"]: r["amount"] for r in by_workspace} == {
        "wrkspc_b": "257.50",
        None: "126.78913",
    }
    detailed = _results(client, COSTS, {"group_by[]": ["workspace_id", "description"]})
    rows = {(r["workspace_id"], r["description"], r["context_window"]): r for r in detailed}
    out = rows[(None, "Claude Sonnet 4 Usage - Output Tokens", "0-200k")]
    assert (out["amount"], out["cost_type"], out["model"], out["token_type"]) == (
        "123.78912",
        "tokens",
        SONNET_4,
        "output_tokens",
    )
    assert rows[(None, "Claude Sonnet 4 Usage - Output Tokens", "200k-1M")]["amount"] == "0.00001"
    tool = rows[("wrkspc_b", "Web Search Usage", None)]
    assert (tool["cost_type"], tool["model"], tool["token_type"]) == ("web_search", None, None)
    assert rows[("wrkspc_b", "Code Execution Usage", None)]["cost_type"] == "code_execution"


def test_revisions_go_up_and_down(server: FakeAnthropicServer, client: httpx.Client) -> None:
    with server.lock:
        server.org.scale_day(DAY1, Decimal("0.5"))
    (total,) = _results(client, COSTS, {})
    assert total["amount"] == "192.144565"
    (usage,) = _results(client, USAGE, {})
    assert (usage["uncached_input_tokens"], usage["server_tool_use"]["web_search_requests"]) == (
        3035,
        2,  # 1.5 rounds half-even
    )
    with server.lock:
        server.org.scale_day(DAY1, Decimal("3"))
    (total,) = _results(client, COSTS, {})
    assert total["amount"] == "576.433695"


def test_faults_answer_anthropic_error_objects(
    server: FakeAnthropicServer, client: httpx.Client
) -> None:
    server.inject(Fault("cost_report", status=429, retry_after="2"))
    server.inject(Fault("cost_report", status=529))
    server.inject(Fault("cost_report", status=500))
    server.inject(Fault("cost_report", truncate=True))
    r = client.get(COSTS, params=_window())
    assert (r.status_code, r.headers["retry-after"]) == (429, "2")
    assert r.json()["error"]["type"] == "rate_limit_error"
    r = client.get(COSTS, params=_window())
    assert (r.status_code, r.json()["error"]["type"]) == (529, "overloaded_error")
    r = client.get(COSTS, params=_window())
    assert (r.status_code, r.json()["error"]["type"]) == (500, "api_error")
    truncated = client.get(COSTS, params=_window())
    assert truncated.status_code == 200 and truncated.content.startswith(b'{"data"')
    assert client.get(COSTS, params=_window()).json()["data"]
    assert server.faults == []


def test_workspaces_page_by_after_id_and_hide_archived_unless_asked(client: httpx.Client) -> None:
    path = "/v1/organizations/workspaces"
    first = client.get(path, params={"limit": 2}).json()
    assert [w["id"] for w in first["data"]] == ["wrkspc_a", "wrkspc_b"]
    assert (first["first_id"], first["last_id"], first["has_more"]) == (
        "wrkspc_a",
        "wrkspc_b",
        True,
    )
    rest = client.get(path, params={"limit": 2, "after_id": "wrkspc_b"}).json()
    assert ([w["id"] for w in rest["data"]], rest["has_more"]) == (["wrkspc_d"], False)
    everything = client.get(path, params={"include_archived": "true"}).json()["data"]
    assert len(everything) == 4


def test_api_keys_filter_by_status_and_workspace_and_page_by_after_id(
    client: httpx.Client,
) -> None:
    path = "/v1/organizations/api_keys"
    every = client.get(path).json()["data"]
    assert [k["status"] for k in every] == ["active", "inactive", "archived", "expired", "active"]
    active = client.get(path, params={"status": "active"}).json()["data"]
    assert [k["id"] for k in active] == ["apikey_0", "apikey_4"]
    in_b = client.get(path, params={"workspace_id": "wrkspc_b"}).json()["data"]
    assert [k["id"] for k in in_b] == ["apikey_0", "apikey_2", "apikey_4"]
    page = client.get(path, params={"limit": 2, "after_id": "apikey_2"}).json()
    assert ([k["id"] for k in page["data"]], page["has_more"]) == (["apikey_3", "apikey_4"], False)


# -- generated traffic ------------------------------------------------------------------------


def test_generated_org_is_deterministic_and_realistic() -> None:
    today = date(2026, 1, 10)
    org = generate_anthropic_org(today=today, seed=7)
    assert org == generate_anthropic_org(today=today, seed=7)
    assert org != generate_anthropic_org(today=today, seed=8)
    assert min(truth_days(org)) == today - timedelta(days=89) and max(truth_days(org)) == today
    assert not org.admin_key.startswith("sk-")
    names = [w["name"] for w in org.workspaces]
    assert names == ["Customer support", "Research agents", "Prototype"]
    assert [w["archived_at"] is not None for w in org.workspaces] == [False, False, True]
    assert {k["status"] for k in org.api_keys} == {"active", "inactive", "archived", "expired"}
    assert any(k["workspace_id"] is None for k in org.api_keys)

    assert {r.workspace_id for r in org.usage} == {None, *(w["id"] for w in org.workspaces[:2])}
    assert any(r.api_key_id is None for r in org.usage)  # Console
    assert any(r.cache_creation_5m_input_tokens for r in org.usage)
    assert any(r.cache_creation_1h_input_tokens for r in org.usage)
    assert {r.service_tier for r in org.usage} == {"standard", "batch"}
    assert {r.context_window for r in org.usage} == {"0-200k", "200k-1M"}
    assert len({r.model for r in org.usage}) == 4
    assert {r.cost_type for r in org.costs} == {"tokens", "web_search", "code_execution"}
    assert any(r.amount != r.amount.quantize(Decimal("0.01")) for r in org.costs)

    weekday = [
        truth_cost_total(org, d, d + timedelta(1)) for d in truth_days(org)[:-1] if d.weekday() < 5
    ]
    weekend = [
        truth_cost_total(org, d, d + timedelta(1)) for d in truth_days(org) if d.weekday() >= 5
    ]
    ratio = (sum(weekend) / len(weekend)) / (sum(weekday) / len(weekday))
    assert Decimal("0.3") < ratio < Decimal("0.55")
    assert Decimal(20) < sum(weekday) / len(weekday) < Decimal(1000)  # dollars a weekday


def test_token_cost_lines_are_priced_exactly_from_usage() -> None:
    today = date(2026, 1, 10)
    org = generate_anthropic_org(today=today, days=5, seed=1)
    day = today - timedelta(days=1)
    row = next(
        r
        for r in org.usage
        if (r.day, r.model, r.service_tier, r.context_window)
        == (day, SONNET_4, "standard", "0-200k")
        and r.cache_creation_5m_input_tokens
    )
    same = [
        r
        for r in org.usage
        if (r.day, r.workspace_id, r.model, r.service_tier, r.context_window)
        == (row.day, row.workspace_id, SONNET_4, "standard", "0-200k")
    ]
    line = next(
        c
        for c in org.costs
        if (c.day, c.workspace_id, c.token_type, c.context_window, c.service_tier)
        == (day, row.workspace_id, "cache_creation.ephemeral_5m_input_tokens", "0-200k", "standard")
        and c.model == SONNET_4
    )
    tokens = sum(r.cache_creation_5m_input_tokens for r in same)
    assert line.amount == Decimal(tokens) * PRICES[SONNET_4].cache_write_5m * 100 / 1_000_000
    assert line.description == "Claude Sonnet 4 Usage - Cache Write (5m) Input Tokens"


def test_truth_helpers_agree_with_the_rows() -> None:
    today = date(2026, 1, 10)
    org = generate_anthropic_org(today=today, days=30, seed=1)
    start, end = today - timedelta(days=10), today
    costs = truth_costs(org, start, end)
    assert sum(costs.values()) == truth_cost_total(org, start, end)
    assert all(model == "" for (_, model, kind) in costs if kind != "tokens")
    assert {project for project, _, _ in costs} >= {"default"}
    tokens = truth_tokens(org, start, end)
    rows = [r for r in org.usage if start <= r.day < end]
    assert sum(n for (_, _, t), n in tokens.items() if t == "cache_write") == sum(
        r.cache_creation_5m_input_tokens + r.cache_creation_1h_input_tokens for r in rows
    )
    ratios = truth_cache_hit_ratio(org, start, end)
    assert all(0 <= v < 1 for v in ratios.values()) and ratios[("default", SONNET_4)] > 0.3
    searches = truth_web_search_requests(org, start, end)
    assert sum(searches.values()) == sum(r.web_search_requests for r in rows) > 0


def test_served_costs_of_a_generated_org_match_its_truth() -> None:
    today = date(2026, 1, 10)
    org = generate_anthropic_org(today=today, days=20, seed=3)
    start = today - timedelta(days=19)
    with (
        FakeAnthropicServer(org, now=lambda: datetime(2026, 1, 10, 15, tzinfo=UTC)) as srv,
        httpx.Client(base_url=srv.base_url, timeout=5) as c,
    ):
        c.headers.update({"x-api-key": org.admin_key, "anthropic-version": "2023-06-01"})
        params = {"starting_at": midnight_rfc3339(start), "limit": 7, "group_by[]": "workspace_id"}
        served = sum(
            Decimal(result["amount"])
            for bucket in _walk(c, COSTS, params)
            for result in bucket["results"]
        )
    assert served.scaleb(-2) == sum(truth_costs(org, start, today + timedelta(1)).values())
