"""What every fake provider server shares: a loopback HTTP server, faults, a request log.

A fake provider (``openai.py``, ``anthropic.py``, ``xai.py``, ``ecb.py``) subclasses
:class:`FakeHTTPServer` and implements :meth:`FakeHTTPServer.answer` (route a request to a
JSON payload or raise :class:`ApiError`; an API that reads request bodies implements
:meth:`FakeHTTPServer.answer_with_body` instead), :meth:`FakeHTTPServer.error_body` (the
provider's error object) and :meth:`FakeHTTPServer.fault_error` (the error a status fault
answers).
The base class gives it:

* a ``ThreadingHTTPServer`` on ``127.0.0.1:0`` run in a daemon thread (context manager);
* scripted :class:`Fault` injection (429 + ``Retry-After``, 5xx, delays, truncated or raw
  bodies), consumed in order by requests whose target contains ``path_contains``;
* a log of every request (:attr:`FakeHTTPServer.requests`) for assertions;
* the helpers providers' wire formats need: exact-decimal JSON, query strings with array
  parameters, opaque page cursors, UTC-day buckets, group-by aggregation keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

DAY_SECONDS = 86_400
PAGE_PREFIX = "page_"

OrgT = TypeVar("OrgT")


class DayRow(Protocol):
    """A truth row of a fake org: whatever it holds, it belongs to one UTC day."""

    @property
    def day(self) -> date: ...


RowT = TypeVar("RowT", bound=DayRow)


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """An error the fake answers with its provider's error object (see ``error_body``)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers or {}


def bad_request(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param)


# --------------------------------------------------------------------------- wire helpers


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


def encode_cursor(start: int) -> str:
    """Opaque page cursor for a bucket start (``page_`` + base64, like the real APIs')."""
    return PAGE_PREFIX + base64.urlsafe_b64encode(struct.pack(">q", start)).decode()


def decode_cursor(cursor: str) -> int:
    if not cursor.startswith(PAGE_PREFIX):
        raise bad_request("Invalid page cursor.", "page")
    try:
        raw = base64.urlsafe_b64decode(cursor[len(PAGE_PREFIX) :].encode())
        (start,) = struct.unpack(">q", raw)
    except (binascii.Error, struct.error, ValueError) as exc:
        raise bad_request("Invalid page cursor.", "page") from exc
    return int(start)


class Query:
    """The query string, with scalar and array parameter encodings."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self.pairs = list(pairs)

    def one(self, name: str) -> str | None:
        for key, value in self.pairs:
            if key == name:
                return value
        return None

    def many(self, name: str) -> list[str]:
        """``name[]=a&name[]=b``, ``name=a&name=b`` and ``name=a,b`` all give ``[a, b]``."""
        values: list[str] = []
        for key, value in self.pairs:
            if key in (name, f"{name}[]"):
                values.extend(part.strip() for part in value.split(",") if part.strip())
        return values

    def integer(self, name: str, default: int | None, low: int, high: int) -> int:
        raw = self.one(name)
        if raw is None or raw == "":
            if default is None:
                raise bad_request(f"Missing required parameter: '{name}'.", name)
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise bad_request(f"Invalid '{name}': expected an integer, got {raw!r}.", name) from exc
        if not low <= value <= high:
            raise bad_request(f"Invalid '{name}': {value} is not between {low} and {high}.", name)
        return value

    def boolean(self, name: str) -> bool | None:
        raw = self.one(name)
        if raw is None or raw == "":
            return None
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise bad_request(f"Invalid '{name}': expected true or false, got {raw!r}.", name)


def scale_int(value: int, factor: Decimal) -> int:
    """A count revised by ``factor``, rounded half-even (for ``scale_day`` revisions)."""
    return int((Decimal(value) * factor).to_integral_value(rounding=ROUND_HALF_EVEN))


def group_by(query: Query, allowed: tuple[str, ...]) -> set[str]:
    """The requested ``group_by`` dimensions; 400 for one the endpoint does not know."""
    values = query.many("group_by")
    for value in values:
        if value not in allowed:
            raise bad_request(
                f"Invalid group_by value {value!r}; allowed: {', '.join(allowed)}.", "group_by"
            )
    return set(values)


def filters(query: Query, specs: Iterable[tuple[str, str]]) -> dict[str, set[str | None]]:
    """``{row attribute: allowed values}`` from filter parameters ``(param, attribute)``."""
    return {attr: set(values) for param, attr in specs if (values := query.many(param))}


def matches(row: object, wanted: dict[str, set[str | None]]) -> bool:
    return all(getattr(row, attr) in allowed for attr, allowed in wanted.items())


def sort_key(key: tuple[Any, ...]) -> tuple[tuple[bool, str], ...]:
    """Order aggregation keys that may hold ``None`` (nulls last)."""
    return tuple((value is None, str(value)) for value in key)


def by_day(rows: Iterable[RowT]) -> dict[date, list[RowT]]:
    """Rows grouped by their ``day``, in the order given."""
    out: dict[date, list[RowT]] = {}
    for row in rows:
        out.setdefault(row.day, []).append(row)
    return out


def day_start(day: date) -> int:
    """Unix seconds of a UTC day's midnight."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def day_end(day: date) -> int:
    return day_start(day + timedelta(days=1))


def bucket_day(ts: int) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


def next_midnight(ts: int) -> int:
    return (ts // DAY_SECONDS + 1) * DAY_SECONDS


def day_buckets(first: int, end: int) -> Iterator[tuple[int, int]]:
    """Bucket (start, end) pairs from ``first`` until ``end``; each ends at a UTC midnight."""
    start = first
    while start < end:
        stop = next_midnight(start)
        yield start, stop
        start = stop


def cut_page(first: int, end: int, limit: int) -> tuple[list[tuple[int, int]], int | None]:
    """The day buckets of one page (at most ``limit``) and the start of the next page."""
    page: list[tuple[int, int]] = []
    for start, stop in day_buckets(first, end):
        if len(page) == limit:
            return page, start
        page.append((start, stop))
    return page, None


def page_start(query: Query, start: int, end: int) -> int:
    """Where a bucket page begins: ``start``, or the bucket the ``page`` cursor names."""
    page = query.one("page")
    if not page:
        return start
    first = decode_cursor(page)
    if not (start <= first < end and (first == start or first % DAY_SECONDS == 0)):
        raise bad_request("Invalid page cursor for this query.", "page")
    return first


def list_page(
    items: list[dict[str, Any]], query: Query, after_param: str, limits: tuple[int, int, int]
) -> dict[str, Any]:
    """A list page with ``<after_param>=<id>`` paging: data, first_id, last_id, has_more."""
    limit = query.integer("limit", *limits)
    after = query.one(after_param)
    offset = 0
    if after:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise bad_request(f"Invalid '{after_param}': no object with id {after!r}.", after_param)
        offset = ids.index(after) + 1
    page = items[offset : offset + limit]
    return {
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": offset + limit < len(items),
    }


# --------------------------------------------------------------------------- server


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


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeHTTPServer[Any]

    def __init__(self, address: tuple[str, int], fake: FakeHTTPServer[Any]) -> None:
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
    server_version = "FakeProvider/1.0"
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
        """Quiet: tests and the demo read :attr:`FakeHTTPServer.requests` instead."""


class FakeHTTPServer(Generic[OrgT]):
    """Serves a fake organisation over HTTP on loopback (``127.0.0.1`` by default).

    Use as a context manager; point clients at :attr:`base_url`. ``now`` (UTC) is the
    clock a subclass uses for defaults such as an omitted end time.
    """

    name: str = "fake-provider"  # thread name
    path_prefix: str = ""  # appended to the origin in :attr:`base_url`, e.g. "/v1"

    def __init__(
        self,
        org: OrgT,
        host: str = "127.0.0.1",
        port: int = 0,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self._org = org
        self.host = host
        self._requested_port = port
        self.now = now or _utc_now
        self.faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- what a provider's fake implements

    def answer(
        self, method: str, path: str, query: Query, headers: dict[str, str]
    ) -> dict[str, Any]:
        """The JSON payload of a 200 answer; raise :class:`ApiError` for an error answer."""
        raise NotImplementedError

    def answer_with_body(
        self, method: str, path: str, query: Query, headers: dict[str, str], body: bytes
    ) -> dict[str, Any]:
        """Like :meth:`answer`, for APIs that read the request body (JSON POST queries).

        The default ignores the body and calls :meth:`answer`.
        """
        return self.answer(method, path, query, headers)

    def error_body(self, err: ApiError) -> dict[str, Any]:
        """The provider's error object for ``err``."""
        raise NotImplementedError

    def fault_error(self, status: int) -> ApiError:
        """The error a status :class:`Fault` answers (type and message per provider)."""
        raise NotImplementedError

    # -- lifecycle

    def start(self) -> Self:
        if self._httpd is not None:
            raise RuntimeError("server already started")
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.name,
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
        return f"http://{host}:{self.port}{self.path_prefix}"

    # -- state shared with tests

    @property
    def org(self) -> OrgT:
        return self._org

    @org.setter
    def org(self, org: OrgT) -> None:
        with self.lock:
            self._org = org

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
                error = self.fault_error(fault.status)
                if fault.retry_after is not None:
                    error.headers["Retry-After"] = fault.retry_after
                return self.error_response(error)
            if fault.body is not None:
                return Response(200, fault.body, {"Content-Type": "application/json"})
        response = self._dispatch(method, parts.path, Query(query), headers, body)
        if fault is not None and fault.truncate:
            response = replace(response, status=200, body=response.body[: len(response.body) // 2])
        return response

    def error_response(self, err: ApiError) -> Response:
        return json_response(err.status, self.error_body(err), err.headers)

    def _dispatch(
        self, method: str, path: str, query: Query, headers: dict[str, str], body: bytes
    ) -> Response:
        try:
            with self.lock:
                payload = self.answer_with_body(method, path, query, headers, body)
                return json_response(200, payload)
        except ApiError as err:
            return self.error_response(err)

    def _now(self) -> datetime:
        now = self.now()
        return now if now.tzinfo is not None else now.replace(tzinfo=UTC)
