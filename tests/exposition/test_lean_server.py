"""The lean scrape path: request headers read without the email parser (same limits and
errors as ``http.server``), pre-built heads, keep-alive, HEAD, sendfile for large bodies
kept in files (never through TLS)."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from exporter.exposition import VARIANTS, Rendered
from exporter.server import ONE_WRITE, MetricsServer
from exporter.server_loop import LoopServer
from exporter.serving import Published
from exporter.snapshot import ProviderHealth
from exporter.webconfig import load
from tests.exposition.certs import make_pki
from tests.exposition.test_server import _Source


@pytest.fixture
def server(server_type: type[MetricsServer]) -> Iterator[MetricsServer]:
    s = server_type(("127.0.0.1", 0))
    s.source = _Source()
    s.start()
    yield s
    s.stop()


def _exchange(port: int, *requests: bytes) -> bytes:
    """Send ``requests`` on one connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for r in requests:
            s.sendall(r)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_keep_alive_answers_every_request_on_one_connection(server: MetricsServer) -> None:
    rendered = server.source.rendered  # type: ignore[union-attr]
    assert isinstance(rendered, Rendered)
    get = b"GET /metrics HTTP/1.1\r\nHost: x\r\naccept-ENCODING: gzip\r\n\r\n"
    last = b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    raw = _exchange(server.port, get, get, last)
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert raw.count(b"Content-Encoding: gzip\r\n") == 2  # the header name in any case
    assert raw.count(rendered.text_gzip) == 2 and raw.endswith(b"Healthy.\n")


def test_http_1_0_closes_unless_keep_alive_and_the_first_repeated_header_wins(
    server: MetricsServer,
) -> None:
    rendered = server.source.rendered  # type: ignore[union-attr]
    assert isinstance(rendered, Rendered)
    raw = _exchange(
        server.port,
        b"GET /metrics HTTP/1.0\r\nAccept: application/openmetrics-text; version=1.0.0\r\n"
        b"Accept: text/plain\r\n\r\n",
        b"GET /-/healthy HTTP/1.0\r\n\r\n",  # never answered: the connection is closed
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Content-Type: application/openmetrics-text" in head
    assert body == rendered.openmetrics and raw.count(b"HTTP/1.1 200") == 1


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", b"431"),
        (b"GET /metrics HTTP/1.1\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n", b"431"),
        (b"GET /metrics HTTP/x.1\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/2.0\r\n\r\n", b"505"),
        (b"GET /metrics HTTP/1.1 extra\r\n\r\n", b"400"),
        (b"POST /metrics\r\n\r\n", b"400"),
        (b"BREW /metrics HTTP/1.1\r\n\r\n", b"501"),
    ],
)
def test_malformed_requests_get_the_errors_http_server_gives(
    server: MetricsServer, request_bytes: bytes, status: bytes
) -> None:
    assert b"<p>Error code: " + status + b"</p>" in _exchange(server.port, request_bytes)


def test_head_has_the_length_and_no_body(server: MetricsServer) -> None:
    rendered = server.source.rendered  # type: ignore[union-attr]
    assert isinstance(rendered, Rendered)
    raw = _exchange(server.port, b"HEAD /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert raw.endswith(b"\r\n\r\n")
    assert f"Content-Length: {len(rendered.text)}\r\n".encode() in raw
    assert b"Date: " in raw and b"Server: ai-cost-exporter/" in raw


def _published(bodies: tuple[bytes, ...]) -> Published:
    fds = []
    for body in bodies:
        fd = os.memfd_create("test-metrics")
        os.write(fd, body)
        fds.append(fd)
    return Published.from_fds(fds, [len(b) for b in bodies], mapped=True)


class _FileSource:
    def __init__(self, bodies: tuple[bytes, ...]) -> None:
        self.rendered = _published(bodies)

    def health(self) -> list[ProviderHealth]:
        return []


BIG = tuple(bytes([65 + i]) * (3 * ONE_WRITE) + b"\n" for i in range(len(VARIANTS)))


@pytest.fixture
def sendfiles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts of bytes sent with socket.sendfile, by any thread."""
    sent: list[int] = []
    real = socket.socket.sendfile

    def counting(self: socket.socket, file: Any, offset: int = 0, count: int | None = None) -> int:
        n = real(self, file, offset, count)
        sent.append(n)
        return n

    monkeypatch.setattr(socket.socket, "sendfile", counting)
    return sent


def test_sendfile_only_when_enabled_and_only_for_large_bodies(
    server: MetricsServer, sendfiles: list[int]
) -> None:
    server.source = _FileSource(BIG)
    url = f"http://127.0.0.1:{server.port}/metrics"
    assert httpx.get(url, headers={"Accept-Encoding": "identity"}).content == BIG[0]
    assert sendfiles == []  # the default: one sendmsg from the mapping
    server.sendfile_min = ONE_WRITE
    base = f"http://127.0.0.1:{server.port}/metrics"
    with httpx.Client() as c:
        plain = c.get(base, headers={"Accept-Encoding": "identity"})
        om = c.get(base, headers={"Accept": "application/openmetrics-text", "Accept-Encoding": ""})
    assert plain.content == BIG[0] and om.content == BIG[2]
    if isinstance(server, LoopServer):  # its own sendfile: tests/exposition/test_loop_server.py
        assert sendfiles == []
        return
    assert sendfiles == [len(BIG[0]), len(BIG[2])]
    server.source = _FileSource((b"small\n",) * 4)
    assert httpx.get(base, headers={"Accept-Encoding": "identity"}).content == b"small\n"
    assert len(sendfiles) == 2  # small: with its head, from the mapping


def test_over_tls_a_body_in_a_file_is_sent_from_memory(
    tmp_path: Path, sendfiles: list[int], server_type: type[MetricsServer]
) -> None:
    pki = make_pki(tmp_path)
    (tmp_path / "web.yml").write_text(
        "tls_server_config: {cert_file: server.crt, key_file: server.key}\n"
    )
    s = server_type(("127.0.0.1", 0), web=load(tmp_path / "web.yml"))
    s.sendfile_min = 1
    s.source = _FileSource(BIG)
    s.start()
    try:
        tls = ssl.create_default_context(cafile=str(pki.ca))
        got = httpx.get(f"https://127.0.0.1:{s.port}/metrics", verify=tls, timeout=5,
                        headers={"Accept-Encoding": "identity"})  # fmt: skip
    finally:
        s.stop()
    assert got.status_code == 200 and got.content == BIG[0] and sendfiles == []


def test_web_config_headers_follow_a_reload(
    tmp_path: Path, server_type: type[MetricsServer]
) -> None:
    pki = make_pki(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text("http_server_config: {headers: {X-Frame-Options: deny}}\n")
    s = server_type(("127.0.0.1", 0), web=load(web))
    s.source = _Source()
    s.start()
    try:
        url = f"http://127.0.0.1:{s.port}/metrics"
        assert httpx.get(url).headers["x-frame-options"] == "deny"
        web.write_text("http_server_config: {headers: {X-Frame-Options: sameorigin}}\n")
        assert s.reload_web()
        assert httpx.get(url).headers["x-frame-options"] == "sameorigin"
    finally:
        s.stop()
    assert pki.ca.exists()


def test_a_client_resetting_its_connection_is_a_debug_line_not_a_traceback(
    server: MetricsServer, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="exporter.server")
    caplog.set_level(logging.DEBUG, logger="exporter.server_loop")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        s.sendall(b"GET /-/healthy HTTP/1.1\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    deadline = time.monotonic() + 10
    while "ended early" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "ended early: [Errno 104]" in caplog.text
    assert "Traceback" not in capfd.readouterr().err
