"""The store tests run on each backend: ``backend.open()`` is a Store on SQLite (a file in
the test's directory) or on PostgreSQL (a fresh database of the session's test server)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from exporter.store import Store
from tests.postgres import PASSWORD


class Backend:
    def __init__(self, name: str, target: Callable[[str], str], password: str | None) -> None:
        self.name = name
        self._target = target
        self._password = password
        self._targets: dict[str, str] = {}
        self.opened: list[Store] = []

    def target(self, name: str = "h") -> str:
        """The same history for the same name within a test (a restart reopens it)."""
        if name not in self._targets:
            self._targets[name] = self._target(name)
        return self._targets[name]

    def open(self, name: str = "h", **kw: Any) -> Store:
        store = Store(self.target(name), password=self._password, **kw)
        self.opened.append(store)
        return store


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        made = Backend("sqlite", lambda name: str(tmp_path / f"{name}.db"), None)
    else:
        server = request.getfixturevalue("postgres")
        made = Backend("postgresql", lambda name: server.url(server.database()), PASSWORD)
    yield made
    for store in made.opened:
        store.close()
