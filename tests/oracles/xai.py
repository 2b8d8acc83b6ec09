"""Expected answers for a fake xAI team (:class:`exporter.demo.xai.FakeXaiTeam`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from exporter.demo.xai import CENT, FakeXaiTeam


def truth_costs(team: FakeXaiTeam, start: date, end: date) -> dict[tuple[str, str], Decimal]:
    """Dollars by (model, cost_type) over ``[start, end)``; tool units have model ""."""
    out: dict[tuple[str, str], Decimal] = {}
    for r in team.usage:
        if start <= r.day < end:
            key = (r.model if r.cost_type == "tokens" else "", r.cost_type)
            out[key] = out.get(key, Decimal(0)) + r.usd
    return out


def truth_tokens(team: FakeXaiTeam, start: date, end: date) -> dict[tuple[str, str], int]:
    """Tokens by (model, token_type) over ``[start, end)``; zero totals left out."""
    out: dict[tuple[str, str], int] = {}
    for r in team.usage:
        if start <= r.day < end and r.token_type and r.tokens:
            key = (r.model, r.token_type)
            out[key] = out.get(key, 0) + r.tokens
    return out


def truth_preview_total(team: FakeXaiTeam, now: date) -> Decimal:
    """The running total the provider should report: sum of the lines, in dollars."""
    return sum((Decimal(x["amount"]) for x in team.preview_lines(now)), Decimal(0)) / CENT


def truth_period_usd(team: FakeXaiTeam, now: date) -> Decimal:
    """What the daily usage sums to over ``now``'s month so far (dollars, unrounded)."""
    first = now.replace(day=1)
    return sum((r.usd for r in team.usage if first <= r.day <= now), Decimal(0))


def truth_prepaid_remaining(team: FakeXaiTeam, now: date) -> Decimal:
    """Credit left now, in dollars: bought - booked - used this period."""
    left = team.prepaid_purchased_cents - team.prepaid_booked_cents
    return Decimal(left - team.prepaid_used_cents(now)) / CENT
