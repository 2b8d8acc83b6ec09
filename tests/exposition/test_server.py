"""HTTP endpoints over real loopback HTTP."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

import httpx
import pytest

from exporter.exposition import Rendered, render
from exporter.server import MetricsServer
from exporter.snapshot import ProviderHealth
from tests.exposition.test_exposition import seeded_snapshot


class _Source:
    def __init__(self) -> None:
        self.rendered: Rendered = render(seeded_snapshot())
        self.reads = 0

    def health(self) -> list[ProviderHealth]:
        return seeded_snapshot().health


@pytest.fixture
def server(server_type: type[MetricsServer]) -> Iterator[MetricsServer]:
    s = server_type(("127.0.0.1", 0))
    s.start()
    yield s
    s.stop()


def test_not_ready_until_the_store_is_loaded(server: MetricsServer) -> None:
    base = f"http://127.0.0.1:{server.port}"
    assert httpx.get(base + "/-/healthy").status_code == 200
    assert httpx.get(base + "/-/ready").status_code == 503
    assert httpx.get(base + "/metrics").status_code == 503
    server.source = _Source()
    assert httpx.get(base + "/-/ready").status_code == 200


def test_metrics_serves_the_cached_bytes_in_each_format(server: MetricsServer) -> None:
    source = _Source()
    server.source = source
    base = f"http://127.0.0.1:{server.port}"
    plain = httpx.get(base + "/metrics", headers={"Accept-Encoding": "identity"})
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert plain.content == source.rendered.text
    with httpx.Client() as client:
        raw = client.get(base + "/metrics", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.content == source.rendered.text  # httpx decoded it
    om = httpx.get(
        base + "/metrics",
        headers={"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": ""},
    )
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.content == source.rendered.openmetrics
    assert gzip.decompress(source.rendered.text_gzip) == source.rendered.text


def test_landing_page_links_and_status(server: MetricsServer) -> None:
    server.source = _Source()
    page = httpx.get(f"http://127.0.0.1:{server.port}/").text
    assert "<a href='/metrics'>/metrics</a>" in page
    assert "<td>openai</td><td>main</td><td>up</td><td>2026-03-02 00:00:00 UTC</td>" in page
    assert httpx.get(f"http://127.0.0.1:{server.port}/nope").status_code == 404
