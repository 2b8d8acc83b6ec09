"""Benchmark: one recompute + render cycle over a large history.

Fills a history of N streams x D days through the store's own write path
(:meth:`~exporter.store.Store.replace_window`, FX columns written in, 30-day windows per
account as a backfill writes them), then times, in a fresh process, what the exporter does
after every poll: the conversion step (``FxService.convert_stored``), the snapshot
(``SnapshotBuilder.build``) and the render (``exporter.exposition.render``). A stream is
provider/account/project/model; each stream-day has ~5 rows (2 usage rows, 3 cost lines).

    python benchmarks/bench_recompute.py --streams 1000 --days 400
    python benchmarks/bench_recompute.py --streams 1000 --days 400 --db /tmp/h.db  # keep/reuse
    AICOST_BENCH_PG_PASSWORD=... python benchmarks/bench_recompute.py \
        --db postgresql://user@127.0.0.1:5432/bench   # PostgreSQL (filled when it is empty)

The last line is ``recompute: S s, R MiB, N series`` (S: seconds of the timed cycle, R:
peak RSS of the measuring process, N: sample lines of the text exposition). Nothing here
asserts on time; figures are for comparison within one run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from exporter.app import open_history
from exporter.config import Config, MetricsConfig
from exporter.records import CostRecord, FetchResult, ProjectRecord, UsageRecord

TODAY = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
ACCOUNTS = [
    ("openai", "openai-a"),
    ("openai", "openai-b"),
    ("anthropic", "anthropic-a"),
    ("anthropic", "anthropic-b"),
    ("xai", "xai-a"),
    ("xai", "xai-b"),
]
MODELS = {
    "openai": ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3-mini"],
    "anthropic": [
        "claude-3-5-haiku-20241022",
        "claude-sonnet-4-20250514",
        "claude-opus-4-20250514",
        "claude-3-7-sonnet-20250219",
        "claude-3-5-sonnet-20241022",
    ],
    "xai": ["grok-3", "grok-3-mini", "grok-4", "grok-2-1212", "grok-4-fast"],
}
WINDOW_DAYS = 30


PG_PASSWORD_ENV = "AICOST_BENCH_PG_PASSWORD"  # the password of a --db postgresql:// URL
# ``--all-families``: every per-stream family on (the defaults before issue 17; docs/scale.md)
ALL_FAMILIES = {
    "windows": ["today", "yesterday", "7d", "30d", "month_to_date"],
    "token_types": True,
    "stream_ratios": True,
}


CURRENCY = ["USD"]  # ``--currency``: the accounting currency of the fill and the measure


def config(path: str, every: bool = False, recommendations: bool = True) -> Config:
    storage: dict[str, str] = (
        {"url": path, "password_env": PG_PASSWORD_ENV}
        if path.startswith("postgresql://")
        else {"path": path}
    )
    return Config.model_validate(
        {"storage": storage, "currency": CURRENCY[0]}
        | ({"metrics": ALL_FAMILIES} if every else {})
        | ({} if recommendations else {"recommendations": {"enabled": False}})
    )


def is_filled(path: str) -> bool:
    if not path.startswith("postgresql://"):
        return Path(path).exists()
    history = open_history(config(path), clock=lambda: TODAY)
    try:
        return history.store.stream_count() > 0
    finally:
        history.close()


def size_mib(path: str) -> float:
    """The history's size: the SQLite file and its WAL, or the PostgreSQL database."""
    if not path.startswith("postgresql://"):
        files = (path, f"{path}-wal")
        return sum(Path(p).stat().st_size for p in files if Path(p).exists()) / 2**20
    import psycopg

    with psycopg.connect(path, password=os.environ[PG_PASSWORD_ENV]) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    assert row is not None
    return float(row[0]) / 2**20


def streams_of(n: int) -> list[tuple[str, str, str, str]]:
    """``n`` streams: 5 models per project, projects round-robin over the 6 accounts."""
    out = []
    for i in range(n):
        project_no, model_no = divmod(i, 5)
        provider, account = ACCOUNTS[project_no % len(ACCOUNTS)]
        out.append((provider, account, f"proj_{project_no:05d}", MODELS[provider][model_no]))
    return out


def day_rows(
    stream: tuple[str, str, str, str], day: date, rng: random.Random
) -> tuple[list[UsageRecord], list[CostRecord]]:
    provider, account, project, model = stream
    usage, costs = [], []
    for batch in ("false", "true"):
        usage.append(
            UsageRecord(
                provider,
                account,
                day,
                project,
                model,
                "completions",
                batch=batch,
                input_tokens=rng.randrange(10_000, 2_000_000),
                output_tokens=rng.randrange(1_000, 400_000),
                cache_read_tokens=rng.randrange(0, 500_000),
                requests=rng.randrange(10, 5_000),
            )
        )
    for token_type in ("input", "output", "cache_read"):
        costs.append(
            CostRecord(
                provider,
                account,
                day,
                project,
                model,
                "tokens",
                Decimal(rng.randrange(1, 50_000_000)).scaleb(-6),
                line_item=f"{model}, {token_type}",
                token_type=token_type,
            )
        )
    return usage, costs


def fill(path: str, n_streams: int, days: int, quiet: bool) -> float:
    """Write the history through ``replace_window``; returns seconds spent."""
    history = open_history(config(path), clock=lambda: TODAY)
    store, fx = history.store, history.fx
    rng = random.Random(17)
    streams = streams_of(n_streams)
    by_account: dict[tuple[str, str], list[tuple[str, str, str, str]]] = {}
    for s in streams:
        by_account.setdefault((s[0], s[1]), []).append(s)
    first = TODAY.date() - timedelta(days=days - 1)
    started = time.perf_counter()
    for (provider, account), mine in by_account.items():
        projects = sorted({s[2] for s in mine})
        start = first
        while start <= TODAY.date():
            end = min(start + timedelta(days=WINDOW_DAYS), TODAY.date() + timedelta(days=1))
            result = FetchResult(
                start,
                end,
                projects=[ProjectRecord(provider, account, p, f"Project {p}") for p in projects],
            )
            day = start
            while day < end:
                for s in mine:
                    usage, costs = day_rows(s, day, rng)
                    result.usage.extend(usage)
                    result.costs.extend(costs)
                day += timedelta(days=1)
            store.replace_window(provider, account, result, annotate=fx.columns)
            start = end
        if not quiet:
            print(f"filled {provider}/{account}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    history.close()
    return elapsed


def poll_rows(
    n_streams: int, provider: str, account: str, start: date, end: date, seed: int = 99
) -> FetchResult:
    """What a poll of one account re-reads: the streams' rows of ``[start, end)``."""
    rng = random.Random(seed)
    result = FetchResult(start, end)
    for s in streams_of(n_streams):
        if (s[0], s[1]) != (provider, account):
            continue
        day = start
        while day < end:
            usage, costs = day_rows(s, day, rng)
            result.usage.extend(usage)
            result.costs.extend(costs)
            day += timedelta(days=1)
    return result


def measure(
    path: str, n_streams: int, every: bool = False, recommendations: bool = True
) -> dict[str, Any]:
    """In this fresh process: the start-up refresh (cold), then one poll of one account
    (today + 3 days lookback, through replace_window) and the timed cycle after it, as
    ``App.poll`` runs it: convert_stored, build, render."""
    from exporter.analytics.build import SnapshotBuilder
    from exporter.exposition import Renderer
    from exporter.snapshot import ProviderHealth

    cfg = config(path, every, recommendations)
    render = Renderer()  # keeps the text of unchanged parts, as the app's does
    opened_at = time.perf_counter()
    history = open_history(cfg, clock=lambda: TODAY)
    open_s = time.perf_counter() - opened_at
    builder = SnapshotBuilder(
        cfg,
        history.store,
        history.fx,
        history.catalogue,
        cfg.recommendations.maps(),
        lambda: TODAY,
    )
    health = [ProviderHealth(p, a, up=True) for p, a in ACCOUNTS]
    stage = _time_recommendations(builder)
    started = time.perf_counter()
    history.fx.convert_stored()
    render(builder.build(health))
    cold_s = time.perf_counter() - started
    cold_stages = dict(builder.timings)
    provider, account = ACCOUNTS[0]
    today = TODAY.date()
    start, end = today - timedelta(days=3), today + timedelta(days=1)
    # new values on every run over a reused file (the versions of those days moved on)
    seed = 99 + sum(history.store.day_versions(start, end).values())
    polled = poll_rows(n_streams, provider, account, start, end, seed)
    written = time.perf_counter()
    history.store.replace_window(provider, account, polled, annotate=history.fx.columns)
    write_s = time.perf_counter() - written
    gc_seconds = _gc_timer()
    started = time.perf_counter()
    history.fx.convert_stored()
    converted = time.perf_counter()
    snapshot = builder.build(health)
    built = time.perf_counter()
    rendered = render(snapshot)
    seconds = time.perf_counter() - started
    stages = {"conversion": converted - started, **builder.timings}
    stages["render"] = seconds - (built - started)
    stages["of_which_gc"] = gc_seconds()
    series = sum(map(sample_lines, rendered.text_parts))  # no joined copy: RSS as served
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    every = all_families(builder, health)  # after the timed cycle and the RSS reading
    history.close()
    return {
        "seconds": seconds,
        "stages": {k: round(v, 4) for k, v in stages.items()},
        "open_seconds": open_s,
        "cold_seconds": cold_s,
        "cold_stages": {k: round(v, 4) for k, v in cold_stages.items()},
        "poll_write_seconds": write_s,
        "poll_rows": len(polled.usage) + len(polled.costs),
        "rss_mib": rss_mib,
        "series": series,
        "text_bytes": rendered.sizes()[0],
        "gzip_bytes": len(rendered.text_gzip),
        **every,
        **stage,
    }


def all_families(builder: Any, health: list[Any]) -> dict[str, int]:
    """Series and scrape size of the same history with every per-stream family on (the
    defaults before issue 17), for comparison with the defaults measured above."""
    from exporter.exposition import render

    builder.config = builder.config.model_copy(
        update={"metrics": MetricsConfig.model_validate(ALL_FAMILIES)}
    )
    rendered = render(builder.build(health))
    text = rendered.text
    return {
        "all_series": sum(1 for line in text.split(b"\n") if line and not line.startswith(b"#")),
        "all_text_bytes": len(text),
        "all_gzip_bytes": len(rendered.text_gzip),
    }


def sample_lines(piece: bytes) -> int:
    """Sample lines of a piece of the text exposition (whole lines; comments start with #)."""
    return piece.count(b"\n") - piece.count(b"\n#") - piece.startswith(b"#")


def _gc_timer() -> Callable[[], float]:
    """Seconds the cyclic garbage collector runs from now on (a heap of millions of objects
    makes each full collection expensive)."""
    spent = [0.0, 0.0]

    def callback(phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            spent[1] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - spent[1]

    gc.callbacks.append(callback)
    return lambda: spent[0]


def _rss_mib() -> float:
    """Current resident set size of this process (VmRSS), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _time_recommendations(builder: Any) -> dict[str, float]:
    """Times the savings recommendations (``SnapshotBuilder._findings``) in the cold and in
    the timed cycle: wall and CPU seconds (CPU: what the stage costs on a busy machine) and
    the RSS growth across the stage (MiB), and what the builder's recommendation state
    holds in arrays (``recommendations_held_mib``)."""
    figures: dict[str, float] = {}
    findings = builder._findings

    def timed(*args: Any) -> Any:
        rss, started, cpu = _rss_mib(), time.perf_counter(), time.process_time()
        try:
            return findings(*args)
        finally:
            stage = "recommendations" if figures else "recommendations_cold"
            figures[f"{stage}_seconds"] = time.perf_counter() - started
            figures[f"{stage}_cpu_seconds"] = time.process_time() - cpu
            figures[f"{stage}_rss_mib"] = _rss_mib() - rss
            state = getattr(builder, "rec_state", None)  # absent before the aggregates
            if state is not None:
                figures["recommendations_held_mib"] = state.nbytes() / 2**20

    builder._findings = timed
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000, help="streams (default 1000)")
    parser.add_argument("--days", type=int, default=400, help="days of history (default 400)")
    parser.add_argument(
        "--db",
        help="history file (filled when missing, reused when present; default: temp), or a "
        f"postgresql:// URL (password in ${PG_PASSWORD_ENV}; filled when empty)",
    )
    parser.add_argument(
        "--all-families",
        action="store_true",
        help="time the refresh with every per-stream family on (metrics: all five windows, "
        "token_types, stream_ratios; the defaults before issue 17)",
    )
    parser.add_argument(
        "--no-recommendations",
        action="store_true",
        help="recommendations.enabled: false (their rules still read decoded rows)",
    )
    parser.add_argument(
        "--currency",
        default="USD",
        help="accounting currency (default USD: the USD costs need no rate; EUR converts "
        "each day at the bundled ECB rate, 28-digit amounts: the Decimal cells of the cube)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # the fresh measuring process
    args = parser.parse_args(argv)
    CURRENCY[0] = args.currency
    if args.measure:
        print(
            json.dumps(
                measure(args.measure, args.streams, args.all_families, not args.no_recommendations)
            )
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-recompute-") as tmp:
        path = args.db or str(Path(tmp) / "history.db")
        fill_s = None
        if not is_filled(path):
            fill_s = fill(path, args.streams, args.days, args.quiet)
        db_mib = size_mib(path)
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--measure",
                path,
                "--streams",
                str(args.streams),
                "--currency",
                args.currency,
            ]
            + (["--all-families"] if args.all_families else [])
            + (["--no-recommendations"] if args.no_recommendations else []),
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        figures = json.loads(out.stdout.strip().splitlines()[-1])
    figures |= {"streams": args.streams, "days": args.days, "db_mib": db_mib}
    if fill_s is not None:
        rows = args.streams * args.days * 5
        figures |= {"fill_seconds": fill_s, "write_us_per_row": fill_s / rows * 1e6}
    if args.json:
        print(json.dumps(figures))
    print(
        f"streams={args.streams} days={args.days} db={db_mib:.0f} MiB "
        f"open={figures['open_seconds']:.2f} s cold={figures['cold_seconds']:.2f} s "
        f"poll-write={figures['poll_write_seconds']:.2f} s "
        f"text={figures['text_bytes'] / 2**20:.1f} MiB "
        f"gzip={figures['gzip_bytes'] / 2**20:.2f} MiB"
        + (f" fill={fill_s:.1f} s" if fill_s is not None else "")
        + (
            f" recommendations={figures['recommendations_seconds']:.2f} s"
            if "recommendations_seconds" in figures
            else ""
        )
    )
    print("stages: " + ", ".join(f"{k}={v:.3f} s" for k, v in figures["stages"].items()))
    print(
        f"scrape: defaults {figures['series']} series, text {figures['text_bytes']} B, gzip "
        f"{figures['gzip_bytes']} B; all families {figures['all_series']} series, text "
        f"{figures['all_text_bytes']} B, gzip {figures['all_gzip_bytes']} B"
    )
    print(
        f"recompute: {figures['seconds']:.2f} s, {figures['rss_mib']:.0f} MiB, "
        f"{figures['series']} series"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
