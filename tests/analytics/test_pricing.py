"""Pricing: genai-prices unit prices per token type and day, offline; our model maps."""

from __future__ import annotations

import logging
import socket
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price, data_snapshot, update_prices
from genai_prices.data import providers as bundled

from exporter.config import ConfigErrors, validate
from exporter.pricing import (
    CATALOGUE_PROVIDER,
    Catalogue,
    load_maps,
    model_family,
    packaged_map,
    price_on,
)
from exporter.records import UsageRecord

DAY = date(2026, 3, 1)


def row(model: str, provider: str = "openai", **kw: object) -> UsageRecord:
    fields: dict = {"source": "completions", "batch": "false", "service_tier": "default", **kw}
    return UsageRecord(provider, "main", fields.pop("day", DAY), "proj", model, **fields)


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o", "gpt-4o"),
        ("gpt-4-0613", "gpt-4"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "anthropic.claude-sonnet-4"),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "anthropic.claude-3-5-sonnet"),
        ("amazon.nova-pro-v1:0", "amazon.nova-pro"),
        ("claude-opus-4@20250514", "claude-opus-4"),
        ("grok-4-0709", "grok-4"),
        ("gemini-2.5-flash", "gemini-2.5-flash"),
        ("GPT-4o-2024-08-06", "gpt-4o"),
    ],
)
def test_model_family_strips_snapshot_suffixes(model: str, family: str) -> None:
    assert model_family(model) == family


def test_unit_prices_per_token_type_come_from_the_catalogue() -> None:
    cat = Catalogue()
    gpt = cat.prices("openai", "gpt-4o-2024-08-06", DAY)
    assert gpt is not None
    # OpenAI has no cache-write price: cache writes are billed as input.
    assert (gpt.input, gpt.cache_read, gpt.cache_write, gpt.output) == (
        Decimal("2.5"), Decimal("1.25"), Decimal("2.5"), Decimal("10"),
    )  # fmt: skip
    claude = cat.prices("anthropic", "claude-sonnet-4-20250514", DAY)
    assert claude is not None
    assert (claude.input, claude.cache_read, claude.cache_write, claude.output) == (
        Decimal("3"), Decimal("0.3"), Decimal("3.75"), Decimal("15"),
    )  # fmt: skip
    embedding = cat.prices("openai", "text-embedding-3-small", DAY)
    assert embedding is not None and embedding.output == 0


def test_a_row_costs_what_genai_prices_charges_for_the_same_volume() -> None:
    cat = Catalogue()
    for provider, model in (("openai", "gpt-4o-2024-08-06"), ("anthropic", "claude-opus-4-1")):
        r = row(
            model, provider, input_tokens=700_000, cache_read_tokens=200_000,
            cache_write_tokens=100_000, output_tokens=50_000,
        )  # fmt: skip
        usage = Usage(
            input_tokens=1_000_000,
            cache_read_tokens=200_000,
            cache_write_tokens=100_000,
            output_tokens=50_000,
        )
        expected = calc_price(
            usage,
            model,
            provider_id=CATALOGUE_PROVIDER[provider],
            genai_request_timestamp=datetime(2026, 3, 1, 12, tzinfo=UTC),
        ).total_price
        assert cat.row_cost(r) == expected


def test_batch_rows_cost_half_the_list_price() -> None:
    cat = Catalogue()
    sync = row("gpt-4o", input_tokens=1_000_000, output_tokens=100_000)
    batch = row("gpt-4o", input_tokens=1_000_000, output_tokens=100_000, batch="true")
    anthropic_batch = row("claude-sonnet-4-20250514", "anthropic", input_tokens=10**6,
                          batch="true", service_tier="batch")  # fmt: skip
    assert cat.row_cost(sync) == Decimal("3.5")
    assert cat.row_cost(batch) == Decimal("1.75")
    assert cat.row_cost(anthropic_batch) == Decimal("1.5")


def test_the_price_in_force_on_each_day_is_used() -> None:
    # OpenAI cut o3 from $10/$40 to $2/$8 per MTok on 2025-06-10.
    cat = Catalogue()
    before = cat.prices("openai", "o3-2025-04-16", date(2025, 6, 9))
    after = cat.prices("openai", "o3-2025-04-16", date(2025, 6, 10))
    assert before is not None and after is not None
    assert (before.input, before.output) == (Decimal("10"), Decimal("40"))
    assert (after.input, after.output) == (Decimal("2"), Decimal("8"))


def test_tiered_prices_are_read_at_the_base_tier_not_from_day_volumes() -> None:
    # Sonnet 4.5 doubles its input price for *requests* over 200k tokens; a day's 10M
    # tokens are many small requests, so the base price applies.
    cat = Catalogue()
    r = row("claude-sonnet-4-5-20250929", "anthropic", batch="", service_tier="standard",
            input_tokens=10_000_000)  # fmt: skip
    assert cat.row_cost(r) == Decimal("30")


def test_service_tier_variants_apply_from_their_start_date() -> None:
    info = Catalogue().model("openai", "gpt-4o-2024-08-06")
    assert info is not None
    assert price_on(info, date(2026, 11, 1), "priority")["input_mtok"] == Decimal("4.25")
    assert price_on(info, date(2026, 10, 1), "priority")["input_mtok"] == Decimal("2.5")
    assert price_on(info, date(2026, 11, 1), "default")["input_mtok"] == Decimal("2.5")


@pytest.mark.parametrize(
    ("provider", "model", "input_price"),
    [
        ("xai", "grok-4-0709", "3"),
        ("bedrock", "us.anthropic.claude-sonnet-4-20250514-v1:0", "3"),
        ("azure_openai", "gpt-4o-2024-08-06", "2.5"),
        ("vertex", "claude-sonnet-4@20250514", "3"),
        ("gemini", "gemini-2.5-flash", "0.3"),
    ],
)
def test_our_provider_ids_map_to_the_catalogues(
    provider: str, model: str, input_price: str
) -> None:
    prices = Catalogue().prices(provider, model, DAY)
    assert prices is not None and prices.input == Decimal(input_price)


def test_an_unknown_model_has_no_price_and_is_logged_once(caplog) -> None:
    cat = Catalogue()
    with caplog.at_level(logging.WARNING, logger="exporter.pricing"):
        for _ in range(3):
            assert cat.prices("openai", "mystery-model-9", DAY) is None
            assert cat.row_cost(row("mystery-model-9", input_tokens=5)) is None
    assert caplog.text.count("mystery-model-9") == 1
    assert cat.row_cost(row("mystery-model-9")) == 0  # no tokens: nothing to price


def test_prices_are_read_offline_from_the_bundled_catalogue(monkeypatch) -> None:
    def no_network(*_args: object, **_kw: object) -> None:
        raise AssertionError("the price catalogue tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    # A process-wide custom snapshot (what genai-prices' updater installs) is ignored.
    fake = data_snapshot.DataSnapshot(providers=[], from_auto_update=True)
    data_snapshot.set_custom_snapshot(fake)
    try:
        prices = Catalogue().prices("openai", "gpt-4o", DAY)
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert prices is not None and prices.input == Decimal("2.5")
    assert update_prices._shared_updater.thread is None  # no background updater started


def test_a_currency_converter_is_applied_to_every_price() -> None:
    with pytest.raises(ValueError, match="needs a USD->EUR converter"):
        Catalogue(currency="EUR")
    cat = Catalogue(currency="EUR", convert=lambda _day, usd: usd * 2)
    prices = cat.prices("openai", "gpt-4o", DAY)
    assert prices is not None and (prices.input, prices.cache_write) == (Decimal(5), Decimal(5))


# --------------------------------------------------------------------------- maps


def test_every_packaged_alternative_is_priced_and_cheaper() -> None:
    cat = Catalogue()
    packaged = packaged_map("alternatives.yaml")
    assert set(packaged) == set(CATALOGUE_PROVIDER)
    for provider, entries in packaged.items():
        for model, target in entries.items():
            now = cat.prices(provider, model, DAY)
            alt = cat.prices(provider, target, DAY)
            assert now is not None, f"{provider} {model} not in the catalogue"
            assert alt is not None, f"{provider} {target} not in the catalogue"
            assert alt.input + alt.output < now.input + now.output, (provider, model, target)
            assert load_maps().alternative(provider, model) == target


def test_snapshot_ids_find_their_alternative_group_and_batch_support() -> None:
    maps = load_maps()
    assert maps.alternative("openai", "gpt-4o-2024-08-06") == "gpt-4o-mini"
    assert maps.alternative("openai", "gpt-4o-mini-2024-07-18") is None
    assert maps.alternative("anthropic", "claude-sonnet-4-20250514") == "claude-haiku-4-5"
    assert maps.alternative("xai", "grok-4-0709") == "grok-4-fast-reasoning"
    assert maps.alternative("bedrock", "us.anthropic.claude-opus-4-20250514-v1:0")
    assert maps.alternative("vertex", "gemini-2.5-pro") == "gemini-2.5-flash"
    assert maps.group("openai", "gpt-4o-2024-08-06") == maps.group("azure_openai", "gpt-4o")
    sonnet = {
        maps.group("anthropic", "claude-sonnet-4-20250514"),
        maps.group("anthropic", "claude-sonnet-4-0"),
        maps.group("bedrock", "eu.anthropic.claude-sonnet-4-20250514-v1:0"),
        maps.group("vertex", "claude-sonnet-4@20250514"),
    }
    assert sonnet == {"claude-sonnet-4"}
    assert maps.group("openai", "gpt-4o-mini") != maps.group("openai", "gpt-4o")
    assert maps.batch_capable("openai", "gpt-4o-mini-2024-07-18")
    assert not maps.batch_capable("openai", "gpt-4o-realtime-preview-2024-12-17")
    assert maps.batch_capable("anthropic", "claude-haiku-4-5-20251001")
    assert not maps.batch_capable("xai", "grok-4-0709")


def test_every_equivalence_route_is_in_the_catalogue() -> None:
    cat = Catalogue()
    maps = load_maps()
    for group, routes in packaged_map("equivalence.yaml").items():
        assert len(routes) >= 2, group
        for provider, models in routes.items():
            for model in [models] if isinstance(models, str) else models:
                assert cat.model(provider, model) is not None, (group, provider, model)
                assert maps.group(provider, model) == group


def test_config_overrides_the_packaged_maps() -> None:
    config = validate(
        {
            "recommendations": {
                "alternatives": {"openai": {"gpt-4o": "gpt-4.1-mini", "gpt-4.1": ""}},
                "equivalence": {"gpt-4o": None, "my-llama": {"bedrock": "meta.llama3-1-70b"}},
                "batch_models": {"xai": ["grok-*"]},
            }
        }
    )
    maps = config.recommendations.maps()
    assert maps.alternative("openai", "gpt-4o-2024-11-20") == "gpt-4.1-mini"
    assert maps.alternative("openai", "gpt-4.1-2025-04-14") is None
    assert maps.group("openai", "gpt-4o") is None
    assert maps.group("bedrock", "us.meta.llama3-1-70b-instruct-v1:0") is None  # family differs
    assert maps.group("bedrock", "meta.llama3-1-70b") == "my-llama"
    assert maps.batch_capable("xai", "grok-4-0709")


def test_override_errors_name_the_problem() -> None:
    with pytest.raises(ConfigErrors) as err:
        validate({"recommendations": {"alternatives": {"openia": {"gpt-4o": "gpt-4o-mini"}}}})
    assert "unknown provider id(s) openia" in str(err.value)
    with pytest.raises(ConfigErrors) as err:
        validate({"recommendations": {"equivalence": {"dup": {"openai": "gpt-4o"}}}})
    assert "in both" in str(err.value)


def test_the_catalogue_has_every_provider_we_map_to() -> None:
    ids = {p.id for p in bundled}
    assert set(CATALOGUE_PROVIDER.values()) <= ids
