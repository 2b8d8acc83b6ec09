"""The SQLite history: migrations, window replacement, exact money, retention."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from exporter.records import CostRecord, FetchResult, ProjectRecord, UsageRecord
from exporter.store import Store
from exporter.store.migrations import MIGRATIONS
from tests.store.conftest import Backend

D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


def usage(day: date, project: str = "p1", requests: int = 10, **kw: object) -> UsageRecord:
    return UsageRecord(
        "openai", "acct", day, project, "gpt-4o", "completions",
        input_tokens=100, output_tokens=20, requests=requests, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def cost(day: date, amount: str, project: str = "p1", line: str = "gpt-4o, input") -> CostRecord:
    return CostRecord(
        "openai", "acct", day, project, "gpt-4o", "tokens", Decimal(amount), line_item=line
    )


def test_migrations_are_recorded_and_rerunning_is_a_noop(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    assert store.migrate() == []
    names = store.migrations_applied()
    assert names == [name for name, _ in MIGRATIONS]
    store.close()
    again = Store(tmp_path / "h.db")
    assert again.migrate() == []
    assert again.db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_replace_window_overwrites_revised_days_and_drops_vanished_rows(backend: Backend) -> None:
    store = backend.open()
    store.replace_window(
        "openai", "acct",
        FetchResult(D1, D3, [usage(D1), usage(D2), usage(D2, "p2")],
                    [cost(D1, "1.10"), cost(D2, "2.20"), cost(D2, "0.5", "p2")]),
    )  # fmt: skip
    # re-poll of D2 only: p1 revised down, p2 vanished
    store.replace_window(
        "openai", "acct", FetchResult(D2, D3, [usage(D2, requests=7)], [cost(D2, "2.05")])
    )
    costs = {(c.day, c.project): c.amount for c in store.costs_between(D1, D3)}
    assert costs == {(D1, "p1"): Decimal("1.10"), (D2, "p1"): Decimal("2.05")}
    reqs = {(u.day, u.project): u.requests for u in store.usage_between(D1, D3)}
    assert reqs == {(D1, "p1"): 10, (D2, "p1"): 7}


def test_other_accounts_are_untouched(backend: Backend) -> None:
    store = backend.open()
    other = CostRecord("openai", "other", D1, "p1", "m", "tokens", Decimal("9"))
    store.replace_window("openai", "other", FetchResult(D1, D2, [], [other]))
    store.replace_window("openai", "acct", FetchResult(D1, D2, [], [cost(D1, "1")]))
    store.replace_window("openai", "acct", FetchResult(D1, D2, [], []))
    assert [c.account for c in store.costs_between(D1, D2)] == ["other"]


def test_money_is_stored_exactly(backend: Backend) -> None:
    store = backend.open()
    amounts = ["0.13080438", "0.000000001", "1234567.123456789012"]
    rows = [cost(D1, a, line=f"l{i}") for i, a in enumerate(amounts)]
    store.replace_window("openai", "acct", FetchResult(D1, D2, [], rows))
    got = sorted(c.amount for c in store.costs_between(D1, D2))
    assert got == sorted(Decimal(a) for a in amounts)
    assert sum(got) == Decimal("1234567.254261170012")


def test_a_failing_write_changes_nothing(backend: Backend) -> None:
    store = backend.open()
    store.replace_window("openai", "acct", FetchResult(D1, D2, [], [cost(D1, "1")]))
    duplicate = [cost(D1, "2"), cost(D1, "3")]  # same natural key twice -> constraint error
    try:
        store.replace_window("openai", "acct", FetchResult(D1, D2, [], duplicate))
    except Exception:
        pass
    else:  # pragma: no cover
        raise AssertionError("expected a constraint error")
    assert [c.amount for c in store.costs_between(D1, D2)] == [Decimal("1")]


def test_records_outside_the_window_are_refused(backend: Backend) -> None:
    store = backend.open()
    try:
        store.replace_window("openai", "acct", FetchResult(D1, D2, [], [cost(D2, "1")]))
    except ValueError as exc:
        assert "outside the polled window" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected ValueError")


def test_projects_keys_state_and_retention(backend: Backend) -> None:
    store = backend.open()
    created = datetime(2026, 1, 1, tzinfo=UTC)
    store.replace_window(
        "openai", "acct",
        FetchResult(D1, D3, [usage(D1), usage(D2)], [cost(D1, "1"), cost(D2, "2")],
                    projects=[ProjectRecord("openai", "acct", "p1", "Search", created_at=created)]),
    )  # fmt: skip
    assert store.projects()[0].name == "Search" and store.projects()[0].created_at == created
    store.record_success("openai", "acct", created, created, D1)
    store.record_success("openai", "acct", created, created, None)
    assert store.provider_state("openai", "acct")["backfilled_from"] == "2026-03-01"
    assert store.prune(D2) == 2
    assert [c.day for c in store.costs_between(D1, D3)] == [D2]


def test_fx_migration_keeps_existing_rows_and_source_amounts(tmp_path: Path) -> None:

    from tests.store.old_format import old_history

    path = tmp_path / "old.db"
    db = old_history(path, "002_fx")
    db["costs"].insert(
        {"provider": "openai", "account": "acct", "day": "2026-03-01", "project": "p1",
         "line_item": "gpt-4o, input", "model": "gpt-4o", "api_key": "", "service_tier": "",
         "cost_type": "tokens", "token_type": "", "amount": "1.10", "currency": "USD",
         "attribution": "line_item"}
    )  # fmt: skip
    db.conn.commit()
    db.conn.close()
    store = Store(path)
    assert store.costs_between(D1, D2) == [cost(D1, "1.10")]
    assert store.cost_audit(D1)[0]["fx_amount"] is None  # converted by the fx step later
    # same currency needs no rate; another currency waits for the fx step
    assert store.converted_costs_between(D1, D2, "USD") == ([cost(D1, "1.10")], [])
    assert store.converted_costs_between(D1, D2, "EUR") == ([], [cost(D1, "1.10")])
    assert store.migrate() == []


def test_annotated_rows_land_converted_in_the_same_write(backend: Backend) -> None:
    store = backend.open()
    columns = {"fx_amount": "2.2", "fx_currency": "EUR", "fx_rate": "2", "fx_status": "final"}
    store.replace_window(
        "openai", "acct", FetchResult(D1, D2, [], [cost(D1, "1.10")]), lambda c: columns
    )
    (converted,), withheld = store.converted_costs_between(D1, D2, "EUR")
    assert (converted.amount, converted.currency, withheld) == (Decimal("2.2"), "EUR", [])
    assert store.costs_between(D1, D2) == [cost(D1, "1.10")]  # the source stays as billed
