"""Roll-up families: per model, per project and per account totals of every window.

They are always published, whatever ``metrics`` trims from the per-stream families, and
their series do not grow with streams x models (issue 17): the shipped dashboards and
alerts read them. Each is the exact (``Decimal`` / ``int``) sum of the per-stream
:class:`WindowTotals` of its streams, computed BEFORE ``metrics`` selects windows and
families, so a roll-up window exists even where the per-stream one is trimmed.

Withheld costs (no usable FX rate) withhold their group too: a (group, cost_type) whose
window contains a withheld row of one of its streams is left out of that window, like
the stream itself, instead of being summed without it. The model's 30-day ratios follow
the per-stream definitions on the summed tokens, requests and costs; a ratio whose cost
is withheld is left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import TypeVar

from exporter.analytics.windows import merge_windowed, prev_7d_window, windows_for
from exporter.records import TOKEN_TYPES, CostRecord, Stream
from exporter.snapshot import (
    WINDOW_NAMES,
    AccountKey,
    CostLabels,
    Currency,
    LevelTotals,
    ModelKey,
    ProjectKey,
    Rollups,
    TokenLabel,
    WindowTotals,
)

K = TypeVar("K", ModelKey, ProjectKey, AccountKey)


def model_key(s: Stream) -> ModelKey:
    return ModelKey(s.provider, s.account, s.model)


def project_key(s: Stream) -> ProjectKey:
    return ProjectKey(s.provider, s.account, s.project)


def account_key(s: Stream) -> AccountKey:
    return AccountKey(s.provider, s.account)


def _level(
    totals: WindowTotals,
    key_of: Callable[[Stream], K],
    blocked: Mapping[str, set[tuple[Stream, str]]],
    tokens: bool,
) -> LevelTotals[K]:
    out: LevelTotals[K] = LevelTotals()
    for window, by_key in totals.cost.items():
        if window not in WINDOW_NAMES:  # prev_7d is for tokens only
            continue
        cost: dict[tuple[K, CostLabels], Decimal] = defaultdict(Decimal)
        for k, amount in by_key.items():
            cost[key_of(k.stream), CostLabels(k.cost_type, k.currency)] += amount
        stopped = {(key_of(s), t) for s, t in blocked.get(window, ())}
        out.cost[window] = {k: v for k, v in cost.items() if (k[0], k[1].cost_type) not in stopped}
    for window, by_stream in totals.requests.items():
        if window not in WINDOW_NAMES:
            continue
        requests: dict[K, int] = defaultdict(int)
        for s, n in by_stream.items():
            requests[key_of(s)] += n
        out.requests[window] = dict(requests)
    if tokens:
        for window, by_token in totals.tokens.items():
            summed: dict[tuple[K, TokenLabel], int] = defaultdict(int)
            for t, n in by_token.items():
                summed[key_of(Stream(*t[:4])), TokenLabel(t.token_type)] += n
            out.tokens[window] = dict(summed)
    return out


def blocked_by_window(
    today: date, withheld: Iterable[CostRecord]
) -> dict[str, set[tuple[Stream, str]]]:
    """Window -> the (stream, cost_type) pairs a withheld row keeps out of it."""
    rows = [(c.stream, c.cost_type, c.day) for c in withheld]
    return {
        w.name: {(s, t) for s, t, d in rows if w.start <= d < w.end}
        for w in [*windows_for(today), prev_7d_window(today)]
    }


def compute_rollups(
    today: date,
    totals: WindowTotals,
    withheld: Iterable[CostRecord] = (),
    *,
    blocked: Mapping[str, set[tuple[Stream, str]]] | None = None,
) -> Rollups:
    """The roll-ups of ``totals`` (all windows and families, before ``metrics`` trims).

    What is withheld comes as the withheld rows, or as ``blocked`` (window -> the
    (stream, cost_type) pairs withheld rows keep out of it) where the caller knows it."""
    if blocked is None:
        blocked = blocked_by_window(today, withheld)
    out = Rollups(
        model=_level(totals, model_key, blocked, tokens=True),
        project=_level(totals, project_key, blocked, tokens=False),
        account=_level(totals, account_key, blocked, tokens=True),
    )
    for window, by_token in totals.tokens.items():
        project_tokens: dict[ProjectKey, int] = defaultdict(int)
        for t, n in by_token.items():
            project_tokens[ProjectKey(t.provider, t.account, t.project)] += n
        out.project_tokens[window] = dict(project_tokens)
    _model_ratios(out, blocked.get("30d", set()))
    return out


def _model_ratios(out: Rollups, blocked_30d: set[tuple[Stream, str]]) -> None:
    """30-day cache-hit ratio, cost per 1k tokens and cost per request per model."""
    tok30 = out.model.tokens.get("30d", {})
    req30 = out.model.requests.get("30d", {})
    by_model: dict[ModelKey, dict[str, int]] = defaultdict(dict)
    for (m, label), n in tok30.items():
        by_model[m][label.token_type] = n
    for m, types in by_model.items():
        read = types.get("cache_read", 0)
        denominator = read + types.get("input", 0) + types.get("cache_write", 0)
        if denominator:
            out.cache_hit_ratio[m] = read / denominator
    stopped = {model_key(s) for s, _ in blocked_30d}
    billed: dict[tuple[ModelKey, Currency], Decimal] = defaultdict(Decimal)
    for (m, labels), amount in out.model.cost.get("30d", {}).items():
        if not m.model:
            continue
        money = (m, Currency(labels.currency))
        billed[money] += amount
        if labels.cost_type == "tokens":
            all_tokens = sum(by_model.get(m, {}).get(t, 0) for t in TOKEN_TYPES)
            if all_tokens:
                out.cost_per_1k_tokens[money] = amount * 1000 / all_tokens
    for money, amount in billed.items():
        if money[0] in stopped:  # one of its cost types is withheld: the sum is not all
            continue
        if requests := req30.get(money[0], 0):
            out.cost_per_request[money] = amount / requests


def merge_rollups(parts: Iterable[Rollups]) -> Rollups:
    """The roll-ups of several accounts together (their keys are disjoint: every level
    key carries provider and account), e.g. the per-account parts a refresh kept."""
    out = Rollups()
    for r in parts:
        for mine, theirs in (
            (out.model, r.model),
            (out.project, r.project),
            (out.account, r.account),
        ):
            merge_windowed(mine.cost, theirs.cost)
            merge_windowed(mine.tokens, theirs.tokens)
            merge_windowed(mine.requests, theirs.requests)
        merge_windowed(out.project_tokens, r.project_tokens)
        out.cache_hit_ratio.update(r.cache_hit_ratio)
        out.cost_per_1k_tokens.update(r.cost_per_1k_tokens)
        out.cost_per_request.update(r.cost_per_request)
    return out
