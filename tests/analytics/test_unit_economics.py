"""Unit economics of ingested requests, from a real SQLite history: counters at each day's
rate, cost per request/outcome, prompt-version change, estimate vs bill, caps, retention
carry and the top lists."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from exporter.analytics.unit_economics import Caps, compute_app_metrics, top_spenders
from exporter.config import IngestConfig
from exporter.records import CostRecord, RequestRecord
from exporter.snapshot import (
    AppCostKey,
    AppOutcomeKey,
    AppUnitCostKey,
    EstimateKey,
    PromptVersionKey,
)
from exporter.store import Store
from exporter.store.requests import to_pico

TODAY = date(2026, 3, 18)
NOON = datetime(2026, 3, 18, 12, tzinfo=UTC)
USD_PER_TOKEN = Decimal("0.000001")  # an easy price: 1 USD per million tokens


def req(n: int, day_offset: int = 0, **fields: object) -> RequestRecord:
    base = RequestRecord(
        id=f"event:{n}",
        time=NOON - timedelta(days=day_offset),
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=1000,
        output_tokens=0,
        endpoint="/summarize",
    )
    return base._replace(**fields)


def priced(r: RequestRecord) -> tuple[RequestRecord, int | None]:
    tokens = r.input_tokens + r.output_tokens + r.cache_read_tokens + r.cache_write_tokens
    return r, None if r.model == "unknown-model" else to_pico(tokens * USD_PER_TOKEN)


def metrics(
    store: Store,
    rate: dict[date, Decimal] | None = None,
    billed: list[CostRecord] | None = None,
    currency: str = "USD",
    **caps: int,
):  # type: ignore[no-untyped-def]
    ingest = IngestConfig(**caps)
    return compute_app_metrics(
        store.request_days(),
        store.request_carry(currency),
        billed or [],
        TODAY,
        currency,
        Caps.of(store.label_order, ingest),
        store.label_order,
        (lambda d: (rate or {}).get(d)) if rate is not None else (lambda d: Decimal(1)),
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "h.db")
    yield s
    s.close()


def test_cost_is_converted_at_the_rate_of_each_requests_day(store: Store) -> None:
    store.record_requests([priced(req(1, 0)), priced(req(2, 1))])  # 0.001 USD each
    rates = {TODAY: Decimal("0.9"), TODAY - timedelta(days=1): Decimal("0.8")}
    m = metrics(store, rates, currency="EUR")
    key = AppCostKey("openai", "gpt-4o-mini", "/summarize", "unknown", "unknown", "EUR")
    assert m.cost[key] == Decimal("0.001") * Decimal("0.9") + Decimal("0.001") * Decimal("0.8")
    # a day without a rate withholds the label set's cost; requests still count
    m = metrics(store, {TODAY: Decimal("0.9")}, currency="EUR")
    assert key not in m.cost
    assert sum(m.requests.values()) == 2


def test_cost_per_request_and_per_outcome_over_7_days(store: Store) -> None:
    store.record_requests([
        priced(req(1, 0, outcome="success")),
        priced(req(2, 1, outcome="error", input_tokens=3000)),
        priced(req(3, 6, outcome="success")),
        priced(req(4, 7, outcome="success", input_tokens=99_000)),  # outside the 7 days
    ])  # fmt: skip
    m = metrics(store)
    cpr = m.cost_per_request_7d[
        AppUnitCostKey("openai", "gpt-4o-mini", "/summarize", "unknown", "USD")
    ]
    assert cpr == Decimal("0.005") / 3
    # what one success cost: everything the endpoint spent over its successes
    assert m.cost_per_outcome_7d[AppOutcomeKey("/summarize", "success", "USD")] == Decimal("0.0025")
    assert m.cost_per_outcome_7d[AppOutcomeKey("/summarize", "error", "USD")] == Decimal("0.005")
    assert sum(m.requests.values()) == 4  # the counters keep everything


def test_prompt_version_change_is_newest_over_previous(store: Store) -> None:
    old = [priced(req(i, 2, prompt_version="summarizer_v3")) for i in range(10)]
    new = [
        priced(req(100 + i, 0, prompt_version="summarizer_v4", input_tokens=1220)) for i in range(5)
    ]
    store.record_requests(old)
    store.record_requests(new)
    m = metrics(store)
    assert m.prompt_version_change == {
        PromptVersionKey("/summarize", "summarizer_v4"): Decimal("1.22")
    }


def test_estimate_to_billed_needs_both_and_one_account(store: Store) -> None:
    y = TODAY - timedelta(days=1)
    store.record_requests([priced(req(1, 1)), priced(req(2, 1, model="gpt-4o"))])
    billed = [
        CostRecord("openai", "main", y, "p1", "gpt-4o-mini", "tokens", Decimal("0.0008")),
        CostRecord("openai", "main", y, "p2", "gpt-4o-mini", "tokens", Decimal("0.0002")),
        CostRecord("openai", "main", y, "p1", "gpt-4o-mini", "web_search", Decimal("5")),
        CostRecord("openai", "a", y, "p", "gpt-4o", "tokens", Decimal("1")),
        CostRecord("openai", "b", y, "p", "gpt-4o", "tokens", Decimal("1")),
    ]
    m = metrics(store, billed=billed)
    assert m.estimate_to_billed == {EstimateKey("openai", "main", "gpt-4o-mini"): Decimal(1)}


def test_unknown_models_count_tokens_but_no_cost(store: Store) -> None:
    store.record_requests([priced(req(1, model="unknown-model"))])
    m = metrics(store)
    assert sum(m.requests.values()) == 1
    assert sum(m.tokens.values()) == 1000
    assert m.cost == {}
    assert m.cost_per_request_7d == {}


def test_retention_folds_days_into_the_carry_and_counters_never_drop(store: Store) -> None:
    store.record_requests([priced(req(i, 50 + i, tenant=f"t{i % 2}")) for i in range(6)])
    store.record_requests([priced(req(10, 0, tenant="t0"))])
    before = metrics(store)
    removed = store.prune_requests(
        TODAY - timedelta(days=35), TODAY - timedelta(days=40), lambda r: r.cost_usd, "USD"
    )
    assert removed > 0
    assert [r.day for r in store.request_days()] == [TODAY]
    after = metrics(store)
    assert after.requests == before.requests
    assert after.tokens == before.tokens
    assert after.cost == before.cost
    # raw ids older than the raw retention are forgotten, recent ones are kept
    assert store.request_ids(["event:0", "event:10"]) == {"event:10"}


def test_top_spenders_by_user_tenant_endpoint(store: Store) -> None:
    store.record_requests([
        priced(req(1, user="alice", tenant="acme", input_tokens=5000)),
        priced(req(2, user="bob", tenant="acme")),
        priced(req(3, user="bob", tenant="globex", endpoint="/chat")),
    ])  # fmt: skip
    rows = store.request_days(TODAY - timedelta(days=6), TODAY + timedelta(days=1))
    users = store.request_users(TODAY - timedelta(days=6), TODAY + timedelta(days=1))
    by_user = top_spenders(users, "user", lambda d: Decimal(1))
    assert [(s.value, s.cost, s.requests) for s in by_user] == [
        ("alice", Decimal("0.005"), 1),
        ("bob", Decimal("0.002"), 2),
    ]
    assert [s.value for s in top_spenders(rows, "tenant", lambda d: Decimal(1))] == [
        "acme",
        "globex",
    ]
    with pytest.raises(ValueError, match="--by"):
        top_spenders(rows, "model", lambda d: Decimal(1))


def test_a_late_request_with_an_old_time_never_displaces_an_admitted_value(store: Store) -> None:
    store.record_requests([priced(req(1, 0, tenant="first-stored"))])
    before = metrics(store, max_tenants=1)
    store.record_requests([priced(req(2, 3, tenant="older-time"))])
    after = metrics(store, max_tenants=1)
    tenants = {k.tenant for k in after.requests}
    assert tenants == {"first-stored", "other"}
    for key, n in before.requests.items():
        assert after.requests[key] >= n  # counters never go down


def test_free_text_outcomes_fold_into_other(store: Store) -> None:
    store.record_requests([priced(req(i, outcome=f"error: {i}")) for i in range(25)])
    outcomes = {k.outcome for k in metrics(store).requests}
    assert len(outcomes) == 21 and "other" in outcomes
