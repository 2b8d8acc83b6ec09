"""Storage a user got wrong: one line naming the path, the cause and the fix; the file is
never modified; read-only commands work on a history they cannot write.

``poll``, ``check-config``, ``recommendations`` and ``fx`` run in-process through
``exporter.cli.main``; the read-only mount case runs them as a process inside a private
mount namespace where the history's directory is bind-mounted read-only (as root, file
modes do not stop writes; without root a read-only directory and file do the same).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from exporter.cli import main
from exporter.records import CostRecord, FetchResult
from exporter.store import Store
from tests.conftest import KEY_ENV

TODAY = datetime.now(UTC).date()  # the commands read the real clock


def write_config(tmp_path: Path, storage: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "storage": {"path": str(storage)}, "currency": "EUR",
        "providers": [{"type": "openai", "name": "main", "base_url": "http://127.0.0.1:9",
                       "api_key_env": KEY_ENV}],
    }))  # fmt: skip
    return path


def history(path: Path) -> Path:
    """A history with a month of costs (closed cleanly, so only the .db file exists)."""
    store = Store(path)
    start = TODAY - timedelta(days=30)
    costs = [CostRecord("openai", "main", start + timedelta(days=n), "p1", "gpt-4o", "tokens",
                        Decimal("12.5"), line_item="gpt-4o, input") for n in range(30)]  # fmt: skip
    store.replace_window("openai", "main", FetchResult(start, TODAY, [], costs))
    store.close()
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "h.db"
    path.write_bytes(b"this is a spreadsheet export, not SQLite\n" * 200)
    return path


def malformed(tmp_path: Path) -> Path:
    path = history(tmp_path / "h.db")
    data = bytearray(path.read_bytes())
    page = 4096
    data[page : len(data)] = b"\xa5" * (len(data) - page)  # every page after the header page
    path.write_bytes(bytes(data))
    return path


def another_programs_database(tmp_path: Path) -> Path:
    import sqlite3

    path = tmp_path / "h.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total TEXT)")
    conn.commit()
    conn.close()
    return path


def a_directory(tmp_path: Path) -> Path:
    path = tmp_path / "history"
    path.mkdir()
    return path


def under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "data").write_text("a file\n")
    return tmp_path / "data" / "history.db"


CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "not a database": (not_a_database, ("file is not a database", "left untouched",
                                        "restore it from a backup")),
    "malformed": (malformed, ("not a usable SQLite history", "left untouched",
                              "move it aside")),
    "another program's database": (another_programs_database, ("of another program",
                                                               "left untouched")),
    "a directory": (a_directory, ("is a directory", "set storage.path to a file inside it")),
    "under a file": (under_a_file, ("which is a file, not a directory",)),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["poll", "check-config", "recommendations", "fx"])
def test_unusable_storage_is_one_actionable_line_and_the_file_is_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    make, phrases = CASES[case]
    storage = make(tmp_path)
    before = digest(storage) if storage.is_file() else None
    config = str(write_config(tmp_path, storage))
    argv = {
        "poll": ["poll", "--config", config, "--once"],
        "check-config": ["check-config", config],
        "recommendations": ["recommendations", "--config", config],
        "fx": ["fx", "--date", TODAY.isoformat(), "--config", config],
    }[command]
    os.environ[KEY_ENV] = "sk-admin-test"
    try:
        code = main(argv)
    finally:
        del os.environ[KEY_ENV]
    err = capsys.readouterr().err
    assert code == 1
    lines = [line for line in err.splitlines() if "storage.path" in line]
    assert len(lines) == 1, err
    if command in ("recommendations", "fx") and case == "under a file":
        assert lines[0].startswith(f"error: no history at {storage} (storage.path)")
    else:
        assert str(storage) in lines[0]
        for phrase in phrases:
            assert phrase in lines[0], (phrase, lines[0])
    assert "Traceback" not in err
    if before is not None:
        assert digest(storage) == before
        wal = storage.with_name(storage.name + "-wal")  # a reader's companion, never written
        assert not wal.exists() or wal.stat().st_size == 0


def test_check_config_says_ok_for_a_usable_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, history(tmp_path / "h.db")))
    os.environ[KEY_ENV] = "sk-admin-test"
    try:
        assert main(["check-config", config]) == 0
    finally:
        del os.environ[KEY_ENV]
    assert "OK (1 provider(s): openai/main)" in capsys.readouterr().out


# -- a read-only mount ---------------------------------------------------------------------


def run_read_only(directory: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``directory`` read-only: a read-only bind mount in a private mount
    namespace as root (file modes do not bind root), a read-only directory otherwise."""
    command = [sys.executable, "-m", "exporter", *argv]
    env = {**os.environ, KEY_ENV: "sk-admin-test"}
    if os.geteuid() != 0:
        directory.chmod(0o555)
        for f in directory.iterdir():
            f.chmod(0o444)
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
        finally:
            directory.chmod(0o755)
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-m", "true"]).returncode != 0:
        pytest.skip("no private mount namespace available for a read-only mount")
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec "$@"'
    return subprocess.run([unshare, "-m", "sh", "-c", script, str(directory), *command],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip


def test_read_only_commands_work_on_a_read_only_history(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    storage = history(data / "h.db")
    before = digest(storage)
    config = str(write_config(tmp_path, storage))
    fx = run_read_only(data, "fx", "--date", (TODAY - timedelta(days=3)).isoformat(),
                       "--config", config, "--costs")  # fmt: skip
    assert "Traceback" not in fx.stderr, fx.stderr
    assert "gpt-4o" in fx.stdout and "12.5" in fx.stdout, fx.stdout + fx.stderr
    recs = run_read_only(data, "recommendations", "--config", config, "--format", "json")
    assert recs.returncode == 0, recs.stderr
    assert "Traceback" not in recs.stderr
    # `run` and `poll` need to write: one line, non-zero, nothing changed
    poll = run_read_only(data, "poll", "--config", config, "--once")
    assert poll.returncode == 1 and "Traceback" not in poll.stderr, poll.stderr
    (line,) = [x for x in poll.stderr.splitlines() if x.startswith("error:")]
    assert str(storage) in line and "write" in line and "read-write" in line
    check = run_read_only(data, "check-config", config)
    assert check.returncode == 1 and "cannot be written" in check.stderr, check.stderr
    assert digest(storage) == before
    assert sorted(p.name for p in data.iterdir()) == ["h.db"]
