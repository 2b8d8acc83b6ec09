"""Recommendation inputs: the usage and billed token cost of some days, aggregated.

The savings rules (:mod:`exporter.analytics.recommendations`) never need single rows: they
need volumes per stream, service tier, batch flag, API key and day (a day's catalogue price
is the same for all rows of one model and tier), and billed token cost per stream and day.
:class:`~exporter.analytics.rec_state.RecommendationState` keeps those aggregates in memory
and re-reads only the (account, day)s whose ``day_versions`` moved. Every read of them lives
here, so a change of the usage/costs tables touches this module only.

The usage groups are summed in SQL over the compact rows (SQLite and PostgreSQL alike);
the billed cost is summed from the rows' exact integer pico-units as they are read, with
the conversion rule of ``History.converted_costs_between``; money stays exact (an amount
kept as exact text is added as a :class:`~decimal.Decimal`, in key order).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import NamedTuple

from exporter.store.compact import COST_PK, day_number, day_of, decode_money, from_units
from exporter.store.history import ConversionRule, History, account_days_where

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


def _where(start: date, end: date, account: tuple[str, str] | None) -> tuple[str, list[object]]:
    if account is not None:
        return account_days_where(start, end, account)
    return "day >= ? AND day < ?", [day_number(start), day_number(end)]


def _flag(flag: int, condition: str) -> str:
    return f"MAX(CASE WHEN {condition} THEN {flag} ELSE 0 END)"


_TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
_ANY_TOKENS = " OR ".join(f"{t} <> 0" for t in _TOKENS)
_USAGE_GROUPS = (
    "SELECT day, stream, api_key, batch, service_tier, "
    + ", ".join(f"SUM({t})" for t in _TOKENS)
    + ", "
    + " + ".join(
        (
            _flag(HAS_TOKENS, _ANY_TOKENS),
            _flag(POSITIVE, " + ".join(_TOKENS) + " > 0"),
            _flag(ACTIVE, f"{_ANY_TOKENS} OR requests <> 0"),
            _flag(CACHE_READ, "cache_read_tokens <> 0"),
        )
    )
    + " FROM usage_rows WHERE {where} GROUP BY day, stream, api_key, batch, service_tier"
    # the order the rows meet each group: key order (day, stream, source, api_key, ...)
    " ORDER BY day, stream, MIN(source), api_key, batch, service_tier"
)


def recommendation_usage(
    store: History, start: date, end: date, account: tuple[str, str] | None = None
) -> list[UsageGroup]:
    """Usage of the days ``[start, end)`` (of one (provider, account) if given), grouped by
    stream, API key, batch flag, service tier and day, in the order the rows meet them."""
    where, params = _where(start, end, account)
    with store._lock:
        rows = store.db.execute(_USAGE_GROUPS.format(where=where), params).fetchall()
    streams, label = store._stream_map(), store._labels
    days: dict[int, date] = {}
    out = []
    for d, sid, key, batch, tier, i, o, cr, cw, flags in rows:
        day = days.get(d) or days.setdefault(d, day_of(d))
        p, a, project, model = streams[sid]
        out.append(UsageGroup(p, a, day, project, model, label[key], label[batch], label[tier],
                              int(i), int(o), int(cr), int(cw), int(flags)))  # fmt: skip
    return out


def recommendation_billed(
    store: History,
    start: date,
    end: date,
    currency: str,
    account: tuple[str, str] | None = None,
) -> list[BilledDay]:
    """Billed token cost per stream and day of ``[start, end)`` in ``currency``; cost rows
    without a conversion to it are left out (they are withheld everywhere)."""
    where, params = _where(start, end, account)
    tokens = store._names.get("tokens")
    if tokens is None:
        store._load_names()
        tokens = store._names.get("tokens")
    if tokens is None:  # no cost row of that type was ever stored
        return []
    streams = store._stream_map()
    rule = ConversionRule(store, currency).amount
    totals: dict[tuple[int, int], int | Decimal] = {}  # (day, stream) -> sum in key order
    with store._lock:
        cursor = store.db.execute(
            "SELECT day, stream, currency, amount, amount_exact, fx, fx_status, fx_amount, "
            f"fx_amount_exact FROM cost_rows WHERE {where} AND cost_type = ? "
            f"ORDER BY {', '.join(COST_PK)}",
            [*params, tokens],
        )
        for d, sid, cur, units, exact, fx, status, fx_units, fx_exact in cursor:
            counted = rule(cur, units, exact, fx, status, fx_units, fx_exact)
            if counted is None:  # withheld
                continue
            units, exact = counted
            held = totals.get((d, sid), 0)
            if exact is None and units is not None and isinstance(held, int):
                totals[(d, sid)] = held + units
            else:  # exact text: Decimal from here on (exact sums so far are the same value)
                amount = decode_money(units, exact)
                totals[(d, sid)] = (from_units(held) if isinstance(held, int) else held) + amount
    out = []
    for (d, sid), total in totals.items():
        p, a, project, model = streams[sid]
        if model:
            amount = from_units(total) if isinstance(total, int) else total
            out.append(BilledDay(p, a, day_of(d), project, model, amount))
    return out
