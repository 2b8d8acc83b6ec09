"""One account's poll: the window to read, the fetch, the write, the health it leaves.

* The first successful poll of an account backfills ``poll.backfill_days``; later polls
  re-read today plus ``poll.lookback_days`` and overwrite those days.
* One poll at a time per account (a poll still running when the next is due is skipped).
* A failed poll writes nothing, is counted by reason, and is retried next cycle. Inside a
  poll, 429s honour Retry-After and 5xx/timeouts back off with jitter (see
  :class:`~exporter.providers.http.RetryPolicy`).
* Costs land converted to the accounting currency: the composition root passes the FX
  service's annotator, which the store applies inside the poll's one transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, timedelta

import httpx

from exporter.clock import Clock, midnight, utc_now
from exporter.config import Config, ProviderConfig, Secret, resolve_key
from exporter.providers.errors import ERROR_REASONS, ConfigError, ParseError, ProviderError
from exporter.providers.http import HttpProvider, Provider, RetryPolicy
from exporter.records import duplicate_keys
from exporter.snapshot import ProviderHealth
from exporter.store import CostAnnotator, PollStatus, Store

log = logging.getLogger(__name__)

# A registered provider class: built with (config, client, key, retry=, observer=).
ProviderClass = Callable[..., Provider]


class Poller:
    """Polls one configured provider account."""

    def __init__(
        self,
        config: Config,
        provider_config: ProviderConfig,
        store: Store,
        provider_class: ProviderClass,
        *,
        clock: Clock = utc_now,
        transport: httpx.BaseTransport | None = None,
        env: Mapping[str, str] | None = None,
        annotate: CostAnnotator | None = None,
    ) -> None:
        """``provider_class``: the registered class of ``provider_config.type``; ``annotate``
        gives each cost row its FX columns as it is written."""
        self.type = provider_config.type
        self.account = provider_config.account
        self.interval = provider_config.poll_interval or config.poll.interval  # seconds
        self._config = config
        self._provider_config = provider_config
        self._store = store
        self._clock = clock
        self._env = env
        self._provider_class = provider_class
        self._annotate = annotate
        self._lock = threading.Lock()
        self._client = httpx.Client(
            timeout=config.poll.timeout, transport=transport, follow_redirects=False
        )
        self._keys_listed_at: float | None = None  # clock time of the last key listing
        self.health = ProviderHealth(self.type, self.account)
        self._lag = timedelta(days=provider_config.expected_lag_days)
        self.health.expected_lag = self._lag.total_seconds()
        self.last_backfill = False  # the last successful poll read the backfill window
        # reasons a poll may fall back to a coarser query (exported as 0 until it happens)
        self.health.degraded = dict.fromkeys(getattr(provider_class, "degradations", ()), 0)
        self._degraded_logged: set[str] = set()
        self.health.errors = dict.fromkeys(ERROR_REASONS, 0)
        self._followed: tuple[object, ...] | None = None  # poll state a standby last saw
        state = store.provider_state(self.type, self.account)
        if state:
            self.health.last_success = state["last_success"] or 0.0
            self.health.data_complete_through = state["data_complete_through"] or 0.0

    def close(self) -> None:
        self._client.close()

    def follow(self) -> bool:
        """A standby's turn (another replica polls this account on the shared history):
        take the health of the account's last poll from the store, so every replica
        publishes the same values. True when that poll state changed since the last call
        (the history has new writes to render)."""
        self.health.leader = False
        state = self._store.provider_state(self.type, self.account) or {}
        status = self._store.poll_status(self.type, self.account)
        seen = (tuple(sorted(state.items())), status)
        changed = seen != self._followed
        self._followed = seen
        self.health.last_success = state.get("last_success") or 0.0
        self.health.data_complete_through = state.get("data_complete_through") or 0.0
        if status is not None:
            self.health.up = status.up
            self.health.poll_duration = status.poll_duration
        return changed

    def lead(self) -> None:
        """This replica polls the account (again): health comes from its own polls."""
        self.health.leader = True
        self._followed = None

    def share_status(self) -> None:
        """Record the last poll's outcome for the standbys (see :meth:`follow`)."""
        status = PollStatus(self.health.up, self.health.poll_duration, self._clock().timestamp())
        self._store.record_poll_status(self.type, self.account, status)

    def _observe(self, endpoint: str, code: str) -> None:
        key = (endpoint, code)
        self.health.requests[key] = self.health.requests.get(key, 0) + 1

    def _keys_due(self, now: float) -> bool:
        listed = self._keys_listed_at
        return listed is None or now - listed >= self._config.poll.api_keys_interval

    def _provider(self, list_api_keys: bool = True) -> Provider:
        """The provider for one poll; ``list_api_keys=False``: an HTTP provider skips its
        API-key listing this time (see ``poll.api_keys_interval``)."""
        poll = self._config.poll
        retry = RetryPolicy(
            max_attempts=poll.max_attempts,
            backoff_initial=poll.backoff_initial,
            backoff_max=poll.backoff_max,
            max_retry_after=poll.max_retry_after,
        )
        try:
            key = (
                resolve_key(self._provider_config, dict(self._env) if self._env else None)
                if self._provider_config.uses_key
                else Secret("")  # the provider gets its credential another way
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        provider = self._provider_class(
            self._provider_config, self._client, key, retry=retry, observer=self._observe
        )
        if isinstance(provider, HttpProvider):
            provider.list_api_keys = list_api_keys
        return provider

    def window(self, today: date) -> tuple[date, date, bool]:
        """The days to read now: (start, end exclusive, is_backfill)."""
        state = self._store.provider_state(self.type, self.account)
        end = today + timedelta(days=1)
        if state is None or not state.get("backfilled_from"):
            return today - timedelta(days=self._config.poll.backfill_days), end, True
        return today - timedelta(days=self._config.poll.lookback_days), end, False

    def poll(self) -> bool:
        """One poll cycle. Returns True on success; False on failure or when one is running."""
        if not self._lock.acquire(blocking=False):
            log.warning("%s/%s: previous poll still running; skipped", self.type, self.account)
            return False
        started = time.monotonic()
        try:
            now = self._clock()
            today = now.date()
            start, end, backfill = self.window(today)
            try:
                keys_due = self._keys_due(now.timestamp())
                result = self._provider(keys_due).fetch(start, end)
                repeats = duplicate_keys(result)
                if repeats:
                    raise ParseError(
                        f"{len(repeats)} record(s) read twice in one poll (first: "
                        f"{repeats[0]}); not storing a window that would count them twice"
                    )
                result.billing = [replace(b, observed_at=now) for b in result.billing]
                self._store.replace_window(self.type, self.account, result, self._annotate)
            except ProviderError as exc:
                self._failed(exc.reason, str(exc))
                return False
            except Exception as exc:  # a payload shape we did not foresee: fail this poll only
                log.exception("%s/%s: poll failed unexpectedly", self.type, self.account)
                self._failed("parse", f"{type(exc).__name__}: {exc}")
                return False
            finished = self._clock()
            if keys_due:
                self._keys_listed_at = now.timestamp()
            complete_through = midnight(today - self._lag)
            self._store.record_success(
                self.type, self.account, finished, complete_through, start if backfill else None
            )
            self.health.up = True
            self.last_backfill = backfill
            self._degraded(result.degraded)
            self.health.last_success = finished.timestamp()
            self.health.data_complete_through = complete_through.timestamp()
            log.info(
                "%s/%s: polled %s..%s (%d usage rows, %d cost rows, %d billing values)%s",
                self.type,
                self.account,
                start,
                end - timedelta(days=1),
                len(result.usage),
                len(result.costs),
                len(result.billing),
                " [backfill]" if backfill else "",
            )
            return True
        finally:
            self.health.poll_duration = time.monotonic() - started
            self._lock.release()

    def _degraded(self, degraded: Mapping[str, str]) -> None:
        """Count a poll that fell back to a coarser query; log each reason once (a warning
        the first time, then at debug level: the finer query is tried again every poll)."""
        for reason, message in sorted(degraded.items()):
            self.health.degraded[reason] = self.health.degraded.get(reason, 0) + 1
            first = reason not in self._degraded_logged
            self._degraded_logged.add(reason)
            log.log(
                logging.WARNING if first else logging.DEBUG,
                "%s/%s: degraded poll (reason=%s): %s%s",
                self.type,
                self.account,
                reason,
                message,
                "; counted in aicost_poll_degraded_total, logged once" if first else "",
            )

    def _failed(self, reason: str, message: str) -> None:
        self.health.up = False
        self.health.errors[reason] = self.health.errors.get(reason, 0) + 1
        log.error(
            "%s/%s: poll failed (reason=%s): %s; stored data unchanged, retrying next cycle",
            self.type,
            self.account,
            reason,
            message,
        )
