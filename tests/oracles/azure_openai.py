"""Expected answers for a fake Azure subscription (:class:`exporter.demo.azure_openai`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from exporter.demo.azure_openai import AzureCostRow, FakeAzureSubscription


def resource_name(row: AzureCostRow) -> str:
    return row.resource_id.rsplit("/", 1)[-1]


def truth_costs(
    sub: FakeAzureSubscription, start: date, end: date
) -> dict[tuple[str, str, str], Decimal]:
    """Billing-currency cost by (resource, model, cost_type) over ``[start, end)``; meters
    that are not tokens have model "" and cost_type other."""
    out: dict[tuple[str, str, str], Decimal] = {}
    for r in sub.rows:
        if start <= r.day < end:
            key = (resource_name(r), r.model, "tokens" if r.model else "other")
            out[key] = out.get(key, Decimal(0)) + r.cost
    return out


def truth_tokens(
    sub: FakeAzureSubscription, start: date, end: date
) -> dict[tuple[str, str, str], int]:
    """Tokens by (resource, model, token_type) over ``[start, end)``."""
    out: dict[tuple[str, str, str], int] = {}
    for r in sub.rows:
        if start <= r.day < end and r.tokens:
            key = (resource_name(r), r.model, r.token_type)
            out[key] = out.get(key, 0) + r.tokens
    return out
