"""A private PostgreSQL server for the tests: ``initdb`` into a temporary folder, started on
a free loopback port (and a Unix socket in its data folder), stopped at the end.

Debian's ``postgresql`` package provides the binaries (``/usr/lib/postgresql/<v>/bin``);
``scripts/test`` installs it when missing and sets ``AICOST_REQUIRE_POSTGRES=1``, so the
PostgreSQL tests fail instead of skipping there. PostgreSQL refuses to run as root: as root
the server runs as the ``postgres`` user the Debian package creates.

The superuser is ``aicost`` with a password (scram-sha-256 on TCP), so the tests exercise the
same password path a deployment uses. The password is a test value, not a secret.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "aicost"
PASSWORD = "test-only-postgres-password"  # a throwaway test cluster's, not a secret


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries (or no way to run them) on this machine."""


def _bindir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise PostgresUnavailable(
            "PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin): "
            "apt-get install postgresql"
        )
    return Path(candidates[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One throwaway cluster; ``database()`` gives each test its own empty database."""

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.port = _free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="aicost-pg-"))
        self.data = self.tmp / "data"
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root and there is no 'postgres' user to run the server as"
                ) from None
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root and runuser(1) is missing")
            os.chown(self.tmp, owner.pw_uid, owner.pw_gid)
            self.run_as = ["runuser", "-u", "postgres", "--"]
        self.log = self.tmp / "server.log"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.run_as, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        pwfile = self.tmp / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self.run_as:
            owner = pwd.getpwnam("postgres")
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER,
            f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        pwfile.unlink()
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.data} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)

    def url(self, database: str = "postgres", *, password: bool = False) -> str:
        """A ``postgresql://`` URL; without the password unless ``password`` (tests of the
        password-from-env/file path pass it separately)."""
        auth = f"{USER}:{PASSWORD}" if password else USER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement as the superuser (autocommit: CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(self.url(database, password=True), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]  # test-built statements only

    def database(self) -> str:
        """A new empty database; returns its name."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.execute(f"CREATE DATABASE {name}")
        return name


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
    except subprocess.CalledProcessError as exc:
        log = server.log.read_text() if server.log.exists() else ""
        server.stop()
        raise RuntimeError(
            f"PostgreSQL failed to start: {exc.stderr.decode(errors='replace')}{log}"
        ) from None
    deadline = time.monotonic() + 30
    while True:
        try:
            server.execute("SELECT 1")
            break
        except Exception:
            if time.monotonic() > deadline:
                server.stop()
                raise
            time.sleep(0.2)
    try:
        yield server
    finally:
        server.stop()
