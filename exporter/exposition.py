"""Snapshot -> pre-rendered ``/metrics`` bytes.

After every poll the scheduler builds a :class:`Snapshot` (plain values) and calls
:func:`render`, which produces the Prometheus text format and OpenMetrics, each plain and
gzipped. A scrape only picks one of those byte strings: no I/O, no computation.
"""

from __future__ import annotations

import gzip
import platform
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import (
    CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector, CollectorRegistry

from exporter import __version__
from exporter.analytics.governance import Governance
from exporter.analytics.recommendations import RecommendationMetrics
from exporter.analytics.windows import TOKEN_WINDOW_NAMES, WINDOW_NAMES, WindowTotals
from exporter.clock import midnight_ts
from exporter.metrics import BY_NAME

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class ProviderHealth:
    provider: str
    account: str
    up: bool = False
    last_success: float = 0.0
    data_complete_through: float = 0.0
    poll_duration: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)  # reason -> count
    requests: dict[tuple[str, str], int] = field(default_factory=dict)  # (endpoint, code)


@dataclass(frozen=True)
class FxRateSample:
    """The rate applied for the latest day: ``rate`` units of ``quote`` per unit of ``base``."""

    base: str  # the source currency costs are billed in
    quote: str  # the accounting currency
    source: str  # ecb-daily | ecb-hist-90d | ecb-hist | bundled | identity
    rate: Decimal
    rate_date: date  # the ECB day the rate is of (earlier on weekends, holidays, outages)


@dataclass
class FxState:
    rates: list[FxRateSample] = field(default_factory=list)
    unconverted: dict[tuple[str, str, str], int] = field(
        default_factory=dict
    )  # base, quote, reason
    refresh_errors: dict[str, int] = field(default_factory=dict)  # reason -> count


@dataclass
class Snapshot:
    totals: WindowTotals = field(default_factory=WindowTotals)
    governance: Governance = field(default_factory=Governance)
    health: list[ProviderHealth] = field(default_factory=list)
    fx: FxState = field(default_factory=FxState)
    recommendations: RecommendationMetrics = field(default_factory=RecommendationMetrics)


@dataclass(frozen=True)
class Rendered:
    text: bytes
    text_gzip: bytes
    openmetrics: bytes
    openmetrics_gzip: bytes

    def pick(self, accept: str, accept_encoding: str) -> tuple[bytes, str, bool]:
        """(body, content type, gzipped) for a scrape's Accept / Accept-Encoding headers."""
        openmetrics = "application/openmetrics-text" in (accept or "")
        gz = "gzip" in (accept_encoding or "")
        if openmetrics:
            return (self.openmetrics_gzip if gz else self.openmetrics), OPENMETRICS_CONTENT_TYPE, gz
        return (self.text_gzip if gz else self.text), TEXT_CONTENT_TYPE, gz


def _gauge(name: str) -> GaugeMetricFamily:
    d = BY_NAME[name]
    return GaugeMetricFamily(name, d.help, labels=list(d.labels))


def _counter(name: str) -> CounterMetricFamily:
    d = BY_NAME[name]
    return CounterMetricFamily(name, d.help, labels=list(d.labels))


def _num(value: Decimal | int | float) -> float:
    return float(value)


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """The metric families of a snapshot, in catalogue order."""
    t = snapshot.totals
    for window in WINDOW_NAMES:
        fam = _gauge(f"aicost_cost_{window}")
        for key, amount in sorted(t.cost.get(window, {}).items()):
            fam.add_metric(list(key), _num(amount))
        yield fam
    for window in TOKEN_WINDOW_NAMES:
        fam = _gauge(f"aicost_tokens_{window}")
        for key, n in sorted(t.tokens.get(window, {}).items()):
            fam.add_metric(list(key), n)
        yield fam
    for window in WINDOW_NAMES:
        fam = _gauge(f"aicost_requests_{window}")
        for key, n in sorted(t.requests.get(window, {}).items()):
            fam.add_metric(list(key), n)
        yield fam
    recs = snapshot.recommendations
    for name, values in (
        ("aicost_cache_hit_ratio", t.cache_hit_ratio),
        ("aicost_cost_per_1k_tokens", t.cost_per_1k_tokens),
        ("aicost_cost_per_request", t.cost_per_request),
        ("aicost_cache_savings_30d", recs.cache_savings),
        ("aicost_savings_monthly", recs.savings),
        ("aicost_inactive_key_exposure_monthly", recs.key_exposure),
        ("aicost_recommendation_first_seen_timestamp_seconds", recs.first_seen),
    ):
        fam = _gauge(name)
        for key, v in sorted(values.items()):
            fam.add_metric(list(key), _num(v))
        yield fam

    yield from _governance(snapshot.governance)

    health = sorted(snapshot.health, key=lambda h: (h.provider, h.account))
    for name, attr in (
        ("aicost_up", "up"),
        ("aicost_last_success_timestamp_seconds", "last_success"),
        ("aicost_data_complete_through_timestamp_seconds", "data_complete_through"),
        ("aicost_poll_duration_seconds", "poll_duration"),
    ):
        fam = _gauge(name)
        for h in health:
            fam.add_metric([h.provider, h.account], float(getattr(h, attr)))
        yield fam
    errors = _counter("aicost_poll_errors_total")
    requests = _counter("aicost_api_requests_total")
    for h in health:
        for reason, n in sorted(h.errors.items()):
            errors.add_metric([h.provider, h.account, reason], n)
        for (endpoint, code), n in sorted(h.requests.items()):
            requests.add_metric([h.provider, h.account, endpoint, code], n)
    yield errors
    yield requests

    yield from _fx_families(snapshot.fx)

    build = _gauge("aicost_build_info")
    build.add_metric([__version__, platform.python_version()], 1)
    yield build


def _fx_families(fx: FxState) -> Iterator[Metric]:
    rate = _gauge("aicost_fx_rate")
    rate_date = _gauge("aicost_fx_rate_date_timestamp_seconds")
    for r in sorted(fx.rates, key=lambda r: (r.base, r.quote)):
        rate.add_metric([r.base, r.quote, r.source], _num(r.rate))
        rate_date.add_metric([r.base, r.quote], midnight_ts(r.rate_date))
    yield rate
    yield rate_date
    unconverted = _gauge("aicost_fx_unconverted_costs")
    for key, n in sorted(fx.unconverted.items()):
        unconverted.add_metric(list(key), n)
    yield unconverted
    errors = _counter("aicost_fx_refresh_errors_total")
    for reason, n in sorted(fx.refresh_errors.items()):
        errors.add_metric([reason], n)
    yield errors


def _governance(g: Governance) -> Iterator[Metric]:
    """Baselines, anomalies, forecasts, new streams, budgets and project attribution."""
    cur = g.currency
    baseline = _gauge("aicost_cost_daily_baseline")
    score = _gauge("aicost_cost_anomaly_score")
    for stream, b in sorted(g.baselines.items()):
        baseline.add_metric([*stream, cur], _num(b.expected))
        score.add_metric(list(stream), b.score)
    yield baseline
    yield score
    forecast = _gauge("aicost_cost_forecast_month_end")
    for stream, amount in sorted(g.forecasts.items()):
        forecast.add_metric([*stream, cur], _num(amount))
    yield forecast
    first_seen = _gauge("aicost_stream_first_seen_timestamp_seconds")
    for stream, day in sorted(g.new_streams.items()):
        first_seen.add_metric(list(stream), midnight_ts(day))
    yield first_seen

    budgets = sorted(g.budgets, key=lambda b: b.name)
    for name, attr in (
        ("aicost_budget_limit", "limit"),
        ("aicost_budget_spend", "spend"),
        ("aicost_budget_forecast", "forecast"),
        ("aicost_budget_utilization_ratio", "utilization"),
    ):
        fam = _gauge(name)
        for b in budgets:
            fam.add_metric([b.name, b.period, cur], _num(getattr(b, attr)))
        yield fam
    thresholds = _gauge("aicost_budget_threshold_ratio")
    matched = _gauge("aicost_budget_scope_matched")
    for b in budgets:
        for t in b.thresholds:
            thresholds.add_metric([b.name, format(t.normalize(), "f")], _num(t))
        matched.add_metric([b.name], 1 if b.matched else 0)
    yield thresholds
    yield matched

    info = _gauge("aicost_project_info")
    for p in g.project_info:
        a = p.attribution
        info.add_metric(
            [p.provider, p.account, p.project, p.project_name,
             a.team, a.pool, a.cost_owner, a.environment],
            1,
        )  # fmt: skip
    yield info


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        return families(self._snapshot)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # no collect() at registration time


def render(snapshot: Snapshot) -> Rendered:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    text = generate_latest(registry)
    om = generate_openmetrics(registry)
    return Rendered(
        text=text,
        text_gzip=gzip.compress(text, compresslevel=6, mtime=0),
        openmetrics=om,
        openmetrics_gzip=gzip.compress(om, compresslevel=6, mtime=0),
    )
