"""A history in the format of an earlier version: the migrations before ``upto`` applied."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils

from exporter.store.dialect import Connection
from exporter.store.migrations import MIGRATIONS


def old_history(path: Path, upto: str) -> sqlite_utils.Database:
    """The file at ``path`` with every migration before ``upto`` applied and recorded; a
    sqlite-utils handle on it for writing rows the old way (commit, then close it)."""
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    for name, step in MIGRATIONS:
        if name == upto:
            break
        step(Connection.sqlite(raw))
        raw.execute("INSERT INTO _migrations VALUES (?, ?)", (name, "2026-01-01"))
    raw.commit()
    return sqlite_utils.Database(raw)
