"""The serving process's HTTP server: one thread, an epoll loop over non-blocking sockets,
keep-alive, no thread per connection (:class:`LoopServer`).

It serves what :class:`~exporter.server.MetricsServer` serves, with the same answers:

* a well-formed ``GET``/``HEAD`` of ``/metrics`` (HTTP/1.0 or 1.1, no ``Expect``, basic
  auth passed if configured) is answered in the loop: the variant's pre-built head plus
  :meth:`~exporter.server.MetricsServer.common_head` and the body in one ``sendmsg``, or,
  for a body of :attr:`LoopServer.sendfile_min` or more that has a file (the serving
  process's memfds), the head then ``os.sendfile``; what the socket does not take at once
  is resumed (memoryview or file offsets) when it is writable again, so a slow reader of
  a large body holds its own connection only;
* every other request (``/``, ``/-/healthy``, ``/-/ready``, 401, 404, 400, 414, 431, 501,
  505, HTTP/0.9, ``Expect: 100-continue``) is answered by MetricsServer's own handler
  (:func:`~exporter.server.handle_one`) over an in-memory buffer, so codes, headers and
  bodies are the same code's;
* an ingest ``POST`` hands its connection to a small pool of worker threads
  (:data:`INGEST_WORKERS`): the handler there checks the token and the size before it
  reads the body, as in MetricsServer, and the call into the ingest (in the serving
  process a :class:`~exporter.serving.ForwardingIngest` that may wait up to 60 s) blocks
  that worker, never the loop; the connection comes back to the loop afterwards (with any
  pipelined bytes read past the request), woken through a socket pair;
* with a TLS web config each new connection goes to MetricsServer's thread per connection
  (handshake, then its handler): the loop is for plain HTTP. The web config is read per
  connection, so a SIGHUP reload that turns TLS on or off applies to new connections.

Pipelined requests are answered in order; while a response is unsent the connection is not
read (back-pressure). Timeouts (MetricsServer has none for plain HTTP; these are nginx's
defaults or longer): an idle keep-alive connection is closed after :data:`IDLE_TIMEOUT`, a
request whose head is not complete :data:`HEADER_TIMEOUT` after its first byte (slowloris),
a response that makes no progress for :data:`SEND_TIMEOUT`. Linux (epoll).
"""

from __future__ import annotations

import io
import logging
import os
import queue
import select
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from exporter.exposition import Body, Variant
from exporter.server import MAX_HEADERS, MAX_LINE, Headers, MetricsServer, add_header, handle_one
from exporter.webconfig import WebConfig

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 300.0  # seconds a keep-alive connection may wait between requests
HEADER_TIMEOUT = 60.0  # seconds from a request's first byte to the end of its head
SEND_TIMEOUT = 60.0  # seconds a response may make no progress (also: a POST's socket I/O)
INGEST_WORKERS = 4  # threads that run ingest POSTs
CLOSE_WAIT = 2.0  # seconds a stop waits for ingest workers whose sockets it shut down
RECV_SIZE = 65536
ACCEPTS_PER_EVENT = 64
SCRAPES_KEPT = 64  # distinct scrape request heads remembered (scrapers repeat theirs)

_IN = select.EPOLLIN
_OUT = select.EPOLLOUT
_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")
_METHODS = (b"GET", b"HEAD")

_Part = Body | memoryview  # a response part, or what is left of one
# (HEAD, close after it, Accept, Accept-Encoding) of a scrape's request head
_Scrape = tuple[bool, bool, str, str]


@dataclass(eq=False, slots=True)
class _FileBody:
    """A body to send from its variant's file (the memfd) by ``os.sendfile``, from
    ``offset``; the variant is held so its file stays open until the last byte."""

    variant: Variant
    fd: int
    offset: int
    end: int


@dataclass(eq=False, slots=True)
class _Conn:
    sock: socket.socket
    address: Any
    since: float  # start of the current wait (idle, head, or send progress)
    inbuf: bytes = b""  # read, not yet answered
    out: list[_Part] = field(default_factory=list)  # unsent response parts, in order
    file: _FileBody | None = None  # a body sent from its file after ``out``
    close_after: bool = False  # close once ``out`` is sent
    waiting: bool = False  # for writability (epoll: OUT instead of IN)


class _Capture:
    """The handler's connection and wfile when the loop runs it: what it writes is kept,
    in order, for the loop to send."""

    def __init__(self) -> None:
        self.parts: list[_Part] = []

    def write(self, data: bytes) -> int:
        self.parts.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def sendall(self, data: Body, flags: int = 0) -> None:
        self.parts.append(data)

    def sendmsg(self, buffers: list[_Part]) -> int:
        self.parts.extend(buffers)
        return sum(len(b) for b in buffers)

    def sendfile(self, file: BinaryIO, offset: int = 0, count: int | None = None) -> int:
        """The handler's sendfile (an odd scrape, e.g. HTTP/0.9): the bytes, read."""
        fd = file.fileno()
        data = os.pread(fd, os.fstat(fd).st_size - offset if count is None else count, offset)
        self.parts.append(data)
        return len(data)


class _Reader:
    """The handler's rfile in an ingest worker: the bytes the loop had read, then the
    (blocking) socket; what is read past the request stays in :attr:`rest`."""

    def __init__(self, sock: socket.socket, data: bytes) -> None:
        self.sock = sock
        self.rest = bytearray(data)

    def _more(self) -> bool:
        chunk = self.sock.recv(RECV_SIZE)
        self.rest += chunk
        return bool(chunk)

    def _take(self, n: int) -> bytes:
        taken = bytes(self.rest[:n])
        del self.rest[:n]
        return taken

    def readline(self, limit: int = -1) -> bytes:
        while True:
            i = self.rest.find(b"\n")
            if i >= 0 and (limit < 0 or i < limit):
                return self._take(i + 1)
            if 0 <= limit <= len(self.rest):
                return self._take(limit)
            if not self._more():
                return self._take(len(self.rest))

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self.rest) < size) and self._more():
            pass
        return self._take(len(self.rest) if size < 0 else size)


class _Writer:
    """The handler's wfile in an ingest worker (as ``socketserver`` writes: sendall)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> int:
        self.sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass


def head_end(data: bytes) -> int:
    """The offset just past the request head in ``data`` (request line and header lines up
    to the first empty line, LF or CRLF as ``http.server`` reads them), -1 if incomplete."""
    i = data.find(b"\n")
    if i < 0:
        return -1
    if i == 0 or (i == 1 and data[0] == 13):  # an empty request line: the handler closes
        return i + 1
    crlf, lf = data.find(b"\n\r\n", i), data.find(b"\n\n", i)
    if crlf < 0:
        return -1 if lf < 0 else lf + 2
    return crlf + 3 if lf < 0 or crlf < lf else lf + 2


def _over_limits(data: bytes) -> bool:
    """An incomplete head the handler refuses already: a line over MAX_LINE or more than
    MAX_HEADERS header lines (it answers 414 or 431 from what there is)."""
    return len(data) - data.rfind(b"\n") - 1 > MAX_LINE or data.count(b"\n") > MAX_HEADERS + 1


class LoopServer(MetricsServer):
    """:class:`~exporter.server.MetricsServer`'s endpoints from one event-loop thread (see
    the module docstring). ``source``, ``ingest`` and ``web`` are swapped as on
    MetricsServer; :attr:`sendfile_min` has its own default here."""

    request_queue_size = 1024  # accepting is cheap here: a larger backlog than MetricsServer
    # Bodies of at least sendfile_min and below sendfile_max bytes that have a file (the
    # serving process keeps its memfds) go out by os.sendfile: no copy on this side. A
    # measured trade on loopback (benchmarks/README.md, "scrape path"): 1.4x the req/s of
    # sendmsg for a 154 KiB body at 8 connections, slower at 36 KiB, and 1.5-2x slower
    # than one sendmsg from the mapping for bodies of 1.3 MiB and more; None: sendmsg for
    # every body (sendfile_max None: no upper bound).
    sendfile_min: int | None = 64 * 1024
    sendfile_max: int | None = 1024 * 1024
    idle_timeout = IDLE_TIMEOUT
    header_timeout = HEADER_TIMEOUT
    send_timeout = SEND_TIMEOUT

    def __init__(self, address: tuple[str, int], web: WebConfig | None = None) -> None:
        self._epoll = select.epoll()  # before the bind: server_close() on its error
        self._conns: dict[int, _Conn] = {}
        self._lent: dict[_Conn, Future[None]] = {}  # with an ingest worker
        self._returned: queue.SimpleQueue[tuple[_Conn, bytes | None]] = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._workers = ThreadPoolExecutor(INGEST_WORKERS, thread_name_prefix="ingest-http")
        self._running = threading.Event()
        self._stopped = threading.Event()
        self._stopping = False
        self._accepting = False
        self._scrapes: dict[bytes, _Scrape] = {}
        self._heads: dict[int, tuple[Variant, bytes, bytes]] = {}  # a variant's whole head
        self._now = time.monotonic()  # the loop's clock, read once per wake
        self._scrapes_web: WebConfig | None = web
        super().__init__(address, web)
        self.socket.setblocking(False)

    # ------------------------------------------------------------------ the loop

    def serve_forever(self, poll_interval: float = 1.0) -> None:
        """Run the loop until :meth:`shutdown` (``poll_interval``: the timeout sweep)."""
        listen, wake = self.socket.fileno(), self._wake_r.fileno()
        self._epoll.register(wake, _IN)
        self._listen(True)
        self._running.set()
        conns, poll = self._conns, self._epoll.poll
        sweep = time.monotonic() + poll_interval
        try:
            while not self._stopping:
                events = poll(poll_interval)
                self._now = time.monotonic()  # one clock reading per wake, for all of them
                for fd, _ in events:
                    conn = conns.get(fd)
                    if conn is None:
                        if fd == listen:
                            self._accept()
                        elif fd == wake:
                            self._take_back()
                        continue
                    try:
                        if conn.waiting:
                            self._flush(conn)
                        else:
                            self._read(conn)
                    except Exception:  # a bug must cost one connection, not the loop
                        log.exception("request from %s failed; connection closed", conn.address)
                        self._close(conn)
                now = time.monotonic()
                if now >= sweep:
                    self._sweep(now)
                    sweep = now + poll_interval
        finally:
            self._stopped.set()

    def _listen(self, on: bool) -> None:
        if on != self._accepting:
            fd = self.socket.fileno()
            if on:
                self._epoll.register(fd, _IN)
            else:
                self._epoll.unregister(fd)
            self._accepting = on

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_EVENT):
            try:
                sock, address = self.socket.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # EMFILE and the like: retried at the next sweep
                log.warning("cannot accept a connection (retrying in a second): %s", exc)
                self._listen(False)
                return
            web = self.web
            if web is not None and web.tls is not None:
                sock.setblocking(True)
                self.process_request(sock, address)  # MetricsServer's thread: TLS there
                continue
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(sock, address, time.monotonic())
            self._conns[sock.fileno()] = conn
            self._epoll.register(sock.fileno(), _IN)

    def _read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._ended(conn, exc)
            return
        if not data:
            self._close(conn)
            return
        if conn.inbuf:
            data = conn.inbuf + data
        else:
            conn.since = self._now  # a request begins: its head is timed from here
        self._serve(conn, data)

    def _serve(self, conn: _Conn, data: bytes) -> None:
        """Answer the complete requests at the start of ``data``, in order, until a
        response is left unsent, the connection is to close or is lent to a worker."""
        while data:
            end = head_end(data)
            if end < 0:
                if not _over_limits(data):
                    conn.inbuf = data
                    return
                end = len(data)
            head, data = data[:end], data[end:]
            if head.startswith(b"POST "):
                self._lend(conn, head + data)
                return
            parts, close = self._answer(conn, head)
            conn.close_after = close
            if not self._send(conn, parts):
                conn.inbuf = b"" if close else data
                return  # the rest when the socket is writable
            if close:
                self._close(conn, graceful=True)
                return
        conn.inbuf = b""
        conn.since = self._now

    def _answer(self, conn: _Conn, head: bytes) -> tuple[list[_Part], bool]:
        """The response to one request head, and whether to close after it."""
        source, web = self.source, self.web
        if web is not self._scrapes_web:  # the heads below passed this web config's auth
            self._scrapes.clear()
            self._scrapes_web = web
        scrape = self._scrapes.get(head)
        if scrape is None and source is not None:
            scrape = self._scrape(head, web)
        if scrape is None or source is None:
            capture = _Capture()  # everything else: MetricsServer's handler, in memory
            close = handle_one(self, capture, conn.address, io.BytesIO(head), capture)
            return capture.parts, close
        method_head, close, accept, accept_encoding = scrape
        v = source.rendered.variant(accept, accept_encoding)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %r 200", conn.address[0], head[: head.find(b"\n")].strip())
        common = self.common_head()  # the same bytes object for a second
        held = self._heads.get(id(v))  # holds v: its id is not reused while kept
        if held is not None and held[0] is v and held[1] is common:
            response = held[2]
        else:
            response = v.head + common + b"\r\n"
            if len(self._heads) >= 8:
                self._heads.clear()
            self._heads[id(v)] = (v, common, response)
        if method_head:
            return [response], close
        least, most, file = self.sendfile_min, self.sendfile_max, v.file
        size = len(v.body)
        if file is not None and least is not None and least <= size < (most or size + 1):
            conn.file = _FileBody(v, file.fileno(), 0, len(v.body))
            return [response], close
        return [response, v.body], close

    def _scrape(self, head: bytes, web: WebConfig | None) -> _Scrape | None:
        """What the loop needs of a well-formed GET or HEAD of /metrics (authorised if
        basic auth is on), None for any other request; remembered by its exact bytes
        (scrapers repeat theirs), at most :data:`SCRAPES_KEPT` of them per web config."""
        line_end = head.find(b"\n")
        words = head[:line_end].split()
        if not (
            len(words) == 3
            and words[0] in _METHODS
            and words[2] in _VERSIONS
            and (words[1] == b"/metrics" or words[1].startswith(b"/metrics?"))
            and len(head) <= MAX_LINE
        ):
            return None
        headers = Headers()
        lines = head[line_end + 1 :].split(b"\n")  # ends with the empty line and b""
        for line in lines:
            add_header(headers, line)
        auth = web.auth if web is not None else None
        if (
            len(lines) > MAX_HEADERS + 2
            or "expect" in headers
            or (auth is not None and not auth.check(headers.get("Authorization")))
        ):
            return None
        connection = (headers.get("Connection") or "").lower()
        if words[2] == b"HTTP/1.1":
            close = connection == "close"
        else:
            close = connection != "keep-alive"
        scrape = (
            words[0] == b"HEAD",
            close,
            headers.get("Accept") or "",
            headers.get("Accept-Encoding") or "",
        )
        if len(self._scrapes) >= SCRAPES_KEPT:
            self._scrapes.clear()
        self._scrapes[head] = scrape
        return scrape

    def _send(self, conn: _Conn, parts: list[_Part]) -> bool:
        """Send what the socket takes of ``parts`` and then of ``conn.file``; True if all
        of it went, else the rest is kept (``conn.out``, the file's offset) and the
        connection waits for writability (not read meanwhile)."""
        body = conn.file
        if parts:
            try:  # the head waits for the file's first bytes (MSG_MORE)
                sent = conn.sock.sendmsg(parts, (), socket.MSG_MORE if body else 0)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                self._ended(conn, exc)
                return False
            for i, part in enumerate(parts):
                if sent < len(part):
                    self._wait(conn, [memoryview(part)[sent:], *parts[i + 1 :]])
                    return False
                sent -= len(part)
        if body is not None:
            try:
                body.offset += os.sendfile(
                    conn.sock.fileno(), body.fd, body.offset, body.end - body.offset
                )
            except BlockingIOError:
                pass
            except OSError as exc:
                self._ended(conn, exc)
                return False
            if body.offset < body.end:
                self._wait(conn, [])
                return False
            conn.file = None
        return True

    def _wait(self, conn: _Conn, rest: list[_Part]) -> None:
        """Keep ``rest`` and wait until the socket is writable."""
        if not conn.waiting:
            self._epoll.modify(conn.sock.fileno(), _OUT)
            conn.waiting = True
        conn.out = rest
        conn.since = time.monotonic()

    def _flush(self, conn: _Conn) -> None:
        parts, conn.out = conn.out, []
        if not self._send(conn, parts):
            return
        if conn.sock.fileno() < 0:
            return
        if conn.close_after:
            self._close(conn, graceful=True)
            return
        self._epoll.modify(conn.sock.fileno(), _IN)
        conn.waiting = False
        data, conn.inbuf = conn.inbuf, b""
        conn.since = time.monotonic()
        self._serve(conn, data)

    # ------------------------------------------------------------------ ingest workers

    def _lend(self, conn: _Conn, data: bytes) -> None:
        """Hand ``conn`` (its request ``data`` read so far) to an ingest worker."""
        del self._conns[conn.sock.fileno()]
        self._epoll.unregister(conn.sock.fileno())
        conn.sock.settimeout(self.send_timeout)
        self._lent[conn] = self._workers.submit(self._post, conn, data)

    def _post(self, conn: _Conn, data: bytes) -> None:
        """In a worker: the handler reads and answers the POST on the blocking socket."""
        reader = _Reader(conn.sock, data)
        rest: bytes | None = None
        try:
            if not handle_one(self, conn.sock, conn.address, reader, _Writer(conn.sock)):
                rest = bytes(reader.rest)
        except OSError as exc:
            log.debug("connection from %s ended early: %s", conn.address, exc)
        except Exception:
            log.exception("ingest request from %s failed", conn.address)
        if self._stopping:  # the loop is gone or going: nobody takes it back
            conn.sock.close()
            return
        self._returned.put((conn, rest))
        with suppress(OSError):
            self._wake_w.send(b"\0")

    def _take_back(self) -> None:
        with suppress(OSError):
            while self._wake_r.recv(4096):
                pass
        while True:
            try:
                conn, rest = self._returned.get_nowait()
            except queue.Empty:
                return
            self._lent.pop(conn, None)
            if rest is None or self._stopping:
                self._close(conn, graceful=True)
                continue
            conn.sock.setblocking(False)
            self._conns[conn.sock.fileno()] = conn
            self._epoll.register(conn.sock.fileno(), _IN)
            conn.since = time.monotonic()
            try:
                if rest:
                    self._serve(conn, rest)
            except Exception:
                log.exception("request from %s failed; connection closed", conn.address)
                self._close(conn)

    # ------------------------------------------------------------------ closing

    def _sweep(self, now: float) -> None:
        """Close connections past their timeout; resume accepting after an error."""
        self._listen(True)
        for conn in list(self._conns.values()):
            if conn.waiting:
                limit, what = self.send_timeout, "response not read"
            elif conn.inbuf:
                limit, what = self.header_timeout, "request head incomplete"
            else:
                limit, what = self.idle_timeout, "idle"
            if now - conn.since > limit:
                log.debug("closing the connection from %s: %s for %.0f s", conn.address,
                          what, limit)  # fmt: skip
                self._close(conn)

    def _ended(self, conn: _Conn, exc: OSError) -> None:
        log.debug("connection from %s ended early: %s", conn.address, exc)
        self._close(conn)

    def _close(self, conn: _Conn, *, graceful: bool = False) -> None:
        fd = conn.sock.fileno()
        if fd >= 0 and self._conns.pop(fd, None) is not None:
            with suppress(OSError, ValueError):
                self._epoll.unregister(fd)
        if graceful:  # as socketserver ends a connection: FIN after the last byte
            with suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
        conn.sock.close()
        conn.out, conn.inbuf, conn.file = [], b"", None

    def shutdown(self) -> None:
        """Stop the loop (from another thread) and wait for it."""
        if not self._running.is_set():
            return
        self._stopping = True
        with suppress(OSError):
            self._wake_w.send(b"\0")
        self._stopped.wait()

    def server_close(self) -> None:
        super().server_close()
        for conn in list(self._conns.values()):
            self._close(conn)
        running = []
        for conn, future in list(self._lent.items()):
            if future.cancel():  # not started
                conn.sock.close()
                continue
            with suppress(OSError):  # a worker blocked on its socket returns (and closes it)
                conn.sock.shutdown(socket.SHUT_RDWR)
            running.append(future)
        # A worker that finished just before the stop handed its connection back to a loop
        # that no longer takes it: wait briefly for the running ones, then close every
        # connection that came back or whose worker is done (closing twice is harmless).
        wait(running, timeout=CLOSE_WAIT)
        while True:
            try:
                conn, _rest = self._returned.get_nowait()
            except queue.Empty:
                break
            conn.sock.close()
        for conn, future in self._lent.items():
            if future.done():
                conn.sock.close()
        self._workers.shutdown(wait=False, cancel_futures=True)
        self._epoll.close()
        self._wake_r.close()
        self._wake_w.close()
