"""The benchmarks still run against the current code (tiny sizes; no timing is asserted)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_exposition_benchmark_runs_on_a_small_snapshot() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_exposition.py"), "--series", "1000",
         "--repeat", "1", "--rss-series", "0", "--json", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)


def test_forecast_backtest_runs_on_one_synthetic_year() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "forecast_backtest.py"), "--seeds", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MAPE" in proc.stdout


def test_backfill_benchmark_runs_on_a_small_history() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_backfill.py"), "--streams", "8", "--days", "40",
         "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout)
    assert figures["files"] == 2 and figures["samples"] > figures["series"] > 0  # April, May


def test_recompute_benchmark_fills_a_small_history_and_reports_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_recompute.py"), "--streams", "12", "--days", "35",
         "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"recompute: [0-9.]+ s, [0-9]+ MiB, [0-9]+ series", last), last
    assert int(last.split(", ")[2].split()[0]) > 12 * 5  # every stream has its windows


def test_ingest_benchmark_runs_on_a_few_spans() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_ingest.py"), "--spans", "200",
         "--batches", "100", "--clients", "1", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)["results"][0]
    assert result["spans"] == 200


@pytest.mark.skipif(
    not shutil.which("wrk") or not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()),
    reason="needs Debian's nginx and wrk (scripts/test installs them)",
)
def test_scrape_path_benchmark_runs_against_nginx_on_a_small_body() -> None:
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_exposition.py"), "--scrape-path",
         "--series", "300", "--seconds", "1", "--rounds", "1", "--json", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    servers = {c["server"] for c in report["nginx"]["cells"]}
    assert servers == {"nginx", "process", "in-process"}
    assert all(c["requests"] > 0 and c["errors"] == 0 for c in report["nginx"]["cells"])
    assert set(report["nginx"]["gzip_levels"][0]["levels"]) == {"1", "3", "6", "9"}
