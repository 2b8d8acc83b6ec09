"""The OpenAI provider against a fake OpenAI org speaking real HTTP on loopback."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from exporter.analytics.windows import windows_for
from exporter.app import build
from exporter.config import Secret
from exporter.demo.openai import CostRow, FakeOpenAIServer, Fault
from exporter.providers.errors import AuthError, ParseError
from exporter.providers.http import RetryPolicy
from exporter.providers.openai import OpenAIProvider, parse_line_item
from tests.conftest import ALL_FAMILIES, TODAY, fixed_clock, make_config
from tests.helpers import opened, parse_exposition
from tests.oracles.openai import truth_costs, truth_tokens

START, END = TODAY - timedelta(days=45), TODAY + timedelta(days=1)


def provider(fake: FakeOpenAIServer, key: str | None = None, **kw: object) -> OpenAIProvider:
    config = make_config(Path("/nonexistent"), fake.base_url).providers[0]
    client = httpx.Client(timeout=2)
    opened(client)
    return OpenAIProvider(
        config,
        client,
        Secret(key or fake.org.admin_key),
        retry=RetryPolicy(max_attempts=2, backoff_initial=0.01, backoff_max=0.01),
        **kw,  # type: ignore[arg-type]
    )


# -- line items ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gpt-4o-2024-08-06, input", ("gpt-4o-2024-08-06", "tokens", "input", "")),
        ("gpt-4o-mini, cached input", ("gpt-4o-mini", "tokens", "cache_read", "")),
        ("gpt-4o-2024-08-06, output", ("gpt-4o-2024-08-06", "tokens", "output", "")),
        ("gpt-4o audio, input", ("gpt-4o", "tokens", "input", "")),
        ("priority | gpt-4o, output, long context", ("gpt-4o", "tokens", "output", "priority")),
        ("gpt-image-1, image generation", ("gpt-image-1", "tokens", "", "")),
        ("web search tool calls", ("", "web_search", "", "")),
        ("file search tool calls", ("", "file_search", "", "")),
        ("Code Interpreter sessions", ("", "code_execution", "", "")),
        ("Vector storage", ("", "other", "", "")),
    ],
)  # fmt: skip
def test_line_items(text: str, expected: tuple[str, str, str, str]) -> None:
    assert dataclasses.astuple(parse_line_item(text)) == expected


# -- truth ---------------------------------------------------------------------------------


def test_every_window_equals_the_fake_orgs_truth_to_the_cent(
    fake: FakeOpenAIServer, tmp_path: Path, env: dict[str, str], storage_path: str
) -> None:
    config = make_config(
        tmp_path, fake.base_url, storage={"path": storage_path}, metrics=ALL_FAMILIES
    )  # SQLite and PostgreSQL
    service = opened(build(config, clock=fixed_clock, env=env))
    assert service.poll_once()
    samples = parse_exposition(service.rendered.text.decode())
    stores = service.store
    for w in windows_for(TODAY):
        want = truth_costs(fake.org, w.start, w.end)
        got: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
        for c in stores.costs_between(w.start, w.end):
            got[(c.project, c.model, c.cost_type)] += c.amount
        assert {k: v for k, v in got.items() if v} == {k: v for k, v in want.items() if v}, w
        for (project, model, cost_type), amount in want.items():
            labels = {"provider": "openai", "account": "main", "project": project,
                      "model": model, "cost_type": cost_type, "currency": "USD"}  # fmt: skip
            value = samples[(f"aicost_cost_{w.name}", frozenset(labels.items()))]
            assert round(Decimal(repr(value)), 2) == round(amount, 2), (w.name, labels)
            assert abs(Decimal(repr(value)) - amount) < Decimal("1e-9")
        tokens = truth_tokens(fake.org, w.start, w.end)
        for (project, model, token_type), n in tokens.items():
            labels = {"provider": "openai", "account": "main", "project": project,
                      "model": model, "token_type": token_type}  # fmt: skip
            assert samples[(f"aicost_tokens_{w.name}", frozenset(labels.items()))] == n
    names = {p.project: p.name for p in stores.projects()}
    for p in fake.org.projects:
        labels = {"provider": "openai", "account": "main", "project": p["id"],
                  "project_name": p["name"], "team": "", "pool": "unassigned",
                  "cost_owner": "", "environment": ""}  # fmt: skip
        assert samples[("aicost_project_info", frozenset(labels.items()))] == 1
        assert names[p["id"]] == p["name"]
    keys = {k.key_id: k for k in stores.api_keys()}
    assert sum(len(v) for v in fake.org.api_keys.values()) == len(keys)
    assert any(k.last_used_at is None for k in keys.values())
    service.stop()


def test_model_attribution_comes_from_line_items_not_a_split(fake: FakeOpenAIServer) -> None:
    result = provider(fake).fetch(START, END)
    attributions = {c.attribution for c in result.costs}
    assert attributions == {"line_item", "unattributed"}
    for c in result.costs:
        assert (c.model == "") == (c.cost_type != "tokens") or c.line_item.endswith("generation")


def test_cost_without_line_item_is_split_by_requests_exactly(fake: FakeOpenAIServer) -> None:
    day = TODAY - timedelta(days=2)
    project = fake.org.projects[0]["id"]
    with fake.lock:
        fake.org.costs = [*fake.org.costs, CostRow(day, project, None, Decimal("1.00000001"))]
    result = provider(fake).fetch(day, day + timedelta(days=1))
    split = [c for c in result.costs if c.attribution == "requests_split"]
    assert sum(c.amount for c in split) == Decimal("1.00000001")
    requests: dict[str, int] = defaultdict(int)
    for u in result.usage:
        if u.project == project:
            requests[u.model] += u.requests
    assert {c.model for c in split} == {m for m, n in requests.items() if n}
    total = sum(requests.values())
    for c in split:
        assert abs(c.amount - Decimal("1.00000001") * requests[c.model] / total) < Decimal("1e-11")


# -- paging and encodings -------------------------------------------------------------------


def test_small_pages_give_the_same_records(fake: FakeOpenAIServer) -> None:
    whole = provider(fake).fetch(START, END)
    fake.clear_requests()
    paged = provider(fake, page_size=2).fetch(START, END)
    assert sorted(map(repr, paged.usage)) == sorted(map(repr, whole.usage))
    assert sorted(map(repr, paged.costs)) == sorted(map(repr, whole.costs))
    cost_pages = [r for r in fake.requests if r.path.endswith("/organization/costs")]
    assert len(cost_pages) == 23  # 46 daily buckets, 2 per page
    assert all(("page", "") not in r.query for r in cost_pages)
    assert sum(1 for r in cost_pages if any(k == "page" for k, _ in r.query)) == 22


def test_requests_use_bracketed_arrays_day_aligned_times_and_the_admin_bearer(
    fake: FakeOpenAIServer,
) -> None:
    provider(fake).fetch(START, END)
    costs = next(r for r in fake.requests if r.path.endswith("/costs"))
    assert ("group_by[]", "project_id") in costs.query and (
        "group_by[]",
        "line_item",
    ) in costs.query
    start_time = int(dict(costs.query)["start_time"])
    assert start_time % 86400 == 0
    assert all(r.headers["authorization"] == f"Bearer {fake.org.admin_key}" for r in fake.requests)


def test_old_and_new_usage_fields_and_string_amounts_agree(fake: FakeOpenAIServer) -> None:
    new = provider(fake).fetch(START, END)
    with fake.lock:
        fake.org.new_fields = False
        fake.org.amounts_as_strings = True
    old = provider(fake).fetch(START, END)
    assert sorted(map(repr, old.costs)) == sorted(map(repr, new.costs))
    total = lambda rows, t: sum(u.tokens(t) for u in rows)  # noqa: E731
    for t in ("output", "cache_read"):
        assert total(old.usage, t) == total(new.usage, t)
    # without input_cache_write_tokens, cache writes count as uncached input
    assert total(old.usage, "input") == total(new.usage, "input") + total(new.usage, "cache_write")


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("key", "status"), [("fake-project-key-1", 403), ("wrong", 401)])
def test_non_admin_keys_raise_auth_errors_without_the_key(
    fake: FakeOpenAIServer, key: str, status: int
) -> None:
    with pytest.raises(AuthError) as info:
        provider(fake, key=key).fetch(START, END)
    assert f"HTTP {status}" in str(info.value) and key not in str(info.value)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault("/costs", truncate=True), "not valid JSON"),
        (Fault("/costs", body=b'{"object": "page", "data": "oops"}'), "data: expected list"),
        (Fault("/costs", body=b'{"data": [], "has_more": true, "next_page": null}'),
         "next_page is missing"),
        (Fault("/usage/completions", body=b'{"data": [{"start_time": 1773792000, "results": '
               b'[{"input_tokens": 5, "input_cached_tokens": 9}]}], "has_more": false}'),
         "less than cached"),
    ],
)  # fmt: skip
def test_malformed_pages_raise_parse_errors(
    fake: FakeOpenAIServer, fault: Fault, message: str
) -> None:
    fake.inject(fault)
    with pytest.raises(ParseError, match=message):
        provider(fake).fetch(START, END)
