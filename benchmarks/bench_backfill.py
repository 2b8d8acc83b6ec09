"""Benchmark: ``backfill`` size and time, and promtool's time to turn it into blocks.

Builds a synthetic history of N streams (one OpenAI account, N/4 projects x 4 models, one
token cost row and one usage row per stream and day) over D days in a temporary SQLite
file, runs :func:`exporter.finops.backfill.write_backfill` on it, then Debian's
``promtool tsdb create-blocks-from openmetrics --max-block-duration=744h`` (when
installed). Prints streams, days, series, samples, file size, and the wall-clock time of
each step measured in this run; nothing asserts on time. Larger sizes scale linearly in
streams x days (one sample per series and day).

    python benchmarks/bench_backfill.py [--streams 500] [--days 365] [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from exporter.config import Config
from exporter.finops.backfill import write_backfill
from exporter.records import CostRecord, FetchResult, UsageRecord
from exporter.store import Store

MODELS = ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "o3-mini-2025-01-31", "gpt-4.1")


def synthetic(path: Path, streams: int, days: int, today: date) -> Config:
    store = Store(path)
    start = today - timedelta(days=days)
    usage, costs = [], []
    for s in range(streams):
        project, model = f"proj_{s // len(MODELS):05d}", MODELS[s % len(MODELS)]
        for d in range(days):
            day = start + timedelta(days=d)
            n = 1000 + (s * 7919 + d * 104729) % 50000
            usage.append(
                UsageRecord("openai", "main", day, project, model, "completions",
                            input_tokens=n, output_tokens=n // 4, requests=n // 500)
            )  # fmt: skip
            costs.append(
                CostRecord("openai", "main", day, project, model, "tokens",
                           Decimal(n) / Decimal(100000), line_item=f"{model}, input")
            )  # fmt: skip
    store.replace_window("openai", "main", FetchResult(start, today, usage=usage, costs=costs))
    store.close()
    return Config.model_validate({"storage": {"path": str(path)}})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    today = date(2026, 6, 1)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        config = synthetic(Path(tmp) / "history.db", args.streams, args.days, today)
        t1 = time.perf_counter()
        store = Store(config.storage.path, read_only=True)
        try:
            first, last = today - timedelta(days=args.days), today - timedelta(days=1)
            result = write_backfill(config, store, Path(tmp) / "out", first, last)
        finally:
            store.close()
        t2 = time.perf_counter()
        figures: dict[str, object] = {
            "streams": args.streams, "days": args.days, "series": result.series,
            "samples": result.samples, "files": len(result.paths),
            "file_mib": round(sum(p.stat().st_size for p in result.paths) / 2**20, 1),
            "history_build_s": round(t1 - t0, 1), "backfill_s": round(t2 - t1, 1),
        }  # fmt: skip
        promtool = shutil.which("promtool")
        if promtool:
            for path in result.paths:
                proc = subprocess.run(
                    [promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet",
                     "--max-block-duration=744h", str(path), str(Path(tmp) / "blocks")],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if proc.returncode:
                    print(proc.stderr, file=sys.stderr)
                    return 1
            blocks = sum(p.stat().st_size for p in (Path(tmp) / "blocks").rglob("*") if p.is_file())
            figures |= {"promtool_s": round(time.perf_counter() - t2, 1),
                        "blocks_mib": round(blocks / 2**20, 1)}  # fmt: skip
    if args.json:
        print(json.dumps(figures))
    else:
        for k, v in figures.items():
            print(f"{k:>16}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
