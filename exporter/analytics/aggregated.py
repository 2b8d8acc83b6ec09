"""Windows and governance from the refresh cube (``analytics/cube.py``), per account.

The same values as the record path (:func:`~exporter.analytics.windows.compute_windows`,
:func:`~exporter.analytics.governance.compute_governance`), which stays the reference the
tests compare with:

* the windows are differences of per-series cumulative sums over the day columns (numpy,
  exact integers; a block with Decimal cells sums them in the record path's order);
* the baselines and forecasts run the record path's per-stream functions on each stream's
  daily series (a few dozen Decimals), and budgets sum the in-scope streams' columns.

Everything per account is cached by (today, the block's generation): after one account's
poll only that account's part is recomputed; budgets (they span accounts) are
recomputed every refresh from the per-stream columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from exporter.analytics import cardinality
from exporter.analytics.anomaly import baseline, new_streams
from exporter.analytics.attribution import project_infos
from exporter.analytics.budgets import budget_status, evaluate_budgets, in_scope
from exporter.analytics.cube import ZERO, Block, Cube, to_decimal
from exporter.analytics.forecast import forecast_period, month_end
from exporter.analytics.rollups import compute_rollups, merge_rollups
from exporter.analytics.windows import history_start, merge_windowed, prev_7d_window, windows_for
from exporter.config import Config, MetricsConfig
from exporter.records import ProjectRecord, Stream
from exporter.snapshot import (
    UNASSIGNED,
    Baseline,
    CostKey,
    Governance,
    Rollups,
    StreamMoney,
    TokenKey,
    WindowTotals,
)

# TokenKey order within a stream (token_type sorted), so merged dicts come out sorted
_SORTED_TOKENS = (2, 3, 0, 1)  # cache_read, cache_write, input, output


@dataclass
class _Part:
    """What one account contributes to a snapshot, valid while ``basis`` holds."""

    basis: tuple[object, ...]
    totals: WindowTotals
    baselines: dict[Stream, Baseline] = field(default_factory=dict)
    forecasts: dict[Stream, Decimal] = field(default_factory=dict)
    series: list[Stream] = field(default_factory=list)  # streams with converted cost
    projects: set[tuple[str, str, str]] = field(default_factory=set)
    rollups: Rollups = field(default_factory=Rollups)  # the account's roll-up families


def _cumulative(a: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Cumulative sums along the day axis with a leading zero column: the sum of the
    columns ``[a, b)`` is ``out[:, b] - out[:, a]``."""
    out = np.zeros((a.shape[0], a.shape[1] + 1, *a.shape[2:]), np.int64)
    np.cumsum(a, axis=1, out=out[:, 1:])
    return out


def _first_seen_order(has: npt.NDArray[np.bool_], seq: npt.NDArray[np.int64]) -> list[int]:
    """Rows in the order the record path meets them: first day with data, then the rowid
    of their first row that day; rows without data are left out."""
    present = np.asarray(has.any(axis=1))
    first = has.argmax(axis=1)
    rows = np.flatnonzero(present)
    first_seq = seq[rows, first[rows]]
    return [int(r) for r in rows[np.lexsort((first_seq, first[rows]))]]


class CubeAnalytics:
    """Windows and governance of a :class:`Cube`, cached per account."""

    def __init__(self, config: Config, cube: Cube) -> None:
        self.config = config
        self.cube = cube
        self._parts: dict[tuple[str, str], _Part] = {}
        self.recomputed = 0  # account parts computed so far (tests, logs)

    def parts(self, today: date) -> list[tuple[Block, _Part]]:
        out = []
        for account, block in self.cube.blocks.items():
            basis = (today, self.cube.start, block.generation)
            part = self._parts.get(account)
            if part is None or part.basis != basis:
                part = self._parts[account] = self._compute(block, today, basis)
                self.recomputed += 1
            out.append((block, part))
        self._parts = {a: p for a, p in self._parts.items() if a in self.cube.blocks}
        return out

    def windows(self, today: date, metrics: MetricsConfig | None = None) -> WindowTotals:
        """:func:`~exporter.analytics.windows.compute_windows` of the cube's days; with
        ``metrics``, only the windows and families it publishes (``cardinality.select``)
        are merged, the rest is never copied out of the per-account parts."""
        windows: set[str] | None = None
        tokens: set[str] | None = None
        if metrics is not None:
            windows = set(metrics.windows)
            tokens = set(cardinality.token_windows(metrics)) if metrics.token_types else set()
        ratios = metrics is None or metrics.stream_ratios
        out = WindowTotals()
        for _block, part in self.parts(today):
            t = part.totals
            merge_windowed(out.cost, t.cost, windows)
            merge_windowed(out.tokens, t.tokens, tokens)
            merge_windowed(out.requests, t.requests, windows)
            if ratios:
                out.cache_hit_ratio.update(t.cache_hit_ratio)
                out.cost_per_1k_tokens.update(t.cost_per_1k_tokens)
                out.cost_per_request.update(t.cost_per_request)
        return out

    def governance(
        self,
        today: date,
        projects: Sequence[ProjectRecord],
        first_seen: Mapping[Stream, date],
    ) -> Governance:
        """:func:`~exporter.analytics.governance.compute_governance` of the cube's days."""
        parts = self.parts(today)
        keys = sorted({k for _, p in parts for k in p.projects})
        infos = project_infos(self.config.attribution, projects, keys=keys)
        attributions = {(i.provider, i.account, i.project): i.attribution for i in infos}
        baselines: dict[Stream, Baseline] = {}
        forecasts: dict[Stream, Decimal] = {}
        for _, part in parts:
            baselines.update(part.baselines)
            forecasts.update(part.forecasts)
        return Governance(
            currency=self.config.currency,
            project_info=infos,
            budgets=self._budgets(today, parts, attributions),
            forecasts=forecasts,
            baselines=baselines,
            new_streams=new_streams(first_seen, today),
        )

    def has_costs(self) -> bool:
        """Whether any converted cost row lies in the cube's days."""
        return any(b.total_has[: len(b.streams)].any() for b in self.cube.blocks.values())

    # -- per account -------------------------------------------------------------------

    def _compute(self, block: Block, today: date, basis: tuple[object, ...]) -> _Part:
        totals, blocked = self._windows(block, today)
        part = _Part(basis, totals, rollups=compute_rollups(today, totals, blocked=blocked))
        cube = self.cube
        assert cube.start is not None
        n = len(block.streams)
        yesterday, first, end = today - timedelta(days=1), today.replace(day=1), month_end(today)
        days = [cube.start + timedelta(days=i) for i in range(cube.days)]
        has = block.total_has[:n]
        if block.exact:
            values: list[list[Any]] = block.total[:n].tolist()
        else:
            assert block.total_dec is not None
            values = block.total_dec[:n].tolist()
        for s in _first_seen_order(has, block.total_seq[:n]):
            stream, row, present = block.streams[s], values[s], has[s]
            daily = {
                days[c]: (to_decimal(v) if block.exact else v)
                for c, v in enumerate(row)
                if present[c]
            }
            part.series.append(stream)
            history = {d: v for d, v in daily.items() if d <= yesterday}
            b = baseline(history, yesterday) if len(history) else None
            if b is not None:
                part.baselines[stream] = b
            part.forecasts[stream] = forecast_period(daily, today, first, end)
        with_usage = np.asarray(block.usage_has[:n].any(axis=1))
        for s, stream in enumerate(block.streams):
            if with_usage[s] or has[s].any():
                part.projects.add(stream[:3])
        return part

    def rollups(self, today: date) -> Rollups:
        """:func:`~exporter.analytics.rollups.compute_rollups` of the cube's days, from the
        per-account parts (an account's roll-ups are kept while its part is)."""
        return merge_rollups(part.rollups for _, part in self.parts(today))

    def _windows(
        self, block: Block, today: date
    ) -> tuple[WindowTotals, dict[str, set[tuple[Stream, str]]]]:
        """The account's windows, and per window the (stream, cost_type) pairs that
        withheld rows keep out of it."""
        cube = self.cube
        days = cube.days

        def col(day: date) -> int:
            return min(max(cube.col(day), 0), days)

        ws = col(history_start(today))
        k, n = len(block.keys), len(block.streams)
        cost_has = block.cost_has[:k]
        present = np.asarray(cost_has[:, ws:].any(axis=1))
        held = _cumulative(block.held[:k].astype(np.int64))
        exact = block.exact
        cost_cum = _cumulative(block.cost[:k]) if exact else None
        dec = block.cost_dec[:k] if block.cost_dec is not None else None
        keys = block.keys
        order = [i for i in sorted(range(k), key=keys.__getitem__) if present[i]]
        usage_of = np.asarray(block.usage_has[:n, ws:].any(axis=1))
        streams = [s for s in sorted(range(n), key=block.streams.__getitem__) if usage_of[s]]
        usage_cum = _cumulative(block.usage[:n])
        out = WindowTotals()
        out_blocked: dict[str, set[tuple[Stream, str]]] = {}
        u30: list[list[int]] = []
        for w in [*windows_for(today), prev_7d_window(today)]:
            a, b = col(w.start), col(w.end)
            blocked = (held[:, b] - held[:, a] > 0).tolist()
            out_blocked[w.name] = {
                (keys[i].stream, keys[i].cost_type) for i, held_ in enumerate(blocked) if held_
            }
            cost: dict[CostKey, Decimal] = {}
            if cost_cum is not None:
                sums = (cost_cum[:, b] - cost_cum[:, a]).tolist()
                for i in order:
                    if not blocked[i]:
                        cost[keys[i]] = to_decimal(sums[i])
            else:
                assert dec is not None
                for i in order:
                    if not blocked[i]:
                        cells = zip(dec[i, a:b].tolist(), cost_has[i, a:b].tolist(), strict=True)
                        cost[keys[i]] = sum((v for v, h in cells if h), ZERO)
            volumes = (usage_cum[:, b] - usage_cum[:, a]).tolist()
            tokens: dict[TokenKey, int] = {}
            requests: dict[Stream, int] = {}
            for s in streams:
                v, tk = volumes[s], block.token_keys[s]
                for t in _SORTED_TOKENS:
                    tokens[tk[t]] = v[t]
                requests[block.streams[s]] = v[4]
            out.cost[w.name], out.tokens[w.name], out.requests[w.name] = cost, tokens, requests
            if w.name == "30d":
                u30 = volumes
        for s in streams:
            input_, _output, cache_read, cache_write, _requests = u30[s]
            if denominator := cache_read + input_ + cache_write:
                out.cache_hit_ratio[block.streams[s]] = cache_read / denominator
        self._rates(block, out, u30, usage_of, ws)
        return out, out_blocked

    def _rates(
        self,
        block: Block,
        out: WindowTotals,
        u30: list[list[int]],
        usage_of: npt.NDArray[np.bool_],
        ws: int,
    ) -> None:
        """Cost per 1k tokens and per request of the 30d window (billed cost: the model
        streams' cost types, summed in the order the record path meets them)."""
        cost30 = out.cost["30d"]
        billed: dict[int, Decimal] = {}
        token_billed: dict[int, Decimal] = {}
        k = len(block.keys)
        for i in _first_seen_order(block.cost_has[:k, ws:], block.cost_seq[:k, ws:]):
            key = block.keys[i]
            amount = cost30.get(key)
            if amount is None or not key.model:
                continue
            s = block.key_stream[i]
            billed[s] = billed.get(s, ZERO) + amount
            if key.cost_type == "tokens":
                token_billed[s] = token_billed.get(s, ZERO) + amount
        currency = self.cube.currency
        for s, amount in token_billed.items():
            all_tokens = sum(u30[s][:4]) if usage_of[s] else 0
            if all_tokens:
                out.cost_per_1k_tokens[StreamMoney.of(block.streams[s], currency)] = (
                    amount * 1000 / all_tokens
                )
        for s, amount in billed.items():
            n = u30[s][4] if usage_of[s] else 0
            if n:
                out.cost_per_request[StreamMoney.of(block.streams[s], currency)] = amount / n
        for name in ("cost_per_1k_tokens", "cost_per_request"):
            setattr(out, name, dict(sorted(getattr(out, name).items())))

    # -- across accounts ---------------------------------------------------------------

    def _budgets(
        self,
        today: date,
        parts: list[tuple[Block, _Part]],
        attributions: Mapping[tuple[str, str, str], Any],
    ) -> list[Any]:
        budgets = self.config.budgets
        if not budgets:
            return []
        cube = self.cube
        assert cube.start is not None
        days = [cube.start + timedelta(days=i) for i in range(cube.days)]
        if not all(block.exact for block, _ in parts):
            return evaluate_budgets(budgets, today, (), attributions, self._series(parts, days))
        out = []
        for budget in budgets:
            totals = np.zeros(cube.days, dtype=object)
            present = np.zeros(cube.days, np.bool_)
            matched = False
            for block, part in parts:
                rows = [
                    block.stream_at[s[2:]]
                    for s in part.series
                    if in_scope(budget.scope, s, attributions.get(s[:3], UNASSIGNED))
                ]
                if rows:
                    matched = True
                    totals += block.total[rows].sum(axis=0, dtype=object)
                    present |= block.total_has[rows].any(axis=0)
            daily = {days[c]: to_decimal(int(totals[c])) for c in np.flatnonzero(present)}
            out.append(budget_status(budget, today, daily, matched))
        return out

    def _series(
        self, parts: list[tuple[Block, _Part]], days: list[date]
    ) -> dict[Stream, dict[date, Decimal]]:
        """Every stream's daily cost in the record path's order (first day, then account,
        then rowid): what a Decimal sum across streams needs to round the same way."""
        found: list[tuple[int, int, int, Stream, dict[date, Decimal]]] = []
        for b_no, (block, part) in enumerate(parts):
            for stream in part.series:
                s = block.stream_at[stream[2:]]
                has = block.total_has[s]
                first = int(has.argmax())
                cells = (
                    block.total_dec[s].tolist()
                    if block.total_dec is not None
                    else [to_decimal(v) for v in block.total[s].tolist()]
                )
                daily = {days[c]: cells[c] for c in np.flatnonzero(has)}
                found.append((first, b_no, int(block.total_seq[s, first]), stream, daily))
        found.sort(key=lambda f: f[:3])
        return {f[3]: f[4] for f in found}
