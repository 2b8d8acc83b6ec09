"""The one read of the refresh's in-memory aggregates (``analytics/cube.py``).

Every SQL statement the refresh cube needs is here, so a change of the usage/cost table
layout is adapted in this module alone. The rows come back as plain tuples of str and int:

* cost lines: ``(provider, account, day, project, model, cost_type, amount, rowid)``
  with ``amount`` the exact decimal text in the accounting currency, or ``None`` for a
  line that is *withheld* (no usable rate; the same rule as
  :meth:`~exporter.store.history.History.converted_costs_between`);
* usage: ``(provider, account, day, project, model, input, output, cache_read,
  cache_write, requests)``, summed per stream and day by SQL (integers: exact).
"""

from __future__ import annotations

from datetime import date

from exporter.store.db import Database

CostLine = tuple[str, str, str, str, str, str, str | None, int]
UsageDay = tuple[str, str, str, str, str, int, int, int, int, int]

# A converted line carries its converted amount; a line already in the accounting
# currency needs no rate (identity); anything else is withheld (NULL).
_COST_SQL = (
    "SELECT provider, account, day, project, model, cost_type, "
    "CASE WHEN fx_currency = ?1 AND fx_status IN ('final', 'provisional') THEN fx_amount "
    "WHEN currency = ?1 THEN amount END, rowid "
    "FROM costs WHERE provider = ?2 AND account = ?3 AND day >= ?4 AND day < ?5 "
    "ORDER BY day, rowid"
)
_USAGE_SQL = (
    "SELECT provider, account, day, project, model, SUM(input_tokens), SUM(output_tokens), "
    "SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(requests) "
    "FROM usage WHERE provider = ?1 AND account = ?2 AND day >= ?3 AND day < ?4 "
    "GROUP BY provider, account, day, project, model"
)


class Aggregates(Database):
    """The reads of :class:`~exporter.analytics.cube.Cube`."""

    def account_days(
        self, currency: str, account: tuple[str, str], start: date, end: date
    ) -> tuple[list[CostLine], list[UsageDay]]:
        """(cost lines in ``currency``, usage per stream and day) of one account's days
        ``[start, end)``; cost lines in day order, within a day in storage order."""
        s, e = start.isoformat(), end.isoformat()
        with self._lock:
            costs = self.db.execute(_COST_SQL, (currency, *account, s, e)).fetchall()
            usage = self.db.execute(_USAGE_SQL, (*account, s, e)).fetchall()
        return costs, usage
