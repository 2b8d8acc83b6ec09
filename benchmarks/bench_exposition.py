"""Benchmark: pre-rendered ``/metrics`` bytes vs rendering on every scrape.

Builds a synthetic :class:`~exporter.exposition.Snapshot` with about N sample lines, serves it
over real HTTP on 127.0.0.1 with :class:`~exporter.server.MetricsServer` and scrapes it with
httpx, side by side in one run:

* mode A: the source holds the :class:`~exporter.exposition.Rendered` built once after a poll
  (what the exporter does); a scrape only writes cached bytes.
* mode B: the source's ``rendered`` property calls :func:`~exporter.exposition.render` on every
  access, i.e. the whole render (text + OpenMetrics, each plain and gzipped) per scrape.
* mode C: per scrape, render only the format the scraper asked for (and gzip it only if
  asked), like ``prometheus_client``'s own handler. A fairer render-per-scrape baseline.

It also times ``render()`` itself, reports body sizes, and measures the process RSS at the
largest size in a fresh subprocess (``--rss-only N``). Figures are for comparison within one
run (ratios); nothing here asserts on time.

    python benchmarks/bench_exposition.py [--series 10000,100000] [--repeat K] [--json]
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import (
    CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from exporter.exposition import (
    GZIP_LEVEL,
    TEXT_CONTENT_TYPE,
    Rendered,
    Variant,
    families,
    render,
)
from exporter.records import TOKEN_TYPES, Stream
from exporter.server import MetricsServer
from exporter.snapshot import (
    UNASSIGNED,
    WINDOW_NAMES,
    CostKey,
    Governance,
    ProjectInfo,
    ProviderHealth,
    Snapshot,
    StreamMoney,
    TokenKey,
    WindowTotals,
)

MIB = 1024 * 1024

# Synthetic layout: 3 providers x 2 accounts, projects spread round-robin over the accounts,
# MODELS_PER_PROJECT models per project (a stream = provider, account, project, model).
PROVIDERS = ("openai", "anthropic", "xai")
ACCOUNTS = ("prod", "research")
MODELS = {
    "openai": (
        "gpt-4o-2024-08-06",
        "gpt-4o-mini-2024-07-18",
        "o3-mini-2025-01-31",
        "o1-2024-12-17",
        "text-embedding-3-small",
        "gpt-4.1-2025-04-14",
    ),
    "anthropic": (
        "claude-3-5-sonnet-20241022",
        "claude-3-5-haiku-20241022",
        "claude-3-7-sonnet-20250219",
        "claude-sonnet-4-20250514",
        "claude-opus-4-20250514",
        "claude-3-opus-20240229",
    ),
    "xai": (
        "grok-2-1212",
        "grok-2-vision-1212",
        "grok-3",
        "grok-3-mini",
        "grok-3-fast",
        "grok-beta",
    ),
}
MODELS_PER_PROJECT = 5
# Tool / service costs carry no model (model=""), one cost key per project and type.
TOOL_COST_TYPES = ("web_search", "code_execution")
W = len(WINDOW_NAMES)
# Sample lines per stream: cost(tokens) + 4 token types + requests, in every window, plus
# cache_hit_ratio, cost_per_1k_tokens, cost_per_request.
LINES_PER_STREAM = W * (1 + len(TOKEN_TYPES) + 1) + 3
# Per project: its streams, tool costs in every window, one aicost_project_info.
LINES_PER_PROJECT = MODELS_PER_PROJECT * LINES_PER_STREAM + W * len(TOOL_COST_TYPES) + 1


# --------------------------------------------------------------------------- snapshot


def _money(rng: random.Random, high: float) -> Decimal:
    return Decimal(f"{rng.uniform(0, high):.6f}")


def build_snapshot(target_lines: int, seed: int = 42) -> Snapshot:
    """A snapshot whose text exposition has about ``target_lines`` sample lines."""
    rng = random.Random(seed)
    pairs = [(p, a) for p in PROVIDERS for a in ACCOUNTS]
    health_lines = len(pairs) * 4 + 1  # up/last_success/complete_through/duration + build_info
    n_projects = max(1, round((target_lines - health_lines) / LINES_PER_PROJECT))

    projects: list[ProjectInfo] = []
    streams: list[Stream] = []
    tool_keys: list[CostKey] = []
    for i in range(n_projects):
        provider, account = pairs[i % len(pairs)]
        project = f"proj_{rng.getrandbits(64):016x}"
        projects.append(
            ProjectInfo(provider, account, project, f"Team {i:05d} workload", UNASSIGNED)
        )
        for model in rng.sample(MODELS[provider], MODELS_PER_PROJECT):
            streams.append(Stream(provider, account, project, model))
        for cost_type in TOOL_COST_TYPES:
            tool_keys.append(CostKey(provider, account, project, "", cost_type, "USD"))

    # Scale factor per window: a 30-day window holds more than a day.
    scale = {"today": 0.5, "yesterday": 1.0, "7d": 7.0, "30d": 30.0, "month_to_date": 15.0}
    totals = WindowTotals()
    for window in WINDOW_NAMES:
        f = scale[window]
        cost: dict[CostKey, Decimal] = {}
        tokens: dict[TokenKey, int] = {}
        requests: dict[Stream, int] = {}
        for s in streams:
            cost[CostKey(*s, "tokens", "USD")] = _money(rng, 50 * f)
            for t in TOKEN_TYPES:
                tokens[TokenKey(*s, t)] = int(rng.uniform(0, 5e7) * f)
            requests[s] = int(rng.uniform(0, 2e4) * f)
        for k in tool_keys:
            cost[k] = _money(rng, 5 * f)
        totals.cost[window] = cost
        totals.tokens[window] = tokens
        totals.requests[window] = requests
    for s in streams:
        totals.cache_hit_ratio[s] = rng.random()
        totals.cost_per_1k_tokens[StreamMoney.of(s, "USD")] = _money(rng, 0.02)
        totals.cost_per_request[StreamMoney.of(s, "USD")] = _money(rng, 0.05)

    health = [
        ProviderHealth(
            provider=p,
            account=a,
            up=True,
            last_success=1.7e9,
            data_complete_through=1.7e9,
            poll_duration=rng.uniform(0.5, 5),
        )
        for p, a in pairs
    ]
    return Snapshot(totals=totals, governance=Governance(project_info=projects), health=health)


def sample_lines(text: bytes) -> int:
    """Non-comment, non-empty lines of a text exposition."""
    return sum(1 for line in text.split(b"\n") if line and not line.startswith(b"#"))


# --------------------------------------------------------------------------- sources


class PreRendered:
    """Mode A: what the exporter does; ``rendered`` is built once after a poll."""

    def __init__(self, rendered: Rendered) -> None:
        self.rendered = rendered

    def health(self) -> list[ProviderHealth]:
        return []


class RenderEveryAccess:
    """Mode B: ``rendered`` calls ``render(snapshot)`` each time the server reads it."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    @property
    def rendered(self) -> Rendered:
        return render(self._snapshot)

    def health(self) -> list[ProviderHealth]:
        return []


class _Collector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        return families(self._snapshot)


class _RequestedFormatOnly:
    """Has ``pick()`` and ``variant()`` like :class:`Rendered`, but renders only the
    requested body per call."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Collector(snapshot))

    def pick(self, accept: str, accept_encoding: str) -> tuple[bytes, str, bool]:
        if "application/openmetrics-text" in (accept or ""):
            body, content_type = generate_openmetrics(self._registry), OPENMETRICS_CONTENT_TYPE
        else:
            body, content_type = generate_latest(self._registry), TEXT_CONTENT_TYPE
        gz = "gzip" in (accept_encoding or "")
        if gz:
            body = gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)
        return body, content_type, gz

    def variant(self, accept: str, accept_encoding: str) -> Variant:
        body, content_type, gz = self.pick(accept, accept_encoding)
        return Variant.of(body, content_type == OPENMETRICS_CONTENT_TYPE, gz)


class RenderRequestedFormat:
    """Mode C: per scrape, render only the requested format (gzip only if asked)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.rendered = _RequestedFormatOnly(snapshot)

    def health(self) -> list[ProviderHealth]:
        return []


# --------------------------------------------------------------------------- measuring

ENCODINGS = {"plain": "identity", "gzip": "gzip"}  # httpx asks for gzip unless told otherwise


def scrape(client: httpx.Client, url: str, encoding: str) -> tuple[float, int]:
    """Seconds for one GET /metrics (to the last byte), and the bytes received (undecoded)."""
    headers = {"Accept-Encoding": ENCODINGS[encoding]}
    received = 0
    t0 = time.perf_counter()
    with client.stream("GET", url, headers=headers) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            received += len(chunk)
    return time.perf_counter() - t0, received


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile (the maximum when there are fewer than 20 values)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


@dataclass
class ModeResult:
    mode: str
    encoding: str
    bytes: int
    median_s: float
    p95_s: float
    samples: list[float]


MODES = {"A": PreRendered, "B": RenderEveryAccess, "C": RenderRequestedFormat}


def bench_size(target: int, repeat: int, log: Callable[[str], None]) -> dict[str, Any]:
    t0 = time.perf_counter()
    snapshot = build_snapshot(target)
    build_s = time.perf_counter() - t0

    render_times = timed(lambda: render(snapshot), max(1, min(repeat, 5)))
    rendered = render(snapshot)
    lines = sample_lines(rendered.text)
    log(f"{target}: {lines} sample lines, render() median {statistics.median(render_times):.3f}s")

    sources = {
        "A": PreRendered(rendered),
        "B": RenderEveryAccess(snapshot),
        "C": RenderRequestedFormat(snapshot),
    }
    server = MetricsServer(("127.0.0.1", 0))
    server.start()
    results: list[ModeResult] = []
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with httpx.Client(timeout=120) as client:
            for encoding in ENCODINGS:
                for mode, source in sources.items():
                    server.source = source  # type: ignore[assignment]
                    scrape(client, url, encoding)  # warm-up: connection, caches
                    samples, sizes = [], set()
                    for _ in range(repeat):
                        seconds, size = scrape(client, url, encoding)
                        samples.append(seconds)
                        sizes.add(size)
                    results.append(
                        ModeResult(
                            mode,
                            encoding,
                            max(sizes),
                            statistics.median(samples),
                            p95(samples),
                            samples,
                        )
                    )
                    log(f"{target} {encoding} {mode}: median {results[-1].median_s * 1e3:.2f} ms")
    finally:
        server.stop()

    return {
        "target": target,
        "sample_lines": lines,
        "streams": len(snapshot.totals.requests["30d"]),
        "projects": len(snapshot.governance.project_info),
        "repeat": repeat,
        "build_snapshot_s": build_s,
        "render_s": {
            "median": statistics.median(render_times),
            "min": min(render_times),
            "samples": render_times,
        },
        "bytes": {
            "text": len(rendered.text),
            "text_gzip": len(rendered.text_gzip),
            "openmetrics": len(rendered.openmetrics),
            "openmetrics_gzip": len(rendered.openmetrics_gzip),
        },
        "scrapes": [r.__dict__ for r in results],
    }


# --------------------------------------------------------------------------- RSS


def proc_status() -> dict[str, float]:
    """VmRSS and VmHWM of this process in MiB (Linux /proc)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024 / MIB
    return out


def rss_only(target: int, scrapes: int = 5) -> dict[str, Any]:
    """Run in a fresh process: RSS at each phase of build -> render -> serve."""
    phases: list[dict[str, Any]] = [{"phase": "start (imports done)", **proc_status()}]
    snapshot = build_snapshot(target)
    phases.append({"phase": "snapshot built", **proc_status()})
    rendered = render(snapshot)
    phases.append({"phase": "rendered (snapshot still held)", **proc_status()})
    lines = sample_lines(rendered.text)
    del snapshot  # the exporter keeps only the Rendered bytes between polls
    gc.collect()
    phases.append({"phase": "snapshot dropped (gc)", **proc_status()})

    server = MetricsServer(("127.0.0.1", 0))
    server.source = PreRendered(rendered)  # type: ignore[assignment]
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with httpx.Client(timeout=120) as client:
            for _ in range(scrapes):
                for encoding in ENCODINGS:
                    scrape(client, url, encoding)
        phases.append({"phase": f"serving ({scrapes}x plain + gzip scrapes)", **proc_status()})
    finally:
        server.stop()
    return {
        "target": target,
        "sample_lines": lines,
        "rendered_bytes": sum(
            len(b)
            for b in (
                rendered.text,
                rendered.text_gzip,
                rendered.openmetrics,
                rendered.openmetrics_gzip,
            )
        ),
        "phases": phases,
        "peak_hwm_mib": proc_status()["VmHWM"],
    }


def rss_subprocess(target: int) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--rss-only", str(target), "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout)


# --------------------------------------------------------------------------- output


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def _kib(n: int) -> str:
    return f"{n / 1024:,.0f}"


def rss_table(rss: dict[str, Any]) -> list[str]:
    lines = [
        f"RSS, fresh process, {rss['sample_lines']:,} sample lines "
        f"(Rendered holds {rss['rendered_bytes'] / MIB:.1f} MiB of bytes):",
        "",
        "| phase | VmRSS MiB | VmHWM MiB |",
        "|---|---:|---:|",
    ]
    for p in rss["phases"]:
        lines.append(f"| {p['phase']} | {p['VmRSS']:.1f} | {p['VmHWM']:.1f} |")
    return lines


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    out = [
        f"{m['date']} | {m['nproc']} CPUs | Python {m['python']} | {m['platform']}",
        "",
        "Scrape latency over HTTP (127.0.0.1, keep-alive; ms to the last byte). "
        "A = pre-rendered bytes, B = render() per scrape, C = requested format only per scrape:",
        "",
        "| sample lines | encoding | body KiB | n | A median | A p95 | B median | B p95 "
        "| B/A | C median | C p95 | C/A |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in report["sizes"]:
        by = {(s["mode"], s["encoding"]): s for s in size["scrapes"]}
        for encoding in ENCODINGS:
            a, b, c = (by[(mode, encoding)] for mode in "ABC")
            out.append(
                f"| {size['sample_lines']:,} | {encoding} | {_kib(a['bytes'])} "
                f"| {size['repeat']} "
                f"| {_ms(a['median_s'])} | {_ms(a['p95_s'])} "
                f"| {_ms(b['median_s'])} | {_ms(b['p95_s'])} "
                f"| {b['median_s'] / a['median_s']:.0f}x "
                f"| {_ms(c['median_s'])} | {_ms(c['p95_s'])} "
                f"| {c['median_s'] / a['median_s']:.0f}x |"
            )
    out += [
        "",
        "render() (text + OpenMetrics, each plain and gzip at GZIP_LEVEL) and body sizes:",
        "",
        "| sample lines | streams | render() median ms | render() min ms | text KiB "
        "| text gzip KiB | OpenMetrics KiB | OpenMetrics gzip KiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in report["sizes"]:
        b = size["bytes"]
        out.append(
            f"| {size['sample_lines']:,} | {size['streams']:,} "
            f"| {_ms(size['render_s']['median'])} | {_ms(size['render_s']['min'])} "
            f"| {_kib(b['text'])} | {_kib(b['text_gzip'])} "
            f"| {_kib(b['openmetrics'])} | {_kib(b['openmetrics_gzip'])} |"
        )
    if report.get("rss"):
        out += ["", *rss_table(report["rss"])]
    return "\n".join(out)


def machine() -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def default_repeat(target: int) -> int:
    """20 at 10k, 5 at 100k."""
    return max(5, min(50, 200_000 // max(target, 1)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--series",
        default="10000,100000",
        help="comma-separated target sample-line counts (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat",
        default=None,
        help="scrapes per mode and encoding: one number, or one per --series "
        "(default: 20 at 10k, 5 at 100k)",
    )
    parser.add_argument(
        "--rss-series",
        type=int,
        default=None,
        help="size for the fresh-process RSS run (default: the largest --series; 0 skips it)",
    )
    parser.add_argument(
        "--rss-only",
        type=int,
        metavar="N",
        help="only measure RSS at N sample lines in this process",
    )
    parser.add_argument(
        "--scrape-path",
        action="store_true",
        help="instead: our servers vs nginx under wrk at 1 and 8 connections (--series "
        "default 1000,10000,100000), gzip levels, and with --refresh-db scrapes during a "
        "refresh (benchmarks/scrape_path.py)",
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="per wrk cell (--scrape-path)")
    parser.add_argument(
        "--rounds", type=int, default=2, help="wrk rounds per cell, best kept (--scrape-path)"
    )
    parser.add_argument(
        "--refresh-db",
        help="a COPY of a bench_recompute history to refresh in a loop (--scrape-path)",
    )
    parser.add_argument("--refresh-streams", type=int, default=1000, help="streams of --refresh-db")
    parser.add_argument(
        "--baseline-src", help="an export of another revision, measured beside (--scrape-path)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)

    if args.rss_only is not None:
        rss = rss_only(args.rss_only)
        print(json.dumps(rss, indent=2) if args.json else "\n".join(rss_table(rss)))
        return 0

    if args.scrape_path:
        import scrape_path

        targets = "1000,10000,100000" if args.series == "10000,100000" else args.series
        return scrape_path.run(
            [int(s) for s in targets.split(",") if s.strip()],
            args.seconds,
            args.refresh_db,
            args.refresh_streams,
            args.baseline_src,
            args.rounds,
            args.json,
            args.quiet,
        )

    series = [int(s) for s in args.series.split(",") if s.strip()]
    if args.repeat is None:
        repeats = [default_repeat(n) for n in series]
    else:
        repeats = [int(r) for r in args.repeat.split(",")]
        if len(repeats) == 1:
            repeats *= len(series)
        if len(repeats) != len(series):
            parser.error("--repeat takes one number or one per --series value")

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    report: dict[str, Any] = {"machine": machine(), "sizes": []}
    t0 = time.perf_counter()
    for n, k in zip(series, repeats, strict=True):
        report["sizes"].append(bench_size(n, k, log))
        gc.collect()
    rss_n = max(series) if args.rss_series is None else args.rss_series
    if rss_n > 0:
        log(f"RSS at {rss_n} in a fresh process")
        report["rss"] = rss_subprocess(rss_n)
    report["elapsed_s"] = time.perf_counter() - t0
    log(f"done in {report['elapsed_s']:.1f}s")

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
