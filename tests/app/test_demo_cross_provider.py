"""The demo's GPT-4o on OpenAI and on Azure OpenAI: the cross_provider recommendation
fires end to end (demo fakes -> real provider code -> store -> analytics -> /metrics), with
the cheaper route as target and the saving computed here from the fakes' own truth."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path

import pytest

from exporter.analytics.windows import windows_for
from exporter.app import App, build
from exporter.config import validate
from exporter.demo.azure_openai import generate_subscription
from exporter.demo.openai import generate_org
from exporter.demo.orgs import start_azure_openai, start_openai
from exporter.pricing import model_family
from tests.conftest import TODAY, fixed_clock
from tests.helpers import opened, parse_exposition
from tests.oracles.azure_openai import truth_costs as azure_costs
from tests.oracles.azure_openai import truth_tokens as azure_tokens
from tests.oracles.openai import truth_costs as openai_costs
from tests.oracles.openai import truth_tokens as openai_tokens

DAYS = 45


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[App]:
    with ExitStack() as stack:
        orgs = [start_openai(stack, TODAY, DAYS, 1), start_azure_openai(stack, TODAY, DAYS, 2)]
        env = {k: v for o in orgs for k, v in o.env.items()}
        config = validate(
            {
                "storage": {"path": str(tmp_path / "demo.db")},
                "poll": {"backfill_days": DAYS, "timeout": "5s"},
                "providers": [o.provider for o in orgs],
            }
        )
        app = opened(build(config, clock=fixed_clock, env=env))
        yield app


def test_gpt_4o_on_azure_is_told_to_move_to_openai_with_the_independent_saving(
    demo: App,
) -> None:
    app = demo
    assert app.poll_once()
    # the demo's generators are deterministic: the same seeds give the fakes' truth
    openai = generate_org(today=TODAY, days=DAYS, seed=1)
    azure = generate_subscription(today=TODAY, days=DAYS, seed=2, currency="USD")
    w = next(w for w in windows_for(TODAY) if w.name == "30d")

    samples = parse_exposition(app.rendered.text.decode())
    published = {
        (dict(labels)["project"], dict(labels)["model"]): (dict(labels)["target"], value)
        for (name, labels), value in samples.items()
        if name == "aicost_savings_monthly"
        and dict(labels)["recommendation"] == "cross_provider"
        and dict(labels)["provider"] == "azure_openai"
    }
    # each route's rate: billed token cost / all tokens of the family, 30 complete days
    o_costs = openai_costs(openai, w.start, w.end)
    o_tokens = openai_tokens(openai, w.start, w.end)
    a_costs = azure_costs(azure, w.start, w.end)
    a_tokens = azure_tokens(azure, w.start, w.end)
    want = {}
    for family, azure_model in (("gpt-4o", "gpt-4o-0806"), ("gpt-4o-mini", "gpt-4o-mini-0718")):
        cost = sum(
            (a for (_, m, t), a in o_costs.items() if t == "tokens" and model_family(m) == family),
            Decimal(0),
        )
        tokens = sum(n for (_, m, _), n in o_tokens.items() if model_family(m) == family)
        openai_rate = cost / tokens
        for (resource, model, _), azure_cost in a_costs.items():
            if model != azure_model:
                continue
            n = sum(v for (r, m, _), v in a_tokens.items() if (r, m) == (resource, model))
            assert azure_cost / n > openai_rate  # the Azure deployments are the dearer route
            want[(resource, model)] = ("openai", azure_cost - n * openai_rate)
    assert (
        set(published)
        == set(want)
        == {
            ("contoso-aoai-swc", "gpt-4o-0806"),
            ("contoso-aoai-eus2", "gpt-4o-0806"),
            ("contoso-aoai-swc", "gpt-4o-mini-0718"),
        }
    )
    for stream, (target, saving) in want.items():
        got_target, got = published[stream]
        assert got_target == target
        assert round(Decimal(got), 2) == round(saving, 2), stream
    assert not any(
        dict(labels).get("provider") == "openai" and dict(labels).get("target") == "azure_openai"
        for (name, labels), _ in samples.items()
        if name == "aicost_savings_monthly"
    )
    # the Azure route's cost series exist beside the direct provider's
    cost_providers = {
        dict(labels)["provider"] for (name, labels), _ in samples.items()
        if name == "aicost_cost_30d"
    }  # fmt: skip
    assert {"openai", "azure_openai"} <= cost_providers
