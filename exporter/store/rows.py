"""Records <-> table rows of the small tables (projects, keys, billing state): dates as ISO
text, money as exact decimal text. Usage and cost rows are compact
(:mod:`exporter.store.compact`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from datetime import date, datetime
from typing import Any

from exporter.records import (
    BillingRecord,
    CostRecord,
)
from exporter.store.dialect import Connection

CostAnnotator = Callable[[CostRecord], Mapping[str, Any]]


def insert_rows(
    conn: Connection, table: str, rows: list[dict[str, Any]], *, key: tuple[str, ...] = ()
) -> None:
    """Insert ``rows`` whose keys may differ (a cost row without a rate has no converted
    amount): the columns are every key of any row, in first-seen order; a row lacking a
    column stores NULL there."""
    if not rows:
        return
    columns = list(dict.fromkeys(c for r in rows for c in r))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"
    if key:  # replace the row of the same key
        sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
        sql += f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
    conn.executemany(sql, [tuple(r.get(c) for c in columns) for r in rows])


def plain_row(record: Any) -> dict[str, Any]:
    out = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        out[f.name] = value
    return out


def cost_row(c: CostRecord) -> dict[str, Any]:
    row = plain_row(c)
    row["amount"] = format(c.amount, "f")
    return row


def billing_row(b: BillingRecord, now: str) -> dict[str, Any]:
    row = plain_row(b)
    row["amount"] = format(b.amount, "f")
    row["observed_at"] = row["observed_at"] or now
    return row


def parse_datetime(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
