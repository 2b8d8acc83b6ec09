"""The aggregate-based recommendations equal the record-based rules on random histories.

:class:`RecommendationState` reads SQL aggregates and keeps them per account between
refreshes; the reference is :mod:`exporter.analytics.recommendations` run over the records
the store returns (per account :func:`account_findings` in account order, then
:func:`cross_provider_recommendations` over all). Histories mix several accounts and
providers, batch/sync/unknown rows, service tiers (one with its own price), API keys
(active, disabled, recently used, unknown), a price change inside the 30-day window, a
model the catalogue does not know, tool costs (``model=""``), cost rows billed in the
accounting currency, converted to it, or withheld for lack of a rate; then revisions of
one account's days and a new UTC day, which the state must follow incrementally.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from genai_prices import types as gp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.analytics.rec_state import RecommendationState
from exporter.analytics.recommendations import (
    Findings,
    account_findings,
    cross_provider_recommendations,
    population_stdev,
    recommendations_start,
)
from exporter.config import RecommendationsConfig
from exporter.pricing import Catalogue, ModelMaps
from exporter.records import ApiKeyRecord, CostRecord, FetchResult, UsageRecord
from exporter.store import Store

TODAY = date(2026, 3, 18)
CHANGE = TODAY - timedelta(days=12)  # a price change inside the last 30 days
ACCOUNTS = [("openai", "oa-1"), ("openai", "oa-2"), ("anthropic", "an-1")]
MODELS = {
    "openai": ["m-big", "m-big-2025-01-01", "m-small", "m-unknown", ""],
    "anthropic": ["m-big", "c-big", "c-small", ""],
}
KEYS = ["", "", "k-live", "k-old", "k-off", "k-used"]
RATE = Decimal("0.9187")  # USD -> EUR, every day


def _model(model_id: str, *prices: tuple[date | None, str, str], priority: str = "") -> Any:
    conditional = [
        gp.ConditionalPrice(
            constraint=gp.StartDateConstraint(start_date=start) if start else None,
            prices=gp.ModelPrice(
                input_mtok=Decimal(inp), output_mtok=Decimal(out), cache_read_mtok=Decimal(inp) / 10
            ),
        )
        for start, inp, out in prices
    ]
    variants = None
    if priority:
        variants = [
            gp.PriceVariant(
                when={"service_tier": "priority"},
                prices=gp.ModelPrice(input_mtok=Decimal(priority), output_mtok=Decimal(priority)),
            )
        ]
    return gp.ModelInfo(
        id=model_id, match=gp.ClauseEquals(equals=model_id), prices=conditional,
        price_variants=variants,
    )  # fmt: skip


def catalogue() -> Catalogue:
    providers = [
        gp.Provider(
            id="openai",
            name="OpenAI",
            api_pattern="openai",
            models=[
                _model("m-big", (None, "2.5", "10"), (CHANGE, "2.125", "8.5"), priority="4.375"),
                _model("m-small", (None, "0.15", "0.6")),
            ],
        ),
        gp.Provider(
            id="anthropic",
            name="Anthropic",
            api_pattern="anthropic",
            models=[
                _model("m-big", (None, "3", "12")),
                _model("c-big", (None, "3", "15"), (CHANGE, "2.75", "14")),
                _model("c-small", (None, "0.8", "4")),
            ],
        ),
    ]
    return Catalogue(providers, currency="EUR", convert=lambda _day, usd: usd * RATE)


MAPS = ModelMaps(
    alternatives={("openai", "m-big"): "m-small", ("anthropic", "c-big"): "c-small"},
    groups={("openai", "m-big"): "big", ("anthropic", "m-big"): "big"},
    batch={"openai": ("m-*",), "anthropic": ("*", "!c-small")},
)
CFG = RecommendationsConfig.model_validate(
    {
        "min_monthly_saving": "0",
        "batch": {"min_active_days": 2, "max_variation": 3},
        "model_downgrade": {"min_days": 2},
        "cross_provider": {"min_route_share": 0.05},
        "inactive_keys": {"min_prior_spend": "0", "max_recent_share": 0.3},
    }
)


def annotate(record: CostRecord) -> Mapping[str, Any]:
    """FX columns: converted to EUR, left pending (withheld), or EUR already."""
    if record.currency == "EUR":
        return {}
    if record.line_item.endswith("-withheld"):
        return {"fx_status": "error", "fx_error": "no_rate"}
    return {
        "fx_amount": format(record.amount * RATE, "f"),
        "fx_currency": "EUR",
        "fx_rate": str(RATE),
        "fx_rate_date": record.day.isoformat(),
        "fx_source": "bundled",
        "fx_status": "final",
    }


tokens = st.one_of(st.just(0), st.integers(1, 5_000_000))
usage_rows = st.lists(
    st.tuples(
        st.sampled_from(range(len(ACCOUNTS))),
        st.integers(0, 64),  # age in days (beyond 60: outside the rules' days)
        st.sampled_from(["p1", "p2"]),
        st.integers(0, 4),  # model index
        st.sampled_from(KEYS),
        st.sampled_from(["false", "false", "true", ""]),
        st.sampled_from(["", "default", "priority", "flex"]),
        st.tuples(tokens, tokens, tokens, tokens, st.integers(0, 50)),
    ),
    max_size=120,
)
cost_rows = st.lists(
    st.tuples(
        st.sampled_from(range(len(ACCOUNTS))),
        st.integers(0, 40),
        st.sampled_from(["p1", "p2"]),
        st.integers(0, 4),
        st.sampled_from(["tokens", "tokens", "web_search"]),
        st.integers(0, 90_000_000),  # units of 10**-6, or of 10**-14 (beyond int64 units)
        st.sampled_from(["USD", "USD", "USD-withheld", "EUR"]),
        st.sampled_from([-6, -6, -14]),
    ),
    max_size=80,
)


def records(
    usage: list[Any], costs: list[Any], today: date
) -> dict[tuple[str, str], tuple[list[UsageRecord], list[CostRecord]]]:
    out: dict[tuple[str, str], tuple[list[UsageRecord], list[CostRecord]]] = {
        a: ([], []) for a in ACCOUNTS
    }
    seen: set[tuple[object, ...]] = set()
    for acc, age, project, m, key, batch, tier, (i, o, cr, cw, req) in usage:
        provider, account = ACCOUNTS[acc]
        model = MODELS[provider][m % len(MODELS[provider])]
        if key == "k-old":
            age = 31 + age % 30  # a key used only in days 31-60
        row = UsageRecord(
            provider, account, today - timedelta(days=age), project, model, "completions",
            key, batch, tier, i, o, cr, cw, req,
        )  # fmt: skip
        if row.key() not in seen:
            seen.add(row.key())
            out[(provider, account)][0].append(row)
    for n, (acc, age, project, m, cost_type, units, currency, exp) in enumerate(costs):
        provider, account = ACCOUNTS[acc]
        model = MODELS[provider][m % len(MODELS[provider])] if cost_type == "tokens" else ""
        suffix = "-withheld" if currency.endswith("-withheld") else ""
        out[(provider, account)][1].append(
            CostRecord(
                provider, account, today - timedelta(days=age), project, model, cost_type,
                Decimal(units).scaleb(exp), currency.removesuffix("-withheld"),
                line_item=f"line-{n}{suffix}",
            )
        )  # fmt: skip
    return out


def keys_of(account: tuple[str, str]) -> list[ApiKeyRecord]:
    provider, name = account
    used = datetime.combine(TODAY - timedelta(days=3), datetime.min.time(), UTC)
    return [
        ApiKeyRecord(provider, name, "k-live", "p1", "live"),
        ApiKeyRecord(provider, name, "k-off", "p2", "off", status="disabled"),
        ApiKeyRecord(provider, name, "k-used", "p1", "used", last_used_at=used),
    ]


def write(
    store: Store, rows: dict[tuple[str, str], tuple[list[UsageRecord], list[CostRecord]]],
    start: date, end: date, only: tuple[str, str] | None = None,
) -> None:  # fmt: skip
    for account, (usage, costs) in rows.items():
        if only is not None and account != only:
            continue
        result = FetchResult(
            start, end,
            [u for u in usage if start <= u.day < end],
            [c for c in costs if start <= c.day < end],
            api_keys=keys_of(account),
        )  # fmt: skip
        store.replace_window(*account, result, annotate=annotate)


def reference(store: Store, today: date, cat: Catalogue) -> Findings:
    start, end = recommendations_start(today), today + timedelta(days=1)
    usage = store.usage_between(start, end)
    costs, _withheld = store.converted_costs_between(start, end, "EUR")
    keys = store.api_keys()
    recs, cache = [], {}
    accounts = sorted({(p, a) for (p, a, _d) in store.day_versions(start, end)})
    for account in accounts:
        found = account_findings(
            today,
            [u for u in usage if (u.provider, u.account) == account],
            [c for c in costs if (c.provider, c.account) == account],
            [k for k in keys if (k.provider, k.account) == account],
            cat, MAPS, CFG,
        )  # fmt: skip
        recs.extend(found.recommendations)
        cache.update(found.cache_savings)
    recs.extend(cross_provider_recommendations(today, usage, costs, MAPS, CFG))
    return Findings(recs, cache)


def check(state: RecommendationState, store: Store, today: date, cat: Catalogue) -> Findings:
    fast = state.findings(today, store.api_keys())
    want = reference(store, today, cat)
    assert fast.recommendations == want.recommendations
    assert [r.monthly for r in fast.recommendations] == [r.monthly for r in want.recommendations]
    assert fast.cache_savings == want.cache_savings
    return want


@settings(
    max_examples=40, deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)  # fmt: skip
@given(usage=usage_rows, costs=cost_rows, revised=usage_rows, revised_costs=cost_rows)
def test_the_aggregates_find_what_the_record_rules_find(
    tmp_path_factory: Any, usage: list[Any], costs: list[Any], revised: list[Any],
    revised_costs: list[Any],
) -> None:  # fmt: skip
    path = Path(tmp_path_factory.mktemp("recs")) / "history.db"
    store = Store(path)
    cat = catalogue()
    try:
        start = TODAY - timedelta(days=64)
        write(store, records(usage, costs, TODAY), start, TODAY + timedelta(days=1))
        state = RecommendationState(store, "EUR", cat, MAPS, CFG)
        check(state, store, TODAY, cat)
        runs = state.account_rule_runs
        check(state, store, TODAY, cat)  # nothing changed: nothing recomputed
        assert state.account_rule_runs == runs and state.reloaded_days == 0

        # a poll of one account rewrites its lookback days: only they are re-read
        polled = ACCOUNTS[0]
        lookback = TODAY - timedelta(days=3)
        write(store, records(revised, revised_costs, TODAY), lookback, TODAY + timedelta(days=1),
              only=polled)  # fmt: skip
        check(state, store, TODAY, cat)
        assert state.account_rule_runs == runs + 1
        assert state.reloaded_days == 4

        # the next UTC day: every window moves by one day (the arrays shift; the old
        # today and the new one are read again)
        tomorrow = TODAY + timedelta(days=1)
        write(store, records(revised, [], tomorrow), tomorrow, tomorrow + timedelta(days=1))
        check(state, store, tomorrow, cat)
        assert state.reloaded_days == 2 * len(ACCOUNTS)
        check(state, store, tomorrow + timedelta(days=6), cat)  # a week without polls
    finally:
        store.close()


def test_a_rich_history_has_every_kind_of_finding(storage_path: str) -> None:
    """The generators reach every rule (so the equality above is not vacuous); on SQLite
    and PostgreSQL (the aggregates are summed in SQL and from the compact rows)."""
    usage = []
    for age in range(61):
        for acc in range(len(ACCOUNTS)):
            for m in (0, 2):
                steady = (10_000 + age * 7, 2_000, 5_000, 0, 9)
                usage.append((acc, age, "p1", m, "", "false", "", steady))
                usage.append((acc, age, "p1", m, "", "true", "priority", (1_000, 500, 0, 0, 1)))
            if age > 30:
                usage.append((acc, age, "p2", 0, "k-old", "false", "", (900_000, 100_000, 0, 0, 3)))
            if age in (30, 45):  # a key used on the first of the last 30 days, and before
                usage.append((acc, age, "p2", 0, "k-live", "false", "", (80_000, 9_000, 0, 0, 2)))
    costs = [(acc, age, "p1", m, "tokens", 3_000_000 + acc * 1_700_000, cur, -6)
             for acc in range(len(ACCOUNTS)) for age in range(1, 31) for m in (0, 2)
             for cur in ("USD", "EUR", "USD-withheld")]  # fmt: skip
    costs += [(acc, age, "p1", 0, "tokens", 123_456_789, "USD", -14)  # beyond int64 units
              for acc in range(len(ACCOUNTS)) for age in (3, 9)]  # fmt: skip
    store = Store(storage_path)
    cat = catalogue()
    rows = records(usage, costs, TODAY)
    write(store, rows, TODAY - timedelta(days=64), TODAY + timedelta(days=1))
    state = RecommendationState(store, "EUR", cat, MAPS, CFG)
    found = check(state, store, TODAY, cat)
    assert {r.kind for r in found.recommendations} == {
        "batch", "model_downgrade", "cross_provider", "inactive_key",
    }  # fmt: skip
    assert found.cache_savings
    store.close()


@given(st.lists(st.integers(0, 10**13), min_size=1, max_size=31))
def test_population_stdev_is_statistics_pstdev_bit_for_bit(values: list[int]) -> None:
    assert population_stdev(values) == statistics.pstdev(values)
