"""The schema as numbered migrations, recorded in ``_migrations``; each runs once."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from exporter.records import (
    COST_KEY,
    USAGE_KEY,
)
from exporter.store import compact
from exporter.store.dialect import Connection, create_table


def _m001_initial(db: Connection) -> None:
    create_table(
        db,
        "usage",
        {
            "provider": str,
            "account": str,
            "day": str,
            "project": str,
            "model": str,
            "source": str,
            "api_key": str,
            "batch": str,
            "service_tier": str,
            "unit": str,
            "input_tokens": int,
            "output_tokens": int,
            "cache_read_tokens": int,
            "cache_write_tokens": int,
            "requests": int,
            "units": int,
        },
        pk=USAGE_KEY,
        not_null=set(USAGE_KEY),
    )
    create_table(
        db,
        "costs",
        {
            "provider": str,
            "account": str,
            "day": str,
            "project": str,
            "line_item": str,
            "model": str,
            "api_key": str,
            "service_tier": str,
            "cost_type": str,
            "token_type": str,
            "amount": str,
            "currency": str,
            "attribution": str,
        },
        pk=COST_KEY,
        not_null=set(COST_KEY) | {"amount", "currency", "cost_type"},
    )
    db.execute("CREATE INDEX idx_usage_day ON usage (day)")
    db.execute("CREATE INDEX idx_costs_day ON costs (day)")
    create_table(
        db,
        "projects",
        {
            "provider": str,
            "account": str,
            "project": str,
            "name": str,
            "status": str,
            "created_at": str,
            "archived_at": str,
            "updated_at": str,
        },
        pk=("provider", "account", "project"),
    )
    create_table(
        db,
        "api_keys",
        {
            "provider": str,
            "account": str,
            "key_id": str,
            "project": str,
            "name": str,
            "status": str,
            "owner_type": str,
            "created_at": str,
            "last_used_at": str,
            "updated_at": str,
        },
        pk=("provider", "account", "key_id"),
    )
    create_table(
        db,
        "provider_state",
        {
            "provider": str,
            "account": str,
            "last_success": float,
            "data_complete_through": float,
            "backfilled_from": str,
        },
        pk=("provider", "account"),
    )


# The audit trail of a cost row's conversion to the accounting currency. ``amount`` and
# ``currency`` stay the provider's source amount and currency; these are filled by the
# conversion step (exporter.fx) and recomputed from the source amount whenever needed.
FX_COLUMNS = (
    "fx_amount",  # converted amount (decimal text); NULL when not converted
    "fx_currency",  # the accounting currency it was converted to
    "fx_rate",  # units of fx_currency per 1 unit of currency (decimal text)
    "fx_rate_date",  # date of the ECB rate used (latest publication <= day)
    "fx_source",  # ecb-daily | ecb-hist-90d | ecb-hist | bundled | identity
    "fx_status",  # final | provisional (fallback rate, re-converted later) | error
    "fx_error",  # no_rate | stale when fx_status = error
)


def _m002_fx(db: Connection) -> None:
    for column in FX_COLUMNS:
        db.execute(f"ALTER TABLE costs ADD COLUMN {column} TEXT")
    create_table(
        db,
        "fx_rates",
        {"day": str, "currency": str, "rate": str, "source": str, "fetched_at": str},
        pk=("day", "currency"),
        not_null={"day", "currency", "rate", "source"},
    )
    # Day ranges read from a complete ECB file: a TARGET working day inside one without a
    # rate was a closing day, not a gap to fill.
    create_table(
        db,
        "fx_coverage",
        {"first_day": str, "last_day": str, "source": str, "fetched_at": str},
        pk=("first_day", "last_day"),
    )


def _m003_billing_state(db: Connection) -> None:
    create_table(
        db,
        "billing_state",
        {
            "provider": str,
            "account": str,
            "kind": str,
            "amount": str,
            "currency": str,
            "period": str,
            "observed_at": str,
        },
        pk=("provider", "account", "kind"),
        not_null={"provider", "account", "kind", "amount", "currency", "period"},
    )


def _m006_recommendations(db: Connection) -> None:
    """When each recommendation (batch, downgrade, route, inactive key) was first seen."""
    create_table(
        db,
        "recommendations",
        {
            "id": str,
            "kind": str,
            "provider": str,
            "account": str,
            "project": str,
            "model": str,
            "api_key": str,
            "target": str,
            "first_seen": str,
            "last_seen": str,
        },
        pk="id",
        not_null={"id", "kind", "first_seen", "last_seen"},
    )


_APP_SUMS = {
    "requests": int, "retries": int, "input_tokens": int, "output_tokens": int,
    "cache_read_tokens": int, "cache_write_tokens": int, "cost_pusd": int, "unpriced": int,
}  # fmt: skip
_APP_LABELS = ("provider", "model", "endpoint", "tenant", "prompt_version", "outcome")


def _m010_app_requests(db: Connection) -> None:
    """Ingested requests (see exporter.store.requests): raw rows, daily roll-ups (by label
    set, by user), carry, label first-seen times."""
    create_table(db, "app_requests", 
        {
            "id": str, "ts": float, "day": str, "provider": str, "model": str,
            "endpoint": str, "tenant": str, "user": str, "prompt_version": str,
            "outcome": str, "retry": int, "input_tokens": int, "output_tokens": int,
            "cache_read_tokens": int, "cache_write_tokens": int, "cost_pusd": int,
        },
        pk="id",
    )  # fmt: skip
    # no index on day: retention scans it once a day; every ingested span would pay for one
    for table, key in (("app_daily", ("day", *_APP_LABELS)), ("app_users", ("day", "user"))):
        create_table(
            db,
            table,
            {**{k: str for k in key}, **_APP_SUMS, "first_ts": float},
            pk=key,
            not_null=set(key),
        )
    create_table(
        db,
        "app_carry",
        {**{k: str for k in _APP_LABELS}, **_APP_SUMS, "cost": str, "currency": str},
        pk=_APP_LABELS,
    )
    create_table(
        db, "app_labels", {"kind": str, "value": str, "first_ts": float}, pk=("kind", "value")
    )


def _m011_stream_index(db: Connection) -> None:
    """Maintained indexes of the history (issue 17), so no refresh scans every stored row:
    each stream's first day, the source currencies, a version per (account, day) that a
    reader caching the history compares, and a partial index of cost rows still to
    convert. Filled from the existing rows once; kept by the writes from then on. The
    usage and costs tables themselves are unchanged."""
    conn = db
    conn.execute(
        f"CREATE TABLE streams (id {db.dialect.id_key}, provider TEXT NOT NULL, "
        "account TEXT NOT NULL, project TEXT NOT NULL, model TEXT NOT NULL, "
        "first_day TEXT NOT NULL, UNIQUE (provider, account, project, model))"
    )
    conn.execute(
        "INSERT INTO streams (provider, account, project, model, first_day) "
        "SELECT provider, account, project, model, MIN(day) FROM ("
        "SELECT provider, account, project, model, day FROM costs UNION ALL "
        "SELECT provider, account, project, model, day FROM usage) AS days "
        "GROUP BY provider, account, project, model"
    )
    conn.execute(
        "CREATE TABLE cost_currencies (currency TEXT PRIMARY KEY, first_day TEXT NOT NULL)"
    )
    conn.execute(
        "INSERT INTO cost_currencies SELECT currency, MIN(day) FROM costs GROUP BY currency"
    )
    conn.execute(
        "CREATE TABLE day_versions (provider TEXT NOT NULL, account TEXT NOT NULL, "
        "day TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (provider, account, day))"
    )
    conn.execute(
        "INSERT INTO day_versions SELECT DISTINCT provider, account, day, 1 FROM ("
        "SELECT provider, account, day FROM costs UNION SELECT provider, account, day FROM usage"
        ") AS days"
    )
    # key 'fx_currency': the accounting currency every cost row was last fully converted to
    conn.execute("CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute(f"CREATE INDEX costs_fx_pending ON costs (day) WHERE {FX_PENDING}")


# Cost rows whose conversion is not final (or not yet run): what a refresh re-converts
# while the accounting currency stays the same (the partial index costs_fx_pending).
FX_PENDING = "(fx_status IS NULL OR fx_status <> 'final' OR fx_currency IS NULL)"


def _m012_compact_rows(db: Connection) -> None:
    """The compact row format (issue 17, :mod:`exporter.store.compact`): usage and cost rows
    become integer rows keyed by stream id and integer day, labels become ids of ``names``,
    money exact integer pico-units, the FX audit a reference; the old tables become views
    with their old columns. Runs in one transaction; the store then VACUUMs the file (outside
    the transaction) to give the space back. A PostgreSQL history starts with this version:
    its old tables are empty, nothing to convert."""
    d = db.dialect
    if d.name == "sqlite":  # stream ids are never reused from now on (rows and caches name
        # streams by id); PostgreSQL identity columns never reuse one anyway
        db.execute(
            f"CREATE TABLE streams_new (id {d.serial_key}, provider TEXT NOT NULL, "
            "account TEXT NOT NULL, project TEXT NOT NULL, model TEXT NOT NULL, "
            "first_day TEXT NOT NULL, UNIQUE (provider, account, project, model))"
        )
        db.execute(
            "INSERT INTO streams_new SELECT id, provider, account, project, model, first_day "
            "FROM streams"
        )
        db.execute("DROP TABLE streams")
        db.execute("ALTER TABLE streams_new RENAME TO streams")
    for statement in compact.compact_ddl(d.integer, d.id_key, d.without_rowid):
        db.execute(statement)
    if d.name == "sqlite":
        _convert_sqlite_rows(db.conn)
    db.execute("DROP TABLE usage")
    db.execute("DROP TABLE costs")
    for statement in compact.view_ddl(d.day_text, d.money_text):
        db.execute(statement)


def _convert_sqlite_rows(conn: sqlite3.Connection) -> None:
    """Old rows -> compact rows in SQL, with the exact conversions as SQLite functions."""
    names: dict[str, int] = {}
    refs: dict[compact.FxRef, int] = {}

    def name(value: str | None) -> int:
        text = value or ""
        found = names.get(text)
        if found is None:
            found = names[text] = len(names) + 1
        return found

    def fx(*values: str | None) -> int | None:
        ref = compact.fx_ref(dict(zip(compact.FX_REF_COLUMNS, values, strict=True)))
        if ref is None:
            return None
        found = refs.get(ref)
        if found is None:
            found = refs[ref] = len(refs) + 1
        return found

    def units(text: str | None) -> int | None:
        return None if text is None else compact.text_units(text)

    def exact(text: str | None) -> str | None:
        return text if text is not None and units(text) is None else None

    def status(text: str | None) -> int | None:
        return compact.status_code(text)

    for fn, n_args in ((name, 1), (fx, 5), (units, 1), (exact, 1), (status, 1)):
        conn.create_function(f"aicost_{fn.__name__}", n_args, fn, deterministic=True)
    day = "CAST(julianday(o.day) - 2440587.5 AS INTEGER)"
    stream = (
        "JOIN streams s ON s.provider = o.provider AND s.account = o.account "
        "AND s.project = o.project AND s.model = o.model"
    )
    labels = ", ".join(f"aicost_name(o.{c})" for c in compact.USAGE_LABELS)
    conn.execute(
        f"INSERT INTO usage_rows ({', '.join(compact.USAGE_ROW_COLUMNS)}) "
        f"SELECT {day}, s.id, {labels}, {', '.join(f'o.{c}' for c in compact.USAGE_VALUES)} "
        f"FROM usage o {stream} ORDER BY 1, 2"
    )
    labels = ", ".join(
        f"aicost_name(o.{c})" for c in (*compact.COST_KEY_LABELS, *compact.COST_LABELS)
    )
    conn.execute(
        f"INSERT INTO cost_rows ({', '.join(compact.COST_ROW_COLUMNS)}) "
        f"SELECT {day}, s.id, {labels}, aicost_units(o.amount), aicost_exact(o.amount), "
        f"aicost_fx({', '.join(f'o.{c}' for c in compact.FX_REF_COLUMNS)}), "
        "aicost_status(o.fx_status), aicost_units(o.fx_amount), aicost_exact(o.fx_amount) "
        f"FROM costs o {stream} ORDER BY 1, 2"
    )
    conn.executemany(
        "INSERT INTO names (id, name) VALUES (?, ?)", [(i, n) for n, i in names.items()]
    )
    conn.executemany(
        "INSERT INTO fx_applied (id, currency, rate, rate_date, source, error) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [(i, *ref) for ref, i in refs.items()],
    )


def _m013_label_order(db: Connection) -> None:
    """The order ingested label values were first stored in, as a column (``seq``; SQLite's
    rowid gave it before), so it is the same on PostgreSQL."""
    db.execute(f"ALTER TABLE app_labels ADD COLUMN seq {db.dialect.integer}")
    if db.dialect.name == "sqlite":
        db.execute("UPDATE app_labels SET seq = rowid")


# Applied in this order, each once (``_migrations``); a new step gets the next number.
MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("001_initial", _m001_initial),
    ("002_fx", _m002_fx),
    ("003_billing_state", _m003_billing_state),
    ("006_recommendations", _m006_recommendations),
    ("010_app_requests", _m010_app_requests),
    ("011_stream_index", _m011_stream_index),
    ("012_compact_rows", _m012_compact_rows),
    ("013_label_order", _m013_label_order),
]
COMPACT_MIGRATION = "012_compact_rows"
