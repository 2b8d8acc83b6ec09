"""The connection: WAL journal, one connection per store guarded by a lock, migrations
applied on open, and one atomic transaction per write."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils

from exporter.store.access import check_storage, read_only_connection, storage_error
from exporter.store.migrations import MIGRATIONS


class Database:
    """The SQLite file of the history; the parts of :class:`~exporter.store.Store` share it."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        """``read_only``: open an existing history without creating, migrating or writing
        it (``check-config``, ``recommendations`` and ``fx`` read the store of a running
        exporter, or one on a read-only mount, this way). Raises
        :class:`~exporter.store.access.StorageError` when the history cannot be used."""
        self.path = str(path)
        self._lock = threading.RLock()
        if read_only:
            self.db = sqlite_utils.Database(read_only_connection(self.path))
            return
        # An existing file is validated read-only first: a corrupted history is reported
        # (StorageError: one line with the path, the cause and the fix), never modified.
        check_storage(self.path, write=True)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            new = self.path == ":memory:" or not Path(self.path).exists()
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self.db = sqlite_utils.Database(conn)
            with self._lock:
                if new:  # pages freed by retention go back to the file system (prune reclaims)
                    conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                self.migrate()
        except (sqlite3.Error, OSError) as exc:
            raise storage_error(self.path, exc) from None

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    def migrate(self) -> list[str]:
        """Apply pending migrations; return the names applied (empty when up to date)."""
        with self._lock:
            table = self.db["_migrations"]
            if not table.exists():
                self.db.table("_migrations").create({"name": str, "applied_at": str}, pk="name")
            done = {row["name"] for row in self.db["_migrations"].rows}
            applied = []
            for name, step in MIGRATIONS:
                if name in done:
                    continue
                with self._transaction():
                    step(self.db)
                    self.db.conn.execute(
                        "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                        (name, datetime.now(UTC).isoformat()),
                    )
                applied.append(name)
            return applied

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: all of it lands, or (on error or SIGKILL) none of it."""
        with self._lock, self.db.atomic():
            yield self.db.conn
