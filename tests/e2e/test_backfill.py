"""End to end: ``backfill`` -> Debian's promtool (create-blocks-from openmetrics) -> a real
Prometheus over those blocks. A query for a day months back returns that day's stored cost,
and every panel of the chargeback dashboard has data months back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import yaml

from exporter.store import Store
from tests.e2e.process import ExporterProcess
from tests.e2e.stack import ROOT, Prometheus, binary, wait_until
from tests.finops.conftest import DemoHistory, eur, histories  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e

DASHBOARD = ROOT / "grafana" / "dashboards" / "ai-chargeback.json"
VARIABLES = {"$job": "ai-cost-exporter", "$provider": ".*", "$account": ".*",
             "$project": ".*", "$model": ".*"}  # fmt: skip


def query_at(prom: Prometheus, expr: str, at: datetime) -> list[dict]:
    r = httpx.get(
        prom.url + "/api/v1/query", params={"query": expr, "time": at.timestamp()}, timeout=30
    )
    body = r.json()
    assert body.get("status") == "success", (expr, body)
    return list(body["data"]["result"])


def test_backfilled_history_in_a_real_prometheus(eur: DemoHistory, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "backfill"
    r = subprocess.run(
        [sys.executable, "-m", "exporter.cli", "backfill", "--config", str(eur.path),
         "--output", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    tsdb = tmp_path / "tsdb"
    files = sorted(out.glob("aicost-backfill-*.om"))
    assert files
    for path in files:  # the documented load procedure
        r = subprocess.run(
            [binary("promtool"), "tsdb", "create-blocks-from", "openmetrics",
             "--max-block-duration=744h", str(path), str(tsdb)],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
    prom = Prometheus(
        tmp_path, [], [], "http://127.0.0.1:9",
        extra_args=("--storage.tsdb.retention.time=400d",),
    )  # fmt: skip
    try:
        day = eur.today - timedelta(days=100)  # months back
        noon = datetime.combine(day + timedelta(days=1), time(12), tzinfo=UTC)
        store = Store(eur.config.storage.path, read_only=True)
        try:
            costs, _ = store.converted_costs_between(day, day + timedelta(days=1), "EUR")
        finally:
            store.close()
        per_provider: dict[str, Decimal] = {}
        for c in costs:
            per_provider[c.provider] = per_provider.get(c.provider, Decimal(0)) + c.amount
        assert len(per_provider) == len(eur.config.providers)
        result = query_at(
            prom,
            'sum by (provider) (last_over_time(aicost_cost_yesterday{job="ai-cost-exporter"}[1d]))',
            noon,
        )
        got = {s["metric"]["provider"]: float(s["value"][1]) for s in result}
        assert got == pytest.approx({k: float(v) for k, v in per_provider.items()}, rel=1e-9)

        # every chargeback / forecast-vs-actual panel draws the history months back
        empty = []
        for panel in json.loads(DASHBOARD.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for var, value in VARIABLES.items():
                    expr = expr.replace(var, value)
                if not query_at(prom, expr, noon):
                    empty.append((panel["title"], expr))
        assert not empty, empty
    finally:
        prom.process.stop()


def test_backfilled_history_continues_into_live_scrapes(eur: DemoHistory, tmp_path: Path) -> None:  # noqa: F811
    """One Prometheus holds the backfilled blocks and scrapes a live exporter: an hourly
    range query of a trend panel has a point at every step from 100 days back to now, one
    series per stream (backfilled and scraped series are the same), ending on the live
    value."""
    live = tmp_path / "live.db"
    shutil.copyfile(eur.config.storage.path, live)  # the exporter writes its own copy
    settings = yaml.safe_load(eur.path.read_text())
    settings["storage"]["path"] = str(live)
    settings["poll"]["interval"] = "1h"
    config = tmp_path / "live.yaml"
    config.write_text(yaml.safe_dump(settings))
    exporter = ExporterProcess(["run", "--config", str(config)], eur.env, tmp_path / "exp.log")
    prom = None
    try:
        out = tmp_path / "backfill"
        r = subprocess.run(
            [sys.executable, "-m", "exporter.cli", "backfill", "--config", str(eur.path),
             "--output", str(out), "--instance", f"127.0.0.1:{exporter.port}"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        for path in sorted(out.glob("aicost-backfill-*.om")):
            r = subprocess.run(
                [binary("promtool"), "tsdb", "create-blocks-from", "openmetrics",
                 "--max-block-duration=744h", str(path), str(tmp_path / "tsdb")],
                capture_output=True, text=True, timeout=600, check=False,
            )  # fmt: skip
            assert r.returncode == 0, r.stderr
        prom = Prometheus(
            tmp_path, [f"127.0.0.1:{exporter.port}"], [], "http://127.0.0.1:9",
            extra_args=("--storage.tsdb.retention.time=400d",),
        )  # fmt: skip
        wait_until(
            lambda: len(prom.query('aicost_up{job="ai-cost-exporter"} == 1'))
            == len(eur.config.providers),
            "a scrape of the live exporter after its first poll", 90, prom.process,
        )  # fmt: skip
        now = datetime.now(UTC)
        start = datetime.combine(eur.today - timedelta(days=100), time(0), tzinfo=UTC)
        expr = 'sum(last_over_time(aicost_cost_month_to_date{job="ai-cost-exporter"}[1d]))'
        r2 = httpx.get(prom.url + "/api/v1/query_range", timeout=60, params={
            "query": expr, "start": start.timestamp(), "end": now.timestamp(), "step": "3600",
        })  # fmt: skip
        series = r2.json()["data"]["result"]
        assert len(series) == 1
        steps = int((now - start).total_seconds() // 3600) + 1
        assert len(series[0]["values"]) == steps, "the trend has a gap"
        selector = 'aicost_cost_month_to_date{job="ai-cost-exporter"}'
        assert len(prom.query(f"last_over_time({selector}[1d])")) == len(prom.query(selector))
        live_now = float(prom.query(f"sum({selector})")[0]["value"][1])
        assert float(series[0]["values"][-1][1]) == pytest.approx(live_now, rel=1e-9)
    finally:
        if prom is not None:
            prom.process.stop()
        exporter.stop()
