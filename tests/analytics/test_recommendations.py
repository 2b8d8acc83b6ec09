"""Savings recommendations on crafted histories, and end to end against the fake OpenAI org.

Expected values are computed here independently: list prices come from genai-prices' own
``calc_price`` (whole volumes, the way a request is billed), not from exporter.pricing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from exporter.analytics.recommendations import (
    Findings,
    Recommendation,
    compute_recommendations,
    publish,
)
from exporter.app import App, build
from exporter.config import Config, ConfigErrors, validate
from exporter.demo.openai import FakeOpenAIOrg, FakeOpenAIServer
from exporter.pricing import CATALOGUE_PROVIDER, Catalogue
from exporter.records import ApiKeyRecord, CostRecord, FetchResult, UsageRecord
from tests.conftest import TODAY, fixed_clock, make_config
from tests.helpers import parse_exposition

CENT = Decimal("0.005")


def day(age: int, today: date = TODAY) -> date:
    return today - timedelta(days=age)


def list_cost(
    provider: str,
    model: str,
    on: date,
    *,
    uncached: int = 0,
    cached: int = 0,
    written: int = 0,
    output: int = 0,
    batch: bool = False,
) -> Decimal:
    """What genai-prices charges for this volume on this day (batch: half)."""
    usage = Usage(
        input_tokens=uncached + cached + written,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        output_tokens=output,
    )
    price = calc_price(
        usage,
        model,
        provider_id=CATALOGUE_PROVIDER[provider],
        genai_request_timestamp=datetime(on.year, on.month, on.day, 12, tzinfo=UTC),
    ).total_price
    return price / 2 if batch else price


def row_list_cost(r: UsageRecord, model: str | None = None) -> Decimal:
    return list_cost(
        r.provider, model or r.model, r.day, uncached=r.input_tokens, cached=r.cache_read_tokens,
        written=r.cache_write_tokens, output=r.output_tokens,
        batch=r.batch == "true" or r.service_tier == "batch",
    )  # fmt: skip


def use(
    age: int,
    model: str = "gpt-4o-2024-08-06",
    *,
    provider: str = "openai",
    project: str = "proj_a",
    api_key: str = "key_a",
    batch: str = "false",
    tier: str = "default",
    scale: float = 1.0,
    today: date = TODAY,
    account: str = "main",
) -> UsageRecord:
    """A day of traffic: 1M uncached input, 400k cached, 20k cache-write, 100k output."""
    return UsageRecord(
        provider, account, day(age, today), project, model, "completions",
        api_key=api_key, batch=batch, service_tier=tier,
        input_tokens=int(1_000_000 * scale), cache_read_tokens=int(400_000 * scale),
        cache_write_tokens=int(20_000 * scale), output_tokens=int(100_000 * scale),
        requests=int(500 * scale),
    )  # fmt: skip


def billed(rows: Iterable[UsageRecord]) -> list[CostRecord]:
    """The provider's bill for the rows: list price per row (batch at half), one line per day."""
    out: dict[tuple[Any, ...], CostRecord] = {}
    for r in rows:
        key = (r.provider, r.account, r.day, r.project, r.model)
        amount = row_list_cost(r)
        if key in out:
            amount += out[key].amount
        out[key] = CostRecord(
            r.provider, r.account, r.day, r.project, r.model, "tokens", amount,
            line_item=f"{r.model}, tokens",
        )  # fmt: skip
    return list(out.values())


def weekday_scale(age: int, today: date = TODAY) -> float:
    return 0.5 if day(age, today).weekday() >= 5 else 1.0


def find(
    usage: list[UsageRecord],
    costs: list[CostRecord] | None = None,
    keys: list[ApiKeyRecord] | None = None,
    today: date = TODAY,
    **config: Any,
) -> list[Recommendation]:
    cfg = validate({"recommendations": config}).recommendations
    findings = compute_recommendations(
        today,
        usage,
        billed(usage) if costs is None else costs,
        keys or [],
        Catalogue(),
        cfg.maps(),
        cfg,
    )
    return findings.recommendations


def of_kind(recs: list[Recommendation], kind: str) -> list[Recommendation]:
    return [r for r in recs if r.kind == kind]


def in_window(rows: Iterable[UsageRecord], today: date = TODAY) -> list[UsageRecord]:
    return [r for r in rows if day(30, today) <= r.day < today]


# --------------------------------------------------------------------------- batch


def test_steady_sync_traffic_saves_half_its_monthly_billed_cost() -> None:
    rows = [use(age, scale=weekday_scale(age)) for age in range(45)]
    recs = of_kind(find(rows), "batch")
    truth = sum((row_list_cost(r) for r in in_window(rows)), Decimal(0)) / 2
    assert len(recs) == 1
    rec = recs[0]
    assert (rec.project, rec.model, rec.target) == ("proj_a", "gpt-4o-2024-08-06", "batch")
    assert abs(rec.monthly - truth) < Decimal("1e-12")
    assert dict(rec.evidence)["active_days"] == "30/30"


def test_a_stream_mixing_sync_and_batch_splits_its_bill_by_priced_volume() -> None:
    sync = [use(age, api_key="key_web") for age in range(1, 31)]
    batch = [use(age, api_key="key_jobs", batch="true", scale=3) for age in range(1, 31)]
    rows = sync + batch
    recs = of_kind(find(rows), "batch")
    truth = sum((row_list_cost(r) for r in sync), Decimal(0)) / 2
    assert len(recs) == 1 and abs(recs[0].monthly - truth) < Decimal("1e-9")
    share = Decimal(dict(recs[0].evidence)["sync_share_by_priced_volume"])
    assert share == Decimal("0.4000")  # 1 part sync at list, 3 parts batch at half


@pytest.mark.parametrize(("active", "expected"), [(19, 0), (20, 1)])
def test_batch_needs_most_of_the_last_30_days_active(active: int, expected: int) -> None:
    rows = [use(age) for age in range(1, active + 1)]
    assert len(of_kind(find(rows), "batch")) == expected


def test_jumpy_traffic_is_not_a_batch_candidate_unless_the_threshold_allows() -> None:
    rows = [use(age, scale=1 if age % 2 else 6) for age in range(1, 31)]
    assert of_kind(find(rows), "batch") == []
    assert len(of_kind(find(rows, batch={"max_variation": 1.0}), "batch")) == 1


def test_no_batch_advice_for_batch_flex_unknown_or_non_batch_models() -> None:
    rows = [
        *(use(age, project="already", batch="true") for age in range(1, 31)),
        *(use(age, project="flex", tier="flex") for age in range(1, 31)),
        *(use(age, project="unknown", batch="") for age in range(1, 31)),
        *(use(age, "gpt-4o-realtime-preview-2024-12-17", project="rt") for age in range(1, 31)),
    ]
    assert of_kind(find(rows), "batch") == []


def test_anthropic_standard_tier_is_synchronous_and_its_batch_tier_is_not() -> None:
    model = "claude-sonnet-4-20250514"
    standard = [
        use(age, model, provider="anthropic", project="default", batch="false", tier="standard")
        for age in range(1, 31)
    ]
    batch = [
        use(age, model, provider="anthropic", project="wrk_b", batch="true", tier="batch")
        for age in range(1, 31)
    ]
    recs = of_kind(find(standard + batch), "batch")
    assert [(r.provider, r.project) for r in recs] == [("anthropic", "default")]
    truth = sum((row_list_cost(r) for r in standard), Decimal(0)) / 2
    assert abs(recs[0].monthly - truth) < Decimal("1e-9")


# --------------------------------------------------------------------------- downgrade


@pytest.mark.parametrize(("days", "expected"), [(6, 0), (7, 1)])
def test_downgrade_needs_seven_days_of_data_and_prices_observed_volumes(
    days: int, expected: int
) -> None:
    rows = [use(age * 4, scale=1 + age / 10) for age in range(1, days + 1)]  # spread over 30d
    recs = of_kind(find(rows), "model_downgrade")
    assert len(recs) == expected
    if expected:
        truth = sum((row_list_cost(r) - row_list_cost(r, "gpt-4o-mini") for r in rows), Decimal(0))
        assert recs[0].target == "gpt-4o-mini"
        assert abs(recs[0].monthly - truth) < Decimal("1e-12")
        assert dict(recs[0].evidence)["days_with_data"] == f"{days}/30"


def test_downgrade_prices_each_day_at_the_price_then_in_force() -> None:
    # o3 fell from $10/$40 to $2/$8 per MTok on 2025-06-10; the alternative is o4-mini.
    today = date(2025, 6, 20)
    rows = [use(age, "o3-2025-04-16", batch="true", today=today) for age in range(1, 20)]
    recs = of_kind(find(rows, today=today), "model_downgrade")
    truth = sum(
        (row_list_cost(r) - row_list_cost(r, "o4-mini") for r in in_window(rows, today)),
        Decimal(0),
    )
    assert len(recs) == 1 and recs[0].target == "o4-mini"
    assert abs(recs[0].monthly - truth) < Decimal("1e-12")
    flat = sum((row_list_cost(r, "o3") for r in rows if r.day >= date(2025, 6, 10)), Decimal(0))
    assert recs[0].monthly > flat  # the older, dearer days count at their own price


def test_a_model_without_a_catalogue_price_gets_no_recommendation_and_a_log_line(
    caplog,
) -> None:
    rows = [use(age, "mystery-model-2025-01-01", project="p") for age in range(1, 31)]
    rows += [use(age, project="q") for age in range(1, 31)]
    costs = [
        CostRecord("openai", "main", r.day, r.project, r.model, "tokens", Decimal(5)) for r in rows
    ]
    with caplog.at_level(logging.WARNING, logger="exporter.pricing"):
        recs = find(
            rows,
            costs,
            alternatives={"openai": {"mystery-model": "gpt-4o-mini", "gpt-4o": "gpt-9-imaginary"}},
            batch_models={"openai": ["mystery-*", "gpt-4o*"]},
        )
    assert [(r.kind, r.project) for r in recs] == [("batch", "q")]
    assert "'mystery-model-2025-01-01' is not in the price catalogue" in caplog.text
    assert "'gpt-9-imaginary' is not in the price catalogue" in caplog.text


# --------------------------------------------------------------------------- cross-provider


def _route(provider: str, model: str, project: str, tokens: int, cost: str) -> list[Any]:
    """30 days of one route's traffic: ``tokens`` and ``cost`` per day."""
    usage, costs = [], []
    for age in range(1, 31):
        usage.append(
            UsageRecord(provider, provider, day(age), project, model, "completions",
                        batch="false", input_tokens=tokens, requests=10)
        )  # fmt: skip
        costs.append(
            CostRecord(provider, provider, day(age), project, model, "tokens", Decimal(cost))
        )
    return [usage, costs]


def test_the_dearer_route_is_priced_at_the_cheapest_effective_rate() -> None:
    a = _route("openai", "gpt-4o-2024-08-06", "proj_a", 2_000_000, "6.00")
    b = _route("openai", "gpt-4o-2024-11-20", "proj_b", 1_000_000, "2.50")
    z = _route("azure_openai", "gpt-4o", "sub-1", 3_000_000, "6.30")
    recs = of_kind(find(a[0] + b[0] + z[0], a[1] + b[1] + z[1]), "cross_provider")
    azure_rate = Decimal("6.30") / 3_000_000
    expected = {
        "proj_a": 30 * (Decimal("6.00") - 2_000_000 * azure_rate),  # 54.00
        "proj_b": 30 * (Decimal("2.50") - 1_000_000 * azure_rate),  # 12.00
    }
    assert {r.project: r.monthly for r in recs} == expected
    assert {(r.provider, r.target) for r in recs} == {("openai", "azure_openai")}


def test_a_route_with_negligible_traffic_is_ignored_on_both_sides() -> None:
    sonnet = "claude-sonnet-4-20250514"
    a = _route("anthropic", sonnet, "default", 1_000_000, "5.00")
    b = _route("bedrock", f"us.anthropic.{sonnet}-v1:0", "123456789012", 1_000_000, "4.00")
    v = _route("vertex", "claude-sonnet-4@20250514", "gcp-proj", 40_000, "0.04")  # 1.9 %
    recs = of_kind(find(a[0] + b[0] + v[0], a[1] + b[1] + v[1]), "cross_provider")
    assert [(r.provider, r.target, r.monthly) for r in recs] == [
        ("anthropic", "bedrock", Decimal("30.00"))
    ]
    # The cheap vertex route counts once its share passes the threshold.
    loose = of_kind(
        find(a[0] + b[0] + v[0], a[1] + b[1] + v[1], cross_provider={"min_route_share": 0.01}),
        "cross_provider",
    )
    assert {(r.provider, r.target) for r in loose} == {
        ("anthropic", "vertex"),
        ("bedrock", "vertex"),
    }


def test_routes_of_one_provider_alone_are_not_a_cross_provider_case() -> None:
    a = _route("openai", "gpt-4o-2024-08-06", "proj_a", 2_000_000, "6.00")
    b = _route("openai", "gpt-4o", "proj_b", 2_000_000, "3.00")
    assert of_kind(find(a[0] + b[0], a[1] + b[1]), "cross_provider") == []


# --------------------------------------------------------------------------- inactive keys


def _keyed(last_age: int, key: str = "key_old", first_age: int = 60) -> list[UsageRecord]:
    rows = [use(age, api_key=key, project="proj_k") for age in range(last_age, first_age + 1)]
    rows += [use(age, api_key="key_live", project="proj_k", scale=0.1) for age in range(61)]
    return rows


@pytest.mark.parametrize(("quiet_days", "flagged"), [(29, False), (31, True)])
def test_a_key_quiet_for_the_last_30_days_is_flagged_with_its_old_rate(
    quiet_days: int, flagged: bool
) -> None:
    rows = _keyed(last_age=quiet_days + 1)
    recs = of_kind(find(rows), "inactive_key")
    assert [r.api_key for r in recs] == (["key_old"] if flagged else [])
    if flagged:
        prior = [r for r in rows if r.api_key == "key_old" and day(60) <= r.day < day(30)]
        truth = sum((row_list_cost(r) for r in prior), Decimal(0)) / 30 * 30
        assert abs(recs[0].monthly - truth) < Decimal("1e-12")
        assert recs[0].project == "proj_k" and recs[0].target == ""


def test_last_used_at_must_agree_and_disabled_keys_are_not_flagged() -> None:
    rows = _keyed(last_age=40)

    def key(**kw: Any) -> ApiKeyRecord:
        return ApiKeyRecord("openai", "main", "key_old", "proj_k", "legacy-bot", **kw)

    used_recently = key(last_used_at=datetime(2026, 3, 10, 9, tzinfo=UTC))
    assert of_kind(find(rows, keys=[used_recently]), "inactive_key") == []
    assert of_kind(find(rows, keys=[key(status="inactive")]), "inactive_key") == []
    quiet = key(last_used_at=datetime(2026, 2, 6, 9, tzinfo=UTC))
    [rec] = of_kind(find(rows, keys=[quiet]), "inactive_key")
    assert rec.api_key_name == "legacy-bot"
    assert dict(rec.evidence)["last_used_at"] == "2026-02-06T09:00:00+00:00"


def test_the_daily_rate_divides_by_the_days_of_history_the_account_has() -> None:
    rows = [r for r in _keyed(last_age=35) if r.day >= day(45)]  # history starts 45 days ago
    [rec] = of_kind(find(rows), "inactive_key")
    prior = [r for r in rows if r.api_key == "key_old" and r.day < day(30)]
    truth = sum((row_list_cost(r) for r in prior), Decimal(0)) / 15 * 30
    assert dict(rec.evidence)["days_31_60_with_history"] == "15"
    assert abs(rec.monthly - truth) < Decimal("1e-12")


def test_a_key_with_little_spend_before_is_not_worth_flagging() -> None:
    rows = [use(age, "gpt-4o-mini", api_key="key_tiny", scale=0.01) for age in range(40, 61)]
    assert of_kind(find(rows), "inactive_key") == []


# --------------------------------------------------------------------------- cache savings


def test_cache_savings_are_cache_reads_priced_at_the_input_cache_read_difference() -> None:
    rows = [use(age) for age in range(40)] + [use(age, batch="true") for age in range(1, 31)]
    cfg = Config().recommendations
    found = compute_recommendations(TODAY, rows, [], [], Catalogue(), cfg.maps(), cfg)
    truth = Decimal(0)
    for r in in_window(rows):
        uncached = list_cost("openai", r.model, r.day, uncached=r.cache_read_tokens,
                             batch=r.batch == "true")  # fmt: skip
        cached = list_cost("openai", r.model, r.day, cached=r.cache_read_tokens,
                           batch=r.batch == "true")  # fmt: skip
        truth += uncached - cached
    assert found.cache_savings == {("openai", "main", "proj_a", "gpt-4o-2024-08-06"): truth}


# --------------------------------------------------------------------------- publication


def _rec(kind: str, project: str, monthly: str, **kw: Any) -> Recommendation:
    target = kw.pop("target", "batch" if kind == "batch" else "")
    return Recommendation(kind, "openai", "main", project, kw.pop("model", "gpt-4o"), target,
                          Decimal(monthly), **kw)  # fmt: skip


def test_series_beyond_the_cap_are_summed_into_other() -> None:
    findings = Findings(
        [
            _rec("batch", "p1", "30"),
            _rec("batch", "p2", "20"),
            _rec("model_downgrade", "p3", "10", target="gpt-4o-mini"),
            _rec("batch", "p4", "5"),
            _rec("inactive_key", "p1", "7", model="", api_key="k1", api_key_name="a"),
            _rec("inactive_key", "p1", "9", model="", api_key="k2", api_key_name="b"),
            _rec("inactive_key", "p2", "8", model="", api_key="k3", api_key_name="c"),
        ]
    )
    out = publish(findings, currency="USD", dismissed=[], first_seen={}, max_series=2)
    other = ("other",) * 4
    assert out.savings == {
        ("openai", "main", "p1", "gpt-4o", "batch", "batch", "USD"): Decimal(30),
        ("openai", "main", "p2", "gpt-4o", "batch", "batch", "USD"): Decimal(20),
        (*other, "model_downgrade", "other", "USD"): Decimal(10),
        (*other, "batch", "other", "USD"): Decimal(5),
    }
    assert out.key_exposure == {
        ("openai", "main", "p1", "k2", "b", "USD"): Decimal(9),
        ("openai", "main", "p2", "k3", "c", "USD"): Decimal(8),
        (*other, "other", "USD"): Decimal(7),
    }


def test_a_dismissal_needs_a_reason() -> None:
    with pytest.raises(ConfigErrors) as err:
        validate({"recommendations": {"dismissed": [{"recommendation": "batch"}]}})
    assert "recommendations.dismissed[0].reason: Field required" in err.value.errors
    with pytest.raises(ConfigErrors):
        validate({"recommendations": {"dismissed": [{"recommendation": "batch", "reason": " "}]}})


def _seed_store(config: Config, rows: list[UsageRecord], keys: list[ApiKeyRecord]) -> None:
    service = build(config, clock=fixed_clock)
    result = FetchResult(day(60), TODAY + timedelta(days=1), rows, billed(rows), [], keys)
    service.store.replace_window("openai", "main", result)
    service.stop()


def _crafted(tmp_path: Path, **recommendations: Any) -> Config:
    return validate(
        {"storage": {"path": str(tmp_path / "history.db")}, "recommendations": recommendations}
    )


def _samples(service: App, name: str) -> dict[frozenset[tuple[str, str]], float]:
    text = service.rendered.text.decode()
    return {labels: v for (n, labels), v in parse_exposition(text).items() if n == name}


def test_service_publishes_recommendations_and_keeps_their_first_seen_date(tmp_path) -> None:
    rows = [use(age) for age in range(61)] + _keyed(last_age=33)
    config = _crafted(tmp_path)
    _seed_store(config, rows, [])
    first = build(config, clock=fixed_clock)
    kinds = {dict(k)["recommendation"] for k in _samples(first, "aicost_savings_monthly")}
    assert kinds == {"batch", "model_downgrade"}
    [exposure] = _samples(first, "aicost_inactive_key_exposure_monthly")
    assert dict(exposure)["api_key"] == "key_old" and dict(exposure)["currency"] == "USD"
    seen = _samples(first, "aicost_recommendation_first_seen_timestamp_seconds")
    midnight = datetime(2026, 3, 18, tzinfo=UTC).timestamp()
    assert len(seen) == 5 and set(seen.values()) == {midnight}
    first.stop()

    two_days_later = datetime(2026, 3, 20, 13, 0, tzinfo=UTC)
    later = build(config, clock=lambda: two_days_later)
    assert set(_samples(later, "aicost_recommendation_first_seen_timestamp_seconds").values()) == {
        midnight
    }
    later.stop()


def test_the_ledger_is_written_once_a_day_for_the_same_recommendations(tmp_path) -> None:
    """A refresh whose live recommendations were already noted today does not write the
    ledger again (one write per poll per replica otherwise); a new day or a new set does."""
    now = [datetime(2026, 3, 18, 9, 0, tzinfo=UTC)]
    rows = [use(age) for age in range(61)]
    config = _crafted(tmp_path)
    _seed_store(config, rows, [])
    service = build(config, clock=lambda: now[0])
    notes: list[int] = []
    note = service.store.note_recommendations

    def counted(seen: list[dict[str, str]], day: date) -> dict[str, date]:
        notes.append(len(seen))
        return note(seen, day)

    service.store.note_recommendations = counted  # type: ignore[method-assign]
    published = service.rendered.text
    service.refresh()
    assert notes == [] and service.rendered.text == published  # same day, same ones
    now[0] += timedelta(days=1)
    service.refresh()
    assert len(notes) == 1 and notes[0] > 0  # a new day: last_seen moves on
    service.store.replace_window(
        "openai", "main", FetchResult(day(60), TODAY + timedelta(days=1), [], [], [], [])
    )  # every row gone: no recommendation any more
    service.refresh()
    assert notes[1:] == [0]
    service.stop()


def test_a_dismissed_recommendation_is_no_longer_published(tmp_path) -> None:
    rows = [use(age) for age in range(31)]
    dismissed = [{"recommendation": "batch", "project": "proj_a", "reason": "chat latency"}]
    config = _crafted(tmp_path, dismissed=dismissed)
    _seed_store(config, rows, [])
    service = build(config, clock=fixed_clock)
    published = {dict(k)["recommendation"] for k in _samples(service, "aicost_savings_monthly")}
    seen = {
        dict(k)["recommendation"]
        for k in _samples(service, "aicost_recommendation_first_seen_timestamp_seconds")
    }
    assert published == seen == {"model_downgrade"}
    service.stop()


# --------------------------------------------------------------------------- end to end


def _stream_of(org: FakeOpenAIOrg) -> dict[str, str]:
    return {str(p["name"]): str(p["id"]) for p in org.projects}


def test_published_savings_on_the_fake_org_equal_the_truth_to_the_cent(
    tmp_path, fake: FakeOpenAIServer, env
) -> None:
    org = fake.org
    config = make_config(tmp_path, fake.base_url, poll={"backfill_days": 60})
    service = build(config, clock=fixed_clock, env=env)
    assert service.poll_once()
    start, end = day(30), TODAY
    ids = _stream_of(org)
    names = {v: k for k, v in ids.items()}

    def cost(row: Any, model: str | None = None) -> Decimal:
        return list_cost(
            "openai", model or row.model, row.day, output=row.output_tokens,
            uncached=row.input_tokens - row.input_cached_tokens - row.input_cache_write_tokens,
            cached=row.input_cached_tokens, written=row.input_cache_write_tokens, batch=row.batch,
        )  # fmt: skip

    truth: dict[tuple[str, str, str], Decimal] = {}
    # Batch: steady, synchronous streams (no batch rows) -> half their billed cost.
    batch_streams = [
        ("Search", "gpt-4o-2024-08-06"), ("Search", "gpt-4o-mini-2024-07-18"),
        ("Support bot", "gpt-4o-2024-08-06"), ("Support bot", "gpt-4o-mini-2024-07-18"),
        ("R&D sandbox", "gpt-4o-2024-08-06"), ("R&D sandbox", "o3-mini-2025-01-31"),
    ]  # fmt: skip
    for project, model in batch_streams:
        rows = [
            r for r in org.usage
            if r.project_id == ids[project] and r.model == model and start <= r.day < end
        ]  # fmt: skip
        assert rows and not any(r.batch for r in rows)
        bill = sum(
            (
                c.amount
                for c in org.costs
                if c.project_id == ids[project] and c.model == model and start <= c.day < end
            ),
            Decimal(0),
        )
        truth[("batch", project, model)] = bill / 2
    # Downgrade gpt-4o -> gpt-4o-mini: observed volumes at both list prices.
    for project in ("Search", "Support bot", "R&D sandbox"):
        truth[("model_downgrade", project, "gpt-4o-2024-08-06")] = sum(
            (
                cost(r) - cost(r, "gpt-4o-mini")
                for r in org.usage
                if r.project_id == ids[project]
                and r.model == "gpt-4o-2024-08-06"
                and start <= r.day < end
            ),
            Decimal(0),
        )

    published = {
        (labels["recommendation"], names[labels["project"]], labels["model"]): value
        for labels, value in (
            (dict(k), v) for k, v in _samples(service, "aicost_savings_monthly").items()
        )
    }
    assert set(published) == set(truth), "recommended exactly the qualifying streams"
    for key, value in published.items():
        assert abs(Decimal(str(value)) - truth[key]) < CENT, key

    # The retired support key: spend of days 31-60 at list price, per day of history, x 30.
    key_id = next(
        k["id"] for keys in org.api_keys.values() for k in keys if k["name"] == "support-bot-v1"
    )
    prior = [r for r in org.usage if day(60) <= r.day < day(30)]
    spent = sum((cost(r) for r in prior if r.api_key_id == key_id), Decimal(0))
    history_days = len({r.day for r in prior})
    [(labels, exposure)] = _samples(service, "aicost_inactive_key_exposure_monthly").items()
    assert dict(labels)["api_key_name"] == "support-bot-v1"
    assert abs(Decimal(str(exposure)) - spent / history_days * 30) < CENT
    service.stop()
