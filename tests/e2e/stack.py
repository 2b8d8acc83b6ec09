"""A real monitoring stack on loopback for end-to-end tests.

fake provider (in-process) -> exporter (process) -> Prometheus (Debian binary, the shipped
rules) -> Alertmanager (Debian binary, the shipped routing) -> webhook receiver (in-process).

Only processes started here are stopped here. Alertmanager clustering is disabled so it
binds nothing but loopback.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.process import free_port

ROOT = Path(__file__).resolve().parents[2]


def binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"{names[0]} is required (scripts/test installs Debian's package)")
    raise AssertionError


class Webhook:
    """Alertmanager webhook receiver: keeps every notification payload."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer._lock:
                    outer.payloads.append({"path": self.path, **json.loads(body)})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self) -> list[tuple[str, dict[str, Any]]]:
        """(receiver path, alert) for every alert in every notification so far."""
        with self._lock:
            return [(p["path"], a) for p in self.payloads for a in p.get("alerts", [])]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Process:
    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._file = open(log, "ab")
        self.proc = subprocess.Popen(args, stdout=self._file, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._file.close()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2500:]


def wait_until(ok: Callable[[], bool], what: str, timeout: float, *procs: Process) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.proc.poll() is not None:
                raise AssertionError(f"{what}: a process exited:\n{p.tail()}")
        try:
            if ok():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out: {what}\n" + "\n".join(p.tail() for p in procs))


def shorten_for(rule_files: list[Path], out_dir: Path, for_: str = "3s") -> list[Path]:
    """Copies of the shipped rule files with every `for:` shortened, nothing else changed.

    Shipped alerts wait longer than the poll interval (15m+); a test cannot. The
    expressions, labels and annotations under test are the shipped ones.
    """
    out = []
    for path in rule_files:
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            group["interval"] = "1s"
            for rule in group["rules"]:
                if "for" in rule:
                    rule["for"] = for_
        target = out_dir / path.name
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        out.append(target)
    return out


class Prometheus:
    def __init__(
        self,
        tmp: Path,
        targets: list[str],
        rule_files: list[Path],
        am_url: str,
        scrape_configs: list[dict[str, Any]] | None = None,
    ) -> None:
        """``scrape_configs`` (e.g. a documented snippet) replace the default job; their
        targets become ``targets`` and their intervals 1s, nothing else changes."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        jobs = scrape_configs or [{"job_name": "ai-cost-exporter", "static_configs": [{}]}]
        jobs = [
            {**job, "scrape_interval": "1s", "static_configs": [{"targets": targets}]}
            for job in jobs
        ]
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [am_url.split("//")[1]]}]}]
            },
            "scrape_configs": jobs,
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.process = Process(
            [
                binary("prometheus"),
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.console.templates=/nonexistent",
                "--web.console.libraries=/nonexistent",
            ],
            tmp / "prometheus.log",
        )
        wait_until(
            lambda: httpx.get(self.url + "/-/ready", timeout=2).status_code == 200,
            "Prometheus ready", 60, self.process,
        )  # fmt: skip

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        if body.get("status") != "success":
            raise AssertionError(f"query failed: {expr}: {body}")
        return list(body["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        return list(httpx.get(self.url + "/api/v1/alerts", timeout=5).json()["data"]["alerts"])


class Alertmanager:
    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (tmp / "alertmanager.yml").write_text(yaml.safe_dump(config))
        self.process = Process(
            [
                binary("prometheus-alertmanager", "alertmanager"),
                f"--config.file={tmp / 'alertmanager.yml'}",
                f"--storage.path={tmp / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
            ],
            tmp / "alertmanager.log",
        )
        wait_until(
            lambda: httpx.get(self.url + "/-/ready", timeout=2).status_code == 200,
            "Alertmanager ready", 60, self.process,
        )  # fmt: skip

    def post(self, labels: dict[str, str], annotations: dict[str, str] | None = None) -> None:
        """Send one firing alert straight to Alertmanager, as another team's Prometheus would."""
        alert = {"labels": labels, "annotations": annotations or {}}
        r = httpx.post(self.url + "/api/v2/alerts", json=[alert], timeout=5)
        r.raise_for_status()
