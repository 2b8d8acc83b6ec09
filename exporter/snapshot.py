"""The snapshot: every value ``/metrics`` shows, as plain named rows (a leaf module).

Analytics builds a :class:`Snapshot` from the history after every poll; the exposition
renders it to bytes. Each mapping's key is a ``NamedTuple`` whose field names are the
metric's label names, so the renderer writes labels by name (never by position) and a key
that lacks one of a metric's labels fails loudly instead of shifting the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import NamedTuple

from exporter.records import Stream

UNASSIGNED_POOL = "unassigned"
OTHER = "other"  # the label value of the series that sums what a cap folded away

WINDOW_NAMES: tuple[str, ...] = ("today", "yesterday", "7d", "30d", "month_to_date")
# Tokens also get the 7 complete days before the last 7, so week-over-week growth is one
# division of two gauges and needs no Prometheus retention (``aicost_tokens_prev_7d``).
TOKEN_WINDOW_NAMES: tuple[str, ...] = (*WINDOW_NAMES, "prev_7d")


# --------------------------------------------------------------------------- label keys


class CostKey(NamedTuple):
    provider: str
    account: str
    project: str
    model: str
    cost_type: str
    currency: str

    @property
    def stream(self) -> Stream:
        return Stream(self.provider, self.account, self.project, self.model)


class TokenKey(NamedTuple):
    provider: str
    account: str
    project: str
    model: str
    token_type: str


class StreamMoney(NamedTuple):
    """A per-stream amount of money: the stream labels and the accounting currency."""

    provider: str
    account: str
    project: str
    model: str
    currency: str

    @classmethod
    def of(cls, stream: Stream, currency: str) -> StreamMoney:
        return cls(*stream, currency)

    @property
    def stream(self) -> Stream:
        return Stream(self.provider, self.account, self.project, self.model)


class AccountMoney(NamedTuple):
    provider: str
    account: str
    currency: str


class SavingsKey(NamedTuple):
    provider: str
    account: str
    project: str
    model: str
    recommendation: str
    target: str
    currency: str


class KeyExposureKey(NamedTuple):
    provider: str
    account: str
    project: str
    api_key: str
    api_key_name: str
    currency: str


class RecommendationKey(NamedTuple):
    provider: str
    account: str
    project: str
    model: str
    api_key: str
    recommendation: str
    target: str


class UnconvertedKey(NamedTuple):
    base: str
    quote: str
    reason: str


# --------------------------------------------------------------------------- rows


@dataclass
class WindowTotals:
    """Window name -> key -> value, and the 30-day ratios."""

    cost: dict[str, dict[CostKey, Decimal]] = field(default_factory=dict)
    tokens: dict[str, dict[TokenKey, int]] = field(default_factory=dict)
    requests: dict[str, dict[Stream, int]] = field(default_factory=dict)
    cache_hit_ratio: dict[Stream, float] = field(default_factory=dict)
    cost_per_1k_tokens: dict[StreamMoney, Decimal] = field(default_factory=dict)
    cost_per_request: dict[StreamMoney, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class Attribution:
    team: str = ""
    pool: str = UNASSIGNED_POOL
    cost_owner: str = ""
    environment: str = ""


UNASSIGNED = Attribution()


@dataclass(frozen=True)
class ProjectInfo:
    """One ``aicost_project_info`` series."""

    provider: str
    account: str
    project: str
    project_name: str
    attribution: Attribution


@dataclass(frozen=True)
class Baseline:
    expected: Decimal  # what the day was expected to cost
    score: float  # robust z-score of the day's actual cost against ``expected``


@dataclass(frozen=True)
class BudgetStatus:
    name: str
    period: str
    start: date  # first day of the current period
    end: date  # first day of the next period
    limit: Decimal
    spend: Decimal
    forecast: Decimal
    thresholds: tuple[Decimal, ...]
    matched: bool

    @property
    def utilization(self) -> Decimal:
        return self.spend / self.limit


@dataclass
class Governance:
    currency: str = "USD"
    project_info: list[ProjectInfo] = field(default_factory=list)
    budgets: list[BudgetStatus] = field(default_factory=list)
    forecasts: dict[Stream, Decimal] = field(default_factory=dict)
    baselines: dict[Stream, Baseline] = field(default_factory=dict)
    new_streams: dict[Stream, date] = field(default_factory=dict)  # stream -> first day


@dataclass
class RecommendationMetrics:
    savings: dict[SavingsKey, Decimal] = field(default_factory=dict)
    key_exposure: dict[KeyExposureKey, Decimal] = field(default_factory=dict)
    first_seen: dict[RecommendationKey, float] = field(default_factory=dict)
    cache_savings: dict[StreamMoney, Decimal] = field(default_factory=dict)


@dataclass
class BillingGauges:
    prepaid_balance: dict[AccountMoney, Decimal] = field(default_factory=dict)
    spending_limit: dict[AccountMoney, Decimal] = field(default_factory=dict)
    invoice_preview: dict[AccountMoney, Decimal] = field(default_factory=dict)
    invoice_preview_gap: dict[AccountMoney, Decimal] = field(default_factory=dict)


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
    expected_lag: float = 0.0  # seconds a provider's complete data normally trails real time
    degraded: dict[str, int] = field(default_factory=dict)  # reason -> polls degraded
    leader: bool = True  # this replica polls the account (always, with SQLite)

    def copy(self) -> ProviderHealth:
        """A copy whose counters no longer move with the poller's."""
        return ProviderHealth(
            self.provider,
            self.account,
            self.up,
            self.last_success,
            self.data_complete_through,
            self.poll_duration,
            dict(self.errors),
            dict(self.requests),
            self.expected_lag,
            dict(self.degraded),
            self.leader,
        )


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
    unconverted: dict[UnconvertedKey, int] = field(default_factory=dict)
    refresh_errors: dict[str, int] = field(default_factory=dict)  # reason -> count


# --------------------------------------------------------------------------- app requests


class AppRequestKey(NamedTuple):
    provider: str
    model: str
    endpoint: str
    tenant: str
    prompt_version: str
    outcome: str


class AppRetryKey(NamedTuple):
    provider: str
    model: str
    endpoint: str


class AppTokenKey(NamedTuple):
    provider: str
    model: str
    endpoint: str
    tenant: str
    prompt_version: str
    token_type: str


class AppCostKey(NamedTuple):
    provider: str
    model: str
    endpoint: str
    tenant: str
    prompt_version: str
    currency: str


class AppUnitCostKey(NamedTuple):
    provider: str
    model: str
    endpoint: str
    prompt_version: str
    currency: str


class AppOutcomeKey(NamedTuple):
    endpoint: str
    outcome: str
    currency: str


class PromptVersionKey(NamedTuple):
    endpoint: str
    prompt_version: str


class EstimateKey(NamedTuple):
    provider: str
    account: str
    model: str


class IngestRejectKey(NamedTuple):
    source: str  # otlp | events
    reason: str


@dataclass
class AppMetrics:
    """Request-level counters and unit economics from ingested requests (estimated cost)."""

    requests: dict[AppRequestKey, int] = field(default_factory=dict)
    retries: dict[AppRetryKey, int] = field(default_factory=dict)
    tokens: dict[AppTokenKey, int] = field(default_factory=dict)
    cost: dict[AppCostKey, Decimal] = field(default_factory=dict)
    cost_per_request_7d: dict[AppUnitCostKey, Decimal] = field(default_factory=dict)
    cost_per_outcome_7d: dict[AppOutcomeKey, Decimal] = field(default_factory=dict)
    prompt_version_change: dict[PromptVersionKey, Decimal] = field(default_factory=dict)
    estimate_to_billed: dict[EstimateKey, Decimal] = field(default_factory=dict)
    rejected: dict[IngestRejectKey, int] = field(default_factory=dict)  # since start


@dataclass
class Snapshot:
    totals: WindowTotals = field(default_factory=WindowTotals)
    governance: Governance = field(default_factory=Governance)
    health: list[ProviderHealth] = field(default_factory=list)
    fx: FxState = field(default_factory=FxState)
    recommendations: RecommendationMetrics = field(default_factory=RecommendationMetrics)
    billing: BillingGauges = field(default_factory=BillingGauges)
    app: AppMetrics = field(default_factory=AppMetrics)
