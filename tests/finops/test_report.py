"""``report``: showback/chargeback of a month reconciles with the stored cost."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest

from exporter.analytics.attribution import attribute
from exporter.finops.common import previous_month
from exporter.finops.report import BY_KEYS, build_report
from exporter.store import Store
from tests.finops.conftest import DemoHistory
from tests.finops.test_focus import run

CENT = Decimal("0.01")


def last_month(h: DemoHistory) -> date:
    return previous_month(h.today.replace(day=1))


def stored_month(h: DemoHistory, first: date) -> list:
    store = Store(h.config.storage.path, read_only=True)
    try:
        end = (first + timedelta(days=32)).replace(day=1)
        converted, withheld = store.converted_costs_between(first, end, h.config.currency)
        names = {(p.provider, p.account, p.project): p.name for p in store.projects()}
    finally:
        store.close()
    assert not withheld
    return [(c, names.get((c.provider, c.account, c.project), "")) for c in converted]


@pytest.mark.parametrize("by", BY_KEYS)
def test_csv_reconciles_with_the_stored_month(eur: DemoHistory, by: str) -> None:
    month = last_month(eur)
    r = run(eur, "report", "--month", month.strftime("%Y-%m"), "--by", by, "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    header = list(rows[0])
    assert header[:3] == [by, "cost", "currency"]
    assert header[3:] == ["share", "previous_month", "change", "change_ratio"]
    stored = stored_month(eur, month)
    total = sum(Decimal(row["cost"]) for row in rows)
    # exact decimals (summed in another order: equal to 1e-20), hence equal to the cent
    assert abs(total - sum(c.amount for c, _ in stored)) < Decimal("1e-20")
    assert total.quantize(CENT) == sum(c.amount for c, _ in stored).quantize(CENT)
    assert {row["currency"] for row in rows} == {"EUR"}
    assert len({row[by] for row in rows}) == len(rows)
    shares = sum(Decimal(row["share"]) for row in rows)
    assert abs(shares - 1) <= Decimal("0.0001") * len(rows)
    previous = stored_month(eur, previous_month(month))
    for row in rows:
        assert Decimal(row["change"]) == Decimal(row["cost"]) - Decimal(row["previous_month"])
    before = sum(Decimal(row["previous_month"]) for row in rows)
    assert abs(before - sum(c.amount for c, _ in previous)) < Decimal("1e-20")


def test_team_rows_follow_attribution_and_unassigned_is_a_row(eur: DemoHistory) -> None:
    month = last_month(eur)
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for c, name in stored_month(eur, month):  # independent: attribution rule by rule
        team = attribute(eur.config.attribution, (c.provider, c.account, c.project), name).team
        expected[team or "unassigned"] += c.amount
    store = Store(eur.config.storage.path, read_only=True)
    try:
        report = build_report(eur.config, store, month, "team")
    finally:
        store.close()
    got = {row.key: row.cost.quantize(CENT) for row in report.rows if row.cost}
    assert got == {k: v.quantize(CENT) for k, v in expected.items()}
    assert "unassigned" in got and {"search", "support", "data", "research"} <= set(got)


def test_json_and_table(eur: DemoHistory) -> None:
    month = last_month(eur).strftime("%Y-%m")
    r = run(eur, "report", "--month", month, "--by", "pool", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["month"] == month and doc["currency"] == "EUR" and doc["by"] == "pool"
    assert Decimal(doc["total"]) == sum(Decimal(row["cost"]) for row in doc["rows"])
    assert doc["rows"][0]["pool"] and isinstance(doc["rows"][0]["cost"], str)
    table = run(eur, "report", "--month", month, "--by", "pool").stdout
    assert table.splitlines()[0] == f"{month} by pool, in EUR"
    assert f"{Decimal(doc['total']).quantize(Decimal('0.01'))} EUR" in table.splitlines()[-1]


def test_bad_arguments(eur: DemoHistory) -> None:
    r = run(eur, "report", "--month", "2026-13", "--by", "team")
    assert r.returncode == 2 and "YYYY-MM" in r.stderr
    r = run(eur, "report", "--month", "2026-01", "--by", "colour")
    assert r.returncode == 2 and "--by" in r.stderr
