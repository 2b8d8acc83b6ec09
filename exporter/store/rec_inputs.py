"""Recommendation inputs: the usage and billed token cost of some days, aggregated.

The savings rules (:mod:`exporter.analytics.recommendations`) never need single rows: they
need volumes per stream, service tier, batch flag, API key and day (a day's catalogue price
is the same for all rows of one model and tier), and billed token cost per stream and day.
:class:`~exporter.analytics.rec_state.RecommendationState` keeps those aggregates in memory
and re-reads only the (account, day)s whose ``day_versions`` moved. Every read of them lives
here, so a change of the usage/costs tables touches this module only.

The aggregates are built from the store's own decoded rows of the requested days
(``usage_between`` / ``converted_costs_between`` of one account), which read the compact
tables on SQLite and PostgreSQL alike; money stays an exact :class:`~decimal.Decimal`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import NamedTuple

from exporter.store.history import History

# Flags of a usage group (OR of its rows): which rows it holds.
HAS_TOKENS = 1  # a row with any token count != 0 (priced by ``Catalogue.row_cost``)
POSITIVE = 2  # a row whose tokens add up to > 0 (a "day with data" of the downgrade rule)
ACTIVE = 4  # a row with tokens or requests (a key's last usage day)
CACHE_READ = 8  # a row with cache-read tokens (realised cache savings)


class UsageGroup(NamedTuple):
    """The usage rows of one day sharing every dimension the rules read, summed."""

    provider: str
    account: str
    day: date
    project: str
    model: str
    api_key: str
    batch: str
    service_tier: str
    input: int
    output: int
    cache_read: int
    cache_write: int
    flags: int  # HAS_TOKENS | POSITIVE | ACTIVE | CACHE_READ


class BilledDay(NamedTuple):
    """Billed token cost of one stream (model != "") and day, in the accounting currency."""

    provider: str
    account: str
    day: date
    project: str
    model: str
    amount: Decimal


def recommendation_usage(
    store: History, start: date, end: date, account: tuple[str, str] | None = None
) -> list[UsageGroup]:
    """Usage of the days ``[start, end)`` (of one (provider, account) if given), grouped by
    stream, API key, batch flag, service tier and day."""
    groups: dict[tuple[object, ...], list[int]] = {}
    for u in store.usage_between(start, end, account):
        key = (u.provider, u.account, u.day, u.project, u.model, u.api_key, u.batch,
               u.service_tier)  # fmt: skip
        tokens = (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens)
        any_tokens = any(tokens)
        flags = (
            (HAS_TOKENS if any_tokens else 0)
            | (POSITIVE if sum(tokens) > 0 else 0)
            | (ACTIVE if any_tokens or u.requests else 0)
            | (CACHE_READ if u.cache_read_tokens else 0)
        )
        held = groups.get(key)
        if held is None:
            groups[key] = [*tokens, flags]
        else:
            for i, n in enumerate(tokens):
                held[i] += n
            held[4] |= flags
    return [UsageGroup(*key, *values) for key, values in groups.items()]  # type: ignore[arg-type]


def recommendation_billed(
    store: History,
    start: date,
    end: date,
    currency: str,
    account: tuple[str, str] | None = None,
) -> list[BilledDay]:
    """Billed token cost per stream and day of ``[start, end)`` in ``currency``; cost rows
    without a conversion to it are left out (they are withheld everywhere)."""
    totals: dict[tuple[str, str, date, str, str], Decimal] = {}
    converted, _withheld = store.converted_costs_between(start, end, currency, account)
    for c in converted:
        if c.model and c.cost_type == "tokens":
            key = (c.provider, c.account, c.day, c.project, c.model)
            totals[key] = totals.get(key, Decimal(0)) + c.amount
    return [BilledDay(*key, amount) for key, amount in totals.items()]
