"""Shared test helpers (no fixtures here: see conftest.py)."""

from __future__ import annotations

import os
import shutil
from typing import Any, TypeVar

import pytest

T = TypeVar("T")
_OPENED: list[Any] = []


def opened(thing: T) -> T:
    """Register an httpx client or a Service to be closed after the test, pass or fail."""
    _OPENED.append(thing)
    return thing


def close_opened() -> None:
    """Called by the autouse fixture in conftest.py; closing twice is harmless."""
    while _OPENED:
        thing = _OPENED.pop()
        thing.stop() if hasattr(thing, "stop") else thing.close()


def promtool() -> str:
    """Path of promtool; skipped locally when missing, a failure when CI requires it."""
    path = shutil.which("promtool")
    if path:
        return path
    if os.environ.get("AICOST_REQUIRE_PROMTOOL") == "1":
        pytest.fail("promtool is required (scripts/test installs Debian's prometheus)")
    pytest.skip("promtool not installed")
    raise AssertionError("unreachable")


def parse_exposition(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text -> {(name, labels): value} using the client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def cloud_extra(module: str, extra: str) -> Any:
    """Import an optional cloud SDK; skipped locally when missing, a failure in CI
    (scripts/test installs the extras and sets AICOST_REQUIRE_EXTRAS=1)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("AICOST_REQUIRE_EXTRAS") == "1":
            pytest.fail(f"{module} is required: pip install -e '.[{extra}]'")
        pytest.skip(f"{module} not installed (extra [{extra}])")
        raise AssertionError("unreachable") from None
