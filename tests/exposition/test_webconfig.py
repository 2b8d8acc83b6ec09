"""--web.config.file parsing and basic auth (no network: see test_web_server.py for TLS)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest

from exporter.webconfig import BasicAuth, WebConfigError, load, parse
from tests.exposition.certs import bcrypt_hash, make_pki


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_every_problem_of_a_bad_web_config_is_reported_at_once() -> None:
    text = """
tls_server_config:
  cert: "-----BEGIN CERTIFICATE----- inline"
  key: "-----BEGIN PRIVATE KEY----- s3cr3t-inline-key"
  client_auth_type: RequireAnyClientCert
  min_version: TLS9
  cipher_suites: [TLS_AES_128_GCM_SHA256]
http_server_config:
  headers:
    X-Frame-Options: allow
    X-Powered-By: me
basic_auth_users:
  alice: plaintext-password
rate_limit: {interval: 1s, burst: 5}
colour: blue
"""
    with pytest.raises(WebConfigError) as info:
        parse(text, "web.yml")
    errors = info.value.errors
    assert errors == [
        "tls_server_config.cert: inline certificates are not supported; use cert_file",
        "tls_server_config.key: inline keys are not supported; use key_file",
        "tls_server_config.cipher_suites: not supported (OpenSSL's defaults are used)",
        "rate_limit: not supported; rate-limit in a reverse proxy",
        "colour: unknown key",
        "http_server_config.headers.X-Frame-Options: expected one of deny, sameorigin",
        "http_server_config.headers.X-Powered-By: cannot be configured; allowed: "
        "Content-Security-Policy, Strict-Transport-Security, X-Content-Type-Options, "
        "X-Frame-Options, X-XSS-Protection",
        "basic_auth_users.alice: not a bcrypt hash ($2y$10$ followed by 53 characters, e.g. "
        "from `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)",
        "tls_server_config.cert_file: required with tls_server_config",
        "tls_server_config.key_file: required with tls_server_config",
        "tls_server_config.min_version: expected one of TLS10, TLS11, TLS12, TLS13",
        "tls_server_config.client_auth_type: RequireAnyClientCert accepts certificates nobody "
        "verified and is not supported; use RequireAndVerifyClientCert (or "
        "VerifyClientCertIfGiven)",
    ]
    message = str(info.value)
    assert "s3cr3t" not in message and "plaintext-password" not in message


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("- a list", "(top level): expected a mapping of settings"),
        ("tls_server_config: {cert_file: a", "line 1, column 33: expected ',' or '}', but got"),
        (
            "tls_server_config: {cert_file: a, key_file: b, client_ca_file: ca}",
            "tls_server_config.client_auth_type: client CAs are configured, but NoClientCert "
            "never asks for a client certificate; set RequireAndVerifyClientCert",
        ),
        (
            "tls_server_config: {cert_file: a, key_file: b, "
            "client_auth_type: RequireAndVerifyClientCert}",
            "tls_server_config.client_ca_file: required to verify client certificates",
        ),
        (
            "tls_server_config: {cert_file: a, key_file: b, client_allowed_sans: [x]}",
            "tls_server_config.client_allowed_sans: requires client_auth_type "
            "RequireAndVerifyClientCert",
        ),
        (
            "tls_server_config: {cert_file: a, key_file: b, min_version: TLS13, "
            "max_version: TLS12}",
            "tls_server_config.min_version: is above max_version",
        ),
        ("basic_auth_users: [alice]", "basic_auth_users: Input should be a valid dictionary"),
        (
            "basic_auth_users: {'a:b': '$2y$04$" + "a" * 53 + "'}",
            "basic_auth_users.a:b: a user name is non-empty and has no ':'",
        ),
    ],
)
def test_each_mistake_gets_a_specific_error(text: str, error: str) -> None:
    with pytest.raises(WebConfigError) as info:
        parse(text)
    assert any(line.startswith(error) for line in info.value.errors), info.value.errors


def test_certificate_files_are_loaded_at_once_relative_to_the_web_config(
    tmp_path: Path,
) -> None:
    pki = make_pki(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config: {cert_file: server.crt, key_file: server.key}\n")
    assert load(web).scheme == "https"
    web.write_text("tls_server_config: {cert_file: server.crt, key_file: missing.key}\n")
    with pytest.raises(WebConfigError) as info:
        load(web)
    assert info.value.errors == [
        f"tls_server_config.key_file: {tmp_path / 'missing.key'} is not a readable file"
    ]
    web.write_text("tls_server_config: {cert_file: server.crt, key_file: client.key}\n")
    with pytest.raises(WebConfigError) as info:
        load(web)
    (line,) = info.value.errors
    assert line.startswith(
        f"tls_server_config.cert_file/key_file: cannot load {pki.server_cert} with "
        f"{pki.client_key} (KEY_VALUES_MISMATCH)"
    )
    with pytest.raises(WebConfigError) as info:
        load(tmp_path / "nope.yml")
    assert info.value.errors == ["cannot read the file: No such file or directory"]


def test_headers_and_users_are_kept(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        "http_server_config:\n  http2: true\n  headers: {X-Frame-Options: deny}\n"
        f"basic_auth_users:\n  alice: '{bcrypt_hash('pw')}'\n"
    )
    config = load(web)
    assert config.headers == (("X-Frame-Options", "deny"),)
    assert config.auth is not None and len(config.auth) == 1
    assert config.warnings == (
        "basic_auth_users without tls_server_config: passwords cross in clear",
    )
    assert config.describe() == "TLS off; basic auth for 1 user(s); headers X-Frame-Options"


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The hash every bcrypt check ran against, in order."""
    seen: list[bytes] = []
    real: Callable[[bytes, bytes], bool] = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        seen.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    return seen


def _cost(hashed: bytes) -> int:
    return int(hashed.split(b"$")[2])


def test_unknown_user_and_wrong_password_do_the_same_bcrypt_work(checks: list[bytes]) -> None:
    alice = bcrypt_hash("right", cost=5)
    auth = BasicAuth({"alice": alice, "bob": bcrypt_hash("other", cost=5)})
    assert auth.check(basic("alice", "wrong")) is False
    assert auth.check(basic("mallory", "wrong")) is False
    assert auth.check(basic("alice", "x" * 80)) is False  # longer than bcrypt reads
    wrong, unknown, too_long = checks
    assert wrong == alice.encode()
    assert unknown != alice.encode() and _cost(unknown) == _cost(wrong) == 5
    assert too_long == unknown
    # failures are never cached: every attempt pays the same bcrypt check again
    assert auth.check(basic("mallory", "wrong")) is False
    assert auth.check(basic("alice", "wrong")) is False
    assert len(checks) == 5


def test_accepted_credentials_skip_bcrypt_next_time(checks: list[bytes]) -> None:
    auth = BasicAuth({"alice": bcrypt_hash("right")})
    assert auth.check(basic("alice", "right")) is True
    assert auth.check(basic("alice", "right")) is True
    assert auth.check(basic("alice", "righ")) is False
    assert len(checks) == 2


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer abc", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()],
)
def test_malformed_authorization_is_refused(checks: list[bytes], header: str | None) -> None:
    assert BasicAuth({"alice": bcrypt_hash("right")}).check(header) is False
    assert checks == []


def test_a_user_with_a_colon_free_name_and_a_password_with_colons() -> None:
    auth = BasicAuth({"alice": bcrypt_hash("a:b:c")})
    assert auth.check(basic("alice", "a:b:c")) is True
    assert auth.check("basic " + base64.b64encode(b"alice:a:b:c").decode()) is True


def test_mixed_bcrypt_costs_are_warned_about_and_unknown_users_get_the_highest(
    tmp_path: Path, checks: list[bytes]
) -> None:
    web = tmp_path / "web.yml"
    web.write_text(
        f"basic_auth_users:\n  a: '{bcrypt_hash('x', cost=4)}'\n  b: '{bcrypt_hash('y', cost=5)}'\n"
    )
    config = load(web)
    assert config.warnings[0].startswith(
        "basic_auth_users: the hashes use different bcrypt costs ((4, 5)); an unknown user"
    )
    assert config.auth is not None and config.auth.check(basic("nobody", "x")) is False
    assert [_cost(h) for h in checks] == [5]


@pytest.mark.parametrize("text", ["", "tls_server_config:", "tls_server_config: {}"])
def test_an_empty_tls_section_means_plain_http_as_in_the_toolkit(text: str) -> None:
    assert parse(text).tls_server_config is None
