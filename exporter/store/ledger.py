"""The recommendation ledger: when each recommendation was first and last seen."""

from __future__ import annotations

from datetime import date

from exporter.store.db import Database
from exporter.store.dialect import greatest

RECOMMENDATION_FIELDS = ("kind", "provider", "account", "project", "model", "api_key", "target")


class Ledger(Database):
    """First-seen dates of recommendations (kept across restarts)."""

    def note_recommendations(self, seen: list[dict[str, str]], day: date) -> dict[str, date]:
        """Record that these recommendations hold on ``day``; return every first-seen date.

        Each dict has ``id`` and :data:`RECOMMENDATION_FIELDS`. A new id is first seen on
        ``day``; a known one keeps its first-seen date (``last_seen`` moves on).
        """
        rows = [
            (
                r["id"],
                *(r.get(f, "") for f in RECOMMENDATION_FIELDS),
                day.isoformat(),
                day.isoformat(),
            )
            for r in seen
        ]
        with self._transaction() as conn:
            conn.executemany(
                "INSERT INTO recommendations (id, kind, provider, account, project, model, "
                "api_key, target, first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET last_seen = "
                + greatest("recommendations.last_seen", "excluded.last_seen"),
                rows,
            )
        return self.recommendation_first_seen()

    def recommendation_first_seen(self) -> dict[str, date]:
        """First-seen date of every recommendation ever recorded, by id."""
        with self._lock:
            rows = self.db.execute("SELECT id, first_seen FROM recommendations").fetchall()
        return {rid: date.fromisoformat(first) for rid, first in rows}
