"""The recommendation rules over maintained aggregates, recomputed only for changed accounts.

:mod:`exporter.analytics.recommendations` states every rule over usage and cost records;
this module gives the same :class:`Findings` without holding a single record:

* per account, compact arrays of the aggregates the rules read
  (:func:`~exporter.store.rec_inputs.recommendation_usage` / ``recommendation_billed``): token
  counts per (project, model, batch flag, service tier) x day of the last 30 days, per
  (API key, project, model, batch flag, service tier) x day of the 61 days the key rule
  reads, the days with any usage, and billed token cost per stream x day (exact: int64
  units of 10**-12, an amount with more decimals kept aside as a Decimal);
* on each refresh the store's ``day_versions`` say which (account, day)s were written since;
  only those days are re-read (a poll: one account's lookback days), and the per-account
  rules (batch, downgrade, inactive keys, cache savings) rerun only for an account whose
  days, API keys or date changed;
* the cross-provider rule compares accounts: each account keeps its routes' 30-day tokens
  and billed cost, so the rule reads a few numbers per stream, never the history.

Prices come from :meth:`Catalogue.prices` once per (model, service tier, day) and each group's
days are summed per *price epoch* (the days sharing one price), then priced: Σ tokens x price
is exact, so the figures equal the record-based rules' (tests/analytics/test_rec_state.py
checks that on random histories). A new UTC day shifts the arrays and re-reads the days
from the old today on; only the first refresh (or one after a gap of 30 days or more)
reads the 61 days.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from functools import partial
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from exporter.analytics.recommendations import (
    MONTH_DAYS,
    STANDARD_TIERS,
    Findings,
    KeySpend,
    Recommendation,
    Route,
    batch_finding,
    cross_provider_findings,
    downgrade_finding,
    inactive_key_findings,
    last_30,
    recommendations_start,
)
from exporter.config import RecommendationsConfig
from exporter.pricing import BATCH_DISCOUNT, MTOK, Catalogue, ModelMaps, UnitPrices
from exporter.records import TOKEN_TYPES, ApiKeyRecord, Stream
from exporter.store import Store
from exporter.store.rec_inputs import (
    ACTIVE,
    CACHE_READ,
    HAS_TOKENS,
    POSITIVE,
    UsageGroup,
    recommendation_billed,
    recommendation_usage,
)

PRESENT = 16  # the group has rows on that day (the store's flags use the lower bits)
_FLAG_BITS = (HAS_TOKENS, POSITIVE, ACTIVE, CACHE_READ, PRESENT)
WINDOW = 2 * MONTH_DAYS + 1  # days 31-60, the last 30 days and today
_READ_DAYS = 8  # days read per query when an account is read from scratch
_BIG = 1 << 57  # billed units below this add up in int64 over 30 days

Account = tuple[str, str]  # provider, account
_BilledDay = tuple[date, str, str, Decimal]  # day, project, model, billed token cost
Ints = npt.NDArray[np.int64]


class _Volume(NamedTuple):
    """Summed token counts of a group over some days (what ``UnitPrices`` prices)."""

    input: int
    output: int
    cache_read: int
    cache_write: int

    def tokens(self, token_type: str) -> int:
        count: int = getattr(self, token_type)  # Python ints already (from ndarray.tolist())
        return count


class _ColKey(NamedTuple):
    """What decides a day's cost of a group: its price, the alternative model's, a flag."""

    price: UnitPrices | None
    alternative: UnitPrices | None
    extra: bool


def _cost(price: UnitPrices, volume: _Volume, batch: str) -> Decimal:
    """List-price cost of ``volume`` (batch at the batch discount), as ``UnitPrices.cost``."""
    cost = price.tokens_cost(volume)
    return cost * BATCH_DISCOUNT if batch == "true" else cost


class _Table:
    """Token counts (4 x groups x days, int64) and flags (groups x days) of usage groups."""

    def __init__(self, days: int) -> None:
        self.days = days
        self.index: dict[tuple[str, ...], int] = {}
        self.dims: list[tuple[str, ...]] = []
        self.tokens: Ints = np.zeros((4, 0, days), np.int64)
        self.flags: npt.NDArray[np.uint8] = np.zeros((0, days), np.uint8)
        self._summary: tuple[list[_Volume], list[int]] | None = None

    def summary(self) -> tuple[list[_Volume], list[int]]:
        """Per group: its volume over all the days, and the OR of its flags (cached until
        the table changes)."""
        if self._summary is None:
            n = len(self.dims)
            sums = self.tokens[:, :n].sum(axis=2).T.tolist()
            ors = np.bitwise_or.reduce(self.flags[:n], axis=1).tolist()
            self._summary = ([_Volume(*v) for v in sums], ors)
        return self._summary

    def nbytes(self) -> int:
        return int(self.tokens.nbytes + self.flags.nbytes)

    def clear(self, cols: slice) -> None:
        self.tokens[:, :, cols] = 0
        self.flags[:, cols] = 0
        self._summary = None

    def shift(self, days: int) -> None:
        """Move every column ``days`` to the left (the window moved on); new ones are 0."""
        self.tokens[:, :, :-days] = self.tokens[:, :, days:].copy()
        self.flags[:, :-days] = self.flags[:, days:].copy()
        self.clear(slice(self.days - days, self.days))

    def add(self, entries: Sequence[tuple[tuple[str, ...], int, UsageGroup]]) -> None:
        """Add ``(dims, column, group)`` entries (several may fall in one cell)."""
        if not entries:
            return
        self._summary = None
        gids = [self._gid(dims) for dims, _, _ in entries]
        self._grow()
        cols = [c for _, c, _ in entries]
        for t, name in enumerate(TOKEN_TYPES):
            values = [getattr(g, name) for _, _, g in entries]
            np.add.at(self.tokens[t], (gids, cols), values)
        flags = [g.flags | PRESENT for _, _, g in entries]
        np.bitwise_or.at(self.flags, (gids, cols), np.array(flags, np.uint8))

    def _gid(self, dims: tuple[str, ...]) -> int:
        gid = self.index.get(dims)
        if gid is None:
            gid = self.index[dims] = len(self.dims)
            self.dims.append(dims)
        return gid

    def _grow(self) -> None:
        have, need = self.flags.shape[0], len(self.dims)
        if need <= have:
            return
        size = need if have == 0 else max(need, have + have // 4 + 16)
        tokens = np.zeros((4, size, self.days), np.int64)
        tokens[:, :have] = self.tokens
        flags = np.zeros((size, self.days), np.uint8)
        flags[:have] = self.flags
        self.tokens, self.flags = tokens, flags

    def epochs(
        self, gids: Sequence[int], ids: npt.NDArray[np.intp], n: int
    ) -> list[tuple[int, list[_Volume], list[int]]]:
        """Per column key id ``k < n`` (``ids``: the key id of each column): (k, each
        group's summed volume, each group's OR of flags) over the columns with that id."""
        rows = list(gids)
        tokens, flags = self.tokens[:, rows], self.flags[rows]
        onehot = (ids[:, None] == np.arange(n)[None, :]).astype(np.int64)  # day x epoch
        sums = tokens @ onehot  # 4 x groups x epochs: each epoch's columns summed
        ors = np.zeros((len(rows), n), np.uint8)
        for bit in _FLAG_BITS:  # the OR of a flag over an epoch's columns: any column has it
            ors |= (((flags & bit) != 0).astype(np.int64) @ onehot > 0).astype(np.uint8) * bit
        by_epoch = sums.transpose(2, 1, 0).tolist()  # epochs x groups x token types
        flags_by_epoch = ors.T.tolist()
        return [(k, [_Volume(*v) for v in by_epoch[k]], flags_by_epoch[k]) for k in range(n)]


class _Billed:
    """Billed token cost per stream x day, exact: int64 units of 10**-SCALE (an amount with
    more decimals, or too large for that, is kept aside as a Decimal)."""

    SCALE = 12

    def __init__(self, days: int) -> None:
        self.days = days
        self.index: dict[tuple[str, str], int] = {}
        self.coef: Ints = np.zeros((0, days), np.int64)
        self.big: dict[tuple[int, int], Decimal] = {}

    def nbytes(self) -> int:
        return int(self.coef.nbytes)

    def clear(self, cols: slice) -> None:
        self.coef[:, cols] = 0
        wanted = range(self.days)[cols]
        self.big = {k: v for k, v in self.big.items() if k[1] not in wanted}

    def shift(self, days: int) -> None:
        """Move every column ``days`` to the left (the window moved on); new ones are 0."""
        self.coef[:, :-days] = self.coef[:, days:].copy()
        self.coef[:, -days:] = 0
        self.big = {(sid, col - days): v for (sid, col), v in self.big.items() if col >= days}

    def set(self, stream: tuple[str, str], col: int, amount: Decimal) -> None:
        sid = self.index.setdefault(stream, len(self.index))
        if sid >= self.coef.shape[0]:
            coef = np.zeros((max(sid + 1, self.coef.shape[0] * 5 // 4 + 16), self.days), np.int64)
            coef[: self.coef.shape[0]] = self.coef
            self.coef = coef
        scaled = amount.scaleb(self.SCALE)
        units = int(scaled)
        if units == scaled and abs(units) < _BIG:
            self.coef[sid, col] = units
        else:
            self.coef[sid, col] = 0
            self.big[(sid, col)] = amount

    def totals(self) -> dict[tuple[str, str], Decimal]:
        """Each stream's sum over all columns."""
        units = self.coef[: len(self.index)].sum(axis=1).tolist()
        sums = [Decimal(u).scaleb(-self.SCALE) if u else Decimal(0) for u in units]
        for (sid, _), amount in self.big.items():
            sums[sid] += amount
        return {stream: sums[sid] for stream, sid in self.index.items()}


@dataclass
class _AccountState:
    """The aggregates of one account for the rules of ``today``."""

    today: date
    versions: dict[date, int] = field(default_factory=dict)
    # (project, model, batch, service_tier) x the last 30 days, model != "" only
    streams: _Table = field(default_factory=lambda: _Table(MONTH_DAYS))
    # (api_key, project, model, batch, service_tier) x [today - 60, today], api_key != ""
    keys: _Table = field(default_factory=lambda: _Table(WINDOW))
    billed: _Billed = field(default_factory=lambda: _Billed(MONTH_DAYS))
    has_usage: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(WINDOW, np.bool_))
    basis: object = None  # what ``findings`` and ``routes`` were computed from
    findings: Findings = field(default_factory=Findings)
    routes: dict[str, dict[Stream, Route]] = field(default_factory=dict)

    @property
    def first(self) -> date:
        return self.today - timedelta(days=WINDOW - 1)

    def load(self, usage: Iterable[UsageGroup], billed: Iterable[_BilledDay]) -> None:
        """Add the groups and billed days of re-read (already cleared) days."""
        first, recent = self.first, self.today - timedelta(days=MONTH_DAYS)
        stream_rows, key_rows = [], []
        for g in usage:
            col = (g.day - first).days
            self.has_usage[col] = True
            if g.day >= recent and g.day < self.today and g.model:
                dims = (g.project, g.model, g.batch, g.service_tier)
                stream_rows.append((dims, (g.day - recent).days, g))
            if g.api_key:
                key_rows.append(((g.api_key, g.project, g.model, g.batch, g.service_tier), col, g))
        self.streams.add(stream_rows)
        self.keys.add(key_rows)
        for day, project, model, amount in billed:
            if recent <= day < self.today:
                self.billed.set((project, model), (day - recent).days, amount)

    def clear(self, start: date, end: date) -> None:
        """Forget the days ``[start, end)`` (before they are re-read)."""
        first, recent = self.first, self.today - timedelta(days=MONTH_DAYS)
        a, b = max((start - first).days, 0), max((end - first).days, 0)
        self.has_usage[a:b] = False
        self.keys.clear(slice(a, b))
        s, e = max((start - recent).days, 0), max((end - recent).days, 0)
        self.streams.clear(slice(s, e))
        self.billed.clear(slice(s, e))

    def nbytes(self) -> int:
        return self.streams.nbytes() + self.keys.nbytes() + self.billed.nbytes()

    def move_to(self, today: date) -> None:
        """Move the window to a later ``today`` (by fewer than 30 days): the days that left
        it are dropped; the caller re-reads the days from the old today on."""
        days = (today - self.today).days
        self.streams.shift(days)
        self.keys.shift(days)
        self.billed.shift(days)
        self.has_usage[:-days] = self.has_usage[days:].copy()
        self.has_usage[-days:] = False
        self.today = today


class RecommendationState:
    """Every recommendation of one store, kept between refreshes (see the module doc)."""

    def __init__(
        self,
        store: Store,
        currency: str,
        catalogue: Catalogue,
        maps: ModelMaps,
        cfg: RecommendationsConfig,
    ) -> None:
        self.store = store
        self.currency = currency
        self.catalogue = catalogue
        self.maps = maps
        self.cfg = cfg
        self._accounts: dict[Account, _AccountState] = {}
        self.account_rule_runs = 0  # accounts whose per-account rules ran (tests, logs)
        self.reloaded_days = 0  # (account, day)s re-read from the store by the last refresh
        self._memo: dict[tuple[object, ...], tuple[list[_ColKey], npt.NDArray[np.intp]]] = {}
        self._maps_memo: dict[tuple[str, str], tuple[bool, str | None, str | None]] = {}

    def nbytes(self) -> int:
        """Bytes held in the arrays (for the benchmark)."""
        return sum(s.nbytes() for s in self._accounts.values())

    def findings(self, today: date, api_keys: Sequence[ApiKeyRecord]) -> Findings:
        """What :func:`~exporter.analytics.recommendations.compute_recommendations` finds
        in the stored history of ``today``: per account (in account order) its batch,
        downgrade and inactive-key recommendations, then the cross-provider ones."""
        if not self.cfg.enabled:
            return Findings()
        start, end = recommendations_start(today), today + timedelta(days=1)
        versions: dict[Account, dict[date, int]] = defaultdict(dict)
        for (provider, name, day), version in self.store.day_versions(start, end).items():
            versions[(provider, name)][day] = version
        self._refresh(today, versions)
        recs: list[Recommendation] = []
        cache_savings: dict[Stream, Decimal] = {}
        routes: dict[str, dict[Stream, Route]] = defaultdict(dict)
        for account, state in sorted(self._accounts.items()):
            keys = tuple(k for k in api_keys if (k.provider, k.account) == account)
            basis = (today, tuple(sorted(state.versions.items())), keys)
            if state.basis != basis:
                state.findings, state.routes = self._account_findings(account, state, keys)
                state.basis = basis
                self.account_rule_runs += 1
            recs.extend(state.findings.recommendations)
            cache_savings.update(state.findings.cache_savings)
            for group, members in state.routes.items():
                routes[group].update(members)
        recs.extend(cross_provider_findings(last_30(today), routes, self.cfg))
        return Findings(recs, cache_savings)

    # ----------------------------------------------------------------------- loading

    def _refresh(self, today: date, versions: dict[Account, dict[date, int]]) -> None:
        """Bring every account's aggregates up to ``versions`` (re-reading changed days)."""
        self._accounts = {a: s for a, s in self._accounts.items() if a in versions}
        self.reloaded_days = 0
        rebuild = []
        for account, held in versions.items():
            state = self._accounts.get(account)
            moved: list[date] = []
            if state is not None and 0 < (today - state.today).days < MONTH_DAYS:
                # a new UTC day: the last 30 days now end with the old today, which (as
                # any day from it on) is read in full again
                moved = [state.today, today]
                state.move_to(today)
            elif state is None or state.today != today:
                self._accounts[account] = _AccountState(today, dict(held))
                rebuild.append(account)
                continue
            changed = [d for d, v in held.items() if state.versions.get(d) != v]
            changed += [d for d in state.versions if d not in held and d >= state.first]
            changed += moved
            if changed:
                first, last = min(changed), max(changed) + timedelta(days=1)
                state.clear(first, last)
                self._read(first, last, state, account)
            state.versions = dict(held)
        for account in rebuild:  # in slices of days, so what is read at once stays small
            state = self._accounts[account]
            for offset in range(0, WINDOW, _READ_DAYS):
                start = state.first + timedelta(days=offset)
                end = min(start + timedelta(days=_READ_DAYS), today + timedelta(days=1))
                self._read(start, end, state, account)

    def _read(self, start: date, end: date, state: _AccountState, account: Account) -> None:
        """Read the days ``[start, end)`` of one account into its (cleared) state."""
        usage = recommendation_usage(self.store, start, end, account)
        billed = recommendation_billed(self.store, start, end, self.currency, account)
        state.load(usage, [(b.day, b.project, b.model, b.amount) for b in billed])
        self.reloaded_days += (end - start).days

    # ----------------------------------------------------------------------- rules

    def _prices(
        self, provider: str, model: str, tier: str, days: Sequence[date]
    ) -> list[UnitPrices | None]:
        return [self.catalogue.prices(provider, model, d, tier) for d in days]

    def _account_findings(
        self, account: Account, state: _AccountState, api_keys: Sequence[ApiKeyRecord]
    ) -> tuple[Findings, dict[str, dict[Stream, Route]]]:
        """Batch, downgrade, inactive keys and cache savings of one account, and its
        cross-provider routes."""
        self._memo = {}
        today, cfg, provider = state.today, self.cfg, account[0]
        period = last_30(today)
        days = [period.start + timedelta(days=i) for i in range(MONTH_DAYS)]
        table = state.streams
        streams = sorted(_present_streams(table).items())
        per = _StreamSums(table, [gids for _, gids in streams])
        bills = state.billed.totals()
        batch, downgrade, cache = [], [], {}
        routes: dict[str, dict[Stream, Route]] = defaultdict(dict)
        for i, ((project, model), gids) in enumerate(streams):
            stream = Stream(provider, account[1], project, model)
            bill = bills.get((project, model), Decimal(0))
            totals = dict(zip(TOKEN_TYPES, per.tokens[i], strict=True))
            capable, alternative, group = self._model_maps(provider, model)
            if group is not None:
                routes[group][stream] = Route(sum(totals.values()), bill)
            if per.has_sync[i] and capable:
                daily = [n for n, on in zip(per.sync_daily[i], per.sync_days[i], strict=True) if on]
                sync_tokens = dict(zip(TOKEN_TYPES, per.sync_tokens[i], strict=True))
                sync = {g for g in gids if _is_sync(table.dims[g])}
                volume = partial(self._priced_volume, provider, table, gids, sync, days)
                found = batch_finding(stream, period, daily, volume, bill, sync_tokens, cfg)
                if found is not None:
                    batch.append(found)
            if alternative:
                with_data = {days[c] for c, on in enumerate(per.positive[i]) if on}
                difference = partial(
                    self._price_difference, provider, table, gids, alternative, days
                )
                found = downgrade_finding(
                    stream, alternative, period, with_data, difference, totals,
                    self.catalogue, cfg,
                )  # fmt: skip
                if found is not None:
                    downgrade.append(found)
            if per.cache_read[i]:
                saved = self._cache_savings(provider, table, gids, days)
                if saved is not None:
                    cache[stream] = saved
        keys = self._inactive_keys(account, state, api_keys)
        return Findings([*batch, *downgrade, *keys], cache), dict(routes)

    def _model_maps(self, provider: str, model: str) -> tuple[bool, str | None, str | None]:
        """(batch-capable, alternative, equivalence group) of a model, memoised."""
        key = (provider, model)
        held = self._maps_memo.get(key)
        if held is None:
            maps = self.maps
            held = self._maps_memo[key] = (
                maps.batch_capable(provider, model),
                maps.alternative(provider, model),
                maps.group(provider, model),
            )
        return held

    def _col_keys(
        self,
        provider: str,
        model: str,
        tier: str,
        days: Sequence[date],
        alternative: str | None,
        extra: Sequence[bool] | None,
        priced: bool,
    ) -> tuple[list[_ColKey], npt.NDArray[np.intp]]:
        """The distinct (price, alternative's price, extra) of the days, and each day's id."""
        memo = (provider, model, tier, days[0], len(days), alternative, extra is None, priced)
        held = self._memo.get(memo)
        if held is None:
            prices = self._prices(provider, model, tier, days) if priced else [None] * len(days)
            alt = self._prices(provider, alternative, tier, days) if alternative else None
            ids: dict[_ColKey, int] = {}
            per_day = [
                ids.setdefault(
                    _ColKey(p, alt[c] if alt else None, extra[c] if extra else False), len(ids)
                )
                for c, p in enumerate(prices)
            ]
            held = self._memo[memo] = (list(ids), np.array(per_day, np.intp))
        return held

    def _group_epochs(
        self,
        provider: str,
        table: _Table,
        gids: Sequence[int],
        days: Sequence[date],
        alternative: str | None = None,
        extra: Sequence[bool] | None = None,
        priced: bool = True,
    ) -> list[tuple[_ColKey, int, _Volume, int]]:
        """(column key, group, volume, flags) per group and price epoch with rows, where a
        column key is a day's (price, alternative's price, ``extra[day]``); ``priced=False``
        looks no price up (rows without tokens cost nothing and are never priced)."""
        by_tier: dict[tuple[str, str], list[int]] = defaultdict(list)
        for g in gids:
            dims = table.dims[g]
            by_tier[(dims[-3], dims[-1])].append(g)  # (model, service_tier)
        out = []
        for (model, tier), members in by_tier.items():
            keys, ids = self._col_keys(provider, model, tier, days, alternative, extra, priced)
            if len(keys) == 1:  # one price over all the days: the groups' totals
                volumes, ors = table.summary()
                for g in members:
                    if ors[g] & PRESENT:
                        out.append((keys[0], g, volumes[g], ors[g]))
                continue
            for k, volumes, ors in table.epochs(members, ids, len(keys)):
                for g, volume, flags in zip(members, volumes, ors, strict=True):
                    if flags & PRESENT:
                        out.append((keys[k], g, volume, flags))
        return out

    def _priced_volume(
        self,
        provider: str,
        table: _Table,
        gids: Sequence[int],
        sync: set[int],
        days: Sequence[date],
    ) -> tuple[Decimal, Decimal] | None:
        """(priced volume of all rows, of the synchronous groups ``sync``); None when a row
        with tokens has no price (as ``Catalogue.row_cost``)."""
        total = sync_total = Decimal(0)
        for key, g, volume, flags in self._group_epochs(provider, table, gids, days):
            if not flags & HAS_TOKENS:
                continue
            if key.price is None:
                return None
            cost = _cost(key.price, volume, table.dims[g][-2])
            total += cost
            if g in sync:
                sync_total += cost
        return total, sync_total

    def _price_difference(
        self,
        provider: str,
        table: _Table,
        gids: Sequence[int],
        alternative: str,
        days: Sequence[date],
    ) -> dict[str, Decimal] | None:
        out = dict.fromkeys(TOKEN_TYPES, Decimal(0))
        gaps: dict[int, tuple[tuple[str, Decimal], ...]] = {}  # per epoch key (held in memo)
        for key, g, volume, _ in self._group_epochs(provider, table, gids, days, alternative):
            current, cheaper = key.price, key.alternative
            if current is None or cheaper is None:
                return None
            gap = gaps.get(id(key))
            if gap is None:
                gap = gaps[id(key)] = tuple((t, current.of(t) - cheaper.of(t)) for t in TOKEN_TYPES)
            factor = BATCH_DISCOUNT if table.dims[g][-2] == "true" else Decimal(1)
            for t, difference in gap:
                out[t] += volume.tokens(t) * difference * factor / MTOK
        return out

    def _cache_savings(
        self, provider: str, table: _Table, gids: Sequence[int], days: Sequence[date]
    ) -> Decimal | None:
        total = Decimal(0)
        for key, g, volume, _ in self._group_epochs(provider, table, gids, days):
            if key.price is None:
                return None
            saved = volume.cache_read * (key.price.input - key.price.cache_read) / MTOK
            total += saved * BATCH_DISCOUNT if table.dims[g][-2] == "true" else saved
        return total

    def _inactive_keys(
        self, account: Account, state: _AccountState, api_keys: Sequence[ApiKeyRecord]
    ) -> list[Recommendation]:
        table, first = state.keys, state.first
        days = [first + timedelta(days=i) for i in range(WINDOW)]
        prior = [c < MONTH_DAYS for c in range(WINDOW)]
        by_key: dict[str, list[int]] = defaultdict(list)
        ors = table.summary()[1]
        for g in _present(table):
            by_key[table.dims[g][0]].append(g)
        spend: dict[KeySpend, list[Decimal]] = {}
        projects: dict[KeySpend, dict[str, Decimal]] = {}
        last_day: dict[KeySpend, date] = {}
        for api_key, gids in by_key.items():
            key = (*account, api_key)
            totals = spend[key] = [Decimal(0), Decimal(0)]
            weights: dict[str, Decimal] = defaultdict(Decimal)
            projects[key] = weights
            priced = [g for g in gids if ors[g] & HAS_TOKENS]
            unpriced = [g for g in gids if not ors[g] & HAS_TOKENS]
            epochs = [
                *self._group_epochs(account[0], table, priced, days, extra=prior),
                *self._group_epochs(account[0], table, unpriced, days, extra=prior, priced=False),
            ]
            for col_key, g, volume, flags in epochs:
                cost = Decimal(0)
                if flags & HAS_TOKENS and col_key.price is not None:
                    cost = _cost(col_key.price, volume, table.dims[g][-2])
                if col_key.extra:
                    totals[0] += cost
                    weights[table.dims[g][1]] += cost
                else:
                    totals[1] += cost
            active = np.bitwise_or.reduce(table.flags[gids], axis=0) & ACTIVE
            if active.any():
                last_day[key] = days[int(np.nonzero(active)[0][-1])]
        covered = {account: int(state.has_usage[:MONTH_DAYS].sum())}
        return inactive_key_findings(
            state.today, spend, projects, last_day, covered, api_keys, self.cfg
        )


class _StreamSums:
    """Per stream (a list of its groups) of a table, computed for all streams at once:
    tokens per type, synchronous tokens per type and per day (with the days that have
    synchronous rows), the days with positive tokens, and whether it read cache."""

    def __init__(self, table: _Table, streams: Sequence[Sequence[int]]) -> None:
        n = len(streams)
        groups = np.array([g for gids in streams for g in gids], np.intp)
        owner = np.repeat(np.arange(n), [len(gids) for gids in streams])
        sync = np.array([_is_sync(table.dims[g]) for g in groups.tolist()], np.bool_)
        tokens = table.tokens[:, groups]  # type x group x day
        flags = table.flags[groups]
        volume = tokens.sum(axis=2)  # type x group
        totals = np.zeros((4, n), np.int64)
        sync_totals = np.zeros((4, n), np.int64)
        for t in range(4):
            np.add.at(totals[t], owner, volume[t])
            np.add.at(sync_totals[t], owner[sync], volume[t, sync])
        daily = np.zeros((n, table.days), np.int64)
        np.add.at(daily, owner[sync], tokens[:, sync].sum(axis=0))
        sync_flags = np.zeros((n, table.days), np.uint8)
        np.bitwise_or.at(sync_flags, owner[sync], flags[sync])
        any_flags = np.zeros((n, table.days), np.uint8)
        np.bitwise_or.at(any_flags, owner, flags)
        self.tokens: list[list[int]] = totals.T.tolist()
        self.sync_tokens: list[list[int]] = sync_totals.T.tolist()
        self.sync_daily: list[list[int]] = daily.tolist()
        self.sync_days: list[list[bool]] = ((sync_flags & PRESENT) != 0).tolist()
        self.has_sync: list[bool] = np.asarray((sync_flags & PRESENT).any(axis=1)).tolist()
        self.positive: list[list[bool]] = ((any_flags & POSITIVE) != 0).tolist()
        self.cache_read: list[bool] = np.asarray((any_flags & CACHE_READ).any(axis=1)).tolist()


def _is_sync(dims: tuple[str, ...]) -> bool:
    """A (..., batch, service_tier) group of synchronous standard-tier traffic."""
    return dims[-2] == "false" and dims[-1] in STANDARD_TIERS


def _present_streams(table: _Table) -> dict[tuple[str, str], list[int]]:
    """{(project, model): its group ids} of the streams with rows in the table's days."""
    out: dict[tuple[str, str], list[int]] = defaultdict(list)
    for g in _present(table):
        out[(table.dims[g][0], table.dims[g][1])].append(g)
    return dict(out)


def _present(table: _Table) -> list[int]:
    """The groups with rows on any of the table's days."""
    rows = table.flags[: len(table.dims)] & PRESENT
    return [int(g) for g in np.nonzero(rows.any(axis=1))[0]]
