"""Snapshot building: the stored history of ``today`` -> every value ``/metrics`` shows.

After every poll and FX refresh the composition root asks :class:`SnapshotBuilder` for a
new :class:`~exporter.snapshot.Snapshot`: windows, governance (attribution, budgets,
forecasts, baselines, new streams), recommendations (whose first-seen dates it records in
the ledger), billing state in the accounting currency, and the FX state. It reads the
store and the FX service; it never polls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

from exporter.analytics import cardinality, governance
from exporter.analytics.aggregated import CubeAnalytics
from exporter.analytics.anomaly import NEW_STREAM_DAYS
from exporter.analytics.billing import compute_billing, earliest_period_start
from exporter.analytics.cube import Cube
from exporter.analytics.rec_state import RecommendationState
from exporter.analytics.recommendations import (
    Findings,
    compute_recommendations,
    dismissal_for,
    publish,
)
from exporter.analytics.unit_economics import Caps, compute_app_metrics
from exporter.analytics.windows import history_start
from exporter.clock import Clock
from exporter.config import Config
from exporter.fx.rates import FxError
from exporter.fx.service import FxService
from exporter.heap import collect_daily, refresh_heap
from exporter.pricing import Catalogue, ModelMaps
from exporter.records import BillingRecord, CostRecord, UsageRecord
from exporter.snapshot import (
    AppMetrics,
    BillingGauges,
    Governance,
    ProviderHealth,
    RecommendationMetrics,
    Snapshot,
)
from exporter.store import Store

log = logging.getLogger(__name__)


def history_range(today: date) -> tuple[date, date]:
    """The days ``[start, end)`` every window and governance analytic of ``today`` reads
    (recommendations read the store's aggregates: analytics.rec_state)."""
    start = min(history_start(today), governance.history_start(today))
    return start, today + timedelta(days=1)


def load_history(
    store: Store, today: date, currency: str
) -> tuple[list[UsageRecord], list[CostRecord], list[CostRecord]]:
    """The stored rows every window and governance analytic of ``today`` needs: (usage,
    costs converted to ``currency``, cost rows withheld for lack of a rate)."""
    start, end = history_range(today)
    costs, withheld = store.converted_costs_between(start, end, currency)
    return store.usage_between(start, end), costs, withheld


def load_governance(
    config: Config,
    store: Store,
    today: date,
    usage: list[UsageRecord],
    costs: list[CostRecord],
) -> Governance:
    """Attribution, budgets, forecasts, baselines and new streams from the loaded rows."""
    first_seen = store.streams_first_seen(today - timedelta(days=NEW_STREAM_DAYS))
    return governance.compute_governance(config, today, costs, usage, store.projects(), first_seen)


def find_recommendations(
    store: Store,
    config: Config,
    today: date,
    catalogue: Catalogue,
    maps: ModelMaps,
    history: tuple[list[UsageRecord], list[CostRecord]] | None = None,
) -> Findings:
    """Every recommendation the stored history supports on ``today`` (reads, never writes).

    From the store's aggregates (:class:`~exporter.analytics.rec_state.RecommendationState`);
    ``history``: usage and cost rows already read from ``recommendations_start(today)``, to
    run the record-based rules over instead.
    """
    if history is None:
        state = RecommendationState(store, config.currency, catalogue, maps, config.recommendations)
        return state.findings(today, store.api_keys())
    usage, costs = history
    return compute_recommendations(
        today, usage, costs, store.api_keys(), catalogue, maps, config.recommendations
    )


class SnapshotBuilder:
    """Builds snapshots of one store; remembers what it already warned about."""

    def __init__(
        self,
        config: Config,
        store: Store,
        fx: FxService,
        catalogue: Catalogue,
        maps: ModelMaps,
        clock: Clock,
    ) -> None:
        self.config = config
        self.store = store
        self.fx = fx
        self.catalogue = catalogue
        self.maps = maps
        self.clock = clock
        self._unmatched_budgets: set[str] = set()
        self._billing_withheld: set[tuple[str, str, str, date]] = set()  # already logged
        # the windows' and governance's per-series x day arrays, kept between refreshes
        self.cube = Cube(store, config.currency)
        self.analytics = CubeAnalytics(config, self.cube)
        # recommendation aggregates per account, kept between refreshes
        self.rec_state = RecommendationState(
            store, config.currency, catalogue, maps, config.recommendations
        )
        # (today, the live recommendations' ids) last noted in the ledger, with its answer
        self._noted: tuple[tuple[date, list[str]], dict[str, date]] | None = None
        self.timings: dict[str, float] = {}  # seconds per stage of the last build (bench, logs)
        self._building = threading.Lock()  # the caches above are one refresh's at a time

    def build(self, health: list[ProviderHealth]) -> Snapshot:
        """The snapshot of the history now. ``health``: copies taken BEFORE the history is
        read, so a poll finishing meanwhile cannot show up=1 beside data read before its
        rows were stored (pollers run concurrently)."""
        with self._building:
            collect_daily(self.clock().date())  # see exporter.heap
            with refresh_heap():
                return self._build(health)

    def _build(self, health: list[ProviderHealth]) -> Snapshot:
        today = self.clock().date()
        self.timings = {}
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            self.timings[stage] = now - clock
            clock = now

        self.cube.update(*history_range(today))
        lap("arrays")
        self.analytics.parts(today)  # windows, baselines, forecasts of changed accounts
        lap("per_account")
        first_seen = self.store.streams_first_seen(today - timedelta(days=NEW_STREAM_DAYS))
        gov = self.analytics.governance(today, self.store.projects(), first_seen)
        lap("governance")
        # An empty history, or one some providers have not been polled into yet (the demo's
        # first minute, a new account), may match nothing for now: no news until each
        # configured account has had its first poll.
        if self.analytics.has_costs() and all(
            h.last_success or any(h.errors.values()) for h in health
        ):
            self._warn_unmatched(gov)
        metrics = self.config.metrics  # what is not published is never merged
        totals = cardinality.select(self.analytics.windows(today, metrics), metrics)
        rollups = self.analytics.rollups(today)  # of every window, before select trims
        lap("windows")
        recommendations = self._recommendations(today)
        lap("recommendations")
        billing = self._billing(today, {(h.provider, h.account) for h in health})
        lap("billing")
        fx, app = self.fx.state(today), self.app_metrics(today)
        lap("fx_app")
        return Snapshot(
            totals=totals,
            rollups=rollups,
            governance=gov,
            health=health,
            fx=fx,
            recommendations=recommendations,
            billing=billing,
            app=app,
        )

    def app_metrics(self, today: date | None = None) -> AppMetrics:
        """The request-level metrics alone (refreshed more often than the billed ones)."""
        return load_app_metrics(self.config, self.store, self.fx, today or self.clock().date())

    def _billing(self, today: date, configured: set[tuple[str, str]]) -> BillingGauges:
        """Billing state of the configured accounts, in the accounting currency.

        Each value is converted at the ECB rate of the day it was observed; one without a
        rate is withheld (logged once per value and day), never exposed in its source
        currency under the accounting currency's label. The invoice gap is taken against
        the source amounts of the period's daily costs, then converted (see
        :mod:`exporter.analytics.billing`).
        """
        currency = self.config.currency
        rated: list[tuple[BillingRecord, Decimal]] = []
        for b in self.store.billing():
            if (b.provider, b.account) not in configured:
                continue
            day = b.observed_at.date() if b.observed_at else today
            try:
                rated.append((b, self.fx.rate(b.currency, currency, day).value))
            except FxError as exc:
                if (noted := (b.provider, b.account, b.kind, day)) not in self._billing_withheld:
                    self._billing_withheld.add(noted)
                    log.warning(
                        "%s/%s: %s withheld: no %s->%s rate for %s (%s): %s",
                        b.provider, b.account, b.kind, b.currency, currency, day,
                        exc.reason, exc,
                    )  # fmt: skip
        period_start = earliest_period_start([b for b, _ in rated])
        if period_start is None:
            return compute_billing(rated, [], currency)
        source_costs = self.store.costs_between(period_start, today + timedelta(days=1))
        return compute_billing(rated, source_costs, currency)

    def _recommendations(self, today: date) -> RecommendationMetrics:
        """Compute, record first-seen dates of the non-dismissed ones, and publish."""
        cfg = self.config.recommendations
        try:
            findings = self._findings(today)
        except FxError as exc:
            log.warning("recommendations withheld: catalogue prices cannot be converted: %s", exc)
            return RecommendationMetrics()
        live = [
            r.identity()
            for r in findings.recommendations
            if dismissal_for(r, cfg.dismissed) is None
        ]
        noted = (today, sorted(r["id"] for r in live))
        if self._noted is not None and self._noted[0] == noted:
            first_seen = self._noted[1]  # the same ones, already noted today
        else:
            first_seen = self.store.note_recommendations(live, today)
            self._noted = (noted, first_seen)
        return publish(
            findings,
            currency=self.config.currency,
            dismissed=cfg.dismissed,
            first_seen=first_seen,
            max_series=cfg.max_series,
        )

    def _findings(self, today: date) -> Findings:
        """:func:`find_recommendations` from the aggregates kept between refreshes: a
        refresh re-reads only the (account, day)s written since the last one, and reruns
        the per-account rules only for accounts whose days, keys or date changed."""
        return self.rec_state.findings(today, self.store.api_keys())

    def _warn_unmatched(self, gov: Governance) -> None:
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


def usd_rate(fx: FxService, currency: str) -> Callable[[date], Decimal | None]:
    """USD -> ``currency`` at the ECB rate of a day; None when there is none."""

    def rate(day: date) -> Decimal | None:
        try:
            return fx.rate("USD", currency, day).value
        except FxError:
            return None

    return rate


def load_app_metrics(config: Config, store: Store, fx: FxService, today: date) -> AppMetrics:
    """The request-level metrics of the ingested requests (see analytics.unit_economics)."""
    currency = config.currency
    yesterday = today - timedelta(days=1)
    rows = store.request_days()
    billed: list[CostRecord] = []
    if any(r.day == yesterday for r in rows):  # billed cost is compared with those only
        billed, _withheld = store.converted_costs_between(yesterday, today, currency)
    return compute_app_metrics(
        rows,
        store.request_carry(currency),
        billed,
        today,
        currency,
        Caps.of(store.label_order, config.ingest),
        store.label_order,
        usd_rate(fx, currency),
    )
