"""The one read of the refresh's in-memory aggregates (``analytics/cube.py``).

Everything the refresh cube reads from the store goes through :meth:`Aggregates.account_days`,
so a change of the usage/cost layout is adapted here alone. It reads the compact rows
(SQLite or PostgreSQL) straight from the cursor, without building a record per row; the
conversion rule is the one of ``History.converted_costs_between`` (a row converted to the
accounting currency, final or provisional; a row already in it; else withheld). It gives
plain tuples of str and int:

* cost groups per (day, project, model, cost_type): ``(day, project, model, cost_type,
  units, converted, withheld, first_position)``, the exact sum in integer pico-units of the
  converted rows, how many rows are converted and withheld, and the position of the first
  converted row among the account's converted rows in key order (the order the record
  path meets them, which orders the series; None when the group has none), groups in
  key order;
* cost lines: ``(provider, account, day, project, model, cost_type, amount, position)``
  with ``amount`` the exact decimal text in the accounting currency or None (withheld),
  converted lines in record order: only for an account whose amounts do not all fit
  pico-units (exact text, or beyond :data:`MAX_CELL`), read through
  the store's decoders; the cube keeps Decimal cells for it;
* usage: ``(provider, account, day, project, model, input, output, cache_read,
  cache_write, requests)`` summed per stream and day in SQL.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, cast

from exporter.store.compact import COST_PK, day_of
from exporter.store.db import Database
from exporter.store.history import ConversionRule, account_days_where

if TYPE_CHECKING:
    from exporter.store.history import History

CostLine = tuple[str, str, str, str, str, str, str | None, int]
CostGroup = tuple[str, str, str, str, int | None, int, int, int | None]
UsageDay = tuple[str, str, str, str, str, int, int, int, int, int]

# pico-units: a cell beyond this (~144,000 a day) uses Decimal cells; 31 days of cells
# then add up within int64 (the windows' cumulative sums)
MAX_CELL = 2**63 // 64
_COST_COLUMNS = (
    "day", "stream", "cost_type", "currency", "amount", "amount_exact", "fx", "fx_status",
    "fx_amount", "fx_amount_exact",
)  # fmt: skip
_USAGE_SUMS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
               "requests")  # fmt: skip


class Aggregates(Database):
    """The reads of :class:`~exporter.analytics.cube.Cube`."""

    def account_days(
        self, currency: str, account: tuple[str, str], start: date, end: date
    ) -> tuple[list[CostGroup], list[CostLine], list[UsageDay]]:
        """(cost groups, cost lines, usage per stream and day) of one account's days
        ``[start, end)`` in ``currency``: groups when every converted amount fits
        pico-units (the stored integer, within :data:`MAX_CELL`), else lines."""
        groups = self._cost_groups(currency, account, start, end)
        lines = [] if groups is not None else self._cost_lines(currency, account, start, end)
        return groups or [], lines, self._usage_days(account, start, end)

    def _cost_groups(
        self, currency: str, account: tuple[str, str], start: date, end: date
    ) -> list[CostGroup] | None:
        """The groups, or None when an amount is exact text or beyond a cell."""
        history = cast("History", self)  # the Store this is mixed into
        streams, label = history._stream_map(), self._labels
        where, params = account_days_where(start, end, account)
        rule = ConversionRule(history, currency).amount
        # (day, stream, cost_type) -> [units, converted, withheld, first position]
        cells: dict[tuple[int, int, int], list[int]] = {}
        position = 0
        with self._lock:
            cursor = self.db.execute(
                f"SELECT {', '.join(_COST_COLUMNS)} FROM cost_rows WHERE {where} "
                f"ORDER BY {', '.join(COST_PK)}",
                params,
            )
            for d, sid, cost_type, cur, units, exact, fx, status, fx_units, fx_exact in cursor:
                cell = cells.get((d, sid, cost_type))
                if cell is None:
                    cell = cells[(d, sid, cost_type)] = [0, 0, 0, -1]
                counted = rule(cur, units, exact, fx, status, fx_units, fx_exact)
                if counted is None:  # no usable rate: withheld
                    cell[2] += 1
                    continue
                units, exact = counted
                if exact is not None or units is None:
                    return None
                cell[0] += units
                if not -MAX_CELL < units < MAX_CELL or not -MAX_CELL < cell[0] < MAX_CELL:
                    return None
                if not cell[1]:
                    cell[3] = position
                cell[1] += 1
                position += 1
        days: dict[int, str] = {}
        out: list[CostGroup] = []
        for (d, sid, cost_type), (amount, converted, withheld, first) in cells.items():
            day = days.get(d) or days.setdefault(d, day_of(d).isoformat())
            _p, _a, project, model = streams[sid]
            out.append((day, project, model, label[cost_type], amount if converted else None,
                        converted, withheld, first if converted else None))  # fmt: skip
        return out

    def _cost_lines(
        self, currency: str, account: tuple[str, str], start: date, end: date
    ) -> list[CostLine]:
        """Every cost line through the store's decoders: converted ones in record order
        (their position is their index), then the withheld ones."""
        history = cast("History", self)
        converted, withheld = history.converted_costs_between(start, end, currency, account)
        lines: list[CostLine] = [
            (c.provider, c.account, c.day.isoformat(), c.project, c.model, c.cost_type,
             format(c.amount, "f"), i)
            for i, c in enumerate(converted)
        ]  # fmt: skip
        lines += [
            (c.provider, c.account, c.day.isoformat(), c.project, c.model, c.cost_type, None, -1)
            for c in withheld
        ]
        return lines

    def _usage_days(self, account: tuple[str, str], start: date, end: date) -> list[UsageDay]:
        """Usage summed per stream and day, in SQL (in key order)."""
        history = cast("History", self)
        streams = history._stream_map()
        where, params = account_days_where(start, end, account)
        sums = ", ".join(f"SUM({c})" for c in _USAGE_SUMS)
        with self._lock:
            rows = self.db.execute(
                f"SELECT day, stream, {sums} FROM usage_rows WHERE {where} "
                "GROUP BY day, stream ORDER BY day, stream",
                params,
            ).fetchall()
        out: list[UsageDay] = []
        for d, sid, *volumes in rows:
            _p, _a, project, model = streams[sid]
            i, o, cr, cw, req = (int(v) for v in volumes)  # PostgreSQL: numeric sums
            out.append((*account, day_of(d).isoformat(), project, model, i, o, cr, cw, req))
        return out
