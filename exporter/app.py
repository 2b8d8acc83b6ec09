"""The composition root: the one place that wires providers, store, FX and exposition.

:func:`build` turns a validated config into a running :class:`App` (store opened and
migrated, FX service, catalogue, one poller per configured account, the first snapshot
rendered); :func:`open_history` gives the read-side commands the same objects without
pollers. Every command of :mod:`exporter.cli` gets its objects here; the APScheduler jobs
live in :mod:`exporter.schedule`.

Data path: provider -> records -> poller -> store (FX columns written in) -> analytics
-> snapshot -> exposition -> bytes -> server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

import httpx

from exporter.analytics.build import SnapshotBuilder, usd_rate
from exporter.analytics.unit_economics import RowConverter
from exporter.clock import Clock, utc_now
from exporter.config import POSTGRES_EXTRA, Config, Secret, resolve_storage_password
from exporter.election import (
    MAINTENANCE,
    AdvisoryLocks,
    AlwaysLeader,
    Election,
    LockConnection,
    poll_job,
)
from exporter.exposition import Rendered, Renderer
from exporter.fx.service import FxService
from exporter.intake import Intake
from exporter.poller import Poller
from exporter.pricing import Catalogue, Converter
from exporter.providers import REGISTRY
from exporter.refresh import Refresher
from exporter.snapshot import AppMetrics, ProviderHealth, Snapshot
from exporter.store import StorageError, Store, check_storage, retention_cutoff
from exporter.store.access import connect_postgres

log = logging.getLogger(__name__)

UNPRICED_REQUESTS = "its ingested requests are counted with tokens and no estimated cost"


def usd_converter(fx: FxService, currency: str) -> Converter | None:
    """Catalogue prices are USD: convert an amount of a day at that day's ECB rate."""
    if currency == "USD":
        return None

    def convert(day: date, amount: Decimal) -> Decimal:
        return amount * fx.rate("USD", currency, day).value

    return convert


@dataclass
class History:
    """The history of a config and what reads it: store, FX service, catalogue, maps."""

    config: Config
    store: Store
    fx: FxService
    catalogue: Catalogue

    def close(self) -> None:
        self.fx.close()
        self.store.close()


def open_history(
    config: Config,
    *,
    clock: Clock = utc_now,
    fx_transport: httpx.BaseTransport | None = None,
    store: Store | None = None,
    env: Mapping[str, str] | None = None,
) -> History:
    """Open (creating and migrating) ``config.storage`` (path or url) with its FX service
    and the catalogue in the accounting currency. ``store``: one opened already
    (read-only); ``env``: where ``storage.password_env`` is read (default os.environ)."""
    store = store if store is not None else open_store(config, env=env)
    fx = FxService(config, store, clock=clock, transport=fx_transport)
    catalogue = Catalogue(currency=config.currency, convert=usd_converter(fx, config.currency))
    return History(config, store, fx, catalogue)


class App:
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
        history = open_history(config, clock=clock, fx_transport=fx_transport, env=env)
        self.store, self.fx, self.catalogue = history.store, history.fx, history.catalogue
        self.maps = config.recommendations.maps()
        self.pollers = [
            Poller(
                config,
                p,
                self.store,
                REGISTRY[p.type],
                clock=clock,
                transport=transport,
                env=env,
                annotate=self.fx.columns,
            )
            for p in config.providers
        ]
        self.builder = SnapshotBuilder(
            config, self.store, self.fx, self.catalogue, self.maps, clock
        )
        self.intake = (
            Intake(
                config.ingest,
                self.store,
                Catalogue(unpriced_note=UNPRICED_REQUESTS),
                clock=clock,
                env=env,
            )
            if config.ingest.enabled
            else None
        )
        self._render_lock = threading.Lock()
        self._render = Renderer()  # keeps the text of the parts a refresh did not change
        # Scheduled polls ask for one coalesced refresh (see exporter.refresh).
        self._polls_running = 0  # scheduled polls in flight (the refresher waits for them)
        self._polls_lock = threading.Lock()
        interval = config.poll.interval  # a burst never delays a refresh past half of it
        self._follow_delay = min(60.0, interval / 2)  # a standby's second look (poll)
        self._stopped = False
        self.refresher = Refresher(
            self._after_polls,
            busy=lambda: self._polls_running > 0,
            settle=min(2.0, interval / 4),
            max_delay=min(120.0, interval / 2),
        )
        self._snapshot: Snapshot | None = None
        # With a shared PostgreSQL history one replica polls each account (election).
        self.shared = config.storage.postgres
        self.election = open_election(config, self.store)
        for poller in self.pollers if self.shared else ():
            poller.health.leader = False  # until this replica wins the account's lock
        # Called with every new rendering (the serving process publishes it; exporter.serving).
        self.on_render: Callable[[Rendered], object] | None = None
        # A changed `currency` (or newly bundled rates) re-converts from the source amounts.
        self.fx.convert_stored()
        self.rendered: Rendered = self.refresh()  # ready: the store is loaded and rendered

    def health(self) -> list[ProviderHealth]:
        return [p.health for p in self.pollers]

    def snapshot(self) -> Snapshot:
        snapshot = self.builder.build([h.copy() for h in self.health()])
        if self.intake is not None:
            snapshot.app.rejected = self.intake.rejected_counts()
        return snapshot

    def refresh(self) -> Rendered:
        with self._render_lock:
            self._snapshot = self.snapshot()
            self.rendered = self._render(self._snapshot)
            self._rendered()
            return self.rendered

    def refresh_ingest(self) -> Rendered:
        """Re-render with the ingested requests counted so far (the billed part as of the
        last full refresh); a no-op while nothing new arrived."""
        intake = self.intake
        if intake is None:
            return self.rendered
        with self._render_lock:
            if self._snapshot is None or not intake.dirty.is_set():
                return self.rendered
            intake.dirty.clear()
            app: AppMetrics = self.builder.app_metrics()
            app.rejected = intake.rejected_counts()
            self._snapshot = replace(self._snapshot, app=app)
            self.rendered = self._render(self._snapshot)
            self._rendered()
            return self.rendered

    def _rendered(self) -> None:
        if self.on_render is not None:
            self.on_render(self.rendered)

    def poll_once(self) -> bool:
        """Poll every provider once (backfilling where needed); True if all succeeded."""
        ok = True
        for poller in self.pollers:
            ok = poller.poll() and ok
        self.fx_refresh()
        self.prune()
        return ok

    def poll(self, poller: Poller) -> None:
        """One scheduled poll of one account; the re-conversion and re-render run once
        after a burst of polls, on the refresher's thread (scrapes keep the old bytes).

        A backfill may store costs of days the FX refresh at start did not know it needed
        (the two race at start), so it is followed by a refresh of its own.

        On a shared history a replica that does not hold the account's lock makes no
        provider call: it takes the shared poll state and refreshes when it moved."""
        if not self.election.holds(poll_job(poller.type, poller.account)):
            self._follow(poller)
            # The leader polls at the same scheduled times, so its writes usually land just
            # after this look: look again half an interval later (at most 60 s), so a
            # standby's /metrics lag the leader's by about half an interval, not a whole one.
            again = threading.Timer(self._follow_delay, self._follow, args=(poller,))
            again.daemon = True
            again.start()
            return
        poller.lead()
        with self._polls_lock:
            self._polls_running += 1
        try:
            ok = poller.poll()
        finally:
            with self._polls_lock:
                self._polls_running -= 1
        if self.shared:
            poller.share_status()
        if ok and poller.last_backfill:
            self.fx_refresh()
            return
        self.refresher.request()

    def _after_polls(self) -> None:
        self.fx.convert_stored()
        self.refresh()

    def fx_refresh(self) -> None:
        """Fetch the ECB rates the stored costs need, re-convert, re-render."""
        changed = self.fx.refresh_rates()
        self.fx.convert_stored(since=changed)
        self.refresh()

    def prune(self) -> None:
        """Retention; on a shared history only the replica holding the maintenance lock."""
        if not self.election.holds(MAINTENANCE):
            return
        cutoff = retention_cutoff(self.clock().date(), self.config.storage.retention_days)
        removed = self.store.prune(cutoff)
        if removed:
            log.info("retention: removed %d rows older than %s", removed, cutoff)
        if self.intake is not None:
            raw_cutoff = retention_cutoff(self.clock().date(), self.config.ingest.retention_days)
            convert = RowConverter(usd_rate(self.fx, self.config.currency))
            removed = self.store.prune_requests(raw_cutoff, cutoff, convert, self.config.currency)
            if removed:
                log.info("retention: removed %d ingested request rows", removed)

    def _follow(self, poller: Poller) -> None:
        """A standby's look at the shared poll state; a refresh when it moved."""
        if self._stopped:
            return
        try:
            if poller.follow():
                self.refresher.request()
        except Exception:  # a store closing under a late timer: the next poll looks again
            log.debug("%s/%s: shared poll state not read", poller.type, poller.account,
                      exc_info=True)  # fmt: skip

    def stop(self) -> None:
        self._stopped = True
        self.refresher.stop()
        self.election.close()  # frees this replica's locks for the others
        for poller in self.pollers:
            poller.close()
        self.fx.close()
        self.store.close()


def build(
    config: Config,
    *,
    clock: Clock = utc_now,
    transport: httpx.BaseTransport | None = None,
    env: Mapping[str, str] | None = None,
    fx_transport: httpx.BaseTransport | None = None,
) -> App:
    """The application of ``config``, loaded and rendered (not yet scheduled).

    ``transport``/``fx_transport``: httpx transports for the provider and ECB clients
    (tests); ``env``: where key environment variables are read (default os.environ)."""
    return App(config, clock=clock, transport=transport, env=env, fx_transport=fx_transport)


def open_store(
    config: Config, *, read_only: bool = False, env: Mapping[str, str] | None = None
) -> Store:
    """The history of ``config`` alone; ``read_only`` never creates, migrates or writes it.
    A PostgreSQL ``storage.url`` gets its password from ``password_env``/``password_file``."""
    password = storage_password(config, env)
    if password is None:
        return Store(config.storage.path, read_only=read_only)
    return Store(config.storage.target, read_only=read_only, password=password.value)


def storage_password(config: Config, env: Mapping[str, str] | None = None) -> Secret | None:
    """The PostgreSQL password (None with SQLite); StorageError when it cannot be read or
    psycopg is missing (one line naming the extra)."""
    if config.storage.url is None:
        return None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise StorageError(POSTGRES_EXTRA) from None
    try:
        return resolve_storage_password(config.storage, dict(env) if env is not None else None)
    except ValueError as exc:
        raise StorageError(str(exc)) from None


def open_election(config: Config, store: Store) -> Election:
    """Who polls what: every job here with SQLite; with PostgreSQL, advisory locks on a
    dedicated connection the store opens (at the first try, see exporter.election)."""
    if config.storage.url is None:
        return AlwaysLeader()

    def connect() -> LockConnection:
        conn: LockConnection = store.connect().conn  # psycopg, autocommit
        return conn

    return AdvisoryLocks(connect)


def open_history_read_only(config: Config) -> History:
    """The history of ``config`` for the read-only FinOps commands (focus, report,
    backfill, whatif): the store is never created, migrated or written, and nothing is
    fetched (FX rates come from the cache in the history and the bundled ECB history)."""
    return open_history(config, store=open_store(config, read_only=True))


def usd_catalogue() -> Catalogue:
    """List prices in USD, the providers' billing currency (FOCUS ``ListCost``)."""
    return Catalogue(currency="USD")


def storage_problems(config: Config, *, write: bool = True) -> list[str]:
    """Why ``config.storage.path`` cannot be opened (read-write for ``run`` when ``write``);
    empty when it can. Creates, modifies and replaces nothing. A PostgreSQL url: psycopg,
    the password and a read-only connection are checked."""
    if config.storage.url is not None:
        return postgres_problems(config)
    try:
        check_storage(config.storage.path, write=write)
    except StorageError as exc:
        return [str(exc)]
    return []


def postgres_problems(config: Config, env: Mapping[str, str] | None = None) -> list[str]:
    """Why the PostgreSQL ``storage.url`` cannot be reached (never quoting the password)."""
    try:
        password = storage_password(config, env)
    except StorageError:  # psycopg or the password: exporter.config.check reports those
        return []
    assert password is not None and config.storage.url is not None
    try:
        connect_postgres(config.storage.url, password=password.value, read_only=True).close()
    except StorageError as exc:
        return [str(exc)]
    return []


__all__ = [
    "App",
    "History",
    "StorageError",
    "build",
    "open_election",
    "open_history",
    "open_history_read_only",
    "open_store",
    "storage_problems",
    "usd_catalogue",
    "usd_converter",
]
