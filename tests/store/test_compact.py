"""The compact history (issue 17): exact integer money, migration of an old-format file,
space per row, retention with reclaim."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from dataclasses import asdict
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from exporter.analytics.build import SnapshotBuilder
from exporter.app import open_history
from exporter.cli import series_line
from exporter.config import Config
from exporter.exposition import render
from exporter.records import CostRecord, FetchResult, UsageRecord
from exporter.snapshot import ProviderHealth
from exporter.store import StorageError, Store
from exporter.store.compact import MAX_AMOUNT, from_units, text_units, to_units
from exporter.store.dialect import Connection
from exporter.store.migrations import FX_COLUMNS, MIGRATIONS
from tests.conftest import NOW, TODAY
from tests.store.conftest import Backend
from tests.store.old_format import old_history

ACCOUNTS = [("openai", "openai-main"), ("anthropic", "claude")]
START = TODAY - timedelta(days=40)
END = TODAY + timedelta(days=1)

EXTREMES = [
    "0.000000000001",  # the smallest unit
    "0.123456789012",  # every decimal of the scale
    "1234567.891234567891",  # beyond the scale: kept as exact text
    "0.1234567890123456789012345678",  # a 28-digit converted amount
    "9223372.036854775807",  # the 64-bit bound, exactly
    "9223372.036854775808",  # one unit beyond it: exact text
    "-9223372.036854775807",
    "-250.75",  # a credit
    "-0.000000000001",
    "1E+30",  # huge
    "1.50",  # trailing zero (read back as 1.5: the same value)
    "0",
]


@pytest.mark.parametrize("text", EXTREMES)
def test_units_round_trip_or_fall_back_to_exact_text(text: str) -> None:
    amount = Decimal(text)
    units = to_units(amount)
    if units is None:
        assert abs(amount) > MAX_AMOUNT or amount.as_tuple().exponent < -12  # type: ignore[operator]
    else:
        assert from_units(units) == amount
        assert -(2**63) < units < 2**63


@pytest.mark.parametrize("text", [*EXTREMES, "-0.5", "007.10", ".5", "1e-3", "12.0000000000000"])
def test_old_money_text_converts_like_its_decimal(text: str) -> None:
    assert text_units(text) == to_units(Decimal(text))


def cost(account: tuple[str, str], day: date, amount: str, line: str = "", **kw: Any) -> CostRecord:
    return CostRecord(
        *account, day, "p1", "gpt-4o", "tokens", Decimal(amount), line_item=line, **kw
    )


def test_extreme_amounts_round_trip_exactly_through_the_store(backend: Backend) -> None:
    store = backend.open()
    account = ACCOUNTS[0]
    rows = [cost(account, TODAY, text, line=f"line {i}") for i, text in enumerate(EXTREMES)]
    converted = {r.line_item: Decimal(t).scaleb(-3) for r, t in zip(rows, EXTREMES, strict=True)}

    def annotate(c: CostRecord) -> dict[str, Any]:  # a 28-digit rate: converted text kept exactly
        return {"fx_amount": format(converted[c.line_item], "f"), "fx_currency": "EUR",
                "fx_rate": "0.001", "fx_rate_date": TODAY.isoformat(), "fx_source": "ecb-daily",
                "fx_status": "final"}  # fmt: skip

    store.replace_window(*account, FetchResult(TODAY, END, costs=rows), annotate)
    got = {c.line_item: c for c in store.costs_between(TODAY, END)}
    assert {k: c.amount for k, c in got.items()} == {r.line_item: r.amount for r in rows}
    assert all(type(c.amount) is Decimal for c in got.values())  # never a float
    fx, withheld = store.converted_costs_between(TODAY, END, "EUR")
    assert withheld == [] and {c.line_item: c.amount for c in fx} == converted
    # the views keep the old text columns, exact
    view = {
        r[0]: (r[1], r[2])
        for r in store.db.execute("SELECT line_item, amount, fx_amount FROM costs")
    }
    assert {k: (Decimal(a), Decimal(f)) for k, (a, f) in view.items()} == {
        r.line_item: (r.amount, converted[r.line_item]) for r in rows
    }


# -- an old-format history (migrations up to 011) against a fresh fill --------------------


def history_rows(seed: int = 7) -> dict[tuple[str, str], FetchResult]:
    rng = random.Random(seed)
    out = {}
    for provider, account in ACCOUNTS:
        result = FetchResult(START, END)
        for n in range(41):
            day = START + timedelta(days=n)
            for project in ("p1", "p2", "default"):
                for model in ("gpt-4o", "gpt-4o-mini"):
                    for batch in ("false", "true"):
                        result.usage.append(
                            UsageRecord(provider, account, day, project, model, "completions",
                                        api_key=f"key_{project}", batch=batch,
                                        service_tier="default" if batch == "false" else "",
                                        input_tokens=rng.randrange(10**6),
                                        output_tokens=rng.randrange(10**5),
                                        cache_read_tokens=rng.randrange(10**5),
                                        requests=rng.randrange(1, 900))
                        )  # fmt: skip
                    for token_type in ("input", "output"):
                        amount = Decimal(rng.randrange(1, 10**9)).scaleb(-rng.choice((2, 6, 12)))
                        result.costs.append(
                            CostRecord(provider, account, day, project, model, "tokens", amount,
                                       line_item=f"{model}, {token_type}", token_type=token_type,
                                       api_key=f"key_{project}")
                        )  # fmt: skip
                result.costs.append(
                    CostRecord(provider, account, day, project, "", "web_search",
                               Decimal("0.0123456789012345678"), line_item="web search")
                )  # fmt: skip
            if n % 10 == 0:
                currency = "EUR" if provider == "anthropic" else "USD"
                result.costs.append(
                    CostRecord(provider, account, day, "p1", "", "credit", Decimal("-12.5"),
                               currency=currency, line_item="credit", attribution="unattributed")
                )  # fmt: skip
        out[(provider, account)] = result
    return out


def write_old_format(
    path: Path, results: dict[tuple[str, str], FetchResult], *, index: bool = False
) -> None:
    """The rows as the previous version stored them: text days, decimal text money, the FX
    columns NULL (converted by the FX step), text keys; 011's index is built on open (or
    here, with ``index``)."""
    db = old_history(path, "011_stream_index")
    for result in results.values():
        db["usage"].insert_all(
            {**asdict(u), "day": u.day.isoformat()} for u in result.usage
        )  # fmt: skip
        db["costs"].insert_all(
            {**asdict(c), "day": c.day.isoformat(), "amount": format(c.amount, "f")}
            for c in result.costs
        )
    if index:
        dict(MIGRATIONS)["011_stream_index"](Connection.sqlite(db.conn))
        db["_migrations"].insert({"name": "011_stream_index", "applied_at": "2026-01-01"})
    db.conn.commit()
    db.conn.close()


def metrics(path: Path, currency: str) -> bytes:
    cfg = Config.model_validate({"storage": {"path": str(path)}, "currency": currency})
    history = open_history(cfg, clock=lambda: NOW)
    try:
        history.fx.convert_stored()
        builder = SnapshotBuilder(
            cfg, history.store, history.fx, history.catalogue, cfg.recommendations.maps(),
            lambda: NOW,
        )  # fmt: skip
        health = [ProviderHealth(p, a, up=True) for p, a in ACCOUNTS]
        return render(builder.build(health)).text
    finally:
        history.close()


def contents(store: Store) -> dict[str, Any]:
    converted, withheld = store.converted_costs_between(START, END, "EUR")
    return {
        "usage": Counter(store.usage_between(START, END)),
        "costs": Counter(store.costs_between(START, END)),
        "account": Counter(store.usage_between(START, END, ACCOUNTS[1])),
        "converted": Counter(converted),
        "withheld": Counter(withheld),
        "audit": sorted(map(repr, (sorted(r.items()) for r in store.cost_audit(TODAY)))),
        "unconverted": store.fx_unconverted("EUR"),
        "first_seen": store.streams_first_seen(START),
        "currencies": store.cost_currencies(),
        "days": store.days_with_data(*ACCOUNTS[0]),
        "first_day": store.first_day(),
        "view_usage": Counter(store.db.execute("SELECT * FROM usage").fetchall()),
    }


def test_an_old_format_history_migrates_to_what_a_fresh_fill_stores(tmp_path: Path) -> None:
    results = history_rows()
    old, fresh = tmp_path / "old.db", tmp_path / "fresh.db"
    write_old_format(old, results)
    old_view = sqlite3.connect(old)
    old_costs = Counter(
        tuple(Decimal(v) if k in ("amount",) else v for k, v in zip(
            [d[0] for d in old_view.execute("SELECT * FROM costs").description], row, strict=True))
        for row in old_view.execute("SELECT * FROM costs")
    )  # fmt: skip
    old_view.close()
    assert sqlite3.connect(old).execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    size_old = old.stat().st_size
    migrated = Store(old)  # migrates on open (011, 012) and VACUUMs
    store = Store(fresh)
    for (provider, account), result in results.items():
        store.replace_window(provider, account, result)
    assert contents(migrated) == contents(store)
    # the costs view has the old table's columns and values
    cursor = migrated.db.execute("SELECT * FROM costs")
    names = [d[0] for d in cursor.description]
    assert names[:13] == ["provider", "account", "day", "project", "line_item", "model",
                          "api_key", "service_tier", "cost_type", "token_type", "amount",
                          "currency", "attribution"] and names[13:] == list(FX_COLUMNS)  # fmt: skip
    assert (
        Counter(
            tuple(Decimal(v) if k == "amount" else v for k, v in zip(names, row, strict=True))
            for row in cursor
        )
        == old_costs
    )
    # the space went back to the file system, and retention reclaims from now on
    assert migrated.db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    assert old.stat().st_size < size_old / 2
    migrated.close()
    store.close()
    assert metrics(old, "EUR") == metrics(fresh, "EUR")
    assert metrics(old, "USD") == metrics(fresh, "USD")


def test_a_stored_row_takes_well_under_half_the_space_of_the_old_format(tmp_path: Path) -> None:
    """Bytes per row of each format: the growth from one account's rows to two accounts'."""
    results = history_rows(seed=3)
    one = dict(list(results.items())[:1])
    rows = sum(len(r.usage) + len(r.costs) for r in list(results.values())[1:])

    def old_size(name: str, part: dict[tuple[str, str], FetchResult]) -> int:
        write_old_format(tmp_path / name, part, index=True)
        conn = sqlite3.connect(tmp_path / name)
        conn.execute("VACUUM")
        conn.close()
        return (tmp_path / name).stat().st_size

    def new_size(name: str, part: dict[tuple[str, str], FetchResult]) -> int:
        store = Store(tmp_path / name)
        for (provider, account), result in part.items():
            store.replace_window(provider, account, result)
        store.close()
        conn = sqlite3.connect(tmp_path / name)
        conn.execute("VACUUM")
        conn.close()
        return (tmp_path / name).stat().st_size

    old_per_row = (old_size("o2.db", results) - old_size("o1.db", one)) / rows
    new_per_row = (new_size("n2.db", results) - new_size("n1.db", one)) / rows
    assert new_per_row < 0.4 * old_per_row, (new_per_row, old_per_row)


def test_retention_prunes_the_compact_rows_and_reclaims_their_pages(tmp_path: Path) -> None:
    empty = Store(tmp_path / "empty.db")  # the schema's own pages
    base = int(empty.db.execute("PRAGMA page_count").fetchone()[0])
    store = Store(tmp_path / "h.db")
    results = history_rows(seed=5)
    for (provider, account), result in results.items():
        store.replace_window(provider, account, result)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = int(store.db.execute("PRAGMA page_count").fetchone()[0])
    cutoff = START + timedelta(days=30)
    kept = [u for u in store.usage_between(START, END) if u.day >= cutoff]
    removed = store.prune(cutoff)
    assert removed == sum(
        1 for r in results.values() for x in [*r.usage, *r.costs] if x.day < cutoff
    )
    assert store.usage_between(START, END) == kept
    assert store.first_day() == cutoff
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert store.db.execute("PRAGMA freelist_count").fetchone()[0] == 0
    after = int(store.db.execute("PRAGMA page_count").fetchone()[0])
    assert after - base < (pages - base) * 0.5  # 30 of 41 days removed


def test_an_old_format_history_is_not_read_before_it_is_converted(tmp_path: Path) -> None:
    """Read-only commands (check-config, recommendations, fx) never migrate: an old-format
    file gets an error that says what to do, and is left as it was."""
    path = tmp_path / "old.db"
    write_old_format(path, dict(list(history_rows().items())[:1]), index=True)
    before = path.read_bytes()
    with pytest.raises(StorageError, match=r"earlier version.*start the exporter"):
        Store(path, read_only=True)
    assert path.read_bytes() == before
    # check-config says so in its series line instead of failing with a traceback
    config = Config.model_validate({"storage": {"path": str(path)}})
    line = series_line(config)
    assert line.startswith("series: ") and "earlier version" in line, line
    assert path.read_bytes() == before
    Store(path).close()  # converts it
    reader = Store(path, read_only=True)
    assert reader.usage_between(START, END)
    reader.close()
