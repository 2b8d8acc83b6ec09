"""--web.config.file end to end: TLS, client certificates, basic auth and headers over real
loopback connections, with httpx and curl as the clients; reload keeps a bad file out."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from exporter.server import MetricsServer, Reply, Source
from exporter.webconfig import load
from tests.exposition.certs import Pki, bcrypt_hash, make_pki
from tests.exposition.test_server import _Source


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


def write_web(pki: Pki, body: str) -> Path:
    path = pki.ca.parent / "web.yml"
    path.write_text(body)
    return path


TLS_AUTH = """
tls_server_config:
  cert_file: server.crt
  key_file: server.key
http_server_config:
  headers:
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
basic_auth_users:
  prometheus: '{hash}'
"""


def serving(
    web_file: Path | None,
    server_type: type[MetricsServer] = MetricsServer,
    source: Source | None = None,
) -> Iterator[MetricsServer]:
    server = server_type(("127.0.0.1", 0), web=load(web_file) if web_file else None)
    server.source = source or _Source()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tls_server(pki: Pki, server_type: type[MetricsServer]) -> Iterator[MetricsServer]:
    web = write_web(pki, TLS_AUTH.format(hash=bcrypt_hash("s3cret")))
    yield from serving(web, server_type)


def client(pki: Pki, cert: tuple[Path, Path] | None = None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    return httpx.Client(verify=context, timeout=5)


def test_metrics_over_tls_need_the_password(pki: Pki, tls_server: MetricsServer) -> None:
    base = f"https://127.0.0.1:{tls_server.port}"
    assert tls_server.source is not None
    with client(pki) as c:
        ok = c.get(base + "/metrics", auth=("prometheus", "s3cret"))
        assert ok.status_code == 200
        assert ok.content == tls_server.source.rendered.text
        assert ok.headers["x-frame-options"] == "deny"
        assert ok.headers["x-content-type-options"] == "nosniff"
        for auth in [None, ("prometheus", "wrong"), ("grafana", "s3cret")]:
            refused = c.get(base + "/metrics", auth=auth)
            assert refused.status_code == 401, auth
            assert refused.headers["www-authenticate"].startswith('Basic realm="ai-cost-exporter"')
            assert refused.headers["x-frame-options"] == "deny"
            assert b"# HELP" not in refused.content
        for path in ["/", "/-/ready", "/nope"]:
            assert c.get(base + path).status_code == 401, path
        assert c.get(base + "/-/healthy").status_code == 200  # probes need no password
        assert c.get(base + "/-/ready", auth=("prometheus", "s3cret")).status_code == 200


def test_plain_http_and_untrusted_clients_get_no_answer(
    pki: Pki, tls_server: MetricsServer
) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{tls_server.port}/-/healthy", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{tls_server.port}/-/healthy", timeout=5)  # system CAs
    # the server keeps serving after refused handshakes
    with client(pki) as c:
        assert c.get(f"https://127.0.0.1:{tls_server.port}/-/healthy").status_code == 200


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_scrapes_with_basic_auth(pki: Pki, tls_server: MetricsServer) -> None:
    url = f"https://127.0.0.1:{tls_server.port}/metrics"

    def curl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["curl", "-sS", "--cacert", str(pki.ca), "-w", "\n%{http_code}", *args, url],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    ok = curl("-u", "prometheus:s3cret")
    assert ok.returncode == 0, ok.stderr
    body, code = ok.stdout.rsplit("\n", 1)
    assert code == "200" and "aicost_up{" in body
    assert curl("-u", "prometheus:nope").stdout.endswith("\n401")
    assert curl("-u", "nobody:s3cret").stdout.endswith("\n401")


def test_min_version_refuses_older_clients(pki: Pki) -> None:
    web = write_web(
        pki, "tls_server_config: {cert_file: server.crt, key_file: server.key, min_version: TLS13}"
    )
    for server in serving(web):
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"https://127.0.0.1:{server.port}/-/healthy", verify=context, timeout=5)
        with client(pki) as c:
            response = c.get(f"https://127.0.0.1:{server.port}/metrics")
            assert response.status_code == 200  # no basic_auth_users: TLS only


def test_client_certificates_are_verified_against_the_client_ca(pki: Pki) -> None:
    web = write_web(
        pki,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        "  client_ca_file: ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n"
        "  client_allowed_sans: [prometheus.test]\n",
    )
    for server in serving(web):
        url = f"https://127.0.0.1:{server.port}/metrics"
        with client(pki, (pki.client_cert, pki.client_key)) as c:
            assert c.get(url).status_code == 200
        for cert in [None, (pki.other_client_cert, pki.other_client_key)]:
            with client(pki, cert) as c, pytest.raises(httpx.HTTPError):
                c.get(url)
        web.write_text(web.read_text().replace("[prometheus.test]", "[grafana.test]"))
        assert server.reload_web()
        with client(pki, (pki.client_cert, pki.client_key)) as c, pytest.raises(httpx.HTTPError):
            c.get(url)  # a valid certificate, but not an allowed SAN


def test_reload_swaps_users_and_keeps_the_old_config_when_the_new_one_is_bad(
    pki: Pki, tls_server: MetricsServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"https://127.0.0.1:{tls_server.port}/metrics"
    web = pki.ca.parent / "web.yml"
    web.write_text(TLS_AUTH.replace("prometheus:", "grafana:").format(hash=bcrypt_hash("new")))
    assert tls_server.reload_web() is True
    with client(pki) as c:
        assert c.get(url, auth=("prometheus", "s3cret")).status_code == 401
        assert c.get(url, auth=("grafana", "new")).status_code == 200
        web.write_text("basic_auth_users: {grafana: not-a-hash}\n")
        assert tls_server.reload_web() is False
        assert "web config not reloaded, keeping the previous one" in caplog.text
        assert "not-a-hash" not in caplog.text
        assert c.get(url, auth=("grafana", "new")).status_code == 200


class _BearerIngest:
    """An ingest handler that wants ``Authorization: Bearer t0ken`` (the real one's rule)."""

    paths = frozenset({"/api/v1/events"})
    max_body_bytes = 1000

    def authorize(self, path: str, authorization: str | None) -> Reply | None:
        if authorization == "Bearer t0ken":
            return None
        return 401, b"bearer token needed\n", "text/plain", {}

    def refuse_size(self, path: str, length: int) -> Reply:
        return 413, b"too large\n", "text/plain", {}

    def handle(self, path: str, content_type: str, content_encoding: str, body: bytes) -> Reply:
        return 202, b"accepted " + body, "text/plain", {}


def test_ingest_keeps_its_bearer_token_over_tls_while_scrapes_need_the_password(
    pki: Pki, tls_server: MetricsServer
) -> None:
    tls_server.ingest = _BearerIngest()
    base = f"https://127.0.0.1:{tls_server.port}"
    with client(pki) as c:
        events = c.post(
            base + "/api/v1/events", content=b"[]", headers={"Authorization": "Bearer t0ken"}
        )
        assert events.status_code == 202 and events.content == b"accepted []"
        assert events.headers["x-frame-options"] == "deny"
        assert c.post(base + "/api/v1/events", content=b"[]").status_code == 401
        assert (
            c.get(base + "/metrics", headers={"Authorization": "Bearer t0ken"}).status_code == 401
        )
