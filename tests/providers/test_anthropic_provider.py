"""The Anthropic provider against a fake Anthropic org speaking real HTTP on loopback."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.analytics.windows import windows_for
from exporter.app import App, build
from exporter.config import Config, Secret
from exporter.demo.anthropic import (
    CostRow,
    FakeAnthropicOrg,
    FakeAnthropicServer,
    UsageRow,
    generate_anthropic_org,
)
from exporter.demo.http import Fault
from exporter.providers.anthropic import AnthropicProvider, token_type_of
from exporter.providers.errors import AuthError, ParseError, UpstreamError
from exporter.providers.http import RetryPolicy
from tests.conftest import NOW, TODAY, fixed_clock, make_config
from tests.helpers import opened, parse_exposition
from tests.oracles.anthropic import (
    truth_cache_hit_ratio,
    truth_cost_total,
    truth_costs,
    truth_tokens,
    truth_web_search_requests,
)

KEY_ENV = "AICOST_TEST_ANTHROPIC_KEY"
START, END = TODAY - timedelta(days=45), TODAY + timedelta(days=1)
DAY = TODAY - timedelta(days=2)
SONNET = "claude-sonnet-4-20250514"
HAIKU = "claude-haiku-4-5-20251001"
STREAM = {"provider": "anthropic", "account": "main"}


@pytest.fixture(scope="session")
def generated_org() -> FakeAnthropicOrg:
    return generate_anthropic_org(today=TODAY, days=60, seed=3)


@pytest.fixture
def anthropic(generated_org: FakeAnthropicOrg) -> Iterator[FakeAnthropicServer]:
    """A fake server on a fresh copy of the generated org, so tests may revise it."""
    with FakeAnthropicServer(generated_org.copy(), now=fixed_clock) as server:
        yield server


def service_config(tmp_path: Path, fake: FakeAnthropicServer, storage: str | None = None) -> Config:
    block = {"type": "anthropic", "name": "main", "base_url": fake.base_url, "api_key_env": KEY_ENV}
    extra = {"storage": {"path": storage}} if storage else {}
    return make_config(tmp_path, fake.base_url, providers=[block], **extra)


def service(tmp_path: Path, fake: FakeAnthropicServer, storage: str | None = None) -> App:
    svc = build(
        service_config(tmp_path, fake, storage),
        clock=fixed_clock,
        env={KEY_ENV: fake.org.admin_key},
    )
    opened(svc)
    return svc


def provider(
    fake: FakeAnthropicServer,
    key: str | None = None,
    retry: RetryPolicy | None = None,
    **kw: Any,
) -> AnthropicProvider:
    config = service_config(Path("/nonexistent"), fake).providers[0]
    client = httpx.Client(timeout=2)
    opened(client)
    return AnthropicProvider(
        config,
        client,
        Secret(key or fake.org.admin_key),
        retry=retry or RetryPolicy(max_attempts=2, backoff_initial=0.01, backoff_max=0.01),
        **kw,
    )


def small_fake(usage: list[UsageRow], costs: list[CostRow]) -> FakeAnthropicServer:
    return FakeAnthropicServer(FakeAnthropicOrg(usage=usage, costs=costs), now=fixed_clock)


def one_day(fake: FakeAnthropicServer) -> Any:
    return provider(fake).fetch(DAY, DAY + timedelta(days=1))


def samples(svc: App) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return parse_exposition(svc.rendered.text.decode())


def labels(**kw: str) -> frozenset[tuple[str, str]]:
    return frozenset((STREAM | kw).items())


# -- truth, end to end through the service ------------------------------------------------------


def test_every_window_equals_the_fake_orgs_truth_exactly(
    anthropic: FakeAnthropicServer, tmp_path: Path, storage_path: str
) -> None:
    svc = service(tmp_path, anthropic, storage_path)  # SQLite and PostgreSQL
    assert svc.poll_once()
    got_samples = samples(svc)
    org = anthropic.org
    for w in windows_for(TODAY):
        want = truth_costs(org, w.start, w.end)
        stored: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        for c in svc.store.costs_between(w.start, w.end):
            stored[(c.project, c.model, c.cost_type)] += c.amount
        assert dict(stored) == want, w  # exact Decimals, per workspace/model/cost type
        for (project, model, cost_type), amount in want.items():
            key = labels(project=project, model=model, cost_type=cost_type, currency="USD")
            value = Decimal(repr(got_samples[(f"aicost_cost_{w.name}", key)]))
            assert abs(value - amount) < Decimal("1e-9"), (w.name, key)
        for (project, model, token_type), n in truth_tokens(org, w.start, w.end).items():
            key = labels(project=project, model=model, token_type=token_type)
            assert got_samples[(f"aicost_tokens_{w.name}", key)] == n, (w.name, key)
    # tool costs: no model, one stream per workspace
    tools = {(p, m) for (p, m, t) in truth_costs(org, START, END) if t != "tokens"}
    assert {m for _, m in tools} == {""} and len({p for p, _ in tools}) >= 2
    # cache-hit ratio over the last 30 complete days, exactly
    thirty = next(w for w in windows_for(TODAY) if w.name == "30d")
    ratios = truth_cache_hit_ratio(org, thirty.start, thirty.end)
    published = {
        (dict(k)["project"], dict(k)["model"]): v
        for (name, k), v in got_samples.items()
        if name == "aicost_cache_hit_ratio" and dict(k)["provider"] == "anthropic"
    }
    assert published == ratios


def test_published_cost_windows_sum_to_the_fake_cost_rows_to_the_cent(
    anthropic: FakeAnthropicServer, tmp_path: Path
) -> None:
    svc = service(tmp_path, anthropic)
    assert svc.poll_once()
    got = samples(svc)
    for w in windows_for(TODAY):
        rows = [r for r in anthropic.org.costs if w.start <= r.day < w.end]
        cents = sum((r.amount for r in rows), Decimal(0))
        stored = sum((c.amount for c in svc.store.costs_between(w.start, w.end)), Decimal(0))
        assert stored == cents.scaleb(-2)  # exact
        published = sum(
            Decimal(repr(v))
            for (name, k), v in got.items()
            if name == f"aicost_cost_{w.name}" and dict(k)["provider"] == "anthropic"
        )
        assert round(published, 2) == round(cents / 100, 2), w.name


def test_default_workspace_is_project_default_with_its_name_and_workspaces_keep_theirs(
    anthropic: FakeAnthropicServer, tmp_path: Path
) -> None:
    svc = service(tmp_path, anthropic)
    assert svc.poll_once()
    got = samples(svc)
    names = {"default": "Default workspace"} | {
        w["id"]: w["name"] for w in anthropic.org.workspaces
    }
    for project, name in names.items():
        unattributed = {"team": "", "pool": "unassigned", "cost_owner": "", "environment": ""}
        info = labels(project=project, project_name=name, **unattributed)
        assert got[("aicost_project_info", info)] == 1
    assert any(dict(k).get("project") == "default" for (n, k) in got if n == "aicost_cost_today")
    keys = {k.key_id: k for k in svc.store.api_keys() if k.provider == "anthropic"}
    assert {k["id"]: k["status"] for k in anthropic.org.api_keys} == {
        kid: k.status for kid, k in keys.items()
    }
    assert {k.project for k in keys.values()} >= {"default"}
    assert all(k.last_used_at is None for k in keys.values())


def test_revisions_up_and_down_are_mirrored_without_double_counting(
    anthropic: FakeAnthropicServer, tmp_path: Path, storage_path: str
) -> None:
    svc = service(tmp_path, anthropic, storage_path)  # SQLite and PostgreSQL
    assert svc.poll_once()
    before = truth_cost_total(anthropic.org, START, END)
    with anthropic.lock:
        anthropic.org.scale_day(TODAY, Decimal("1.5"))
        anthropic.org.scale_day(TODAY - timedelta(days=1), Decimal("0.5"))
    for _ in range(3):
        assert svc.poll_once()
    after = truth_cost_total(anthropic.org, START, END)
    assert after != before
    assert sum((c.amount for c in svc.store.costs_between(START, END)), Decimal(0)) == after
    tokens = truth_tokens(anthropic.org, TODAY, TODAY + timedelta(days=1))
    for (project, model, token_type), n in tokens.items():
        key = labels(project=project, model=model, token_type=token_type)
        assert samples(svc)[("aicost_tokens_today", key)] == n


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        (Fault("cost_report", status=529, times=10), "upstream"),
        (Fault("usage_report", status=401), "auth"),
        (Fault("workspaces", truncate=True), "parse"),
        (Fault("api_keys", status=429, retry_after="3600"), "rate_limit"),
    ],
)
def test_a_failed_poll_changes_nothing_and_is_counted(
    anthropic: FakeAnthropicServer, tmp_path: Path, fault: Fault, reason: str
) -> None:
    svc = service(tmp_path, anthropic)
    assert svc.poll_once()
    before = sorted(map(repr, svc.store.costs_between(START, END)))
    with anthropic.lock:
        anthropic.org.scale_day(TODAY, Decimal(2))
    anthropic.inject(fault)
    assert not svc.poll_once()
    assert sorted(map(repr, svc.store.costs_between(START, END))) == before
    got = samples(svc)
    assert got[("aicost_poll_errors_total", labels(reason=reason))] == 1
    assert got[("aicost_up", labels())] == 0
    anthropic.faults.clear()
    assert svc.poll_once()
    assert sorted(map(repr, svc.store.costs_between(START, END))) != before


# -- mapping ------------------------------------------------------------------------------------


def test_tokens_map_to_disjoint_types_and_web_searches_get_their_own_row() -> None:
    usage = [
        UsageRow(DAY, "wrkspc_x", SONNET, "apikey_1", uncached_input_tokens=1000,
                 cache_creation_5m_input_tokens=100, cache_creation_1h_input_tokens=20,
                 cache_read_input_tokens=400, output_tokens=300, web_search_requests=7),
        UsageRow(DAY, "wrkspc_x", HAIKU, "apikey_1", service_tier="batch",
                 uncached_input_tokens=50, output_tokens=5),
    ]  # fmt: skip
    with small_fake(usage, []) as fake:
        result = one_day(fake)
    rows = {(u.model, u.source): u for u in result.usage}
    assert set(rows) == {(SONNET, "messages"), (SONNET, "server_tool_use"), (HAIKU, "messages")}
    sonnet = rows[(SONNET, "messages")]
    assert [sonnet.tokens(t) for t in ("input", "output", "cache_read", "cache_write")] == [
        1000,
        300,
        400,
        120,
    ]
    assert (sonnet.requests, sonnet.project, sonnet.api_key) == (0, "wrkspc_x", "apikey_1")
    assert (sonnet.service_tier, sonnet.batch) == ("standard", "false")
    search = rows[(SONNET, "server_tool_use")]
    assert (search.unit, search.units, search.tokens("input"), search.requests) == (
        "web_search_requests",
        7,
        0,
        0,
    )
    assert (search.project, search.api_key) == ("wrkspc_x", "apikey_1")
    assert (rows[(HAIKU, "messages")].batch, rows[(HAIKU, "messages")].service_tier) == (
        "true",
        "batch",
    )


def test_default_workspace_and_console_usage_are_kept() -> None:
    usage = [
        UsageRow(DAY, None, SONNET, None, uncached_input_tokens=70, output_tokens=30),
        UsageRow(DAY, None, SONNET, "apikey_1", uncached_input_tokens=5),
    ]
    costs = [CostRow(DAY, None, "Claude Sonnet 4 Usage - Input Tokens", Decimal("0.021"),
                     model=SONNET, token_type="uncached_input_tokens")]  # fmt: skip
    with small_fake(usage, costs) as fake:
        result = one_day(fake)
    assert sorted((u.project, u.api_key, u.input_tokens) for u in result.usage) == [
        ("default", "apikey_1", 5),
        ("default", "console", 70),
    ]
    (cost,) = result.costs
    assert (cost.project, cost.model, cost.amount) == ("default", SONNET, Decimal("0.00021"))
    assert result.projects[0].project == "default"
    assert result.projects[0].name == "Default workspace"


def test_cent_strings_become_exact_dollars() -> None:
    amounts = ["123.78912", "0.00001", "250.00", "99999999999.123456789", "7"]
    costs = [
        CostRow(DAY, f"wrkspc_{i}", "Claude Sonnet 4 Usage - Output Tokens", Decimal(a),
                model=SONNET, token_type="output_tokens")
        for i, a in enumerate(amounts)
    ]  # fmt: skip
    with small_fake([], costs) as fake:
        result = one_day(fake)
    got = {c.project: c.amount for c in result.costs}
    assert [got[f"wrkspc_{i}"] for i in range(len(amounts))] == [
        Decimal("1.2378912"),
        Decimal("0.0000001"),
        Decimal("2.5"),
        Decimal("999999999.99123456789"),
        Decimal("0.07"),
    ]
    assert str(got["wrkspc_0"]) == "1.2378912"  # moved the point, no float on the way
    assert {c.currency for c in result.costs} == {"USD"}


def test_cost_rows_keep_type_description_tier_and_map_token_types() -> None:
    def line(description: str, cents: str, token_type: str | None, **kw: Any) -> CostRow:
        return CostRow(DAY, "wrkspc_x", description, Decimal(cents), model=SONNET,
                       token_type=token_type, service_tier="standard", **kw)  # fmt: skip

    costs = [
        line("Claude Sonnet 4 Usage - Input Tokens", "1", "uncached_input_tokens"),
        line("Claude Sonnet 4 Usage - Output Tokens", "2", "output_tokens"),
        line("Claude Sonnet 4 Usage - Cache Read", "3", "cache_read_input_tokens"),
        line("Claude Sonnet 4 Usage - Cache Write (5m)", "4",
             "cache_creation.ephemeral_5m_input_tokens"),
        line("Claude Sonnet 4 Usage - Cache Write (1h)", "5",
             "cache_creation.ephemeral_1h_input_tokens"),
        line("Claude Sonnet 4 Usage - Output Tokens", "6", "output_tokens",
             context_window="200k-1M"),
        CostRow(DAY, "wrkspc_x", "Claude Sonnet 4 Usage - Output Tokens", Decimal("8"),
                model=SONNET, token_type="output_tokens", service_tier="batch"),
    ]  # fmt: skip
    with small_fake([], costs) as fake:
        result = one_day(fake)
    got = {(c.line_item, c.service_tier): c for c in result.costs}
    assert {k[0]: v.token_type for k, v in got.items()} == {
        "Claude Sonnet 4 Usage - Input Tokens": "input",
        "Claude Sonnet 4 Usage - Output Tokens": "output",
        "Claude Sonnet 4 Usage - Cache Read": "cache_read",
        "Claude Sonnet 4 Usage - Cache Write (5m)": "cache_write",
        "Claude Sonnet 4 Usage - Cache Write (1h)": "cache_write",
    }
    # two context windows of one description and tier are one row; the batch tier its own
    assert got[("Claude Sonnet 4 Usage - Output Tokens", "standard")].amount == Decimal("0.08")
    assert got[("Claude Sonnet 4 Usage - Output Tokens", "batch")].amount == Decimal("0.08")
    assert {(c.cost_type, c.model, c.attribution) for c in result.costs} == {
        ("tokens", SONNET, "line_item")
    }


def test_tool_costs_have_no_model_and_stay_per_workspace() -> None:
    costs = [
        CostRow(DAY, None, "Web Search Usage", Decimal("250"), "web_search"),
        CostRow(DAY, "wrkspc_x", "Web Search Usage", Decimal("12.5"), "web_search"),
        CostRow(DAY, "wrkspc_x", "Code Execution Usage", Decimal("0.35"), "code_execution"),
    ]
    with small_fake([], costs) as fake:
        result = one_day(fake)
    assert sorted((c.project, c.cost_type, c.model, c.amount) for c in result.costs) == [
        ("default", "web_search", "", Decimal("2.5")),
        ("wrkspc_x", "code_execution", "", Decimal("0.0035")),
        ("wrkspc_x", "web_search", "", Decimal("0.125")),
    ]
    assert {c.attribution for c in result.costs} == {"unattributed"}


def test_session_usage_is_kept_and_unknown_cost_types_become_other_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    costs = [
        CostRow(DAY, None, "Session Usage", Decimal("40"), "session_usage"),
        CostRow(DAY, None, "Teleportation Usage", Decimal("1"), "teleportation"),
        CostRow(DAY, "wrkspc_x", "Teleportation Usage", Decimal("2"), "teleportation"),
    ]
    with small_fake([], costs) as fake, caplog.at_level(logging.WARNING):
        result = one_day(fake)
    assert sorted((c.project, c.cost_type, c.line_item, c.amount) for c in result.costs) == [
        ("default", "other", "Teleportation Usage", Decimal("0.01")),
        ("default", "session_usage", "Session Usage", Decimal("0.4")),
        ("wrkspc_x", "other", "Teleportation Usage", Decimal("0.02")),
    ]
    warnings = [r for r in caplog.records if "teleportation" in r.getMessage()]
    assert len(warnings) == 1 and 'cost_type="other"' in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("wire", "ours"),
    [
        ("uncached_input_tokens", "input"),
        ("output_tokens", "output"),
        ("cache_read_input_tokens", "cache_read"),
        ("cache_creation.ephemeral_5m_input_tokens", "cache_write"),
        ("cache_creation.ephemeral_1h_input_tokens", "cache_write"),
        ("cache_creation.ephemeral_24h_input_tokens", "cache_write"),
        ("", ""),
        ("web_search_requests", ""),
    ],
)
def test_cost_report_token_types(wire: str, ours: str) -> None:
    assert token_type_of(wire) == ours


# -- requests, paging ---------------------------------------------------------------------------


def test_requests_carry_the_admin_key_the_version_day_aligned_times_and_bracketed_groups(
    anthropic: FakeAnthropicServer,
) -> None:
    provider(anthropic).fetch(START, END)
    assert {r.headers["x-api-key"] for r in anthropic.requests} == {anthropic.org.admin_key}
    assert {r.headers["anthropic-version"] for r in anthropic.requests} == {"2023-06-01"}
    usage = next(r for r in anthropic.requests if r.path.endswith("/usage_report/messages"))
    assert [v for k, v in usage.query if k == "group_by[]"] == [
        "model",
        "workspace_id",
        "api_key_id",
        "service_tier",
    ]
    query = dict(usage.query)
    assert (query["starting_at"], query["ending_at"]) == (
        f"{START}T00:00:00Z",
        f"{END}T00:00:00Z",
    )
    costs = next(r for r in anthropic.requests if r.path.endswith("/cost_report"))
    assert [v for k, v in costs.query if k == "group_by[]"] == ["workspace_id", "description"]
    workspaces = next(r for r in anthropic.requests if r.path.endswith("/workspaces"))
    assert ("include_archived", "true") in workspaces.query
    keys = next(r for r in anthropic.requests if r.path.endswith("/api_keys"))
    assert "status" not in dict(keys.query)  # every status


def test_small_pages_give_the_same_records(anthropic: FakeAnthropicServer) -> None:
    whole = provider(anthropic).fetch(START, END)
    anthropic.clear_requests()
    paged = provider(anthropic, page_size=2).fetch(START, END)
    for attr in ("usage", "costs", "projects", "api_keys"):
        assert sorted(map(repr, getattr(paged, attr))) == sorted(map(repr, getattr(whole, attr)))
    cost_pages = [r for r in anthropic.requests if r.path.endswith("/cost_report")]
    assert len(cost_pages) == 23  # 46 daily buckets, 2 per page
    assert sum(1 for r in cost_pages if "page" in dict(r.query)) == 22
    key_pages = [r for r in anthropic.requests if r.path.endswith("/api_keys")]
    assert len(key_pages) == 4 and sum("after_id" in dict(r.query) for r in key_pages) == 3


# -- errors -------------------------------------------------------------------------------------


def test_a_wrong_admin_key_is_an_auth_error_that_does_not_echo_the_key(
    anthropic: FakeAnthropicServer,
) -> None:
    wrong = "not-the-admin-key-1234567890"
    with pytest.raises(AuthError) as info:
        provider(anthropic, key=wrong).fetch(START, END)
    assert "HTTP 401" in str(info.value) and "invalid x-api-key" in str(info.value)
    assert wrong not in str(info.value)


def test_429_waits_for_retry_after_and_529_backs_off_then_succeeds(
    anthropic: FakeAnthropicServer,
) -> None:
    waits: list[float] = []
    retry = RetryPolicy(max_attempts=3, backoff_initial=0.5, backoff_max=0.5, sleep=waits.append)
    anthropic.inject(Fault("cost_report", status=429, retry_after="7"))
    anthropic.inject(Fault("usage_report", status=529))
    result = provider(anthropic, retry=retry).fetch(DAY, DAY + timedelta(days=1))
    assert result.costs and result.usage
    assert 7.0 in waits and len(waits) == 2 and all(w <= 7.0 for w in waits)
    codes = [r.path.rsplit("/", 1)[-1] for r in anthropic.requests]
    assert codes.count("cost_report") == 2 and codes.count("messages") == 2


def test_persistent_529_is_a_retryable_upstream_error(anthropic: FakeAnthropicServer) -> None:
    anthropic.inject(Fault("usage_report", status=529, times=5))
    with pytest.raises(UpstreamError, match="HTTP 529: Overloaded") as info:
        provider(anthropic).fetch(DAY, DAY + timedelta(days=1))
    assert info.value.retryable and info.value.status == 529


def bucket(results: str, day: date = DAY) -> bytes:
    head = f'{{"data": [{{"starting_at": "{day}T00:00:00Z", "ending_at": "x", "results": '
    return (head + results + '}], "has_more": false, "next_page": null}').encode()


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault("cost_report", truncate=True), "not valid JSON"),
        (Fault("cost_report", body=b'{"data": "oops", "has_more": false}'), "data: expected list"),
        (Fault("cost_report", body=b'{"data": [], "has_more": true, "next_page": null}'),
         "next_page is missing"),
        (Fault("cost_report", body=bucket('[{"amount": "12,5", "cost_type": "tokens"}]')),
         "amount: '12,5' is not a number"),
        (Fault("cost_report", body=bucket('[{"amount": null}]')), "amount: expected a number"),
        (Fault("cost_report", body=bucket('[{"amount": "1", "currency": "dollars"}]')),
         "currency: expected an ISO 4217 code"),
        (Fault("usage_report", body=bucket('[{"uncached_input_tokens": -3}]')),
         "non-negative integer"),
        (Fault("usage_report", body=bucket('[{"output_tokens": 3}]')),
         "uncached_input_tokens: missing"),
        (Fault("usage_report", body=bucket('[{"uncached_input_tokens": 1, "cache_creation": 5}]')),
         "cache_creation: expected an object"),
        (Fault("usage_report", body=bucket("[]", TODAY + timedelta(days=5))),
         "is outside"),
        (Fault("usage_report", body=b'{"data": [{"starting_at": "yesterday", "results": []}], '
               b'"has_more": false}'), "not an RFC 3339 timestamp"),
        (Fault("workspaces", body=b'{"data": [{"name": "no id"}], "has_more": false}'),
         "an entry has no id"),
    ],
)  # fmt: skip
def test_malformed_pages_raise_parse_errors(
    anthropic: FakeAnthropicServer, fault: Fault, message: str
) -> None:
    anthropic.inject(fault)
    with pytest.raises(ParseError, match=message):
        provider(anthropic).fetch(DAY, DAY + timedelta(days=1))


def test_the_backfill_reads_the_configured_days(
    anthropic: FakeAnthropicServer, tmp_path: Path
) -> None:
    svc = service(tmp_path, anthropic)
    assert svc.poll_once()
    first = next(r for r in anthropic.requests if r.path.endswith("/cost_report"))
    assert dict(first.query)["starting_at"] == f"{NOW.date() - timedelta(days=45)}T00:00:00Z"
    anthropic.clear_requests()
    assert svc.poll_once()
    again = next(r for r in anthropic.requests if r.path.endswith("/cost_report"))
    assert dict(again.query)["starting_at"] == f"{NOW.date() - timedelta(days=3)}T00:00:00Z"
    searches = truth_web_search_requests(anthropic.org, TODAY - timedelta(3), END)
    stored: dict[tuple[str, str], int] = defaultdict(int)
    for u in svc.store.usage_between(TODAY - timedelta(3), END):
        if u.unit == "web_search_requests":
            stored[(u.project, u.model)] += u.units
    assert dict(stored) == searches
