"""The normalised record model every provider translates its API into.

A provider turns one polled window of its organisation API into a :class:`FetchResult`:
usage rows (volumes), cost rows (money, exact :class:`~decimal.Decimal`), the names of
projects and API keys, and (where the provider has them) billing-state values such as a
prepaid balance. Nothing else crosses from a provider into the rest of the exporter.

Token types are disjoint and add up to all tokens of a row:

* ``input``       uncached input tokens
* ``output``      output tokens
* ``cache_read``  input tokens served from a prompt cache
* ``cache_write`` input tokens written to a prompt cache
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import NamedTuple

TOKEN_TYPES: tuple[str, ...] = ("input", "output", "cache_read", "cache_write")

# Cost types: ``tokens`` is model usage; the others are agentic tools and services, which
# carry no model (``model=""``). ``session_usage`` is Anthropic's own cost type (kept as
# reported; its meaning is not documented).
COST_TYPES: tuple[str, ...] = (
    "tokens",
    "web_search",
    "code_execution",
    "file_search",
    "session_usage",
    "other",
    "credit",  # cloud credits (negative): net cost = all types, gross = all but credit
)

# How a cost row got its model:
#   line_item      the provider named the model on the cost line (the normal case)
#   requests_split the provider gave the cost per project only; it was split over the
#                  project's models in proportion to their requests that day (fallback)
#   unattributed   no model could be found (tool and service costs, or no usage to split by)
ATTRIBUTIONS: tuple[str, ...] = ("line_item", "requests_split", "unattributed")

# Billing-state values a provider may report (latest value per account and kind):
#   prepaid_balance  prepaid credit still available
#   spending_limit   the effective monthly spending limit of the current billing period
#   invoice_preview  running total of the current billing period's invoice
BILLING_KINDS: tuple[str, ...] = ("prepaid_balance", "spending_limit", "invoice_preview")


class Stream(NamedTuple):
    """What a cost or usage row belongs to: the stream labels of every per-stream metric."""

    provider: str
    account: str
    project: str
    model: str


# The natural keys the store upserts by (its unique indexes): one row per key and day.
USAGE_KEY: tuple[str, ...] = (
    "provider", "account", "day", "project", "model", "source",
    "api_key", "batch", "service_tier", "unit",
)  # fmt: skip
COST_KEY: tuple[str, ...] = (
    "provider", "account", "day", "project", "line_item", "model", "api_key", "service_tier",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """Volume for one (day, project, model, fine-grain dimensions, source) combination."""

    provider: str
    account: str
    day: date
    project: str
    model: str
    source: str  # the provider's usage family, e.g. "completions", "embeddings"
    api_key: str = ""  # "" when the provider did not attribute the row to a key
    batch: str = ""  # "true" | "false" | "" (unknown)
    service_tier: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int = 0
    units: int = 0  # non-token volume (images, characters, seconds), see ``unit``
    unit: str = ""

    @property
    def stream(self) -> Stream:
        return Stream(self.provider, self.account, self.project, self.model)

    def key(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in USAGE_KEY)

    def tokens(self, token_type: str) -> int:
        return int(getattr(self, f"{token_type}_tokens"))

    def merged(self, other: UsageRecord) -> UsageRecord:
        return replace(
            self,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            requests=self.requests + other.requests,
            units=self.units + other.units,
        )


@dataclass(frozen=True, slots=True)
class CostRecord:
    """Billed money for one (day, project, cost line) combination, in the provider's currency."""

    provider: str
    account: str
    day: date
    project: str
    model: str  # "" for tool and service costs
    cost_type: str  # one of COST_TYPES
    amount: Decimal  # exact, in major units of ``currency`` (dollars, not cents)
    currency: str = "USD"  # ISO 4217, upper case
    line_item: str = ""  # the provider's own label for the line, kept verbatim
    token_type: str = ""  # one of TOKEN_TYPES when the line is priced per token type
    api_key: str = ""
    service_tier: str = ""
    attribution: str = "line_item"  # one of ATTRIBUTIONS

    @property
    def stream(self) -> Stream:
        return Stream(self.provider, self.account, self.project, self.model)

    def key(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in COST_KEY)

    def merged(self, other: CostRecord) -> CostRecord:
        if other.currency != self.currency:
            raise ValueError("cannot merge cost rows in different currencies")
        return replace(self, amount=self.amount + other.amount)


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    """A project / workspace and its display name (for ``aicost_project_info``)."""

    provider: str
    account: str
    project: str
    name: str
    status: str = "active"
    created_at: datetime | None = None
    archived_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key's identity and activity, kept for inactive-key detection."""

    provider: str
    account: str
    key_id: str
    project: str
    name: str
    status: str = "active"
    owner_type: str = ""
    created_at: datetime | None = None
    last_used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BillingRecord:
    """One billing-state value of an account, as observed by the latest successful poll.

    Unlike usage and cost rows these are not per day: each poll replaces the account's
    whole set, so a value the provider stops reporting (a team without prepaid credit)
    disappears instead of going stale.
    """

    provider: str
    account: str
    kind: str  # one of BILLING_KINDS
    amount: Decimal  # exact, in major units of ``currency``
    currency: str = "USD"
    period: str = ""  # billing period it belongs to, "YYYY-MM"; "" when not period-bound
    observed_at: datetime | None = None  # set by the poller (providers never read the clock)


@dataclass(slots=True)
class FetchResult:
    """Everything a provider read for the UTC days ``[start, end)``.

    The store replaces all usage and cost rows of those days for the account with these,
    so a revision upstream (a value going up or down, a row disappearing) is mirrored; the
    account's billing-state rows are replaced by ``billing`` as a whole.
    """

    start: date
    end: date
    usage: list[UsageRecord] = field(default_factory=list)
    costs: list[CostRecord] = field(default_factory=list)
    projects: list[ProjectRecord] = field(default_factory=list)
    api_keys: list[ApiKeyRecord] = field(default_factory=list)
    billing: list[BillingRecord] = field(default_factory=list)
    # reason -> what was read instead, when the provider refused an unconfirmed query
    # dimension and the poll fell back to a confirmed one (the poller logs and counts it)
    degraded: dict[str, str] = field(default_factory=dict)


def merge_usage(rows: Iterable[UsageRecord]) -> list[UsageRecord]:
    """Sum rows that share a natural key (a provider may split one key over several results)."""
    merged: dict[tuple[object, ...], UsageRecord] = {}
    for row in rows:
        k = row.key()
        merged[k] = merged[k].merged(row) if k in merged else row
    return list(merged.values())


def merge_costs(rows: Iterable[CostRecord]) -> list[CostRecord]:
    """Sum cost rows that share a natural key."""
    merged: dict[tuple[object, ...], CostRecord] = {}
    for row in rows:
        k = row.key()
        merged[k] = merged[k].merged(row) if k in merged else row
    return list(merged.values())


def duplicate_keys(result: FetchResult) -> list[str]:
    """The natural keys (day, stream, fine-grain dimensions) that occur more than once
    among one fetch's usage or cost rows, described for an error message (empty: none).

    One fetch must hold each key once: the store replaces the window with these rows, and
    a key read twice (a page repeated under another cursor) would count that day twice."""
    out = []
    for kind, rows in (("usage", result.usage), ("cost", result.costs)):
        seen: set[tuple[object, ...]] = set()
        for row in rows:
            key = row.key()
            if key in seen:
                out.append(f"{kind} {row.day} {'/'.join(str(k) for k in key[3:] if k != '')}")
            seen.add(key)
    return out


# --------------------------------------------------------------------------- app requests

# The attribution dimensions of an ingested request, and the value of a missing one.
REQUEST_DIMENSIONS: tuple[str, ...] = ("endpoint", "tenant", "user", "prompt_version", "outcome")
UNKNOWN = "unknown"


class RequestRecord(NamedTuple):
    """One AI API request as the application saw it (an OTLP GenAI span or a JSON event).

    ``id`` is the idempotency key (``span:<trace id>:<span id>`` or ``event:<id>``); the
    token fields are disjoint like the billed token types (``input_tokens`` is the
    *uncached* input). Cost is not part of the record: it is an estimate the intake adds.
    A named tuple, not a dataclass: ingest builds tens of thousands per second.
    """

    id: str
    time: datetime  # UTC
    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    endpoint: str = UNKNOWN
    tenant: str = UNKNOWN
    user: str = ""
    prompt_version: str = UNKNOWN
    outcome: str = UNKNOWN
    retry: bool = False

    def tokens(self, token_type: str) -> int:
        return int(getattr(self, f"{token_type}_tokens"))

    @property
    def day(self) -> date:
        return self.time.date()
