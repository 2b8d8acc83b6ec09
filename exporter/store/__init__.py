"""The history: the exporter's source of truth (a SQLite file, or PostgreSQL).

``Store`` is one connection with three parts: :class:`~exporter.store.history.History`
(usage, cost, project, key and billing rows; poll state), :class:`~exporter.store.fx_cache.FxCache`
(cached ECB rates and the FX columns of cost rows) and :class:`~exporter.store.ledger.Ledger`
(recommendation first-seen dates) and :class:`~exporter.store.requests.RequestLog`
(requests ingested from applications) and :class:`~exporter.store.poll_status.PollStatusLog`
(each account's last poll, for replicas). The schema is in :mod:`exporter.store.migrations`.
"""

from __future__ import annotations

from exporter.store.access import StorageError, check_storage
from exporter.store.fx_cache import FxCache
from exporter.store.history import History, retention_cutoff
from exporter.store.ledger import RECOMMENDATION_FIELDS, Ledger
from exporter.store.migrations import FX_COLUMNS
from exporter.store.poll_status import PollStatus, PollStatusLog
from exporter.store.requests import DailyRow, RequestLog
from exporter.store.rows import CostAnnotator


class Store(History, FxCache, Ledger, RequestLog, PollStatusLog):
    """The history: ``Store(target, *, read_only=False, password=None)`` where ``target`` is
    a SQLite path or a ``postgresql://user@host:port/db`` URL (the password passed apart,
    never inline); ``read_only=True`` to inspect one. ``store.dialect.name`` says which;
    ``store.connect()`` opens a further connection (advisory locks)."""


__all__ = [
    "FX_COLUMNS",
    "RECOMMENDATION_FIELDS",
    "CostAnnotator",
    "DailyRow",
    "PollStatus",
    "RequestLog",
    "StorageError",
    "Store",
    "check_storage",
    "retention_cutoff",
]
