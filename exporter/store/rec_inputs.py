"""Recommendation inputs: the usage and billed token cost of some days, aggregated in SQL.

The savings rules (:mod:`exporter.analytics.recommendations`) never need single rows: they
need volumes per stream, service tier, batch flag, API key and day (a day's catalogue price
is the same for all rows of one model and tier), and billed token cost per stream and day.
:class:`~exporter.analytics.rec_state.RecommendationState` keeps those aggregates in memory
and re-reads only the (account, day)s whose ``day_versions`` moved. Every query of them
lives here, so a change of the usage/costs tables touches this module only.

Money stays exact: SQLite's ``SUM`` of decimal text would be a float, so the billed
amounts of a group are concatenated in SQL and added as :class:`~decimal.Decimal` here.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import NamedTuple

from exporter.store.db import Database

# Flags of a usage group (OR of its rows): which rows it holds.
HAS_TOKENS = 1  # a row with any token count != 0 (priced by ``Catalogue.row_cost``)
POSITIVE = 2  # a row whose tokens add up to > 0 (a "day with data" of the downgrade rule)
ACTIVE = 4  # a row with tokens or requests (a key's last usage day)
CACHE_READ = 8  # a row with cache-read tokens (realised cache savings)

_TOKENS = "(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens)"
_ANY_TOKENS = (
    "(input_tokens != 0 OR output_tokens != 0 OR cache_read_tokens != 0 OR cache_write_tokens != 0)"
)
_USAGE = (
    "SELECT provider, account, day, project, model, api_key, batch, service_tier, "
    "SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_tokens), "
    f"MAX({_ANY_TOKENS}) * {HAS_TOKENS} | MAX({_TOKENS} > 0) * {POSITIVE} "
    f"| MAX({_ANY_TOKENS} OR requests != 0) * {ACTIVE} "
    f"| MAX(cache_read_tokens != 0) * {CACHE_READ} "
    "FROM usage WHERE {where} "
    "GROUP BY provider, account, day, project, model, api_key, batch, service_tier"
)
# The converted amount where the row has one in ``currency``, the source amount where it
# is billed in ``currency``; rows without either are withheld (as converted_costs_between).
_BILLED = (
    "SELECT provider, account, day, project, model, group_concat(CASE "
    "WHEN fx_currency = :currency AND fx_status IN ('final', 'provisional') THEN fx_amount "
    "WHEN currency = :currency THEN amount END, ' ') "
    "FROM costs WHERE {where} AND cost_type = 'tokens' AND model != '' "
    "GROUP BY provider, account, day, project, model"
)


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


class RecommendationInputs(Database):
    """Aggregated reads of the usage and costs tables for the recommendation rules."""

    def recommendation_usage(
        self, start: date, end: date, account: tuple[str, str] | None = None
    ) -> list[UsageGroup]:
        """Usage of the days ``[start, end)`` (of one (provider, account) if given), grouped
        by stream, API key, batch flag, service tier and day."""
        where, params = _where(start, end, account)
        with self._lock:
            rows = self.db.execute(_USAGE.format(where=where), params).fetchall()
        days: dict[str, date] = {}
        return [
            UsageGroup(p, a, days.get(d) or days.setdefault(d, date.fromisoformat(d)), *rest)
            for p, a, d, *rest in rows
        ]

    def recommendation_billed(
        self, start: date, end: date, currency: str, account: tuple[str, str] | None = None
    ) -> list[BilledDay]:
        """Billed token cost per stream and day of ``[start, end)`` in ``currency``; cost rows
        without a conversion to it are left out (they are withheld everywhere)."""
        where, params = _where(start, end, account)
        with self._lock:
            rows = self.db.execute(
                _BILLED.format(where=where), params | {"currency": currency}
            ).fetchall()
        out = []
        for p, a, d, project, model, amounts in rows:
            if amounts is not None:
                total = sum(map(Decimal, amounts.split(" ")), Decimal(0))
                out.append(BilledDay(p, a, date.fromisoformat(d), project, model, total))
        return out


def _where(start: date, end: date, account: tuple[str, str] | None) -> tuple[str, dict[str, str]]:
    where = "day >= :start AND day < :end"
    params = {"start": start.isoformat(), "end": end.isoformat()}
    if account is not None:
        where = f"provider = :provider AND account = :account AND {where}"
        params |= {"provider": account[0], "account": account[1]}
    return where, params
