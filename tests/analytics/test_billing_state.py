"""Billing state: stored as the latest value per account and kind; the invoice gap."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from exporter.analytics.billing import compute_billing, earliest_period_start, period_bounds
from exporter.records import BillingRecord, CostRecord, FetchResult
from exporter.store import Store

D1 = date(2026, 3, 1)
SEEN = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)


def state(kind: str, amount: str, account: str = "team", period: str = "") -> BillingRecord:
    return BillingRecord("xai", account, kind, Decimal(amount), "USD", period, SEEN)


def cost(day: date, amount: str, account: str = "team", currency: str = "USD") -> CostRecord:
    return CostRecord(
        "xai", account, day, "t1", "grok-4", "tokens", Decimal(amount), currency, line_item=amount
    )


def poll(store: Store, account: str, *billing: BillingRecord) -> None:
    store.replace_window("xai", account, FetchResult(D1, D1, billing=list(billing)))


def test_each_poll_replaces_the_accounts_billing_values_exactly(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    poll(store, "team", state("prepaid_balance", "42.50000001"), state("spending_limit", "100"))
    poll(store, "other", state("prepaid_balance", "7", account="other"))
    poll(store, "team", state("invoice_preview", "0.1", period="2026-03"))
    got = {(b.account, b.kind): (b.amount, b.period, b.observed_at) for b in store.billing()}
    assert got == {
        ("other", "prepaid_balance"): (Decimal("7"), "", SEEN),
        ("team", "invoice_preview"): (Decimal("0.1"), "2026-03", SEEN),
    }
    store.close()
    assert [b.kind for b in Store(tmp_path / "h.db").billing()] == [
        "prepaid_balance",
        "invoice_preview",
    ]  # survives a restart


def test_billing_of_another_account_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    with pytest.raises(ValueError, match="another provider account"):
        poll(store, "team", state("prepaid_balance", "1", account="other"))
    assert store.billing() == []


@pytest.mark.parametrize(
    ("period", "bounds"),
    [
        ("2026-03", (date(2026, 3, 1), date(2026, 4, 1))),
        ("2025-12", (date(2025, 12, 1), date(2026, 1, 1))),
        ("2026-13", None),
        ("", None),
        ("March", None),
    ],
)
def test_period_bounds(period: str, bounds: tuple[date, date] | None) -> None:
    assert period_bounds(period) == bounds


def test_the_gap_is_the_preview_minus_that_periods_daily_costs_of_the_same_account() -> None:
    billing = [
        state("invoice_preview", "10.00", period="2026-02"),
        state("prepaid_balance", "5"),
        state("invoice_preview", "3", account="other"),  # no period: no gap
    ]
    costs = [
        cost(date(2026, 1, 31), "100"),  # before the period
        cost(date(2026, 2, 1), "4.1"),
        cost(date(2026, 2, 28), "5.899"),
        cost(date(2026, 3, 1), "100"),  # after it
        cost(date(2026, 2, 2), "1", account="other"),
        cost(date(2026, 2, 2), "1", currency="EUR"),
    ]
    gauges = compute_billing([(b, Decimal(1)) for b in billing], costs, "USD")
    assert gauges.invoice_preview_gap == {("xai", "team", "USD"): Decimal("0.001")}
    assert gauges.invoice_preview == {
        ("xai", "team", "USD"): Decimal("10.00"),
        ("xai", "other", "USD"): Decimal("3"),
    }
    assert gauges.prepaid_balance == {("xai", "team", "USD"): Decimal("5")}
    assert gauges.spending_limit == {}
    assert earliest_period_start(billing) == date(2026, 2, 1)
    assert earliest_period_start([state("prepaid_balance", "1")]) is None


def test_billing_is_converted_at_its_rate_and_the_gap_is_taken_before_conversion() -> None:
    """The gap compares the preview with the daily costs' source (USD) amounts, then
    converts at the preview's rate: own-day rates of the daily costs never leak into it."""
    rate = Decimal("0.9")
    billing = [
        (state("invoice_preview", "10.00", period="2026-02"), rate),
        (state("spending_limit", "100"), rate),
    ]
    costs = [cost(date(2026, 2, 1), "4"), cost(date(2026, 2, 20), "5.5")]
    gauges = compute_billing(billing, costs, "EUR")
    assert gauges.invoice_preview == {("xai", "team", "EUR"): Decimal("9.000")}
    assert gauges.invoice_preview_gap == {("xai", "team", "EUR"): Decimal("0.450")}
    assert gauges.spending_limit == {("xai", "team", "EUR"): Decimal("90.0")}
