"""The maintained stream index: first days, currencies, day versions, pending conversions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from exporter.records import CostRecord, FetchResult, Stream, UsageRecord
from exporter.store import Store
from exporter.store.migrations import MIGRATIONS
from tests.store.conftest import Backend
from tests.store.old_format import old_history

D = [date(2026, 3, 1) + timedelta(days=i) for i in range(10)]
S = Stream("openai", "acct", "p1", "gpt-4o")


def cost(day: date, project: str = "p1", amount: str = "1.5", currency: str = "USD") -> CostRecord:
    return CostRecord("openai", "acct", day, project, "gpt-4o", "tokens", Decimal(amount), currency)


def usage(day: date, project: str = "p1") -> UsageRecord:
    return UsageRecord("openai", "acct", day, project, "gpt-4o", "completions", requests=3)


def window(store: Store, start: date, end: date, *rows: CostRecord | UsageRecord) -> None:
    store.replace_window(
        "openai",
        "acct",
        FetchResult(
            start,
            end,
            usage=[r for r in rows if isinstance(r, UsageRecord)],
            costs=[r for r in rows if isinstance(r, CostRecord)],
        ),
    )


def test_first_days_follow_backfills_and_revisions(backend: Backend) -> None:
    store = backend.open()
    window(store, D[5], D[8], cost(D[6]), usage(D[7], "p2"))
    assert store.streams_first_seen(D[0]) == {S: D[6], S._replace(project="p2"): D[7]}
    window(store, D[2], D[5], cost(D[3]))  # a backfill of older days moves p1 back
    assert store.streams_first_seen(D[0])[S] == D[3]
    window(store, D[2], D[5])  # revised away: p1 starts at its next stored day again
    assert store.streams_first_seen(D[0])[S] == D[6]
    window(store, D[5], D[8], usage(D[7], "p2"))  # p1 has no data left at all
    assert store.streams_first_seen(D[0]) == {S._replace(project="p2"): D[7]}
    assert store.stream_count() == 1


def test_currencies_and_their_first_days_without_a_scan(backend: Backend) -> None:
    store = backend.open()
    window(store, D[0], D[4], cost(D[1]), cost(D[3], "p2", currency="EUR"))
    assert store.cost_currencies() == {"USD", "EUR"}
    assert store.first_cost_day("USD") == D[3]
    assert store.first_cost_day("EUR") == D[1]
    store.prune(D[2])
    assert store.first_cost_day("EUR") == D[2]  # nothing stored before the cut-off


def test_every_write_bumps_the_versions_of_its_days(backend: Backend) -> None:
    store = backend.open()
    window(store, D[0], D[3], cost(D[1]))
    first = store.day_versions(D[0], D[9])
    assert set(first) == {("openai", "acct", d) for d in D[0:3]}  # emptied days count too
    window(store, D[1], D[2], cost(D[1], amount="2"))
    second = store.day_versions(D[0], D[9])
    changed = {k for k in second if second[k] != first[k]}
    assert changed == {("openai", "acct", D[1])}


class _Counting:
    def __init__(self) -> None:
        self.seen: list[CostRecord] = []

    def __call__(self, record: CostRecord) -> Mapping[str, Any]:
        self.seen.append(record)
        rate = Decimal(2) if record.currency == "EUR" else Decimal(1)
        return {
            "fx_amount": format(record.amount * rate, "f"),
            "fx_currency": "USD",
            "fx_rate": str(rate),
            "fx_status": "final",
        }


def test_conversion_rereads_only_pending_rows_until_the_currency_changes(
    backend: Backend,
) -> None:
    store = backend.open()
    window(store, D[0], D[3], cost(D[0]), cost(D[1], currency="EUR"), cost(D[2]))
    convert = _Counting()
    assert store.reconvert_costs("USD", None, convert) == 3  # first run: all unconverted
    before = store.day_versions(D[0], D[9])
    assert store.reconvert_costs("USD", None, convert) == 0  # nothing pending: no row read
    assert store.fx_unconverted("USD") == {}
    assert store.day_versions(D[0], D[9]) == before
    days: list[date] = []
    assert store.reconvert_costs("USD", D[2], convert, lambda r, _fx: days.append(r.day)) == 1
    assert days == [D[2]]
    assert store.reconvert_costs("EUR", None, convert) == 3  # currency changed: all


def test_amounts_converted_before_the_12_decimal_rule_are_converted_again_once(
    backend: Backend,
) -> None:
    """A history whose converted amounts kept a cross rate's 28 digits as text (before
    ``fx_amount_scale``) has those rows, and only those, converted again at the next
    conversion step, then never again; the cube then reads them as integers."""
    store = backend.open()
    third = Decimal(1) / Decimal(3)

    def old_rule(record: CostRecord) -> Mapping[str, Any]:
        rate = third if record.currency == "EUR" else Decimal(1)
        return {"fx_amount": format(record.amount * rate, "f"), "fx_currency": "USD",
                "fx_rate": str(rate), "fx_status": "final"}  # fmt: skip

    result = FetchResult(
        D[0], D[3], usage=[], costs=[cost(D[0]), cost(D[1], amount="1", currency="EUR")]
    )
    store.replace_window("openai", "acct", result, annotate=old_rule)
    assert store.reconvert_costs("USD", None, old_rule) == 1  # the first step: 28 digits
    with store._transaction() as conn:  # as a history written before this version left it
        conn.execute("DELETE FROM store_meta WHERE key = 'fx_amount_scale'")
    assert store.account_days("USD", ("openai", "acct"), D[0], D[3])[0] == []  # exact text

    def new_rule(record: CostRecord) -> Mapping[str, Any]:
        out = dict(old_rule(record))
        out["fx_amount"] = format(Decimal(out["fx_amount"]).quantize(Decimal("1E-12")), "f")
        return out

    again: list[tuple[CostRecord, Mapping[str, Any]]] = []
    assert store.reconvert_costs("USD", None, new_rule, lambda r, fx: again.append((r, fx))) == 1
    assert [(r.day, r.currency) for r, _ in again] == [(D[1], "EUR")]
    assert store.reconvert_costs("USD", None, new_rule) == 0  # once
    groups = store.account_days("USD", ("openai", "acct"), D[0], D[3])[0]
    assert [g[4] for g in groups] == [1_500_000_000_000, 333_333_333_333]  # 1.5, 1/3


def test_the_migration_indexes_an_existing_history(tmp_path: Path) -> None:
    path = tmp_path / "h.db"
    old = old_history(path, "011_stream_index")
    old.table("costs").insert({"provider": "openai", "account": "acct", "day": "2026-03-04",
                         "project": "p1", "line_item": "", "model": "gpt-4o",
                         "api_key": "", "service_tier": "", "cost_type": "tokens",
                         "amount": "1", "currency": "EUR"})  # fmt: skip
    old.conn.close()
    store = Store(path)  # migrates on open
    assert store.migrations_applied()[-1] == MIGRATIONS[-1][0]
    assert store.streams_first_seen(D[0]) == {S: D[3]}
    assert store.cost_currencies() == {"EUR"}
    assert store.day_versions(D[0], D[9]) == {("openai", "acct", D[3]): 1}


def test_retention_gives_freed_pages_back_to_the_file_system(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    days = [date(2026, 1, 1) + timedelta(days=i) for i in range(60)]
    # compact rows: enough of them that the tables' pages outweigh the schema's fixed ones
    rows = [cost(d, f"p{n}", amount=f"{n}.25") for d in days for n in range(200)]
    store.replace_window(
        "openai", "acct", FetchResult(days[0], days[-1] + timedelta(1), costs=rows)
    )
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def pages() -> int:
        return int(store.db.execute("PRAGMA page_count").fetchone()[0])

    before = pages()
    assert store.prune(days[50]) == 50 * 200
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert store.db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    assert pages() < before / 2
    assert len(store.costs_between(days[0], days[-1] + timedelta(1))) == 10 * 200
