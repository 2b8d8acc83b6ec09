#!/usr/bin/env python3
"""Ingest throughput: OTLP/HTTP spans accepted per second by the exporter (parse, price,
SQLite write path, idempotency) vs a plain stdlib server that only parses the same bodies.

    python benchmarks/bench_ingest.py                    # batches of 100 and 1,000 spans
    python benchmarks/bench_ingest.py --spans 20000 --batches 100,1000 --json

Both servers run in this process on loopback; the sender is a separate process (so it
does not share the server's GIL) posting protobuf ExportTraceServiceRequests built with
opentelemetry-proto over one keep-alive connection per client. Every span is new (unique
trace/span ids), so every one takes the full write path. Read the ratio; absolute numbers
depend on the machine (and on what else runs on it: the load average is printed). Besides
the wall-clock rate, the CPU time the server process used is reported (spans per
CPU-second), which a busy machine distorts less. Benchmarks are not tests: nothing asserts
on time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

TOKEN = "bench-token"
MODELS = (("openai", "gpt-4o-mini"), ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"))


def kv(key: str, value: str | int | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def bodies(total: int, batch: int, seed: int) -> list[bytes]:
    """``total`` GenAI spans (about 12 attributes each, like an OpenLLMetry chat span) in
    ExportTraceServiceRequests of ``batch`` spans."""
    now = datetime.now(UTC) - timedelta(minutes=1)
    end = int(now.timestamp() * 1e9)
    out = []
    n = 0
    for b in range(total // batch):
        spans = []
        for i in range(batch):
            n += 1
            provider, model = MODELS[n % len(MODELS)]
            attrs = [
                kv("gen_ai.provider.name", provider), kv("gen_ai.operation.name", "chat"),
                kv("gen_ai.request.model", model), kv("gen_ai.response.model", model),
                kv("gen_ai.usage.input_tokens", 800 + n % 500),
                kv("gen_ai.usage.output_tokens", 100 + n % 300),
                kv("gen_ai.usage.cache_read.input_tokens", (n % 4) * 100),
                kv("http.route", f"/api/v1/feature{n % 20}"),
                kv("aicost.tenant", f"tenant-{n % 50}"), kv("enduser.id", f"user-{n % 1000}"),
                kv("aicost.prompt_version", f"v{n % 3}"),
                kv("aicost.outcome", "success" if n % 10 else "error"),
            ]  # fmt: skip
            spans.append(
                Span(
                    trace_id=(seed * 1_000_000_000 + b).to_bytes(16, "big"),
                    span_id=(i + 1).to_bytes(8, "big"),
                    name=f"chat {model}",
                    kind=Span.SPAN_KIND_CLIENT,
                    start_time_unix_nano=end - 2_000_000_000,
                    end_time_unix_nano=end,
                    attributes=attrs,
                )
            )
        req = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=Resource(attributes=[kv("service.name", "bench-app")]),
                    scope_spans=[ScopeSpans(spans=spans)],
                )
            ]
        )
        out.append(req.SerializeToString())
    return out


def send(port: int, payloads: list[bytes], queue: Any) -> None:
    """The sender process: POST every body, check each answer, report the elapsed time."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {TOKEN}"}
    start = time.perf_counter()
    for body in payloads:
        conn.request("POST", "/v1/traces", body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise SystemExit(f"HTTP {resp.status}: {data[:200]!r}")
        reply = ExportTraceServiceResponse.FromString(data)
        if reply.partial_success.rejected_spans:
            raise SystemExit(reply.partial_success.error_message)
    queue.put(time.perf_counter() - start)
    conn.close()


def run_clients(port: int, payloads: list[bytes], clients: int) -> tuple[float, float]:
    """(wall seconds of the slowest sender, CPU seconds this server process used)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    parts = [payloads[i::clients] for i in range(clients)]
    procs = [ctx.Process(target=send, args=(port, part, queue)) for part in parts]
    for p in procs:
        p.start()
    cpu0 = time.process_time()
    times = [queue.get() for _ in procs]
    cpu = time.process_time() - cpu0
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"sender failed with exit code {p.exitcode}")
    return max(times), cpu


class ParseOnly(BaseHTTPRequestHandler):
    """The baseline: read the body, decode the ExportTraceServiceRequest, count the spans."""

    protocol_version = "HTTP/1.1"
    reply = ExportTraceServiceResponse().SerializeToString()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        req = ExportTraceServiceRequest.FromString(body)
        sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(self.reply)))
        self.end_headers()
        self.wfile.write(self.reply)

    def log_message(self, *args: object) -> None:
        pass


def bench_exporter(payloads: list[bytes], clients: int) -> tuple[tuple[float, float], int]:
    from exporter.app import build
    from exporter.config import validate
    from exporter.server import MetricsServer

    with tempfile.TemporaryDirectory() as tmp:
        config = validate(
            {
                "storage": {"path": str(Path(tmp) / "history.db")},
                "ingest": {"enabled": True, "token_env": "BENCH_TOKEN",
                           "max_body_bytes": 64 * 1024 * 1024},
            }
        )  # fmt: skip
        app = build(config, env={"BENCH_TOKEN": TOKEN})
        server = MetricsServer(("127.0.0.1", 0))
        server.source, server.ingest = app, app.intake
        server.start()
        try:
            elapsed = run_clients(server.port, payloads, clients)
            stored = sum(r.requests for r in app.store.request_days())
        finally:
            server.stop()
            app.stop()
    return elapsed, stored


def bench_baseline(payloads: list[bytes], clients: int) -> tuple[float, float]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ParseOnly)
    server.daemon_threads = True
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        return run_clients(int(server.server_address[1]), payloads, clients)
    finally:
        server.shutdown()
        server.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=20_000, help="spans per run (20000)")
    parser.add_argument("--batches", default="100,1000", help="spans per request (100,1000)")
    parser.add_argument("--clients", type=int, default=2, help="sender processes (2)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args()
    results = []
    for seed, batch in enumerate(int(b) for b in args.batches.split(",")):
        payloads = bodies(args.spans, batch, seed + 1)
        spans = batch * len(payloads)
        (exporter_s, exporter_cpu), stored = bench_exporter(payloads, args.clients)
        if stored != spans:
            raise SystemExit(f"stored {stored} of {spans} spans")
        baseline_s, baseline_cpu = bench_baseline(payloads, args.clients)
        results.append(
            {
                "batch": batch,
                "spans": spans,
                "bytes_per_span": round(sum(map(len, payloads)) / spans),
                "exporter_spans_per_s": round(spans / exporter_s),
                "parse_only_spans_per_s": round(spans / baseline_s),
                "ratio": round(baseline_s / exporter_s, 3),
                "exporter_spans_per_cpu_s": round(spans / exporter_cpu),
                "parse_only_spans_per_cpu_s": round(spans / baseline_cpu),
            }
        )
    meta = {
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "clients": args.clients,
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=2))
        return 0
    print(f"{meta['cpus']} CPUs, Python {meta['python']}, {args.clients} sender processes, "
          f"{meta['when']}, load average {meta['load_average_1m']}")  # fmt: skip
    print("| spans per request | spans | exporter (parse, price, SQLite) | parse-only stdlib "
          "server | exporter / parse-only | exporter per CPU-second | parse-only per "
          "CPU-second |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        cells = (
            f"{r['batch']:,}", f"{r['spans']:,}", f"{r['exporter_spans_per_s']:,} spans/s",
            f"{r['parse_only_spans_per_s']:,} spans/s", f"{r['ratio']:.2f}",
            f"{r['exporter_spans_per_cpu_s']:,}", f"{r['parse_only_spans_per_cpu_s']:,}",
        )  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
