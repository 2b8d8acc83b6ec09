"""Coalesced refreshes: one recompute after a burst of account polls, not one per account.

The scheduler polls every account at the same start time, so their polls finish close
together. Each finished poll calls :meth:`Refresher.request`; a single worker thread waits
until no poll is running any more (``busy``) and no request has come for ``settle``
seconds, at most ``max_delay`` after the first one, then runs the refresh once. A request
arriving while a refresh runs schedules one more run after it, so the last poll's data is
always rendered. The server keeps serving the previous bytes meanwhile: it reads the latest
``Rendered``, never waits on the refresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


class Refresher:
    """Runs ``work`` on a worker thread once per burst of :meth:`request` calls."""

    def __init__(
        self,
        work: Callable[[], object],
        *,
        busy: Callable[[], bool] = lambda: False,
        settle: float = 2.0,
        max_delay: float = 120.0,
    ) -> None:
        """``busy``: True while more requests are on their way (polls still running)."""
        self._work = work
        self._busy = busy
        self.settle = settle
        self.max_delay = max_delay
        self._cond = threading.Condition()
        self._requests = 0  # requests ever made
        self._served = 0  # requests covered by a finished (or running) refresh
        self._running = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.runs = 0  # refreshes done

    def request(self) -> None:
        """Ask for a refresh soon; returns at once."""
        with self._cond:
            if self._stopped:
                return
            self._requests += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="refresh", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every request so far is refreshed; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._running or self._served < self._requests:
                left = deadline - time.monotonic()
                if left <= 0 or self._stopped:
                    return False
                self._cond.wait(left)
            return True

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._served == self._requests and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                first = time.monotonic()
                while not self._stopped:  # settle: wait for the burst to end
                    seen = self._requests
                    left = min(self.settle, first + self.max_delay - time.monotonic())
                    if left <= 0:
                        break
                    self._cond.wait(left)
                    if self._requests == seen and not self._busy():
                        break
                if self._stopped:
                    return
                covered, self._running = self._requests, True
            try:
                self._work()
            except Exception:  # a failed refresh keeps the previous bytes; the next retries
                log.exception("refresh failed; /metrics keeps the previous snapshot")
            with self._cond:
                self._served, self._running = covered, False
                self.runs += 1
                self._cond.notify_all()
