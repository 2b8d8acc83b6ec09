"""Snapshot -> pre-rendered ``/metrics`` bytes.

After every poll the analytics build a :class:`Snapshot` (plain values) and calls
:func:`render`, which produces the Prometheus text format and OpenMetrics, each plain and
gzipped. A scrape only picks one of those byte strings: no I/O, no computation.
"""

from __future__ import annotations

import bisect
import gzip
import mmap
import platform
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
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
from exporter.heap import refresh_heap
from exporter.metrics import BY_NAME, MetricDef
from exporter.snapshot import (
    TOKEN_WINDOW_NAMES,
    WINDOW_NAMES,
    AppMetrics,
    FxState,
    Governance,
    LevelTotals,
    Rollups,
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


@dataclass(frozen=True, eq=False)
class Rendered:
    """The four bodies of one render. The plain bodies are kept as the pieces they were
    written in (the renderer's cached parts are shared, not copied into a joined body:
    at 10k streams that is ~40 MB less per render, and twice that while the previous
    render is still served); :meth:`bodies` gives them as pieces (the serving process
    writes them to its memfds as they are), :attr:`text` / :attr:`openmetrics` joined."""

    text_parts: tuple[bytes, ...]
    text_gzip: bytes
    openmetrics_parts: tuple[bytes, ...]
    openmetrics_gzip: bytes

    @classmethod
    def of(
        cls, text: bytes, text_gzip: bytes, openmetrics: bytes, openmetrics_gzip: bytes
    ) -> Rendered:
        """From four whole bodies."""
        return cls((text,), text_gzip, (openmetrics,), openmetrics_gzip)

    @property
    def text(self) -> bytes:
        """The text-format body, joined (a copy, each time)."""
        return b"".join(self.text_parts)

    @property
    def openmetrics(self) -> bytes:
        """The OpenMetrics body, joined (a copy, each time)."""
        return b"".join(self.openmetrics_parts)

    def __eq__(self, other: object) -> bool:
        """The same four bodies, however they are split into pieces."""
        if not isinstance(other, Rendered):
            return NotImplemented
        return all(
            b"".join(a) == b"".join(b) for a, b in zip(self.bodies(), other.bodies(), strict=True)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable-looking: compared by content

    def bodies(self) -> tuple[tuple[bytes, ...], ...]:
        """The four bodies in :data:`VARIANTS` order, each as its pieces."""
        return (self.text_parts, (self.text_gzip,), self.openmetrics_parts,
                (self.openmetrics_gzip,))  # fmt: skip

    def sizes(self) -> tuple[int, ...]:
        """The byte length of each body, in :data:`VARIANTS` order."""
        return tuple(sum(map(len, pieces)) for pieces in self.bodies())

    @cached_property
    def variants(self) -> tuple[Variant, ...]:
        """The four bodies with their heads, joined on first use (an in-process server)."""
        return tuple(
            Variant.of(b"".join(pieces), om, gz)
            for pieces, (om, gz) in zip(self.bodies(), VARIANTS, strict=True)
        )

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


@dataclass(frozen=True)
class _Keyed:
    """A gauge family whose samples are keyed by a snapshot key (a named tuple), values
    as given (``convert`` is applied when written), plus constant labels ``extra``. The
    renderer writes its samples per (provider, account) part and keeps the text of parts
    that did not change; :meth:`metric` is the same family for the client library."""

    name: str
    items: list[tuple[Any, Any]]  # sorted (key, value)
    extra: tuple[tuple[str, str], ...] = ()
    convert: Callable[[Any], float] = float

    def metric(self) -> Metric:
        fam = _gauge(self.name)
        extra = dict(self.extra)
        for key, value in self.items:
            _add(fam, *_parts(key), value=self.convert(value), **extra)
        return fam


def _keyed_gauge(
    name: str, values: Mapping[Any, Any], convert: Callable[[Any], float] = float, **extra: str
) -> _Keyed:
    return _Keyed(name, sorted(values.items()), tuple(extra.items()), convert)


def _int_value(n: Any) -> float:
    return n  # type: ignore[no-any-return]  # ints are written as the library writes them


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """The metric families of a snapshot, in catalogue order."""
    for fam in _specs(snapshot):
        yield fam.metric() if isinstance(fam, _Keyed) else fam


def _specs(snapshot: Snapshot) -> Iterator[Metric | _Keyed]:
    t = snapshot.totals
    for window in WINDOW_NAMES:
        yield _keyed_gauge(f"aicost_cost_{window}", t.cost.get(window, {}), _num)
    for window in TOKEN_WINDOW_NAMES:
        yield _keyed_gauge(f"aicost_tokens_{window}", t.tokens.get(window, {}), _int_value)
    for window in WINDOW_NAMES:
        yield _keyed_gauge(f"aicost_requests_{window}", t.requests.get(window, {}), _int_value)
    yield from _rollup_families(snapshot.rollups)
    recs, b = snapshot.recommendations, snapshot.billing
    yield _keyed_gauge("aicost_cache_hit_ratio", t.cache_hit_ratio, _num)
    yield _keyed_gauge("aicost_cost_per_1k_tokens", t.cost_per_1k_tokens, _num)
    yield _keyed_gauge("aicost_cost_per_request", t.cost_per_request, _num)
    keyed: tuple[tuple[str, Mapping[Any, Decimal | float]], ...] = (
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


def _rollup_families(r: Rollups) -> Iterator[Metric | _Keyed]:
    """aicost_{model,project,account}_{cost,tokens,requests}_<window>, the model ratios."""
    levels: tuple[tuple[str, LevelTotals[Any]], ...] = (
        ("model", r.model),
        ("project", r.project),
        ("account", r.account),
    )
    for level, totals in levels:
        yield from _windowed(f"aicost_{level}_cost", WINDOW_NAMES, totals.cost)
        tokens = r.project_tokens if level == "project" else totals.tokens
        yield from _windowed(f"aicost_{level}_tokens", TOKEN_WINDOW_NAMES, tokens)
        yield from _windowed(f"aicost_{level}_requests", WINDOW_NAMES, totals.requests)
    ratios: tuple[tuple[str, Mapping[Any, Decimal | float]], ...] = (
        ("aicost_model_cache_hit_ratio", r.cache_hit_ratio),
        ("aicost_model_cost_per_1k_tokens", r.cost_per_1k_tokens),
        ("aicost_model_cost_per_request", r.cost_per_request),
    )
    yield from _keyed(_gauge, ratios)


def _parts(key: tuple[Any, ...]) -> tuple[tuple[Any, ...], ...]:
    """The named tuples a sample's key is made of: itself, or the ones it pairs."""
    return (key,) if hasattr(key, "_fields") else tuple(key)


def _windowed(
    prefix: str, windows: Iterable[str], by_window: Mapping[str, Mapping[Any, Decimal | int]]
) -> Iterator[_Keyed]:
    """One family ``<prefix>_<window>`` per window, also where the window has no values
    (keyed: the roll-ups' keys carry provider and account, so their text is kept per
    account between renders like the per-stream families')."""
    for window in windows:
        yield _keyed_gauge(f"{prefix}_{window}", by_window.get(window, {}), _num)


def _keyed(
    family: Callable[[str], GaugeMetricFamily | CounterMetricFamily],
    metrics: Iterable[tuple[str, Mapping[Any, Decimal | float]]],
) -> Iterator[Metric]:
    """One family per (metric name, key -> value), its samples labelled by key name."""
    for name, values in metrics:
        fam = family(name)
        for key, v in sorted(values.items()):
            _add(fam, *_parts(key), value=_num(v))
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


def _governance(g: Governance) -> Iterator[Metric | _Keyed]:
    """Baselines, anomalies, forecasts, new streams, budgets and project attribution."""
    cur = g.currency
    baselines = sorted(g.baselines.items())
    yield _Keyed("aicost_cost_daily_baseline", [(s, b.expected) for s, b in baselines],
                 (("currency", cur),), _num)  # fmt: skip
    yield _Keyed("aicost_cost_anomaly_score", [(s, b.score) for s, b in baselines])
    yield _keyed_gauge("aicost_cost_forecast_month_end", g.forecasts, _num, currency=cur)
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
    read them): what ``prometheus_client`` writes when the one-pass writer cannot."""

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
    text, om = _write_families(fams)
    return text, om + b"# EOF\n"


def _write_families(fams: list[Metric]) -> tuple[bytes, bytes]:
    """:func:`_write_both` without the OpenMetrics end marker."""
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
    return "".join(text).encode(), "".join(om).encode()


def render(snapshot: Snapshot) -> Rendered:
    """The four bodies of ``snapshot`` (no text kept for the next render)."""
    return Renderer()(snapshot)


# (text, OpenMetrics, raw deflate of the text when both are the same and it is cached)
_Piece = tuple[bytes, bytes, bytes | None]
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no name, mtime 0


def _deflate(data: bytes) -> bytes:
    """Raw deflate of ``data``, byte aligned and not final: such pieces concatenate into
    one deflate stream (each refers only to its own bytes)."""
    c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)


def _gzip(pieces: list[bytes], body: tuple[bytes, ...]) -> bytes:
    """A gzip member of the deflated ``pieces`` of ``body`` (the body's own pieces)."""
    crc, size = 0, 0
    for piece in body:
        crc, size = zlib.crc32(piece, crc), size + len(piece)
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return b"".join([_GZIP_HEADER, *pieces, b"\x03\x00", trailer])  # \x03\x00: final block


class Renderer:
    """:func:`render` that keeps, between renders, the text (and its deflate) of each
    (family, provider, account) part of the per-stream families: a part whose samples are
    the same as last time is not written or compressed again. After one account's poll
    only that account's parts are new."""

    def __init__(self) -> None:
        self._parts: dict[tuple[str, str, str], tuple[list[tuple[Any, Any]], bytes, bytes]] = {}
        self.written = 0  # parts written (not taken from the last render), for tests

    def __call__(self, snapshot: Snapshot) -> Rendered:
        with refresh_heap():  # see exporter.heap
            return self._render(snapshot)

    def _render(self, snapshot: Snapshot) -> Rendered:
        specs = list(_specs(snapshot))
        plain = [f for f in specs if not isinstance(f, _Keyed)]
        if not _plain(plain):  # the client library writes what the one-pass writer cannot
            collector = _SnapshotCollector(snapshot)
            registry = CollectorRegistry(auto_describe=False)
            registry.register(collector)
            text = generate_latest(registry)
            om = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
            return Rendered.of(
                text,
                gzip.compress(text, compresslevel=GZIP_LEVEL, mtime=0),
                om,
                gzip.compress(om, compresslevel=GZIP_LEVEL, mtime=0),
            )
        pieces: list[_Piece] = []
        used: set[tuple[str, str, str]] = set()
        for fam in specs:
            if isinstance(fam, _Keyed):
                pieces.extend(self._keyed(fam, used))
            else:
                text, om = _write_families([fam])
                pieces.append((text, om, None))
        pieces.append((b"", b"# EOF\n", None))
        self._parts = {k: v for k, v in self._parts.items() if k in used}
        text_parts = tuple(p[0] for p in pieces if p[0])
        om_parts = tuple(p[1] for p in pieces if p[1])
        text_gz, om_gz = _deflated(pieces)
        return Rendered(text_parts, _gzip(text_gz, text_parts), om_parts, _gzip(om_gz, om_parts))

    def _keyed(self, fam: _Keyed, used: set[tuple[str, str, str]]) -> Iterator[_Piece]:
        metric = BY_NAME[fam.name]
        doc = metric.help.replace("\\", r"\\").replace("\n", r"\n")
        om_doc = doc.replace('"', r"\"")
        yield (
            f"# HELP {fam.name} {doc}\n# TYPE {fam.name} gauge\n".encode(),
            f"# HELP {fam.name} {om_doc}\n# TYPE {fam.name} gauge\n".encode(),
            None,
        )
        items = fam.items
        i, n = 0, len(items)
        while i < n:
            key = items[i][0]
            head = key if hasattr(key, "_fields") else key[0]  # a key, or a pair of them
            if getattr(head, "_fields", ())[:2] == ("provider", "account"):  # a part each
                part = (fam.name, head[0], head[1])
                after: tuple[Any, ...] = (head[0], head[1] + "\x00")  # past the account's
                j = bisect.bisect_left(items, ((after if head is key else (after,)),), lo=i)
            else:
                part, j = (fam.name, "", ""), n
            chunk = items[i:j]
            held = self._parts.get(part)
            if held is None or held[0] != chunk:
                text = self._lines(fam, metric, chunk).encode()
                held = self._parts[part] = (chunk, text, _deflate(text))
                self.written += 1
            used.add(part)
            yield held[1], held[1], held[2]
            i = j

    def _lines(self, fam: _Keyed, metric: MetricDef, items: list[tuple[Any, Any]]) -> str:
        """Sample lines as the client library writes them: labels sorted by name."""
        ordered = tuple(sorted(metric.labels))
        extra = dict(fam.extra)
        out = []
        for key, value in items:
            if hasattr(key, "_fields"):
                named = dict(zip(key._fields, key, strict=True)) | extra
            else:  # a pair of named tuples
                named = {f: v for p in key for f, v in zip(p._fields, p, strict=True)} | extra
            pairs = ",".join(f'{k}="{_label_value(str(named[k]))}"' for k in ordered)
            out.append(f"{fam.name}{{{pairs}}} {floatToGoString(fam.convert(value))}\n")  # type: ignore[no-untyped-call]
        return "".join(out)


def _deflated(pieces: list[_Piece]) -> tuple[list[bytes], list[bytes]]:
    """The raw deflate pieces of both bodies: cached parts as they are, the text between
    them compressed together (per body: their headers differ)."""
    text_out: list[bytes] = []
    om_out: list[bytes] = []
    text_run: list[bytes] = []
    om_run: list[bytes] = []

    def flush() -> None:
        for run, out in ((text_run, text_out), (om_run, om_out)):
            if data := b"".join(run):
                out.append(_deflate(data))
            run.clear()

    for text, om, deflated in pieces:
        if deflated is None:
            text_run.append(text)
            om_run.append(om)
        else:
            flush()
            text_out.append(deflated)
            om_out.append(deflated)
    flush()
    return text_out, om_out
