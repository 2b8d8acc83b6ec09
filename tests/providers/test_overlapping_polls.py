"""Property: any sequence of overlapping polls stores what one poll of the whole range does."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import Secret
from exporter.demo.openai import FakeOpenAIServer, generate_org
from exporter.providers.openai import OpenAIProvider
from exporter.store import Store
from tests.conftest import TODAY, fixed_clock, make_config

RANGE_START = TODAY - timedelta(days=20)
RANGE_END = TODAY + timedelta(days=1)
SPAN = (RANGE_END - RANGE_START).days


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(generate_org(today=TODAY, days=25, seed=11), now=fixed_clock) as s:
        yield s


@pytest.fixture(scope="module")
def provider(server: FakeOpenAIServer) -> Iterator[OpenAIProvider]:
    config = make_config(Path("/unused"), server.base_url).providers[0]
    with httpx.Client(timeout=5) as client:
        yield OpenAIProvider(config, client, Secret(server.org.admin_key), page_size=4)


def totals(store: Store) -> dict[tuple[object, ...], object]:
    out: dict[tuple[object, ...], object] = defaultdict(Decimal)
    for c in store.costs_between(RANGE_START, RANGE_END):
        out[("cost", c.day, c.project, c.model, c.cost_type)] += c.amount  # type: ignore[operator]
    tokens: dict[tuple[object, ...], int] = defaultdict(int)
    for u in store.usage_between(RANGE_START, RANGE_END):
        for t in ("input", "output", "cache_read", "cache_write"):
            tokens[("tok", u.day, u.project, u.model, t)] += u.tokens(t)
        tokens[("req", u.day, u.project, u.model)] += u.requests
    return {**out, **tokens}


@pytest.fixture(scope="module")
def whole(provider: OpenAIProvider, tmp_path_factory: pytest.TempPathFactory) -> dict:
    store = Store(tmp_path_factory.mktemp("whole") / "h.db")
    store.replace_window("openai", "main", provider.fetch(RANGE_START, RANGE_END))
    result = totals(store)
    store.close()
    return result


windows = st.lists(
    st.tuples(st.integers(0, SPAN - 1), st.integers(1, SPAN)).map(
        lambda t: (min(t), max(t[0] + 1, t[1]))
    ),
    min_size=1,
    max_size=5,
)


def _gaps(covered: set[date]) -> list[tuple[date, date]]:
    """Maximal runs of days in the range that no poll has read yet."""
    gaps: list[tuple[date, date]] = []
    day = RANGE_START
    while day < RANGE_END:
        if day in covered:
            day += timedelta(days=1)
            continue
        start = day
        while day < RANGE_END and day not in covered:
            day += timedelta(days=1)
        gaps.append((start, day))
    return gaps


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(windows=windows)
def test_overlapping_polls_equal_one_whole_poll(
    provider: OpenAIProvider, whole: dict, tmp_path_factory: pytest.TempPathFactory, windows
) -> None:
    store = Store(tmp_path_factory.mktemp("seq") / "h.db")
    covered: set[date] = set()
    for a, b in windows:
        start, end = RANGE_START + timedelta(days=a), RANGE_START + timedelta(days=b)
        store.replace_window("openai", "main", provider.fetch(start, end))
        covered.update(start + timedelta(days=i) for i in range((end - start).days))
    # after any overlapping sequence: exactly the covered days, each counted once
    assert totals(store) == {k: v for k, v in whole.items() if k[1] in covered}
    # reading only the days still missing completes the range: equal to one whole poll
    for start, end in _gaps(covered):
        store.replace_window("openai", "main", provider.fetch(start, end))
    got = totals(store)
    store.close()
    assert got == whole
