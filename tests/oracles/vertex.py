"""Expected answers for a fake billing export (:class:`exporter.demo.vertex.FakeBillingExport`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from exporter.demo.vertex import FakeBillingExport


def truth_by_sku(
    export: FakeBillingExport, start: date, end: date, services: tuple[str, ...]
) -> dict[tuple[date, str], tuple[Decimal, Decimal, Decimal]]:
    """(gross, credits, usage amount) by (usage day, SKU) over regular rows of ``services``."""
    out: dict[tuple[date, str], tuple[Decimal, Decimal, Decimal]] = {}
    for r in export.rows:
        if start <= r.day < end and r.service in services and r.cost_type == "regular":
            g, c, u = out.get((r.day, r.sku), (Decimal(0), Decimal(0), Decimal(0)))
            out[(r.day, r.sku)] = (g + r.cost, c + sum(r.credits, Decimal(0)), u + r.usage_amount)
    return out
