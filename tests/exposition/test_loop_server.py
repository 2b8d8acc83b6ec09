"""What the serving process's event loop (LoopServer) must do beyond MetricsServer's
behaviour (which tests/exposition, tests/ingest/test_http.py and tests/app run against both
servers): one thread serving many connections without one stalling the others, pipelining,
ingest POSTs off the loop, partial and trickled heads, timeouts, no fd leak, basic auth
and TLS switched by a web config reload."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from exporter.exposition import VARIANTS, Variant
from exporter.server import Reply, Source
from exporter.server_loop import LoopServer, head_end
from exporter.serving import Published
from exporter.snapshot import ProviderHealth
from tests.exposition.certs import bcrypt_hash, make_pki
from tests.exposition.test_server import _Source
from tests.exposition.test_web_server import serving

BIG = 32 * 1024 * 1024  # more than the kernel buffers of both ends hold (~10 MB here)


class _Big:
    """Bodies of ``BIG`` bytes (plain) and a small gzip one: the scrapes of the test."""

    def __init__(self) -> None:
        self.plain = bytes(range(256)) * (BIG // 256)
        self.variants = tuple(
            Variant.of(self.plain if not gz else b"small", om, gz) for om, gz in VARIANTS
        )

    def variant(self, accept: str, accept_encoding: str) -> Variant:
        return self.variants[1 if "gzip" in accept_encoding else 0]


class _Filed(_Big):
    """The same bodies in memfds (as the serving process keeps them)."""

    def __init__(self) -> None:
        super().__init__()
        bodies = [v.body for v in self.variants]
        fds = []
        for body in bodies:
            fd = os.memfd_create("test-metrics")
            os.write(fd, body)
            fds.append(fd)
        self.variants = Published.from_fds(fds, [len(b) for b in bodies], mapped=True).variants


class _BigSource:
    def __init__(self, filed: bool = False) -> None:
        self.rendered = _Filed() if filed else _Big()

    def health(self) -> list[ProviderHealth]:
        return []


@contextlib.contextmanager
def _serving(source: Source, web: Path | None = None) -> Iterator[LoopServer]:
    for server in serving(web, LoopServer, source):
        assert isinstance(server, LoopServer)
        yield server


@pytest.fixture
def loop() -> Iterator[LoopServer]:
    with _serving(_Source()) as server:
        yield server


def _connect(server: LoopServer, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def _read_response(s: socket.socket, buf: bytearray) -> tuple[bytes, bytes]:
    """One response (head, body) off ``s`` (by Content-Length); ``buf`` keeps the rest."""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        chunk = s.recv(65536)
        assert chunk, "closed before a response head"
        buf += chunk
    head = bytes(buf[:end])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    while len(buf) < end + 4 + length:
        chunk = s.recv(1 << 20)
        assert chunk, "closed mid-body"
        buf += chunk
    body = bytes(buf[end + 4 : end + 4 + length])
    del buf[: end + 4 + length]
    return head, body


def _closed_by_server(s: socket.socket) -> bool:
    try:
        return s.recv(65536) == b""
    except ConnectionResetError:
        return True


@pytest.fixture
def sendfiles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The byte counts of every os.sendfile call from now on."""
    sent: list[int] = []
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        n = real(out_fd, in_fd, offset, count)
        sent.append(n)
        return n

    monkeypatch.setattr(os, "sendfile", counting)
    return sent


@pytest.mark.parametrize("filed", [False, True], ids=["sendmsg", "sendfile"])
def test_a_slow_reader_of_a_large_body_does_not_hold_up_the_other_connections(
    filed: bool, sendfiles: list[int]
) -> None:
    source = _BigSource(filed)
    with _serving(source) as server:
        server.sendfile_max = None  # a 32 MB body by sendfile too (the default: sendmsg)
        slow = _connect(server)
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        first = slow.recv(1024)  # then it stops reading: the loop holds most of it unsent
        assert first.startswith(b"HTTP/1.1 200 OK")
        # 20 keep-alive clients, 5 scrapes each; the socket timeout fails a stalled one
        others = [_connect(server, timeout=10) for _ in range(20)]
        for _ in range(5):
            for s in others:
                s.sendall(b"GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n")
            for s in others:
                head, body = _read_response(s, bytearray())
                assert head.startswith(b"HTTP/1.1 200") and body == b"small"
        for s in others:
            s.close()
        buf = bytearray(first)  # the slow reader gets every byte, in order, in the end
        head, body = _read_response(slow, buf)
        assert f"Content-Length: {BIG}".encode() in head
        assert body == source.rendered.plain
        slow.close()
        # from the memfd by os.sendfile, resumed from its offset (the small gzip body: sendmsg)
        assert (sum(sendfiles), len(sendfiles) > 1) == ((BIG, True) if filed else (0, False))


def test_pipelined_requests_are_answered_in_order(loop: LoopServer) -> None:
    rendered = loop.source.rendered  # type: ignore[union-attr]
    with _connect(loop) as s:
        s.sendall(
            b"GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n"
            b"GET /-/ready HTTP/1.1\r\n\r\n"
            b"HEAD /metrics HTTP/1.1\r\n\r\n"
            b"GET /nope HTTP/1.1\r\n\r\n"
            b"GET /metrics HTTP/1.1\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
        )
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    heads = re.findall(rb"HTTP/1\.1 [^\r]*", raw)
    assert heads == [b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK",
                     b"HTTP/1.1 404 Not Found", b"HTTP/1.1 200 OK"]  # fmt: skip
    gz, ready = raw.index(rendered.text_gzip), raw.index(b"Ready.\n")
    assert gz < ready < raw.index(b"Not found.") < raw.rindex(rendered.text)
    assert raw.endswith(rendered.text)


def test_a_request_head_in_pieces_and_a_trickled_one(loop: LoopServer) -> None:
    request = b"GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
    with _connect(loop) as s:
        for i in range(len(request)):
            s.sendall(request[i : i + 1])
            time.sleep(0.002)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    assert raw.startswith(b"HTTP/1.1 200 OK") and raw.endswith(loop.source.rendered.text_gzip)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("request_bytes", "closes"),
    [
        (b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n", True),
        (b"GET /metrics HTTP/1.0\r\n\r\n", True),
        (b"GET /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", False),
        (b"GET /metrics HTTP/1.1\r\n\r\n", False),
        (b"GET /-/healthy HTTP/1.0\r\n\r\n", True),
    ],
)
def test_connection_close_and_http_1_0_end_the_connection(
    loop: LoopServer, request_bytes: bytes, closes: bool
) -> None:
    with _connect(loop, timeout=2) as s:
        s.sendall(request_bytes)
        head, _ = _read_response(s, buf := bytearray())
        assert head.startswith(b"HTTP/1.1 200") and not buf
        if closes:
            assert _closed_by_server(s)
        else:  # still open: a second request is answered
            s.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n")
            assert _read_response(s, buf)[1] == b"Healthy.\n"


class _BlockingIngest:
    """An ingest whose handle() waits for ``release`` (the serving process's forwarding
    waits for the main process up to 60 s)."""

    paths = frozenset({"/api/v1/events"})
    max_body_bytes = 1 << 20

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.bodies: list[bytes] = []

    def authorize(self, path: str, authorization: str | None) -> Reply | None:
        return None if authorization == "Bearer t0ken" else (401, b"token\n", "text/plain", {})

    def refuse_size(self, path: str, length: int) -> Reply:
        return 413, b"too large\n", "text/plain", {}

    def handle(self, path: str, content_type: str, content_encoding: str, body: bytes) -> Reply:
        self.entered.set()
        assert self.release.wait(30)
        self.bodies.append(body)
        return 202, b"accepted\n", "text/plain", {}


def test_a_blocked_ingest_post_does_not_delay_scrapes_and_its_connection_lives_on(
    loop: LoopServer,
) -> None:
    ingest = _BlockingIngest()
    loop.ingest = ingest
    post = _connect(loop)
    body = b'{"id": "a"}\n' * 1000
    post.sendall(
        b"POST /api/v1/events HTTP/1.1\r\nAuthorization: Bearer t0ken\r\n"
        b"Content-Type: application/x-ndjson\r\nContent-Length: %d\r\n\r\n"
        % len(body)
        + body[:5000]
    )
    post.sendall(body[5000:] + b"GET /-/healthy HTTP/1.1\r\n\r\n")  # pipelined after it
    assert ingest.entered.wait(10)
    with httpx.Client(timeout=10) as c:  # the loop answers while the POST's call waits
        for _ in range(20):
            assert c.get(f"http://127.0.0.1:{loop.port}/metrics").status_code == 200
    assert not ingest.release.is_set() and ingest.bodies == []
    ingest.release.set()
    buf = bytearray()
    head, reply = _read_response(post, buf)
    assert head.startswith(b"HTTP/1.1 202") and reply == b"accepted\n"
    assert ingest.bodies == [body]
    assert _read_response(post, buf)[1] == b"Healthy.\n"  # back in the loop, in order
    post.close()


def test_an_ingest_post_with_100_continue_and_refusals_before_the_body(loop: LoopServer) -> None:
    ingest = _BlockingIngest()
    ingest.release.set()
    loop.ingest = ingest
    with _connect(loop) as s:
        s.sendall(
            b"POST /api/v1/events HTTP/1.1\r\nAuthorization: Bearer t0ken\r\n"
            b"Content-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        buf = bytearray()
        assert _read_response(s, buf)[0] == b"HTTP/1.1 100 Continue"
        s.sendall(b"[{}]")
        head, reply = _read_response(s, buf)
        assert head.startswith(b"HTTP/1.1 202") and reply == b"accepted\n"
        assert ingest.bodies == [b"[{}]"]
    with _connect(loop) as s:  # no token: refused before the body, and closed
        s.sendall(b"POST /api/v1/events HTTP/1.1\r\nContent-Length: 4000000\r\n\r\n")
        head, _ = _read_response(s, bytearray())
        assert head.startswith(b"HTTP/1.1 401") and b"Connection: close" in head
        assert _closed_by_server(s)
    with _connect(loop) as s:
        s.sendall(
            b"POST /api/v1/events HTTP/1.1\r\nAuthorization: Bearer t0ken\r\n"
            b"Content-Length: 4000000\r\n\r\n"
        )
        assert _read_response(s, bytearray())[0].startswith(b"HTTP/1.1 413")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_no_descriptor_is_left_after_many_connections(loop: LoopServer) -> None:
    before = _open_fds()
    for i in range(300):
        s = _connect(loop)
        if i % 3 == 0:  # answered, then the client leaves
            s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
        elif i % 3 == 1:  # leaves mid-head
            s.sendall(b"GET /metr")
        s.close()
    deadline = time.monotonic() + 20
    while _open_fds() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _open_fds() <= before


def test_idle_trickling_and_unread_connections_are_closed_after_their_timeouts() -> None:
    with _serving(_BigSource()) as server:
        server.idle_timeout = server.header_timeout = server.send_timeout = 0.3
        idle = _connect(server)
        idle.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n")
        assert _read_response(idle, bytearray())[1] == b"Healthy.\n"
        trickle = _connect(server)
        unread = _connect(server)
        unread.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        closed = False
        for _ in range(100):  # a byte every 50 ms: a complete head never comes
            try:
                trickle.sendall(b"X")
            except OSError:
                closed = True
                break
            time.sleep(0.05)
        assert closed or _closed_by_server(trickle)
        assert _closed_by_server(idle)
        # the server stopped sending: what arrives ends well before the 32 MB
        got = 0
        with contextlib.suppress(ConnectionResetError):  # EOF or RST: closed by the server
            while chunk := unread.recv(1 << 20):
                got += len(chunk)
        assert got < BIG
        for s in (idle, trickle, unread):
            s.close()
        with _connect(server) as s:  # and it still serves
            s.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n")
            assert _read_response(s, bytearray())[1] == b"Healthy.\n"


def test_basic_auth_in_the_loop_and_a_reload_that_changes_the_password(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(f"basic_auth_users:\n  prometheus: '{bcrypt_hash('s3cret')}'\n")
    with _serving(_Source(), web) as server:
        url = f"http://127.0.0.1:{server.port}"
        with httpx.Client(timeout=10) as c:
            assert c.get(url + "/metrics").status_code == 401
            assert c.get(url + "/metrics", auth=("prometheus", "wrong")).status_code == 401
            ok = c.get(url + "/metrics", auth=("prometheus", "s3cret"))
            assert ok.status_code == 200 and ok.content == server.source.rendered.text  # type: ignore[union-attr]
            assert c.get(url + "/-/healthy").status_code == 200
            assert c.get(url + "/-/ready").status_code == 401
            web.write_text(f"basic_auth_users:\n  prometheus: '{bcrypt_hash('n3w')}'\n")
            assert server.reload_web()
            # the same request bytes that passed before are refused now
            assert c.get(url + "/metrics", auth=("prometheus", "s3cret")).status_code == 401
            assert c.get(url + "/metrics", auth=("prometheus", "n3w")).status_code == 200


def test_a_reload_turns_tls_on_and_off_for_new_connections(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text("http_server_config: {headers: {X-Frame-Options: deny}}\n")
    with _serving(_Source(), web) as server:
        assert httpx.get(f"http://127.0.0.1:{server.port}/metrics").status_code == 200
        web.write_text("tls_server_config: {cert_file: server.crt, key_file: server.key}\n")
        assert server.reload_web() and server.scheme == "https"
        tls = ssl.create_default_context(cafile=str(pki.ca))
        got = httpx.get(f"https://127.0.0.1:{server.port}/metrics", verify=tls, timeout=10)
        assert got.status_code == 200 and got.content == server.source.rendered.text  # type: ignore[union-attr]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)
        web.write_text("http_server_config: {headers: {X-Frame-Options: deny}}\n")
        assert server.reload_web()
        plain = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10)
        assert plain.status_code == 200 and plain.headers["x-frame-options"] == "deny"


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET", 27),
        (b"GET / HTTP/1.1\nHost: x\n\nrest", 24),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", -1),
        (b"GET / HTTP/1.1\r\n\r\n", 18),
        (b"\r\nGET / HTTP/1.1\r\n\r\n", 2),
        (b"GET / HTTP/1.1\r\nA: b\n\r\n", 23),
    ],
)
def test_head_end_finds_the_empty_line_http_server_stops_at(data: bytes, end: int) -> None:
    assert head_end(data) == end


class _Broken:
    def variant(self, accept: str, accept_encoding: str) -> Variant:
        raise RuntimeError("a bug")


def test_a_failing_request_closes_its_connection_and_the_loop_goes_on(
    loop: LoopServer, caplog: pytest.LogCaptureFixture
) -> None:
    good = loop.source
    loop.source = _BigSource()
    loop.source.rendered = _Broken()  # type: ignore[assignment]
    with _connect(loop) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        assert _closed_by_server(s)
    assert "RuntimeError: a bug" in caplog.text
    loop.source = good
    assert httpx.get(f"http://127.0.0.1:{loop.port}/metrics", timeout=10).status_code == 200


@pytest.mark.parametrize(("most", "sent_by_file"), [(None, True), (BIG, False)])
def test_bodies_from_sendfile_max_on_go_out_by_sendmsg(
    most: int | None, sent_by_file: bool, sendfiles: list[int]
) -> None:
    """A filed body of sendfile_max bytes or more is sent from its mapping by sendmsg
    (measured faster than sendfile for large bodies on loopback); below, by sendfile."""
    source = _BigSource(True)
    with _serving(source) as server:
        server.sendfile_max = most
        s = _connect(server, timeout=30)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        _head, body = _read_response(s, bytearray())
        s.close()
    assert body == source.rendered.plain
    assert (sum(sendfiles) == BIG) is sent_by_file and (not sendfiles) is not sent_by_file


def test_a_connection_an_ingest_worker_hands_back_as_the_loop_stops_is_closed() -> None:
    """A worker that finished just before the stop puts its connection back for a loop
    that no longer takes it: the stop closes it (not left to the garbage collector)."""
    ingest = _BlockingIngest()
    ingest.release.set()
    with _serving(_Source()) as server:
        server.ingest = ingest
        server._take_back = lambda: None  # type: ignore[method-assign]  # the loop never does
        post = _connect(server)
        post.sendall(
            b"POST /api/v1/events HTTP/1.1\r\nAuthorization: Bearer t0ken\r\n"
            b"Content-Length: 4\r\n\r\n[{}]"
        )
        head, _body = _read_response(post, bytearray())
        assert head.startswith(b"HTTP/1.1 2")
        deadline = time.monotonic() + 10
        while server._returned.empty():  # handed back, never taken
            assert time.monotonic() < deadline, "the worker never handed it back"
            time.sleep(0.01)
    post.settimeout(5)
    assert _closed_by_server(post)  # the stop closed the server's end
    post.close()
