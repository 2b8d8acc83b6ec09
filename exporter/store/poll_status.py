"""The outcome of each account's last poll, shared by replicas on one history.

Only the replica holding an account's poll lock polls it (:mod:`exporter.election`); it
records here whether that poll succeeded and how long it took, next to the account's
``provider_state`` (last success, watermark). A standby publishes these shared values, so
every replica serves the same ``aicost_up`` and ``aicost_poll_duration_seconds``. Kept in
``store_meta`` (key ``poll_status:<provider>:<account>``, JSON), no schema change.
"""

from __future__ import annotations

import json
from typing import NamedTuple

from exporter.store.db import Database


class PollStatus(NamedTuple):
    up: bool
    poll_duration: float  # seconds
    at: float  # Unix time the status was recorded


def _key(provider: str, account: str) -> str:
    return f"poll_status:{provider}:{account}"


class PollStatusLog(Database):
    """Read and write :class:`PollStatus` rows."""

    def record_poll_status(self, provider: str, account: str, status: PollStatus) -> None:
        with self._transaction() as conn:
            self._set_meta(conn, _key(provider, account), json.dumps(status._asdict()))

    def poll_status(self, provider: str, account: str) -> PollStatus | None:
        with self._lock:
            value = self._meta(self.db, _key(provider, account))
        if value is None:
            return None
        data = json.loads(value)
        return PollStatus(bool(data["up"]), float(data["poll_duration"]), float(data["at"]))
