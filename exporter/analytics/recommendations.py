"""Savings recommendations and realised prompt-cache savings, from stored rows.

Pure functions over usage and cost records (plus the price catalogue and model maps); the
rules, formulas and thresholds are explained in ``docs/recommendations.md``. Windows:

* **last 30 days**: the 30 complete UTC days before today (today is partial, so excluded).
  A month is 30 days: 30-day totals are published as monthly figures (x30/30), with no
  extrapolation from shorter histories.
* **days 31-60**: the 30 days before that (inactive keys' reference period).

Money from the cost API (``CostRecord.amount``) is already in the accounting currency;
catalogue prices are converted by the :class:`~exporter.pricing.Catalogue`.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import partial

from exporter.clock import midnight
from exporter.config import Dismissal, RecommendationsConfig
from exporter.pricing import BATCH_DISCOUNT, MTOK, Catalogue, ModelMaps, UnitPrices, is_batch
from exporter.records import TOKEN_TYPES, ApiKeyRecord, CostRecord, Stream, UsageRecord
from exporter.snapshot import (
    OTHER,
    KeyExposureKey,
    RecommendationKey,
    RecommendationMetrics,
    SavingsKey,
    StreamMoney,
)

MONTH_DAYS = 30
SAVINGS_KINDS: tuple[str, ...] = ("batch", "model_downgrade", "cross_provider")
INACTIVE_KEY = "inactive_key"
# Service tiers billed at the standard list price; flex/priority traffic is not a batch
# candidate (it already trades latency for price, or pays for latency on purpose).
STANDARD_TIERS = frozenset({"", "default", "standard", "auto"})


@dataclass(frozen=True)
class Recommendation:
    """One recommendation: what to change, what it saves per month, and why."""

    kind: str  # batch | model_downgrade | cross_provider | inactive_key
    provider: str
    account: str
    project: str
    model: str
    target: str  # the cheaper model, route or "batch"; "" for inactive keys
    monthly: Decimal  # saving (or, for inactive keys, exposure) per 30 days
    evidence: tuple[tuple[str, str], ...] = ()
    formula: str = ""
    api_key: str = ""
    api_key_name: str = ""

    @property
    def id(self) -> str:
        """Stable identity, for the first-seen date and dismissals."""
        parts = (self.kind, self.provider, self.account, self.project, self.model)
        return "|".join((*parts, self.api_key, self.target))

    def identity(self) -> dict[str, str]:
        return {
            "id": self.id,
            "kind": self.kind,
            "provider": self.provider,
            "account": self.account,
            "project": self.project,
            "model": self.model,
            "api_key": self.api_key,
            "target": self.target,
        }


@dataclass
class Findings:
    recommendations: list[Recommendation] = field(default_factory=list)
    cache_savings: dict[Stream, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # exclusive

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day < self.end

    def label(self) -> str:
        return f"{self.start}..{self.end - timedelta(days=1)}"


def last_30(today: date) -> Period:
    return Period(today - timedelta(days=MONTH_DAYS), today)


def days_31_60(today: date) -> Period:
    return Period(today - timedelta(days=2 * MONTH_DAYS), today - timedelta(days=MONTH_DAYS))


def recommendations_start(today: date) -> date:
    """The oldest day the rules read."""
    return days_31_60(today).start


def _tokens(row: UsageRecord) -> int:
    return sum(row.tokens(t) for t in TOKEN_TYPES)


def _by_stream(usage: Iterable[UsageRecord], period: Period) -> dict[Stream, list[UsageRecord]]:
    out: dict[Stream, list[UsageRecord]] = defaultdict(list)
    for row in usage:
        if row.day in period and row.model:
            out[row.stream].append(row)
    return dict(sorted(out.items()))


def _billed_tokens(costs: Iterable[CostRecord], period: Period) -> dict[Stream, Decimal]:
    """Billed token cost per stream in ``period`` (cost API, accounting currency)."""
    out: dict[Stream, Decimal] = defaultdict(Decimal)
    for c in costs:
        if c.day in period and c.model and c.cost_type == "tokens":
            out[c.stream] += c.amount
    return out


def population_stdev(values: Sequence[int]) -> float:
    """``statistics.pstdev`` of integers, bit for bit, without its per-value fractions: the
    exact variance (n·Σx² - (Σx)²) / n², then its square root correctly rounded the way
    ``statistics`` does it (round-to-odd integer square root)."""
    n = len(values)
    if n < 1:
        raise statistics.StatisticsError("pstdev requires at least one data point")
    total, squares = sum(values), sum(x * x for x in values)
    variance = Fraction(n * squares - total * total, n * n)
    num, den = variance.numerator, variance.denominator
    q = (num.bit_length() - den.bit_length() - _SQRT_BIT_WIDTH) // 2
    if q >= 0:
        return (_isqrt_rto(num, den << 2 * q) << q) / 1
    return _isqrt_rto(num << -2 * q, den) / (1 << -q)


_SQRT_BIT_WIDTH = 2 * sys.float_info.mant_dig + 3


def _isqrt_rto(n: int, m: int) -> int:
    """Square root of n/m rounded to an integer, round-to-odd."""
    a = math.isqrt(n // m)
    return a | (a * a * m != n)


def cents(value: Decimal) -> str:
    """Money as a decimal string rounded to the cent (for evidence and formulas)."""
    return f"{value.quantize(Decimal('0.01'))}"


def _is_sync(row: UsageRecord) -> bool:
    """Synchronous standard-tier traffic: known not to be batch (providers set ``batch``
    from their own flag or service tier), on a standard tier."""
    return row.batch == "false" and row.service_tier in STANDARD_TIERS


def _priced(rows: Sequence[UsageRecord], catalogue: Catalogue) -> list[Decimal] | None:
    out = []
    for row in rows:
        cost = catalogue.row_cost(row)
        if cost is None:
            return None
        out.append(cost)
    return out


# --------------------------------------------------------------------------- batch


def batch_recommendations(
    today: date,
    usage: Sequence[UsageRecord],
    costs: Sequence[CostRecord],
    catalogue: Catalogue,
    maps: ModelMaps,
    cfg: RecommendationsConfig,
) -> list[Recommendation]:
    """Steady synchronous traffic on batch-capable models: save 50 % of its monthly cost.

    The stream's billed token cost is split between synchronous and other traffic by
    *priced volume* (each row's tokens at list price, batch rows at the batch discount),
    so a stream mixing sync and batch requests attributes each its share of the bill.
    """
    period = last_30(today)
    billed = _billed_tokens(costs, period)
    out = []
    for stream, rows in _by_stream(usage, period).items():
        sync = [r for r in rows if _is_sync(r)]
        if not sync or not maps.batch_capable(stream.provider, stream.model):
            continue
        daily: dict[date, int] = defaultdict(int)
        for r in sync:
            daily[r.day] += _tokens(r)

        def priced_volume(rows: list[UsageRecord] = rows) -> tuple[Decimal, Decimal] | None:
            priced = _priced(rows, catalogue)
            if priced is None:
                return None
            total = sum(priced, Decimal(0))
            sync_priced = (p for r, p in zip(rows, priced, strict=True) if _is_sync(r))
            return total, sum(sync_priced, Decimal(0))

        sync_tokens = {t: sum(r.tokens(t) for r in sync) for t in TOKEN_TYPES}
        found = batch_finding(
            stream, period, list(daily.values()), priced_volume,
            billed.get(stream, Decimal(0)), sync_tokens, cfg,
        )  # fmt: skip
        if found is not None:
            out.append(found)
    return out


def batch_finding(
    stream: Stream,
    period: Period,
    daily_sync_tokens: Sequence[int],
    priced_volume: Callable[[], tuple[Decimal, Decimal] | None],
    bill: Decimal,
    sync_tokens: Mapping[str, int],
    cfg: RecommendationsConfig,
) -> Recommendation | None:
    """The batch rule of one stream with synchronous traffic on a batch-capable model, from
    its inputs: synchronous tokens per day with such traffic (day order), the priced volume
    ``(all, synchronous)`` (None: unpriced; asked only when the traffic is steady), the
    billed token cost and the synchronous tokens per token type."""
    active = [n for n in daily_sync_tokens if n > 0]
    if len(active) < cfg.batch.min_active_days:
        return None
    mean = statistics.fmean(active)
    variation = population_stdev(active) / mean
    if variation > cfg.batch.max_variation:
        return None
    priced = priced_volume()
    if priced is None:
        return None
    total_priced, sync_priced = priced
    if not total_priced:
        return None
    share = sync_priced / total_priced
    sync_cost = bill * share
    saving = sync_cost * BATCH_DISCOUNT
    if saving < cfg.min_monthly_saving or saving <= 0:
        return None
    evidence = (
        ("window", period.label()),
        ("active_days", f"{len(active)}/{MONTH_DAYS}"),
        ("daily_variation", f"{variation:.3f}"),
        *((f"sync_tokens.{t}", str(n)) for t, n in sync_tokens.items()),
        ("billed_token_cost", cents(bill)),
        ("sync_share_by_priced_volume", f"{share:.4f}"),
        ("sync_cost_30d", cents(sync_cost)),
    )
    formula = (
        f"{BATCH_DISCOUNT} x ({cents(bill)} billed x {share:.4f} sync share) = {cents(saving)}"
    )
    provider, account, project, model = stream
    return Recommendation(
        "batch", provider, account, project, model, "batch", saving, evidence, formula
    )


# --------------------------------------------------------------------------- downgrade


def downgrade_recommendations(
    today: date,
    usage: Sequence[UsageRecord],
    catalogue: Catalogue,
    maps: ModelMaps,
    cfg: RecommendationsConfig,
) -> list[Recommendation]:
    """Observed volumes priced at the alternative model: Σ volume x (current - alternative).

    Each row is priced on its own day (the price then in force) and tier; batch rows at the
    batch discount on both sides.
    """
    period = last_30(today)
    out = []
    for stream, rows in _by_stream(usage, period).items():
        alternative = maps.alternative(stream.provider, stream.model)
        if not alternative:
            continue
        days = {r.day for r in rows if _tokens(r) > 0}
        tokens = {t: sum(r.tokens(t) for r in rows) for t in TOKEN_TYPES}
        found = downgrade_finding(
            stream, alternative, period, days,
            partial(_price_difference, rows, catalogue, alternative),
            tokens, catalogue, cfg,
        )  # fmt: skip
        if found is not None:
            out.append(found)
    return out


def downgrade_finding(
    stream: Stream,
    alternative: str,
    period: Period,
    days: set[date],
    price_difference: Callable[[], dict[str, Decimal] | None],
    tokens: Mapping[str, int],
    catalogue: Catalogue,
    cfg: RecommendationsConfig,
) -> Recommendation | None:
    """The downgrade rule of one stream with an alternative model, from its inputs: the
    days with tokens, Σ volume x (current - alternative) per token type (None: unpriced;
    asked only with enough days) and the tokens per token type."""
    if len(days) < cfg.model_downgrade.min_days:
        return None
    by_type = price_difference()
    if by_type is None:
        return None
    saving = sum(by_type.values(), Decimal(0))
    if saving < cfg.min_monthly_saving or saving <= 0:
        return None
    provider, account, project, model = stream
    last = max(days)
    now = catalogue.prices(provider, model, last)
    alt = catalogue.prices(provider, alternative, last)
    evidence = [("window", period.label()), ("days_with_data", f"{len(days)}/{MONTH_DAYS}")]
    for t in TOKEN_TYPES:
        evidence.append((f"tokens.{t}", str(tokens[t])))
        if now is not None and alt is not None:
            evidence.append((f"price_per_mtok.{t}", f"{now.of(t)} -> {alt.of(t)} (on {last})"))
    formula = " + ".join(f"{t} {cents(v)}" for t, v in by_type.items())
    return Recommendation(
        "model_downgrade",
        provider,
        account,
        project,
        model,
        alternative,
        saving,
        tuple(evidence),
        f"{formula} = {cents(saving)}",
    )


def _price_difference(
    rows: Sequence[UsageRecord], catalogue: Catalogue, alternative: str
) -> dict[str, Decimal] | None:
    """Σ tokens x (current - alternative price) per token type; None if either is unpriced."""
    out = dict.fromkeys(TOKEN_TYPES, Decimal(0))
    for r in rows:
        current = catalogue.prices(r.provider, r.model, r.day, r.service_tier)
        cheaper = catalogue.prices(r.provider, alternative, r.day, r.service_tier)
        if current is None or cheaper is None:
            return None
        factor = BATCH_DISCOUNT if is_batch(r) else Decimal(1)
        for t in TOKEN_TYPES:
            out[t] += r.tokens(t) * (current.of(t) - cheaper.of(t)) * factor / MTOK
    return out


# --------------------------------------------------------------------------- cross-provider


@dataclass
class Route:
    """A stream's (or a provider's) tokens and billed token cost over the last 30 days."""

    tokens: int = 0
    cost: Decimal = Decimal(0)

    @property
    def rate(self) -> Decimal:
        return self.cost / self.tokens


def cross_provider_recommendations(
    today: date,
    usage: Sequence[UsageRecord],
    costs: Sequence[CostRecord],
    maps: ModelMaps,
    cfg: RecommendationsConfig,
) -> list[Recommendation]:
    """One model on several providers: move the dearer routes' traffic to the cheapest rate.

    A route is a provider (all its accounts and projects) serving a model of one
    equivalence group; its effective rate is billed token cost ÷ tokens over 30 days. Only
    routes carrying at least ``min_route_share`` of the group's tokens count, on both sides.
    """
    period = last_30(today)
    billed = _billed_tokens(costs, period)
    streams: dict[str, dict[Stream, Route]] = defaultdict(dict)
    for stream, rows in _by_stream(usage, period).items():
        group = maps.group(stream.provider, stream.model)
        if group is not None:
            route = Route(sum(_tokens(r) for r in rows), billed.get(stream, Decimal(0)))
            streams[group][stream] = route
    return cross_provider_findings(period, streams, cfg)


def cross_provider_findings(
    period: Period, streams: Mapping[str, Mapping[Stream, Route]], cfg: RecommendationsConfig
) -> list[Recommendation]:
    """The cross-provider rule from its inputs: {group: {stream: its 30-day route}} of the
    streams with usage in ``period`` whose model is in an equivalence group."""
    out = []
    for group, members in sorted(streams.items()):
        routes: dict[str, Route] = defaultdict(Route)
        for stream, r in members.items():
            routes[stream[0]].tokens += r.tokens
            routes[stream[0]].cost += r.cost
        total = sum(r.tokens for r in routes.values())
        meaningful = {
            p: r
            for p, r in routes.items()
            if r.tokens > 0
            and r.cost > 0
            and r.tokens >= cfg.cross_provider.min_route_share * total
        }
        if len(meaningful) < 2:
            continue
        cheapest = min(meaningful, key=lambda p: (meaningful[p].rate, p))
        rate = meaningful[cheapest].rate
        for stream, r in sorted(members.items()):
            provider, account, project, model = stream
            if provider not in meaningful or provider == cheapest or not r.tokens:
                continue
            saving = r.cost - r.tokens * rate
            if saving < cfg.min_monthly_saving or saving <= 0:
                continue
            evidence = (
                ("window", period.label()),
                ("group", group),
                ("tokens", str(r.tokens)),
                ("billed_token_cost", cents(r.cost)),
                ("rate_per_mtok", f"{(r.cost / r.tokens * MTOK):.4f}"),
                ("route_rate_per_mtok", f"{(meaningful[provider].rate * MTOK):.4f}"),
                (f"{cheapest}_rate_per_mtok", f"{(rate * MTOK):.4f}"),
                *(
                    (f"route_share.{p}", f"{Decimal(x.tokens) / total:.4f}")
                    for p, x in sorted(routes.items())
                ),
            )
            formula = (
                f"{cents(r.cost)} - {r.tokens} tokens x {(rate * MTOK):.4f}/MTok = {cents(saving)}"
            )
            out.append(
                Recommendation(
                    "cross_provider",
                    provider,
                    account,
                    project,
                    model,
                    cheapest,
                    saving,
                    evidence,
                    formula,
                )
            )
    return out


# --------------------------------------------------------------------------- inactive keys

KeySpend = tuple[str, str, str]  # provider, account, api key


def inactive_key_recommendations(
    today: date,
    usage: Sequence[UsageRecord],
    api_keys: Sequence[ApiKeyRecord],
    catalogue: Catalogue,
    cfg: RecommendationsConfig,
) -> list[Recommendation]:
    """Keys with meaningful spend in days 31-60 and (near) none since: rotate or revoke.

    Key spend is estimated from usage volumes per key at catalogue list prices (OpenAI's
    cost API is read grouped by project and line item, not by key). The daily rate is the
    days-31-60 spend ÷ the days of that period the account has history for; exposure is
    that rate x 30. OpenAI's ``last_used_at``, when stored, must agree: a key used since the
    start of the last 30 days is not flagged.
    """
    prior = days_31_60(today)
    spend: dict[KeySpend, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    projects: dict[KeySpend, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    last_day: dict[KeySpend, date] = {}
    covered: dict[tuple[str, str], set[date]] = defaultdict(set)
    for row in usage:
        if row.day in prior:
            covered[(row.provider, row.account)].add(row.day)
        if not row.api_key or not prior.start <= row.day <= today:
            continue
        key = (row.provider, row.account, row.api_key)
        cost = catalogue.row_cost(row) or Decimal(0)
        if row.day in prior:
            spend[key][0] += cost
            projects[key][row.project] += cost
        else:
            spend[key][1] += cost
        if _tokens(row) or row.requests:
            last_day[key] = max(last_day.get(key, row.day), row.day)
    days = {account: len(d) for account, d in covered.items()}
    return inactive_key_findings(today, spend, projects, last_day, days, api_keys, cfg)


def inactive_key_findings(
    today: date,
    spend: Mapping[KeySpend, Sequence[Decimal]],
    projects: Mapping[KeySpend, Mapping[str, Decimal]],
    last_day: Mapping[KeySpend, date],
    covered: Mapping[tuple[str, str], int],
    api_keys: Sequence[ApiKeyRecord],
    cfg: RecommendationsConfig,
) -> list[Recommendation]:
    """The inactive-key rule from its inputs: per key with usage since days 31-60 began
    ``[spend in days 31-60, spend since]`` and the days-31-60 spend per project, its last
    day with tokens or requests; per account the days of days 31-60 with history."""
    recent_start = today - timedelta(days=MONTH_DAYS)
    records = {(k.provider, k.account, k.key_id): k for k in api_keys}
    out = []
    for key, (before, since) in sorted(spend.items()):
        if before <= 0 or before < cfg.inactive_keys.min_prior_spend:
            continue
        if since > before * Decimal(str(cfg.inactive_keys.max_recent_share)):
            continue
        record = records.get(key)
        if record is not None and record.status not in ("", "active"):
            continue  # already disabled
        last_used = record.last_used_at if record is not None else None
        if last_used is not None and last_used.tzinfo is None:
            last_used = last_used.replace(tzinfo=UTC)
        if last_used is not None and last_used >= midnight(recent_start):
            continue
        days = covered.get(key[:2], 0) or MONTH_DAYS
        rate = before / days
        exposure = rate * MONTH_DAYS
        project = record.project if record is not None else _top(projects.get(key, {}))
        evidence = (
            ("spend_days_31_60", cents(before)),
            ("days_31_60_with_history", str(days)),
            ("spend_last_30_days", cents(since)),
            ("last_usage_day", str(last_day.get(key, ""))),
            ("last_used_at", _iso(last_used)),
            ("action", "rotate or revoke"),
        )
        formula = f"{cents(before)} / {days} days x {MONTH_DAYS} = {cents(exposure)}"
        out.append(
            Recommendation(
                INACTIVE_KEY,
                key[0],
                key[1],
                project,
                "",
                "",
                exposure,
                evidence,
                formula,
                api_key=key[2],
                api_key_name=record.name if record is not None else "",
            )
        )
    return out


def _top(weights: Mapping[str, Decimal]) -> str:
    return max(sorted(weights), key=lambda p: weights[p]) if weights else ""


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


# --------------------------------------------------------------------------- cache savings


def cache_savings(
    today: date, usage: Sequence[UsageRecord], catalogue: Catalogue
) -> dict[Stream, Decimal]:
    """Realised prompt-cache savings per stream, last 30 days: cache_read x (input - cache_read)."""
    out: dict[Stream, Decimal] = {}
    for stream, rows in _by_stream(usage, last_30(today)).items():
        if not any(r.cache_read_tokens for r in rows):
            continue
        total = Decimal(0)
        for r in rows:
            prices: UnitPrices | None = catalogue.prices(r.provider, r.model, r.day, r.service_tier)
            if prices is None:
                break
            saved = r.cache_read_tokens * (prices.input - prices.cache_read) / MTOK
            total += saved * BATCH_DISCOUNT if is_batch(r) else saved
        else:
            out[stream] = total
    return out


# --------------------------------------------------------------------------- all rules


def compute_recommendations(
    today: date,
    usage: Sequence[UsageRecord],
    costs: Sequence[CostRecord],
    api_keys: Sequence[ApiKeyRecord],
    catalogue: Catalogue,
    maps: ModelMaps,
    cfg: RecommendationsConfig,
) -> Findings:
    """Every rule over rows covering :func:`recommendations_start` .. today."""
    if not cfg.enabled:
        return Findings()
    found = account_findings(today, usage, costs, api_keys, catalogue, maps, cfg)
    cross = cross_provider_recommendations(today, usage, costs, maps, cfg)
    return Findings([*found.recommendations, *cross], found.cache_savings)


def account_findings(
    today: date,
    usage: Sequence[UsageRecord],
    costs: Sequence[CostRecord],
    api_keys: Sequence[ApiKeyRecord],
    catalogue: Catalogue,
    maps: ModelMaps,
    cfg: RecommendationsConfig,
) -> Findings:
    """The rules that read one account at a time (batch, downgrade, inactive keys, cache
    savings), over that account's rows: a refresh recomputes them only for the accounts
    whose rows changed. ``cross_provider_recommendations`` compares accounts and runs over
    all rows. Together they are :func:`compute_recommendations` (``publish`` ranks them)."""
    recs = [
        *batch_recommendations(today, usage, costs, catalogue, maps, cfg),
        *downgrade_recommendations(today, usage, catalogue, maps, cfg),
        *inactive_key_recommendations(today, usage, api_keys, catalogue, cfg),
    ]
    return Findings(recs, cache_savings(today, usage, catalogue))


# --------------------------------------------------------------------------- publication


def dismissal_for(rec: Recommendation, dismissed: Iterable[Dismissal]) -> Dismissal | None:
    """The first config dismissal matching ``rec`` (every field it sets must be equal)."""
    for d in dismissed:
        if d.recommendation != rec.kind:
            continue
        fields = ("provider", "account", "project", "model", "target", "api_key")
        if all(getattr(d, f) is None or getattr(d, f) == getattr(rec, f) for f in fields):
            return d
    return None


def _ranked(recs: Iterable[Recommendation]) -> list[Recommendation]:
    return sorted(recs, key=lambda r: (-r.monthly, r.id))


def publish(
    findings: Findings,
    *,
    currency: str,
    dismissed: Sequence[Dismissal],
    first_seen: Mapping[str, date],
    max_series: int,
) -> RecommendationMetrics:
    """Drop dismissed recommendations, cap series per metric, fold the rest into ``other``.

    Per metric the ``max_series`` largest values are published as they are; the rest are
    summed into one series per recommendation kind whose other labels are all ``other``.
    First-seen timestamps are published for the individually published recommendations.
    """
    out = RecommendationMetrics()
    live = [r for r in findings.recommendations if dismissal_for(r, dismissed) is None]
    savings = _ranked(r for r in live if r.kind in SAVINGS_KINDS)
    keys = _ranked(r for r in live if r.kind == INACTIVE_KEY)
    for i, r in enumerate(savings):
        if i < max_series:
            label = SavingsKey(
                r.provider, r.account, r.project, r.model, r.kind, r.target, currency
            )
        else:
            label = SavingsKey(OTHER, OTHER, OTHER, OTHER, r.kind, OTHER, currency)
        out.savings[label] = out.savings.get(label, Decimal(0)) + r.monthly
    for i, r in enumerate(keys):
        if i < max_series:
            key = KeyExposureKey(
                r.provider, r.account, r.project, r.api_key, r.api_key_name, currency
            )
        else:
            key = KeyExposureKey(OTHER, OTHER, OTHER, OTHER, OTHER, currency)
        out.key_exposure[key] = out.key_exposure.get(key, Decimal(0)) + r.monthly
    for r in [*savings[:max_series], *keys[:max_series]]:
        seen = first_seen.get(r.id)
        if seen is not None:
            identity = RecommendationKey(
                r.provider, r.account, r.project, r.model, r.api_key, r.kind, r.target
            )
            out.first_seen[identity] = midnight(seen).timestamp()
    for stream, amount in sorted(findings.cache_savings.items()):
        out.cache_savings[StreamMoney.of(stream, currency)] = amount
    return out
