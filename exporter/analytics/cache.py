"""The recent history, decoded once and kept between refreshes.

A poll rewrites a few days of one account; the FX step re-converts a few days at most. So
the snapshot builder keeps the decoded usage and (converted) cost rows per
(provider, account, day) and, on each refresh, asks the store for the version of every day
it needs (``day_versions``, bumped in the transaction of every write) and reloads only the
days whose version moved. Days that fall out of the windows are dropped. The rows it hands
out are exactly what :meth:`Store.usage_between` / ``converted_costs_between`` return for
the range (ordered by day; within a day by provider and account).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from exporter.records import CostRecord, UsageRecord
from exporter.store import Store
from exporter.store.streams import DayKey


@dataclass
class _Slice:
    version: int
    usage: list[UsageRecord] = field(default_factory=list)
    costs: list[CostRecord] = field(default_factory=list)
    withheld: list[CostRecord] = field(default_factory=list)


class HistoryCache:
    """Decoded rows of one store in one accounting currency, per (provider, account, day)."""

    def __init__(self, store: Store, currency: str) -> None:
        self.store = store
        self.currency = currency
        self._slices: dict[DayKey, _Slice] = {}
        self.reloaded_days = 0  # days read from the store by the last load (for tests/logs)

    def load(
        self, start: date, end: date
    ) -> tuple[list[UsageRecord], list[CostRecord], list[CostRecord]]:
        """(usage, converted costs, withheld costs) of the days ``[start, end)``."""
        versions = self.store.day_versions(start, end)
        self._slices = {k: v for k, v in self._slices.items() if k in versions}
        stale: dict[tuple[str, str], list[date]] = {}
        for key, version in versions.items():
            held = self._slices.get(key)
            if held is None or held.version != version:
                stale.setdefault((key[0], key[1]), []).append(key[2])
        self.reloaded_days = 0
        for account, days in stale.items():
            fresh = self._reload(account, min(days), max(days) + timedelta(days=1), versions)
            self._slices.update({(*account, d): piece for d, piece in fresh.items()})
            self.reloaded_days += len(fresh)
        usage: list[UsageRecord] = []
        converted: list[CostRecord] = []
        held_back: list[CostRecord] = []
        for key in sorted(self._slices, key=lambda k: (k[2], k[0], k[1])):
            piece = self._slices[key]
            usage.extend(piece.usage)
            converted.extend(piece.costs)
            held_back.extend(piece.withheld)
        return usage, converted, held_back

    def signature(self, account: tuple[str, str]) -> frozenset[tuple[date, int]]:
        """The (day, version) pairs of an account's cached days: equal signatures, equal rows."""
        return frozenset((k[2], s.version) for k, s in self._slices.items() if k[:2] == account)

    def by_account(
        self, start: date
    ) -> dict[tuple[str, str], tuple[list[UsageRecord], list[CostRecord]]]:
        """{(provider, account): (usage, converted costs)} of the cached days from ``start``
        (as last loaded), each in day order."""
        out: dict[tuple[str, str], tuple[list[UsageRecord], list[CostRecord]]] = {}
        for key in sorted(self._slices, key=lambda k: (k[2], k[0], k[1])):
            if key[2] >= start:
                usage, costs = out.setdefault((key[0], key[1]), ([], []))
                usage.extend(self._slices[key].usage)
                costs.extend(self._slices[key].costs)
        return out

    def _reload(
        self, account: tuple[str, str], first: date, last: date, versions: dict[DayKey, int]
    ) -> dict[date, _Slice]:
        """The slices of one account's days ``[first, last)``, read from the store now."""
        fresh: dict[date, _Slice] = {}

        def at(day: date) -> _Slice:  # a day without a version (-1) reloads next time
            if day not in fresh:
                fresh[day] = _Slice(versions.get((*account, day), -1))
            return fresh[day]

        for u in self.store.usage_between(first, last, account):
            at(u.day).usage.append(u)
        costs, withheld = self.store.converted_costs_between(first, last, self.currency, account)
        for c in costs:
            at(c.day).costs.append(c)
        for c in withheld:
            at(c.day).withheld.append(c)
        for day in (first + timedelta(days=i) for i in range((last - first).days)):
            if (*account, day) in versions:
                at(day)  # a version but no rows: an emptied day, cached as empty
        return fresh
