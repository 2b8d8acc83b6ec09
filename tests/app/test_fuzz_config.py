"""Fuzzing the config loaders (Hypothesis): ``config.example.yaml`` and a web config,
mutated as YAML trees and as bytes. A load gives a config or a typed error
(``ConfigErrors`` / ``WebConfigError``) whose lines never quote a configured value."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from exporter.config import ConfigErrors, check, load
from exporter.webconfig import WebConfigError, parse
from tests.fuzzing import fuzz_settings, mutated_bytes, mutated_tree

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = (ROOT / "config.example.yaml").read_bytes()
SECRET = "sk-admin-fuzz-0123456789"  # an inline key the loader must never repeat
DATA = yaml.safe_load(EXAMPLE)
DATA["providers"][0]["api_key"] = SECRET
WEB = {
    "tls_server_config": {
        "cert_file": "server.crt",
        "key_file": "server.key",
        "client_ca_file": "ca.crt",
        "client_auth_type": "RequireAndVerifyClientCert",
        "client_allowed_sans": ["prometheus.test"],
        "min_version": "TLS12",
    },
    "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
    "basic_auth_users": {"prometheus": "$2y$04$" + "a" * 53},
}


def _plain(doc: Any) -> Any:
    """JSON-like tree -> what ``yaml.safe_dump`` writes (Decimals as floats)."""
    if isinstance(doc, dict):
        return {k: _plain(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_plain(v) for v in doc]
    return float(doc) if isinstance(doc, Decimal) else doc


def _yaml(doc: Any) -> bytes:
    return yaml.safe_dump(_plain(doc), allow_unicode=True).encode()


def test_the_example_config_loads() -> None:
    load(ROOT / "config.example.yaml")


@fuzz_settings(examples=150)
@given(text=st.one_of(mutated_tree(DATA).map(_yaml), mutated_bytes(EXAMPLE)))
def test_a_mutated_config_loads_or_gives_config_errors(
    text: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = tmp_path_factory.mktemp("config") / "config.yaml"
    path.write_bytes(text)
    try:
        config = load(path)
    except ConfigErrors as exc:
        assert exc.errors and all(isinstance(line, str) for line in exc.errors)
        assert SECRET not in str(exc)
        return
    for problem in check(config, env={}):
        assert SECRET not in problem


@fuzz_settings(examples=150)
@given(text=st.one_of(mutated_tree(WEB).map(_yaml), mutated_bytes(_yaml(WEB))))
def test_a_mutated_web_config_parses_or_gives_a_web_config_error(text: bytes) -> None:
    try:
        parse(text.decode("utf-8", errors="replace"))
    except WebConfigError as exc:
        assert exc.errors
