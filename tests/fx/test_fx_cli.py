"""``ai-cost-exporter fx``: the rate of a day, where it came from, and the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest
import yaml

from exporter.app import App, build
from exporter.demo.ecb import FakeEcbServer
from exporter.demo.openai import FakeOpenAIServer, generate_org
from tests.app.test_cli import cli
from tests.conftest import KEY_ENV, make_config
from tests.fx_scenario import AFTER_PUBLICATION, ECB_RATES, FX_TODAY, MutableClock, truth_rate

YESTERDAY = FX_TODAY - timedelta(days=1)


@pytest.fixture
def polled(tmp_path: Path) -> Iterator[tuple[Path, App]]:
    """A history polled and converted to EUR, and a config file pointing at it."""
    clock = MutableClock(AFTER_PUBLICATION)
    org = generate_org(today=FX_TODAY, days=10, seed=5)
    with FakeOpenAIServer(org, now=clock) as openai, FakeEcbServer(ECB_RATES, now=clock) as ecb:
        config = make_config(
            tmp_path, openai.base_url, currency="EUR", fx={"base_url": ecb.base_url},
            poll={"backfill_days": 5},
        )  # fmt: skip
        service = build(config, clock=clock, env={KEY_ENV: org.admin_key})
        assert service.poll_once()
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
        yield path, service
        service.stop()


def test_fx_prints_the_rate_of_the_day_and_its_source(polled: tuple[Path, App]) -> None:
    path, _ = polled
    proc = cli("fx", "--date", YESTERDAY.isoformat(), "--config", str(path))
    assert proc.returncode == 0, proc.stderr
    rate = truth_rate(ECB_RATES, AFTER_PUBLICATION, "USD", "EUR", YESTERDAY)
    usd = ECB_RATES.rate("USD", YESTERDAY)
    assert proc.stdout == (
        f"{YESTERDAY} 1 USD = {rate} EUR (ECB rate of {YESTERDAY}, source ecb-hist-90d, "
        f"final; 1 ÷ {usd} USD/EUR)\n"
    )
    gbp = cli("fx", "--date", YESTERDAY.isoformat(), "--config", str(path), "--currency", "gbp")
    assert f"GBP (ECB rate of {YESTERDAY}" in gbp.stdout


def test_fx_costs_prints_the_audit_trail_of_every_stored_row(
    polled: tuple[Path, App],
) -> None:
    path, service = polled
    rows = service.store.cost_audit(YESTERDAY)
    proc = cli("fx", "--date", YESTERDAY.isoformat(), "--config", str(path), "--costs")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    header = lines[1].split()
    assert header == [
        "provider", "account", "project", "model", "cost_type", "source_amount",
        "source_currency", "rate", "rate_date", "rate_source", "status", "converted",
        "converted_currency",
    ]  # fmt: skip
    assert len(lines) == 2 + len(rows)
    printed = {tuple(line.split()[5:]) for line in lines[2:]}
    for r in rows:
        assert (
            r["amount"], "USD", r["fx_rate"], YESTERDAY.isoformat(), r["fx_source"], "final",
            r["fx_amount"], "EUR",
        ) in printed  # fmt: skip
        exact = Decimal(r["amount"]) * Decimal(r["fx_rate"])  # stored at 12 decimals, half-even
        assert Decimal(r["fx_amount"]) == exact.quantize(Decimal("1E-12"), ROUND_HALF_EVEN)


def test_fx_without_config_uses_the_bundled_history() -> None:
    proc = cli("fx", "--date", "2024-06-29", "--currency", "GBP")  # a Saturday
    assert proc.returncode == 0, proc.stderr
    assert "(ECB rate of 2024-06-28, source bundled, final; " in proc.stdout
    assert proc.stdout.startswith("2024-06-29 1 USD = 0.79063")


def test_fx_without_a_rate_is_an_error() -> None:
    proc = cli("fx", "--date", "1998-06-29", "--currency", "EUR")
    assert proc.returncode == 1
    assert "no rate (no_rate): no ECB rate for USD on or before 1998-06-29" in proc.stdout
    bad = cli("fx", "--date", date(2024, 1, 2).isoformat(), "--currency", "XAU")
    assert bad.returncode == 2 and "XAU has no ECB reference rate" in bad.stderr
    assert cli("fx", "--help").returncode == 0


def test_fx_does_not_create_a_history_that_is_not_there(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"storage": {"path": str(tmp_path / "none.db")}}))
    proc = cli("fx", "--date", "2024-06-28", "--config", str(path), "--costs")
    assert proc.returncode == 1 and "no history at" in proc.stderr
    assert not (tmp_path / "none.db").exists()
