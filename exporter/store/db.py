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

from exporter.store.migrations import MIGRATIONS


class Database:
    """The SQLite file of the history; the parts of :class:`~exporter.store.Store` share it."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        """``read_only``: open an existing history without creating, migrating or writing
        it (``check-config`` inspects the store of a running exporter this way)."""
        self.path = str(path)
        self._lock = threading.RLock()
        if read_only:
            uri = f"{Path(self.path).resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
            self.db = sqlite_utils.Database(conn)
            return
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
