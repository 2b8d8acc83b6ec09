"""Issue 12's smaller defects: IPv6 listen addresses, demo arguments and its history path,
budget warnings before every account was polled, the "port in use" error."""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from exporter.analytics.build import SnapshotBuilder
from exporter.app import open_history
from exporter.cli import main, serve
from exporter.config import parse_listen_address, validate
from exporter.records import CostRecord, FetchResult
from exporter.server import MetricsServer
from exporter.snapshot import ProviderHealth
from tests.conftest import NOW, TODAY, fixed_clock
from tests.e2e.process import ExporterProcess
from tests.helpers import opened


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_an_ipv6_listen_address_serves(server_type: type[MetricsServer]) -> None:
    host, port = parse_listen_address("[::1]:0")
    assert (host, port) == ("::1", 0)
    server = server_type((host, port))
    server.start()
    try:
        response = httpx.get(f"http://[::1]:{server.port}/-/healthy", timeout=5)
        assert response.status_code == 200
    finally:
        server.stop()


def test_the_port_in_use_error_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        config = validate({"storage": {"path": str(tmp_path / "h.db")}})
        assert serve(config, address) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on {address}" in err and "--web.listen-address" in err
    assert not (tmp_path / "h.db").exists()  # nothing was opened


@pytest.mark.parametrize("days", ["0", "-3", "731", "ten"])
def test_demo_days_out_of_range_is_a_usage_error(
    days: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--days", days])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --days" in err and "Traceback" not in err


def test_budget_scope_warnings_wait_until_every_account_was_polled(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = validate({
        "storage": {"path": str(tmp_path / "h.db")},
        "budgets": [{"name": "search", "period": "month", "limit": 10,
                     "scope": {"project": "p_search"}}],
    })  # fmt: skip
    history = open_history(config, clock=fixed_clock)
    opened(history)
    day = TODAY - timedelta(days=1)
    cost = CostRecord("anthropic", "a", day, "default", "claude", "tokens", Decimal("2"))
    history.store.replace_window("anthropic", "a", FetchResult(day, TODAY, [], [cost]))
    builder = SnapshotBuilder(config, history.store, history.fx, history.catalogue,
                              config.recommendations.maps(), fixed_clock)  # fmt: skip
    polled = ProviderHealth("anthropic", "a", up=True, last_success=NOW.timestamp())
    waiting = ProviderHealth("openai", "o")  # its first poll (the budget's project) pending
    with caplog.at_level(logging.WARNING, logger="exporter.analytics"):
        builder.build([polled, waiting])
        assert "matches no cost" not in caplog.text
        failed = ProviderHealth("openai", "o", errors={"auth": 1})  # polled, and failed
        builder.build([polled, failed])
        builder.build([polled, failed])
    assert caplog.text.count("budget search: its scope matches no cost") == 1


@pytest.mark.e2e
def test_the_demo_prints_its_history_and_removes_its_temporary_directory(
    tmp_path: Path,
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    demo = ExporterProcess(["demo", "--days", "3"], {"TMPDIR": str(scratch)}, tmp_path / "log")
    try:
        demo.wait_for(lambda: "inspect it with" in demo.log.read_text(), "the history line")
        line = next(x for x in demo.log.read_text().splitlines() if "inspect it with" in x)
        config = line.split("--config ")[1].split("`")[0]
        assert Path(config).parent.parent == scratch and "removed on exit" in line
        demo.wait_for(lambda: demo.get("/-/ready").status_code == 200, "ready")
        demo.wait_for(lambda: 'aicost_up{account="xai-demo"' in demo.metrics(), "a poll")
        proc = subprocess.run(
            [sys.executable, "-m", "exporter", "fx", "--config", config, "--date",
             TODAY.isoformat()],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0 and "USD" in proc.stdout, proc.stderr
    finally:
        demo.kill(signal.SIGTERM)
    assert demo.proc.returncode == 0
    assert list(scratch.iterdir()) == []  # the temporary directory is gone
