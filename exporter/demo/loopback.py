"""What every fake provider server shares: loopback HTTP, scripted faults, a request log.

A fake subclasses :class:`LoopbackServer` and implements :meth:`LoopbackServer._answer`
(and :meth:`LoopbackServer._fault_error`, to answer injected errors in its provider's error
format). The HTTP layer only writes what :meth:`LoopbackServer.handle` returns, so tests can
also call ``handle`` directly. JSON is written with :func:`dump_json`, which keeps the exact
digits of :class:`~decimal.Decimal` amounts.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit


def decimal_text(value: Decimal) -> str:
    """The JSON number text of a Decimal with its exact digits (never via float)."""
    if not value.is_finite():
        raise ValueError(f"cannot send {value} as JSON")
    return format(value, "f")


def dump_json(value: Any) -> str:
    """Serialise JSON, writing Decimals as numbers with their exact digits."""
    if value is None or isinstance(value, bool | int | float | str):
        return json.dumps(value)
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}: {dump_json(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dump_json(v) for v in value) + "]"
    raise TypeError(f"cannot serialise {type(value).__name__}")


@dataclass
class Fault:
    """A scripted misbehaviour, consumed by requests whose path contains ``path_contains``.

    ``path_contains`` is matched against the raw request target (path and query string).
    ``delay`` is applied first; then ``status`` (error object, ``Retry-After`` when set),
    else a raw ``body`` with status 200, else the normal answer (cut in half when
    ``truncate``).
    """

    path_contains: str = ""
    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0
    truncate: bool = False
    body: bytes | None = None
    times: int = 1


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it."""

    method: str
    path: str  # without the query string
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""

    def json(self) -> Any:
        """The request body parsed as JSON (None when empty or not JSON)."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = dump_json(payload).encode()
    return Response(status, body, {"Content-Type": "application/json", **(headers or {})})


def _utc_now() -> datetime:
    return datetime.now(UTC)


def retry_after_headers(fault: Fault) -> dict[str, str]:
    """The ``Retry-After`` header an injected error carries, if any."""
    return {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}


Truth = TypeVar("Truth")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: LoopbackServer[Any]

    def __init__(self, address: tuple[str, int], fake: LoopbackServer[Any]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.fake = fake
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: clients of the fake hang up on purpose (timeouts, truncation)."""

    def close_connections(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _HTTPServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def version_string(self) -> str:
        return self.server.fake.server_version

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.server.fake.handle(method, self.path, headers, body)
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests and the demo read :attr:`LoopbackServer.requests` instead."""


class LoopbackServer(Generic[Truth]):
    """A fake API serving ``truth`` (the fake organisation) on loopback (``127.0.0.1`` by
    default). Use as a context manager.

    ``now`` (UTC) is the fake's clock. :attr:`base_path` is appended to :attr:`base_url`
    (e.g. ``/v1`` for OpenAI, whose paths start below it). Tests swap :attr:`truth` (or
    edit it under :attr:`lock`) to simulate revisions.
    """

    server_version: ClassVar[str] = "Fake/1.0"
    base_path: ClassVar[str] = ""

    def __init__(
        self,
        truth: Truth,
        host: str = "127.0.0.1",
        port: int = 0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self._truth = truth
        self.lock = threading.RLock()
        self.host = host
        self._requested_port = port
        self.now = now or _utc_now
        self.faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> Self:
        if self._httpd is not None:
            raise RuntimeError("server already started")
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()  # wakes requests sleeping in a delay fault
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.base_path}"

    # -- state shared with tests

    @property
    def truth(self) -> Truth:
        return self._truth

    @truth.setter
    def truth(self, truth: Truth) -> None:
        with self.lock:
            self._truth = truth

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests seen so far, oldest first."""
        with self.lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self.lock:
            self._requests.clear()

    def inject(self, fault: Fault) -> None:
        with self.lock:
            self.faults.append(fault)

    def _take_fault(self, target: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path_contains in target:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _now(self) -> datetime:
        now = self.now()
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)

    # -- request handling

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> Response:
        """Answer one request (the HTTP layer only writes what this returns)."""
        parts = urlsplit(target)
        query = parse_qsl(parts.query, keep_blank_values=True)
        with self.lock:
            self._requests.append(RecordedRequest(method, parts.path, query, dict(headers), body))
        fault = self._take_fault(target)
        if fault is not None:
            if fault.delay > 0:
                self._stopping.wait(fault.delay)
            if fault.status is not None:
                return self._fault_error(fault)
            if fault.body is not None:
                return Response(200, fault.body, {"Content-Type": "application/json"})
        response = self._answer(method, parts.path, query, headers, body)
        if fault is not None and fault.truncate:
            response = replace(response, status=200, body=response.body[: len(response.body) // 2])
        return response

    def _fault_error(self, fault: Fault) -> Response:
        """An injected error status, in the provider's error format."""
        raise NotImplementedError

    def _answer(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        body: bytes,
    ) -> Response:
        """The normal answer to a request."""
        raise NotImplementedError
