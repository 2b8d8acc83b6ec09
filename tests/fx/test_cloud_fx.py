"""Cloud costs in the accounting currency, to the cent, end to end over loopback HTTP.

Bedrock bills in USD and is published in EUR; the Vertex billing export of this scenario
bills in EUR and is published in USD. Each day's cost is converted at that day's rate of
the fake ECB; the expected values come from the fakes' own truth and the fake ECB's rate
table (``tests/fx_scenario.py``), independently of ``exporter.fx`` and the providers.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from exporter.analytics.windows import windows_for
from exporter.app import App, build
from exporter.config import Config
from exporter.demo.bedrock import FakeBedrockAccount, FakeBedrockServer, generate_account
from exporter.demo.ecb import FakeEcbServer
from exporter.demo.vertex import FakeBigQueryServer, FakeBillingExport, generate_export
from tests.conftest import ALL_FAMILIES
from tests.fx_scenario import AFTER_PUBLICATION, ECB_RATES, FX_TODAY, MutableClock, truth_rate
from tests.helpers import cloud_extra, parse_exposition
from tests.oracles.bedrock import truth_bedrock_other, truth_token_costs

# The demo export's SKUs name these models (independent of the provider's SKU parser).
VERTEX_MODELS = {
    "Claude Sonnet 4.5": "claude-sonnet-4-5",
    "Gemini 2.5 Pro": "gemini-2.5-pro",
    "gemini 2.5 flash": "gemini-2.5-flash",
}


def vertex_model(sku: str) -> str:
    return next(model for name, model in VERTEX_MODELS.items() if name in sku)


@pytest.fixture
def fakes() -> Iterator[tuple[FakeBedrockServer, FakeBigQueryServer, FakeEcbServer]]:
    cloud_extra("boto3", "aws")
    cloud_extra("google.cloud.bigquery", "gcp")
    clock = MutableClock(AFTER_PUBLICATION)
    account = generate_account(today=FX_TODAY, days=40, seed=2)
    export = generate_export(today=FX_TODAY, days=40, seed=2, currency="EUR")
    with (
        FakeBedrockServer(account, now=clock) as bedrock,
        FakeBigQueryServer(export, now=clock) as vertex,
        FakeEcbServer(ECB_RATES, now=clock) as ecb,
    ):
        yield bedrock, vertex, ecb


def app_in(
    currency: str,
    tmp_path: Path,
    fakes: tuple[FakeBedrockServer, FakeBigQueryServer, FakeEcbServer],
    providers: list[dict[str, object]],
) -> App:
    config = Config.model_validate(
        {
            "currency": currency,
            "storage": {"path": str(tmp_path / f"{currency}.db")},
            "poll": {"backfill_days": 40, "max_attempts": 1},
            "fx": {"base_url": fakes[2].base_url},
            "providers": providers,
            "metrics": ALL_FAMILIES,  # every per-stream window is checked
        }
    )
    app = build(config, clock=MutableClock(AFTER_PUBLICATION))
    assert app.poll_once(), [p.health for p in app.pollers]
    return app


def published(app: App, provider: str, window: str) -> dict[tuple[str, str], tuple[Decimal, str]]:
    out = {}
    for (name, labels), value in parse_exposition(app.rendered.text.decode()).items():
        d = dict(labels)
        if name == f"aicost_cost_{window}" and d["provider"] == provider:
            out[(d["model"], d["cost_type"])] = (Decimal(repr(value)), d["currency"])
    return out


def assert_equal(
    got: dict[tuple[str, str], tuple[Decimal, str]],
    want: dict[tuple[str, str], Decimal],
    currency: str,
) -> None:
    assert got.keys() == {k for k, v in want.items() if v}
    for key, amount in want.items():
        value, label = got[key]
        assert label == currency
        assert round(value, 2) == round(amount, 2), key
        assert abs(value - amount) < Decimal("1e-9"), key


def bedrock_truth(
    account: FakeBedrockAccount, start: date, end: date
) -> dict[tuple[str, str], Decimal]:
    want: dict[tuple[str, str], Decimal] = {}
    for (day, model, _), usd in truth_token_costs(account, start, end).items():
        rate = truth_rate(ECB_RATES, AFTER_PUBLICATION, "USD", "EUR", day)
        want[(model, "tokens")] = want.get((model, "tokens"), Decimal(0)) + usd * rate
    other = Decimal(0)
    for n in range((end - start).days):
        day = date.fromordinal(start.toordinal() + n)
        usd = truth_bedrock_other(account, day, date.fromordinal(day.toordinal() + 1))
        other += usd * truth_rate(ECB_RATES, AFTER_PUBLICATION, "USD", "EUR", day)
    want[("", "other")] = other
    return want


def vertex_truth(
    export: FakeBillingExport, start: date, end: date
) -> dict[tuple[str, str], Decimal]:
    want: dict[tuple[str, str], Decimal] = {}
    for r in export.rows:
        if start <= r.day < end and r.cost_type == "regular":
            rate = truth_rate(ECB_RATES, AFTER_PUBLICATION, r.currency, "USD", r.day)
            model = vertex_model(r.sku)
            want[(model, "tokens")] = want.get((model, "tokens"), Decimal(0)) + r.cost * rate
            if r.credits:
                credit = sum(r.credits, Decimal(0)) * rate
                want[(model, "credit")] = want.get((model, "credit"), Decimal(0)) + credit
    return want


def test_bedrock_usd_costs_are_published_in_eur_at_each_days_rate(
    tmp_path: Path, fakes: tuple[FakeBedrockServer, FakeBigQueryServer, FakeEcbServer]
) -> None:
    bedrock = fakes[0]
    folder = tmp_path / "aws"
    folder.mkdir()
    (folder / "credentials").write_text(
        f"[default]\naws_access_key_id = {bedrock.org.access_key_id}\n"
        f"aws_secret_access_key = {bedrock.org.secret_access_key}\n"
    )
    block = {
        "type": "bedrock",
        "account_id": bedrock.org.account_id,
        "base_url": bedrock.base_url,
        "cloudwatch_url": bedrock.base_url,
        "credentials_file": str(folder / "credentials"),
    }
    app = app_in("EUR", tmp_path, fakes, [block])
    try:
        for w in windows_for(FX_TODAY):
            assert_equal(
                published(app, "bedrock", w.name), bedrock_truth(bedrock.org, w.start, w.end), "EUR"
            )
    finally:
        app.stop()


def test_vertex_eur_gross_and_credits_are_published_in_usd_at_each_days_rate(
    tmp_path: Path, fakes: tuple[FakeBedrockServer, FakeBigQueryServer, FakeEcbServer]
) -> None:
    vertex = fakes[1]
    block = {
        "type": "vertex",
        "billing_table": vertex.org.table,
        "base_url": vertex.base_url,
        "anonymous": True,
    }
    app = app_in("USD", tmp_path, fakes, [block])
    try:
        for w in windows_for(FX_TODAY):
            assert_equal(
                published(app, "vertex", w.name), vertex_truth(vertex.org, w.start, w.end), "USD"
            )
        audit = app.store.cost_audit(FX_TODAY - timedelta(days=3))
        assert {(a["currency"], a["fx_currency"]) for a in audit} == {("EUR", "USD")}
    finally:
        app.stop()
