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
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

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


def merge_windowed(
    into: dict[str, dict[Any, Any]],
    part: Mapping[str, Mapping[Any, Any]],
    keep: Container[str] | None = None,
) -> None:
    """Add ``part``'s values per window to ``into`` (the windows in ``keep`` only, when
    given); the parts' keys are disjoint (each carries its own provider and account)."""
    for name, values in part.items():
        if keep is None or name in keep:
            into.setdefault(name, {}).update(values)


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
    # One pass over the rows: daily totals per key (exact), then each window sums days.
    cost_daily: dict[CostKey, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for c in costs:
        cost_daily[CostKey(*c.stream, c.cost_type, c.currency)][c.day] += c.amount
    usage_daily: dict[Stream, dict[date, list[int]]] = defaultdict(dict)
    for u in usage:
        days = usage_daily[u.stream]
        totals = days.get(u.day)
        if totals is None:
            totals = days[u.day] = [0, 0, 0, 0, 0]
        totals[0] += u.input_tokens
        totals[1] += u.output_tokens
        totals[2] += u.cache_read_tokens
        totals[3] += u.cache_write_tokens
        totals[4] += u.requests
    unconverted = [(c.stream, c.cost_type, c.day) for c in withheld]
    out = WindowTotals()
    for w in wins:
        blocked = {(s, t) for s, t, d in unconverted if w.start <= d < w.end}
        cost: dict[CostKey, Decimal] = {}
        for k, daily in cost_daily.items():
            if (k.stream, k.cost_type) in blocked:
                continue
            cost[k] = sum((v for d, v in daily.items() if w.start <= d < w.end), Decimal(0))
        tokens: dict[TokenKey, int] = {}
        requests: dict[Stream, int] = {}
        for s, by_day in usage_daily.items():
            sums = [0, 0, 0, 0, 0]
            for d, totals in by_day.items():
                if w.start <= d < w.end:
                    for i, v in enumerate(totals):
                        sums[i] += v
            for i, t in enumerate(TOKEN_TYPES):
                tokens[TokenKey(*s, t)] = sums[i]
            requests[s] = sums[4]
        out.cost[w.name] = cost
        out.tokens[w.name] = tokens
        out.requests[w.name] = requests
    usage_streams = set(usage_daily)

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
