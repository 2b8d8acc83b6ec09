"""End to end: ``backfill`` -> Debian's promtool (create-blocks-from openmetrics) -> a real
Prometheus over those blocks. A query for a day months back returns that day's stored cost,
and every panel of the chargeback dashboard has data months back."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from exporter.store import Store
from tests.e2e.stack import ROOT, Prometheus, binary
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
        assert len(per_provider) == 3
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
