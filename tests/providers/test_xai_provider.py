"""The xAI provider against a fake xAI team speaking real HTTP on loopback."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.analytics.windows import windows_for
from exporter.app import App, build
from exporter.config import Config, ConfigErrors, Secret, validate
from exporter.demo.http import Fault
from exporter.demo.xai import FakeXaiServer, FakeXaiTeam, XaiUsageRow, generate_team
from exporter.providers.errors import AuthError, ParseError
from exporter.providers.http import RetryPolicy
from exporter.providers.xai import UnitType, XAIProvider, classify_unit, split_description
from exporter.records import FetchResult
from tests.conftest import ALL_FAMILIES, NOW, TODAY, fixed_clock
from tests.helpers import opened, parse_exposition
from tests.oracles.xai import (
    truth_costs,
    truth_period_usd,
    truth_prepaid_remaining,
    truth_preview_total,
    truth_tokens,
)

KEY_ENV = "AICOST_TEST_XAI_KEY"
START, END = TODAY - timedelta(days=45), TODAY + timedelta(days=1)
MONTH_START = TODAY.replace(day=1)
TEAM = {"provider": "xai", "account": "grok", "currency": "USD"}


@pytest.fixture(scope="module")
def base_team() -> FakeXaiTeam:
    return generate_team(today=TODAY, days=60, seed=11)


@pytest.fixture
def team(base_team: FakeXaiTeam) -> FakeXaiTeam:
    """A fresh copy per test, so tests may change it."""
    return replace(base_team, usage=list(base_team.usage))


@pytest.fixture
def fake(team: FakeXaiTeam) -> Iterator[FakeXaiServer]:
    with FakeXaiServer(team, now=fixed_clock) as server:
        yield server


def xai_config(
    tmp_path: Path, fake: FakeXaiServer, storage: str | None = None, **provider: Any
) -> Config:
    block = {
        "type": "xai",
        "name": "grok",
        "base_url": fake.base_url,
        "api_key_env": KEY_ENV,
        "team_id": fake.team.team_id,
        **provider,
    }
    return validate(
        {
            "storage": {"path": storage or str(tmp_path / "history.db")},
            "poll": {"backfill_days": 45, "timeout": "1s", "max_attempts": 3,
                     "backoff_initial": "10ms", "backoff_max": "50ms"},
            "providers": [block],
            "metrics": ALL_FAMILIES,  # every per-stream window is checked
        }
    )  # fmt: skip


def service(
    tmp_path: Path, fake: FakeXaiServer, storage: str | None = None, **provider: Any
) -> App:
    env = {KEY_ENV: fake.team.management_key}
    svc = build(xai_config(tmp_path, fake, storage, **provider), clock=fixed_clock, env=env)
    opened(svc)
    return svc


def provider(fake: FakeXaiServer, key: str | None = None, **kw: Any) -> XAIProvider:
    config = xai_config(Path("/nonexistent"), fake).providers[0]
    client = httpx.Client(timeout=2)
    opened(client)
    retry = RetryPolicy(max_attempts=2, backoff_initial=0.01, backoff_max=0.01)
    return XAIProvider(config, client, Secret(key or fake.team.management_key), retry=retry, **kw)


def samples(svc: App) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse_exposition(svc.rendered.text.decode())


def gauge(svc: App, name: str, **labels: str) -> float | None:
    return samples(svc).get((name, frozenset(labels.items())))


def usage_bodies(fake: FakeXaiServer) -> list[dict[str, Any]]:
    return [r.json()["analyticsRequest"] for r in fake.requests if r.path.endswith("/usage")]


def records(result: FetchResult) -> tuple[list[str], list[str]]:
    return sorted(map(repr, result.costs)), sorted(map(repr, result.usage))


# -- config ------------------------------------------------------------------------------


def test_config_needs_a_team_id_and_defaults_to_the_management_api() -> None:
    config = validate({"providers": [{"type": "xai", "api_key_env": "K", "team_id": "t-1"}]})
    block = config.providers[0]
    assert (block.account, block.url, block.team_id) == (
        "xai",
        "https://management-api.x.ai",
        "t-1",
    )
    with pytest.raises(ConfigErrors) as info:
        validate({"providers": [{"type": "xai", "api_key_env": "K", "team": "t-1"},
                                {"type": "xai", "name": "b", "api_key_env": "K",
                                 "team_id": "../../prepaid/top-up"}]})  # fmt: skip
    assert info.value.errors == [
        "providers[0].team_id: Field required",
        "providers[0].team: unknown key",
        "providers[1].team_id: must be the xAI team id (letters, digits, '-' and '_'), "
        "as shown in the xAI Console team settings",
    ]


# -- unit types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Prompt", ("tokens", "input", True)),
        ("Prompt image", ("tokens", "input", True)),
        ("Cached prompt", ("tokens", "cache_read", True)),
        ("Completion", ("tokens", "output", True)),
        ("Reasoning", ("tokens", "output", True)),
        ("Images", ("tokens", "", True)),
        ("Live search sources", ("web_search", "", False)),
        ("Code execution calls", ("code_execution", "", False)),
    ],
)  # fmt: skip
def test_unit_types_map_to_cost_and_token_types(
    label: str, expected: tuple[str, str, bool]
) -> None:
    unit = classify_unit(label)
    assert unit is not None and (unit.cost_type, unit.token_type, unit.has_model) == expected
    assert classify_unit("Storage GB-hours") is None


# -- truth -------------------------------------------------------------------------------


def test_every_window_equals_the_fake_teams_truth_per_model_and_day(
    fake: FakeXaiServer, tmp_path: Path, storage_path: str
) -> None:
    svc = service(tmp_path, fake, storage_path)  # SQLite and PostgreSQL
    assert svc.poll_once()
    got_samples = samples(svc)
    team = fake.team
    for w in windows_for(TODAY):
        want = truth_costs(team, w.start, w.end)
        got: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for c in svc.store.costs_between(w.start, w.end):
            got[(c.model, c.cost_type)] += c.amount
        assert dict(got) == want, w.name  # exact decimals
        for (model, cost_type), amount in want.items():
            labels = {**TEAM, "project": team.team_id, "model": model, "cost_type": cost_type}
            value = got_samples[(f"aicost_cost_{w.name}", frozenset(labels.items()))]
            assert value == float(amount), (w.name, labels)
        for (model, token_type), n in truth_tokens(team, w.start, w.end).items():
            labels = {"provider": "xai", "account": "grok", "project": team.team_id,
                      "model": model, "token_type": token_type}  # fmt: skip
            assert got_samples[(f"aicost_tokens_{w.name}", frozenset(labels.items()))] == n
    # day level: every (day, model, cost_type) cost equals the truth of that day
    for day in (TODAY - timedelta(days=n) for n in range(45)):
        stored: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        for c in svc.store.costs_between(day, day + timedelta(days=1)):
            stored[(c.model, c.cost_type)] += c.amount
        assert dict(stored) == truth_costs(team, day, day + timedelta(days=1)), day
    info = {"provider": "xai", "account": "grok", "project": team.team_id,
            "project_name": team.team_id, "team": "", "pool": "unassigned", "cost_owner": "",
            "environment": ""}  # fmt: skip
    assert got_samples[("aicost_project_info", frozenset(info.items()))] == 1


def test_billing_gauges_show_the_fakes_values_exactly(fake: FakeXaiServer, tmp_path: Path) -> None:
    svc = service(tmp_path, fake)
    assert svc.poll_once()
    team = fake.team
    stored = {b.kind: b for b in svc.store.billing()}
    remaining = truth_prepaid_remaining(team, TODAY)
    assert stored["prepaid_balance"].amount == remaining
    assert 0 < remaining < Decimal(team.prepaid_purchased_cents - team.prepaid_booked_cents) / 100
    assert stored["spending_limit"].amount == Decimal(team.spending_limit_cents or 0) / 100
    assert stored["invoice_preview"].amount == truth_preview_total(team, TODAY)
    assert stored["invoice_preview"].period == "2026-03"
    assert stored["prepaid_balance"].observed_at == NOW
    gap = truth_preview_total(team, TODAY) - truth_period_usd(team, TODAY)
    assert gap != 0  # the invoice rounds each line to cents; the usage API does not
    assert svc.snapshot().billing.invoice_preview_gap[("xai", "grok", "USD")] == gap
    assert gauge(svc, "aicost_prepaid_balance", **TEAM) == float(remaining)
    assert gauge(svc, "aicost_spending_limit", **TEAM) == 5000.0
    assert gauge(svc, "aicost_invoice_preview", **TEAM) == float(truth_preview_total(team, TODAY))
    assert gauge(svc, "aicost_invoice_preview_gap", **TEAM) == float(gap)


def test_requests_carry_the_analytics_body_and_the_management_bearer(
    fake: FakeXaiServer,
) -> None:
    provider(fake).fetch(START, END)
    bodies = usage_bodies(fake)
    assert [b["values"] for b in bodies] == [
        [{"name": "usd", "aggregation": "AGGREGATION_SUM"}],
        [{"name": "tokens", "aggregation": "AGGREGATION_SUM"}],
        [{"name": "usd", "aggregation": "AGGREGATION_SUM"}],
        [{"name": "tokens", "aggregation": "AGGREGATION_SUM"}],
    ]  # 46 days: a 31-day range, then 15 days
    assert bodies[0]["timeRange"] == {
        "startTime": "2026-02-01 00:00:00", "endTime": "2026-03-04 00:00:00",
        "timezone": "Etc/GMT",
    }  # fmt: skip
    assert bodies[-1]["timeRange"]["endTime"] == "2026-03-19 00:00:00"
    assert {b["timeUnit"] for b in bodies} == {"TIME_UNIT_DAY"}
    assert all(b["groupBy"] == ["model", "unit_type"] and b["filters"] == [] for b in bodies)
    auth = {r.headers["authorization"] for r in fake.requests}
    assert auth == {f"Bearer {fake.team.management_key}"}
    assert [r.method for r in fake.requests[-2:]] == ["GET", "GET"]  # preview, ledger


# -- ranges and partial answers ------------------------------------------------------------


def test_short_ranges_give_the_same_records(fake: FakeXaiServer) -> None:
    whole = provider(fake).fetch(START, END)
    fake.clear_requests()
    ranged = provider(fake, page_size=4).fetch(START, END)
    assert records(ranged) == records(whole)
    assert len(usage_bodies(fake)) == 2 * 12  # 46 days in ranges of 4


def test_a_capped_answer_is_asked_again_in_halves(fake: FakeXaiServer, caplog) -> None:
    whole = provider(fake).fetch(START, END)
    with fake.lock:
        fake.team.max_points = 80  # 9 series x 31 days is over the cap; a few days are not
    fake.clear_requests()
    with caplog.at_level(logging.WARNING):
        halved = provider(fake).fetch(START, END)
    assert records(halved) == records(whole)
    assert "limitReached" in caplog.text
    assert len(usage_bodies(fake)) > 4


def test_a_capped_single_day_fails_the_poll_as_a_parse_error_and_keeps_stored_data(
    fake: FakeXaiServer, tmp_path: Path, caplog
) -> None:
    svc = service(tmp_path, fake)
    assert svc.poll_once()
    before = svc.store.costs_between(START, END)
    with fake.lock:
        fake.team.max_points = 3
    with caplog.at_level(logging.ERROR):
        assert not svc.poll_once()
    assert "even for a single day" in caplog.text
    assert svc.store.costs_between(START, END) == before
    assert gauge(svc, "aicost_poll_errors_total", provider="xai", account="grok",
                 reason="parse") == 1  # fmt: skip
    assert gauge(svc, "aicost_up", provider="xai", account="grok") == 0


def test_empty_days_store_no_rows(fake: FakeXaiServer) -> None:
    result = provider(fake).fetch(START, END)
    quiet = [d for d in (START + timedelta(days=n) for n in range(46))
             if not truth_costs(fake.team, d, d + timedelta(days=1))]  # fmt: skip
    assert quiet  # the generator leaves one day a fortnight empty
    days_with_rows = {c.day for c in result.costs} | {u.day for u in result.usage}
    assert not days_with_rows & set(quiet)
    assert all(c.amount != 0 for c in result.costs)


@pytest.mark.parametrize(
    "change",
    [{"encoding": "string"}, {"encoding": "val"}, {"omit_defaults": True}],
)
def test_value_encodings_give_the_same_records(fake: FakeXaiServer, change: dict[str, Any]) -> None:
    plain = provider(fake).fetch(START, END)
    with fake.lock:
        fake.team = replace(fake.team, **change)
    assert records(provider(fake).fetch(START, END)) == records(plain)


def test_revisions_up_and_down_are_mirrored(
    fake: FakeXaiServer, tmp_path: Path, storage_path: str
) -> None:
    svc = service(tmp_path, fake, storage_path)  # SQLite and PostgreSQL
    assert svc.poll_once()
    with fake.lock:
        fake.team.scale_day(TODAY, Decimal("1.5"))
        fake.team.scale_day(TODAY - timedelta(days=1), Decimal("0.5"))
    assert svc.poll_once() and svc.poll_once()
    got = sum((c.amount for c in svc.store.costs_between(START, END)), Decimal(0))
    want = sum(truth_costs(fake.team, START, END).values(), Decimal(0))
    assert got == want


# -- optional billing endpoints ------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 400])
def test_a_team_without_postpaid_or_prepaid_billing_polls_fine_without_billing_metrics(
    fake: FakeXaiServer, tmp_path: Path, status: int, caplog
) -> None:
    with fake.lock:
        fake.team = replace(fake.team, postpaid=False, prepaid=False, missing_status=status)
    svc = service(tmp_path, fake)
    with caplog.at_level(logging.INFO):
        assert svc.poll_once()
    assert "not available for this team" in caplog.text
    names = {name for name, _ in samples(svc)}
    assert not names & {"aicost_prepaid_balance", "aicost_spending_limit",
                        "aicost_invoice_preview", "aicost_invoice_preview_gap"}  # fmt: skip
    assert gauge(svc, "aicost_up", provider="xai", account="grok") == 1
    billing_calls = [r for r in fake.requests if not r.path.endswith("/usage")]
    assert len(billing_calls) == 3  # preview, spending limits, ledger: each asked once


def test_values_a_team_stops_reporting_disappear_on_the_next_poll(
    fake: FakeXaiServer, tmp_path: Path
) -> None:
    svc = service(tmp_path, fake)
    assert svc.poll_once()
    assert gauge(svc, "aicost_prepaid_balance", **TEAM) == float(
        truth_prepaid_remaining(fake.team, TODAY)
    )
    with fake.lock:
        fake.team = replace(fake.team, prepaid=False)
    assert svc.poll_once()
    assert gauge(svc, "aicost_prepaid_balance", **TEAM) is None
    assert gauge(svc, "aicost_spending_limit", **TEAM) == 5000.0


def test_billing_of_an_account_no_longer_configured_is_not_exposed(
    fake: FakeXaiServer, tmp_path: Path
) -> None:
    svc = service(tmp_path, fake)
    assert svc.poll_once()
    svc.stop()
    renamed = service(tmp_path, fake, name="grok-2")  # same history, other account
    names = {name for name, _ in samples(renamed)}
    assert "aicost_cost_30d" in names and "aicost_prepaid_balance" not in names


def test_the_spending_limit_falls_back_to_the_spending_limits_endpoint(
    fake: FakeXaiServer,
) -> None:
    preview = json.dumps({"billingCycle": {"year": 2026, "month": 3},
                          "coreInvoice": {"lines": [{"amount": {"val": "1234"}}]}})  # fmt: skip
    fake.inject(Fault("/invoice/preview", body=preview.encode()))
    billing = {b.kind: b for b in provider(fake).fetch(START, END).billing}
    assert billing["spending_limit"].amount == Decimal("5000")
    assert billing["invoice_preview"].amount == Decimal("12.34")
    assert any(r.path.endswith("/spending-limits") for r in fake.requests)


def test_a_malformed_optional_field_is_left_out_with_a_warning_not_a_zero(
    fake: FakeXaiServer, caplog
) -> None:
    fake.inject(Fault("/prepaid/balance", body=b'{"total": {"val": "lots"}}'))
    fake.inject(Fault("/invoice/preview", body=b'{"coreInvoice": {"lines": [{"amount": null}]}}'))
    with caplog.at_level(logging.WARNING):
        result = provider(fake).fetch(START, END)
    kinds = {b.kind for b in result.billing}
    assert kinds == {"spending_limit"}  # from /postpaid/spending-limits
    assert "prepaid/balance.total.val" in caplog.text and "left out" in caplog.text
    assert "lines[0].amount is missing" in caplog.text
    assert "billingCycle is missing" in caplog.text


# -- tolerant parsing and failures ---------------------------------------------------------


def test_a_refused_token_query_keeps_costs_and_leaves_tokens_out(
    fake: FakeXaiServer, caplog
) -> None:
    with fake.lock:
        fake.team.tokens_supported = False
    result = provider(fake).fetch(START, END)
    assert result.usage == [] and result.costs
    assert "refused the token query" in result.degraded["tokens"]  # the poller logs it once
    assert len([b for b in usage_bodies(fake) if b["values"][0]["name"] == "tokens"]) == 1


def test_an_unknown_unit_type_keeps_its_money_as_other_and_is_logged_once(
    fake: FakeXaiServer, caplog
) -> None:
    day = TODAY - timedelta(days=2)
    rows = [XaiUsageRow(day, "grok-4-0709", "Batch surcharge", Decimal("0.42"), 7000,
                        cost_type="other"),
            XaiUsageRow(day - timedelta(days=1), "grok-4-0709", "Batch surcharge",
                        Decimal("0.08"), 1000, cost_type="other")]  # fmt: skip
    with fake.lock:
        fake.team.usage = [*fake.team.usage, *rows]
    with caplog.at_level(logging.WARNING):
        result = provider(fake).fetch(START, END)
    other = [c for c in result.costs if c.cost_type == "other"]
    assert sorted(c.amount for c in other) == [Decimal("0.08"), Decimal("0.42")]
    assert {c.model for c in other} == {"grok-4-0709"}
    assert caplog.text.count("unknown billing unit type 'Batch surcharge'") == 1
    tokens = sum(u.input_tokens + u.output_tokens + u.cache_read_tokens for u in result.usage)
    assert tokens == sum(truth_tokens(fake.team, START, END).values())


def test_a_point_without_a_value_is_skipped_with_a_warning(fake: FakeXaiServer, caplog) -> None:
    body = {"timeSeries": [{"groupLabels": ["grok-4-0709", "Prompt"], "dataPoints": [
        {"timestamp": "2026-03-10T00:00:00Z", "values": [None]},
        {"timestamp": "2026-03-11T00:00:00Z", "values": ["1.5"]}]}]}  # fmt: skip
    fake.inject(Fault("/usage", body=json.dumps(body).encode()))
    with caplog.at_level(logging.WARNING):
        result = provider(fake).fetch(TODAY - timedelta(days=10), END)
    first = [c for c in result.costs if c.line_item == "grok-4-0709, Prompt"]
    assert {(c.day.day, c.amount) for c in first} == {(11, Decimal("1.5"))}
    assert "no value; the point is skipped" in caplog.text


def point_page(**point: Any) -> bytes:
    series = {
        "groupLabels": ["grok-4-0709", "Prompt"],
        "dataPoints": [{"timestamp": "2026-02-10T00:00:00Z", "values": [1]} | point],
    }
    return json.dumps({"timeSeries": [series]}).encode()  # fmt: skip


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault("/usage", truncate=True), "not valid JSON"),
        (Fault("/usage", body=b'["not", "an", "object"]'), "expected a JSON object"),
        (Fault("/usage", body=b'{"timeSeries": {"a": 1}}'), "timeSeries: expected list"),
        (Fault("/usage", body=b'{"limitReached": "maybe"}'), "limitReached: expected bool"),
        (Fault("/usage", body=b'{"timeSeries": [{"groupLabels": ["grok-4"]}]}'),
         "groupLabels: expected 2 strings"),
        (Fault("/usage", body=point_page(timestamp="2026-02-10T07:00:00Z")),
         "not a UTC midnight"),
        (Fault("/usage", body=point_page(timestamp="yesterday")), "is not a timestamp"),
        (Fault("/usage", body=point_page(timestamp="2025-01-01T00:00:00Z")),
         "outside the requested range"),
        (Fault("/usage", body=point_page(values=["1,5"])), "is not a number"),
        (Fault("/usage", body=point_page(values=[True])), "expected a number"),
        (Fault("/prepaid/balance", body=b"[]"), "prepaid/balance: expected a JSON object"),
    ],
)  # fmt: skip
def test_malformed_pages_raise_parse_errors(
    fake: FakeXaiServer, fault: Fault, message: str
) -> None:
    fake.inject(fault)
    with pytest.raises(ParseError, match=message):
        provider(fake).fetch(START, END)


def test_a_malformed_token_count_is_a_parse_error(fake: FakeXaiServer) -> None:
    fake.inject(Fault("/usage", body=b'{"timeSeries": []}'))  # the cost query of range 1
    fake.inject(Fault("/usage", body=point_page(values=["12.5"])))
    with pytest.raises(ParseError, match="expected a non-negative integer"):
        provider(fake).fetch(START, END)


def test_a_wrong_management_key_is_an_auth_error_without_the_key(fake: FakeXaiServer) -> None:
    with pytest.raises(AuthError) as info:
        provider(fake, key="wrong-key").fetch(START, END)
    assert "HTTP 401" in str(info.value) and "management key" in str(info.value)
    assert fake.team.management_key not in str(info.value)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault("/usage", status=500, times=10), "upstream"),
        (Fault("/usage", delay=1.5, times=10), "timeout"),
        (Fault("/invoice/preview", truncate=True), "parse"),
        (Fault("/usage", status=401), "auth"),
        (Fault("/usage", status=429, retry_after="3600"), "rate_limit"),
        (Fault("/prepaid/balance", status=503, times=10), "upstream"),
    ],
)
def test_a_failed_poll_changes_nothing_stored_and_is_counted(
    fake: FakeXaiServer, tmp_path: Path, fault: Fault, reason: str, caplog
) -> None:
    svc = service(tmp_path, fake)
    assert svc.poll_once()
    with fake.lock:
        fake.team.scale_day(TODAY, Decimal("2"))
    before = (svc.store.costs_between(START, END), svc.store.billing())
    fake.inject(fault)
    with caplog.at_level(logging.ERROR):
        assert not svc.poll_once()
    assert (svc.store.costs_between(START, END), svc.store.billing()) == before
    health = {"provider": "xai", "account": "grok"}
    assert gauge(svc, "aicost_poll_errors_total", **health, reason=reason) == 1
    assert f"reason={reason}" in caplog.text and fake.team.management_key not in caplog.text
    fake.faults.clear()
    assert svc.poll_once()
    assert svc.store.costs_between(START, END) != before[0]


def test_429_honours_retry_after_and_5xx_retries_within_one_poll(
    fake: FakeXaiServer, tmp_path: Path
) -> None:
    svc = service(tmp_path, fake)
    fake.inject(Fault("/usage", status=429, retry_after="0"))
    fake.inject(Fault("/invoice/preview", status=502))
    assert svc.poll_once()
    health = {"provider": "xai", "account": "grok"}
    assert gauge(svc, "aicost_api_requests_total", **health, endpoint="usage/cost",
                 code="429") == 1  # fmt: skip
    assert gauge(svc, "aicost_api_requests_total", **health, endpoint="invoice/preview",
                 code="502") == 1  # fmt: skip
    assert gauge(svc, "aicost_prepaid_balance", **TEAM) == float(
        truth_prepaid_remaining(fake.team, TODAY)
    )


def test_an_unknown_team_fails_the_poll_without_retrying(
    fake: FakeXaiServer, tmp_path: Path
) -> None:
    svc = service(tmp_path, fake, team_id="team-nobody")
    assert not svc.poll_once()
    assert gauge(svc, "aicost_poll_errors_total", provider="xai", account="grok",
                 reason="upstream") == 1  # fmt: skip
    assert len(fake.requests) == 1  # a 404 is not retried


# -- a refused unconfirmed query dimension: degrade, never black out ------------------------
# The fake team answers a 400 (gRPC-gateway INVALID_ARGUMENT) for any usage query grouped by
# a refused dimension. Costs must stay exact per model from the confirmed `description`
# grouping, tokens become unknown for that poll, the fallback is logged once and counted,
# and the finer query is asked again on the next poll.

ACCOUNT = {"provider": "xai", "account": "grok"}


def per_model(costs: list[tuple[str, str, Decimal]]) -> dict[tuple[str, str], Decimal]:
    out: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for model, cost_type, amount in costs:
        out[(model, cost_type)] += amount
    return {k: v for k, v in out.items() if v}


def degraded(svc: App, reason: str) -> float | None:
    labels = frozenset({**ACCOUNT, "reason": reason}.items())
    return samples(svc).get(("aicost_poll_degraded_total", labels))


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("grok-4-0709 Cached prompt", ("grok-4-0709", "tokens")),
        ("grok-code-fast-1 Prompt", ("grok-code-fast-1", "tokens")),
        ("grok-4-0709 Live search sources", ("", "web_search")),
        ("grok-3-mini", ("grok-3-mini", "tokens")),
        ("File Storage", ("", "other")),
    ],
)
def test_descriptions_split_into_model_and_cost_type(label: str, expected: tuple[str, str]) -> None:
    model, unit = split_description(label)
    assert (model, unit.cost_type) == expected and isinstance(unit, UnitType)
    assert unit.token_type == ""  # only the finer query knows the token type


def test_a_refused_unit_type_grouping_keeps_costs_exact_per_model(fake: FakeXaiServer) -> None:
    with fake.lock:
        fake.team.refused_group_by = ("unit_type",)
    result = provider(fake).fetch(START, END)
    got = per_model([(c.model, c.cost_type, c.amount) for c in result.costs])
    assert got == {k: v for k, v in truth_costs(fake.team, START, END).items() if v}
    assert result.usage == []  # tokens by unit type are unknown this poll
    assert set(result.degraded) == {"unit_type"}
    groupings = [tuple(b["groupBy"]) for b in usage_bodies(fake)]
    # the finer query once, then only the confirmed one (no token query without unit types)
    assert groupings[0] == ("model", "unit_type")
    assert set(groupings[1:]) == {("description",)}


def test_the_degraded_poll_succeeds_is_counted_logged_once_and_recovers(
    tmp_path: Path, fake: FakeXaiServer, caplog: pytest.LogCaptureFixture
) -> None:
    with fake.lock:
        fake.team.refused_group_by = ("unit_type",)
    svc = service(tmp_path, fake)
    assert degraded(svc, "unit_type") == 0  # known in advance: exported as 0
    with caplog.at_level(logging.DEBUG, logger="exporter.poller"):
        assert svc.poll_once()
        assert svc.poll_once()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and "degraded poll (reason=unit_type)" in r.getMessage()]  # fmt: skip
    assert len(warnings) == 1
    assert degraded(svc, "unit_type") == 2
    assert samples(svc)[("aicost_up", frozenset(ACCOUNT.items()))] == 1
    stored = per_model([(c.model, c.cost_type, c.amount) for c in svc.store.costs_between(
        START, END)])  # fmt: skip
    assert stored == {k: v for k, v in truth_costs(fake.team, START, END).items() if v}
    assert svc.store.usage_between(START, END) == []
    # xAI accepts the grouping again: the next poll is the fine one, tokens come back
    with fake.lock:
        fake.team.refused_group_by = ()
    fake.clear_requests()
    assert svc.poll_once()
    assert ("model", "unit_type") in [tuple(b["groupBy"]) for b in usage_bodies(fake)]
    assert degraded(svc, "unit_type") == 2
    assert any(u.input_tokens for u in svc.store.usage_between(START, END))
