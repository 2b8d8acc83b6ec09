"""The serving process of ``serve``/``demo``: it owns the socket, serves what the main
process publishes, forwards ingest POSTs, and never outlives the main process."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from exporter.exposition import render
from exporter.serving import ServingProcess
from tests.exposition.test_exposition import seeded_snapshot
from tests.exposition.test_web_server import _BearerIngest


@pytest.fixture
def serving() -> Iterator[ServingProcess]:
    s = ServingProcess(("127.0.0.1", 0))
    s.start()
    yield s
    s.stop()


def _wait(predicate: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_ready_from_the_first_publish_and_every_variant_served(serving: ServingProcess) -> None:
    base = f"http://127.0.0.1:{serving.port}"
    assert serving.pid != os.getpid()
    assert httpx.get(base + "/-/healthy").status_code == 200
    assert httpx.get(base + "/-/ready").status_code == 503
    assert httpx.get(base + "/metrics").status_code == 503
    snapshot = seeded_snapshot()
    rendered = render(snapshot)
    serving.publish(rendered, snapshot.health)
    _wait(lambda: httpx.get(base + "/-/ready").status_code == 200, "ready")
    with httpx.Client() as c:
        plain = c.get(base + "/metrics", headers={"Accept-Encoding": "identity"})
        gz = c.get(base + "/metrics", headers={"Accept-Encoding": "gzip"})
        om = c.get(
            base + "/metrics",
            headers={"Accept": "application/openmetrics-text", "Accept-Encoding": ""},
        )
        page = c.get(base + "/").text
    assert plain.content == rendered.text and plain.headers["content-type"].startswith("text/plain")
    assert gz.headers["content-encoding"] == "gzip" and gz.content == rendered.text
    assert om.content == rendered.openmetrics
    assert "<td>openai</td><td>main</td><td>up</td><td>2026-03-02 00:00:00 UTC</td>" in page

    newer = replace(render(seeded_snapshot()), text_parts=(b"# newer\n",))  # same shape
    serving.publish(newer, [])
    _wait(lambda: httpx.get(base + "/metrics", headers={"Accept-Encoding": "identity"}).content
          == b"# newer\n", "the new bodies")  # fmt: skip
    assert "<td>openai</td>" not in httpx.get(base + "/").text  # health swapped with them


def test_ingest_posts_are_answered_by_the_main_process(serving: ServingProcess) -> None:
    base = f"http://127.0.0.1:{serving.port}/api/v1/events"
    assert httpx.post(base, content=b"[]").status_code == 404  # not attached yet
    serving.attach_ingest(_BearerIngest())
    ok = httpx.post(base, content=b"[1]", headers={"Authorization": "Bearer t0ken"})
    assert ok.status_code == 202 and ok.content == b"accepted [1]"
    refused = httpx.post(base, content=b"[]", headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401 and refused.headers["connection"] == "close"
    big = httpx.post(base, content=b"x" * 2000, headers={"Authorization": "Bearer t0ken"})
    assert big.status_code == 413 and big.content == b"too large\n"


def test_a_port_in_use_is_the_bind_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        s = ServingProcess(("127.0.0.1", taken.getsockname()[1]))
        with pytest.raises(OSError) as err:
            s.start()
    assert err.value.errno == errno.EADDRINUSE
    assert not s._process.is_alive()


def test_stop_ends_the_child_and_frees_the_port(serving: ServingProcess) -> None:
    port, pid = serving.port, serving.pid
    serving.stop()
    assert not serving.alive() and pid is not None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/-/healthy", timeout=2)


PARENT = textwrap.dedent(
    """
    import sys, time
    from exporter.serving import ServingProcess
    s = ServingProcess(("127.0.0.1", 0))
    s.start()
    print(s.pid, s.port, flush=True)
    time.sleep(600)
    """
)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:  # reaped by init eventually: a zombie is gone
        return f.read().split(")")[-1].split()[0] == "Z"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_the_child_dies_with_its_parent(sig: signal.Signals) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True
    ) as parent:
        try:
            assert parent.stdout is not None
            pid, port = (int(x) for x in parent.stdout.readline().split())
            assert httpx.get(f"http://127.0.0.1:{port}/-/healthy", timeout=5).status_code == 200
            parent.send_signal(sig)
            parent.wait(30)
            _wait(lambda: _gone(pid), "the serving process to exit")
        finally:
            parent.kill()


def test_a_serving_process_that_dies_is_reported_and_stops_the_exporter() -> None:
    stopped = threading.Event()
    s = ServingProcess(("127.0.0.1", 0), on_exit=stopped.set)
    s.start()
    try:
        assert s.pid is not None
        os.kill(s.pid, signal.SIGKILL)
        assert stopped.wait(30) and s.failed
    finally:
        s.stop()
    terminated = threading.Event()
    t = ServingProcess(("127.0.0.1", 0), on_exit=terminated.set)
    t.start()
    try:
        assert t.pid is not None
        os.kill(t.pid, signal.SIGTERM)  # a service manager stopping the whole group
        assert terminated.wait(30) and not t.failed
    finally:
        t.stop()
    clean = ServingProcess(("127.0.0.1", 0), on_exit=stopped.clear)
    clean.start()
    clean.stop()
    assert stopped.is_set() and not clean.failed  # a requested stop calls nothing
