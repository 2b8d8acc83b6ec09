"""Can the history at a path be opened, and if not, why, in one line a user can act on.

:func:`check_storage` (``check-config`` and the store itself, before anything is written)
never creates, modifies or replaces a file: an existing history is validated through a
read-only connection first, so a corrupted database is reported and left as it is.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exporter.store.dialect import Connection

CORRUPT_MARKERS = ("file is not a database", "malformed", "corrupt")


class StorageError(Exception):
    """The history cannot be used; the message names the path, the cause and the fix."""


def check_storage(path: str | Path, *, write: bool) -> None:
    """Raise :class:`StorageError` unless the history at ``path`` can be opened (and, with
    ``write``, written or created). A missing file is fine when its directory allows it."""
    text = str(path)
    if text == ":memory:" or is_postgres_url(text):  # a server: checked when connecting
        return
    p = Path(text)
    if p.is_dir():
        raise StorageError(
            f"storage.path {text} is a directory, not a file; set storage.path to a file "
            f"inside it, e.g. {p / 'history.db'}"
        )
    blocker = _file_ancestor(p)
    if blocker is not None:
        raise StorageError(
            f"storage.path {text} lies under {blocker}, which is a file, not a directory; "
            "choose a path inside a directory"
        )
    if p.exists():
        validate_history(p)
        if write:
            _writable(p, p)
            _writable(p, p.parent)  # the WAL journal lives beside the file
        return
    if write:
        _writable(p, _existing_ancestor(p))


def validate_history(path: Path) -> None:
    """Read an existing file through a read-only connection: is it an intact SQLite file?"""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        conn = _read_only(uri)
        try:
            row = conn.execute("PRAGMA quick_check(1)").fetchone()
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise storage_error(path, exc) from None
    if row is None or row[0] != "ok":
        detail = " ".join(str(row[0] if row else "no answer").split())[:160]
        raise StorageError(_corrupt(path, f"database disk image is malformed: {detail}"))
    if tables and "_migrations" not in tables:  # another program's database: never migrate it
        raise StorageError(
            f"storage.path {path} is a SQLite database of another program (no _migrations "
            "table); it was left untouched: point storage.path at a new file"
        )


def _read_only(uri: str) -> sqlite3.Connection:
    """A read-only connection; on a read-only mount (where a WAL history cannot get its
    shared-memory file) an immutable one, as nothing can write there."""
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if "unable to open" not in str(exc):
            raise
    conn = sqlite3.connect(f"{uri}&immutable=1", uri=True, check_same_thread=False)
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn


def read_only_connection(path: str | Path) -> sqlite3.Connection:
    """An existing history opened read-only (never created, migrated or written)."""
    p = Path(path)
    check_storage(p, write=False)
    if not p.is_file():
        raise StorageError(
            f"storage.path {p}: no history there; run the exporter or "
            "`ai-cost-exporter poll --config FILE --once` first"
        )
    try:
        return _read_only(f"{p.resolve().as_uri()}?mode=ro")
    except sqlite3.Error as exc:
        raise storage_error(p, exc) from None


def storage_error(path: str | Path, exc: BaseException) -> StorageError:
    """The one-line error for ``exc`` raised while opening or writing ``path``."""
    text = str(path)
    message = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
    if any(marker in message.lower() for marker in CORRUPT_MARKERS):
        return StorageError(_corrupt(Path(text), message))
    if (
        "readonly" in message.replace("-", "").lower()
        or (isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM))
        or "unable to open" in message
    ):
        return StorageError(
            f"storage.path {text} cannot be opened for writing ({message}); give the "
            "exporter's user write access to the file and its directory, or mount the "
            "volume read-write"
        )
    return StorageError(f"storage.path {text}: cannot use the history ({message})")


def _corrupt(path: Path, cause: str) -> str:
    return (
        f"storage.path {path} is not a usable SQLite history ({cause}); it was left "
        "untouched: restore it from a backup, or move it aside to start a new history"
    )


def _writable(path: Path, target: Path) -> None:
    if not os.access(target, os.W_OK):
        what = "its directory" if target != path else "the file"
        reason = os.strerror(errno.EROFS) if _read_only_fs(target) else "permission denied"
        raise StorageError(
            f"storage.path {path} cannot be written ({what} {target}: {reason}); give the "
            "exporter's user write access to the file and its directory, or mount the "
            "volume read-write"
        )


def _read_only_fs(target: Path) -> bool:
    try:
        return bool(os.statvfs(target).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _file_ancestor(path: Path) -> Path | None:
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path("/")


# -- PostgreSQL ---------------------------------------------------------------------------


def is_postgres_url(target: str) -> bool:
    return target.startswith(("postgresql://", "postgres://"))


def redacted(url: str) -> str:
    """``user@host:port/db`` of a URL, never a password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{user}{parts.hostname or ''}{port}{parts.path}"


def connect_postgres(url: str, *, password: str | None, read_only: bool) -> Connection:
    """A psycopg connection (autocommit: each write is an explicit transaction), or a
    :class:`StorageError` that names the cause and the fix."""
    from urllib.parse import urlsplit

    from exporter.store.dialect import POSTGRESQL, Connection

    if urlsplit(url).password:
        raise StorageError(
            f"storage URL {redacted(url)} carries a password: put it in the environment "
            "variable or file the config names, never inline"
        )
    try:
        import psycopg
    except ImportError:
        raise StorageError(
            f"storage URL {redacted(url)}: PostgreSQL needs psycopg 3; install the extra: "
            "pip install 'ai-cost-exporter[postgres]'"
        ) from None
    options = "-c default_transaction_read_only=on" if read_only else None
    try:
        raw = psycopg.connect(
            url, password=password, autocommit=True, connect_timeout=10, options=options
        )
    except psycopg.Error as exc:
        raise postgres_error(url, exc) from None
    return Connection(raw, POSTGRESQL)


def postgres_error(url: str, exc: BaseException) -> StorageError:
    """The one-line error of a PostgreSQL failure (no password ever: psycopg messages carry
    none, and the URL is redacted)."""
    where = redacted(url)
    message = " ".join(str(exc).split())[:240]
    low = message.lower()
    if "password authentication failed" in low or "no password supplied" in low:
        return StorageError(
            f"storage URL {where}: authentication failed ({message}); check the user in the "
            "URL and the password the config reads from its environment variable or file"
        )
    if "does not exist" in low and "database" in low:
        return StorageError(
            f"storage URL {where}: {message}; create the database (CREATE DATABASE) or fix the URL"
        )
    if any(m in low for m in ("connection refused", "could not connect", "timeout expired",
                              "could not translate host", "connection failed")):  # fmt: skip
        return StorageError(
            f"storage URL {where}: cannot reach the PostgreSQL server ({message}); is it "
            "running, and are host and port right and reachable from here?"
        )
    if "read-only" in low:
        return StorageError(f"storage URL {where}: the database is read-only ({message})")
    return StorageError(f"storage URL {where}: cannot use the history ({message})")
