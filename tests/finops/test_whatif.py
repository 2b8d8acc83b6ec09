"""``whatif``: scaling adds exactly the scaled baseline; a swap prices the observed tokens
at the target's catalogue prices (checked against genai-prices' own calculation)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from genai_prices import Usage, calc_price

from exporter.finops.whatif import ScenarioError, parse_scale, parse_swap
from exporter.pricing import BATCH_DISCOUNT, model_family
from exporter.store import Store
from tests.finops.conftest import DemoHistory
from tests.finops.test_focus import run


def whatif(h: DemoHistory, *args: str) -> dict:
    r = run(h, "whatif", "--format", "json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_baseline_is_the_30_day_run_rate(usd: DemoHistory) -> None:
    doc = whatif(usd)
    store = Store(usd.config.storage.path, read_only=True)
    try:
        costs = store.costs_between(usd.today - timedelta(days=30), usd.today)
    finally:
        store.close()
    assert Decimal(doc["baseline"]["total"]) == sum(c.amount for c in costs)
    assert doc["scenario"] == doc["baseline"] and doc["window"]["days"] == 30
    for part in ("by_project", "by_model"):
        assert sum(Decimal(v) for v in doc["baseline"][part].values()) == Decimal(
            doc["baseline"]["total"]
        )


def test_scaling_a_project_by_2_adds_exactly_its_baseline(usd: DemoHistory) -> None:
    base = whatif(usd)["baseline"]
    key, amount = max(base["by_project"].items(), key=lambda kv: Decimal(kv[1]))
    project = key.split("/", 2)[2]
    doc = whatif(usd, "--scale", f"project={project}:2")
    change = Decimal(doc["scenario"]["total"]) - Decimal(doc["baseline"]["total"])
    assert change == Decimal(amount) and change > 0
    assert Decimal(doc["scenario"]["by_project"][key]) == 2 * Decimal(amount)
    others = {k: v for k, v in doc["scenario"]["by_project"].items() if k != key}
    assert others == {k: v for k, v in base["by_project"].items() if k != key}


def test_scaling_a_model_family(usd: DemoHistory) -> None:
    doc = whatif(usd, "--scale", "model=gpt-4o:0")
    assert Decimal(doc["scenario"]["by_model"]["openai/gpt-4o-2024-08-06"]) == 0
    assert (
        doc["scenario"]["by_model"]["openai/gpt-4o-mini-2024-07-18"]
        == (doc["baseline"]["by_model"]["openai/gpt-4o-mini-2024-07-18"])
    )


def genai_cost(model: str, provider: str, rows: list) -> Decimal:
    """The target's price of observed tokens, from genai-prices' own per-usage calculation
    (its input_tokens include cached ones); batch rows at the batch discount."""
    total = Decimal(0)
    for u in rows:
        usage = Usage(
            input_tokens=u.input_tokens + u.cache_read_tokens + u.cache_write_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens,
            output_tokens=u.output_tokens,
        )
        price = calc_price(usage, model, provider_id=provider).total_price
        total += Decimal(price) * (BATCH_DISCOUNT if u.batch == "true" else 1)
    return total


def test_a_swap_prices_observed_tokens_at_the_targets_catalogue_prices(usd: DemoHistory) -> None:
    """On every provider that has gpt-4o (OpenAI and the demo's Azure deployment), its
    tokens are priced at gpt-4o-mini on that provider's catalogue entry."""
    doc = whatif(usd, "--swap", "gpt-4o:gpt-4o-mini")
    start, end = usd.today - timedelta(days=30), usd.today

    def is_source(model: str) -> bool:  # gpt-4o-2024-08-06 (OpenAI), gpt-4o-0806 (Azure)
        return model_family(model) == "gpt-4o"

    store = Store(usd.config.storage.path, read_only=True)
    try:
        usage = [u for u in store.usage_between(start, end) if is_source(u.model)]
        converted, _ = store.converted_costs_between(start, end, "USD")
    finally:
        store.close()
    known = {(*u.stream, u.day) for u in usage}  # stream-days whose tokens are stored
    billed = sum(
        c.amount
        for c in converted
        if is_source(c.model) and c.cost_type == "tokens" and (*c.stream, c.day) in known
    )
    kept = sum(
        c.amount for c in converted if is_source(c.model) and (*c.stream, c.day) not in known
    )
    assert usage and billed
    expected = Decimal(0)
    for provider in sorted({u.provider for u in usage}):
        # the genai-prices provider id of each route: openai, azure (Azure OpenAI)
        catalogue_id = {"openai": "openai", "azure_openai": "azure"}[provider]
        cost = genai_cost("gpt-4o-mini", catalogue_id, [u for u in usage if u.provider == provider])
        assert Decimal(doc["scenario"]["by_model"][f"{provider}/gpt-4o-mini"]) == cost
        expected += cost
    change = Decimal(doc["scenario"]["total"]) - Decimal(doc["baseline"]["total"])
    assert abs(change - (expected - billed)) < Decimal("1e-18") and change < 0
    # a route whose tokens are not stored keeps its billed cost
    left = sum(Decimal(v) for k, v in doc["scenario"]["by_model"].items()
               if is_source(k.split("/", 1)[1]))  # fmt: skip
    assert abs(left - kept) < Decimal("1e-18")


def test_table_and_errors(usd: DemoHistory) -> None:
    r = run(usd, "whatif", "--swap", "gpt-4o:no-such-model")
    assert r.returncode == 2 and "no-such-model" in r.stderr and "catalogue" in r.stderr
    r = run(usd, "whatif", "--scale", "team=x:2")
    assert r.returncode == 2 and "project=ID:FACTOR" in r.stderr
    r = run(usd, "whatif", "--scale", "project=p:two")
    assert r.returncode == 2 and "not a number" in r.stderr
    table = run(usd, "whatif", "--scale", "model=gpt-4o:2").stdout
    assert "BASELINE" in table and table.splitlines()[-1].startswith("TOTAL  baseline")


@pytest.mark.parametrize("bad", ["project=:2", "model=x", "x=y:1", "project=p:-1"])
def test_parse_scale_rejects(bad: str) -> None:
    with pytest.raises(ScenarioError):
        parse_scale(bad)


def test_parse() -> None:
    assert parse_scale("project=proj_1:2.5").factor == Decimal("2.5")
    assert parse_swap("gpt-4o:gpt-4o-mini").target == "gpt-4o-mini"
    with pytest.raises(ScenarioError):
        parse_swap("gpt-4o")
