"""Tests of the fake xAI Management API itself, over real HTTP on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from exporter.demo.http import Fault
from exporter.demo.xai import (
    GROK_3_MINI,
    GROK_4,
    FakeXaiServer,
    FakeXaiTeam,
    XaiUsageRow,
    generate_team,
)
from tests.oracles.xai import truth_costs, truth_prepaid_remaining, truth_preview_total

D1 = date(2026, 1, 1)
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
KEY = {"Authorization": "Bearer fake-management-key-for-tests"}
TEAM_PATH = "/v1/billing/teams/team-fake-0001"


def _small_team() -> FakeXaiTeam:
    """Usage on Jan 1 and Jan 3 only; Jan 2 and Jan 4 are empty."""
    return FakeXaiTeam(
        usage=[
            XaiUsageRow(D1, GROK_4, "Prompt", Decimal("0.003"), 1000, token_type="input"),
            XaiUsageRow(D1, GROK_4, "Completion", Decimal("0.015"), 1000, token_type="output"),
            XaiUsageRow(D1, GROK_3_MINI, "Prompt", Decimal("0.0003"), 1000, token_type="input"),
            XaiUsageRow(date(2026, 1, 3), GROK_4, "Prompt", Decimal("0.006"), 2000,
                        token_type="input", api_key_id="key-fake-2"),
            XaiUsageRow(date(2026, 1, 3), GROK_4, "Live search sources", Decimal("0.05"),
                        cost_type="web_search"),
        ],
        prepaid_purchased_cents=10_000,
        prepaid_booked_cents=2_500,
        spending_limit_cents=20_000,
    )  # fmt: skip


@pytest.fixture
def server() -> Iterator[FakeXaiServer]:
    with FakeXaiServer(_small_team(), now=lambda: NOW) as fake:
        yield fake


@pytest.fixture
def client(server: FakeXaiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=5) as c:
        yield c


def query(
    start: str = "2026-01-01 00:00:00",
    end: str = "2026-01-05 00:00:00",
    value: str = "usd",
    group_by: list[str] | None = None,
    **changes: Any,
) -> dict[str, Any]:
    request = {
        "timeRange": {"startTime": start, "endTime": end, "timezone": "Etc/GMT"},
        "timeUnit": "TIME_UNIT_DAY",
        "values": [{"name": value, "aggregation": "AGGREGATION_SUM"}],
        "groupBy": ["model", "unit_type"] if group_by is None else group_by,
        "filters": [],
    }
    return {"analyticsRequest": request | changes}


def usage(client: httpx.Client, body: Any, headers: dict[str, str] = KEY) -> httpx.Response:
    return client.post(f"{TEAM_PATH}/usage", json=body, headers=headers)


def series(response: httpx.Response) -> dict[tuple[str, ...], list[tuple[str, Any]]]:
    return {
        tuple(s["groupLabels"]): [(p["timestamp"][:10], p["values"][0]) for p in s["dataPoints"]]
        for s in json.loads(response.content, parse_float=Decimal)["timeSeries"]
    }


# -- usage analytics ----------------------------------------------------------------------


def test_usage_answers_dense_day_points_per_group_with_zero_on_empty_days(
    client: httpx.Client,
) -> None:
    got = series(usage(client, query()))
    assert got[(GROK_4, "Prompt")] == [
        ("2026-01-01", Decimal("0.003")), ("2026-01-02", 0),
        ("2026-01-03", Decimal("0.006")), ("2026-01-04", 0),
    ]  # fmt: skip
    assert set(got) == {(GROK_4, "Prompt"), (GROK_4, "Completion"), (GROK_3_MINI, "Prompt"),
                        (GROK_4, "Live search sources")}  # fmt: skip


def test_usage_values_are_exact_numbers_in_the_json_text(client: httpx.Client) -> None:
    text = usage(client, query(group_by=["model"])).text
    assert '"values": [0.018]' in text  # 0.003 + 0.015, nothing lost to floats
    assert json.loads(text)["limitReached"] is False


def test_tokens_skip_units_without_tokens_and_group_by_description_and_key(
    client: httpx.Client,
) -> None:
    got = series(usage(client, query(value="tokens", group_by=["description", "api_key_id"])))
    assert got[("grok-4-0709 Prompt", "key-fake-2")][2] == ("2026-01-03", 2000)
    assert not any("search" in labels[0] for labels in got)
    total = series(usage(client, query(value="tokens", group_by=[])))
    assert sum(v for _, v in total[()]) == 5000


def test_end_time_is_exclusive_and_an_empty_range_has_no_series(client: httpx.Client) -> None:
    one_day = series(usage(client, query(end="2026-01-02 00:00:00")))
    assert all(len(points) == 1 for points in one_day.values())
    empty = usage(client, query(start="2026-02-01 00:00:00", end="2026-02-03 00:00:00"))
    assert empty.json() == {"timeSeries": [], "limitReached": False}


def test_over_the_cardinality_cap_the_answer_is_cut_and_flagged(
    server: FakeXaiServer, client: httpx.Client
) -> None:
    server.team.max_points = 9  # 4 series x 4 days = 16 points
    body = usage(client, query()).json()
    assert body["limitReached"] is True and len(body["timeSeries"]) == 2
    assert usage(client, query(end="2026-01-03 00:00:00")).json()["limitReached"] is False


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("string", "0.003"), ("val", {"val": "0.003"}), ("number", Decimal("0.003"))],
)
def test_value_encodings(
    server: FakeXaiServer, client: httpx.Client, encoding: str, expected: Any
) -> None:
    server.team.encoding = encoding
    assert series(usage(client, query()))[(GROK_4, "Prompt")][0][1] == expected


def test_proto3_style_omits_false_and_empty_fields(
    server: FakeXaiServer, client: httpx.Client
) -> None:
    server.team.omit_defaults = True
    empty = usage(client, query(start="2026-02-01 00:00:00", end="2026-02-03 00:00:00"))
    assert empty.json() == {}
    assert "limitReached" not in usage(client, query()).json()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "analyticsRequest is required"),
        (query(timeUnit="TIME_UNIT_HOUR"), "day only"),
        (query(start="2026-01-01 06:00:00"), "whole days only"),
        (query(start="2026-01-01T00:00:00Z"), "cannot parse"),
        (query(end="2026-01-01 00:00:00"), "endTime must be after startTime"),
        (query(value="requests"), "unknown value name"),
        (query(group_by=["project"]), "groupBy entries must be among"),
        (query(filters=[{"model": "grok-4"}]), "filters are not supported"),
        (query(values=[{"name": "usd", "aggregation": "AGGREGATION_SUM"}] * 2),
         "exactly one value"),
        (query(timeRange={"startTime": "2026-01-01 00:00:00", "endTime": "2026-01-02 00:00:00",
                          "timezone": "America/Los_Angeles"}), "timezone must be one of"),
    ],
)  # fmt: skip
def test_invalid_usage_requests_get_400_with_a_grpc_style_error(
    client: httpx.Client, body: Any, message: str
) -> None:
    response = usage(client, body)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == 3 and message in error["message"] and error["details"] == []


def test_tokens_can_be_refused_like_an_unknown_value(
    server: FakeXaiServer, client: httpx.Client
) -> None:
    server.team.tokens_supported = False
    assert usage(client, query(value="tokens")).status_code == 400
    assert usage(client, query(value="usd")).status_code == 200


# -- billing state ------------------------------------------------------------------------


def test_invoice_preview_has_cent_string_lines_and_val_wrapped_credits(
    client: httpx.Client, server: FakeXaiServer
) -> None:
    preview = client.get(f"{TEAM_PATH}/postpaid/invoice/preview", headers=KEY).json()
    assert preview["billingCycle"] == {"year": 2026, "month": 1}
    assert preview["effectiveSpendingLimit"] == "20000"
    lines = {line["description"]: line for line in preview["coreInvoice"]["lines"]}
    # 0.003 + 0.006 dollars = 0.9 cents, rounded half-even to 1 cent
    assert lines["grok-4-0709 Prompt"] == {
        "description": "grok-4-0709 Prompt", "unitType": "tokens", "numUnits": "3000",
        "amount": "1", "clusterName": "us-east-1",
    }  # fmt: skip
    core = preview["coreInvoice"]
    assert core["amountBeforeVat"] == "8"  # 1 + 2 (1.5 rounded) + 0 (0.03) + 5 (sources)
    assert core["prepaidCredits"] == {"val": "-7500"}
    assert core["prepaidCreditsUsed"] == {"val": "8"}
    assert truth_preview_total(server.team, NOW.date()) == Decimal("0.08")
    assert truth_prepaid_remaining(server.team, NOW.date()) == Decimal("74.92")


def test_prepaid_ledger_books_purchases_negative_and_spends_positive(
    client: httpx.Client,
) -> None:
    ledger = client.get(f"{TEAM_PATH}/prepaid/balance", headers=KEY).json()
    assert ledger["total"] == {"val": "-7500"}
    assert [(c["changeOrigin"], c["amount"]["val"]) for c in ledger["changes"]] == [
        ("PURCHASE", "-10000"),
        ("SPEND", "2500"),
    ]


def test_spending_limits_are_val_wrapped_cents(client: httpx.Client) -> None:
    limits = client.get(f"{TEAM_PATH}/postpaid/spending-limits", headers=KEY).json()
    assert limits["spendingLimits"]["effectiveSl"] == {"val": "20000"}


@pytest.mark.parametrize("status", [404, 400])
def test_a_team_without_postpaid_or_prepaid_gets_errors_for_those_endpoints(
    server: FakeXaiServer, client: httpx.Client, status: int
) -> None:
    server.team = replace(server.team, postpaid=False, prepaid=False, missing_status=status)
    for path in ("postpaid/invoice/preview", "postpaid/spending-limits", "prepaid/balance"):
        assert client.get(f"{TEAM_PATH}/{path}", headers=KEY).status_code == status
    assert usage(client, query()).status_code == 200


# -- auth, routing, faults ----------------------------------------------------------------


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}]
)
def test_requests_without_the_management_key_get_401(
    client: httpx.Client, headers: dict[str, str]
) -> None:
    response = usage(client, query(), headers)
    assert response.status_code == 401 and response.json()["code"] == 16


def test_unknown_teams_paths_and_methods(client: httpx.Client) -> None:
    other = client.post("/v1/billing/teams/team-other/usage", json=query(), headers=KEY)
    assert other.status_code == 404 and "team-other" in other.json()["message"]
    assert client.get(f"{TEAM_PATH}/invoices", headers=KEY).status_code == 404
    assert client.get(f"{TEAM_PATH}/usage", headers=KEY).status_code == 405
    assert client.post(f"{TEAM_PATH}/prepaid/balance", headers=KEY).status_code == 405


def test_faults_and_the_request_log_with_bodies(
    server: FakeXaiServer, client: httpx.Client
) -> None:
    server.inject(Fault("/usage", status=429, retry_after="7"))
    server.inject(Fault("/usage", truncate=True))
    limited = usage(client, query())
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json()["code"] == 8
    cut = usage(client, query())
    with pytest.raises(ValueError):
        json.loads(cut.content)
    assert usage(client, query()).status_code == 200
    assert server.faults == []
    assert server.requests[0].json() == query()
    assert server.requests[0].method == "POST"


# -- generated team -----------------------------------------------------------------------


def test_generated_team_is_deterministic_with_two_grok_models_and_empty_days() -> None:
    today = date(2026, 3, 18)
    a, b = generate_team(today=today, days=30, seed=4), generate_team(today=today, days=30, seed=4)
    assert a.usage == b.usage
    assert {r.model for r in a.usage} == {GROK_4, GROK_3_MINI}
    days = {r.day for r in a.usage}
    assert max(days) == today and min(days) == today - timedelta(days=29)
    assert len(days) == 28  # two empty days
    assert truth_costs(a, today, today + timedelta(days=1))[(GROK_4, "tokens")] > 0
    assert ("", "web_search") in truth_costs(a, today - timedelta(days=29), today)
    assert truth_prepaid_remaining(a, today) > 0 and a.spending_limit_cents
    assert generate_team(today=today, days=30, seed=5).usage != a.usage
    with pytest.raises(ValueError):
        generate_team(today=today, days=0)
