"""Tests of the fake OpenAI server itself, over real HTTP on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from exporter.demo.openai import (
    PRICES_PER_MTOK,
    CostRow,
    FakeOpenAIOrg,
    FakeOpenAIServer,
    Fault,
    UsageRow,
    day_start,
    generate_org,
)
from tests.oracles.openai import truth_cost_total, truth_costs, truth_days, truth_tokens

DAY1 = date(2026, 1, 1)
NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
ADMIN = {"Authorization": "Bearer fake-admin-key-for-tests"}


def _small_org() -> FakeOpenAIOrg:
    """Usage on days 1, 2 and 5 of January 2026 only (the rest of the window is empty)."""
    usage = [
        UsageRow(
            DAY1,
            "completions",
            "proj_a",
            "gpt-4o-mini-2024-07-18",
            "key_1",
            service_tier="default",
            input_tokens=1000,
            output_tokens=100,
            input_cached_tokens=400,
            input_cache_write_tokens=50,
            num_model_requests=10,
        ),
        UsageRow(
            DAY1,
            "completions",
            "proj_a",
            "gpt-4o-2024-08-06",
            "key_2",
            batch=True,
            service_tier="default",
            input_tokens=500,
            output_tokens=50,
            input_cached_tokens=100,
            num_model_requests=5,
        ),
        UsageRow(
            DAY1,
            "completions",
            "proj_b",
            "gpt-4o-2024-08-06",
            "key_3",
            input_tokens=200,
            output_tokens=20,
            num_model_requests=2,
        ),
        UsageRow(
            DAY1,
            "embeddings",
            "proj_b",
            "text-embedding-3-small",
            "key_3",
            input_tokens=7000,
            num_model_requests=70,
        ),
        UsageRow(
            date(2026, 1, 2),
            "completions",
            "proj_a",
            "gpt-4o-2024-08-06",
            "key_2",
            input_tokens=300,
            output_tokens=30,
            num_model_requests=3,
        ),
        UsageRow(
            date(2026, 1, 5),
            "images",
            "proj_b",
            "gpt-image-1",
            "key_3",
            images=4,
            num_model_requests=4,
            source="image.generation",
            size="1024x1024",
        ),
    ]
    costs = [
        CostRow(
            DAY1,
            "proj_a",
            "gpt-4o-2024-08-06, output",
            Decimal("0.13080438"),
            Decimal("13080"),
            "tokens",
            model="gpt-4o-2024-08-06",
            token_type="output",
        ),
        CostRow(
            DAY1,
            "proj_a",
            "gpt-4o-2024-08-06, cached input",
            Decimal("0.00000001"),
            Decimal("8"),
            "tokens",
            model="gpt-4o-2024-08-06",
            token_type="cache_read",
        ),
        CostRow(
            DAY1,
            "proj_b",
            "web search tool calls",
            Decimal("1.2"),
            Decimal("120"),
            cost_type="web_search",
        ),
    ]
    projects = [
        {
            "id": f"proj_{c}",
            "object": "organization.project",
            "name": f"P {c}",
            "created_at": 1700000000,
            "archived_at": None,
            "status": "active",
        }
        for c in "abcde"
    ]
    projects[2] |= {"archived_at": 1710000000, "status": "archived"}
    keys = {
        "proj_a": [
            {
                "object": "organization.project.api_key",
                "id": f"key_{i}",
                "name": f"k{i}",
                "created_at": 1700000000,
                "last_used_at": None,
                "owner_project_access": "active",
            }
            for i in (1, 2)
        ]
    }
    return FakeOpenAIOrg(projects=projects, api_keys=keys, usage=usage, costs=costs)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(_small_org(), now=lambda: NOW) as srv:
        yield srv


@pytest.fixture
def client(server: FakeOpenAIServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=ADMIN, timeout=5) as c:
        yield c


def _window(days: int = 9, start: date = DAY1) -> dict[str, Any]:
    return {"start_time": day_start(start), "end_time": day_start(start + timedelta(days))}


def _walk(client: httpx.Client, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """All pages of a bucketed endpoint; asserts the envelope on every page."""
    buckets: list[dict[str, Any]] = []
    page: str | None = None
    while True:
        body = client.get(path, params=params | ({"page": page} if page else {})).json()
        assert body["object"] == "page"
        buckets += body["data"]
        if not body["has_more"]:
            assert body["next_page"] is None
            return buckets
        page = body["next_page"]
        assert isinstance(page, str) and page


def test_binds_loopback(server: FakeOpenAIServer) -> None:
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "Bearer fake-project-key-123"}, 403),
    ],
)
def test_auth_errors(server: FakeOpenAIServer, headers: dict[str, str], status: int) -> None:
    r = httpx.get(f"{server.base_url}/organization/costs", params=_window(), headers=headers)
    assert r.status_code == status
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["message"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/organization/usage/completions", {}),
        ("/organization/usage/completions", {"start_time": "soon"}),
        ("/organization/usage/completions", {"start_time": 0, "limit": 32}),
        ("/organization/usage/completions", {"start_time": 0, "limit": 0}),
        ("/organization/usage/completions", {"start_time": 0, "group_by": "line_item"}),
        ("/organization/usage/embeddings", {"start_time": 0, "group_by": "batch"}),
        ("/organization/usage/completions", {"start_time": 0, "bucket_width": "1h"}),
        ("/organization/usage/completions", {"start_time": 0, "batch": "maybe"}),
        ("/organization/usage/completions", {"start_time": 0, "page": "nonsense"}),
        ("/organization/costs", {"start_time": 0, "bucket_width": "1h"}),
        ("/organization/costs", {"start_time": 0, "limit": 181}),
        ("/organization/costs", {"start_time": 0, "group_by": "model"}),
        ("/organization/projects", {"limit": 101}),
    ],
)
def test_bad_requests(client: httpx.Client, path: str, params: dict[str, Any]) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 400, r.text
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_unknown_path_is_404(client: httpx.Client) -> None:
    for path in ("/organization/usage/nope", "/nope", "/organization/projects/proj_x/api_keys"):
        r = client.get(path, params={"start_time": 0})
        assert r.status_code == 404
        assert r.json()["error"]["type"] == "invalid_request_error"


def test_group_by_encodings_are_identical(server: FakeOpenAIServer, client: httpx.Client) -> None:
    base = "/organization/usage/completions?start_time={}&end_time={}".format(*_window().values())
    queries = [
        "&group_by[]=project_id&group_by[]=model&models[]=gpt-4o-2024-08-06",
        "&group_by=project_id&group_by=model&models=gpt-4o-2024-08-06",
        "&group_by=project_id,model&models=gpt-4o-2024-08-06",
    ]
    bodies = [client.get(base + q).json() for q in queries]
    assert bodies[0] == bodies[1] == bodies[2]
    first = bodies[0]["data"][0]["results"]
    assert [(r["project_id"], r["model"], r["input_tokens"]) for r in first] == [
        ("proj_a", "gpt-4o-2024-08-06", 500),
        ("proj_b", "gpt-4o-2024-08-06", 200),
    ]
    assert {r["api_key_id"] for r in first} == {None}
    assert [q[1] for q in server.requests[-1].query if q[0] == "group_by"] == ["project_id,model"]


def test_usage_aggregation_and_fields(server: FakeOpenAIServer, client: httpx.Client) -> None:
    path = "/organization/usage/completions"
    (result,) = client.get(path, params=_window(1)).json()["data"][0]["results"]
    assert result == {
        "object": "organization.usage.completions.result",
        "input_tokens": 1700,
        "output_tokens": 170,
        "input_cached_tokens": 500,
        "input_audio_tokens": 0,
        "output_audio_tokens": 0,
        "num_model_requests": 17,
        "input_cache_write_tokens": 50,
        "input_uncached_tokens": 1150,
        "project_id": None,
        "user_id": None,
        "api_key_id": None,
        "model": None,
        "batch": None,
        "service_tier": None,
    }
    batch = client.get(path, params=_window(1) | {"batch": "true", "group_by": "batch"}).json()
    (only,) = batch["data"][0]["results"]
    assert only["batch"] is True and only["input_tokens"] == 500
    with server.lock:
        server.org.new_fields = False
    (old,) = client.get(path, params=_window(1)).json()["data"][0]["results"]
    assert "input_cache_write_tokens" not in old and "input_uncached_tokens" not in old
    images = client.get("/organization/usage/images", params=_window(5) | {"group_by": "size"})
    (img,) = images.json()["data"][4]["results"]
    assert (img["images"], img["size"], img["source"]) == (4, "1024x1024", None)


def test_paging_walks_every_bucket(server: FakeOpenAIServer, client: httpx.Client) -> None:
    buckets = _walk(client, "/organization/usage/completions", _window(9) | {"limit": 2})
    assert [b["start_time"] for b in buckets] == [day_start(DAY1) + i * 86400 for i in range(9)]
    assert all(b["end_time"] - b["start_time"] == 86400 for b in buckets)
    assert [bool(b["results"]) for b in buckets] == [True, True] + [False] * 7
    pages = [r for r in server.requests if r.path.endswith("/completions")]
    assert len(pages) == 5
    assert all(("limit", "2") in r.query for r in pages)


def test_unaligned_start_truncates_first_bucket(client: httpx.Client) -> None:
    start = day_start(DAY1) + 5 * 3600
    params = {"start_time": start, "end_time": day_start(date(2026, 1, 3))}
    data = client.get("/organization/costs", params=params).json()["data"]
    assert [(b["start_time"], b["end_time"]) for b in data] == [
        (start, day_start(date(2026, 1, 2))),
        (day_start(date(2026, 1, 2)), day_start(date(2026, 1, 3))),
    ]


def test_default_end_time_is_now_and_today_ends_at_midnight(client: httpx.Client) -> None:
    data = client.get("/organization/costs", params={"start_time": day_start(date(2026, 1, 8))})
    buckets = data.json()["data"]
    assert len(buckets) == 3
    assert buckets[-1]["end_time"] == day_start(date(2026, 1, 11))


def test_cost_amounts_are_exact(server: FakeOpenAIServer, client: httpx.Client) -> None:
    params = _window(1) | {"group_by": ["line_item", "project_id"]}
    r = client.get("/organization/costs", params=params)
    body = json.loads(r.text, parse_float=Decimal)
    results = body["data"][0]["results"]
    assert {x["line_item"]: x["amount"]["value"] for x in results} == {
        "gpt-4o-2024-08-06, output": Decimal("0.13080438"),
        "gpt-4o-2024-08-06, cached input": Decimal("0.00000001"),
        "web search tool calls": Decimal("1.2"),
    }
    assert {x["amount"]["currency"] for x in results} == {"usd"}
    assert results[0]["quantity_unit"] == "tokens" and results[0]["api_key_id"] is None

    (total,) = json.loads(
        client.get("/organization/costs", params=_window(1)).text, parse_float=Decimal
    )["data"][0]["results"]
    assert total["amount"]["value"] == Decimal("1.33080439")
    assert total["line_item"] is total["project_id"] is total["quantity"] is None

    with server.lock:
        server.org.amounts_as_strings = True
    (as_text,) = client.get("/organization/costs", params=_window(1)).json()["data"][0]["results"]
    assert as_text["amount"]["value"] == "1.33080439"


def test_revision_with_scale_day(server: FakeOpenAIServer, client: httpx.Client) -> None:
    with server.lock:
        server.org.scale_day(DAY1, Decimal("0.5"))
    (total,) = client.get("/organization/costs", params=_window(1)).json()["data"][0]["results"]
    assert Decimal(str(total["amount"]["value"])) == Decimal("0.66540219")
    params = _window(1) | {"models": "gpt-4o-mini-2024-07-18"}
    (usage,) = client.get("/organization/usage/completions", params=params).json()["data"][0][
        "results"
    ]
    assert (usage["input_tokens"], usage["input_cached_tokens"]) == (500, 200)


def test_faults_are_consumed_in_order(server: FakeOpenAIServer, client: httpx.Client) -> None:
    server.inject(Fault("/costs", status=429, retry_after="2"))
    server.inject(Fault("/costs", status=500))
    server.inject(Fault("/costs", truncate=True))
    server.inject(Fault("/costs", body=b"{not json"))
    server.inject(Fault("/projects", delay=0.5))

    r = client.get("/organization/costs", params=_window())
    assert (r.status_code, r.headers["retry-after"]) == (429, "2")
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert client.get("/organization/costs", params=_window()).status_code == 500
    truncated = client.get("/organization/costs", params=_window())
    assert truncated.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        truncated.json()
    assert client.get("/organization/costs", params=_window()).content == b"{not json"
    assert client.get("/organization/costs", params=_window()).json()["object"] == "page"
    with pytest.raises(httpx.ReadTimeout):
        client.get("/organization/projects", timeout=0.1)
    assert server.faults == []
    assert client.get("/organization/projects").status_code == 200


def test_projects_and_api_keys_paging(client: httpx.Client) -> None:
    first = client.get("/organization/projects", params={"limit": 2}).json()
    assert [p["id"] for p in first["data"]] == ["proj_a", "proj_b"]
    assert (first["first_id"], first["last_id"], first["has_more"]) == ("proj_a", "proj_b", True)
    rest = client.get("/organization/projects", params={"limit": 2, "after": "proj_b"}).json()
    assert [p["id"] for p in rest["data"]] == ["proj_d", "proj_e"]
    assert rest["has_more"] is False
    everything = client.get("/organization/projects", params={"include_archived": "true"}).json()
    assert len(everything["data"]) == 5
    keys = client.get("/organization/projects/proj_a/api_keys", params={"limit": 1}).json()
    assert (keys["data"][0]["id"], keys["has_more"]) == ("key_1", True)
    keys = client.get(
        "/organization/projects/proj_a/api_keys", params={"limit": 1, "after": "key_1"}
    ).json()
    assert (keys["data"][0]["id"], keys["has_more"]) == ("key_2", False)
    empty = client.get("/organization/projects/proj_b/api_keys").json()
    assert (empty["data"], empty["first_id"], empty["has_more"]) == ([], None, False)


def test_generate_org_is_deterministic_and_realistic() -> None:
    today = date(2026, 1, 10)
    org = generate_org(today=today, seed=7)
    assert org == generate_org(today=today, seed=7)
    assert org != generate_org(today=today, seed=8)
    assert [p["name"] for p in org.projects] == [
        "Search",
        "Support bot",
        "Data pipeline",
        "R&D sandbox",
    ]
    assert all(2 <= len(keys) <= 3 for keys in org.api_keys.values())
    assert min(truth_days(org)) == today - timedelta(days=89) and max(truth_days(org)) == today
    assert not org.admin_key.startswith("sk-")

    stale = next(k for ks in org.api_keys.values() for k in ks if k["name"] == "support-bot-v1")
    used = {r.day for r in org.usage if r.api_key_id == stale["id"]}
    assert min(used) == today - timedelta(days=60) and max(used) == today - timedelta(days=31)
    assert stale["last_used_at"] // 86400 * 86400 == day_start(max(used))

    assert any(r.batch for r in org.usage) and any(r.endpoint == "images" for r in org.usage)
    weekday = [
        truth_cost_total(org, d, d + timedelta(1)) for d in truth_days(org)[:-1] if d.weekday() < 5
    ]
    weekend = [
        truth_cost_total(org, d, d + timedelta(1)) for d in truth_days(org) if d.weekday() >= 5
    ]
    ratio = (sum(weekend) / len(weekend)) / (sum(weekday) / len(weekday))
    assert Decimal("0.3") < ratio < Decimal("0.55")


def test_truth_helpers_match_rows() -> None:
    today = date(2026, 1, 10)
    org = generate_org(today=today, days=30, seed=1)
    start, end = today - timedelta(days=10), today
    costs = truth_costs(org, start, end)
    assert sum(costs.values()) == sum(r.amount for r in org.costs if start <= r.day < end)
    assert {cost_type for _, _, cost_type in costs} == {"tokens", "web_search", "other"}

    tokens = truth_tokens(org, start, end)
    rows = [r for r in org.usage if start <= r.day < end and r.endpoint == "completions"]
    assert sum(v for (_, _, t), v in tokens.items() if t == "cache_read") == sum(
        r.input_cached_tokens for r in rows
    )
    # The embeddings input line is priced exactly from the usage.
    price = PRICES_PER_MTOK["text-embedding-3-small"][0]
    line = next(r for r in org.costs if r.line_item == "text-embedding-3-small, input")
    embedded = sum(
        r.input_tokens
        for r in org.usage
        if r.endpoint == "embeddings" and (r.day, r.project_id) == (line.day, line.project_id)
    )
    assert line.amount == (embedded * price / 1_000_000).quantize(Decimal("0.00000001"))


def test_generated_org_served_costs_match_truth() -> None:
    today = date(2026, 1, 10)
    org = generate_org(today=today, days=20, seed=3)
    start = today - timedelta(days=19)
    now = datetime(2026, 1, 10, 15, tzinfo=UTC)
    with (
        FakeOpenAIServer(org, now=lambda: now) as srv,
        httpx.Client(base_url=srv.base_url, headers=ADMIN, timeout=5) as c,
    ):
        params = {"start_time": day_start(start), "limit": 31, "group_by[]": "project_id"}
        served = sum(
            Decimal(str(result["amount"]["value"]))
            for bucket in _walk(c, "/organization/costs", params)
            for result in bucket["results"]
        )
    assert served == sum(truth_costs(org, start, today + timedelta(1)).values())
