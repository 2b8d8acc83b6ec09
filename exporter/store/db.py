"""The connection: WAL journal, one connection per store guarded by a lock, migrations
applied on open, and one atomic transaction per write."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from exporter.records import Stream
from exporter.store.access import (
    StorageError,
    check_storage,
    connect_postgres,
    is_postgres_url,
    postgres_error,
    read_only_connection,
    storage_error,
)
from exporter.store.compact import FxRef
from exporter.store.dialect import Connection, Dialect
from exporter.store.migrations import COMPACT_MIGRATION, MIGRATIONS

log = logging.getLogger(__name__)
T = TypeVar("T")


class IdMap(dict[int, T]):
    """id -> value of a table whose ids are never reused (``names``, ``streams``): an unknown
    id (written by another connection, or since) re-reads the table once."""

    def __init__(self, load: Callable[[], Iterable[tuple[int, T]]]) -> None:
        super().__init__()
        self._load = load

    def __missing__(self, id_: int) -> T:
        self.update(self._load())
        return dict.__getitem__(self, id_)


class Database:
    """The history (a SQLite file or a PostgreSQL database); the parts of
    :class:`~exporter.store.Store` share its one connection."""

    def __init__(
        self, target: str | Path, *, read_only: bool = False, password: str | None = None
    ) -> None:
        """``target``: a SQLite path, or a ``postgresql://user@host:port/db`` URL (its
        password passed as ``password``, never inside the URL). ``read_only``: open an
        existing history without creating, migrating or writing it (``check-config``,
        ``recommendations`` and ``fx`` read the store of a running exporter, or one on a
        read-only mount, this way). Raises :class:`~exporter.store.access.StorageError`
        when the history cannot be used."""
        self.path = str(target)
        self._lock = threading.RLock()
        self._names: dict[str, int] = {}  # names.name -> id (append-only table)
        self._labels: IdMap[str] = IdMap(self._load_names)  # names.id -> name
        self._streams: IdMap[Stream] = IdMap(self._load_streams)  # streams.id -> stream
        self._fx_ids: dict[FxRef, int] = {}  # fx_applied row -> id (append-only table)
        self._fx_refs: dict[int, FxRef] = {}
        self._password = password
        if is_postgres_url(self.path):
            self.db = connect_postgres(self.path, password=password, read_only=read_only)
            if not read_only:
                try:
                    self.migrate()
                except Exception as exc:  # psycopg.Error: the driver is optional
                    raise postgres_error(self.path, exc) from None
            return
        if read_only:
            self.db = Connection.sqlite(read_only_connection(self.path))
            if COMPACT_MIGRATION not in self.migrations_applied():
                self.db.close()
                raise StorageError(
                    f"storage.path {self.path} holds a history in the format of an earlier "
                    f"version (before migration {COMPACT_MIGRATION}); it was left untouched: "
                    "start the exporter (or `ai-cost-exporter poll --config FILE --once`) once "
                    "to convert it, then read it"
                )
            return
        # An existing file is validated read-only first: a corrupted history is reported
        # (StorageError: one line with the path, the cause and the fix), never modified.
        check_storage(self.path, write=True)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            new = self.path == ":memory:" or not Path(self.path).exists()
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self.db = Connection.sqlite(conn)
            with self._lock:
                if new:  # pages freed by retention go back to the file system (prune reclaims)
                    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                applied = self.migrate()
            if (COMPACT_MIGRATION in applied and not new) or self._meta(self.db, "vacuum_pending"):
                self._vacuum(conn)
        except (sqlite3.Error, OSError) as exc:
            raise storage_error(self.path, exc) from None

    @property
    def dialect(self) -> Dialect:
        """SQLite or PostgreSQL (``dialect.name``)."""
        return self.db.dialect

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def connect(self) -> Connection:
        """A further connection to the same history, for work that must not share the
        store's (on PostgreSQL: a session advisory lock, ``pg_try_advisory_lock``, held for
        as long as this connection lives). The caller closes it."""
        if is_postgres_url(self.path):
            return connect_postgres(self.path, password=self._password, read_only=False)
        return Connection.sqlite(sqlite3.connect(self.path, check_same_thread=False, timeout=30))

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied (empty when up to date). Each
        step is one transaction that re-checks ``_migrations`` under the write lock, so two
        processes starting together apply each step once."""
        with self._lock:
            with self._transaction() as conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, "
                    "applied_at TEXT)"
                )
            applied = []
            for name, step in MIGRATIONS:
                with self._transaction() as conn:
                    if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", (name,)).fetchone():
                        continue
                    step(conn)
                    conn.execute(
                        "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                        (name, datetime.now(UTC).isoformat()),
                    )
                applied.append(name)
            return applied

    def migrations_applied(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self.db.execute("SELECT name FROM _migrations ORDER BY name")]

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One atomic write: all of it lands, or (on error or SIGKILL) none of it. On
        PostgreSQL it holds the write lock, so the writes of two replicas never interleave."""
        with self._lock:
            try:
                with self.db.transaction() as conn:
                    yield conn
            except BaseException:
                self._forget_ids()  # ids interned by the rolled-back write are gone
                raise

    def _forget_ids(self) -> None:
        self._names.clear()
        self._labels.clear()
        self._fx_ids.clear()
        self._fx_refs.clear()
        self._streams.clear()

    def _name_ids(self, conn: Connection, values: Iterable[str]) -> dict[str, int]:
        """Ids of ``names`` for ``values`` (inserted when new), inside a write."""
        missing = sorted(set(values) - self._names.keys())
        if missing:
            conn.executemany(
                "INSERT INTO names (name) VALUES (?) ON CONFLICT (name) DO NOTHING",
                [(v,) for v in missing],
            )
            for i in range(0, len(missing), 500):
                chunk = missing[i : i + 500]
                marks = ", ".join("?" for _ in chunk)
                for id_, name in conn.execute(
                    f"SELECT id, name FROM names WHERE name IN ({marks})", chunk
                ):
                    self._names[name], self._labels[id_] = id_, name
        return self._names

    def _load_names(self) -> list[tuple[int, str]]:
        with self._lock:
            rows = [(i, name) for i, name in self.db.execute("SELECT id, name FROM names")]
        self._names.update((name, i) for i, name in rows)
        return rows

    def _load_streams(self) -> list[tuple[int, Stream]]:
        with self._lock:
            rows = self.db.execute("SELECT id, provider, account, project, model FROM streams")
            return [(i, Stream(p, a, proj, m)) for i, p, a, proj, m in rows]

    def _fx_id(self, conn: Connection, ref: FxRef) -> int:
        """The ``fx_applied`` id of a conversion (inserted when new), inside a write."""
        found = self._fx_ids.get(ref)
        if found is None:
            conn.execute(
                "INSERT INTO fx_applied (currency, rate, rate_date, source, error) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (currency, rate, rate_date, source, "
                "error) DO NOTHING",
                ref,
            )
            found = conn.execute(
                "SELECT id FROM fx_applied WHERE currency = ? AND rate = ? AND rate_date = ? "
                "AND source = ? AND error = ?",
                ref,
            ).fetchone()[0]
            self._fx_ids[ref], self._fx_refs[found] = found, ref
        return found

    def _fx_ref(self, id_: int | None) -> FxRef | None:
        if id_ is None:
            return None
        found = self._fx_refs.get(id_)
        if found is None:
            with self._lock:
                for i, *ref in self.db.execute(
                    "SELECT id, currency, rate, rate_date, source, error FROM fx_applied"
                ):
                    value: FxRef = (ref[0], ref[1], ref[2], ref[3], ref[4])
                    self._fx_ids[value], self._fx_refs[i] = i, value
            found = self._fx_refs[id_]
        return found

    def _meta(self, conn: Connection, key: str) -> str | None:
        if not conn.table_exists("store_meta"):  # a history not yet migrated (read-only)
            return None
        row = conn.execute("SELECT value FROM store_meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def _set_meta(self, conn: Connection, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO store_meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def _vacuum(self, conn: sqlite3.Connection) -> None:
        """After the conversion to the compact format: rebuild the file so the old pages go
        back to the file system, and switch an old file (auto_vacuum=NONE) to INCREMENTAL so
        retention gives space back from then on. VACUUM needs a connection outside any
        transaction and about the new size free on the file's file system; without that
        space it is postponed (``store_meta`` ``vacuum_pending``) to the next start."""
        if self.path == ":memory:":
            return
        page = int(conn.execute("PRAGMA page_size").fetchone()[0])
        used = page * (
            int(conn.execute("PRAGMA page_count").fetchone()[0])
            - int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        )
        free = shutil.disk_usage(Path(self.path).resolve().parent).free
        if free < used * 1.1:
            log.warning(
                "storage.path %s: the history was converted to the compact format; "
                "reclaiming its old space with VACUUM needs about %d MiB free beside it "
                "(%d MiB free): postponed to the next start",
                self.path, used >> 20, free >> 20,
            )  # fmt: skip
            with self._transaction() as tx:
                self._set_meta(tx, "vacuum_pending", "1")
            return
        log.info(
            "storage.path %s: the history was converted to the compact format; reclaiming "
            "the old space with VACUUM (rewrites the file, needs about %d MiB free beside "
            "it; runs once)",
            self.path, used >> 20,
        )  # fmt: skip
        started = time.monotonic()
        with self._lock:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file itself shrinks now
            with self._transaction() as tx:
                tx.execute("DELETE FROM store_meta WHERE key = 'vacuum_pending'")
        log.info(
            "storage.path %s: VACUUM done in %.1f s (%d MiB)",
            self.path, time.monotonic() - started, Path(self.path).stat().st_size >> 20,
        )  # fmt: skip
