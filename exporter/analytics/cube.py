"""The refresh's maintained aggregates: per-series x day arrays of the days it reads.

The snapshot builder keeps, per (provider, account), a :class:`Block` of compact numpy
arrays over the days ``[start, end)`` every window and governance analytic of ``today``
reads (the 31 days from 30 days before ``today``; ``build.history_range``):

* per (stream, cost_type): the day's converted cost (exact integer pico-units of the
  accounting currency), whether a converted row exists that day, whether a row of it is
  *withheld* (no usable FX rate) that day;
* per stream (provider, account, project, model): the day's cost over all cost types,
  whether it has a converted row, and its usage (input, output, cache_read, cache_write
  tokens and requests; SQL sums per stream and day);
* the rowid of the first row of each (series, day), which is the order the record path
  meets the series in.

A refresh asks the store for ``day_versions`` and reloads only the (provider, account,
day)s whose version moved (a poll rewrites today plus the lookback days of one account);
the arrays shift by a column when the day rolls over; the first refresh loads everything.
Each reload bumps the block's ``generation``, so analytics cache per-account results until
the account is polled again.

Exactness: an amount with at most :data:`SCALE` decimals is an integer of pico-units, and
every sum of those is exact (what the :class:`~decimal.Decimal` path gives, since it never
needs more than 28 digits); converted amounts are stored at 12 decimals. A block that
meets an amount that is not (a provider's amount with more decimals, kept as exact text)
keeps ``Decimal`` cells instead (object arrays, summed in the record path's order), so
its values stay exactly those of the record path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from exporter.records import TOKEN_TYPES, Stream
from exporter.snapshot import CostKey, TokenKey
from exporter.store import Store
from exporter.store.aggregates import MAX_CELL as _MAX_CELL
from exporter.store.aggregates import CostGroup, CostLine, UsageDay
from exporter.store.streams import DayKey

SCALE = 12  # decimals of an exact integer amount (pico-units, as the store keeps money)
ZERO = Decimal(0)
USAGE_FIELDS = (*TOKEN_TYPES, "requests")  # the third axis of ``Block.usage``

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]
Objects = npt.NDArray[np.object_]


def to_decimal(units: int) -> Decimal:
    """The exact amount of ``units`` pico-units."""
    return Decimal(units).scaleb(-SCALE)


_decimals = np.frompyfunc(to_decimal, 1, 1)


def units(text: str) -> int | None:
    """``text`` (an exact decimal as the store writes it) in pico-units; None when it has
    more than :data:`SCALE` decimals, an exponent or a magnitude beyond a cell's."""
    whole, _, frac = text.partition(".")
    if len(frac) > SCALE:
        return None
    try:
        value = int(whole + frac.ljust(SCALE, "0"))
    except ValueError:
        return None
    return value if -_MAX_CELL < value < _MAX_CELL else None


def _capacity(rows: int) -> int:
    """Rows to grow an array of ``rows`` to: a quarter more (doubling left up to half of
    the arrays empty: ~14 MiB at 10k streams)."""
    return rows + rows // 4 + 16


def _grown(a: npt.NDArray[Any], rows: int) -> npt.NDArray[Any]:
    out = np.zeros((rows, *a.shape[1:]), dtype=a.dtype)
    out[: len(a)] = a
    if a.dtype == object:
        out[len(a) :] = ZERO
    return out


@dataclass
class Block:
    """The arrays of one (provider, account) over the cube's days."""

    account: tuple[str, str]
    days: int
    streams: list[Stream] = field(default_factory=list)
    stream_at: dict[tuple[str, str], int] = field(default_factory=dict)
    keys: list[CostKey] = field(default_factory=list)  # per (stream, cost_type)
    key_stream: list[int] = field(default_factory=list)
    key_at: dict[tuple[int, str], int] = field(default_factory=dict)
    token_keys: list[tuple[TokenKey, ...]] = field(default_factory=list)
    exact: bool = True  # integer cells; False: Decimal cells (``*_dec``)
    generation: int = 0

    def __post_init__(self) -> None:
        d = self.days
        self.cost = np.zeros((0, d), np.int64)  # per key
        self.cost_has = np.zeros((0, d), np.bool_)
        self.held = np.zeros((0, d), np.bool_)
        self.cost_seq = np.zeros((0, d), np.int64)
        self.cost_dec: Objects | None = None
        self.total = np.zeros((0, d), np.int64)  # per stream, all cost types
        self.total_has = np.zeros((0, d), np.bool_)
        self.total_seq = np.zeros((0, d), np.int64)
        self.total_dec: Objects | None = None
        self.usage = np.zeros((0, d, len(USAGE_FIELDS)), np.int64)
        self.usage_has = np.zeros((0, d), np.bool_)

    # -- index -------------------------------------------------------------------------

    def stream(self, project: str, model: str, currency: str) -> int:
        at = self.stream_at.get((project, model))
        if at is None:
            at = self.stream_at[(project, model)] = len(self.streams)
            s = Stream(*self.account, project, model)
            self.streams.append(s)
            self.token_keys.append(tuple(TokenKey(*s, t) for t in TOKEN_TYPES))
            if at >= len(self.total):
                n = _capacity(len(self.total))
                self.total, self.total_has = _grown(self.total, n), _grown(self.total_has, n)
                self.total_seq, self.usage = _grown(self.total_seq, n), _grown(self.usage, n)
                self.usage_has = _grown(self.usage_has, n)
                if self.total_dec is not None:
                    self.total_dec = _grown(self.total_dec, n)
        return at

    def key(self, stream: int, cost_type: str, currency: str) -> int:
        at = self.key_at.get((stream, cost_type))
        if at is None:
            at = self.key_at[(stream, cost_type)] = len(self.keys)
            self.keys.append(CostKey(*self.streams[stream], cost_type, currency))
            self.key_stream.append(stream)
            if at >= len(self.cost):
                n = _capacity(len(self.cost))
                self.cost, self.cost_has = _grown(self.cost, n), _grown(self.cost_has, n)
                self.held, self.cost_seq = _grown(self.held, n), _grown(self.cost_seq, n)
                if self.cost_dec is not None:
                    self.cost_dec = _grown(self.cost_dec, n)
        return at

    # -- cells -------------------------------------------------------------------------

    def shift(self, by: int) -> None:
        """Drop the ``by`` oldest days; the newest ``by`` columns become empty."""
        for a in self._arrays():
            a[:, :-by] = a[:, by:].copy()
            a[:, -by:] = ZERO if a.dtype == object else 0

    def clear(self, first: int, last: int) -> None:
        """Empty the day columns ``[first, last)`` (before they are reloaded)."""
        for a in self._arrays():
            a[:, first:last] = ZERO if a.dtype == object else 0

    def _arrays(self) -> list[npt.NDArray[Any]]:
        out: list[npt.NDArray[Any]] = [
            self.cost, self.cost_has, self.held, self.cost_seq, self.total, self.total_has,
            self.total_seq, self.usage, self.usage_has,
        ]  # fmt: skip
        return out + [a for a in (self.cost_dec, self.total_dec) if a is not None]

    def to_decimal_cells(self) -> None:
        """From now on this block keeps exact Decimal cells (an amount needs them)."""
        if self.exact:
            self.exact = False
            self.cost_dec = np.asarray(_decimals(self.cost), dtype=object)
            self.total_dec = np.asarray(_decimals(self.total), dtype=object)

    def fill(
        self,
        cols: dict[str, int],
        groups: list[CostGroup],
        lines: list[CostLine],
        usage: list[UsageDay],
        currency: str,
    ) -> None:
        """Add what the store read for the (cleared) days in ``cols``: the SQL sums when
        they are exact, else the cost lines in record order."""
        if lines:
            self._fill_lines(cols, lines, currency)
        else:
            self._fill_groups(cols, groups, currency)
        for _p, _a, day, project, model, *volumes in usage:
            s = self.stream(project, model, currency)
            col = cols[day]
            self.usage[s, col] = volumes
            self.usage_has[s, col] = True

    def _fill_groups(self, cols: dict[str, int], groups: list[CostGroup], currency: str) -> None:
        totals: dict[tuple[int, int], int] = {}
        for day, project, model, cost_type, amount, converted, withheld, rowid in groups:
            col = cols[day]
            s = self.stream(project, model, currency)
            k = self.key(s, cost_type, currency)
            if withheld:
                self.held[k, col] = True
            if not converted or amount is None or rowid is None:
                continue
            at = (s, col)
            if at in totals:
                totals[at] += amount
                self.total_seq[at] = min(int(self.total_seq[at]), rowid)
            else:
                totals[at] = amount
                self.total_has[at], self.total_seq[at] = True, rowid
            self.cost_has[k, col], self.cost_seq[k, col] = True, rowid
            if self.exact:
                self.cost[k, col] = amount
            else:
                assert self.cost_dec is not None
                self.cost_dec[k, col] = to_decimal(amount)
        if any(not -_MAX_CELL < v < _MAX_CELL for v in totals.values()):
            self.to_decimal_cells()
        for at, v in totals.items():
            if self.exact:
                self.total[at] = v
            else:
                assert self.total_dec is not None
                self.total_dec[at] = to_decimal(v)

    def _fill_lines(self, cols: dict[str, int], lines: list[CostLine], currency: str) -> None:
        key_cells: dict[tuple[int, int], int | Decimal] = {}
        total_cells: dict[tuple[int, int], int | Decimal] = {}
        for _p, _a, day, project, model, cost_type, amount, rowid in lines:
            col = cols[day]
            s = self.stream(project, model, currency)
            k = self.key(s, cost_type, currency)
            if amount is None:
                self.held[k, col] = True
                continue
            value: int | Decimal | None = units(amount)
            if value is None:
                value = Decimal(amount)
            if _add(key_cells, (k, col), value):
                self.cost_has[k, col], self.cost_seq[k, col] = True, rowid
            if _add(total_cells, (s, col), value):
                self.total_has[s, col], self.total_seq[s, col] = True, rowid
        inexact = any(not isinstance(v, int) for v in key_cells.values())
        if inexact or any(not -_MAX_CELL < v < _MAX_CELL for v in total_cells.values()):
            self.to_decimal_cells()
        if self.exact:
            for (k, col), v in key_cells.items():
                self.cost[k, col] = v
            for (s, col), v in total_cells.items():
                self.total[s, col] = v
        else:
            assert self.cost_dec is not None and self.total_dec is not None
            for (k, col), v in key_cells.items():
                self.cost_dec[k, col] = _as_decimal(v)
            for (s, col), v in total_cells.items():
                self.total_dec[s, col] = _as_decimal(v)


def _as_decimal(value: int | Decimal) -> Decimal:
    return to_decimal(value) if isinstance(value, int) else value


def _add(
    cells: dict[tuple[int, int], int | Decimal], at: tuple[int, int], value: int | Decimal
) -> bool:
    """Add a row's amount to its cell as the record path does (Decimal(0) + the rows, in
    order; integers while all are exact); True when it is the cell's first row."""
    held = cells.get(at)
    if held is None:
        cells[at] = value if isinstance(value, int) else ZERO + value
        return True
    if isinstance(held, int) and isinstance(value, int):
        cells[at] = held + value
    else:
        cells[at] = _as_decimal(held) + _as_decimal(value)
    return False


class Cube:
    """The blocks of every account over the days ``[start, end)``, kept current from the
    store's ``day_versions``."""

    def __init__(self, store: Store, currency: str) -> None:
        self.store = store
        self.currency = currency
        self.start: date | None = None
        self.days = 0
        self.blocks: dict[tuple[str, str], Block] = {}
        self._versions: dict[DayKey, int] = {}
        self.reloaded_days = 0  # (account, day)s read from the store by the last update

    def col(self, day: date) -> int:
        """The column of ``day`` (may lie outside ``[0, days]``: clip before slicing)."""
        assert self.start is not None
        return (day - self.start).days

    def update(self, start: date, end: date) -> None:
        """Make the blocks hold the stored days ``[start, end)`` (reloading what moved)."""
        days = (end - start).days
        if self.start is None or days != self.days or not 0 <= (start - self.start).days:
            self.blocks, self._versions = {}, {}
        elif start != self.start:
            by = (start - self.start).days
            for block in self.blocks.values():
                if by >= days:
                    block.clear(0, days)
                else:
                    block.shift(by)
            self._versions = {k: v for k, v in self._versions.items() if k[2] >= start}
        self.start, self.days = start, days
        versions = self.store.day_versions(start, end)
        stale: dict[tuple[str, str], list[date]] = {}
        for key in versions.keys() | self._versions.keys():
            if versions.get(key) != self._versions.get(key):
                stale.setdefault((key[0], key[1]), []).append(key[2])
        self.reloaded_days = 0
        for account, changed in sorted(stale.items()):
            first, last = min(changed), max(changed) + timedelta(days=1)
            block = self.blocks.get(account) or Block(account, days)
            self.blocks[account] = block
            block.clear(self.col(first), self.col(last))
            cols = {(first + timedelta(days=i)).isoformat(): self.col(first) + i
                    for i in range((last - first).days)}  # fmt: skip
            groups, lines, usage = self.store.account_days(self.currency, account, first, last)
            block.fill(cols, groups, lines, usage, self.currency)
            block.generation += 1
            self.reloaded_days += len(cols)
        self.blocks = dict(sorted(self.blocks.items()))
        self._versions = versions

    def ordered(self) -> list[Block]:
        """The blocks in (provider, account) order."""
        return list(self.blocks.values())
