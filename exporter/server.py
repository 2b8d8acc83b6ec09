"""HTTP endpoints: ``/metrics`` (cached bytes only), ``/``, ``/-/healthy``, ``/-/ready``,
and, when ingest is enabled, ``POST /v1/traces`` and ``POST /api/v1/events`` (handled by
an :class:`Ingest` the composition root injects)."""

from __future__ import annotations

import html
import logging
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from exporter import __version__
from exporter.exposition import Rendered
from exporter.snapshot import ProviderHealth

log = logging.getLogger(__name__)


class Source(Protocol):
    """What the server reads: the latest rendered bytes and provider health."""

    rendered: Rendered

    def health(self) -> list[ProviderHealth]: ...


# (status, body, content type, extra headers)
Reply = tuple[int, bytes, str, dict[str, str]]


class Ingest(Protocol):
    """What the server needs of the ingest handler: its paths, the body limit, the token
    check (before the body is read) and the handling of an authorised body."""

    paths: frozenset[str]
    max_body_bytes: int

    def authorize(self, path: str, authorization: str | None) -> Reply | None: ...

    def refuse_size(self, path: str, length: int) -> Reply: ...

    def handle(self, path: str, content_type: str, content_encoding: str, body: bytes) -> Reply: ...


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server_version = f"ai-cost-exporter/{__version__}"

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._metrics()
        elif path == "/-/healthy":
            self._send(200, b"Healthy.\n", "text/plain; charset=utf-8")
        elif path == "/-/ready":
            if self.server.source is None:
                self._send(503, b"Not ready: loading the history.\n", "text/plain; charset=utf-8")
            else:
                self._send(200, b"Ready.\n", "text/plain; charset=utf-8")
        elif path == "/":
            self._send(200, self._landing().encode(), "text/html; charset=utf-8")
        else:
            self._send(404, b"Not found. Try /metrics.\n", "text/plain; charset=utf-8")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        ingest = self.server.ingest
        if ingest is None or path not in ingest.paths:
            self.close_connection = True
            hint = " (ingest is disabled: set ingest.enabled)" if ingest is None else ""
            self._send(404, f"Not found{hint}.\n".encode(), "text/plain; charset=utf-8")
            return
        refusal = ingest.authorize(path, self.headers.get("Authorization"))
        length_header = self.headers.get("Content-Length")
        if refusal is None:
            if length_header is None or not length_header.strip().isdigit():
                refusal = (411, b"Content-Length required.\n", "text/plain; charset=utf-8", {})
            elif int(length_header) > ingest.max_body_bytes:
                refusal = ingest.refuse_size(path, int(length_header))
        if refusal is not None:
            # The body is not read: close the connection instead of draining it.
            self.close_connection = True
            self._reply(refusal, close=True)
            return
        body = self.rfile.read(int(length_header or 0))
        self._reply(
            ingest.handle(
                path,
                self.headers.get("Content-Type", ""),
                self.headers.get("Content-Encoding", ""),
                body,
            )
        )

    def _reply(self, reply: Reply, *, close: bool = False) -> None:
        code, body, content_type, headers = reply
        self._send(
            code, body, content_type, {**headers, **({"Connection": "close"} if close else {})}
        )

    def _metrics(self) -> None:
        source = self.server.source
        if source is None:
            self._send(503, b"Not ready: loading the history.\n", "text/plain; charset=utf-8")
            return
        body, content_type, gz = source.rendered.pick(
            self.headers.get("Accept", ""), self.headers.get("Accept-Encoding", "")
        )
        self._send(200, body, content_type, {"Content-Encoding": "gzip"} if gz else None)

    def _landing(self) -> str:
        rows = []
        source = self.server.source
        for h in source.health() if source else []:
            last = (
                datetime.fromtimestamp(h.last_success, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                if h.last_success
                else "never"
            )
            rows.append(
                f"<tr><td>{html.escape(h.provider)}</td><td>{html.escape(h.account)}</td>"
                f"<td>{'up' if h.up else 'down'}</td><td>{last}</td></tr>"
            )
        status = "ready" if source else "loading"
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>ai-cost-exporter</title>"
            "</head><body><h1>ai-cost-exporter</h1>"
            f"<p>Version {html.escape(__version__)}; {status}.</p>"
            "<ul><li><a href='/metrics'>/metrics</a></li>"
            "<li><a href='/-/healthy'>/-/healthy</a></li>"
            "<li><a href='/-/ready'>/-/ready</a></li></ul>"
            "<table><tr><th>provider</th><th>account</th><th>last poll</th>"
            "<th>last success</th></tr>" + "".join(rows) + "</table></body></html>\n"
        )

    def _send(
        self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        self.source: Source | None = None
        self.ingest: Ingest | None = None
        if ":" in address[0]:  # an IPv6 address such as ::1 (written [::1]:9877)
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
