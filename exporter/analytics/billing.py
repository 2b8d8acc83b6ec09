"""Billing-state gauges: prepaid balance, spending limit, invoice preview and its gap.

Pure functions over stored rows. The gap cross-checks the two ways a provider reports the
same money: the invoice preview's running total of a billing period minus the daily costs
stored for that period (same provider, account and currency). Near zero when the daily
data is complete; a provider's rounding, late revisions or a gap in the history show up
as a difference.

Money is exposed in the accounting currency: each billing value is converted at the rate
of the day it was observed (the caller looks the rate up; a value without a rate is left
out). The gap is taken in the billing value's own currency, against the source amounts of
the daily costs, and only then converted at the preview's rate, so that the daily costs'
own-day rates never show up as a difference.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from exporter.records import BillingRecord, CostRecord
from exporter.snapshot import AccountMoney, BillingGauges

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


def period_bounds(period: str) -> tuple[date, date] | None:
    """``"2026-03"`` -> (2026-03-01, 2026-04-01); None for "" or anything else."""
    match = _PERIOD.match(period)
    if not match or not 1 <= int(match.group(2)) <= 12:
        return None
    year, month = int(match.group(1)), int(match.group(2))
    first = date(year, month, 1)
    following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return first, following


def earliest_period_start(billing: list[BillingRecord]) -> date | None:
    """The first day of the oldest billing period any invoice preview refers to."""
    starts = [
        bounds[0]
        for b in billing
        if b.kind == "invoice_preview" and (bounds := period_bounds(b.period))
    ]
    return min(starts, default=None)


def compute_billing(
    billing: Iterable[tuple[BillingRecord, Decimal]], costs: list[CostRecord], currency: str
) -> BillingGauges:
    """Gauges in ``currency`` for every ``(billing value, rate)``.

    ``rate``: units of ``currency`` per unit of the value's own currency on the day it was
    observed. ``costs`` are source rows (as billed) and must cover every preview's period.
    """
    out = BillingGauges()
    for b, rate in billing:
        key = AccountMoney(b.provider, b.account, currency)
        if b.kind == "prepaid_balance":
            out.prepaid_balance[key] = b.amount * rate
        elif b.kind == "spending_limit":
            out.spending_limit[key] = b.amount * rate
        elif b.kind == "invoice_preview":
            out.invoice_preview[key] = b.amount * rate
            bounds = period_bounds(b.period)
            if bounds is None:
                continue  # no period, nothing to compare with
            first, following = bounds
            source = (b.provider, b.account, b.currency)
            daily = sum(
                (
                    c.amount
                    for c in costs
                    if (c.provider, c.account, c.currency) == source and first <= c.day < following
                ),
                Decimal(0),
            )
            out.invoice_preview_gap[key] = (b.amount - daily) * rate
    return out
