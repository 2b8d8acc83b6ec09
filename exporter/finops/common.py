"""What the FinOps commands share: attribution lookups, periods and money text."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal

from exporter.analytics.attribution import ProjectKey, attribute
from exporter.config import AttributionRule
from exporter.records import ProjectRecord
from exporter.snapshot import Attribution

UNASSIGNED = "unassigned"  # the row of cost no attribution rule (or no key) claims


class Attributions:
    """Project key -> (project name, attribution), computed once per project."""

    def __init__(self, rules: Sequence[AttributionRule], projects: Sequence[ProjectRecord]) -> None:
        self._rules = rules
        self._names = {(p.provider, p.account, p.project): p.name for p in projects}
        self._cache: dict[ProjectKey, Attribution] = {}

    def name(self, key: ProjectKey) -> str:
        return self._names.get(key, "")

    def of(self, key: ProjectKey) -> Attribution:
        if key not in self._cache:
            self._cache[key] = attribute(self._rules, key, self.name(key))
        return self._cache[key]


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    """The first day of the month after ``day``'s."""
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def previous_month(first: date) -> date:
    return (first - timedelta(days=1)).replace(day=1)


def money(amount: Decimal) -> str:
    """Exact decimal text (no exponent, no float on the way)."""
    text = format(amount, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def cents(amount: Decimal) -> str:
    return format(amount.quantize(Decimal("0.01")), "f")


def aligned(table: Sequence[Sequence[str]]) -> list[str]:
    """Rows of cells as lines: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return [
        "  ".join(
            v.ljust(w) if i == 0 else v.rjust(w)
            for i, (v, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in table
    ]
