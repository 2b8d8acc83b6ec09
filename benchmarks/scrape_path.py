"""The scrape path against nginx, gzip levels, and scrape latency during a refresh.

Run through ``bench_exposition.py --scrape-path`` (one command, one run):

* **vs nginx**: the same bodies (~1k, 10k, 100k sample lines; text format, plain and
  gzip) served by Debian's nginx (one worker, ``sendfile on``, ``gzip_static`` pre-compressed
  files) and by our servers, each in a process of its own, loaded with Debian's ``wrk``
  (one thread) at 1 and 8 connections: median / p99 latency, req/s, ratio to nginx.
  ``wrk CPU`` is the client's CPU share of one core: below ~90 % the client is not what
  limits the cell.
* **gzip levels**: size and compression time of the text body per level.
* **during a refresh**: an :class:`~exporter.app.App` over a copy of a history
  (``--refresh-db``; e.g. ``cp /tmp/bench/h1000x400.db``) polls one account and refreshes
  in a loop while ``wrk -c1`` scrapes ``/metrics`` (gzip, as Prometheus asks): p50 / p99 /
  max with the refresh idle and running, for the in-process server (the scrape is a
  thread of the refreshing process: main's design) and the serving process (ours).

``--baseline-src DIR`` (an export of another revision, ``git archive main | tar -x -C
DIR``) adds that revision's in-process server to both tables. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROBE_INTERVAL = 0.02  # s between scrapes while measuring a refresh (50 scrapes/s)
BODIES = ("text", "text.gz", "om", "om.gz")
WRK_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK {\\"requests\\": %d, \\"duration_us\\": %d, \\"bytes\\": %d, \\"p50_us\\": %d, "
    .. "\\"p99_us\\": %d, \\"max_us\\": %d, \\"errors\\": %d}\\n",
    summary.requests, summary.duration, summary.bytes, latency:percentile(50),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.status + e.timeout))
end
"""
NGINX_CONF = """
{user}worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 10000000;
  keepalive_timeout 120;
  client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp; fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  server {{
    listen 127.0.0.1:{port};
    root {dir}/www;
    location / {{
      default_type "text/plain; version=0.0.4; charset=utf-8";
      gzip_static on;
    }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def wrk(url: str, connections: int, seconds: float, encoding: str, lua: Path) -> dict[str, Any]:
    """One wrk run; its figures and its own CPU share of one core (``wait4``)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(lua),
           "-H", f"Accept-Encoding: {encoding}", url]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0 or "WRK " not in out:
        raise RuntimeError(f"wrk failed: {out} {proc.stderr.read() if proc.stderr else ''}")
    figures: dict[str, Any] = json.loads(out.split("WRK ", 1)[1].splitlines()[0])
    figures["rps"] = figures["requests"] / (figures["duration_us"] / 1e6)
    figures["client_cpu"] = (usage.ru_utime + usage.ru_stime) / (figures["duration_us"] / 1e6)
    return figures


# --------------------------------------------------------------------------- servers


def write_bodies(directory: Path, rendered: Any) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in zip(
        BODIES,
        (rendered.text, rendered.text_gzip, rendered.openmetrics, rendered.openmetrics_gzip),
        strict=True,
    ):
        (directory / name).write_bytes(body)


def serve_worker(mode: str, directory: str) -> int:
    """A server of ``directory``'s bodies in this process (``inprocess``: MetricsServer;
    ``process``: ServingProcess); prints its port, serves until stdin closes."""
    from exporter.exposition import Rendered
    from exporter.server import MetricsServer

    d = Path(directory)
    rendered = Rendered.of(*(d.joinpath(name).read_bytes() for name in BODIES))

    class Source:
        def __init__(self) -> None:
            self.rendered = rendered

        def health(self) -> list[Any]:
            return []

    if mode == "process":
        from exporter.serving import ServingProcess

        process = ServingProcess(("127.0.0.1", 0))
        process.start()
        process.publish(rendered, [])
        port = process.port
    else:
        server = MetricsServer(("127.0.0.1", 0))
        server.source = Source()  # type: ignore[assignment]
        server.start()
        port = server.port
    import exporter

    print(f"port {port} {exporter.__file__}", flush=True)
    sys.stdin.read()
    if mode == "process":
        process.stop()
    else:
        server.stop()
    return 0


class Worker:
    """A worker subprocess of this script (``--serve-worker``/``--refresh-worker``)."""

    def __init__(self, args: list[str], src: str | None = None) -> None:
        env = dict(os.environ)
        if src:
            env["PYTHONPATH"] = src
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__)), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("port "):
            raise RuntimeError(f"worker {args} did not start: {line!r}")
        _, port, self.module = line.split()
        self.port = int(port)
        if src and not self.module.startswith(src):
            raise RuntimeError(f"the baseline worker imported {self.module}, not {src}")

    def say(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(60)


class Nginx:
    def __init__(self, root: Path) -> None:
        self.dir = root / "nginx"
        (self.dir / "www").mkdir(parents=True)
        (self.dir / "tmp").mkdir()
        self.port = free_port()
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, dir=self.dir, port=self.port))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-p", str(self.dir), "-c", str(conf)])
        wait_port(self.port)

    def add(self, name: str, rendered: Any) -> str:
        (self.dir / "www" / name).write_bytes(rendered.text)
        (self.dir / "www" / f"{name}.gz").write_bytes(rendered.text_gzip)
        return f"http://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


# --------------------------------------------------------------------------- tables


def vs_nginx(
    targets: list[int],
    seconds: float,
    rounds: int,
    root: Path,
    lua: Path,
    src: str | None,
    log: Any,
) -> dict[str, Any]:
    from bench_exposition import build_snapshot, sample_lines

    from exporter.exposition import render

    nginx = Nginx(root)
    cells: list[dict[str, Any]] = []
    levels: list[dict[str, Any]] = []
    paths: list[dict[str, Any]] = []
    try:
        for target in targets:
            rendered = render(build_snapshot(target))
            lines = sample_lines(rendered.text)
            levels.append(gzip_levels(lines, rendered.text))
            if target == max(targets):
                paths = body_paths(rendered, lines, seconds, rounds, lua, log)
            directory = root / f"bodies-{target}"
            write_bodies(directory, rendered)
            urls = {"nginx": nginx.add(f"m{target}", rendered)}
            workers = {
                "process": Worker(["--serve-worker", "process", str(directory)]),
                "in-process": Worker(["--serve-worker", "inprocess", str(directory)]),
            }
            if src:
                workers["baseline"] = Worker(
                    ["--serve-worker", "inprocess", str(directory)], src=src
                )
            for name, w in workers.items():
                urls[name] = f"http://127.0.0.1:{w.port}/metrics"
            try:
                for encoding, size in (("identity", rendered.text), ("gzip", rendered.text_gzip)):
                    for c in (1, 8):
                        best: dict[str, dict[str, Any]] = {}
                        for _ in range(rounds):  # servers interleaved; best round kept
                            for server, url in urls.items():
                                if server not in best:
                                    wrk(url, c, 1, encoding, lua)  # warm-up
                                r = wrk(url, c, seconds, encoding, lua)
                                if server not in best or r["rps"] > best[server]["rps"]:
                                    best[server] = r
                        for server, r in best.items():
                            r.update(server=server, lines=lines, encoding=encoding,
                                     connections=c, body=len(size), rounds=rounds)  # fmt: skip
                            cells.append(r)
                            log(f"{lines} {encoding} c={c} {server}: {r['rps']:.0f} req/s, "
                                f"p50 {r['p50_us']} us, p99 {r['p99_us']} us")  # fmt: skip
            finally:
                for w in workers.values():
                    w.close()
    finally:
        nginx.stop()
    return {"cells": cells, "gzip_levels": levels, "body_paths": paths}


def body_paths(
    rendered: Any, lines: int, seconds: float, rounds: int, lua: Path, log: Any
) -> list[dict[str, Any]]:
    """One in-process server, the same bodies three ways: read from their memfds into
    bytes (sendmsg: what the serving process does), the memfd's mapping (sendmsg) and the
    memfd by sendfile."""
    from exporter.server import MetricsServer
    from exporter.serving import Published

    def published(mapped: bool) -> Published:
        bodies = (rendered.text, rendered.text_gzip, rendered.openmetrics,
                  rendered.openmetrics_gzip)  # fmt: skip
        fds = []
        for body in bodies:
            fd = os.memfd_create("bench-metrics")
            with open(fd, "wb", closefd=False) as f:
                f.write(body)
            fds.append(fd)
        return Published.from_fds(fds, [len(b) for b in bodies], mapped=mapped)

    class Source:
        def __init__(self, bodies: Any) -> None:
            self.rendered = bodies

        def health(self) -> list[Any]:
            return []

    server = MetricsServer(("127.0.0.1", 0))
    server.start()
    url = f"http://127.0.0.1:{server.port}/metrics"
    ways = (("memfd read into bytes, sendmsg (serving process)", published(False), None),
            ("memfd mapping, sendmsg", published(True), None),
            ("memfd, sendfile", published(True), 1))  # fmt: skip
    out = []
    try:
        for encoding in ("identity", "gzip"):
            best: dict[str, dict[str, Any]] = {}
            for _ in range(rounds):
                for name, bodies, least in ways:
                    server.source = Source(bodies)  # type: ignore[assignment]
                    server.sendfile_min = least
                    r = wrk(url, 1, seconds, encoding, lua)
                    if name not in best or r["rps"] > best[name]["rps"]:
                        best[name] = r
            for name, r in best.items():
                r.update(way=name, lines=lines, encoding=encoding)
                out.append(r)
                log(f"body path {lines} {encoding} {name}: {r['rps']:.0f} req/s")
    finally:
        server.stop()
    return out


def gzip_levels(lines: int, text: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"lines": lines, "bytes": len(text), "levels": {}}
    for level in (1, 3, 6, 9):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            body = gzip.compress(text, compresslevel=level, mtime=0)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        gzip.decompress(body)
        out["levels"][level] = {
            "bytes": len(body),
            "compress_s": statistics.median(times),
            "decompress_s": time.perf_counter() - t0,
        }
    return out


def refresh_worker(mode: str, db: str, n_streams: str) -> int:
    """An App over ``db`` (filled by bench_recompute with ``n_streams``) serving in
    ``mode``; on ``go N`` polls one account and refreshes for N seconds, answering
    ``refreshes K mean_s``."""
    sys.path.insert(0, str(HERE))
    from datetime import timedelta

    from bench_recompute import ACCOUNTS, TODAY, config, poll_rows

    import exporter
    from exporter.app import App
    from exporter.server import MetricsServer

    cfg = config(db)
    app = App(cfg, clock=lambda: TODAY)
    if mode == "process":
        from exporter.serving import ServingProcess

        process = ServingProcess(("127.0.0.1", 0))
        process.start()
        app.on_render = lambda rendered: process.publish(rendered, [])
        process.publish(app.rendered, [])
        port = process.port
    else:
        server = MetricsServer(("127.0.0.1", 0))
        server.source = app
        server.start()
        port = server.port
    print(f"port {port} {exporter.__file__}", flush=True)
    provider, account = ACCOUNTS[0]
    today = TODAY.date()
    polled = poll_rows(int(n_streams), provider, account, today - timedelta(days=3), today)
    for line in sys.stdin:
        seconds = float(line.split()[1])
        took = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.store.replace_window(provider, account, polled, annotate=app.fx.columns)
            t0 = time.perf_counter()
            app.fx.convert_stored()
            app.refresh()
            took.append(time.perf_counter() - t0)
        print(f"refreshes {len(took)} {statistics.mean(took):.3f}", flush=True)
    if mode == "process":
        process.stop()
    else:
        server.stop()
    app.stop()
    return 0


def probe(url: str, seconds: float, interval: float) -> dict[str, Any]:
    """Scrape ``url`` (gzip, keep-alive) every ``interval`` s for ``seconds``, as a
    Prometheus would but often enough for percentiles: latency to the last byte."""
    import http.client

    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    took = []
    end = time.monotonic() + seconds
    next_at = time.monotonic()
    while time.monotonic() < end:
        t0 = time.perf_counter()
        conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
        response = conn.getresponse()
        response.read()
        took.append(time.perf_counter() - t0)
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    conn.close()
    ordered = sorted(took)
    return {
        "n": len(took),
        "p50_us": statistics.median(ordered) * 1e6,
        "p99_us": ordered[max(0, int(0.99 * len(ordered)) - 1)] * 1e6,
        "max_us": ordered[-1] * 1e6,
    }


def probe_process(url: str, seconds: float, interval: float) -> subprocess.Popen[str]:
    """:func:`probe` in a process of its own (not sharing anyone's interpreter lock)."""
    return subprocess.Popen(
        [sys.executable, str(Path(__file__)), "--probe-worker", url, str(seconds), str(interval)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def probe_result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=600)
    result: dict[str, Any] = json.loads(out)
    return result


def during_refresh(
    db: str, streams: int, seconds: float, lua: Path, src: str | None, log: Any
) -> list[Any]:
    rows = []
    modes = [("in-process", "inprocess", None), ("process", "process", None)]
    if src:
        modes.insert(0, ("baseline in-process", "inprocess", src))
    for name, mode, path in modes:
        w = Worker(["--refresh-worker", mode, db, str(streams)], src=path)
        try:
            url = f"http://127.0.0.1:{w.port}/metrics"
            idle = probe_result(probe_process(url, seconds, PROBE_INTERVAL))
            assert w.proc.stdin is not None
            w.proc.stdin.write(f"go {seconds + 2}\n")
            w.proc.stdin.flush()
            time.sleep(1)  # the loop's first refresh is under way
            busy = probe_result(probe_process(url, seconds, PROBE_INTERVAL))
            assert w.proc.stdout is not None
            refreshes = w.proc.stdout.readline().split()
        finally:
            w.close()
        rows.append({"server": name, "idle": idle, "refreshing": busy, "probe_s": PROBE_INTERVAL,
                     "refreshes": int(refreshes[1]), "refresh_s": float(refreshes[2])})  # fmt: skip
        log(f"{name}: idle p99 {idle['p99_us']} us, refreshing p99 {busy['p99_us']} us "
            f"max {busy['max_us']} us ({refreshes[1]} refreshes of {refreshes[2]} s)")  # fmt: skip
    return rows


def _ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def markdown(report: dict[str, Any]) -> str:
    out = ["| sample lines | encoding | body KiB | conns | server | req/s | p50 ms | p99 ms "
           "| wrk CPU | p50 / nginx | req/s nginx / ours |",
           "|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    cells = report["nginx"]["cells"]
    ref = {
        (c["lines"], c["encoding"], c["connections"]): c for c in cells if c["server"] == "nginx"
    }
    for c in cells:
        n = ref[(c["lines"], c["encoding"], c["connections"])]
        out.append(
            f"| {c['lines']:,} | {'gzip' if c['encoding'] == 'gzip' else 'plain'} "
            f"| {c['body'] / 1024:,.0f} | {c['connections']} | {c['server']} | {c['rps']:,.0f} "
            f"| {_ms(c['p50_us'])} | {_ms(c['p99_us'])} | {c['client_cpu']:.0%} "
            f"| {c['p50_us'] / max(n['p50_us'], 1):.2f}x | {n['rps'] / c['rps']:.2f}x |"
        )
    out += ["", "| sample lines | text KiB | level | gzip KiB | compress ms | decompress ms |",
            "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for g in report["nginx"]["gzip_levels"]:
        for level, v in g["levels"].items():
            out.append(
                f"| {g['lines']:,} | {g['bytes'] / 1024:,.0f} | {level} | {v['bytes'] / 1024:,.0f} "
                f"| {v['compress_s'] * 1e3:.1f} | {v['decompress_s'] * 1e3:.1f} |"
            )
    out += ["", "| sample lines | encoding | body path (in-process server) | req/s | p50 ms |",
            "|---:|---|---|---:|---:|"]  # fmt: skip
    for p in report["nginx"]["body_paths"]:
        out.append(
            f"| {p['lines']:,} | {'gzip' if p['encoding'] == 'gzip' else 'plain'} | {p['way']} "
            f"| {p['rps']:,.0f} | {_ms(p['p50_us'])} |"
        )
    if report.get("refresh"):
        out += ["", "| server | refreshes (mean s) | idle p50 ms | idle p99 ms | refreshing p50 ms "
                "| refreshing p99 ms | refreshing max ms | scrapes (idle / refreshing) |",
                "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for r in report["refresh"]:
            i, b = r["idle"], r["refreshing"]
            out.append(
                f"| {r['server']} | {r['refreshes']} ({r['refresh_s']:.2f}) | {_ms(i['p50_us'])} "
                f"| {_ms(i['p99_us'])} | {_ms(b['p50_us'])} | {_ms(b['p99_us'])} "
                f"| {_ms(b['max_us'])} | {i['n']} / {b['n']} |"
            )
    return "\n".join(out)


def run(
    targets: list[int],
    seconds: float,
    refresh_db: str | None,
    refresh_streams: int,
    src: str | None,
    rounds: int,
    as_json: bool,
    quiet: bool,
) -> int:
    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    if not shutil.which("wrk") or not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        print("error: needs Debian's nginx and wrk: apt-get install nginx-light wrk",
              file=sys.stderr)  # fmt: skip
        return 1
    with tempfile.TemporaryDirectory(prefix="aicost-scrape-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)  # nginx's worker reads the bodies
        lua = root / "report.lua"
        lua.write_text(WRK_LUA)
        report: dict[str, Any] = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "nproc": os.cpu_count(),
            "loadavg_start": os.getloadavg()[0],
        }
        report["nginx"] = vs_nginx(targets, seconds, rounds, root, lua, src, log)
        if refresh_db:
            report["refresh"] = during_refresh(refresh_db, refresh_streams, 20.0, lua, src, log)
        report["loadavg_end"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2) if as_json else markdown(report))
    if not as_json:
        print(f"\n{report['date']}, nproc {report['nproc']}, load average "
              f"{report['loadavg_start']:.2f} -> {report['loadavg_end']:.2f}")  # fmt: skip
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve-worker", nargs=2, metavar=("MODE", "DIR"))
    parser.add_argument("--refresh-worker", nargs=3, metavar=("MODE", "DB", "STREAMS"))
    parser.add_argument("--probe-worker", nargs=3, metavar=("URL", "SECONDS", "INTERVAL"))
    args = parser.parse_args(argv)
    if args.probe_worker:
        url, seconds, interval = args.probe_worker
        print(json.dumps(probe(url, float(seconds), float(interval))))
        return 0
    if args.serve_worker:
        return serve_worker(*args.serve_worker)
    if args.refresh_worker:
        return refresh_worker(*args.refresh_worker)
    parser.error("run through bench_exposition.py --scrape-path")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
