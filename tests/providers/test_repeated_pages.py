"""A page cursor leading back to buckets already read, under another cursor string.

The fake OpenAI org speaks real HTTP on loopback; a scripted fault answers the second
page's cursor with the first page again (its own buckets, byte for byte or revised) and a
``next_page`` that is a different string for the real second page. Read naively, every
day of the first page is counted twice.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.demo.http import PAGE_PREFIX
from exporter.demo.openai import FakeOpenAIServer, Fault
from exporter.poller import Poller
from exporter.providers.errors import ParseError
from exporter.providers.http import ApiClient
from exporter.providers.openai import USAGE_ENDPOINTS, OpenAIProvider
from exporter.records import CostRecord, FetchResult, duplicate_keys
from exporter.store import Store
from tests.conftest import KEY_ENV, TODAY, fixed_clock, make_config
from tests.helpers import opened
from tests.oracles.openai import truth_costs
from tests.providers.test_openai_provider import END, START, provider

PAGE = 7  # buckets per page, so the 46-day window takes seven pages


def _first_page(fake: FakeOpenAIServer) -> dict[str, Any]:
    """The costs page the provider reads first, asked again exactly as it asked."""
    provider(fake, page_size=PAGE).fetch(START, END)
    first = next(r for r in fake.requests if r.path.endswith("/organization/costs"))
    fake.clear_requests()
    headers = {"Authorization": f"Bearer {fake.org.admin_key}"}
    url = fake.base_url.split("/v1")[0] + first.path
    response = httpx.get(url, params=first.query, headers=headers)
    response.raise_for_status()
    page: dict[str, Any] = response.json()
    return page


def _inject(fake: FakeOpenAIServer, cursor: str, body: dict[str, Any], real: bool = True) -> None:
    """Answer the costs request for ``cursor`` with ``body``; for a ``real`` cursor the
    usage endpoints, asked first with it (same window and page size), get their answer."""
    match = f"page={cursor.rstrip('=')}"
    if real:
        fake.inject(Fault(path_contains=match, times=len(USAGE_ENDPOINTS)))  # pass-through
    fake.inject(Fault(path_contains=match, body=json.dumps(body).encode()))


def _inject_repeat(fake: FakeOpenAIServer, revise: bool = False) -> None:
    first = _first_page(fake)
    second_cursor = first["next_page"]
    # the same position under another string: the cursor alphabet ignores '.'
    repeat = dict(first, next_page=PAGE_PREFIX + "." + second_cursor[len(PAGE_PREFIX) :])
    if revise:
        repeat = json.loads(json.dumps(repeat))
        result = next(r for b in repeat["data"] for r in b["results"])
        result["amount"]["value"] = float(result["amount"]["value"]) + 1.0
    _inject(fake, second_cursor, repeat)


def _by_key(costs: list[CostRecord]) -> dict[tuple[str, str, str], Decimal]:
    got: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    for c in costs:
        got[(c.project, c.model, c.cost_type)] += c.amount
    return {k: v for k, v in got.items() if v}


def test_a_page_repeated_under_another_cursor_is_counted_once(fake: FakeOpenAIServer) -> None:
    _inject_repeat(fake)
    result = provider(fake, page_size=PAGE).fetch(START, END)
    assert fake.faults == []
    want = {k: v for k, v in truth_costs(fake.org, START, END).items() if v}
    assert _by_key(result.costs) == want
    cursors = [dict(r.query).get("page", "") for r in fake.requests if r.path.endswith("costs")]
    assert any(c.startswith(PAGE_PREFIX + ".") for c in cursors)  # the repeat was followed


def test_a_repeated_page_with_other_values_fails_the_poll_and_writes_nothing(
    tmp_path: Path, fake: FakeOpenAIServer
) -> None:
    config = make_config(tmp_path, fake.base_url)
    store = opened(Store(config.storage.path))
    poller = Poller(config, config.providers[0], store, partial(OpenAIProvider, page_size=PAGE),
                    clock=fixed_clock, env={KEY_ENV: fake.org.admin_key})  # fmt: skip
    opened(poller)
    assert poller.poll() and poller.last_backfill
    before = store.costs_between(START, END)
    store.db.conn.execute("DELETE FROM provider_state")  # the next poll backfills again
    _inject_repeat(fake, revise=True)
    assert not poller.poll()
    assert poller.health.errors["parse"] == 1 and not poller.health.up
    assert store.costs_between(START, END) == before


def test_pages_that_only_repeat_fail_instead_of_looping(fake: FakeOpenAIServer) -> None:
    first = _first_page(fake)
    tail = first["next_page"][len(PAGE_PREFIX) :]
    cursors = [PAGE_PREFIX + "." * n + tail for n in range(6)]
    for n, (cursor, following) in enumerate(pairwise(cursors)):
        _inject(fake, cursor, dict(first, next_page=following), real=n == 0)
    with pytest.raises(ParseError, match="only repeat days already read"):
        provider(fake, page_size=PAGE).fetch(START, END)


def test_one_fetch_holding_a_key_twice_is_refused_before_the_store() -> None:
    day = TODAY - timedelta(days=1)
    row = CostRecord("openai", "main", day, "p1", "gpt-4o", "tokens", Decimal("1"),
                     line_item="gpt-4o, input")  # fmt: skip
    assert duplicate_keys(FetchResult(day, TODAY, [], [row])) == []
    assert duplicate_keys(FetchResult(day, TODAY, [], [row, row])) == [
        f"cost {day} p1/gpt-4o, input/gpt-4o"
    ]


def test_list_pages_that_cycle_count_each_id_once_and_then_fail() -> None:
    """Two list pages whose cursors alternate forever (A, B, A, B, ...): each id is yielded
    once, and the walk stops as a parse error instead of reading 10,000 pages."""
    pages = {
        None: {"data": [{"id": "a1"}, {"id": "a2"}], "has_more": True, "last_id": "a2"},
        "a2": {"data": [{"id": "b1"}, {"id": "b2"}], "has_more": True, "last_id": "b2"},
        "b2": {"data": [{"id": "a1"}, {"id": "a2"}], "has_more": True, "last_id": "a2"},
    }
    calls: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("after")
        calls.append(after)
        return httpx.Response(200, json=pages[after])

    client = opened(httpx.Client(transport=httpx.MockTransport(answer)))
    api = ApiClient(client, "http://fake.invalid", {})
    seen: list[str] = []
    with pytest.raises(ParseError, match="only repeat ids already read"):
        seen.extend(item["id"] for item in api.list_items("projects", "/projects", {}))
    assert seen == ["a1", "a2", "b1", "b2"]
    assert len(calls) < 12
