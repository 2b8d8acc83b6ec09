"""Fixtures: a fixed clock, a fake OpenAI org on loopback, and configs pointing at it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from exporter.config import Config, validate
from exporter.demo.openai import FakeOpenAIOrg, FakeOpenAIServer, generate_org
from exporter.server import MetricsServer
from exporter.server_loop import LoopServer
from tests.helpers import close_opened
from tests.postgres import PostgresServer, PostgresUnavailable, postgres_server

TODAY = date(2026, 3, 18)  # a Wednesday in mid-month
NOW = datetime(2026, 3, 18, 13, 30, tzinfo=UTC)
KEY_ENV = "AICOST_TEST_OPENAI_KEY"


@pytest.fixture(autouse=True)
def _close_opened() -> Iterator[None]:
    """Clients and services a test registered with ``opened()`` are closed even when it fails,
    so no socket is left for a later test's ResourceWarning."""
    yield
    close_opened()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the session (tests/postgres.py). Skipped where
    PostgreSQL or psycopg is missing, unless AICOST_REQUIRE_POSTGRES=1 (scripts/test)."""
    import os

    required = os.environ.get("AICOST_REQUIRE_POSTGRES") == "1"
    try:
        import psycopg  # noqa: F401

        with postgres_server() as server:
            yield server
    except (PostgresUnavailable, ImportError) as exc:
        if required:
            pytest.fail(f"PostgreSQL tests required (AICOST_REQUIRE_POSTGRES=1): {exc}")
        pytest.skip(f"PostgreSQL not available: {exc}")


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_path(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """``storage.path`` on each backend: a SQLite file, or a fresh PostgreSQL database (its
    password from libpq's PGPASSWORD, never inside the URL)."""
    if request.param == "sqlite":
        return str(tmp_path / "history.db")
    from tests.postgres import PASSWORD

    server = request.getfixturevalue("postgres")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    return server.url(server.database())


def fixed_clock() -> datetime:
    return NOW


@pytest.fixture(scope="session")
def base_org() -> FakeOpenAIOrg:
    return generate_org(today=TODAY, days=60, seed=3)


@pytest.fixture
def org(base_org: FakeOpenAIOrg) -> FakeOpenAIOrg:
    """A fresh copy per test, so tests may revise it."""
    return FakeOpenAIOrg(
        admin_key=base_org.admin_key,
        projects=list(base_org.projects),
        api_keys=dict(base_org.api_keys),
        usage=list(base_org.usage),
        costs=list(base_org.costs),
    )


@pytest.fixture
def fake(org: FakeOpenAIOrg) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(org, now=fixed_clock) as server:
        yield server


# metrics.* with every per-stream family on (the defaults before issue 17), for tests that
# check each per-stream window, token type or ratio against an oracle.
ALL_FAMILIES: dict[str, Any] = {
    "windows": ["today", "yesterday", "7d", "30d", "month_to_date"],
    "token_types": True,
    "stream_ratios": True,
}


def make_config(tmp_path: Path, base_url: str, **overrides: Any) -> Config:
    poll = {
        "backfill_days": 45,
        "lookback_days": 3,
        "timeout": "1s",
        "max_attempts": 3,
        "backoff_initial": "10ms",
        "backoff_max": "50ms",
        **overrides.pop("poll", {}),
    }
    data = {
        "storage": {"path": str(tmp_path / "history.db")},
        "poll": poll,
        "providers": [
            {"type": "openai", "name": "main", "base_url": base_url, "api_key_env": KEY_ENV}
        ],
        **overrides,
    }
    return validate(data)


@pytest.fixture
def config(tmp_path: Path, fake: FakeOpenAIServer) -> Config:
    return make_config(tmp_path, fake.base_url)


@pytest.fixture
def env(org: FakeOpenAIOrg) -> dict[str, str]:
    return {KEY_ENV: org.admin_key}


@pytest.fixture(params=["threaded", "loop"])
def server_type(request: pytest.FixtureRequest) -> type[MetricsServer]:
    """The HTTP server under test: MetricsServer (thread per connection; in-process use)
    and LoopServer (the event loop the serving process of ``run`` and ``demo`` runs)."""
    return LoopServer if request.param == "loop" else MetricsServer
