"""HTTP endpoints: ``/metrics`` (cached bytes only), ``/``, ``/-/healthy``, ``/-/ready``,
and, when ingest is enabled, ``POST /v1/traces`` and ``POST /api/v1/events`` (handled by
an :class:`Ingest` the composition root injects).

With a web config (:mod:`exporter.webconfig`): TLS per connection (the handshake runs in
the connection's thread) on every endpoint, basic auth on every GET endpoint but
``/-/healthy`` (ingest POSTs keep their bearer token: one ``Authorization`` header cannot
carry both), and the configured response headers; :meth:`MetricsServer.reload_web` swaps
it (on SIGHUP).

The scrape path is lean: request headers are read into a dict (not through the ``email``
parser; the limits and errors of ``http.server`` kept), a scrape of ``/metrics`` writes
the variant's pre-built head (:class:`~exporter.exposition.Variant`) plus Server, Date and
the web config's headers (rebuilt once per second) and the body: with the head in one
``sendmsg`` (from memory or the serving process's mapped memfds), or by ``sendfile`` for
a body kept in a file when :attr:`MetricsServer.sendfile_min` allows it (off by default:
slower, measured); through TLS, from memory. ``run`` and ``demo`` run this server in a process
of its own (:mod:`exporter.serving`); tests and benchmarks run it in-process.
"""

from __future__ import annotations

import html
import logging
import socket
import ssl
import sys
import threading
import time
from contextlib import suppress
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from exporter import __version__
from exporter.exposition import Body, Variant
from exporter.snapshot import ProviderHealth
from exporter.webconfig import HANDSHAKE_TIMEOUT, WebConfig, WebConfigError
from exporter.webconfig import load as load_web_config

log = logging.getLogger(__name__)

MAX_LINE = 65536  # a request header line (as http.client)
MAX_HEADERS = 100  # header lines per request (as http.client)
ONE_WRITE = 64 * 1024  # through TLS, bodies up to this size go out with their head


class Bodies(Protocol):
    """Pre-rendered ``/metrics`` bodies (:class:`~exporter.exposition.Rendered`, or the
    serving process's copies of them)."""

    def variant(self, accept: str, accept_encoding: str) -> Variant: ...


class Source(Protocol):
    """What the server reads: the latest rendered bytes and provider health."""

    @property
    def rendered(self) -> Bodies: ...

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
    raw_requestline: bytes
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server_version = f"ai-cost-exporter/{__version__}"

    def parse_request(self) -> bool:
        """:meth:`BaseHTTPRequestHandler.parse_request` without the ``email`` parser: the
        request line checked the same way, the header lines read into a plain dict
        (names lower-cased, the first of repeated names kept), the same limits and
        errors (431 for a header line over 64 KiB or more than 100 header lines)."""
        self.command = None  # type: ignore[assignment]  # set in case of an error
        self.request_version = self.default_request_version
        self.close_connection = True
        self.requestline = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = self.requestline.split()
        if not words:
            return False
        if len(words) >= 3:
            version = words[-1]
            number = _http_version(version)
            if number is None:
                self.send_error(400, f"Bad request version ({version!r})")
                return False
            if number >= (2, 0):
                self.send_error(505, f"Invalid HTTP version ({version[5:]})")
                return False
            self.close_connection = number < (1, 1)
            self.request_version = version
        if not 2 <= len(words) <= 3:
            self.send_error(400, f"Bad request syntax ({self.requestline!r})")
            return False
        command, path = words[:2]
        if len(words) == 2:
            self.close_connection = True
            if command != "GET":
                self.send_error(400, f"Bad HTTP/0.9 request type ({command!r})")
                return False
        self.command, self.path = command, path
        if path.startswith("//"):
            self.path = "/" + path.lstrip("/")
        headers = Headers()
        for _ in range(MAX_HEADERS + 1):
            line = self.rfile.readline(MAX_LINE + 1)
            if len(line) > MAX_LINE:
                self.send_error(431, "Line too long", "header line")
                return False
            if line in (b"\r\n", b"\n", b""):
                break
            add_header(headers, line)
        else:
            self.send_error(431, "Too many headers", f"got more than {MAX_HEADERS} headers")
            return False
        self.headers = headers  # type: ignore[assignment]  # .get() is all the handler uses
        connection = (headers.get("Connection") or "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if (
            (headers.get("Expect") or "").lower() == "100-continue"
            and self.request_version >= "HTTP/1.1"
            and not self.handle_expect_100()
        ):
            return False
        return True

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        auth = self.server.web.auth if self.server.web else None
        if (
            auth is not None
            and path != "/-/healthy"
            and not auth.check(self.headers.get("Authorization"))
        ):
            log.debug("%s: 401 for %s", self.address_string(), path)
            self._send(
                401,
                b"Unauthorized.\n",
                "text/plain; charset=utf-8",
                {"WWW-Authenticate": 'Basic realm="ai-cost-exporter", charset="UTF-8"'},
            )
        elif path == "/metrics":
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
        v = source.rendered.variant(
            self.headers.get("Accept", ""), self.headers.get("Accept-Encoding", "")
        )
        self.log_request(200)
        head = v.head + self.server.common_head() + b"\r\n"
        conn: socket.socket = self.connection
        least = self.server.sendfile_min
        sendfile = v.file is not None and least is not None and len(v.body) >= least
        if self.command == "HEAD":
            conn.sendall(head)
        elif isinstance(conn, ssl.SSLSocket):  # no sendmsg or sendfile through TLS
            if len(v.body) <= ONE_WRITE:
                conn.sendall(head + v.body)
            else:
                conn.sendall(head)
                conn.sendall(v.body)
        elif sendfile and v.file is not None:
            conn.sendall(head, socket.MSG_MORE)  # goes out with the first body segment
            conn.sendfile(v.file, 0, len(v.body))  # page cache -> socket, no copy here
        else:
            _send_both(conn, head, v.body)

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
        for k, v in self.server.web.headers if self.server.web else ():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if log.isEnabledFor(logging.DEBUG):  # not formatted per scrape otherwise
            super().log_request(code, size)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _send_both(conn: socket.socket, head: bytes, body: Body) -> None:
    """``head`` and ``body`` in one ``sendmsg`` (no copy into one buffer), the rest of a
    partial send after it."""
    sent = conn.sendmsg([head, body])
    if sent < len(head):
        conn.sendall(head[sent:])
        sent = len(head)
    if sent - len(head) < len(body):
        conn.sendall(memoryview(body)[sent - len(head) :])


class Headers(dict[str, str]):
    """Request headers by lower-cased name; :meth:`get` takes any case."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)


def add_header(headers: Headers, line: bytes) -> None:
    """One request header line into ``headers`` (the first of repeated names kept; a line
    without a colon or with space around the name is ignored)."""
    name, sep, value = line.decode("iso-8859-1").partition(":")
    if sep and name and name == name.strip():
        headers.setdefault(name.lower(), value.strip())


def handle_one(
    server: MetricsServer,
    connection: Any,
    client_address: Any,
    rfile: Any,
    wfile: Any,
) -> bool:
    """One request read from ``rfile`` and answered by the handler of
    :class:`MetricsServer` (the same parsing, errors, endpoints and headers) on
    ``connection``/``wfile``, which need not be a socket (the event loop of
    :mod:`exporter.server_loop` passes a buffer); True if the connection is to be closed
    after it."""
    handler = _Handler.__new__(_Handler)  # not __init__: that serves a whole connection
    handler.server, handler.client_address = server, client_address
    handler.request = handler.connection = connection
    handler.rfile, handler.wfile = rfile, wfile
    handler.close_connection = True
    handler.handle_one_request()
    return handler.close_connection


def _http_version(word: str) -> tuple[int, int] | None:
    """(major, minor) of ``HTTP/x.y``, checked as ``http.server`` checks it."""
    if not word.startswith("HTTP/"):
        return None
    parts = word[5:].split(".")
    if len(parts) != 2 or not all(p.isdigit() and len(p) <= 10 for p in parts):
        return None
    return int(parts[0]), int(parts[1])


class MetricsServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of concurrent scrapes is queued, not refused
    # Bodies of at least this size that have a file go out with sendfile; None: never.
    # Measured (benchmarks/README.md, "body path"): on loopback, sendfile from a memfd is
    # ~1.5-3x slower than one sendmsg from its mapping, so the default is never.
    sendfile_min: int | None = None

    def __init__(self, address: tuple[str, int], web: WebConfig | None = None) -> None:
        self.source: Source | None = None
        self.web = web  # read per connection and per request: a reload applies at once
        self.ingest: Ingest | None = None
        if ":" in address[0]:  # an IPv6 address such as ::1 (written [::1]:9877)
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self._head: tuple[int, WebConfig | None, bytes] = (0, None, b"")
        self._thread: threading.Thread | None = None

    @property
    def scheme(self) -> str:
        return self.web.scheme if self.web else "http"

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Run in the connection's thread: the TLS handshake first, when TLS is on."""
        web = self.web
        if web is None or web.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            conn = web.tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        except OSError:
            return
        try:
            conn.do_handshake()
            web.accept(conn)
            conn.settimeout(None)
        except OSError as exc:  # ssl.SSLError included
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            conn.close()
            return
        try:
            super().finish_request(conn, client_address)
        finally:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_WR)
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that resets or leaves mid-response is logged at debug, not as a
        traceback on stderr (load generators and scrapers do it on shutdown)."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("connection from %s ended early: %s", client_address, sys.exc_info()[1])
            return
        super().handle_error(request, client_address)

    def reload_web(self) -> bool:
        """Re-read the web config file (SIGHUP); on an error keep the current one."""
        if self.web is None:
            log.info("SIGHUP: no --web.config.file to reload")
            return False
        try:
            web = load_web_config(self.web.source)
        except WebConfigError as exc:
            log.error("web config not reloaded, keeping the previous one: %s", exc)
            return False
        for warning in web.warnings:
            log.warning("web config %s: %s", web.source, warning)
        self.web = web
        log.info("web config %s reloaded: %s", web.source, web.describe())
        return True

    def common_head(self) -> bytes:
        """Server, Date and the web config's headers, CRLF-terminated; rebuilt once per
        second or web config, not per scrape."""
        now, web = int(time.time()), self.web
        cached = self._head
        if cached[0] != now or cached[1] is not web:
            lines = [f"Server: {_Handler.server_version} {_Handler.sys_version}"]
            lines.append(f"Date: {formatdate(now, usegmt=True)}")
            lines += [f"{k}: {v}" for k, v in (web.headers if web else ())]
            cached = self._head = (now, web, ("\r\n".join(lines) + "\r\n").encode("latin-1"))
        return cached[2]

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
