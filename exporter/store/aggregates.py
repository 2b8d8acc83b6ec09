"""The one read of the refresh's in-memory aggregates (``analytics/cube.py``).

Everything the refresh cube reads from the store goes through :meth:`Aggregates.account_days`,
so a change of the usage/cost layout is adapted here alone. It now reads through the
store's own decoders (the compact rows, on SQLite or PostgreSQL), which keeps the
conversion rule theirs. The rows come back as plain tuples of str and int:

* cost groups per (day, project, model, cost_type): ``(day, project, model, cost_type,
  nano, converted, withheld, first_rowid)``, the exact sum in integer nano-units of the
  converted lines (None when one has more than 9 decimals or 7 integer digits), the
  withheld lines, the position of the first converted line (empty for now: a SQL sum over
  the compact rows is the next step);
* cost lines: ``(provider, account, day, project, model, cost_type, amount, position)``
  with ``amount`` the exact decimal text in the accounting currency or None (withheld),
  converted lines in record order;
* usage: ``(provider, account, day, project, model, input, output, cache_read,
  cache_write, requests)`` summed per stream and day.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, cast

from exporter.store.db import Database

if TYPE_CHECKING:
    from exporter.store.history import History

CostLine = tuple[str, str, str, str, str, str, str | None, int]
CostGroup = tuple[str, str, str, str, int | None, int, int, int | None]
UsageDay = tuple[str, str, str, str, str, int, int, int, int, int]


class Aggregates(Database):
    """The reads of :class:`~exporter.analytics.cube.Cube`."""

    def account_days(
        self, currency: str, account: tuple[str, str], start: date, end: date
    ) -> tuple[list[CostGroup], list[CostLine], list[UsageDay]]:
        """(cost groups, cost lines, usage per stream and day) of one account's days
        ``[start, end)`` in ``currency``.

        Read through the store's own decoders (``converted_costs_between``,
        ``usage_between``), so the conversion rule and the layout (SQLite or PostgreSQL,
        the compact rows) are theirs; the cost lines come in record order (their position
        is their ``rowid``) and no SQL sums are used (``groups`` is empty)."""
        history = cast("History", self)  # the Store this is mixed into
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
        volumes: dict[tuple[str, str, str], list[int]] = {}
        for u in history.usage_between(start, end, account):
            v = volumes.setdefault((u.day.isoformat(), u.project, u.model), [0, 0, 0, 0, 0])
            v[0] += u.input_tokens
            v[1] += u.output_tokens
            v[2] += u.cache_read_tokens
            v[3] += u.cache_write_tokens
            v[4] += u.requests
        usage: list[UsageDay] = [(*account, d, p, m, *v) for (d, p, m), v in volumes.items()]  # type: ignore[misc]
        return [], lines, usage
