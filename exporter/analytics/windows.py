"""Period totals and 30-day ratios per stream, computed from stored rows.

A *stream* is (provider, account, project, model). Every stream with data in the last 30
complete days or in the current month appears in every window (0 where it had nothing), so
series do not flap in and out as days roll over.

Costs come in converted to the accounting currency (``Store.converted_costs_between``).
A cost row without a usable rate is *withheld*: every money series (stream, cost_type)
whose window contains such a row is left out of that window rather than summed wrong.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from exporter.records import TOKEN_TYPES, CostRecord, Stream, UsageRecord
from exporter.snapshot import CostKey, StreamMoney, TokenKey, WindowTotals


@dataclass(frozen=True)
class Window:
    name: str
    start: date
    end: date  # exclusive


def windows_for(today: date) -> list[Window]:
    first = today.replace(day=1)
    return [
        Window("today", today, today + timedelta(days=1)),
        Window("yesterday", today - timedelta(days=1), today),
        Window("7d", today - timedelta(days=7), today),
        Window("30d", today - timedelta(days=30), today),
        Window("month_to_date", first, today + timedelta(days=1)),
    ]


def prev_7d_window(today: date) -> Window:
    """The 7 complete days before the ``7d`` window (tokens only)."""
    return Window("prev_7d", today - timedelta(days=14), today - timedelta(days=7))


def history_start(today: date) -> date:
    """The oldest day any window needs."""
    return min(w.start for w in windows_for(today))


def compute_windows(
    today: date,
    usage: list[UsageRecord],
    costs: list[CostRecord],
    withheld: Iterable[CostRecord] = (),
) -> WindowTotals:
    """Totals for every window; ``usage``/``costs`` must cover :func:`history_start` .. today.

    ``costs`` are in the accounting currency; ``withheld`` rows (no usable FX rate) remove
    their (stream, cost_type) from every window containing their day.
    """
    wins = [*windows_for(today), prev_7d_window(today)]
    cost_keys = {CostKey(*c.stream, c.cost_type, c.currency) for c in costs}
    usage_streams = {u.stream for u in usage}
    unconverted = list(withheld)
    out = WindowTotals()
    for w in wins:
        blocked = {(c.stream, c.cost_type) for c in unconverted if w.start <= c.day < w.end}
        cost: dict[CostKey, Decimal] = {
            k: Decimal(0) for k in cost_keys if (k.stream, k.cost_type) not in blocked
        }
        for c in costs:
            if w.start <= c.day < w.end and (c.stream, c.cost_type) not in blocked:
                cost[CostKey(*c.stream, c.cost_type, c.currency)] += c.amount
        tokens: dict[TokenKey, int] = {
            TokenKey(*s, t): 0 for s in usage_streams for t in TOKEN_TYPES
        }
        requests: dict[Stream, int] = dict.fromkeys(usage_streams, 0)
        for u in usage:
            if w.start <= u.day < w.end:
                s = u.stream
                for t in TOKEN_TYPES:
                    tokens[TokenKey(*s, t)] += u.tokens(t)
                requests[s] += u.requests
        out.cost[w.name] = cost
        out.tokens[w.name] = tokens
        out.requests[w.name] = requests

    # 30-day ratios (complete days only)
    tok30, req30, cost30 = out.tokens["30d"], out.requests["30d"], out.cost["30d"]
    for s in usage_streams:
        cache_read = tok30[TokenKey(*s, "cache_read")]
        denominator = cache_read + tok30[TokenKey(*s, "input")] + tok30[TokenKey(*s, "cache_write")]
        if denominator:
            out.cache_hit_ratio[s] = cache_read / denominator
    billed: dict[StreamMoney, Decimal] = defaultdict(Decimal)
    token_billed: dict[StreamMoney, Decimal] = defaultdict(Decimal)
    for k, amount in cost30.items():
        if not k.model:
            continue
        money = StreamMoney.of(k.stream, k.currency)
        billed[money] += amount
        if k.cost_type == "tokens":
            token_billed[money] += amount
    for key, amount in token_billed.items():
        all_tokens = sum(tok30.get(TokenKey(*key.stream, t), 0) for t in TOKEN_TYPES)
        if all_tokens:
            out.cost_per_1k_tokens[key] = amount * 1000 / all_tokens
    for key, amount in billed.items():
        n = req30.get(key.stream, 0)
        if n:
            out.cost_per_request[key] = amount / n
    return out
