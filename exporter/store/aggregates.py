"""The one read of the refresh's in-memory aggregates (``analytics/cube.py``).

Every SQL statement the refresh cube needs is here, so a change of the usage/cost table
layout is adapted in this module alone. The rows come back as plain tuples of str and int:

* cost groups per (day, project, model, cost_type), summed by SQL: ``(day, project,
  model, cost_type, nano, converted, withheld, first_rowid)``: ``nano`` the exact sum in
  integer nano-units of the accounting currency of the ``converted`` lines (None when
  a line has more than 9 decimals or 7 integer digits), ``withheld`` the lines without a
  usable rate (the rule of :meth:`~exporter.store.history.History.converted_costs_between`),
  ``first_rowid`` the storage order of the group's first converted line;
* cost lines, only when some group's sum is not exact in nano-units: ``(provider, account,
  day, project, model, cost_type, amount, rowid)`` with ``amount`` the exact decimal text
  in the accounting currency or None (withheld), in day and storage order;
* usage: ``(provider, account, day, project, model, input, output, cache_read,
  cache_write, requests)``, summed per stream and day by SQL (integers: exact).
"""

from __future__ import annotations

from datetime import date

from exporter.store.db import Database

CostLine = tuple[str, str, str, str, str, str, str | None, int]
CostGroup = tuple[str, str, str, str, int | None, int, int, int | None]
UsageDay = tuple[str, str, str, str, str, int, int, int, int, int]

# A converted line carries its converted amount; a line already in the accounting
# currency needs no rate (identity); anything else is withheld (NULL).
_CONVERTED = (
    "CASE WHEN fx_currency = ?1 AND fx_status IN ('final', 'provisional') THEN fx_amount "
    "WHEN currency = ?1 THEN amount END"
)
_COST_SQL = (
    f"SELECT provider, account, day, project, model, cost_type, {_CONVERTED}, rowid "
    "FROM costs WHERE provider = ?2 AND account = ?3 AND day >= ?4 AND day < ?5 "
    "ORDER BY day, rowid"
)
# The same lines summed per (day, project, model, cost_type) in integer nano-units: exact
# for an amount with at most 9 decimals and 7 integer digits, NULL (not summed) otherwise.
_GROUP_SQL = f"""
WITH line AS (
  SELECT day, project, model, cost_type, rowid AS r, {_CONVERTED} AS v
  FROM costs WHERE provider = ?2 AND account = ?3 AND day >= ?4 AND day < ?5
), parts AS (
  SELECT *, CASE WHEN instr(v, '.') = 0 THEN v ELSE substr(v, 1, instr(v, '.') - 1) END AS w,
    CASE WHEN instr(v, '.') = 0 THEN '' ELSE substr(v, instr(v, '.') + 1) END AS f
  FROM line
), nano AS (
  SELECT *, CASE WHEN v IS NULL OR length(ltrim(w, '-')) > 7 OR length(f) > 9
    OR w GLOB '*[^0-9-]*' OR f GLOB '*[^0-9]*' THEN NULL
    ELSE CAST(w AS INTEGER) * 1000000000
      + (CASE WHEN substr(w, 1, 1) = '-' THEN -1 ELSE 1 END)
      * CAST(substr(f || '000000000', 1, 9) AS INTEGER) END AS n
  FROM parts
)
SELECT day, project, model, cost_type,
  CASE WHEN COUNT(n) = COUNT(v) THEN SUM(n) END, COUNT(v), SUM(v IS NULL),
  MIN(CASE WHEN v IS NOT NULL THEN r END)
FROM nano GROUP BY day, project, model, cost_type
"""
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
    ) -> tuple[list[CostGroup], list[CostLine], list[UsageDay]]:
        """(cost groups, cost lines (only when a group is not exact in nano-units), usage
        per stream and day) of one account's days ``[start, end)`` in ``currency``."""
        params = (currency, *account, start.isoformat(), end.isoformat())
        with self._lock:
            groups = self.db.execute(_GROUP_SQL, params).fetchall()
            lines = []
            if any(g[4] is None and g[5] for g in groups):
                lines = self.db.execute(_COST_SQL, params).fetchall()
            usage = self.db.execute(_USAGE_SQL, params[1:]).fetchall()
        return groups, lines, usage
