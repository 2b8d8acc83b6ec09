"""Snapshot -> pre-rendered ``/metrics`` bytes.

After every poll the analytics build a :class:`Snapshot` (plain values) and calls
:func:`render`, which produces the Prometheus text format and OpenMetrics, each plain and
gzipped. A scrape only picks one of those byte strings: no I/O, no computation.
"""

from __future__ import annotations

import gzip
import mmap
import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, BinaryIO

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
from prometheus_client.utils import floatToGoString

from exporter import __version__
from exporter.clock import midnight_ts
from exporter.metrics import BY_NAME, MetricDef
from exporter.snapshot import (
    TOKEN_WINDOW_NAMES,
    WINDOW_NAMES,
    AppMetrics,
    FxState,
    Governance,
    Snapshot,
)

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Chosen by measurement (benchmarks/README.md, gzip levels): level 3 compresses as fast as
# level 1 and 4 % smaller; level 6 takes 2.2-3.7x as long (paid twice per refresh, while
# the refresh holds the interpreter lock) for a body ~18 % smaller.
GZIP_LEVEL = 3

# The four variants of a rendered exposition, in this order: (OpenMetrics?, gzipped?).
VARIANTS = ((False, False), (False, True), (True, False), (True, True))

Body = bytes | mmap.mmap  # a body in memory: bytes, or a mapped file (the serving process)


def negotiate(accept: str, accept_encoding: str) -> int:
    """The index in :data:`VARIANTS` for a scrape's Accept / Accept-Encoding headers."""
    openmetrics = "application/openmetrics-text" in (accept or "")
    gz = "gzip" in (accept_encoding or "")
    return 2 * openmetrics + gz


@dataclass(frozen=True)
class Variant:
    """One body of a rendered exposition with its status line and entity headers, built
    once when the bytes are rendered (a scrape adds only Server, Date and the web
    config's headers). ``file``: the same bytes in a file, for ``sendfile``."""

    body: Body
    content_type: str
    gzip: bool
    head: bytes
    file: BinaryIO | None = None

    @classmethod
    def of(cls, body: Body, openmetrics: bool, gz: bool, file: BinaryIO | None = None) -> Variant:
        content_type = OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n" + ("Content-Encoding: gzip\r\n" if gz else "")
        ).encode("latin-1")
        return cls(body, content_type, gz, head, file)


@dataclass(frozen=True)
class Rendered:
    text: bytes
    text_gzip: bytes
    openmetrics: bytes
    openmetrics_gzip: bytes
    variants: tuple[Variant, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bodies = (self.text, self.text_gzip, self.openmetrics, self.openmetrics_gzip)
        variants = tuple(
            Variant.of(body, om, gz) for body, (om, gz) in zip(bodies, VARIANTS, strict=True)
        )
        object.__setattr__(self, "variants", variants)

    def variant(self, accept: str, accept_encoding: str) -> Variant:
        """The pre-built variant for a scrape's Accept / Accept-Encoding headers."""
        return self.variants[negotiate(accept, accept_encoding)]

    def pick(self, accept: str, accept_encoding: str) -> tuple[bytes, str, bool]:
        """(body, content type, gzipped) for a scrape's Accept / Accept-Encoding headers."""
        v = self.variant(accept, accept_encoding)
        return bytes(v.body), v.content_type, v.gzip


def _gauge(name: str) -> GaugeMetricFamily:
    d = BY_NAME[name]
    return GaugeMetricFamily(name, d.help, labels=list(d.labels))


def _counter(name: str) -> CounterMetricFamily:
    d = BY_NAME[name]
    return CounterMetricFamily(name, d.help, labels=list(d.labels))


def _num(value: Decimal | int | float) -> float:
    return float(value)


def labels(metric: MetricDef, *parts: tuple[Any, ...], **extra: object) -> list[str]:
    """The label values of ``metric``, taken BY NAME from named-tuple ``parts`` (the
    snapshot's keys) and ``extra``; a label that none of them names is an error."""
    named: dict[str, object] = {}
    for part in parts:
        fields = getattr(part, "_fields", None)
        if fields is None:
            raise TypeError(f"{metric.name}: label key {part!r} is not a named tuple")
        named.update(zip(fields, part, strict=True))
    named.update(extra)
    missing = [name for name in metric.labels if name not in named]
    if missing:
        raise KeyError(f"{metric.name}: no value for label(s) {', '.join(missing)}")
    return [str(named[name]) for name in metric.labels]


def _add(
    fam: GaugeMetricFamily | CounterMetricFamily,
    *parts: tuple[Any, ...],
    value: float,
    **extra: object,
) -> None:
    """Add one sample to ``fam``, its labels by name (a counter's family drops ``_total``)."""
    metric = BY_NAME.get(fam.name) or BY_NAME[f"{fam.name}_total"]
    fam.add_metric(labels(metric, *parts, **extra), value)


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """The metric families of a snapshot, in catalogue order."""
    t = snapshot.totals
    for window in WINDOW_NAMES:
        fam = _gauge(f"aicost_cost_{window}")
        for key, amount in sorted(t.cost.get(window, {}).items()):
            _add(fam, key, value=_num(amount))
        yield fam
    for window in TOKEN_WINDOW_NAMES:
        fam = _gauge(f"aicost_tokens_{window}")
        for token_key, n in sorted(t.tokens.get(window, {}).items()):
            _add(fam, token_key, value=n)
        yield fam
    for window in WINDOW_NAMES:
        fam = _gauge(f"aicost_requests_{window}")
        for stream, n in sorted(t.requests.get(window, {}).items()):
            _add(fam, stream, value=n)
        yield fam
    recs, b = snapshot.recommendations, snapshot.billing
    keyed: tuple[tuple[str, Mapping[Any, Decimal | float]], ...] = (
        ("aicost_cache_hit_ratio", t.cache_hit_ratio),
        ("aicost_cost_per_1k_tokens", t.cost_per_1k_tokens),
        ("aicost_cost_per_request", t.cost_per_request),
        ("aicost_cache_savings_30d", recs.cache_savings),
        ("aicost_savings_monthly", recs.savings),
        ("aicost_inactive_key_exposure_monthly", recs.key_exposure),
        ("aicost_recommendation_first_seen_timestamp_seconds", recs.first_seen),
        ("aicost_prepaid_balance", b.prepaid_balance),
        ("aicost_spending_limit", b.spending_limit),
        ("aicost_invoice_preview", b.invoice_preview),
        ("aicost_invoice_preview_gap", b.invoice_preview_gap),
    )
    yield from _keyed(_gauge, keyed)

    yield from _governance(snapshot.governance)

    health = sorted(snapshot.health, key=lambda h: (h.provider, h.account))
    for name, attr in (
        ("aicost_up", "up"),
        ("aicost_last_success_timestamp_seconds", "last_success"),
        ("aicost_data_complete_through_timestamp_seconds", "data_complete_through"),
        ("aicost_poll_duration_seconds", "poll_duration"),
        ("aicost_data_expected_lag_seconds", "expected_lag"),
        ("aicost_poller_leader", "leader"),
    ):
        fam = _gauge(name)
        for h in health:
            _add(fam, value=float(getattr(h, attr)), provider=h.provider, account=h.account)
        yield fam
    errors = _counter("aicost_poll_errors_total")
    requests = _counter("aicost_api_requests_total")
    for h in health:
        for reason, n in sorted(h.errors.items()):
            _add(errors, value=n, provider=h.provider, account=h.account, reason=reason)
        for (endpoint, code), n in sorted(h.requests.items()):
            _add(
                requests,
                value=n,
                provider=h.provider,
                account=h.account,
                endpoint=endpoint,
                code=code,
            )
    yield errors
    yield requests
    degraded = _counter("aicost_poll_degraded_total")
    for h in health:
        for reason, n in sorted(h.degraded.items()):
            _add(degraded, value=n, provider=h.provider, account=h.account, reason=reason)
    yield degraded

    yield from _fx_families(snapshot.fx)

    build = _gauge("aicost_build_info")
    _add(build, value=1, version=__version__, python_version=platform.python_version())
    yield build

    yield from _app_families(snapshot.app)


def _keyed(
    family: Callable[[str], GaugeMetricFamily | CounterMetricFamily],
    metrics: Iterable[tuple[str, Mapping[Any, Decimal | float]]],
) -> Iterator[Metric]:
    """One family per (metric name, key -> value), its samples labelled by key name."""
    for name, values in metrics:
        fam = family(name)
        for key, v in sorted(values.items()):
            _add(fam, key, value=_num(v))
        yield fam


def _app_families(app: AppMetrics) -> Iterator[Metric]:
    """Request-level counters and unit economics of ingested requests."""
    counters: tuple[tuple[str, Mapping[Any, Decimal | int]], ...] = (
        ("aicost_app_requests_total", app.requests),
        ("aicost_app_retries_total", app.retries),
        ("aicost_app_tokens_total", app.tokens),
        ("aicost_app_cost_total", app.cost),
    )
    yield from _keyed(_counter, counters)
    gauges: tuple[tuple[str, Mapping[Any, Decimal]], ...] = (
        ("aicost_app_cost_per_request_7d", app.cost_per_request_7d),
        ("aicost_app_cost_per_outcome_7d", app.cost_per_outcome_7d),
        ("aicost_app_prompt_version_cost_change_ratio", app.prompt_version_change),
        ("aicost_app_estimate_to_billed_ratio", app.estimate_to_billed),
    )
    yield from _keyed(_gauge, gauges)
    rejected = _counter("aicost_ingest_rejected_total")
    for key, n in sorted(app.rejected.items()):
        _add(rejected, key, value=n)
    yield rejected


def _fx_families(fx: FxState) -> Iterator[Metric]:
    rate = _gauge("aicost_fx_rate")
    rate_date = _gauge("aicost_fx_rate_date_timestamp_seconds")
    for r in sorted(fx.rates, key=lambda r: (r.base, r.quote)):
        _add(rate, value=_num(r.rate), base=r.base, quote=r.quote, source=r.source)
        _add(rate_date, value=midnight_ts(r.rate_date), base=r.base, quote=r.quote)
    yield rate
    yield rate_date
    unconverted = _gauge("aicost_fx_unconverted_costs")
    for key, n in sorted(fx.unconverted.items()):
        _add(unconverted, key, value=n)
    yield unconverted
    errors = _counter("aicost_fx_refresh_errors_total")
    for reason, n in sorted(fx.refresh_errors.items()):
        _add(errors, value=n, reason=reason)
    yield errors


def _governance(g: Governance) -> Iterator[Metric]:
    """Baselines, anomalies, forecasts, new streams, budgets and project attribution."""
    cur = g.currency
    baseline = _gauge("aicost_cost_daily_baseline")
    score = _gauge("aicost_cost_anomaly_score")
    for stream, b in sorted(g.baselines.items()):
        _add(baseline, stream, value=_num(b.expected), currency=cur)
        _add(score, stream, value=b.score)
    yield baseline
    yield score
    forecast = _gauge("aicost_cost_forecast_month_end")
    for stream, amount in sorted(g.forecasts.items()):
        _add(forecast, stream, value=_num(amount), currency=cur)
    yield forecast
    first_seen = _gauge("aicost_stream_first_seen_timestamp_seconds")
    for stream, day in sorted(g.new_streams.items()):
        _add(first_seen, stream, value=midnight_ts(day))
    yield first_seen

    budgets = sorted(g.budgets, key=lambda b: b.name)
    for name, attr in (
        ("aicost_budget_limit", "limit"),
        ("aicost_budget_spend", "spend"),
        ("aicost_budget_forecast", "forecast"),
        ("aicost_budget_utilization_ratio", "utilization"),
    ):
        fam = _gauge(name)
        for budget in budgets:
            _add(
                fam,
                value=_num(getattr(budget, attr)),
                budget=budget.name,
                period=budget.period,
                currency=cur,
            )
        yield fam
    thresholds = _gauge("aicost_budget_threshold_ratio")
    matched = _gauge("aicost_budget_scope_matched")
    for budget in budgets:
        for t in budget.thresholds:
            threshold = format(t.normalize(), "f")
            _add(thresholds, value=_num(t), budget=budget.name, threshold=threshold)
        _add(matched, value=1 if budget.matched else 0, budget=budget.name)
    yield thresholds
    yield matched

    info = _gauge("aicost_project_info")
    for p in g.project_info:
        a = p.attribution
        _add(
            info, value=1, provider=p.provider, account=p.account, project=p.project,
            project_name=p.project_name, team=a.team, pool=a.pool, cost_owner=a.cost_owner,
            environment=a.environment,
        )  # fmt: skip
    yield info


class _SnapshotCollector(Collector):
    """The families of one snapshot, built once for both formats (the generators only
    read them)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._families = list(families(snapshot))

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # no collect() at registration time


def _label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _plain(fams: list[Metric]) -> bool:
    """Only what :func:`_write_both` writes exactly as ``prometheus_client`` does: gauges and
    counters without unit, timestamp, exemplar or OpenMetrics-only samples."""
    for m in fams:
        if m.type not in ("gauge", "counter") or m.unit:
            return False
        for s in m.samples:
            if s.timestamp is not None or s.exemplar or s.native_histogram:
                return False
            if s.name.endswith(("_created", "_gsum", "_gcount")):
                return False
    return True


def _write_both(fams: list[Metric]) -> tuple[bytes, bytes]:
    """(text 0.0.4, OpenMetrics 1.0) of ``fams`` in one pass, byte for byte what
    ``prometheus_client``'s two ``generate_latest`` write (a test compares them); each
    sample line is built once for both formats."""
    text: list[str] = []
    om: list[str] = []
    for m in fams:
        doc = m.documentation.replace("\\", r"\\").replace("\n", r"\n")
        om_doc = doc.replace('"', r"\"")
        text_name = f"{m.name}_total" if m.type == "counter" else m.name
        text.append(f"# HELP {text_name} {doc}\n# TYPE {text_name} {m.type}\n")
        om.append(f"# HELP {m.name} {om_doc}\n# TYPE {m.name} {m.type}\n")
        for s in m.samples:
            value = floatToGoString(s.value)  # type: ignore[no-untyped-call]
            if s.labels:
                pairs = ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(s.labels.items()))
                line = f"{s.name}{{{pairs}}} {value}\n"
            else:
                line = f"{s.name} {value}\n"
            text.append(line)
            om.append(line)
    om.append("# EOF\n")
    return "".join(text).encode(), "".join(om).encode()


def render(snapshot: Snapshot) -> Rendered:
    collector = _SnapshotCollector(snapshot)
    fams = list(collector.collect())
    if _plain(fams):
        text, om = _write_both(fams)
    else:  # something the one-pass writer does not cover: the client library writes it
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        text = generate_latest(registry)
        om = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
    return Rendered(
        text=text,
        text_gzip=gzip.compress(text, compresslevel=GZIP_LEVEL, mtime=0),
        openmetrics=om,
        openmetrics_gzip=gzip.compress(om, compresslevel=GZIP_LEVEL, mtime=0),
    )
