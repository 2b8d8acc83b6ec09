"""Polling and refresh: provider -> records -> store -> analytics -> snapshot -> bytes.

* The first successful poll of an account backfills ``poll.backfill_days``; later polls
  re-read today plus ``poll.lookback_days`` and overwrite those days.
* One poll at a time per account (a poll still running when the next is due is skipped).
* A failed poll writes nothing, is counted by reason, and is retried next cycle. Inside a
  poll, 429s honour Retry-After and 5xx/timeouts back off with jitter (see
  :class:`~exporter.providers.base.RetryPolicy`).
* Costs are converted to the accounting currency as they are written (the poll's rows
  land converted), and the FX conversion step re-runs after every poll and every FX
  refresh (hourly by default, and at start), before the snapshot is rendered.
* After every poll the snapshot is recomputed from SQLite and ``/metrics`` re-rendered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
from apscheduler.schedulers.background import BackgroundScheduler

from exporter.analytics import governance
from exporter.analytics.anomaly import NEW_STREAM_DAYS
from exporter.analytics.recommendations import (
    Findings,
    RecommendationMetrics,
    compute_recommendations,
    dismissal_for,
    publish,
    recommendations_start,
)
from exporter.analytics.windows import compute_windows, history_start
from exporter.clock import Clock, midnight, utc_now
from exporter.config import Config, ProviderConfig, resolve_key
from exporter.exposition import ProviderHealth, Rendered, Snapshot, render
from exporter.fx import FxError, FxService
from exporter.pricing import Catalogue, Converter, ModelMaps
from exporter.providers import REGISTRY
from exporter.providers.base import (
    ERROR_REASONS,
    ConfigError,
    Provider,
    ProviderError,
    RetryPolicy,
)
from exporter.records import CostRecord, UsageRecord
from exporter.store import CostAnnotator, Store, retention_cutoff

log = logging.getLogger(__name__)


def load_history(
    store: Store, today: date, currency: str
) -> tuple[list[UsageRecord], list[CostRecord], list[CostRecord]]:
    """The stored rows every window, governance analytic and recommendation of ``today``
    needs: (usage, costs converted to ``currency``, cost rows withheld for lack of a rate)."""
    start = min(history_start(today), governance.history_start(today), recommendations_start(today))
    end = today + timedelta(days=1)
    costs, withheld = store.converted_costs_between(start, end, currency)
    return store.usage_between(start, end), costs, withheld


def load_governance(
    config: Config,
    store: Store,
    today: date,
    usage: list[UsageRecord],
    costs: list[CostRecord],
) -> governance.Governance:
    """Attribution, budgets, forecasts, baselines and new streams from the loaded rows."""
    first_seen = store.streams_first_seen(today - timedelta(days=NEW_STREAM_DAYS))
    return governance.compute_governance(config, today, costs, usage, store.projects(), first_seen)


class Poller:
    """Polls one configured provider account."""

    def __init__(
        self,
        config: Config,
        provider_config: ProviderConfig,
        store: Store,
        *,
        clock: Clock = utc_now,
        transport: httpx.BaseTransport | None = None,
        env: Mapping[str, str] | None = None,
        annotate: CostAnnotator | None = None,
    ) -> None:
        self.type = provider_config.type
        self.account = provider_config.account
        self._config = config
        self._provider_config = provider_config
        self._store = store
        self._clock = clock
        self._env = env
        self._annotate = annotate
        self._lock = threading.Lock()
        self._client = httpx.Client(
            timeout=config.poll.timeout, transport=transport, follow_redirects=False
        )
        self.health = ProviderHealth(self.type, self.account)
        self.health.errors = dict.fromkeys(ERROR_REASONS, 0)
        state = store.provider_state(self.type, self.account)
        if state:
            self.health.last_success = state["last_success"] or 0.0
            self.health.data_complete_through = state["data_complete_through"] or 0.0

    def close(self) -> None:
        self._client.close()

    def _observe(self, endpoint: str, code: str) -> None:
        key = (endpoint, code)
        self.health.requests[key] = self.health.requests.get(key, 0) + 1

    def _provider(self) -> Provider:
        poll = self._config.poll
        retry = RetryPolicy(
            max_attempts=poll.max_attempts,
            backoff_initial=poll.backoff_initial,
            backoff_max=poll.backoff_max,
            max_retry_after=poll.max_retry_after,
        )
        try:
            key = resolve_key(self._provider_config, dict(self._env) if self._env else None)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        cls: Any = REGISTRY[self.type]
        return cls(self._provider_config, self._client, key, retry=retry, observer=self._observe)

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
                result = self._provider().fetch(start, end)
                self._store.replace_window(self.type, self.account, result, self._annotate)
            except ProviderError as exc:
                self._failed(exc.reason, str(exc))
                return False
            except Exception as exc:  # a payload shape we did not foresee: fail this poll only
                log.exception("%s/%s: poll failed unexpectedly", self.type, self.account)
                self._failed("parse", f"{type(exc).__name__}: {exc}")
                return False
            finished = self._clock()
            complete_through = midnight(today)
            self._store.record_success(
                self.type, self.account, finished, complete_through, start if backfill else None
            )
            self.health.up = True
            self.health.last_success = finished.timestamp()
            self.health.data_complete_through = complete_through.timestamp()
            log.info(
                "%s/%s: polled %s..%s (%d usage rows, %d cost rows)%s",
                self.type,
                self.account,
                start,
                end - timedelta(days=1),
                len(result.usage),
                len(result.costs),
                " [backfill]" if backfill else "",
            )
            return True
        finally:
            self.health.poll_duration = time.monotonic() - started
            self._lock.release()

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


def usd_converter(fx: FxService, currency: str) -> Converter | None:
    """Catalogue prices are USD: convert an amount of a day at that day's ECB rate."""
    if currency == "USD":
        return None

    def convert(day: date, amount: Decimal) -> Decimal:
        return amount * fx.rate("USD", currency, day).value

    return convert


def find_recommendations(
    store: Store,
    config: Config,
    today: date,
    catalogue: Catalogue,
    maps: ModelMaps,
    history: tuple[list[UsageRecord], list[CostRecord]] | None = None,
) -> Findings:
    """Every recommendation the stored history supports on ``today`` (reads, never writes).

    ``history``: usage and cost rows already read from ``recommendations_start(today)``.
    """
    if history is None:
        end = today + timedelta(days=1)
        start = recommendations_start(today)
        converted, _withheld = store.converted_costs_between(start, end, config.currency)
        history = (store.usage_between(start, end), converted)
    usage, costs = history
    return compute_recommendations(
        today, usage, costs, store.api_keys(), catalogue, maps, config.recommendations
    )


class Service:
    """The running exporter: store, pollers, and the pre-rendered exposition."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = utc_now,
        transport: httpx.BaseTransport | None = None,
        env: Mapping[str, str] | None = None,
        fx_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.store = Store(config.storage.path)
        self.fx = FxService(config, self.store, clock=clock, transport=fx_transport)
        self.catalogue = Catalogue(
            currency=config.currency, convert=usd_converter(self.fx, config.currency)
        )
        self.maps = config.recommendations.maps()
        self.pollers = [
            Poller(
                config,
                p,
                self.store,
                clock=clock,
                transport=transport,
                env=env,
                annotate=self.fx.columns,
            )
            for p in config.providers
        ]
        self._render_lock = threading.Lock()
        self._scheduler: BackgroundScheduler | None = None
        self._unmatched_budgets: set[str] = set()
        # A changed `currency` (or newly bundled rates) re-converts from the source amounts.
        self.fx.convert_stored()
        self.rendered: Rendered = self.refresh()  # ready: the store is loaded and rendered

    def health(self) -> list[ProviderHealth]:
        return [p.health for p in self.pollers]

    def snapshot(self) -> Snapshot:
        today = self.clock().date()
        start = history_start(today)
        usage, costs, withheld = load_history(self.store, today, self.config.currency)
        gov = load_governance(self.config, self.store, today, usage, costs)
        if costs:  # an empty history (before the first poll) matches nothing: no news
            self._warn_unmatched(gov)
        return Snapshot(
            totals=compute_windows(
                today,
                [u for u in usage if u.day >= start],
                [c for c in costs if c.day >= start],
                [w for w in withheld if w.day >= start],
            ),
            governance=gov,
            health=self.health(),
            fx=self.fx.state(today),
            recommendations=self._recommendations(
                today,
                [u for u in usage if u.day >= recommendations_start(today)],
                [c for c in costs if c.day >= recommendations_start(today)],
            ),
        )

    def _recommendations(
        self, today: date, usage: list[UsageRecord], costs: list[CostRecord]
    ) -> RecommendationMetrics:
        """Compute, record first-seen dates of the non-dismissed ones, and publish."""
        cfg = self.config.recommendations
        try:
            findings = find_recommendations(
                self.store, self.config, today, self.catalogue, self.maps, (usage, costs)
            )
        except FxError as exc:
            log.warning("recommendations withheld: catalogue prices cannot be converted: %s", exc)
            return RecommendationMetrics()
        live = [
            r.identity()
            for r in findings.recommendations
            if dismissal_for(r, cfg.dismissed) is None
        ]
        first_seen = self.store.note_recommendations(live, today)
        return publish(
            findings,
            currency=self.config.currency,
            dismissed=cfg.dismissed,
            first_seen=first_seen,
            max_series=cfg.max_series,
        )

    def _warn_unmatched(self, gov: governance.Governance) -> None:
        """Log a budget whose scope matches no cost: once when it starts to (or at the first
        refresh with data), not on every refresh."""
        unmatched = {b.name for b in gov.budgets if not b.matched}
        for name in sorted(unmatched - self._unmatched_budgets):
            log.warning(
                "budget %s: its scope matches no cost in the last 30 days or this month "
                "(aicost_budget_scope_matched=0); check its selectors and attribution",
                name,
            )
        self._unmatched_budgets = unmatched

    def refresh(self) -> Rendered:
        with self._render_lock:
            self.rendered = render(self.snapshot())
            return self.rendered

    def poll_once(self) -> bool:
        """Poll every provider once (backfilling where needed); True if all succeeded."""
        ok = True
        for poller in self.pollers:
            ok = poller.poll() and ok
        self.fx_refresh()
        self.prune()
        return ok

    def _poll_job(self, poller: Poller) -> None:
        poller.poll()
        self.fx.convert_stored()
        self.refresh()

    def fx_refresh(self) -> None:
        """Fetch the ECB rates the stored costs need, re-convert, re-render."""
        changed = self.fx.refresh_rates()
        self.fx.convert_stored(since=changed)
        self.refresh()

    def prune(self) -> None:
        cutoff = retention_cutoff(self.clock().date(), self.config.storage.retention_days)
        removed = self.store.prune(cutoff)
        if removed:
            log.info("retention: removed %d rows older than %s", removed, cutoff)

    def start(self) -> None:
        scheduler = BackgroundScheduler(timezone="UTC")
        interval = self.config.poll.interval
        for poller in self.pollers:
            scheduler.add_job(
                self._poll_job,
                "interval",
                args=[poller],
                seconds=interval,
                next_run_time=self.clock(),
                max_instances=1,
                coalesce=True,
                misfire_grace_time=int(interval),
                id=f"poll:{poller.type}:{poller.account}",
            )
        scheduler.add_job(
            self.fx_refresh,
            "interval",
            seconds=self.config.fx.refresh_interval,
            next_run_time=self.clock(),
            max_instances=1,
            coalesce=True,
            id="fx",
        )
        scheduler.add_job(self.prune, "interval", hours=24, id="retention")
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for poller in self.pollers:
            poller.close()
        self.fx.close()
        self.store.close()
