"""``--web.config.file``: TLS, basic auth and response headers, in the Prometheus
exporter-toolkit format (``docs/web-configuration.md`` of prometheus/exporter-toolkit).

    tls_server_config:
      cert_file: server.crt            # relative paths: from the web config's directory
      key_file: server.key
      client_ca_file: ca.crt           # or client_ca: an inline PEM bundle
      client_auth_type: RequireAndVerifyClientCert
      client_allowed_sans: [prometheus.example.org]
      min_version: TLS12               # TLS10, TLS11, TLS12 (default), TLS13
    http_server_config:
      headers: {X-Frame-Options: deny, X-Content-Type-Options: nosniff}
    basic_auth_users:
      prometheus: $2y$10$...           # bcrypt hashes (htpasswd -nBC 10 "" | tr -d ':\\n')

:func:`load` reads and checks the whole file at once (every problem reported in one
:class:`WebConfigError`) and loads the certificates and keys, so a bad file fails at start
and a bad reload keeps the previous config. Basic auth applies to every endpoint but
``/-/healthy``. An unknown user costs the same bcrypt work as a wrong password (a dummy
hash of the same cost is checked), so answer times do not reveal which users exist.
Settings of the format that this server cannot honour (inline ``cert``/``key``,
``cipher_suites``, ``curve_preferences``, ``rate_limit``, client auth types that accept
an unverified certificate) are errors, never silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import ssl
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from exporter.config import yaml_problem

TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
CLIENT_AUTH_TYPES: dict[str, ssl.VerifyMode] = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Accepted by the toolkit, but they let a client in with a certificate nobody verified.
UNVERIFIED_CLIENT_AUTH_TYPES = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
# The toolkit's fixed list of configurable headers (None: any value).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
}
UNSUPPORTED: dict[tuple[str, str], str] = {
    ("tls_server_config", "cert"): "inline certificates are not supported; use cert_file",
    ("tls_server_config", "key"): "inline keys are not supported; use key_file",
    ("tls_server_config", "cipher_suites"): "not supported (OpenSSL's defaults are used)",
    ("tls_server_config", "curve_preferences"): "not supported (OpenSSL's defaults are used)",
    ("", "rate_limit"): "not supported; rate-limit in a reverse proxy",
}
BCRYPT_HASH = re.compile(r"^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$")
BCRYPT_MAX_PASSWORD = 72  # bytes bcrypt reads; a longer password never matches
HANDSHAKE_TIMEOUT = 10.0  # seconds a client may take to finish the TLS handshake
AUTH_CACHE_SIZE = 64  # accepted credentials remembered, so scrapes skip bcrypt


class WebConfigError(Exception):
    """Every problem of a web config file, one line each (no configured value quoted)."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"invalid web config {source}: " + "; ".join(errors))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class TLSServerSchema(_Strict):
    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""
    client_ca: str = ""
    client_auth_type: str = "NoClientCert"
    client_allowed_sans: list[str] | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    prefer_server_cipher_suites: bool = True


class HTTPServerSchema(_Strict):
    http2: bool = True  # accepted; this server speaks HTTP/1.1 only
    headers: dict[str, str] = {}


class WebSchema(_Strict):
    tls_server_config: TLSServerSchema | None = None
    http_server_config: HTTPServerSchema = HTTPServerSchema()
    basic_auth_users: dict[str, str] | None = None


def _format(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    message = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    return f"{loc}: {message}"


def _unsupported(data: dict[str, Any]) -> list[str]:
    """Remove (and report) the keys of the format this server cannot honour."""
    errors = []
    for (section, key), why in UNSUPPORTED.items():
        holder = data.get(section) if section else data
        if isinstance(holder, dict) and key in holder:
            del holder[key]
            errors.append(f"{section + '.' if section else ''}{key}: {why}")
    return errors


def parse(text: str, source: str = "web config") -> WebSchema:
    """The schema of a web config's YAML text; :class:`WebConfigError` lists every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WebConfigError(source, [yaml_problem(exc)]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise WebConfigError(source, ["(top level): expected a mapping of settings"])
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    if data.get("tls_server_config", "") in (None, {}):  # as the toolkit: empty is TLS off
        del data["tls_server_config"]
    errors = _unsupported(data)
    schema = None
    for _ in range(3):  # drop what failed, so the cross-field checks run on the rest
        try:
            schema = WebSchema.model_validate(data)
            break
        except ValidationError as exc:
            found = exc.errors(include_input=False, include_url=False)
            errors += [_format(e) for e in found]
            for e in found:
                _drop(data, e["loc"])
    if schema is not None:
        errors += _check(schema)
    if errors or schema is None:
        raise WebConfigError(source, errors)
    return schema


def _drop(data: dict[str, Any], loc: tuple[int | str, ...]) -> None:
    """Remove the (second-level at most) key a validation error points at."""
    section = data.get(str(loc[0])) if loc else None
    if len(loc) > 1 and isinstance(section, dict):
        section.pop(str(loc[1]), None)
    elif loc:
        data.pop(str(loc[0]), None)


def _check(schema: WebSchema) -> list[str]:
    errors = []
    for name, value in schema.http_server_config.headers.items():
        if name not in HEADERS:
            errors.append(
                f"http_server_config.headers.{name}: cannot be configured; allowed: "
                + ", ".join(HEADERS)
            )
        elif (allowed := HEADERS[name]) is not None and value not in allowed:
            errors.append(
                f"http_server_config.headers.{name}: expected one of {', '.join(allowed)}"
            )
    for user, hashed in (schema.basic_auth_users or {}).items():
        if ":" in user or not user:
            errors.append(f"basic_auth_users.{user}: a user name is non-empty and has no ':'")
        if not BCRYPT_HASH.match(hashed):
            errors.append(
                f"basic_auth_users.{user}: not a bcrypt hash ($2y$10$ followed by 53 "
                "characters, e.g. from `htpasswd -nBC 10 \"\" | tr -d ':\\n'`)"
            )
    tls = schema.tls_server_config
    if tls is None:
        return errors
    prefix = "tls_server_config."
    if not tls.cert_file:
        errors.append(f"{prefix}cert_file: required with tls_server_config")
    if not tls.key_file:
        errors.append(f"{prefix}key_file: required with tls_server_config")
    for key in ("min_version", "max_version"):
        if getattr(tls, key) not in TLS_VERSIONS:
            errors.append(f"{prefix}{key}: expected one of {', '.join(TLS_VERSIONS)}")
    if (
        tls.min_version in TLS_VERSIONS
        and tls.max_version in TLS_VERSIONS
        and TLS_VERSIONS[tls.min_version] > TLS_VERSIONS[tls.max_version]
    ):
        errors.append(f"{prefix}min_version: is above max_version")
    auth = tls.client_auth_type
    if auth in UNVERIFIED_CLIENT_AUTH_TYPES:
        errors.append(
            f"{prefix}client_auth_type: {auth} accepts certificates nobody verified and is "
            "not supported; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven)"
        )
    elif auth not in CLIENT_AUTH_TYPES:
        errors.append(f"{prefix}client_auth_type: expected one of {', '.join(CLIENT_AUTH_TYPES)}")
    has_ca = bool(tls.client_ca_file or tls.client_ca)
    if tls.client_ca_file and tls.client_ca:
        errors.append(f"{prefix}client_ca: give client_ca or client_ca_file, not both")
    if has_ca and auth == "NoClientCert":
        errors.append(
            f"{prefix}client_auth_type: client CAs are configured, but NoClientCert never "
            "asks for a client certificate; set RequireAndVerifyClientCert"
        )
    if not has_ca and CLIENT_AUTH_TYPES.get(auth, ssl.CERT_NONE) != ssl.CERT_NONE:
        errors.append(f"{prefix}client_ca_file: required to verify client certificates")
    if tls.client_allowed_sans is not None and auth != "RequireAndVerifyClientCert":
        errors.append(
            f"{prefix}client_allowed_sans: requires client_auth_type RequireAndVerifyClientCert"
        )
    return errors


class BasicAuth:
    """Checks ``Authorization: Basic`` headers against bcrypt hashes.

    Every well-formed attempt runs exactly one bcrypt check: against the user's hash, or,
    for an unknown user (or a password too long for bcrypt), against a dummy hash of the
    same cost, so a wrong password and an unknown user take the same time. Accepted
    credentials are remembered (by a SHA-256 digest, never the password) so that steady
    scrapes skip bcrypt; failures are never remembered.
    """

    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = {user: hashed.encode() for user, hashed in users.items()}
        costs = sorted({int(h.split("$")[2]) for h in users.values()})
        self.costs = tuple(costs)
        self._dummy = bcrypt.hashpw(
            secrets.token_urlsafe(16).encode(), bcrypt.gensalt(rounds=costs[-1])
        )
        self._bcrypt_lock = threading.Lock()  # bcrypt is CPU-bound: one check at a time
        self._cache_lock = threading.Lock()
        self._accepted: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._users)

    def check(self, authorization: str | None) -> bool:
        """True when the header carries a configured user and its password."""
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._users.get(user)
        digest = hashlib.sha256(b"\0".join((user.encode(), password, hashed or b""))).digest()
        with self._cache_lock:
            if hashed is not None and digest in self._accepted:
                self._accepted.move_to_end(digest)
                return True
        fits = len(password) <= BCRYPT_MAX_PASSWORD
        with self._bcrypt_lock:
            matched = bcrypt.checkpw(
                password[:BCRYPT_MAX_PASSWORD], hashed if hashed and fits else self._dummy
            )
        if not (matched and hashed is not None and fits):
            return False
        with self._cache_lock:
            self._accepted[digest] = None
            if len(self._accepted) > AUTH_CACHE_SIZE:
                self._accepted.popitem(last=False)
        return True


def _basic_credentials(authorization: str | None) -> tuple[str, bytes] | None:
    """``(user, password)`` of an ``Authorization: Basic`` header; None when malformed."""
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
        user, sep, password = raw.partition(b":")
        return (user.decode("utf-8"), password) if sep else None
    except (binascii.Error, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class WebConfig:
    """A loaded web config: the TLS context, basic auth and response headers."""

    source: str
    tls: ssl.SSLContext | None = None
    allowed_sans: frozenset[str] | None = None
    auth: BasicAuth | None = None
    headers: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = field(default=())

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def describe(self) -> str:
        """One line for the log: what is switched on (never a value)."""
        parts = []
        if self.tls is not None:
            verify = {
                ssl.CERT_NONE: "no client certificates",
                ssl.CERT_OPTIONAL: "client certificates verified when given",
                ssl.CERT_REQUIRED: "client certificates required",
            }[self.tls.verify_mode]
            parts.append(f"TLS on (min {self.tls.minimum_version.name}, {verify})")
        else:
            parts.append("TLS off")
        parts.append(f"basic auth for {len(self.auth)} user(s)" if self.auth else "no basic auth")
        if self.headers:
            parts.append("headers " + ", ".join(name for name, _ in self.headers))
        return "; ".join(parts)

    def accept(self, sock: ssl.SSLSocket) -> None:
        """Check a handshaken client against ``client_allowed_sans`` (ssl.SSLError if not)."""
        if self.allowed_sans is None:
            return
        cert: dict[str, Any] = dict(sock.getpeercert() or {})
        names = {str(pair[1]) for pair in cert.get("subjectAltName", ())}
        if not names & self.allowed_sans:
            raise ssl.SSLError("client certificate has none of client_allowed_sans")


def load(path: str | Path) -> WebConfig:
    """Read, check and build the web config at ``path`` (certificates and keys loaded)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise WebConfigError(source, [f"cannot read the file: {reason}"]) from None
    schema = parse(text, source)
    base = Path(path).resolve().parent
    tls = _tls_context(schema.tls_server_config, base, source)
    warnings = []
    auth = BasicAuth(schema.basic_auth_users) if schema.basic_auth_users else None
    if auth is not None and len(auth.costs) > 1:
        warnings.append(
            f"basic_auth_users: the hashes use different bcrypt costs ({auth.costs}); an "
            "unknown user is answered as slowly as the highest, so use one cost for all"
        )
    if auth is not None and tls is None:
        warnings.append("basic_auth_users without tls_server_config: passwords cross in clear")
    sans = schema.tls_server_config.client_allowed_sans if schema.tls_server_config else None
    return WebConfig(
        source=source,
        tls=tls,
        allowed_sans=frozenset(sans) if sans is not None else None,
        auth=auth,
        headers=tuple(schema.http_server_config.headers.items()),
        warnings=tuple(warnings),
    )


def _tls_context(tls: TLSServerSchema | None, base: Path, source: str) -> ssl.SSLContext | None:
    if tls is None:
        return None
    prefix = "tls_server_config."
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    if not tls.prefer_server_cipher_suites:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    errors = []
    cert, key = base / tls.cert_file, base / tls.key_file
    for name, file in (("cert_file", cert), ("key_file", key)):
        if not file.is_file():
            errors.append(f"{prefix}{name}: {file} is not a readable file")
    if not errors:
        try:
            context.load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            errors.append(
                f"{prefix}cert_file/key_file: cannot load {cert} with {key} "
                f"({getattr(exc, 'reason', None) or exc.strerror or 'unreadable'}): "
                "expected a PEM certificate (chain) and its unencrypted PEM private key"
            )
    context.verify_mode = CLIENT_AUTH_TYPES[tls.client_auth_type]
    try:
        if tls.client_ca_file:
            context.load_verify_locations(cafile=base / tls.client_ca_file)
        elif tls.client_ca:
            context.load_verify_locations(cadata=tls.client_ca)
    except (ssl.SSLError, OSError) as exc:
        what = "client_ca_file" if tls.client_ca_file else "client_ca"
        errors.append(
            f"{prefix}{what}: cannot load the client CA bundle "
            f"({getattr(exc, 'reason', None) or exc.strerror or 'unreadable'}): expected PEM"
        )
    if errors:
        raise WebConfigError(source, errors)
    return context
