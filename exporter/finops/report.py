"""``report``: showback / chargeback of one month in the accounting currency.

Every stored cost row of the month, converted at the ECB rate of its own day, lands in
exactly one row of the ``--by`` key: ``team``, ``pool`` or ``environment`` (from
``attribution:``), ``project``, ``provider`` or ``model``. Cost that no rule (or no key)
claims is the row ``unassigned``, so the rows add up to the month's stored cost exactly;
amounts are exact decimals (the table rounds to the cent). Each row also carries its share
of the total, the previous month's cost of the same key and the change.

A cost row without a usable FX rate cannot be summed in the accounting currency: it is
left out and counted (``withheld``), never converted at 1.0.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from exporter.config import Config
from exporter.finops.common import (
    UNASSIGNED,
    Attributions,
    aligned,
    cents,
    money,
    next_month,
    previous_month,
)
from exporter.records import CostRecord
from exporter.store import Store

BY_KEYS: tuple[str, ...] = ("team", "pool", "project", "environment", "provider", "model")
SHARE = Decimal("0.0001")


@dataclass(frozen=True)
class ReportRow:
    key: str
    cost: Decimal
    share: Decimal  # of the month's total, 0..1
    previous: Decimal  # the same key's cost in the previous month
    change: Decimal  # cost - previous

    @property
    def change_ratio(self) -> Decimal | None:
        return None if not self.previous else self.change / self.previous


@dataclass(frozen=True)
class Report:
    month: date  # its first day
    by: str
    currency: str
    rows: list[ReportRow]
    total: Decimal
    previous_total: Decimal
    withheld: int  # cost rows of the two months without a usable FX rate


def _key(by: str, c: CostRecord, attributions: Attributions) -> str:
    if by == "provider":
        return c.provider
    if by == "model":
        return c.model or UNASSIGNED
    if by == "project":
        return f"{c.provider}/{c.account}/{c.project}" if c.project else UNASSIGNED
    return str(getattr(attributions.of((c.provider, c.account, c.project)), by)) or UNASSIGNED


def _sums(costs: Iterable[CostRecord], by: str, attributions: Attributions) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for c in costs:
        out[_key(by, c, attributions)] += c.amount
    return out


def build_report(config: Config, store: Store, month: date, by: str) -> Report:
    """The report of the month starting ``month`` (any day of it) by ``by``."""
    if by not in BY_KEYS:
        raise ValueError(f"--by must be one of {', '.join(BY_KEYS)}, not {by!r}")
    first = month.replace(day=1)
    prev = previous_month(first)
    attributions = Attributions(config.attribution, store.projects())
    current, withheld_now = store.converted_costs_between(first, next_month(first), config.currency)
    before, withheld_before = store.converted_costs_between(prev, first, config.currency)
    now_sums, prev_sums = _sums(current, by, attributions), _sums(before, by, attributions)
    total = sum(now_sums.values(), Decimal(0))
    rows = [
        ReportRow(
            key=k,
            cost=now_sums.get(k, Decimal(0)),
            share=(now_sums.get(k, Decimal(0)) / total).quantize(SHARE) if total else Decimal(0),
            previous=prev_sums.get(k, Decimal(0)),
            change=now_sums.get(k, Decimal(0)) - prev_sums.get(k, Decimal(0)),
        )
        for k in set(now_sums) | set(prev_sums)
    ]
    rows.sort(key=lambda r: (-r.cost, -r.previous, r.key))
    return Report(
        month=first,
        by=by,
        currency=config.currency,
        rows=rows,
        total=total,
        previous_total=sum(prev_sums.values(), Decimal(0)),
        withheld=len(withheld_now) + len(withheld_before),
    )


def _ratio(value: Decimal | None) -> str:
    return "" if value is None else money(value.quantize(SHARE))


def to_csv(report: Report) -> str:
    """Columns: the ``--by`` key, cost, currency, share, previous_month, change, change_ratio."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [report.by, "cost", "currency", "share", "previous_month", "change", "change_ratio"]
    )
    for r in report.rows:
        writer.writerow(
            [r.key, money(r.cost), report.currency, money(r.share), money(r.previous),
             money(r.change), _ratio(r.change_ratio)]
        )  # fmt: skip
    return out.getvalue()


def to_json(report: Report) -> str:
    return (
        json.dumps(
            {
                "month": report.month.strftime("%Y-%m"),
                "by": report.by,
                "currency": report.currency,
                "total": money(report.total),
                "previous_month_total": money(report.previous_total),
                "withheld_cost_rows": report.withheld,
                "rows": [
                    {
                        report.by: r.key,
                        "cost": money(r.cost),
                        "share": money(r.share),
                        "previous_month": money(r.previous),
                        "change": money(r.change),
                        "change_ratio": _ratio(r.change_ratio) or None,
                    }
                    for r in report.rows
                ],
            },
            indent=2,
        )
        + "\n"
    )


def to_table(report: Report) -> str:
    """Aligned columns for people, money rounded to the cent, with a total line."""
    head = (report.by.upper(), "COST", "SHARE", "PREVIOUS", "CHANGE")
    cells = [
        (
            r.key,
            f"{cents(r.cost)} {report.currency}",
            f"{r.share * 100:.1f}%",
            cents(r.previous),
            (f"{'+' if r.change >= 0 else ''}{cents(r.change)}")
            + (f" ({r.change_ratio * 100:+.1f}%)" if r.change_ratio is not None else ""),
        )
        for r in report.rows
    ]
    total = (
        "TOTAL",
        f"{cents(report.total)} {report.currency}",
        "100.0%" if report.total else "-",
        cents(report.previous_total),
        f"{'+' if report.total >= report.previous_total else ''}"
        f"{cents(report.total - report.previous_total)}",
    )
    title = f"{report.month:%Y-%m} by {report.by}, in {report.currency}"
    lines = [title, *aligned([head, *cells, total])]
    if report.withheld:
        lines.append(
            f"note: {report.withheld} cost row(s) have no {report.currency} rate and are left "
            "out (see `ai-cost-exporter fx`)"
        )
    return "\n".join(lines) + "\n"
