"""The heap between refreshes: long-lived, so the cyclic garbage collector leaves it alone.

A refresh at 10k streams allocates a few million short-lived objects beside a few million
long-lived ones (the refresh cube's indexes, the recommendation rules' rows, the previous
snapshot and bodies). Each full collection the allocations trigger walks all of them:
seconds per refresh. So a refresh runs with the cyclic collector paused (its garbage is
freed by reference counting as usual) and, when it ends, everything still alive is frozen
into the permanent generation (:func:`gc.freeze`), which later collections skip. Once a
day :func:`collect_daily` collects the frozen heap in full, so cycles that became garbage
while frozen are freed too.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

_lock = threading.Lock()
_depth = 0  # refreshes (builds, renders) running now
_enabled = True  # whether the collector was enabled before the outermost one started
_collected: date | None = None


@contextmanager
def refresh_heap() -> Iterator[None]:
    """Run a refresh with the cyclic collector paused; freeze what survives it."""
    global _depth, _enabled
    with _lock:
        if _depth == 0:
            _enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.freeze()
                if _enabled:
                    gc.enable()


def collect_daily(today: date) -> bool:
    """A full collection of the frozen heap at the first call of each day (True if it ran)."""
    global _collected
    with _lock:
        if _collected == today:
            return False
        _collected = today
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        return True
