"""``backfill``: OpenMetrics of the published series over the stored history."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.clock import midnight_ts
from exporter.finops.backfill import FAMILIES, file_name, write_backfill
from exporter.store import Store
from tests.finops.conftest import DemoHistory
from tests.finops.test_focus import run
from tests.helpers import promtool


@pytest.fixture(scope="module")
def backfilled(eur: DemoHistory, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("backfill")
    db = Path(eur.config.storage.path)
    before = db.read_bytes()
    r = run(eur, "backfill", "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert "promtool tsdb create-blocks-from openmetrics" in r.stdout
    assert db.read_bytes() == before  # read-only
    files = sorted(out.glob("aicost-backfill-*.om"))
    assert len(files) in (5, 6)  # 130 days: one file per month
    return files


@pytest.mark.parametrize("index", [0, -1])
def test_openmetrics_parses_with_families_contiguous(backfilled: list[Path], index: int) -> None:
    text = backfilled[index].read_text()
    assert text.endswith("# EOF\n")
    families = list(text_string_to_metric_families(text))  # the client's strict parser
    names = [f.name for f in families]
    assert names == [n for n in FAMILIES if n in names] and len(names) == len(set(names))
    assert {"aicost_cost_yesterday", "aicost_tokens_30d", "aicost_project_info",
            "aicost_cost_forecast_month_end"} <= set(names)  # fmt: skip
    for f in families:
        last: dict[tuple[tuple[str, str], ...], float] = {}
        for s in f.samples:
            assert s.labels["job"] == "ai-cost-exporter"
            key = tuple(sorted(s.labels.items()))
            assert s.timestamp is not None and float(s.timestamp) > last.get(key, 0)
            last[key] = float(s.timestamp)


def test_yesterday_at_each_day_is_the_stored_cost_of_the_day_before(
    eur: DemoHistory, backfilled: list[Path]
) -> None:
    """The sample of day D+1 (00:00 UTC) holds the cost of D: what last_over_time(...[1d])
    at noon of D+1 returns."""
    got: dict[tuple[float, str], float] = defaultdict(float)
    families = [f for p in backfilled for f in text_string_to_metric_families(p.read_text())]
    for f in families:
        if f.name == "aicost_cost_yesterday":
            for s in f.samples:
                got[(float(s.timestamp), s.labels["provider"])] += s.value
    store = Store(eur.config.storage.path, read_only=True)
    try:
        first = eur.today - timedelta(days=120)
        costs, withheld = store.converted_costs_between(first, eur.today, "EUR")
    finally:
        store.close()
    assert not withheld
    want: dict[tuple[float, str], Decimal] = defaultdict(Decimal)
    for c in costs:
        want[(float(midnight_ts(c.day + timedelta(days=1))), c.provider)] += c.amount
    checked = 0
    for key, amount in want.items():
        if key[0] > midnight_ts(eur.today):
            continue  # --to defaults to today
        assert got[key] == pytest.approx(float(amount), rel=1e-9), key
        checked += 1
    assert checked > 300


def test_promtool_creates_blocks(backfilled: list[Path], tmp_path: Path) -> None:
    for path in backfilled:
        r = subprocess.run(
            [promtool(), "tsdb", "create-blocks-from", "openmetrics",
             "--max-block-duration=744h", str(path), str(tmp_path / "blocks")],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
    assert list((tmp_path / "blocks").glob("*/meta.json"))


def test_range_and_bad_arguments(eur: DemoHistory, tmp_path: Path) -> None:
    day = eur.today - timedelta(days=40)
    r = run(eur, "backfill", "--output", str(tmp_path), "--from", str(day), "--to", str(day),
            "--job", "aicost", "--instance", "exporter:9877")  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = (tmp_path / file_name(day)).read_text()
    stamps = {line.rsplit(" ", 1)[1] for line in text.splitlines() if not line.startswith("#")}
    assert stamps == {str(midnight_ts(day))}
    assert 'job="aicost",instance="exporter:9877"' in text
    r = run(eur, "backfill", "--output", str(tmp_path), "--from", str(day),
            "--to", str(day - timedelta(days=1)))  # fmt: skip
    assert r.returncode == 2 and "after --to" in r.stderr


def test_spilled_runs_merge_to_the_same_file(eur: DemoHistory, tmp_path: Path) -> None:
    """Sorted runs spilled to disk every 50 lines merge into the one-run result."""
    first, last = eur.today - timedelta(days=45), eur.today - timedelta(days=30)
    store = Store(eur.config.storage.path, read_only=True)
    try:
        small = write_backfill(eur.config, store, tmp_path / "small", first, last, chunk=50)
        whole = write_backfill(eur.config, store, tmp_path / "whole", first, last)
    finally:
        store.close()
    assert small.samples == whole.samples > 1000
    assert [p.read_text() for p in small.paths] == [p.read_text() for p in whole.paths]
    assert sorted((tmp_path / "small").iterdir()) == sorted(small.paths)
